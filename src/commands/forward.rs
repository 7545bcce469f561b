//! `weft forward MODEL_DIR --input IN.safetensors --out OUT.safetensors
//! [--pattern SPEC] [--adapter DIR] [--loss]`: a Hugging Face LLaMA checkpoint's
//! forward pass on the GPU, with a PEFT adapter's LoRA factors, saved modules
//! and (from weft's run record) RoPE factor.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use weft_compiler::{CompileOptions, compile};
use weft_ir::limits::{self, Origin};
use weft_ir::model::{LlamaConfig, ModelGraphOptions, build_llama_graph};
use weft_runtime::io::{HostTensor, TensorFile, check_layer_count, save};
use weft_runtime::{Executor, HostValues};

use crate::commands::weight_dtype::WeightDtype;
use crate::output::{Input, guard, out_file, tuning_cache_path};

#[derive(Args, Debug)]
pub struct ForwardArgs {
    /// A Hugging Face model directory: config.json and model.safetensors (or a sharded index).
    pub model_dir: PathBuf,
    /// safetensors file with `input_ids` (i32 or i64, [B, T]).
    #[arg(long, value_name = "IN")]
    pub input: PathBuf,
    /// safetensors file to write: `logits` (f32, [B, T, V]), and `loss` with --loss.
    #[arg(long, short, value_name = "OUT")]
    pub out: PathBuf,
    /// Attention pattern spec for every layer (resolved at T and the model's heads and layers);
    /// default: full causal attention.
    #[arg(long, value_name = "SPEC")]
    pub pattern: Option<PathBuf>,
    /// A PEFT LoRA adapter directory (adapter_config.json, adapter_model.safetensors): its LoRA
    /// factors, the tensors of its modules_to_save in place of the base's, and the RoPE factor
    /// of weft_run.json when weft trained it.
    #[arg(long, value_name = "DIR")]
    pub adapter: Option<PathBuf>,
    /// How the weights are stored on the host and the device: auto (the default) keeps a tensor
    /// whose values are exactly bf16 or f16, as such checkpoints hold them, in 16 bits (half the
    /// memory, the same results); f32 stores every weight in f32.
    #[arg(long, value_name = "DTYPE", default_value = "auto")]
    pub weight_dtype: WeightDtype,
    /// Run the model graph op by op as written, attention through N x N scores, instead of
    /// optimizing it first (which fuses every layer's attention).
    #[arg(long)]
    pub unfused: bool,
    /// Also compute the mean next-token cross-entropy of the input (each position
    /// predicts the next id; the last position predicts nothing).
    #[arg(long)]
    pub loss: bool,
}

