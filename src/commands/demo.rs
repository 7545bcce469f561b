//! `weft demo`: LongLoRA's whole loop on this machine, with nothing to
//! download. A tiny LLaMA is pretrained from scratch at a short context C on
//! real text, extended to 4C with S2-Attn and LoRA+ (linear position
//! interpolation), merged, and evaluated at both lengths: perplexity on
//! held-out text and passkey retrieval.
//!
//! The text is Rust source: the crates of weft's own `Cargo.lock`, which any
//! machine that built weft holds in Cargo's registry (`$CARGO_HOME`). Files
//! are taken in a fixed order, so a machine gives the same corpus every run;
//! crates the registry lacks (another platform's) are skipped.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;

use super::eval::EvalArgs;
use super::export::ExportArgs;
use super::train::{ModelSizes, TrainArgs, TrainMode};

/// weft's own lock file: the crates whose sources are the corpus.
const LOCK: &str = include_str!("../../Cargo.lock");

/// The short context the base model is pretrained at; the extension is 4×.
const CONTEXT: usize = 128;
/// Corpus size: enough text for the step counts below, read in well under a second.
const TRAIN_BYTES: usize = 3 << 20;
/// Every this-many-th source file is held out for evaluation, up to this many bytes.
const HELDOUT_EVERY: usize = 16;
const HELDOUT_BYTES: usize = 96 << 10;

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Directory for everything the demo writes.
    #[arg(long, short, value_name = "DIR", default_value = "weft-demo")]
    pub out: PathBuf,
    /// Multiply the step counts by this (e.g. 0.1 for a quick look); below 0.25 the held-out
    /// text shrinks too.
    #[arg(long, value_name = "X", default_value_t = 1.0)]
    pub scale: f64,
    /// Start afresh in an --out that holds an earlier demo.
    #[arg(long)]
    pub overwrite: bool,
}

/// Pretraining and extension updates at scale 1, chosen to fit about ten
/// minutes on a 2-core machine with a software GPU (BENCHMARKS.md).
const PRETRAIN_STEPS: f64 = 1500.0;
const EXTEND_STEPS: f64 = 400.0;

pub fn run(args: &DemoArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    if !(args.scale > 0.0 && args.scale <= 100.0) {
        bail!("--scale {} must be in (0, 100]", args.scale);
    }
    let out = &args.out;
    if out.join("pretrain").exists() && !args.overwrite {
        bail!("{} holds an earlier demo; give --overwrite to run it afresh, or another --out", out.display());
    }
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let heldout_bytes = (HELDOUT_BYTES as f64 * (4.0 * args.scale).min(1.0)) as usize;
    let (train_data, heldout_data) = write_corpus(out, heldout_bytes.max(4096))?;
    let steps = |n: f64| ((n * args.scale).round() as u64).max(1);

    println!(
        "1/4 pretraining a tiny LLaMA from scratch at C = {CONTEXT} tokens (causal attention, full training)"
    );
    let pretrain = TrainArgs {
        model_sizes: Some(ModelSizes {
            hidden_size: 128,
            intermediate_size: 352,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            num_key_value_heads: None,
            vocab_size: weft_runtime::data::BYTE_VOCAB,
            max_position_embeddings: CONTEXT,
            initializer_range: 0.02,
            rope_theta: 10000.0,
            tie_word_embeddings: false,
        }),
        data: Some(train_data.clone()),
        out: Some(out.join("pretrain")),
        seq_len: Some(CONTEXT),
        pattern: Some("causal".into()),
        mode: Some(TrainMode::Full),
        lr: Some(2e-3),
        warmup_steps: Some(20),
        batch_size: Some(8),
        steps: Some(steps(PRETRAIN_STEPS)),
        heldout: Some(0.02),
        save_every: Some(steps(PRETRAIN_STEPS)),
        keep: Some(1),
        overwrite: args.overwrite,
        ..TrainArgs::default()
    };
    super::train::run(&pretrain)?;
    let base = out.join("pretrain/model");

    println!(
        "\n2/4 extending it to 4C = {} tokens: S2-Attn, LoRA+, linear position interpolation",
        4 * CONTEXT
    );
    let extend = TrainArgs {
        model: Some(base.clone()),
        data: Some(train_data),
        out: Some(out.join("extend")),
        seq_len: Some(4 * CONTEXT),
        pattern: Some("s2attn".into()),
        mode: Some(TrainMode::LoraPlus),
        lr: Some(1e-3),
        warmup_steps: Some(10),
        batch_size: Some(2),
        steps: Some(steps(EXTEND_STEPS)),
        heldout: Some(0.02),
        save_every: Some(steps(EXTEND_STEPS)),
        keep: Some(1),
        overwrite: args.overwrite,
        ..TrainArgs::default()
    };
    super::train::run(&extend)?;
    let adapter = out.join("extend/adapter");

    println!("\n3/4 merging the adapter into a Hugging Face checkpoint");
    let merged = out.join("merged");
    super::export::run(&ExportArgs {
        model_dir: base.clone(),
        adapter: adapter.clone(),
        out: merged.clone(),
    })?;

    println!("\n4/4 evaluating on held-out files: perplexity and passkey retrieval at C and 4C");
    let eval = |model_dir: &Path, json: &str| {
        super::eval::run(&EvalArgs {
            model_dir: model_dir.to_path_buf(),
            adapter: None,
            data: heldout_data.clone(),
            data_glob: None,
            seq_len: vec![CONTEXT, 4 * CONTEXT],
            stride: None,
            pattern: None,
            passkey: Some(20),
            seed: 0,
            tokenizer: None,
            json: Some(out.join(json)),
        })
    };
    println!("base model (pretrained at C, not extended):");
    eval(&base, "eval-base.json")?;
    println!("extended model (4C, S2-Attn + LoRA+, merged):");
    eval(&merged, "eval-extended.json")?;

    println!("\ndone in {:.1} min", started.elapsed().as_secs_f64() / 60.0);
    println!("adapter:      {}", adapter.display());
    println!("merged model: {}", merged.display());
    println!(
        "loss curves:  {} and {}",
        out.join("pretrain/loss.png").display(),
        out.join("extend/loss.png").display()
    );
    Ok(())
}

/// Writes `corpus/train.jsonl` and `corpus/heldout.jsonl` (one JSON object
/// per source file) from the registry's sources of the locked crates.
fn write_corpus(out: &Path, heldout_limit: usize) -> anyhow::Result<(PathBuf, PathBuf)> {
    let registry = cargo_home()?.join("registry/src");
    let indexes: Vec<PathBuf> = match std::fs::read_dir(&registry) {
        Ok(entries) => {
            let mut dirs: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
            dirs.sort();
            dirs
        }
        Err(e) => bail!(
            "the demo's corpus is the Rust sources in Cargo's registry, but {} cannot be read ({e}); \
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
    let corpus = out.join("corpus");
    std::fs::create_dir_all(&corpus)?;
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
        } else if train_bytes < TRAIN_BYTES {
            train_bytes += text.len();
            train.push(line);
        }
        if train_bytes >= TRAIN_BYTES && heldout_bytes >= heldout_limit {
            break;
        }
    }
    if train_bytes < TRAIN_BYTES / 4 || heldout.is_empty() {
        bail!(
            "found only {train_bytes} bytes of Rust source under {} for the demo's corpus; set CARGO_HOME to the \
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
    println!(
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
