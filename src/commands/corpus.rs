//! `weft corpus`: real text with nothing to download, for `weft demo` and
//! the experiments. The text is Rust source: the crates of weft's own
//! `Cargo.lock`, which any machine that built weft holds in Cargo's registry
//! (`$CARGO_HOME`). Rust code has long-range structure (an identifier defined
//! far above its use), which is what long-context training should learn.
//! Files are taken in a fixed order, so a machine gives the same corpus every
//! run; crates the registry lacks (another platform's) are skipped.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;

/// weft's own lock file: the crates whose sources are the corpus.
const LOCK: &str = include_str!("../../Cargo.lock");
/// Every this-many-th source file is held out for evaluation.
const HELDOUT_EVERY: usize = 16;

#[derive(Args, Debug)]
pub struct CorpusArgs {
    /// Directory to write `train.jsonl` and `heldout.jsonl` to.
    #[arg(long, short, value_name = "DIR")]
    pub out: PathBuf,
    /// Megabytes of training text, at most.
    #[arg(long, value_name = "MB", default_value_t = 3.0)]
    pub train_mb: f64,
    /// Kilobytes of held-out text (every 16th file), at most.
    #[arg(long, value_name = "KB", default_value_t = 96.0)]
    pub heldout_kb: f64,
}

pub fn run(args: &CorpusArgs) -> anyhow::Result<()> {
    if args.out.as_os_str().is_empty() {
        bail!("--out is empty: give the directory to write the corpus to");
    }
    crate::output::directory_not_stdout(&args.out, "the corpus")?;
    if !(args.train_mb > 0.0 && args.train_mb <= 1024.0) {
        bail!("--train-mb {} must be in (0, 1024]", args.train_mb);
    }
    if !(args.heldout_kb > 0.0 && args.heldout_kb <= 1024.0 * 1024.0) {
        bail!("--heldout-kb {} must be in (0, 1048576]", args.heldout_kb);
    }
    let (train, heldout) =
        write_corpus(&args.out, (args.train_mb * 1e6) as usize, (args.heldout_kb * 1e3) as usize)?;
    outln!("wrote {} and {}", train.display(), heldout.display());
    Ok(())
}

/// Writes `train.jsonl` and `heldout.jsonl` (one JSON object per source
/// file) under `corpus` from the registry's sources of the locked crates:
/// every [`HELDOUT_EVERY`]-th file held out, up to `heldout_limit` bytes, the
/// others for training up to `train_limit` bytes.
pub fn write_corpus(
    corpus: &Path,
    train_limit: usize,
    heldout_limit: usize,
) -> anyhow::Result<(PathBuf, PathBuf)> {
    let registry = cargo_home()?.join("registry/src");
    let indexes: Vec<PathBuf> = match std::fs::read_dir(&registry) {
        Ok(entries) => {
            let mut dirs: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
            dirs.sort();
            dirs
        }
        Err(e) => bail!(
            "the corpus is the Rust sources in Cargo's registry, but {} cannot be read ({e}); \
             set CARGO_HOME to the directory that built weft",
            registry.display()
        ),
    };
    let mut files = Vec::new();
    for (name, version) in locked_crates() {
        let Some(dir) = indexes.iter().map(|i| i.join(format!("{name}-{version}"))).find(|d| d.is_dir())
        else {
            continue;
        };
        let mut crate_files = Vec::new();
        collect_rs(&dir, &mut crate_files);
        crate_files.sort();
        files.extend(crate_files);
    }
    std::fs::create_dir_all(corpus).with_context(|| format!("cannot create {}", corpus.display()))?;
    let (mut train, mut heldout) = (Vec::new(), Vec::new());
    let (mut train_bytes, mut heldout_bytes) = (0, 0);
    for (i, file) in files.iter().enumerate() {
        let Ok(text) = std::fs::read_to_string(file) else { continue };
        let line = serde_json::json!({ "text": text }).to_string();
        if i % HELDOUT_EVERY == HELDOUT_EVERY - 1 {
            if heldout_bytes < heldout_limit {
                heldout_bytes += text.len();
                heldout.push(line);
            }
        } else if train_bytes < train_limit {
            train_bytes += text.len();
            train.push(line);
        }
        if train_bytes >= train_limit && heldout_bytes >= heldout_limit {
            break;
        }
    }
    if train_bytes < train_limit / 4 || heldout.is_empty() {
        bail!(
            "found only {train_bytes} bytes of Rust source under {} for the corpus; set CARGO_HOME to the \
             directory that built weft",
            registry.display()
        );
    }
    let write = |name: &str, lines: &[String]| -> anyhow::Result<PathBuf> {
        let path = corpus.join(name);
        crate::output::write_atomically(&path, |w| {
            for line in lines {
                writeln!(w, "{line}")?;
            }
            Ok(())
        })?;
        Ok(path)
    };
    outln!(
        "corpus: {} files ({:.1} MB) of Rust source from Cargo's registry for training, {} held out ({:.0} kB)",
        train.len(),
        train_bytes as f64 / 1e6,
        heldout.len(),
        heldout_bytes as f64 / 1e3
    );
    Ok((write("train.jsonl", &train)?, write("heldout.jsonl", &heldout)?))
}

/// `$CARGO_HOME`, else `~/.cargo`.
fn cargo_home() -> anyhow::Result<PathBuf> {
    if let Some(home) = std::env::var_os("CARGO_HOME") {
        return Ok(PathBuf::from(home));
    }
    let home = std::env::var_os("HOME").context("neither CARGO_HOME nor HOME is set")?;
    Ok(PathBuf::from(home).join(".cargo"))
}

/// `(name, version)` of every registry package in `Cargo.lock`, in its order.
fn locked_crates() -> Vec<(String, String)> {
    let Ok(lock) = LOCK.parse::<toml::Table>() else { return Vec::new() };
    let packages = lock.get("package").and_then(|p| p.as_array()).cloned().unwrap_or_default();
    packages
        .iter()
        .filter(|p| p.get("source").and_then(|s| s.as_str()).is_some_and(|s| s.starts_with("registry+")))
        .filter_map(|p| Some((p.get("name")?.as_str()?.to_string(), p.get("version")?.as_str()?.to_string())))
        .collect()
}

/// Every `.rs` file under `dir`.
fn collect_rs(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_rs(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}
