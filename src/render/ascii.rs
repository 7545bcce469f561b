//! ASCII masks: `#` where a query (row) attends to a key (column), `.` where not.

use std::io::Write;

use crate::commands::mask::MaskSelection;

pub fn write(selection: &MaskSelection, out: &mut impl Write) -> anyhow::Result<()> {
    let n = selection.seq_len;
    writeln!(out, "# {}", selection.title)?;
    writeln!(out, "# rows are queries, columns are keys; '#' = attends, '.' = masked")?;
    let mut cells = vec![0u8; n];
    let mut line = Vec::with_capacity(n + 1);
    for &(head, mask) in &selection.heads {
        writeln!(out, "# head {head}: {mask}")?;
        for q in 0..n {
            mask.fill_rows(n, q..q + 1, &mut cells);
            line.clear();
            line.extend(cells.iter().map(|&c| if c == 1 { b'#' } else { b'.' }));
            line.push(b'\n');
            out.write_all(&line)?;
        }
    }
    Ok(out.flush()?)
}
