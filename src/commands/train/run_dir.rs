//! The run directory (`--out`): which run it holds, its metrics log and
//! plot, its checkpoints, and the final adapter or model.
//!
//! `run.json` records the settings a run started with. Without `--resume`
//! or `--overwrite`, an `--out` holding one is refused, so no command line
//! can mix two runs' checkpoints or silently restart one.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::json;
use weft_runtime::data::SpecialIds;
use weft_runtime::io::{
    COPIED_FILES, DirWriter, FloatType, RUN_RECORD, RUN_RECORD_FORMAT, RunRecord, merged_config_json,
    torch_metadata, write_dir_atomically, write_safetensors_from,
};
use weft_runtime::train::{
    CheckpointState, PeftAdapter, TrainError, TrainingStep, checkpoint_dirs, prune_checkpoints,
    write_checkpoint, write_moments,
};
use weft_runtime::{Executor, HostValues};

use super::model::BaseModel;
use super::settings::{Settings, TrainMode};
use crate::output::{Input, Output, OutputKind, guard};

const RUN_FILE: &str = "run.json";
const METRICS_FILE: &str = "metrics.jsonl";

pub struct RunDir {
    path: PathBuf,
}

/// The closest ancestor of `path` that exists (`.` standing for a relative
/// path's empty parent). It may be a file, which the guard then names.
fn nearest_existing_ancestor(path: &Path) -> Option<PathBuf> {
    path.ancestors()
        .skip(1)
        .map(|p| if p.as_os_str().is_empty() { Path::new(".") } else { p })
        .find(|p| p.exists())
        .map(Path::to_path_buf)
}

impl RunDir {
    /// Checks `--out` against the inputs and against the run it may hold,
    /// before any work: nothing is created yet.
    pub fn check(settings: &Settings, resume: bool, overwrite: bool) -> anyhow::Result<()> {
        let path = &settings.out;
        crate::output::directory_not_stdout(path, "the run")?;
        let mut inputs = vec![Input { path: &settings.data, what: "training data" }];
        inputs.extend(settings.model.as_deref().map(|path| Input { path, what: "base model" }));
        inputs.extend(settings.init_adapter.as_deref().map(|path| Input { path, what: "initial adapter" }));
        inputs.extend(settings.tokenizer.as_deref().map(|path| Input { path, what: "tokenizer" }));
        if let Some(config) = &settings.config {
            inputs.push(Input { path: config, what: "config file" });
        }
        // No file of the run directory may be an input or inside one ...
        let probe = path.join(RUN_FILE);
        let output = Output { path: &probe, what: "the run", flag: "--out", kind: OutputKind::File };
        if path.exists() {
            guard(output, &inputs)?;
        } else if let Some(parent) = nearest_existing_ancestor(path) {
            // `create` makes the missing directories: the nearest one that exists decides.
            guard(Output { path: &parent.join(RUN_FILE), ..output }, &inputs).map_err(|_| {
                anyhow::anyhow!(
                    "refusing to write the run to {}: it would be inside an input (--out)",
                    path.display()
                )
            })?;
        }
        // ... and no input may lie inside the run directory, which --overwrite clears.
        if let Ok(out) = std::fs::canonicalize(path) {
            for input in &inputs {
                if let Ok(inside) = std::fs::canonicalize(input.path)
                    && inside.starts_with(&out)
                {
                    bail!(
                        "refusing to use {} as --out: the {} {} is inside it",
                        path.display(),
                        input.what,
                        input.path.display()
                    );
                }
            }
        }
        let run_file = path.join(RUN_FILE);
        match (run_file.exists(), resume, overwrite) {
            (true, false, false) => bail!(
                "{} already holds a run ({}); continue it with --resume, or start afresh with --overwrite \
                 (which removes its checkpoints)",
                path.display(),
                run_file.display()
            ),
            (false, true, _) => bail!("--resume: {} holds no run to resume", path.display()),
            _ => Ok(()),
        }
    }

