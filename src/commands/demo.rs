//! `weft demo`: LongLoRA's whole loop on this machine, with nothing to
//! download. A tiny LLaMA is pretrained from scratch at a short context C on
//! real text, extended to 4C with S2-Attn and LoRA+ (linear position
//! interpolation), merged, and evaluated at both lengths: perplexity on
//! held-out text and passkey retrieval.
//!
//! The text is Rust source from Cargo's registry (`weft corpus`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;

use super::corpus;
use super::eval::EvalArgs;
use super::export::ExportArgs;
use super::train::{ModelSizes, TrainArgs, TrainMode};

/// The short context the base model is pretrained at; the extension is 4×.
const CONTEXT: usize = 128;
/// Corpus size: enough text for the step counts below, read in well under a second.
const TRAIN_BYTES: usize = 3 << 20;
/// Held-out bytes at scale 1 (every 16th source file, up to this many).
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
    crate::output::directory_not_stdout(out, "the demo's runs")?;
    if out.join("pretrain").exists() && !args.overwrite {
        bail!("{} holds an earlier demo; give --overwrite to run it afresh, or another --out", out.display());
    }
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let heldout_bytes = (HELDOUT_BYTES as f64 * (4.0 * args.scale).min(1.0)) as usize;
    let (train_data, heldout_data) =
        corpus::write_corpus(&out.join("corpus"), TRAIN_BYTES, heldout_bytes.max(4096))?;
    let steps = |n: f64| ((n * args.scale).round() as u64).max(1);

    outln!(
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

    outln!(
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

    outln!("\n3/4 merging the adapter into a Hugging Face checkpoint");
    let merged = out.join("merged");
    super::export::run(&ExportArgs {
        model_dir: base.clone(),
        adapter: adapter.clone(),
        out: merged.clone(),
        dtype: super::export::ExportDtype::Auto,
    })?;

    outln!("\n4/4 evaluating on held-out files: perplexity and passkey retrieval at C and 4C");
    let eval = |model_dir: &Path, json: &str| {
        super::eval::run(&EvalArgs {
            model_dir: model_dir.to_path_buf(),
            adapter: None,
            weight_dtype: Default::default(),
            data: heldout_data.clone(),
            data_glob: None,
            seq_len: vec![CONTEXT, 4 * CONTEXT],
            stride: None,
            pattern: None,
            passkey: Some(20),
            passkey_decode: false,
            seed: 0,
            tokenizer: None,
            json: Some(out.join(json)),
        })
    };
    outln!("base model (pretrained at C, not extended):");
    eval(&base, "eval-base.json")?;
    outln!("extended model (4C, S2-Attn + LoRA+, merged):");
    eval(&merged, "eval-extended.json")?;

    outln!("\ndone in {:.1} min", started.elapsed().as_secs_f64() / 60.0);
    outln!("adapter:      {}", adapter.display());
    outln!("merged model: {}", merged.display());
    outln!(
        "loss curves:  {} and {}",
        out.join("pretrain/loss.png").display(),
        out.join("extend/loss.png").display()
    );
    Ok(())
}
