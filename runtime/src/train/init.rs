//! Starting values of trained parameters, drawn as the Python stack draws
//! them (the distributions, not torch's random streams): transformers'
//! `_init_weights` for a model trained from scratch, PEFT's for LoRA.
//!
//! Draws come from ChaCha8 seeded by the run's seed, a generator whose
//! stream is fixed by its specification, so a seed gives the same model on
//! every machine and build.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use weft_ir::model::{LlamaConfig, LoraConfig};

use crate::io::HostTensor;

/// Every tensor of a LLaMA of `config`, as transformers initialises
/// `LlamaForCausalLM`: linear and embedding weights normal(0,
/// `initializer_range`), RMSNorm weights 1.
pub fn init_model(
    config: &LlamaConfig,
    initializer_range: f64,
    seed: u64,
) -> Result<BTreeMap<String, HostTensor>, String> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let normal = Normal::new(0.0f64, initializer_range)
        .ok()
        .filter(|_| initializer_range > 0.0)
        .ok_or_else(|| format!("initializer_range = {initializer_range} must be a positive number"))?;
    let mut out = BTreeMap::new();
    for p in config.parameter_shapes() {
        let len: usize = p.shape.iter().product();
        let data = if p.name.ends_with("norm.weight") {
            vec![1.0; len]
        } else {
            (0..len).map(|_| normal.sample(&mut rng) as f32).collect()
        };
        out.insert(p.name.clone(), HostTensor { shape: p.shape.clone(), data });
    }
    Ok(out)
}

/// LoRA factors for every targeted projection of `config`, as PEFT starts
/// them: A kaiming-uniform with a = √5 (uniform in ±1/√in), B zero, so the
/// adapted model starts as the base model.
pub fn init_lora(config: &LlamaConfig, lora: &LoraConfig, seed: u64) -> BTreeMap<String, HostTensor> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x4c6f_5241);
    let mut out = BTreeMap::new();
    for layer in 0..config.num_hidden_layers {
        for module in &lora.target_modules {
            let (input, output) = projection_shape(config, module);
            let prefix = format!("model.layers.{layer}.self_attn.{module}");
            let bound = 1.0 / (input as f64).sqrt();
            let a = (0..lora.rank * input).map(|_| rng.random_range(-bound..bound) as f32).collect();
            out.insert(
                format!("{prefix}.lora_A.weight"),
                HostTensor { shape: vec![lora.rank, input], data: a },
            );
            let b = vec![0.0; output * lora.rank];
            out.insert(
                format!("{prefix}.lora_B.weight"),
                HostTensor { shape: vec![output, lora.rank], data: b },
            );
        }
    }
    out
}

/// `(in_features, out_features)` of an attention projection.
fn projection_shape(config: &LlamaConfig, module: &str) -> (usize, usize) {
    let q = config.num_attention_heads * config.head_dim;
    let kv = config.num_key_value_heads * config.head_dim;
    match module {
        "k_proj" | "v_proj" => (config.hidden_size, kv),
        "o_proj" => (q, config.hidden_size),
        _ => (config.hidden_size, q),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> LlamaConfig {
        let json = r#"{"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 4,
            "num_key_value_heads": 2, "num_hidden_layers": 2, "vocab_size": 64, "rms_norm_eps": 1e-6,
            "max_position_embeddings": 64}"#;
        LlamaConfig::from_json_str(json, "test").unwrap()
    }

    #[test]
    fn model_init_is_seeded_normal_with_unit_norms() {
        let config = config();
        let a = init_model(&config, 0.02, 7).unwrap();
        assert_eq!(a, init_model(&config, 0.02, 7).unwrap());
        assert_ne!(a, init_model(&config, 0.02, 8).unwrap());
        assert!(a["model.norm.weight"].data.iter().all(|&v| v == 1.0));
        let embed = &a["model.embed_tokens.weight"].data;
        let mean = embed.iter().map(|&v| v as f64).sum::<f64>() / embed.len() as f64;
        let std = (embed.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / embed.len() as f64).sqrt();
        assert!(mean.abs() < 0.002 && (std - 0.02).abs() < 0.002, "mean {mean}, std {std}");
        assert_eq!(
            init_model(&config, 0.0, 7).unwrap_err(),
            "initializer_range = 0 must be a positive number"
        );
    }

    #[test]
    fn lora_init_is_peft_kaiming_a_and_zero_b() {
        let config = config();
        let lora = LoraConfig {
            rank: 4,
            alpha: 8.0,
            target_modules: vec!["q_proj".into(), "k_proj".into()],
            use_rslora: false,
        };
        let t = init_lora(&config, &lora, 1);
        assert_eq!(t.len(), 2 * 2 * 2);
        let a = &t["model.layers.1.self_attn.k_proj.lora_A.weight"];
        assert_eq!(a.shape, [4, 32]);
        let bound = 1.0 / 32f32.sqrt();
        assert!(a.data.iter().all(|v| v.abs() <= bound) && a.data.iter().any(|v| v.abs() > bound / 2.0));
        let b = &t["model.layers.1.self_attn.k_proj.lora_B.weight"];
        assert_eq!(b.shape, [16, 4]);
        assert!(b.data.iter().all(|&v| v == 0.0));
    }
}
