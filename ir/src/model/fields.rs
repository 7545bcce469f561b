//! What weft does with each `config.json` key that is not a size: read it,
//! accept it as harmless, accept it only at a value that does not change the
//! math, or ignore it as unknown. docs/model-fields.md is the same table for
//! users; keep the two in step.
//!
//! The principle: a key that would change what the model computes is either
//! implemented or refused, never silently dropped. Unknown keys are ignored
//! (configs carry tokenizer, generation and tooling keys weft has no use for)
//! but returned by [`unknown_keys`] so the binary can list them.

use serde_json::Value;

use super::error::ConfigErrorKind;
use super::json::Fields;

/// Keys the reader interprets (sizes, RoPE, activation, tying).
const READ: &[&str] = &[
    "hidden_size",
    "intermediate_size",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "num_hidden_layers",
    "rms_norm_eps",
    "vocab_size",
    "tie_word_embeddings",
    "max_position_embeddings",
    "rope_theta",
    "rope_scaling",
    "rope_parameters",
    "hidden_act",
];

/// Keys that never change the forward math: token ids, training-time
/// settings (weft applies no dropout), bookkeeping. `pretraining_tp` only
/// splits the projections' matmuls into slices that sum to the same result.
const HARMLESS: &[&str] = &[
    "_name_or_path",
    "torch_dtype",
    "dtype",
    "transformers_version",
    "bos_token_id",
    "eos_token_id",
    "pad_token_id",
    "initializer_range",
    "use_cache",
    "attention_dropout",
    "hidden_dropout",
    "pretraining_tp",
    "tokenizer_class",
    "max_window_layers",
    "output_attentions",
    "output_hidden_states",
    "return_dict",
];

/// A key accepted only at values that keep LLaMA's math.
struct Checked {
    key: &'static str,
    allowed: fn(&Value) -> bool,
    /// Why another value is refused, after "is not supported".
    why: &'static str,
}

const CHECKED: &[Checked] = &[
    Checked {
        key: "model_type",
        allowed: |v| v == "llama",
        why: "weft builds LLaMA models; `model_type` must be \"llama\"",
    },
    Checked {
        key: "architectures",
        allowed: |v| v.as_array().is_some_and(|a| a.iter().all(|n| n == "LlamaForCausalLM")),
        why: "weft builds LlamaForCausalLM only",
    },
    Checked { key: "attention_bias", allowed: is_false, why: "weft's LLaMA has no attention biases" },
    Checked { key: "mlp_bias", allowed: is_false, why: "weft's LLaMA has no MLP biases" },
    Checked {
        key: "sliding_window",
        allowed: Value::is_null,
        why: "weft's model attention is causal unless a --pattern says otherwise; \
              give the window as a pattern spec instead",
    },
    Checked {
        key: "use_sliding_window",
        allowed: is_false,
        why: "weft's model attention is causal unless a --pattern says otherwise",
    },
    Checked {
        key: "quantization_config",
        allowed: Value::is_null,
        why: "weft reads F32, F16 and BF16 weights only",
    },
    Checked {
        key: "partial_rotary_factor",
        allowed: |v| v.as_f64() == Some(1.0),
        why: "weft's RoPE rotates every channel of a head",
    },
    Checked {
        key: "attn_logit_softcapping",
        allowed: Value::is_null,
        why: "weft's attention has no logit soft-capping",
    },
    Checked {
        key: "final_logit_softcapping",
        allowed: Value::is_null,
        why: "weft's LM head has no logit soft-capping",
    },
];

fn is_false(value: &Value) -> bool {
    value == &Value::Bool(false)
}

/// Refuses the first checked key whose value would change the math.
pub(super) fn check_keys(fields: &Fields) -> Result<(), ConfigErrorKind> {
    for checked in CHECKED {
        // A null value counts as absent, as everywhere in config.json.
        if let Some(value) = fields.raw(checked.key)
            && !value.is_null()
            && !(checked.allowed)(value)
        {
            return Err(ConfigErrorKind::Unsupported {
                key: checked.key.into(),
                value: value.to_string(),
                why: checked.why.into(),
            });
        }
    }
    Ok(())
}

/// The top-level keys weft neither reads nor knows to be harmless, sorted.
pub fn unknown_keys(config: &Value) -> Vec<String> {
    let Some(object) = config.as_object() else { return Vec::new() };
    let known = |k: &str| READ.contains(&k) || HARMLESS.contains(&k) || CHECKED.iter().any(|c| c.key == k);
    object.keys().filter(|k| !known(k)).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(json: &str) -> Result<(), ConfigErrorKind> {
        let value: Value = serde_json::from_str(json).unwrap();
        check_keys(&Fields::top(&value).unwrap())
    }

    #[test]
    fn llama_values_pass_and_others_name_key_and_value() {
        let fine = r#"{"model_type": "llama", "architectures": ["LlamaForCausalLM"], "attention_bias": false,
            "mlp_bias": false, "sliding_window": null, "partial_rotary_factor": 1.0, "pretraining_tp": 4}"#;
        assert_eq!(check(fine), Ok(()));
        for (json, key, value) in [
            (r#"{"attention_bias": true}"#, "attention_bias", "true"),
            (r#"{"mlp_bias": true}"#, "mlp_bias", "true"),
            (r#"{"model_type": "mistral"}"#, "model_type", "\"mistral\""),
            (r#"{"architectures": ["GemmaForCausalLM"]}"#, "architectures", "[\"GemmaForCausalLM\"]"),
            (r#"{"sliding_window": 4096}"#, "sliding_window", "4096"),
            (r#"{"quantization_config": {"bits": 4}}"#, "quantization_config", "{\"bits\":4}"),
            (r#"{"partial_rotary_factor": 0.5}"#, "partial_rotary_factor", "0.5"),
        ] {
            match check(json) {
                Err(ConfigErrorKind::Unsupported { key: k, value: v, .. }) => {
                    assert_eq!((k.as_str(), v.as_str()), (key, value), "{json}");
                }
                other => panic!("{json}: {other:?}"),
            }
        }
    }

    #[test]
    fn unknown_keys_are_those_in_no_list() {
        let value: Value = serde_json::from_str(
            r#"{"hidden_size": 8, "bos_token_id": 1, "mlp_bias": false, "zeta": 1, "alpha": 2}"#,
        )
        .unwrap();
        assert_eq!(unknown_keys(&value), ["alpha", "zeta"]);
    }
}
