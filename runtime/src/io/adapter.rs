//! PEFT LoRA adapters: `adapter_config.json` + `adapter_model.safetensors`.
//!
//! PEFT saves `base_model.model.<module>.lora_A.weight` (`[r, in]`) and
//! `lora_B.weight` (`[out, r]`) for each adapted module, the weights of the
//! modules in `modules_to_save` under their own names
//! (`base_model.model.model.norm.weight`, see `saved_modules.rs`), and `r`,
//! `lora_alpha`, `target_modules` (and `use_rslora`) in the config, whose
//! other keys `adapter_config.rs` accepts or refuses. weft names the factors
//! without the `base_model.model.` prefix, so they sit beside the weights they
//! adapt (`model.layers.0.self_attn.q_proj.lora_A.weight`), and the saved
//! modules' weights by the base tensors they replace (`model.norm.weight`).
//!
//! Every tensor of the file must be one of these: a factor of a module
//! `target_modules` does not list, a weight of a module `modules_to_save` does
//! not list, or anything else is an error (PEFT would load the rest and warn,
//! which hides an adapter made for another model or configuration).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use weft_ir::model::{LlamaConfig, LoraConfig};

use super::adapter_config::{AdapterConfig, ConfigProblem, read_lora_config};
use super::saved_modules::{EMBED, LM_HEAD, SavedModules, SavedWeight};
use super::tensors::{HostTensor, TensorFile, TensorFileError};

pub const ADAPTER_CONFIG: &str = "adapter_config.json";
pub const ADAPTER_WEIGHTS: &str = "adapter_model.safetensors";
/// The prefix PEFT's `get_peft_model` puts before the base model's names.
const PEFT_PREFIX: &str = "base_model.model.";

#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: invalid JSON: {message}")]
    Json { path: PathBuf, line: usize, column: usize, message: String },
    #[error("{path}: {message}")]
    Config { path: PathBuf, message: String },
    /// A key whose value changes the adapter's math in a way weft does not implement.
    #[error("{path}: `{key}: {value}` is not supported ({why})")]
    Unsupported { path: PathBuf, key: &'static str, value: String, why: String },
    #[error("adapter tensor `{name}` (expected shape {expected:?}) is missing from {path}")]
    Missing { name: String, path: PathBuf, expected: Vec<usize> },
    #[error("adapter tensor `{name}` in {path} has shape {found:?}; expected {expected:?}")]
    Shape { name: String, path: PathBuf, expected: Vec<usize>, found: Vec<usize> },
    #[error(
        "adapter tensor `{name}` in {path} has rank {found} (shape {shape:?}), but {config} says `r: {rank}`"
    )]
    Rank { name: String, path: PathBuf, found: usize, shape: Vec<usize>, config: PathBuf, rank: usize },
    /// A tensor the configuration does not account for.
    #[error("adapter tensor `{name}` in {path} {why}")]
    Unexpected { name: String, path: PathBuf, why: String },
    #[error(
        "{path} holds both `model.embed_tokens.weight` and `lm_head.weight` (after PEFT's prefix), which \
         `ensure_weight_tying` ties into one tensor, but they differ"
    )]
    TiedDiffer { path: PathBuf },
    #[error(transparent)]
    File(#[from] TensorFileError),
}

/// A LoRA adapter: its configuration, its factors under weft's names, and
/// the base tensors it replaces.
#[derive(Clone, Debug)]
pub struct Adapter {
    pub lora: LoraConfig,
    /// `lora_A`/`lora_B` of every adapted projection of every layer.
    pub tensors: BTreeMap<String, HostTensor>,
    /// Whole tensors of the modules in `modules_to_save`, under the Hugging
    /// Face names of the base tensors they replace (`model.norm.weight`).
    /// Apply them with [`super::apply_saved_modules`], which knows about tied
    /// embeddings.
    pub replacements: BTreeMap<String, HostTensor>,
    pub modules_to_save: Vec<String>,
    pub ensure_weight_tying: bool,
    /// Keys of `adapter_config.json` weft does not know, and so ignored.
    pub unknown_keys: Vec<String>,
}

