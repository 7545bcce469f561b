//! `adapter_config.json`: PEFT's `LoraConfig`, read into weft's [`LoraConfig`].
//!
//! Every key that changes what the adapter computes is either implemented
//! (`r`, `lora_alpha`, `target_modules`, `use_rslora`, `modules_to_save`,
//! `ensure_weight_tying`) or refused with its value; keys that only matter for
//! training from scratch or bookkeeping are accepted; unknown keys are ignored
//! and returned, so the binary can list them. docs/model-fields.md has the
//! same table for users.

use serde_json::{Map, Value};
use weft_ir::model::{LORA_MODULES, LoraConfig};

use super::saved_modules::SAVABLE_MODULES;

/// Keys that do not change an adapter's forward math: dropout (weft applies
/// none), initialization (the factors are loaded), bookkeeping.
const HARMLESS: &[&str] = &[
    "task_type",
    "lora_dropout",
    "inference_mode",
    "revision",
    "base_model_name_or_path",
    "auto_mapping",
    "peft_version",
    "init_lora_weights",
    "loftq_config",
    "eva_config",
    "corda_config",
    "runtime_config",
    "layers_pattern",
    "megatron_core",
];

/// Keys read here, or refused unless at their harmless value.
const READ: &[&str] = &[
    "peft_type",
    "r",
    "lora_alpha",
    "target_modules",
    "use_rslora",
    "modules_to_save",
    "ensure_weight_tying",
    "use_dora",
    "rank_pattern",
    "alpha_pattern",
    "bias",
    "fan_in_fan_out",
    "layers_to_transform",
    "megatron_config",
    "lora_bias",
    "exclude_modules",
    "layer_replication",
    "use_qalora",
    "target_parameters",
    "trainable_token_indices",
    "alora_invocation_tokens",
    "arrow_config",
];

/// A key whose value changes the math in a way weft does not implement,
/// and why, for "`{key}: {value}` is not supported ({why})".
pub(super) struct Refusal {
    pub key: &'static str,
    pub value: String,
    pub why: String,
}

/// A problem with `adapter_config.json`, without the file name.
pub(super) enum ConfigProblem {
    Refused(Refusal),
    Invalid(String),
}

/// What `adapter_config.json` says, as weft applies it.
#[derive(Clone, Debug, PartialEq)]
pub struct AdapterConfig {
    pub lora: LoraConfig,
    /// PEFT's `modules_to_save`: modules the adapter replaces whole, among
    /// [`SAVABLE_MODULES`], matched as PEFT matches them (by suffix).
    pub modules_to_save: Vec<String>,
    /// PEFT's `ensure_weight_tying`: with tied embeddings, a saved
    /// `embed_tokens` (or `lm_head`) stays tied to the other; without it each
    /// is its own copy and replacing one unties them.
    pub ensure_weight_tying: bool,
    /// Keys weft does not know, and so ignored.
    pub unknown_keys: Vec<String>,
}

/// The adapter's settings and the keys it ignored.
pub(super) fn read_lora_config(json: &Value) -> Result<AdapterConfig, ConfigProblem> {
    let Some(object) = json.as_object() else {
        return Err(ConfigProblem::Invalid("the top level must be a JSON object".into()));
    };
    refuse_changes(object)?;
    let invalid = |m: &str| ConfigProblem::Invalid(m.into());
    let rank = object
        .get("r")
        .and_then(Value::as_u64)
        .filter(|&r| r > 0)
        .ok_or_else(|| invalid("`r` must be a positive integer"))?;
    let rank = usize::try_from(rank).map_err(|_| invalid("`r` is too large"))?;
    let alpha = object
        .get("lora_alpha")
        .and_then(Value::as_f64)
        .filter(|a| a.is_finite())
        .ok_or_else(|| invalid("`lora_alpha` must be a number"))?;
    let use_rslora = read_bool(object, "use_rslora")?;
    let ensure_weight_tying = read_bool(object, "ensure_weight_tying")?;
    let target_modules = read_target_modules(object.get("target_modules"))?;
    let modules_to_save = read_modules_to_save(object.get("modules_to_save"))?;
    let unknown = object.keys().filter(|k| !READ.contains(&k.as_str()) && !HARMLESS.contains(&k.as_str()));
    Ok(AdapterConfig {
        lora: LoraConfig { rank, alpha, target_modules, use_rslora },
        modules_to_save,
        ensure_weight_tying,
        unknown_keys: unknown.cloned().collect(),
    })
}

/// A flag that is false when absent or null.
fn read_bool(object: &Map<String, Value>, key: &str) -> Result<bool, ConfigProblem> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(ConfigProblem::Invalid(format!("`{key}` must be true or false, found {other}"))),
    }
}

