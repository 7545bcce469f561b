//! Writing result files so that a failure never leaves a half-written file behind.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::Context;

/// Writes `path` atomically (a temporary file renamed into place), naming the
/// file in any error.
pub fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    weft_runtime::io::write_atomically(path, write)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Writes text to `path`, or to standard output when `path` is `-` or absent.
pub fn write_text(path: Option<&Path>, text: &str) -> anyhow::Result<()> {
    match path {
        Some(p) if p != Path::new("-") => write_atomically(p, |w| Ok(w.write_all(text.as_bytes())?)),
        _ => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())?;
            Ok(out.flush()?)
        }
    }
}
