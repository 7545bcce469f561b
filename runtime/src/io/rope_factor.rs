//! A run's total linear RoPE factor, applied to a model: to the
//! [`LlamaConfig`] weft builds the graph from, and to the `config.json` a
//! merged checkpoint carries for transformers.
//!
//! The factor is the run's total (the base's own factor included), so it
//! replaces whatever linear factor the config had; a factor of 1 means no
//! scaling. transformers 5 reads `rope_parameters` (`{"rope_type":
//! "linear", "factor": F, "rope_theta": θ}`); transformers 4 reads the Llama-2
//! form, top-level `rope_theta` and `rope_scaling` (`{"type": "linear",
//! "factor": F}`). A config that came in the Llama-2 form gets both, and
//! transformers 5 then takes `rope_scaling` (it wins over `rope_parameters`)
//! with the top-level `rope_theta`; weft reads both and checks they agree.

use serde_json::{Map, Value};
use weft_ir::model::{DEFAULT_ROPE_THETA, LlamaConfig, RopeScaling};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RopeFactorError {
    #[error("the RoPE factor must be a positive number, found {0}")]
    Factor(f64),
    #[error("config.json must be a JSON object")]
    NotAnObject,
    #[error("`{key}` must be an object or null")]
    NotObject { key: String },
    #[error(
        "`{key}` is {rope_type:?}, which a linear factor cannot be applied to (the run's factor is {factor})"
    )]
    NotLinear { key: String, rope_type: String, factor: f64 },
}

/// `config` with its RoPE scaling replaced by the total linear `factor`
/// (no scaling for 1). Llama 3's frequency scaling takes only a factor of 1,
/// which leaves it as it is.
pub fn apply_linear_factor(config: &LlamaConfig, factor: f64) -> Result<LlamaConfig, RopeFactorError> {
    check_factor(factor)?;
    let mut config = config.clone();
    config.rope.scaling = match (config.rope.scaling, factor) {
        // Llama 3's frequency scaling stays; it takes no linear factor.
        (llama3 @ RopeScaling::Llama3 { .. }, 1.0) => llama3,
        (RopeScaling::Llama3 { .. }, _) => {
            return Err(RopeFactorError::NotLinear {
                key: "rope_scaling".into(),
                rope_type: "llama3".into(),
                factor,
            });
        }
        (_, 1.0) => RopeScaling::None,
        _ => RopeScaling::Linear { factor },
    };
    Ok(config)
}

fn check_factor(factor: f64) -> Result<(), RopeFactorError> {
    if factor.is_finite() && factor > 0.0 { Ok(()) } else { Err(RopeFactorError::Factor(factor)) }
}