/// Reads the PEFT adapter in `dir` for a model of `config`, checking that every
/// adapted projection of every layer has both factors at the right shapes and
/// rank, that every replaced module's tensor has the base tensor's shape, and
/// that the file holds nothing else.
pub fn load_adapter(dir: &Path, config: &LlamaConfig) -> Result<Adapter, AdapterError> {
    let config_path = dir.join(ADAPTER_CONFIG);
    let AdapterConfig { lora, modules_to_save, ensure_weight_tying, unknown_keys } =
        read_adapter_config(dir)?;
    let weights_path = dir.join(ADAPTER_WEIGHTS);
    let file = TensorFile::load(&weights_path)?;
    let factors = expected_factors(config, &lora);
    let saved =
        SavedModules::new(config, &modules_to_save, config.tie_word_embeddings && ensure_weight_tying);
    let unexpected = |name: &str, why: String| AdapterError::Unexpected {
        name: name.into(),
        path: weights_path.clone(),
        why,
    };
    let mut tensors = BTreeMap::new();
    let mut replacements = BTreeMap::new();
    for stored in file.names() {
        let Some(name) = stored.strip_prefix(PEFT_PREFIX) else {
            return Err(unexpected(&stored, format!("does not start with PEFT's prefix `{PEFT_PREFIX}`")));
        };
        if let Some(module) =
            name.strip_suffix(".lora_A.weight").or_else(|| name.strip_suffix(".lora_B.weight"))
        {
            if !factors.contains_key(name) {
                return Err(unexpected(&stored, unlisted_factor(module, config, &config_path)));
            }
            continue;
        }
        match saved.classify(name) {
            SavedWeight::Listed(weight) => {
                let tensor = file.float_as_f32(&stored)?;
                if tensor.shape != weight.shape {
                    return Err(AdapterError::Shape {
                        name: stored,
                        path: weights_path,
                        expected: weight.shape,
                        found: tensor.shape,
                    });
                }
                replacements.insert(weight.name, tensor);
            }
            SavedWeight::NotListed { module } => {
                let why = format!(
                    "replaces the module `{module}`, which `modules_to_save` in {} does not list",
                    config_path.display()
                );
                return Err(unexpected(&stored, why));
            }
            SavedWeight::Unknown => {
                let why = "is neither a LoRA factor nor a weight of a module weft replaces \
                           (embed_tokens, the norms, lm_head)";
                return Err(unexpected(&stored, why.into()));
            }
        }
    }
    if let (Some(embed), Some(head)) = (replacements.get(EMBED), replacements.get(LM_HEAD))
        && config.tie_word_embeddings
        && ensure_weight_tying
        && embed != head
    {
        return Err(AdapterError::TiedDiffer { path: weights_path });
    }
    for (name, shape) in factors {
        let stored = format!("{PEFT_PREFIX}{name}");
        let tensor = match file.float_as_f32(&stored) {
            Err(TensorFileError::Missing { .. }) => {
                return Err(AdapterError::Missing { name: stored, path: weights_path, expected: shape });
            }
            other => other?,
        };
        if tensor.shape != shape {
            // The rank is A's rows and B's columns; a wrong one with the right
            // features is a config/file mismatch, worth naming as such.
            let is_a = name.ends_with(".lora_A.weight");
            let (rank_at, features_at) = if is_a { (0, 1) } else { (1, 0) };
            if tensor.shape.len() == 2 && tensor.shape[features_at] == shape[features_at] {
                return Err(AdapterError::Rank {
                    name: stored,
                    path: weights_path,
                    found: tensor.shape[rank_at],
                    shape: tensor.shape,
                    config: config_path,
                    rank: lora.rank,
                });
            }
            return Err(AdapterError::Shape {
                name: stored,
                path: weights_path,
                expected: shape,
                found: tensor.shape,
            });
        }
        tensors.insert(name, tensor);
    }
    Ok(Adapter { lora, tensors, replacements, modules_to_save, ensure_weight_tying, unknown_keys })
}

/// Every factor `lora` asks for, by weft's name, with its shape.
fn expected_factors(config: &LlamaConfig, lora: &LoraConfig) -> BTreeMap<String, Vec<usize>> {
    let mut factors = BTreeMap::new();
    for layer in 0..config.num_hidden_layers {
        for module in &lora.target_modules {
            let (input, output) = projection_dims(config, module);
            let base = format!("model.layers.{layer}.self_attn.{module}");
            factors.insert(format!("{base}.lora_A.weight"), vec![lora.rank, input]);
            factors.insert(format!("{base}.lora_B.weight"), vec![output, lora.rank]);
        }
    }
    factors
}

/// Why a LoRA factor of `module` is not one the config asks for.
fn unlisted_factor(module: &str, config: &LlamaConfig, config_path: &Path) -> String {
    let layer =
        module.strip_prefix("model.layers.").and_then(|rest| rest.split('.').next()?.parse::<usize>().ok());
    match layer {
        Some(layer) if layer >= config.num_hidden_layers => {
            format!("is for layer {layer}, but the base model has {} layers", config.num_hidden_layers)
        }
        _ => format!(
            "is a LoRA factor of `{module}`, which `target_modules` in {} does not list",
            config_path.display()
        ),
    }
}

/// `(in, out)` features of an attention projection.
fn projection_dims(config: &LlamaConfig, module: &str) -> (usize, usize) {
    let q_width = config.num_attention_heads * config.head_dim;
    let kv_width = config.num_key_value_heads * config.head_dim;
    match module {
        "q_proj" => (config.hidden_size, q_width),
        "k_proj" | "v_proj" => (config.hidden_size, kv_width),
        _ => (q_width, config.hidden_size),
    }
}

/// Reads and checks only `dir`'s `adapter_config.json` (cheap: callers check
/// it before loading anything large); it also lists the keys it ignored.
pub fn read_adapter_config(dir: &Path) -> Result<AdapterConfig, AdapterError> {
    let path = &dir.join(ADAPTER_CONFIG);
    let text =
        std::fs::read_to_string(path).map_err(|source| AdapterError::Read { path: path.into(), source })?;
    parse_adapter_config(&text, path)
}

/// Parses and checks `adapter_config.json` text; `path` names it in errors.
pub fn parse_adapter_config(text: &str, path: &Path) -> Result<AdapterConfig, AdapterError> {
    let json: serde_json::Value = serde_json::from_str(text).map_err(|e| AdapterError::Json {
        path: path.into(),
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })?;
    read_lora_config(&json).map_err(|problem| match problem {
        ConfigProblem::Invalid(message) => AdapterError::Config { path: path.into(), message },
        ConfigProblem::Refused(r) => {
            AdapterError::Unsupported { path: path.into(), key: r.key, value: r.value, why: r.why }
        }
    })
}