/// `modules_to_save`: null or a list of names among [`SAVABLE_MODULES`]. PEFT
/// would wrap any module whose name ends in an entry; weft replaces the
/// embedding, the RMSNorm weights and the LM head, and refuses the rest (an
/// MLP or attention projection replaced whole is not implemented).
fn read_modules_to_save(value: Option<&Value>) -> Result<Vec<String>, ConfigProblem> {
    let modules = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(modules)) => modules,
        Some(other) => {
            return Err(ConfigProblem::Invalid(format!(
                "`modules_to_save` must be a list of module names or null, found {other}"
            )));
        }
    };
    let mut names = Vec::new();
    for m in modules {
        match m.as_str().filter(|n| SAVABLE_MODULES.contains(n)) {
            Some(name) if !names.iter().any(|n| n == name) => names.push(name.to_string()),
            Some(_) => {}
            None => {
                return Err(ConfigProblem::Refused(Refusal {
                    key: "modules_to_save",
                    value: m.to_string(),
                    why: format!("weft replaces whole modules among {}", SAVABLE_MODULES.join(", ")),
                }));
            }
        }
    }
    Ok(names)
}

fn read_target_modules(value: Option<&Value>) -> Result<Vec<String>, ConfigProblem> {
    let modules = match value {
        Some(Value::Array(modules)) => modules,
        // PEFT matches a string as a regular expression over full module paths
        // ("all-linear" also adds the MLP); weft takes the plain list only.
        Some(Value::String(pattern)) => {
            return Err(ConfigProblem::Refused(Refusal {
                key: "target_modules",
                value: Value::String(pattern.clone()).to_string(),
                why: format!(
                    "weft takes a list of module names, not a pattern; list the modules among {}",
                    LORA_MODULES.join(", ")
                ),
            }));
        }
        _ => return Err(ConfigProblem::Invalid("`target_modules` must be a list of module names".into())),
    };
    modules
        .iter()
        .map(|m| match m.as_str().filter(|n| LORA_MODULES.contains(n)) {
            Some(name) => Ok(name.to_string()),
            None => Err(ConfigProblem::Refused(Refusal {
                key: "target_modules",
                value: m.to_string(),
                why: format!("weft adapts {}", LORA_MODULES.join(", ")),
            })),
        })
        .collect()
}

