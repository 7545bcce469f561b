//! `weft train`'s settings: flags, a TOML config file with the same keys
//! (kebab-case, as the flags are spelled), and defaults, in that order of
//! precedence.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use serde::{Deserialize, Serialize};
use weft_ir::model::LoraConfig;
use weft_runtime::train::AdamW;

use crate::commands::weight_dtype::WeightDtype;

/// What trains.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
pub enum TrainMode {
    /// LongLoRA's LoRA+: LoRA factors, the embedding and every RMSNorm weight.
    #[value(name = "lora+")]
    #[serde(rename = "lora+")]
    LoraPlus,
    /// The LoRA factors only.
    #[value(name = "lora")]
    #[serde(rename = "lora")]
    Lora,
    /// Every parameter of the model.
    #[value(name = "full")]
    #[serde(rename = "full")]
    Full,
}

impl TrainMode {
    pub fn as_str(self) -> &'static str {
        match self {
            TrainMode::LoraPlus => "lora+",
            TrainMode::Lora => "lora",
            TrainMode::Full => "full",
        }
    }
}

/// A model trained from scratch: the `[model]` table of a config file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSizes {
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: Option<usize>,
    pub vocab_size: usize,
    pub max_position_embeddings: usize,
    #[serde(default = "default_init_range")]
    pub initializer_range: f64,
    #[serde(default = "default_theta")]
    pub rope_theta: f64,
    #[serde(default)]
    pub tie_word_embeddings: bool,
}

fn default_init_range() -> f64 {
    0.02
}
fn default_theta() -> f64 {
    10000.0
}

