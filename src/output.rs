//! Writing result files: never over an input, never half-written.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
pub use weft_runtime::io::{Input, Output, OutputKind};
use weft_runtime::tune::TuningCache;

/// Refuses `output` before any work if writing it would lose one of
/// `inputs`: the same file by any name, a file inside an input directory, or
/// (a directory replaced whole) one holding an input or files weft did not write.
pub fn guard(output: Output, inputs: &[Input]) -> anyhow::Result<()> {
    Ok(weft_runtime::io::check_output(&output, inputs)?)
}

/// The single file named by `--out`, holding `what`.
pub fn out_file<'a>(path: &'a Path, what: &'static str) -> Output<'a> {
    Output { path, what, flag: "--out", kind: OutputKind::File }
}

/// The text file named by `--out`, or standard output for `-`.
pub fn out_text<'a>(path: &'a Path, what: &'static str) -> Output<'a> {
    Output { path, what, flag: "--out", kind: OutputKind::Text }
}

/// Refuses `--out -` for a command whose `what` is a directory, which would
/// otherwise be created under the name `-`.
pub fn directory_not_stdout(path: &Path, what: &'static str) -> anyhow::Result<()> {
    let output = Output { path, what, flag: "--out", kind: OutputKind::Directory { extensions: &[] } };
    if path == Path::new("-") { guard(output, &[]) } else { Ok(()) }
}

/// Where the tuning cache is, for commands that read it (their outputs must not replace it).
pub fn tuning_cache_path() -> Option<PathBuf> {
    TuningCache::from_env().ok().map(|cache| cache.path().to_path_buf())
}

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