/// Refuses the first key whose value would change the math.
fn refuse_changes(object: &Map<String, Value>) -> Result<(), ConfigProblem> {
    let refuse = |key: &'static str, value: &Value, why: &str| {
        Err(ConfigProblem::Refused(Refusal { key, value: value.to_string(), why: why.into() }))
    };
    for (key, value) in object {
        let key = key.as_str();
        // Absent, null, false, "", [] and {} all mean "off" for these keys.
        let off = match value {
            Value::Null => true,
            Value::Bool(b) => !b,
            Value::String(s) => s.is_empty(),
            Value::Array(a) => a.is_empty(),
            Value::Object(o) => o.is_empty(),
            Value::Number(_) => false,
        };
        match key {
            "peft_type" if value != "LORA" => {
                refuse("peft_type", value, "weft applies LoRA adapters only (`peft_type: \"LORA\"`)")?
            }
            "use_dora" if !off => refuse("use_dora", value, "DoRA's magnitude vectors are not implemented")?,
            "rank_pattern" if !off => {
                refuse("rank_pattern", value, "weft uses one rank `r` for every module")?
            }
            "alpha_pattern" if !off => {
                refuse("alpha_pattern", value, "weft uses one `lora_alpha` for every module")?
            }
            "bias" if !(off || value == "none") => {
                refuse("bias", value, "weft's projections have no biases to train")?
            }
            "lora_bias" if !off => refuse("lora_bias", value, "LoRA's B factor has no bias in weft")?,
            "fan_in_fan_out" if !off => refuse(
                "fan_in_fan_out",
                value,
                "weft's weights are [out, in], as LLaMA's nn.Linear stores them",
            )?,
            "layers_to_transform" if !off => refuse("layers_to_transform", value, "weft adapts every layer")?,
            "exclude_modules" if !off => {
                refuse("exclude_modules", value, "list only the adapted modules in `target_modules`")?
            }
            "megatron_config" if !off => {
                refuse("megatron_config", value, "weft does not run Megatron's parallel layers")?
            }
            "layer_replication" if !off => {
                refuse("layer_replication", value, "weft does not replicate layers")?
            }
            "use_qalora" if !off => refuse("use_qalora", value, "QA-LoRA is not implemented")?,
            "target_parameters" if !off => {
                refuse("target_parameters", value, "weft adapts modules, not parameters")?
            }
            "trainable_token_indices" if !off => {
                refuse("trainable_token_indices", value, "weft does not load trained token embeddings")?
            }
            "alora_invocation_tokens" if !off => {
                refuse("alora_invocation_tokens", value, "activated LoRA is not implemented")?
            }
            "arrow_config" if !off => refuse("arrow_config", value, "Arrow routing is not implemented")?,
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(json: &str) -> Result<AdapterConfig, ConfigProblem> {
        read_lora_config(&serde_json::from_str(json).unwrap())
    }

    const BASE: &str =
        r#""peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"]"#;

    #[test]
    fn a_plain_peft_config_reads_and_lists_unknown_keys() {
        let json = format!(
            r#"{{{BASE}, "task_type": "CAUSAL_LM", "lora_dropout": 0.05, "use_dora": false, "rank_pattern": {{}},
                "bias": "none", "modules_to_save": null, "fan_in_fan_out": false, "layers_to_transform": null,
                "use_rslora": false, "zz_new_key": 1}}"#
        );
        let Ok(AdapterConfig { lora, modules_to_save, ensure_weight_tying, unknown_keys }) = read(&json)
        else {
            panic!("refused")
        };
        assert_eq!((lora.rank, lora.alpha, lora.use_rslora), (4, 8.0, false));
        assert_eq!(lora.target_modules, ["q_proj", "v_proj"]);
        assert_eq!(lora.scaling(), 2.0);
        assert!(modules_to_save.is_empty() && !ensure_weight_tying);
        assert_eq!(unknown_keys, ["zz_new_key"]);
    }

    #[test]
    fn rslora_scales_by_alpha_over_root_rank() {
        let Ok(AdapterConfig { lora, .. }) = read(&format!(r#"{{{BASE}, "use_rslora": true}}"#)) else {
            panic!("refused")
        };
        assert!(lora.use_rslora);
        // alpha 8, r 4: 8 / √4 = 4.
        assert_eq!(lora.scaling(), 4.0);
    }

    #[test]
    fn math_changing_keys_are_refused_with_their_value() {
        for (extra, key, value) in [
            (r#""use_dora": true"#, "use_dora", "true"),
            (r#""rank_pattern": {"q_proj": 8}"#, "rank_pattern", r#"{"q_proj":8}"#),
            (r#""alpha_pattern": {"q_proj": 8}"#, "alpha_pattern", r#"{"q_proj":8}"#),
            (r#""modules_to_save": ["norm", "gate_proj"]"#, "modules_to_save", r#""gate_proj""#),
            (r#""modules_to_save": ["model.norm"]"#, "modules_to_save", r#""model.norm""#),
            (r#""bias": "all""#, "bias", r#""all""#),
            (r#""lora_bias": true"#, "lora_bias", "true"),
            (r#""fan_in_fan_out": true"#, "fan_in_fan_out", "true"),
            (r#""layers_to_transform": [0]"#, "layers_to_transform", "[0]"),
            (r#""exclude_modules": ["k_proj"]"#, "exclude_modules", r#"["k_proj"]"#),
            (r#""megatron_config": {"tp": 2}"#, "megatron_config", r#"{"tp":2}"#),
        ] {
            match read(&format!("{{{BASE}, {extra}}}")) {
                Err(ConfigProblem::Refused(r)) => {
                    assert_eq!((r.key, r.value.as_str()), (key, value), "{extra}")
                }
                _ => panic!("{extra} was not refused"),
            }
        }
        for (json, key, value) in [
            (r#"{"peft_type": "IA3", "target_modules": ["k_proj"]}"#, "peft_type", r#""IA3""#),
            (r#"{"r": 4, "lora_alpha": 8, "target_modules": ".*proj"}"#, "target_modules", r#"".*proj""#),
            (
                r#"{"r": 4, "lora_alpha": 8, "target_modules": ["gate_proj"]}"#,
                "target_modules",
                r#""gate_proj""#,
            ),
        ] {
            match read(json) {
                Err(ConfigProblem::Refused(r)) => {
                    assert_eq!((r.key, r.value.as_str()), (key, value), "{json}")
                }
                _ => panic!("{json} was not refused"),
            }
        }
    }

    #[test]
    fn modules_to_save_reads_the_replaceable_modules() {
        let json = format!(
            r#"{{{BASE}, "modules_to_save": ["embed_tokens", "norm", "lm_head", "norm"],
                "ensure_weight_tying": true}}"#
        );
        let Ok(config) = read(&json) else { panic!("refused") };
        assert_eq!(config.modules_to_save, ["embed_tokens", "norm", "lm_head"]);
        assert!(config.ensure_weight_tying);
        for (extra, fragment) in [
            (r#""modules_to_save": "norm""#, "`modules_to_save` must be a list"),
            (r#""ensure_weight_tying": "yes""#, "`ensure_weight_tying` must be true or false"),
        ] {
            match read(&format!("{{{BASE}, {extra}}}")) {
                Err(ConfigProblem::Invalid(message)) => assert!(message.starts_with(fragment), "{message}"),
                _ => panic!("{extra} was not invalid"),
            }
        }
    }
}