/// Every flag of `weft train`. Each is optional here so that a config file
/// can supply it; [`Settings::resolve`] applies the defaults.
#[derive(Args, Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct TrainArgs {
    /// A TOML file of settings: any flag below as `key = value` (e.g. `seq-len = 1024`), and a
    /// `[model]` table of sizes to train from scratch. Flags win over the file.
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// The base model: a Hugging Face LLaMA checkpoint directory.
    #[arg(long, value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// Training data: a .safetensors file with `input_ids` [S, T] (int32/int64, T = --seq-len), a
    /// text file, a JSONL file (`text` fields), or a directory of text files (see --data-glob).
    /// Text is tokenized, documents joined with EOS and packed into sequences of --seq-len.
    #[arg(long, value_name = "PATH")]
    pub data: Option<PathBuf>,
    /// Which files of a --data directory to read, e.g. `*.rs` (default: every file).
    #[arg(long, value_name = "GLOB")]
    pub data_glob: Option<String>,
    /// tokenizer.json for text data (default: the model directory's; else, for a model whose
    /// vocabulary holds 258 ids, the byte-level tokenizer, warned when the vocabulary is larger).
    #[arg(long, value_name = "FILE")]
    pub tokenizer: Option<PathBuf>,
    /// The run directory: metrics.jsonl, loss.png, checkpoints, and the adapter (or model).
    #[arg(long, short, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Tokens per sequence T. Above the base model's context C (max_position_embeddings × its
    /// linear RoPE factor), linear position interpolation multiplies the factor by ceil(T / C).
    #[arg(long, value_name = "T", value_parser = crate::args::seq_len)]
    pub seq_len: Option<usize>,
    /// The attention pattern of every layer (or the spec's layer schedule): a spec file, or
    /// `causal`, or `s2attn` (LongLoRA's S2-Attn roll form, groups of T/4; the default).
    #[arg(long, value_name = "SPEC")]
    pub pattern: Option<String>,
    /// What trains: lora+ (LoRA, embedding and norms; default), lora, or full.
    #[arg(long, value_enum)]
    pub mode: Option<TrainMode>,
    /// LoRA rank (default 8).
    #[arg(long, value_name = "R", value_parser = crate::args::lora_rank)]
    pub lora_r: Option<usize>,
    /// LoRA alpha (default 16).
    #[arg(long, value_name = "ALPHA")]
    pub lora_alpha: Option<f64>,
    /// Projections LoRA adapts, comma-separated (default q_proj,k_proj,v_proj,o_proj).
    #[arg(long, value_delimiter = ',', value_name = "MODULES")]
    pub lora_targets: Option<Vec<String>>,
    /// Start from this PEFT adapter (its factors and modules_to_save tensors) instead of
    /// PEFT's initialisation (A kaiming-uniform, B = 0).
    #[arg(long, value_name = "DIR")]
    pub init_adapter: Option<PathBuf>,
    /// Peak learning rate (default 2e-5).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Updates of linear warm-up from 0 (transformers' constant_with_warmup; default 20).
    #[arg(long, value_name = "N")]
    pub warmup_steps: Option<u64>,
    #[arg(long, value_name = "B1")]
    pub adam_beta1: Option<f64>,
    /// Default 0.95, as LongLoRA.
    #[arg(long, value_name = "B2")]
    pub adam_beta2: Option<f64>,
    #[arg(long, value_name = "EPS")]
    pub adam_eps: Option<f64>,
    /// Decoupled weight decay (default 0).
    #[arg(long, value_name = "WD")]
    pub weight_decay: Option<f64>,
    /// Clip the global gradient norm to this (default 1; 0 disables).
    #[arg(long, value_name = "NORM")]
    pub max_grad_norm: Option<f64>,
    /// Sequences per micro-batch (default 1).
    #[arg(long, value_name = "B", value_parser = crate::args::batch)]
    pub batch_size: Option<usize>,
    /// Micro-batches per optimizer update (default 1).
    #[arg(long, value_name = "A", value_parser = crate::args::batch)]
    pub grad_accum: Option<usize>,
    /// Optimizer updates (default 100).
    #[arg(long, value_name = "N")]
    pub steps: Option<u64>,
    /// Seed of the initialisation and the data order (default 0).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Take sequences in file order every epoch instead of shuffling them with the seed.
    #[arg(long)]
    #[serde(default)]
    pub no_shuffle: bool,
    /// Fraction of the documents (or rows) held out for evaluation, drawn with the seed
    /// (default 0.05; 0 for none).
    #[arg(long, value_name = "F")]
    pub heldout: Option<f64>,
    /// Mix passkey-retrieval documents into the training sequences, this fraction of them
    /// (default 0). Each fills one sequence: LongLoRA's passkey prompt with its answer, the key
    /// placed at random in the filler, drawn with the seed from a stream `weft eval --passkey`
    /// never uses. Needs a tokenizer (text data, or --tokenizer)
    #[arg(long, value_name = "F")]
    pub passkey_fraction: Option<f64>,
    /// Recompute each layer's activations in the backward pass instead of keeping them from
    /// the forward pass (transformers' gradient_checkpointing): far less memory at long
    /// context, for about a third more work per step. The results do not change.
    #[arg(long)]
    #[serde(default)]
    pub gradient_checkpointing: bool,
    /// How the frozen weights are stored on the device, and the base's weights on the host while
    /// they load (default auto: in 16 bits where the checkpoint's values are exactly bf16 or f16,
    /// which halves their memory and changes no result).
    #[arg(long, value_name = "DTYPE")]
    pub weight_dtype: Option<WeightDtype>,
    /// Write a checkpoint every K updates (default 50), and always at the end.
    #[arg(long, value_name = "K")]
    pub save_every: Option<u64>,
    /// Keep the newest M checkpoints (default 2).
    #[arg(long, value_name = "M")]
    pub keep: Option<usize>,
    /// Continue from the newest complete checkpoint in --out.
    #[arg(long)]
    #[serde(skip)]
    pub resume: bool,
    /// Start afresh in an --out that holds another run (its checkpoints are removed).
    #[arg(long, conflicts_with = "resume")]
    #[serde(skip)]
    pub overwrite: bool,
    /// `[model]` in a config file only.
    #[arg(skip)]
    #[serde(skip)]
    pub model_sizes: Option<ModelSizes>,
}

