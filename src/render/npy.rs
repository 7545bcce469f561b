//! NumPy masks: uint8 `[heads, N, N]` (or `[N, N]` for one head), 1 = attends.

use std::path::Path;

use npyz::WriterBuilder;

use crate::commands::mask::MaskSelection;
use crate::output::write_atomically;

pub fn write(selection: &MaskSelection, path: &Path) -> anyhow::Result<()> {
    let n = selection.seq_len;
    let shape: Vec<u64> = if selection.single_head {
        vec![n as u64, n as u64]
    } else {
        vec![selection.heads.len() as u64, n as u64, n as u64]
    };
    write_atomically(path, |file| {
        let mut writer =
            npyz::WriteOptions::<u8>::new().default_dtype().shape(&shape).writer(file).begin_nd()?;
        let mut row = Vec::with_capacity(n);
        for &(_, mask) in &selection.heads {
            for q in 0..n as i64 {
                row.clear();
                row.extend((0..n as i64).map(|k| u8::from(mask.allows(n as i64, q, k))));
                writer.extend(row.iter().copied())?;
            }
        }
        writer.finish()?;
        Ok(())
    })
}
