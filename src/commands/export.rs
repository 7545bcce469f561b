//! `weft export MODEL_DIR --adapter DIR --out MERGED`: a PEFT adapter merged
//! into its base checkpoint, written as a Hugging Face checkpoint directory
//! that `LlamaForCausalLM.from_pretrained` loads as is, RoPE factor included.
//! Host only: no GPU is opened.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, ValueEnum};
use weft_ir::model::LlamaConfig;
use weft_runtime::io::{
    CheckpointReader, ExportError, FloatType, RUN_RECORD, check_layer_count, merged_config_json, plan_merge,
    write_merged_checkpoint,
};

use crate::output::{Input, Output, OutputKind, guard};

/// What an existing --out directory may hold to be replaced: what export writes.
const CHECKPOINT_EXTENSIONS: &[&str] = &["json", "safetensors", "model"];

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// The base model: a Hugging Face checkpoint directory (config.json and model.safetensors or
    /// a sharded index; F32, F16 or BF16).
    pub model_dir: PathBuf,
    /// The PEFT LoRA adapter directory to merge (adapter_config.json, adapter_model.safetensors,
    /// and weft_run.json when weft trained it, whose RoPE factor goes into the merged config).
    #[arg(long, value_name = "DIR")]
    pub adapter: PathBuf,
    /// The merged checkpoint directory to write: config.json, model.safetensors (each adapted
    /// weight W + s·B·A, the adapter's modules_to_save tensors in place of the base's),
    /// the base's generation config and tokenizer files, and weft_run.json. It is written beside
    /// and renamed in whole; an existing directory is replaced only if it holds nothing but
    /// .json, .safetensors and .model files.
    #[arg(long, short, value_name = "DIR")]
    pub out: PathBuf,
    /// The type of the merged weights. `auto`: the base's, when all its weights are stored in one
    /// type (a bf16 checkpoint exports in bf16, as PEFT's merge_and_unload and save_pretrained
    /// keep it), else f32. W + s·B·A is computed in f64 and rounded to f32, then to the nearest
    /// bf16 or f16; a weight past f16's range (±65504) is refused rather than made infinite.
    #[arg(long, value_enum, default_value_t = ExportDtype::Auto)]
    pub dtype: ExportDtype,
}

/// `--dtype`: the type `weft export` writes its weights in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExportDtype {
    Auto,
    F32,
    Bf16,
    F16,
}

impl ExportDtype {
    /// The type to write for a base stored in `stored` (its weights' types).
    fn resolve(self, stored: &std::collections::BTreeSet<FloatType>) -> FloatType {
        match self {
            ExportDtype::Auto => match stored.iter().collect::<Vec<_>>()[..] {
                [&only] => only,
                _ => FloatType::F32,
            },
            ExportDtype::F32 => FloatType::F32,
            ExportDtype::Bf16 => FloatType::Bf16,
            ExportDtype::F16 => FloatType::F16,
        }
    }
}

pub fn run(args: &ExportArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    crate::output::directory_not_stdout(&args.out, "the merged checkpoint")?;
    let inputs = [
        Input { path: &args.model_dir, what: "input checkpoint" },
        Input { path: &args.adapter, what: "adapter" },
    ];
    let kind = OutputKind::Directory { extensions: CHECKPOINT_EXTENSIONS };
    guard(Output { path: &args.out, what: "the merged checkpoint", flag: "--out", kind }, &inputs)?;
    let config_path = args.model_dir.join("config.json");
    let config_text = std::fs::read_to_string(&config_path)
        .with_context(|| format!("cannot read {}", config_path.display()))?;
    let (config, unknown) =
        LlamaConfig::from_json_str_with_unknown_keys(&config_text, &config_path.display().to_string())?;
    super::source::warn_unknown_keys(&config_path, &unknown);
    check_layer_count(&args.model_dir, &config)?;
    let record = super::adapter::check(&args.adapter)?;

    // The adapter is small and checked whole, and the checkpoint's headers
    // against the config, before a tensor of the base is read.
    let adapter = super::adapter::load(&args.adapter, &config)?;
    let mut checkpoint = CheckpointReader::open(&args.model_dir, &config)?;
    let plan = plan_merge(&config, &adapter)?;
    let float = args.dtype.resolve(&checkpoint.stored_types());
    let merged_config = plan.config.clone();
    super::adapter::note_untied(&config, &merged_config, &adapter.replacements);
    let factor = record.as_ref().map(|r| r.rope_linear_factor);
    let merged_config = match &record {
        Some(record) => super::adapter::apply_run_factor(&merged_config, record, &args.adapter)?,
        None => {
            errln!(
                "RoPE: {} has no {RUN_RECORD}; the merged config keeps the base's RoPE settings",
                args.adapter.display()
            );
            merged_config
        }
    };
    let config_json = merged_config_json(&config_text, &config_path, &merged_config, factor, float)?;
    // One tensor at a time: read from the base, merged, written, dropped.
    let shapes: Vec<_> = plan.tensors.iter().map(|(parameter, _)| parameter.clone()).collect();
    let bar = crate::progress::tensors(shapes.len() as u64, "merging");
    let values = |index: usize| {
        bar.set_position(index as u64);
        plan.values(index, &adapter, |name| checkpoint.read(name).map_err(ExportError::from))
    };
    let written = write_merged_checkpoint(
        &args.out,
        &config_json,
        &shapes,
        float,
        values,
        &args.model_dir,
        record.as_ref(),
    )?;
    bar.finish_and_clear();
    let merged_modules = adapter.lora.target_modules.len() * config.num_hidden_layers;
    errln!(
        "merged {merged_modules} LoRA projections (r = {}, scaling {}) and {} saved tensors into {} tensors",
        adapter.lora.rank,
        adapter.lora.scaling(),
        adapter.replacements.len(),
        shapes.len()
    );
    errln!(
        "wrote {} ({}, weights in {}) in {:.1} s",
        args.out.display(),
        written.join(", "),
        float.torch_name(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