/// Everything a run is, resolved.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// The config file the settings came from, if any.
    pub config: Option<PathBuf>,
    pub model: Option<PathBuf>,
    pub model_sizes: Option<ModelSizes>,
    pub data: PathBuf,
    pub data_glob: Option<String>,
    pub tokenizer: Option<PathBuf>,
    pub out: PathBuf,
    pub seq_len: usize,
    pub pattern: String,
    pub mode: TrainMode,
    pub lora_r: usize,
    pub lora_alpha: f64,
    pub lora_targets: Vec<String>,
    pub init_adapter: Option<PathBuf>,
    pub optimizer: AdamW,
    pub batch_size: usize,
    pub grad_accum: usize,
    pub steps: u64,
    pub seed: u64,
    pub shuffle: bool,
    pub heldout: f64,
    /// Not written when 0, so runs from before the setting existed resume.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub passkey_fraction: f64,
    /// Not written when off, so runs from before the setting existed resume.
    #[serde(default, skip_serializing_if = "is_false")]
    pub gradient_checkpointing: bool,
    /// Not written when auto, so runs from before the setting existed resume.
    #[serde(default, skip_serializing_if = "is_auto")]
    pub weight_dtype: WeightDtype,
    pub save_every: u64,
    pub keep: usize,
}

fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

fn is_false(x: &bool) -> bool {
    !*x
}

fn is_auto(x: &WeightDtype) -> bool {
    *x == WeightDtype::Auto
}

impl Settings {
    /// Flags over the config file over the defaults.
    pub fn resolve(flags: &TrainArgs) -> anyhow::Result<Settings> {
        let file = match &flags.config {
            Some(path) => read_config(path)?,
            None => TrainArgs::default(),
        };
        macro_rules! pick {
            ($field:ident) => {
                flags.$field.clone().or(file.$field.clone())
            };
        }
        let defaults = AdamW::default();
        let optimizer = AdamW {
            lr: pick!(lr).unwrap_or(defaults.lr),
            beta1: pick!(adam_beta1).unwrap_or(defaults.beta1),
            beta2: pick!(adam_beta2).unwrap_or(defaults.beta2),
            eps: pick!(adam_eps).unwrap_or(defaults.eps),
            weight_decay: pick!(weight_decay).unwrap_or(defaults.weight_decay),
            warmup_steps: pick!(warmup_steps).unwrap_or(defaults.warmup_steps),
            max_grad_norm: pick!(max_grad_norm).unwrap_or(defaults.max_grad_norm),
        };
        optimizer.validate().map_err(anyhow::Error::msg)?;
        let model = pick!(model);
        let model_sizes = flags.model_sizes.clone().or(file.model_sizes.clone());
        if model.is_some() && model_sizes.is_some() {
            bail!(
                "give either --model (a checkpoint to fine-tune) or a [model] table (to train from scratch), not both"
            );
        }
        if model.is_none() && model_sizes.is_none() {
            bail!(
                "no base model: give --model DIR (a Hugging Face LLaMA checkpoint) or a [model] table in --config"
            );
        }
        let Some(data) = pick!(data) else { bail!("no training data: give --data PATH") };
        let Some(out) = pick!(out) else { bail!("no run directory: give --out DIR") };
        let Some(seq_len) = pick!(seq_len) else { bail!("no sequence length: give --seq-len T") };
        if seq_len < 2 {
            bail!(
                "--seq-len {seq_len}: each sequence needs at least 2 tokens (a token and the one it predicts)"
            );
        }
        let heldout = pick!(heldout).unwrap_or(0.05);
        if !(0.0..1.0).contains(&heldout) {
            bail!("--heldout {heldout} must be in [0, 1)");
        }
        let passkey_fraction = pick!(passkey_fraction).unwrap_or(0.0);
        if !(0.0..1.0).contains(&passkey_fraction) {
            bail!("--passkey-fraction {passkey_fraction} must be in [0, 1)");
        }
        let steps = pick!(steps).unwrap_or(100);
        if steps == 0 {
            bail!("--steps 0: nothing to train");
        }
        let mode = pick!(mode).unwrap_or(TrainMode::LoraPlus);
        let init_adapter = pick!(init_adapter);
        if mode == TrainMode::Full && init_adapter.is_some() {
            bail!("--init-adapter is for LoRA training (--mode lora or lora+), not --mode full");
        }
        let save_every = pick!(save_every).unwrap_or(50);
        if save_every == 0 {
            bail!("--save-every 0: give a number of updates of at least 1");
        }
        let lora = LoraConfig::longlora();
        Ok(Settings {
            config: flags.config.clone(),
            model,
            model_sizes,
            data,
            data_glob: pick!(data_glob),
            tokenizer: pick!(tokenizer),
            out,
            seq_len,
            pattern: pick!(pattern).unwrap_or_else(|| "s2attn".to_string()),
            mode,
            lora_r: pick!(lora_r).unwrap_or(lora.rank),
            lora_alpha: pick!(lora_alpha).unwrap_or(lora.alpha),
            lora_targets: pick!(lora_targets).unwrap_or(lora.target_modules),
            init_adapter,
            optimizer,
            batch_size: pick!(batch_size).unwrap_or(1),
            grad_accum: pick!(grad_accum).unwrap_or(1),
            steps,
            seed: pick!(seed).unwrap_or(0),
            shuffle: !(flags.no_shuffle || file.no_shuffle),
            heldout,
            passkey_fraction,
            gradient_checkpointing: flags.gradient_checkpointing || file.gradient_checkpointing,
            weight_dtype: pick!(weight_dtype).unwrap_or_default(),
            save_every,
            keep: pick!(keep).unwrap_or(2).max(1),
        })
    }

