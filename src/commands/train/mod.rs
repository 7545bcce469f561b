//! `weft train`: LongLoRA's fine-tuning loop on the GPU.
//!
//! Settings come from flags over a TOML file over defaults (`settings.rs`);
//! the model from a checkpoint or sizes, its context extended (`model.rs`);
//! the sequences and their order per epoch from `data.rs`. The training step
//! and its AdamW update are one compiled plan (`weft_runtime::train`), so
//! weights and optimizer state stay on the device; the loop here feeds it
//! token ids, logs each update, checkpoints and resumes.

mod data;
mod model;
mod run_dir;
mod settings;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{Context, bail};
use weft_compiler::{CompileOptions, GraphPlanOptions, Mode, UpdateOptions, compile};
use weft_ir::Overrides;
use weft_ir::model::{ModelGraphOptions, build_llama_graph};
use weft_runtime::Executor;
use weft_runtime::train::{Checkpoint, CheckpointState, TrainError, TrainingStep, load_checkpoint_dir};

use settings::Settings;

use crate::commands::weight_dtype::host_storage;
pub use settings::{ModelSizes, TrainArgs, TrainMode};

/// LongLoRA's roll-form S2-Attn, the default pattern.
const S2ATTN: &str = include_str!("../../../examples/patterns/s2attn-roll.toml");