/// Writes the total linear `factor` into a `config.json` value: always as
/// `rope_parameters` (with the config's `rope_theta`), and also as
/// `rope_scaling` when the config used the Llama-2 form (it has no
/// `rope_parameters`, or has a `rope_scaling` object). A config without
/// scaling and a factor of 1 is left as it is. A RoPE type other than
/// `default` and `linear` is an error unless the factor is 1.
pub fn write_linear_factor(config: &mut Value, factor: f64) -> Result<(), RopeFactorError> {
    check_factor(factor)?;
    let object = config.as_object_mut().ok_or(RopeFactorError::NotAnObject)?;
    let parameters = optional_object(object, "rope_parameters")?;
    let legacy = optional_object(object, "rope_scaling")?;
    let mut scaled = false;
    for (key, form) in [("rope_parameters", &parameters), ("rope_scaling", &legacy)] {
        let Some(form) = form else { continue };
        let rope_type = form.get("rope_type").or_else(|| form.get("type")).and_then(Value::as_str);
        match rope_type {
            None | Some("default") => {}
            Some("linear") => scaled = true,
            // Nothing to write: the config keeps its own scaling.
            Some(_) if factor == 1.0 => return Ok(()),
            Some(other) => {
                return Err(RopeFactorError::NotLinear {
                    key: format!("{key}.rope_type"),
                    rope_type: other.into(),
                    factor,
                });
            }
        }
    }
    if factor == 1.0 && !scaled {
        return Ok(());
    }
    let theta = parameters
        .as_ref()
        .and_then(|p| p.get("rope_theta"))
        .or_else(|| object.get("rope_theta"))
        .and_then(Value::as_f64)
        .unwrap_or(DEFAULT_ROPE_THETA);
    let llama2_form = parameters.is_none() || legacy.is_some();
    // Keys other than the type, factor and theta (none for linear scaling in
    // transformers) are kept as they were.
    let mut new_parameters = parameters.unwrap_or_default();
    new_parameters.remove("type");
    new_parameters.remove("factor");
    new_parameters.insert("rope_theta".into(), number(theta));
    if factor == 1.0 {
        new_parameters.insert("rope_type".into(), "default".into());
    } else {
        new_parameters.insert("rope_type".into(), "linear".into());
        new_parameters.insert("factor".into(), number(factor));
    }
    object.insert("rope_parameters".into(), Value::Object(new_parameters));
    if llama2_form {
        let scaling = if factor == 1.0 {
            Value::Null
        } else {
            // Both spellings of the type, as transformers 4.4x writes them.
            let mut scaling = Map::new();
            scaling.insert("type".into(), "linear".into());
            scaling.insert("rope_type".into(), "linear".into());
            scaling.insert("factor".into(), number(factor));
            Value::Object(scaling)
        };
        object.insert("rope_scaling".into(), scaling);
        // transformers 5 takes theta from the top level alongside `rope_scaling`.
        object.insert("rope_theta".into(), number(theta));
    }
    Ok(())
}

/// `object[key]` as an object; absent and null are `None`.
fn optional_object(
    object: &Map<String, Value>,
    key: &str,
) -> Result<Option<Map<String, Value>>, RopeFactorError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o.clone())),
        Some(_) => Err(RopeFactorError::NotObject { key: key.into() }),
    }
}