    /// What must not change for a run to resume: everything but the
    /// number of steps, the checkpoint cadence, the output directory,
    /// gradient checkpointing and the weights' storage (which change memory,
    /// not results).
    pub fn fingerprint(&self) -> String {
        let same = Settings {
            steps: 0,
            save_every: 0,
            keep: 0,
            out: PathBuf::new(),
            gradient_checkpointing: false,
            weight_dtype: WeightDtype::Auto,
            model: self.model.as_deref().map(canonical),
            data: canonical(&self.data),
            tokenizer: self.tokenizer.as_deref().map(canonical),
            init_adapter: self.init_adapter.as_deref().map(canonical),
            ..self.clone()
        };
        serde_json::to_string(&same).unwrap_or_default()
    }
}

/// The settings that name input files, compared by canonical path on resume.
const INPUT_PATHS: [&str; 4] = ["model", "data", "tokenizer", "init_adapter"];

/// `path` canonical: an input named another way (relative, through `..`, or a
/// symlink) is the same input. A path that does not resolve stays as given.
fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The settings a checkpoint's `fingerprint` records and this run's differ
/// in, as `key: then → now`, one per setting. The config file's path is left
/// out: what it set is compared key by key, so a run resumes from a copy of
/// its config elsewhere (a fresh clone of an experiment).
pub fn resume_conflicts(saved: &str, now: &str) -> Vec<String> {
    let parse = |text: &str| serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text).ok();
    let (Some(mut saved), Some(mut now)) = (parse(saved), parse(now)) else {
        // Not JSON: a fingerprint from another version of weft.
        return if saved == now { Vec::new() } else { vec!["the recorded settings".to_string()] };
    };
    // Checkpoints written before fingerprints held canonical paths recorded the
    // paths as given: compare those canonical too (from the current directory).
    for map in [&mut saved, &mut now] {
        for key in INPUT_PATHS {
            if let Some(serde_json::Value::String(path)) = map.get_mut(key) {
                *path = canonical(Path::new(path.as_str())).display().to_string();
            }
        }
    }
    let mut out = Vec::new();
    differences("", &saved, &now, &mut out);
    out.retain(|d| !d.starts_with("config:"));
    out
}

/// Pushes `prefix.key: then → now` for each key whose value differs, looking
/// into objects (`optimizer.lr`) so that the message names the setting.
fn differences(
    prefix: &str,
    saved: &serde_json::Map<String, serde_json::Value>,
    now: &serde_json::Map<String, serde_json::Value>,
    out: &mut Vec<String>,
) {
    let mut keys: Vec<&String> = saved.keys().chain(now.keys()).collect();
    keys.sort();
    keys.dedup();
    let shown = |v: Option<&serde_json::Value>| v.map_or("(unset)".to_string(), ToString::to_string);
    for key in keys {
        let (a, b) = (saved.get(key), now.get(key));
        match (a, b) {
            _ if a == b => {}
            (Some(serde_json::Value::Object(a)), Some(serde_json::Value::Object(b))) => {
                differences(&format!("{prefix}{key}."), a, b, out)
            }
            _ => out.push(format!("{prefix}{key}: {} → {}", shown(a), shown(b))),
        }
    }
}