pub fn run(args: &TrainArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let settings = Settings::resolve(args)?;
    run_dir::RunDir::check(&settings, args.resume, args.overwrite)?;
    // Every small input is checked before anything large is read or written.
    let model_config = model::model_config(&settings)?;
    let config = &model_config.0;
    let data = data::Sequences::load(&settings, config.vocab_size)?;

    let schedule = match settings.pattern.as_str() {
        "causal" => None,
        pattern => {
            let overrides = Overrides {
                seq_len: Some(settings.seq_len),
                n_heads: Some(config.num_attention_heads),
                n_layers: Some(config.num_hidden_layers),
                head_dim: Some(config.head_dim),
            };
            let spec = if pattern == "s2attn" {
                weft_ir::Spec::parse(weft_ir::SourceFile::new("s2attn-roll.toml", S2ATTN))?
            } else {
                weft_ir::Spec::load(std::path::Path::new(pattern))?
            };
            Some(
                spec.resolve(&overrides)
                    .with_context(|| format!("the pattern `{pattern}` at --seq-len {}", settings.seq_len))?,
            )
        }
    };
    model::check_init_adapter(&settings)?;
    let mut base = model::base_model(&settings, model_config.clone())?;
    let config = &base.config;
    errln!(
        "model: {} layers, hidden {}, vocab {}; context C = {}, T = {}, RoPE factor {}",
        config.num_hidden_layers,
        config.hidden_size,
        config.vocab_size,
        base.context,
        settings.seq_len,
        base.rope_factor
    );
    errln!(
        "data: {} training and {} held-out sequences of {} tokens from {} ({})",
        data.train_rows(),
        data.heldout_rows(),
        settings.seq_len,
        settings.data.display(),
        data.source
    );
    let opts = ModelGraphOptions {
        lora: base.lora.clone(),
        train_embed: settings.mode == TrainMode::LoraPlus,
        train_norm: settings.mode == TrainMode::LoraPlus,
        train_all: settings.mode == TrainMode::Full,
        loss: true,
        logits_output: false,
        ..ModelGraphOptions::new(settings.batch_size, settings.seq_len)
    };
    let graph = build_llama_graph(config, schedule.as_ref(), &opts)?;
    // Every input checked: now the run directory may be written.
    // A full model's config.json, made once: checkpoints and the final model share it.
    let model_json = match settings.mode {
        TrainMode::Full => Some(run_dir::model_config_json(&settings, &base, data.tokenizer_ids)?),
        TrainMode::Lora | TrainMode::LoraPlus => None,
    };
    let out = run_dir::RunDir::create(&settings, args.overwrite)?;
    let gpu = crate::gpu::open()?;
    errln!("adapter: {}", gpu.adapter_description());
    let trainable = weft_ir::autodiff::trainable_parameters(&graph);
    // Frozen weights the host holds in 16 bits stay so on the device; trained ones widen to f32.
    let frozen = base.weights.iter().filter(|(name, _)| !trainable.contains(name));
    let leaf_storage = host_storage(frozen.map(|(name, values)| (name.as_str(), values)));
    let compile_opts = CompileOptions {
        mode: Mode::Training { wrt: Vec::new(), seeds: vec!["loss".to_string()] },
        plan: GraphPlanOptions { leaf_storage, ..crate::commands::tune::plan_options(&gpu) },
        update: Some(UpdateOptions { accumulate: settings.grad_accum > 1 }),
        gradient_checkpointing: settings.gradient_checkpointing,
        ..CompileOptions::default()
    };
    let compiled = compile(graph, &compile_opts).context("compiling the training step")?;
    if let Some(c) = &compiled.checkpointing {
        errln!(
            "gradient checkpointing: {} activations kept, {} nodes recomputed in the backward pass",
            c.checkpoints,
            c.recomputed
        );
    }
    crate::memory::check_fits(compiled.plan.total_bytes(), "the training step's buffers").map_err(|e| {
        if settings.gradient_checkpointing {
            e
        } else {
            anyhow::anyhow!("{e}, or --gradient-checkpointing, which keeps far fewer activations")
        }
    })?;
    let mut executor = Executor::new(gpu);
    let step = TrainingStep::new(&mut executor, &compiled, settings.batch_size, settings.seq_len)?;
    let trained: Vec<String> = step.update_plan().params.iter().map(|p| p.name.clone()).collect();
    let trained_elems: u64 = step.update_plan().params.iter().map(|p| p.elems).sum();
    errln!(
        "plan: {} kernels, {:.1} MiB of device buffers; training {} tensors ({:.2}M values, mode {})",
        compiled.plan.kernels.len(),
        step.device_bytes() as f64 / (1 << 20) as f64,
        trained.len(),
        trained_elems as f64 / 1e6,
        settings.mode.as_str()
    );
    step.upload_weights(&executor, &base.weights, settings.grad_accum)?;
    // On the device now. The host keeps only what a full model's files need and
    // training does not write: a frozen weight under `--mode full` (tied, say).
    base.weights.retain(|name, _| settings.mode == TrainMode::Full && !trainable.contains(name));

    // Resume: the newest complete checkpoint's trained tensors and moments.
    let mut first = 0;
    let mut last_good = None;
    let newest = if args.resume { out.newest_checkpoint()? } else { None };
    if args.resume && newest.is_none() {
        errln!("--resume: {} holds no checkpoint yet; starting from step 0", out.path().display());
    }
    if let Some(dir) = newest {
        let (file, prefix) = out.weights_file(&settings);
        let mut checkpoint = load_checkpoint_dir(&dir, file, prefix, &trained)?;
        let conflicts = settings::resume_conflicts(&checkpoint.state.fingerprint, &settings.fingerprint());
        if !conflicts.is_empty() {
            bail!(
                "{} was written by a run with other settings ({}); resume with the same settings, or start \
                 afresh with --overwrite",
                dir.display(),
                conflicts.join("; ")
            );
        }
        restore(&step, &executor, &mut checkpoint)?;
        first = checkpoint.state.step;
        errln!("resuming from {} (step {first})", dir.display());
        last_good = Some(dir);
    }
    if first >= settings.steps {
        errln!("nothing to do: the run is at step {first} of {}", settings.steps);
    }
    let mut metrics = out.metrics(first)?;

    let tokens_per_update = (settings.batch_size * settings.grad_accum * settings.seq_len) as u64;
    let bar = crate::progress::steps(settings.steps, first);
    for s in first..settings.steps {
        let micro: Vec<Vec<i64>> = (0..settings.grad_accum)
            .map(|j| data.micro_batch(&settings, s, j))
            .collect::<anyhow::Result<_>>()?;
        let stats = step.step(&executor, &micro, |keep| settings.optimizer.hyper(s, keep))?;
        let done = s + 1;
        for (what, value) in [("loss", stats.loss), ("gradient norm", stats.grad_norm)] {
            if !value.is_finite() {
                return Err(TrainError::NotFinite { step: done, what, value, last_good }.into());
            }
        }
        let lr = settings.optimizer.lr_at(s);
        metrics.train(done, stats.loss, lr, stats.grad_norm, done * tokens_per_update, stats.elapsed)?;
        bar.set_position(done);
        bar.set_message(format!(
            "loss {:.4}, lr {lr:.2e}, {:.0} tokens/s",
            stats.loss,
            tokens_per_update as f64 / stats.elapsed.as_secs_f64().max(1e-9)
        ));
        if done % settings.save_every == 0 || done == settings.steps {
            if data.heldout_rows() > 0 {
                let eval_loss = evaluate(&step, &executor, &data, &settings)?;
                metrics.eval(done, eval_loss)?;
            }
            let state = CheckpointState {
                format: 1,
                step: done,
                tokens: done * tokens_per_update,
                seed: settings.seed,
                fingerprint: settings.fingerprint(),
            };
            let written = Instant::now();
            let dir = out.checkpoint(&settings, &base, &step, &executor, &state, model_json.as_deref())?;
            let seconds = written.elapsed().as_secs_f64();
            bar.suspend(|| errln!("wrote {} in {seconds:.2} s", dir.display()));
            metrics.plot(&out.path().join("loss.png"))?;
            last_good = Some(dir);
        }
    }
    bar.finish_and_clear();
    let final_dir = out.finish(&settings, &base, &step, &executor, model_json.as_deref())?;
    let summary = metrics.summary();
    outln!("{summary}");
    outln!("trained in {:.1} s; wrote {}", started.elapsed().as_secs_f64(), final_dir.display());
    outln!(
        "metrics: {}, plot: {}",
        out.path().join("metrics.jsonl").display(),
        out.path().join("loss.png").display()
    );
    Ok(())
}