    /// Creates the run directory (clearing another run's checkpoints and
    /// logs under `--overwrite`) and records this run's settings.
    pub fn create(settings: &Settings, overwrite: bool) -> anyhow::Result<RunDir> {
        let path = settings.out.clone();
        std::fs::create_dir_all(&path).with_context(|| format!("cannot create {}", path.display()))?;
        if overwrite {
            for (_, dir) in checkpoint_dirs(&path)? {
                std::fs::remove_dir_all(&dir).with_context(|| format!("cannot remove {}", dir.display()))?;
            }
            for file in [METRICS_FILE, "loss.png"] {
                let _ = std::fs::remove_file(path.join(file));
            }
        }
        let this = serde_json::to_string_pretty(settings)?;
        crate::output::write_atomically(&path.join(RUN_FILE), |w| Ok(w.write_all(this.as_bytes())?))?;
        Ok(RunDir { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn newest_checkpoint(&self) -> anyhow::Result<Option<PathBuf>> {
        Ok(checkpoint_dirs(&self.path)?.pop().map(|(_, dir)| dir))
    }

    /// The file a checkpoint keeps the trained weights in, and the prefix of their keys.
    pub fn weights_file(&self, settings: &Settings) -> (&'static str, &'static str) {
        match settings.mode {
            TrainMode::Full => ("model.safetensors", ""),
            _ => (weft_runtime::io::ADAPTER_WEIGHTS, "base_model.model."),
        }
    }

    /// The metrics log, truncated to the records of steps up to `done`.
    pub fn metrics(&self, done: u64) -> anyhow::Result<Metrics> {
        let path = self.path.join(METRICS_FILE);
        let mut records = Vec::new();
        if let Ok(text) = std::fs::read_to_string(&path) {
            for line in text.lines() {
                let Ok(record) = serde_json::from_str::<serde_json::Value>(line) else { continue };
                if record["step"].as_u64().is_some_and(|s| s <= done) {
                    records.push(record);
                }
            }
        }
        let text: String = records.iter().map(|r| format!("{r}\n")).collect();
        crate::output::write_atomically(&path, |w| Ok(w.write_all(text.as_bytes())?))?;
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        Ok(Metrics { file, path, records })
    }

    /// Writes `checkpoint-{step}` and prunes old ones.
    pub fn checkpoint(
        &self,
        settings: &Settings,
        base: &BaseModel,
        step: &TrainingStep,
        executor: &Executor,
        state: &CheckpointState,
        model_config: Option<&str>,
    ) -> anyhow::Result<PathBuf> {
        let trained = super::OnDevice::new(step, executor, &base.shapes);
        let dir = write_checkpoint(&self.path, state, |w| {
            write_weights(w, settings, base, &trained, model_config)?;
            let lens: Vec<(String, usize)> =
                trained.tensors.iter().map(|(name, shape)| (name.clone(), shape.iter().product())).collect();
            Ok(write_moments(w, &lens, |i, j| trained.moment(i, j))?)
        })
        .with_context(|| {
            format!(
                "writing checkpoint-{} in {} (earlier checkpoints are kept as they were)",
                state.step,
                self.path.display()
            )
        })?;
        prune_checkpoints(&self.path, settings.keep)?;
        Ok(dir)
    }

    /// Writes the final `adapter/` (or `model/` under full fine-tuning).
    pub fn finish(
        &self,
        settings: &Settings,
        base: &BaseModel,
        step: &TrainingStep,
        executor: &Executor,
        model_config: Option<&str>,
    ) -> anyhow::Result<PathBuf> {
        let trained = super::OnDevice::new(step, executor, &base.shapes);
        let name = if settings.mode == TrainMode::Full { "model" } else { "adapter" };
        let dir = self.path.join(name);
        let companions =
            if settings.mode == TrainMode::Full { companion_files(settings) } else { Vec::new() };
        write_dir_atomically(&dir, |w: &mut DirWriter| {
            write_weights(w, settings, base, &trained, model_config)?;
            for (name, bytes) in &companions {
                w.file(name, |f| f.write_all(bytes))?;
            }
            Ok::<(), TrainError>(())
        })
        .with_context(|| format!("writing {}", dir.display()))?;
        Ok(dir)
    }
}

/// Where a tensor of a full model's file comes from.
#[derive(Clone, Copy)]
enum Source<'a> {
    /// `OnDevice::tensors[i]`, trained.
    Device(usize),
    /// The base's value, not trained.
    Host(&'a HostValues),
}

/// Each trained tensor's name and shape, as a file writer takes them.
fn trained_shapes<'a>(trained: &'a super::OnDevice) -> Vec<(&'a str, &'a [usize])> {
    trained.tensors.iter().map(|(name, shape)| (name.as_str(), shape.as_slice())).collect()
}

/// The trained weights' files: a PEFT adapter, or under full fine-tuning a
/// Hugging Face checkpoint (every weight, with the base's frozen ones).
fn write_weights(
    w: &mut DirWriter,
    settings: &Settings,
    base: &BaseModel,
    trained: &super::OnDevice,
    model_config: Option<&str>,
) -> Result<(), TrainError> {
    let base_name =
        settings.model.as_ref().map_or_else(|| "weft-from-scratch".to_string(), |p| p.display().to_string());
    let record = RunRecord {
        format: RUN_RECORD_FORMAT,
        rope_linear_factor: base.rope_factor,
        base_max_position_embeddings: base.config.max_position_embeddings,
        seq_len: settings.seq_len,
        pattern: Some(settings.pattern.clone()),
        mode: settings.mode.as_str().to_string(),
    };
    w.file(RUN_RECORD, |f| f.write_all(record.to_json().as_bytes()))?;
    match (&base.lora, settings.mode) {
        (Some(lora), mode) => {
            let modules_to_save = if mode == TrainMode::LoraPlus {
                vec!["embed_tokens".to_string(), "norm".to_string()]
            } else {
                Vec::new()
            };
            // A tied model's one embedding trains under LoRA+: PEFT must keep the head tied to it.
            let ensure_weight_tying = mode == TrainMode::LoraPlus && base.config.tie_word_embeddings;
            PeftAdapter { lora, modules_to_save, base_model: base_name, ensure_weight_tying }.write(
                w,
                &trained_shapes(trained),
                |i| trained.read(i),
            )?;
        }
        (None, _) => {
            // Every weight: the trained ones from the device, any other as the base has it.
            // A tied model's file has no LM head: it is the embedding.
            let skip = |name: &str| base.config.tie_word_embeddings && name == "lm_head.weight";
            let mut entries: Vec<(&str, &[usize], Source)> = Vec::new();
            for (i, (name, shape)) in trained.tensors.iter().enumerate() {
                if !skip(name) {
                    entries.push((name, shape, Source::Device(i)));
                }
            }
            for (name, data) in &base.weights {
                let trained_too = trained.tensors.iter().any(|(n, _)| n == name);
                if let Some(shape) = base.shapes.get(name).filter(|_| !trained_too && !skip(name)) {
                    entries.push((name, shape, Source::Host(data)));
                }
            }
            let shapes: Vec<(&str, &[usize])> =
                entries.iter().map(|(name, shape, _)| (*name, *shape)).collect();
            w.file("model.safetensors", |f| {
                write_safetensors_from(f, &shapes, &torch_metadata(), |i| match entries[i].2 {
                    Source::Device(j) => trained.read(j),
                    Source::Host(values) => values.float_values().ok_or_else(|| {
                        std::io::Error::other(format!("weight `{}` holds integers", entries[i].0))
                    }),
                })
            })?;
            // Present whenever there is no adapter: `--mode full` makes it at the start.
            if let Some(config) = model_config {
                w.file("config.json", |f| f.write_all(config.as_bytes()))?;
            }
        }
    }
    Ok(())
}

/// The files a fully trained model carries besides its weights and config:
/// those `export` copies from the base ([`COPIED_FILES`]: generation
/// settings, tokenizer files), except that `--tokenizer` replaces the base's
/// tokenizer files, being what the run read its text with. A from-scratch
/// model on the byte-level tokenizer has none. One that cannot be read now
/// (hours after the run checked it) is left out with a warning, never the weights.
fn companion_files(settings: &Settings) -> Vec<(String, Vec<u8>)> {
    let base_dir = settings.model.as_deref();
    let mut files: Vec<(&str, PathBuf)> = Vec::new();
    for name in COPIED_FILES {
        let is_tokenizer = name != "generation_config.json";
        if !(is_tokenizer && settings.tokenizer.is_some()) {
            files.extend(base_dir.map(|dir| (name, dir.join(name))));
        }
    }
    files.extend(settings.tokenizer.clone().map(|path| ("tokenizer.json", path)));
    let mut out = Vec::new();
    for (name, path) in files {
        if !path.is_file() {
            continue;
        }
        match std::fs::read(&path) {
            Ok(bytes) => out.push((name.to_string(), bytes)),
            Err(e) => {
                errln!("warning: {name} is left out of the model: cannot read {} ({e})", path.display())
            }
        }
    }
    out
}

/// The model's EOS and BOS: the base's `config.json` declares them, else the
/// tokenizer the run read its text with (`tokenizer`; none for pre-tokenized data).
fn special_ids(settings: &Settings, tokenizer: SpecialIds) -> SpecialIds {
    let declared =
        settings.model.as_deref().and_then(|dir| SpecialIds::from_model_dir(dir).ok()).unwrap_or_default();
    SpecialIds { eos: declared.eos.or(tokenizer.eos), bos: declared.bos.or(tokenizer.bos) }
}

/// `config.json` of a fully trained model, made once when the run starts:
/// the base's own `config.json` with the run's RoPE factor, as `export`
/// writes a merged one, so that every key weft does not read (an EOS list,
/// `pad_token_id`, …) carries over. BOS and EOS are added where the base
/// declares none. A model trained from scratch gets one from its sizes.
pub fn model_config_json(
    settings: &Settings,
    base: &BaseModel,
    tokenizer: SpecialIds,
) -> anyhow::Result<String> {
    let special = special_ids(settings, tokenizer);
    match settings.model.as_deref() {
        Some(dir) => base_config_json(dir, base, special),
        None => Ok(sized_config_json(base, special)),
    }
}

/// The base's `config.json` text, with missing special ids and the run's factor.
fn base_config_json(dir: &Path, base: &BaseModel, special: SpecialIds) -> anyhow::Result<String> {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut json: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    if let Some(object) = json.as_object_mut() {
        for (key, id) in [("bos_token_id", special.bos), ("eos_token_id", special.eos)] {
            if object.get(key).is_none_or(serde_json::Value::is_null)
                && let Some(id) = id
            {
                object.insert(key.into(), id.into());
            }
        }
    }
    let factor = (base.rope_factor != 1.0).then_some(base.rope_factor);
    // A full fine-tune's model is written in f32, as it was trained.
    Ok(merged_config_json(&json.to_string(), &path, &base.config, factor, FloatType::F32)?)
}

/// A `config.json` from the model's sizes, for a model with no base file.
fn sized_config_json(base: &BaseModel, special: SpecialIds) -> String {
    let c = &base.config;
    let mut rope = json!({"rope_type": "default", "rope_theta": c.rope.theta});
    if base.rope_factor != 1.0 {
        rope = json!({"rope_type": "linear", "factor": base.rope_factor, "rope_theta": c.rope.theta});
    }
    let config = json!({
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": c.hidden_size,
        "intermediate_size": c.intermediate_size,
        "num_hidden_layers": c.num_hidden_layers,
        "num_attention_heads": c.num_attention_heads,
        "num_key_value_heads": c.num_key_value_heads,
        "head_dim": c.head_dim,
        "vocab_size": c.vocab_size,
        "max_position_embeddings": c.max_position_embeddings,
        "rms_norm_eps": c.rms_norm_eps,
        "hidden_act": "silu",
        "tie_word_embeddings": c.tie_word_embeddings,
        "rope_parameters": rope,
        "attention_bias": false,
        "mlp_bias": false,
        "torch_dtype": "float32",
        "bos_token_id": special.bos,
        "eos_token_id": special.eos,
    });
    serde_json::to_string_pretty(&config).unwrap_or_default()
}

/// `metrics.jsonl`: one JSON object per update and per evaluation, flushed as written.
pub struct Metrics {
    file: File,
    path: PathBuf,
    records: Vec<serde_json::Value>,
}

impl Metrics {
    fn append(&mut self, record: serde_json::Value) -> anyhow::Result<()> {
        writeln!(self.file, "{record}").with_context(|| format!("cannot write {}", self.path.display()))?;
        self.records.push(record);
        Ok(())
    }

    pub fn train(
        &mut self,
        step: u64,
        loss: f64,
        lr: f64,
        grad_norm: f64,
        tokens: u64,
        elapsed: Duration,
    ) -> anyhow::Result<()> {
        let seconds = elapsed.as_secs_f64();
        self.append(json!({"step": step, "loss": loss, "lr": lr, "grad_norm": grad_norm, "tokens": tokens, "seconds": seconds}))
    }

    pub fn eval(&mut self, step: u64, loss: f64) -> anyhow::Result<()> {
        self.append(json!({"step": step, "eval_loss": loss, "eval_perplexity": loss.exp()}))
    }

    fn series(&self, key: &str) -> Vec<(f64, f64)> {
        self.records.iter().filter_map(|r| Some((r["step"].as_f64()?, r.get(key)?.as_f64()?))).collect()
    }

    /// Redraws `loss.png`: train and eval loss against the step.
    pub fn plot(&self, path: &Path) -> anyhow::Result<()> {
        use crate::render::plot::{Series, write};
        let (train, eval) = (self.series("loss"), self.series("eval_loss"));
        let series = [Series { name: "train", points: &train }, Series { name: "eval", points: &eval }];
        write(path, "loss", "step", &series)
    }

    /// One line: the first and last train loss, the last eval loss.
    pub fn summary(&self) -> String {
        let train = self.series("loss");
        let eval = self.series("eval_loss");
        let mut text = match (train.first(), train.last()) {
            (Some(a), Some(b)) => {
                format!("train loss {:.4} (step {}) -> {:.4} (step {})", a.1, a.0, b.1, b.0)
            }
            _ => "no training steps".to_string(),
        };
        if let Some((step, loss)) = eval.last() {
            text.push_str(&format!("; eval loss {loss:.4} (perplexity {:.2}) at step {step}", loss.exp()));
        }
        text
    }
}
