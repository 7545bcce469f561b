//! ASCII masks: `#` where a query (row) attends to a key (column), `.` where not.

use std::io::Write;

use crate::commands::mask::MaskSelection;

pub fn write(selection: &MaskSelection, out: &mut impl Write) -> anyhow::Result<()> {
    let n = selection.seq_len;
    writeln!(out, "# {}", selection.title)?;
    writeln!(out, "# rows are queries, columns are keys; '#' = attends, '.' = masked")?;
    let mut row = Vec::with_capacity(n + 1);
    for &(head, mask) in &selection.heads {
        writeln!(out, "# head {head}: {mask}")?;
        for q in 0..n as i64 {
            row.clear();
            row.extend((0..n as i64).map(|k| if mask.allows(n as i64, q, k) { b'#' } else { b'.' }));
            row.push(b'\n');
            out.write_all(&row)?;
        }
    }
    Ok(out.flush()?)
}
