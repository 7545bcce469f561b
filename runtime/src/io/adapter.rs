//! PEFT LoRA adapters: `adapter_config.json` + `adapter_model.safetensors`.
//!
//! PEFT saves `base_model.model.<module>.lora_A.weight` (`[r, in]`) and
//! `lora_B.weight` (`[out, r]`) for each adapted module, and `r`,
//! `lora_alpha`, `target_modules` (and `use_rslora`) in the config, whose
//! other keys `adapter_config.rs` accepts or refuses. weft names the factors
//! without the `base_model.model.` prefix, so they sit beside the weights they
//! adapt (`model.layers.0.self_attn.q_proj.lora_A.weight`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use weft_ir::model::{LlamaConfig, LoraConfig};

use super::adapter_config::{ConfigProblem, read_lora_config};
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
    #[error(transparent)]
    File(#[from] TensorFileError),
}

/// A LoRA adapter: its configuration and its factors under weft's names.
#[derive(Clone, Debug)]
pub struct Adapter {
    pub lora: LoraConfig,
    pub tensors: BTreeMap<String, HostTensor>,
    /// Keys of `adapter_config.json` weft does not know, and so ignored.
    pub unknown_keys: Vec<String>,
}

/// Reads the PEFT adapter in `dir` for a model of `config`, checking that every
/// adapted projection of every layer has both factors at the right shapes.
pub fn load_adapter(dir: &Path, config: &LlamaConfig) -> Result<Adapter, AdapterError> {
    let (lora, unknown_keys) = read_adapter_config(dir)?;
    let weights_path = dir.join(ADAPTER_WEIGHTS);
    let file = TensorFile::load(&weights_path)?;
    let mut tensors = BTreeMap::new();
    for layer in 0..config.num_hidden_layers {
        for module in &lora.target_modules {
            let (input, output) = projection_dims(config, module);
            let base = format!("model.layers.{layer}.self_attn.{module}");
            for (factor, shape) in [("lora_A", vec![lora.rank, input]), ("lora_B", vec![output, lora.rank])] {
                let name = format!("{base}.{factor}.weight");
                let stored = format!("{PEFT_PREFIX}{name}");
                let tensor = match file.float_as_f32(&stored) {
                    Err(TensorFileError::Missing { .. }) => {
                        return Err(AdapterError::Missing {
                            name: stored,
                            path: weights_path,
                            expected: shape,
                        });
                    }
                    other => other?,
                };
                if tensor.shape != shape {
                    return Err(AdapterError::Shape {
                        name: stored,
                        path: weights_path,
                        expected: shape,
                        found: tensor.shape,
                    });
                }
                tensors.insert(name, tensor);
            }
        }
    }
    Ok(Adapter { lora, tensors, unknown_keys })
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
/// it before loading anything large); also returns the keys it ignored.
pub fn read_adapter_config(dir: &Path) -> Result<(LoraConfig, Vec<String>), AdapterError> {
    let path = &dir.join(ADAPTER_CONFIG);
    let text =
        std::fs::read_to_string(path).map_err(|source| AdapterError::Read { path: path.into(), source })?;
    parse_adapter_config(&text, path)
}

/// Parses and checks `adapter_config.json` text; `path` names it in errors.
pub fn parse_adapter_config(text: &str, path: &Path) -> Result<(LoraConfig, Vec<String>), AdapterError> {
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