/// Restores a checkpoint's trained tensors and AdamW moments on the device,
/// one tensor at a time.
fn restore(step: &TrainingStep, executor: &Executor, checkpoint: &mut Checkpoint) -> anyhow::Result<()> {
    for param in &step.update_plan().params {
        let (tensor, m, v) = checkpoint.tensor(&param.name)?;
        step.write(executor, &param.name, &tensor.data)?;
        step.write(executor, &param.moments[0], &m)?;
        step.write(executor, &param.moments[1], &v)?;
    }
    Ok(())
}

/// The mean loss over the held-out sequences (whole micro-batches of them):
/// the training plan's forward pass, whose gradients are then dropped (the
/// next update restarts its accumulators and overwrites its gradients).
fn evaluate(
    step: &TrainingStep,
    executor: &Executor,
    data: &data::Sequences,
    settings: &Settings,
) -> anyhow::Result<f64> {
    let batches = data.heldout_batches(settings.batch_size);
    let mut total = 0.0;
    for ids in &batches {
        let (loss, _) = step.micro_step(executor, ids, settings.optimizer.hyper(0, false))?;
        total += loss;
    }
    Ok(total / batches.len().max(1) as f64)
}

/// The trained tensors and their AdamW moments, on the device: each is read
/// back when a file writes it, so that saving never holds them all on the host.
pub(crate) struct OnDevice<'a> {
    step: &'a TrainingStep,
    executor: &'a Executor,
    /// Each trained tensor's name and shape, in the update plan's order.
    pub tensors: Vec<(String, Vec<usize>)>,
}

impl<'a> OnDevice<'a> {
    pub fn new(
        step: &'a TrainingStep,
        executor: &'a Executor,
        shapes: &BTreeMap<String, Vec<usize>>,
    ) -> Self {
        let tensors = step
            .update_plan()
            .params
            .iter()
            .map(|p| {
                let shape = shapes.get(&p.name).cloned().unwrap_or_else(|| vec![p.elems as usize]);
                (p.name.clone(), shape)
            })
            .collect();
        OnDevice { step, executor, tensors }
    }

    /// The values of `tensors[i]`.
    pub fn read(&self, i: usize) -> std::io::Result<Cow<'static, [f32]>> {
        self.fetch(&self.step.update_plan().params[i].name)
    }

    /// Moment `j` (0: `exp_avg`, 1: `exp_avg_sq`) of `tensors[i]`.
    pub fn moment(&self, i: usize, j: usize) -> std::io::Result<Cow<'static, [f32]>> {
        self.fetch(&self.step.update_plan().params[i].moments[j])
    }

    fn fetch(&self, buffer: &str) -> std::io::Result<Cow<'static, [f32]>> {
        self.step.read(self.executor, buffer).map(Cow::Owned).map_err(std::io::Error::other)
    }
}