fn read_config(path: &Path) -> anyhow::Result<TrainArgs> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let source = weft_ir::SourceFile::new(path.display().to_string(), text.as_str());
    let located = |e: toml::de::Error| match e.span() {
        Some(span) => {
            let at = source.line_col(span.start);
            anyhow::anyhow!("{}:{}:{}: {}", path.display(), at.line, at.column, e.message())
        }
        None => anyhow::anyhow!("{}: {}", path.display(), e.message()),
    };
    // Parsed once with spans, so that an error inside a value (a type, an
    // unknown key) names its line as a syntax error does.
    let mut root = toml::de::DeTable::parse(&text).map_err(located)?;
    // `model` is a path (like --model) or a `[model]` table of sizes.
    let sizes = match root.get_mut().remove_entry("model") {
        Some((key, value)) => {
            let span = value.span();
            match value.into_inner() {
                toml::de::DeValue::Table(sizes) => {
                    let sizes = toml::de::Deserializer::from(toml::Spanned::new(span, sizes));
                    Some(ModelSizes::deserialize(sizes).map_err(located)?)
                }
                other => {
                    root.get_mut().insert(key, toml::Spanned::new(span, other));
                    None
                }
            }
        }
        None => None,
    };
    let args = TrainArgs::deserialize(toml::de::Deserializer::from(root)).map_err(located)?;
    Ok(TrainArgs { model_sizes: sizes, ..args })
}

#[cfg(test)]
mod tests {
    use super::{Settings, TrainArgs, resume_conflicts};

    #[test]
    fn an_input_named_another_way_has_the_same_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("corpus")).unwrap();
        std::fs::write(dir.path().join("corpus/train.jsonl"), "{}").unwrap();
        let settings = |data: std::path::PathBuf| {
            let model = Some(std::path::PathBuf::from("base"));
            let out = Some(std::path::PathBuf::from("run"));
            let args = TrainArgs { model, out, data: Some(data), seq_len: Some(32), ..TrainArgs::default() };
            Settings::resolve(&args).unwrap()
        };
        let direct = settings(dir.path().join("corpus/train.jsonl"));
        let roundabout = settings(dir.path().join("corpus/../corpus/./train.jsonl"));
        assert_ne!(direct.data, roundabout.data);
        assert_eq!(resume_conflicts(&direct.fingerprint(), &roundabout.fingerprint()), Vec::<String>::new());
        // A checkpoint from before fingerprints held canonical paths: the path as given.
        let up: std::path::PathBuf =
            std::env::current_dir().unwrap().components().skip(1).map(|_| "..").collect();
        let relative = up.join(dir.path().strip_prefix("/").unwrap()).join("corpus/train.jsonl");
        let mut old: serde_json::Value = serde_json::from_str(&direct.fingerprint()).unwrap();
        old["data"] = serde_json::json!(relative.display().to_string());
        assert_eq!(resume_conflicts(&old.to_string(), &direct.fingerprint()), Vec::<String>::new());
        let other = settings(dir.path().join("other.jsonl"));
        let conflicts = resume_conflicts(&direct.fingerprint(), &other.fingerprint());
        assert_eq!(conflicts.len(), 1, "{conflicts:?}");
        assert!(conflicts[0].starts_with("data: "), "{conflicts:?}");
    }

    #[test]
    fn resume_conflicts_name_each_changed_setting_and_ignore_the_config_path() {
        let saved = r#"{"config": "/a/pretrain.toml", "seed": 0, "optimizer": {"lr": 0.002, "beta2": 0.95}}"#;
        let moved = r#"{"config": "/b/pretrain.toml", "seed": 0, "optimizer": {"lr": 0.002, "beta2": 0.95}}"#;
        assert_eq!(resume_conflicts(saved, moved), Vec::<String>::new());
        let changed = r#"{"config": null, "seed": 1, "optimizer": {"lr": 0.001, "beta2": 0.95}, "x": true}"#;
        assert_eq!(
            resume_conflicts(saved, changed),
            ["optimizer.lr: 0.002 → 0.001", "seed: 0 → 1", "x: (unset) → true"]
        );
        assert_eq!(resume_conflicts("not json", "not json"), Vec::<String>::new());
        assert_eq!(resume_conflicts("not json", "{}"), ["the recorded settings"]);
    }
}
