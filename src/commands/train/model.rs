//! The model a run trains: a Hugging Face checkpoint or sizes to train from
//! scratch, its context extended by linear position interpolation, and the
//! starting values of what trains.

use std::collections::{BTreeMap, HashMap};

use anyhow::{Context, bail};
use weft_ir::model::{LlamaConfig, LoraConfig, RopeScaling};
use weft_runtime::HostValues;
use weft_runtime::io::{HostTensor, check_layer_count, load_checkpoint_with};
use weft_runtime::train::{init_lora, init_model};

use super::settings::{ModelSizes, Settings, TrainMode};
use crate::commands::weight_dtype::host_values;

/// The model, with every weight it starts from (frozen and trained).
pub struct BaseModel {
    pub config: LlamaConfig,
    /// The base's context C: `max_position_embeddings` × its linear factor.
    pub context: usize,
    /// The total linear RoPE factor the run trains with.
    pub rope_factor: f64,
    pub lora: Option<LoraConfig>,
    pub weights: HashMap<String, HostValues>,
    /// The shape of every weight, by name.
    pub shapes: BTreeMap<String, Vec<usize>>,
}

/// A `config.json` for sizes given in a `[model]` table.
fn config_of(sizes: &ModelSizes) -> anyhow::Result<LlamaConfig> {
    let json = serde_json::json!({
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": sizes.hidden_size,
        "intermediate_size": sizes.intermediate_size,
        "num_hidden_layers": sizes.num_hidden_layers,
        "num_attention_heads": sizes.num_attention_heads,
        "num_key_value_heads": sizes.num_key_value_heads.unwrap_or(sizes.num_attention_heads),
        "vocab_size": sizes.vocab_size,
        "max_position_embeddings": sizes.max_position_embeddings,
        "rope_theta": sizes.rope_theta,
        "rms_norm_eps": 1e-6,
        "hidden_act": "silu",
        "tie_word_embeddings": sizes.tie_word_embeddings,
        "initializer_range": sizes.initializer_range,
    });
    Ok(LlamaConfig::from_json_str(&json.to_string(), "the [model] table")?)
}

/// The model's config with the run's context extension: read (or built
/// from the `[model]` table) and checked, before any weight is read.
pub fn model_config(settings: &Settings) -> anyhow::Result<(LlamaConfig, usize, f64)> {
    let mut config = match (&settings.model, &settings.model_sizes) {
        (Some(dir), _) => {
            let config_path = dir.join("config.json");
            let (config, unknown) = LlamaConfig::from_file_with_unknown_keys(&config_path)?;
            check_layer_count(dir, &config)?;
            crate::commands::source::warn_unknown_keys(&config_path, &unknown);
            config
        }
        (None, Some(sizes)) => config_of(sizes)?,
        (None, None) => bail!("no base model"),
    };
    // Linear position interpolation past the base's context (LongLoRA).
    let base_factor = match config.rope.scaling {
        RopeScaling::None | RopeScaling::Llama3 { .. } => 1.0,
        RopeScaling::Linear { factor } => factor,
    };
    let context = (config.max_position_embeddings as f64 * base_factor).floor() as usize;
    if settings.seq_len > context && matches!(config.rope.scaling, RopeScaling::Llama3 { .. }) {
        // A config can say llama3 or linear, not both: nothing could load the result.
        bail!(
            "--seq-len {} is beyond the base's context of {context} tokens (max_position_embeddings), and its \
             RoPE is Llama 3's frequency scaling, which linear position interpolation cannot be added to; \
             train at {context} tokens or fewer",
            settings.seq_len
        );
    }
    let rope_factor = if settings.seq_len > context && context > 0 {
        base_factor * settings.seq_len.div_ceil(context) as f64
    } else {
        base_factor
    };
    if rope_factor != base_factor {
        config.rope.scaling = RopeScaling::Linear { factor: rope_factor };
    }
    Ok((config, context, rope_factor))
}

/// Checks the initial adapter's small files (before the weights are read).
pub fn check_init_adapter(settings: &Settings) -> anyhow::Result<()> {
    if let Some(dir) = &settings.init_adapter {
        crate::commands::adapter::check(dir)?;
    }
    Ok(())
}

/// Loads (or initialises) the weights of the model `model_config` made,
/// and starts the LoRA factors.
pub fn base_model(
    settings: &Settings,
    (config, context, rope_factor): (LlamaConfig, usize, f64),
) -> anyhow::Result<BaseModel> {
    // The initial adapter's tensors first: a mismatch is refused before the base is read.
    let init = match (&settings.init_adapter, settings.mode) {
        (Some(dir), TrainMode::Lora | TrainMode::LoraPlus) => Some(
            crate::commands::adapter::load(dir, &config)
                .with_context(|| format!("loading the initial adapter {}", dir.display()))?,
        ),
        _ => None,
    };
    let mut weights = match (&settings.model, &settings.model_sizes) {
        (Some(dir), _) => {
            errln!("loading {} ...", dir.display());
            // Each tensor as the checkpoint stores it: a bf16 base is bf16 on the host too.
            load_checkpoint_with(dir, &config, |_, t| (t.shape, host_values(t.data, settings.weight_dtype)))?
        }
        (None, Some(sizes)) => init_model(&config, sizes.initializer_range, settings.seed)
            .map_err(anyhow::Error::msg)?
            .into_iter()
            .map(|(name, t)| (name, (t.shape, HostValues::F32(t.data))))
            .collect(),
        (None, None) => bail!("no base model"),
    };
    if rope_factor != 1.0 {
        errln!("context: T = {} over C = {context}: linear RoPE factor {rope_factor}", settings.seq_len);
    }

    let lora = match settings.mode {
        TrainMode::Full => None,
        TrainMode::Lora | TrainMode::LoraPlus => Some(match init {
            Some(adapter) => {
                let f32 = |(name, t): (String, HostTensor)| (name, (t.shape, HostValues::F32(t.data)));
                weights.extend(adapter.tensors.into_iter().map(f32));
                // Its modules_to_save tensors (embedding, norms) start where it left them.
                weights.extend(adapter.replacements.into_iter().map(f32));
                adapter.lora
            }
            None => {
                let lora = LoraConfig {
                    rank: settings.lora_r,
                    alpha: settings.lora_alpha,
                    target_modules: settings.lora_targets.clone(),
                    use_rslora: false,
                };
                weights.extend(
                    init_lora(&config, &lora, settings.seed)
                        .into_iter()
                        .map(|(name, t)| (name, (t.shape, HostValues::F32(t.data)))),
                );
                lora
            }
        }),
    };
    let shapes = weights.iter().map(|(name, (shape, _))| (name.clone(), shape.clone())).collect();
    let weights: HashMap<String, HostValues> =
        weights.into_iter().map(|(name, (_, values))| (name, values)).collect();
    Ok(BaseModel { config, context, rope_factor, lora, weights, shapes })
}