fn number(value: f64) -> Value {
    // Finite (checked or read from JSON), so representable.
    serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIZES: &str = r#""hidden_size": 8, "intermediate_size": 12, "num_attention_heads": 2,
        "num_hidden_layers": 1, "rms_norm_eps": 1e-6, "vocab_size": 10, "max_position_embeddings": 32"#;

    fn with_factor(rope: &str, factor: f64) -> (Value, LlamaConfig) {
        let mut json: Value = serde_json::from_str(&format!("{{{SIZES}{rope}}}")).unwrap();
        write_linear_factor(&mut json, factor).unwrap();
        let config = LlamaConfig::from_json_str(&json.to_string(), "out/config.json").unwrap();
        (json, config)
    }

    #[test]
    fn the_factor_round_trips_through_every_form() {
        for (rope, theta) in [
            ("", DEFAULT_ROPE_THETA),
            (r#", "rope_parameters": {"rope_type": "default", "rope_theta": 500.0}"#, 500.0),
            (r#", "rope_parameters": {"rope_type": "linear", "factor": 2.0, "rope_theta": 500.0}"#, 500.0),
            (r#", "rope_theta": 500.0, "rope_scaling": null"#, 500.0),
            (r#", "rope_theta": 500.0, "rope_scaling": {"type": "linear", "factor": 2.0}"#, 500.0),
            (
                r#", "rope_theta": 500.0, "rope_scaling": {"rope_type": "linear", "type": "linear", "factor": 2},
                   "rope_parameters": {"rope_type": "linear", "factor": 2, "rope_theta": 500.0}"#,
                500.0,
            ),
        ] {
            let (json, config) = with_factor(rope, 8.0);
            assert_eq!(config.rope.scaling, RopeScaling::Linear { factor: 8.0 }, "{rope}");
            assert_eq!(config.rope.theta, theta, "{rope}");
            let parameters = &json["rope_parameters"];
            assert_eq!(parameters["rope_type"], "linear", "{rope}");
            assert_eq!(parameters["factor"], 8.0, "{rope}");
            assert_eq!(parameters["rope_theta"], theta, "{rope}");
            let llama2 = rope.is_empty() || rope.contains("rope_scaling");
            assert_eq!(json.get("rope_scaling").is_some(), llama2, "{rope}");
            if llama2 {
                assert_eq!(json["rope_scaling"]["factor"], 8.0, "{rope}");
                assert_eq!(json["rope_theta"], theta, "{rope}");
            }
            let expected = LlamaConfig::from_json_str(&format!("{{{SIZES}{rope}}}"), "in").unwrap();
            assert_eq!(apply_linear_factor(&expected, 8.0).unwrap(), config, "{rope}");
        }
    }

    /// Llama 3's frequency scaling is not linear: a factor of 1 keeps it (in
    /// the config weft builds from, and in the file), any other is refused.
    #[test]
    fn llama3_scaling_stays_under_a_factor_of_one_and_refuses_another() {
        let llama3 = r#", "rope_theta": 500000.0, "rope_scaling": {"rope_type": "llama3", "factor": 8.0,
            "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}"#;
        let base = LlamaConfig::from_json_str(&format!("{{{SIZES}{llama3}}}"), "in").unwrap();
        assert!(matches!(base.rope.scaling, RopeScaling::Llama3 { .. }));
        assert_eq!(apply_linear_factor(&base, 1.0).unwrap(), base);
        assert_eq!(
            apply_linear_factor(&base, 2.0).unwrap_err().to_string(),
            "`rope_scaling` is \"llama3\", which a linear factor cannot be applied to (the run's factor is 2)"
        );
        let (json, config) = with_factor(llama3, 1.0);
        assert_eq!(config, base);
        assert_eq!(json["rope_scaling"]["rope_type"], "llama3");
        let mut json: Value = serde_json::from_str(&format!("{{{SIZES}{llama3}}}")).unwrap();
        assert!(write_linear_factor(&mut json, 2.0).is_err());
    }

    #[test]
    fn a_factor_of_one_removes_scaling_or_changes_nothing() {
        let (json, config) =
            with_factor(r#", "rope_theta": 500.0, "rope_scaling": {"type": "linear", "factor": 2.0}"#, 1.0);
        assert_eq!(config.rope.scaling, RopeScaling::None);
        assert_eq!(json["rope_scaling"], Value::Null);
        assert_eq!(json["rope_parameters"]["rope_type"], "default");
        let plain =
            format!(r#"{{{SIZES}, "rope_parameters": {{"rope_type": "default", "rope_theta": 1.0}}}}"#);
        let mut json: Value = serde_json::from_str(&plain).unwrap();
        let before = json.clone();
        write_linear_factor(&mut json, 1.0).unwrap();
        assert_eq!(json, before);
    }

    #[test]
    fn other_rope_types_and_bad_factors_are_errors() {
        let mut json: Value =
            serde_json::from_str(r#"{"rope_parameters": {"rope_type": "yarn", "factor": 4.0}}"#).unwrap();
        let before = json.clone();
        assert_eq!(write_linear_factor(&mut json, 1.0), Ok(()));
        assert_eq!(json, before);
        let err = write_linear_factor(&mut json, 2.0).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`rope_parameters.rope_type` is \"yarn\", which a linear factor cannot be applied to (the run's factor is 2)"
        );
        assert!(matches!(write_linear_factor(&mut json, f64::NAN), Err(RopeFactorError::Factor(_))));
        assert!(matches!(write_linear_factor(&mut json, 0.0), Err(RopeFactorError::Factor(_))));
        let mut bad: Value = serde_json::from_str(r#"{"rope_scaling": 3}"#).unwrap();
        assert_eq!(
            write_linear_factor(&mut bad, 2.0),
            Err(RopeFactorError::NotObject { key: "rope_scaling".into() })
        );
    }
}