pub fn run(args: &ForwardArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let cache = tuning_cache_path();
    let mut inputs = vec![
        Input { path: &args.model_dir, what: "input checkpoint" },
        Input { path: &args.input, what: "input tensors" },
    ];
    inputs.extend(args.pattern.as_deref().map(|path| Input { path, what: "pattern spec" }));
    inputs.extend(args.adapter.as_deref().map(|path| Input { path, what: "adapter" }));
    inputs.extend(cache.as_deref().map(|path| Input { path, what: "tuning cache" }));
    guard(out_file(&args.out, "logits"), &inputs)?;
    let config_path = args.model_dir.join("config.json");
    let (mut config, unknown) = LlamaConfig::from_file_with_unknown_keys(&config_path)?;
    super::source::warn_unknown_keys(&config_path, &unknown);
    // Before anything is sized by the config: its layer count must be the checkpoint's.
    check_layer_count(&args.model_dir, &config)?;
    let record = match &args.adapter {
        Some(dir) => super::adapter::check(dir)?,
        None => None,
    };
    let ids = TensorFile::load(&args.input)?.ints("input_ids")?;
    let [batch, t] = ids.shape[..] else {
        bail!("tensor `input_ids` in {} has shape {:?}; expected [B, T]", args.input.display(), ids.shape);
    };
    let file_name = args.input.display().to_string();
    limits::check_size(batch, Origin::tensor("B", "input_ids", &file_name), &limits::BATCH)?;
    limits::check_size(t, Origin::tensor("T", "input_ids", &file_name), &limits::SEQ_LEN)?;
    if args.loss && t < 2 {
        bail!(
            "--loss needs at least 2 tokens per sequence (each position predicts the next), but \
             `input_ids` in {} has T = {t}",
            args.input.display()
        );
    }
    if let Some((position, id)) =
        ids.data.iter().enumerate().find(|(_, id)| !(0..config.vocab_size as i64).contains(id))
    {
        bail!(
            "input_ids[{position}] = {id} is not a token id of this model (vocab_size {})",
            config.vocab_size
        );
    }
    let schedule = super::source::model_schedule(args.pattern.as_deref(), t, &config)?;

    // The adapter is small and checked whole before the checkpoint is read.
    let adapter = match &args.adapter {
        Some(dir) => Some(super::adapter::load(dir, &config)?),
        None => None,
    };
    if let (Some(dir), Some(record)) = (&args.adapter, &record) {
        config = super::adapter::apply_run_factor(&config, record, dir)?;
    }
    let super::adapter::InferenceWeights { config, values: mut inputs, lora, leaf_storage } =
        super::adapter::load_for_inference(&args.model_dir, &config, adapter, args.weight_dtype)?;
    let opts = ModelGraphOptions { lora, loss: args.loss, ..ModelGraphOptions::new(batch, t) };
    let graph = build_llama_graph(&config, schedule.as_ref(), &opts)?;
    let gpu = crate::gpu::open()?;
    errln!("adapter: {}", gpu.adapter_description());
    // Optimized (every layer's attention fused) unless --unfused; planned
    // with the matmul shape and attention tiles `weft tune` measured here.
    let opts = CompileOptions {
        optimize: !args.unfused,
        plan: weft_compiler::GraphPlanOptions { leaf_storage, ..super::tune::plan_options(&gpu) },
        ..Default::default()
    };
    let compiled = compile(graph, &opts).context("compiling the model")?;
    if let Some(optimized) = &compiled.optimized {
        let report = &optimized.report;
        errln!(
            "optimizer: {} after {} iterations, cost {} -> {}",
            report.stop_reason,
            report.iterations,
            report.cost_before,
            report.cost_after
        );
    }
    let plan = &compiled.plan;
    crate::memory::check_fits(plan.total_bytes(), "the model's buffers")?;
    errln!("{} kernels over {} buffers", plan.kernels.len(), plan.buffers.len());

    if args.loss {
        // targets[b, i] = input_ids[b, i + 1]; the last position is ignored (-100).
        let targets = (0..batch * t).map(|i| if i % t + 1 < t { ids.data[i + 1] } else { -100 }).collect();
        inputs.insert("targets".into(), HostValues::I64(targets));
    }
    inputs.insert("input_ids".into(), HostValues::I64(ids.data));
    let mut executor = Executor::new(gpu);
    let prepared = executor.prepare(plan).context("preparing the model on the GPU")?;
    executor.upload(&prepared, &inputs).context("uploading the weights")?;
    // On the device now: the host's copy goes before the logits come back.
    drop(inputs);
    executor.execute(&prepared).context("running the model on the GPU")?;
    let mut outputs: HashMap<String, Vec<f32>> =
        executor.download(&prepared).context("reading the outputs")?;

    // Moved, not copied: the logits are batch × T × vocab values.
    let mut tensors = BTreeMap::new();
    let logits = outputs.remove("logits").context("the plan produced no logits")?;
    tensors
        .insert("logits".to_string(), HostTensor { shape: vec![batch, t, config.vocab_size], data: logits });
    if args.loss {
        let loss = outputs.remove("loss").context("the plan produced no loss")?;
        outln!("loss {:.6}", loss.first().copied().unwrap_or(f32::NAN));
        tensors.insert("loss".to_string(), HostTensor { shape: vec![], data: loss });
    }
    save(&args.out, &tensors)?;
    errln!(
        "wrote {} ({}) in {:.1} s",
        args.out.display(),
        tensors.keys().cloned().collect::<Vec<_>>().join(", "),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
