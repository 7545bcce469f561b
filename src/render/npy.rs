//! NumPy masks: uint8 `[heads, N, N]` (or `[N, N]` for one head), 1 = attends.

use std::path::Path;

use npyz::WriterBuilder;

use crate::commands::mask::MaskSelection;
use crate::output::write_atomically;

/// Rows materialized at a time.
const ROW_BLOCK: usize = 64;

pub fn write(selection: &MaskSelection, path: &Path) -> anyhow::Result<()> {
    let n = selection.seq_len;
    let shape: Vec<u64> = if selection.single_head {
        vec![n as u64, n as u64]
    } else {
        vec![selection.heads.len() as u64, n as u64, n as u64]
    };
    let progress = crate::progress::rows((selection.heads.len() * n) as u64, n as u64, "writing mask");
    write_atomically(path, |file| {
        let mut writer =
            npyz::WriteOptions::<u8>::new().default_dtype().shape(&shape).writer(file).begin_nd()?;
        let mut block = vec![0u8; ROW_BLOCK * n];
        for &(_, mask) in &selection.heads {
            for start in (0..n).step_by(ROW_BLOCK) {
                let rows = start..(start + ROW_BLOCK).min(n);
                let cells = &mut block[..rows.len() * n];
                mask.fill_rows(n, rows.clone(), cells);
                writer.extend(cells.iter().copied())?;
                progress.inc(rows.len() as u64);
            }
        }
        writer.finish()?;
        Ok(())
    })?;
    progress.finish_and_clear();
    Ok(())
}
