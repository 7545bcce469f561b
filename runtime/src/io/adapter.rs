//! PEFT LoRA adapters: `adapter_config.json` + `adapter_model.safetensors`.
//!
//! PEFT saves `base_model.model.<module>.lora_A.weight` (`[r, in]`) and
//! `lora_B.weight` (`[out, r]`) for each adapted module, and `r`,
//! `lora_alpha` and `target_modules` in the config. weft names the factors
//! without the `base_model.model.` prefix, so they sit beside the weights they
//! adapt (`model.layers.0.self_attn.q_proj.lora_A.weight`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use weft_ir::model::{LORA_MODULES, LlamaConfig, LoraConfig};

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
}

/// Reads the PEFT adapter in `dir` for a model of `config`, checking that every
/// adapted projection of every layer has both factors at the right shapes.
pub fn load_adapter(dir: &Path, config: &LlamaConfig) -> Result<Adapter, AdapterError> {
    let config_path = dir.join(ADAPTER_CONFIG);
    let lora = read_config(&config_path)?;
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
    Ok(Adapter { lora, tensors })
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

fn read_config(path: &Path) -> Result<LoraConfig, AdapterError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| AdapterError::Read { path: path.into(), source })?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| AdapterError::Json {
        path: path.into(),
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })?;
    let bad = |message: String| AdapterError::Config { path: path.into(), message };
    let rank = json
        .get("r")
        .and_then(serde_json::Value::as_u64)
        .filter(|&r| r > 0)
        .ok_or_else(|| bad("`r` must be a positive integer".into()))?;
    let alpha = json
        .get("lora_alpha")
        .and_then(serde_json::Value::as_f64)
        .filter(|a| a.is_finite())
        .ok_or_else(|| bad("`lora_alpha` must be a number".into()))?;
    let modules = json
        .get("target_modules")
        .and_then(serde_json::Value::as_array)
        .ok_or_else(|| bad("`target_modules` must be a list of module names".into()))?;
    let mut target_modules = Vec::with_capacity(modules.len());
    for m in modules {
        let Some(name) = m.as_str().filter(|n| LORA_MODULES.contains(n)) else {
            return Err(bad(format!(
                "target module {m} is not supported; weft adapts {}",
                LORA_MODULES.join(", ")
            )));
        };
        target_modules.push(name.to_string());
    }
    let rank = usize::try_from(rank).map_err(|_| bad(format!("`r` = {rank} is too large")))?;
    Ok(LoraConfig { rank, alpha, target_modules })
}
