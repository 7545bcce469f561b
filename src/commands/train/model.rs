//! The model a run trains: a Hugging Face checkpoint or sizes to train from
//! scratch, its context extended by linear position interpolation, and the
//! starting values of what trains.

use std::collections::{BTreeMap, HashMap};

use anyhow::{Context, bail};
use weft_ir::model::{LlamaConfig, LoraConfig, RopeScaling};
use weft_runtime::io::{
    ADAPTER_CONFIG, check_layer_count, load_adapter, load_checkpoint, read_adapter_config,
};
use weft_runtime::train::{init_lora, init_model};

use super::settings::{ModelSizes, Settings, TrainMode};

/// The model, with every weight it starts from (frozen and trained).
pub struct BaseModel {
    pub config: LlamaConfig,
    /// The base's context C: `max_position_embeddings` × its linear factor.
    pub context: usize,
    /// The total linear RoPE factor the run trains with.
    pub rope_factor: f64,
    pub lora: Option<LoraConfig>,
    pub weights: HashMap<String, Vec<f32>>,
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

/// Loads (or initialises) the model for `settings`, extends its context to
/// the run's sequence length, and starts the LoRA factors.
pub fn base_model(settings: &Settings) -> anyhow::Result<BaseModel> {
    let (mut config, mut weights) = match (&settings.model, &settings.model_sizes) {
        (Some(dir), _) => {
            let config_path = dir.join("config.json");
            let (config, unknown) = LlamaConfig::from_file_with_unknown_keys(&config_path)?;
            crate::commands::source::warn_unknown_keys(&config_path, &unknown);
            check_layer_count(dir, &config)?;
            eprintln!("loading {} ...", dir.display());
            let weights = load_checkpoint(dir, &config)?;
            (config, weights)
        }
        (None, Some(sizes)) => {
            let config = config_of(sizes)?;
            let weights =
                init_model(&config, sizes.initializer_range, settings.seed).map_err(anyhow::Error::msg)?;
            (config, weights)
        }
        (None, None) => bail!("no base model"),
    };

    // Linear position interpolation past the base's context (LongLoRA).
    let base_factor = match config.rope.scaling {
        RopeScaling::None => 1.0,
        RopeScaling::Linear { factor } => factor,
    };
    let context = (config.max_position_embeddings as f64 * base_factor).floor() as usize;
    let rope_factor = if settings.seq_len > context && context > 0 {
        base_factor * settings.seq_len.div_ceil(context) as f64
    } else {
        base_factor
    };
    if rope_factor != base_factor {
        eprintln!(
            "context: T = {} > C = {context}: linear RoPE factor {base_factor} -> {rope_factor}",
            settings.seq_len
        );
        config.rope.scaling = RopeScaling::Linear { factor: rope_factor };
    }

    let lora = match settings.mode {
        TrainMode::Full => None,
        TrainMode::Lora | TrainMode::LoraPlus => Some(match &settings.init_adapter {
            Some(dir) => {
                read_adapter_config(dir)?;
                let adapter = load_adapter(dir, &config)
                    .with_context(|| format!("loading the initial adapter {}", dir.display()))?;
                crate::commands::source::warn_unknown_keys(&dir.join(ADAPTER_CONFIG), &adapter.unknown_keys);
                weights.extend(adapter.tensors);
                adapter.lora
            }
            None => {
                let lora = LoraConfig {
                    rank: settings.lora_r,
                    alpha: settings.lora_alpha,
                    target_modules: settings.lora_targets.clone(),
                    use_rslora: false,
                };
                weights.extend(init_lora(&config, &lora, settings.seed));
                lora
            }
        }),
    };
    let shapes = weights.iter().map(|(name, t)| (name.clone(), t.shape.clone())).collect();
    let weights: HashMap<String, Vec<f32>> = weights.into_iter().map(|(name, t)| (name, t.data)).collect();
    Ok(BaseModel { config, context, rope_factor, lora, weights, shapes })
}
