//! Hugging Face `config.json` files, in both RoPE forms, and every error.

use serde_json::{Value, json};
use weft_ir::model::{
    ConfigError, ConfigErrorKind, HiddenAct, LlamaConfig, ParameterShape, Rope, RopeScaling,
};

/// A Llama-2-style config as transformers 4.3x wrote it, extra keys included.
const LLAMA2_LONGLORA: &str = r#"{
  "_name_or_path": "Yukang/Llama-2-7b-longlora-32k-ft",
  "architectures": ["LlamaForCausalLM"],
  "bos_token_id": 1,
  "eos_token_id": 2,
  "hidden_act": "silu",
  "hidden_size": 4096,
  "initializer_range": 0.02,
  "intermediate_size": 11008,
  "max_position_embeddings": 4096,
  "model_type": "llama",
  "num_attention_heads": 32,
  "num_hidden_layers": 32,
  "num_key_value_heads": 32,
  "pad_token_id": 0,
  "pretraining_tp": 1,
  "rms_norm_eps": 1e-05,
  "rope_scaling": {"factor": 8.0, "type": "linear"},
  "tie_word_embeddings": false,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.31.0",
  "use_cache": true,
  "vocab_size": 32001
}"#;

/// What current transformers writes: `rope_parameters`, no top-level theta.
const CURRENT_TRANSFORMERS: &str = r#"{
  "architectures": ["LlamaForCausalLM"],
  "attention_bias": false,
  "attention_dropout": 0.0,
  "dtype": "float32",
  "head_dim": 16,
  "hidden_size": 64,
  "intermediate_size": 172,
  "max_position_embeddings": 2048,
  "mlp_bias": false,
  "model_type": "llama",
  "num_attention_heads": 4,
  "num_hidden_layers": 2,
  "num_key_value_heads": 2,
  "rms_norm_eps": 1e-06,
  "rope_parameters": {"factor": 4.0, "rope_theta": 500000.0, "rope_type": "linear"},
  "tie_word_embeddings": true,
  "transformers_version": "5.0.0",
  "vocab_size": 256
}"#;

fn small() -> Value {
    json!({
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "rms_norm_eps": 1e-5,
        "vocab_size": 100,
        "max_position_embeddings": 512
    })
}

fn with(mut base: Value, key: &str, value: Value) -> Value {
    base[key] = value;
    base
}

fn without(mut base: Value, key: &str) -> Value {
    base.as_object_mut().map(|o| o.remove(key));
    base
}

fn parse(value: &Value) -> Result<LlamaConfig, ConfigError> {
    LlamaConfig::from_json_str(&value.to_string(), "config.json")
}

/// The error for `value`, which must be an `Invalid` one: kind and message.
fn invalid(value: &Value) -> (ConfigErrorKind, String) {
    match parse(value) {
        Ok(config) => panic!("accepted: {config:?}"),
        Err(e) => match e.kind() {
            Some(kind) => (kind.clone(), e.to_string()),
            None => panic!("not an Invalid error: {e}"),
        },
    }
}

fn shape(config: &LlamaConfig, name: &str) -> Option<Vec<usize>> {
    config.parameter_shapes().into_iter().find(|p| p.name == name).map(|p| p.shape)
}

#[test]
fn reads_a_llama2_config_with_linear_rope_scaling() {
    let config = LlamaConfig::from_json_str(LLAMA2_LONGLORA, "config.json").unwrap();
    assert_eq!(
        config,
        LlamaConfig {
            hidden_size: 4096,
            intermediate_size: 11008,
            num_attention_heads: 32,
            num_key_value_heads: 32,
            head_dim: 128,
            num_hidden_layers: 32,
            rms_norm_eps: 1e-5,
            vocab_size: 32001,
            tie_word_embeddings: false,
            max_position_embeddings: 4096,
            rope: Rope { theta: 10000.0, scaling: RopeScaling::Linear { factor: 8.0 } },
            hidden_act: HiddenAct::Silu,
        }
    );
    assert_eq!(config.rope.position_scale(), 8.0);
    // Llama-2-7B: 6,738,415,616 parameters with a 32000 vocabulary; one more token adds 2·4096.
    assert_eq!(config.num_parameters(), 6_738_415_616 + 2 * 4096);
    assert_eq!(config.parameter_shapes().len(), 1 + 9 * 32 + 2);
}

#[test]
fn reads_rope_parameters_as_current_transformers_writes_them() {
    let config = LlamaConfig::from_json_str(CURRENT_TRANSFORMERS, "config.json").unwrap();
    assert_eq!(config.rope, Rope { theta: 500000.0, scaling: RopeScaling::Linear { factor: 4.0 } });
    assert_eq!((config.num_key_value_heads, config.head_dim), (2, 16));
    assert!(config.tie_word_embeddings);

    let default = with(small(), "rope_parameters", json!({"rope_type": "default", "rope_theta": 1e6}));
    assert_eq!(parse(&default).unwrap().rope, Rope { theta: 1e6, scaling: RopeScaling::None });
    // The theta may also stay at the top level beside `rope_parameters`.
    let split =
        with(with(small(), "rope_theta", json!(1e6)), "rope_parameters", json!({"rope_type": "default"}));
    assert_eq!(parse(&split).unwrap().rope, Rope { theta: 1e6, scaling: RopeScaling::None });
}

#[test]
fn both_forms_are_accepted_together_when_they_agree() {
    let both = with(
        with(
            with(small(), "rope_theta", json!(10000.0)),
            "rope_scaling",
            json!({"rope_type": "linear", "type": "linear", "factor": 2}),
        ),
        "rope_parameters",
        json!({"rope_type": "linear", "factor": 2.0, "rope_theta": 10000}),
    );
    assert_eq!(
        parse(&both).unwrap().rope,
        Rope { theta: 10000.0, scaling: RopeScaling::Linear { factor: 2.0 } }
    );
}

/// Llama 3.1's `rope_scaling` as its checkpoints spell it (and as
/// `rope_parameters`): the four numbers, positions unscaled.
#[test]
fn reads_llama3_rope_scaling_in_either_form() {
    let llama3 = json!({"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                        "original_max_position_embeddings": 8192});
    let expected = RopeScaling::Llama3 {
        factor: 8.0,
        low_freq_factor: 1.0,
        high_freq_factor: 4.0,
        original_max_position_embeddings: 8192.0,
    };
    let legacy = with(with(small(), "rope_theta", json!(500000.0)), "rope_scaling", llama3.clone());
    let mut current_form = llama3.clone();
    current_form["rope_theta"] = json!(500000.0);
    let current = with(small(), "rope_parameters", current_form);
    for config in [legacy, current] {
        let rope = parse(&config).unwrap().rope;
        assert_eq!(rope, Rope { theta: 500000.0, scaling: expected });
        assert_eq!(rope.position_scale(), 1.0);
        assert_eq!(rope.params().freqs.to_string(), "llama3:8.0:1.0:4.0:8192.0");
    }
    // Each of the four is required, and the blend needs low below high.
    let mut missing = llama3.clone();
    missing.as_object_mut().unwrap().remove("high_freq_factor");
    let (kind, message) = invalid(&with(small(), "rope_scaling", missing));
    assert_eq!(kind, ConfigErrorKind::Missing { key: "rope_scaling.high_freq_factor".into() });
    assert_eq!(message, "config.json: missing required key `rope_scaling.high_freq_factor`");
    let mut inverted = llama3;
    inverted["low_freq_factor"] = json!(4.0);
    inverted["high_freq_factor"] = json!(1.0);
    let (_, message) = invalid(&with(small(), "rope_scaling", inverted));
    assert_eq!(
        message,
        "config.json: `rope_scaling.low_freq_factor` is 4.0, but it must be below `rope_scaling.high_freq_factor` (1.0)"
    );
}

#[test]
fn null_or_absent_rope_scaling_means_no_scaling() {
    let null = with(with(small(), "rope_scaling", Value::Null), "rope_theta", json!(500000.0));
    let config = parse(&null).unwrap();
    assert_eq!(config.rope, Rope { theta: 500000.0, scaling: RopeScaling::None });
    assert_eq!(config.rope.position_scale(), 1.0);
    assert_eq!(parse(&small()).unwrap().rope, Rope { theta: 10000.0, scaling: RopeScaling::None });
    let default_type = with(small(), "rope_scaling", json!({"type": "default"}));
    assert_eq!(parse(&default_type).unwrap().rope.scaling, RopeScaling::None);
}

#[test]
fn defaults_for_optional_keys() {
    let config = parse(&small()).unwrap();
    assert_eq!(config.num_key_value_heads, 4);
    assert_eq!(config.head_dim, 16);
    assert!(!config.tie_word_embeddings);
    // `null` counts as absent, as in transformers.
    let nulls = with(with(small(), "num_key_value_heads", Value::Null), "head_dim", Value::Null);
    assert_eq!(parse(&nulls).unwrap(), config);
}

#[test]
fn grouped_query_attention_narrows_k_and_v() {
    let config = parse(&with(small(), "num_key_value_heads", json!(2))).unwrap();
    assert_eq!(shape(&config, "model.layers.1.self_attn.q_proj.weight"), Some(vec![64, 64]));
    assert_eq!(shape(&config, "model.layers.1.self_attn.k_proj.weight"), Some(vec![32, 64]));
    assert_eq!(shape(&config, "model.layers.1.self_attn.v_proj.weight"), Some(vec![32, 64]));
    assert_eq!(shape(&config, "model.layers.1.self_attn.o_proj.weight"), Some(vec![64, 64]));
}

#[test]
fn an_explicit_head_dim_sets_the_projection_widths() {
    let config = parse(&with(with(small(), "head_dim", json!(32)), "num_key_value_heads", json!(1))).unwrap();
    assert_eq!(config.head_dim, 32);
    assert_eq!(shape(&config, "model.layers.0.self_attn.q_proj.weight"), Some(vec![128, 64]));
    assert_eq!(shape(&config, "model.layers.0.self_attn.k_proj.weight"), Some(vec![32, 64]));
    assert_eq!(shape(&config, "model.layers.0.self_attn.o_proj.weight"), Some(vec![64, 128]));
    // With head_dim given, hidden_size need not be a multiple of the heads.
    let odd_hidden = with(with(small(), "hidden_size", json!(30)), "head_dim", json!(8));
    assert_eq!(parse(&odd_hidden).unwrap().head_dim, 8);
}

#[test]
fn lists_every_tensor_in_hugging_face_names() {
    let config = parse(&with(small(), "num_hidden_layers", json!(1))).unwrap();
    let expected: Vec<ParameterShape> = [
        ("model.embed_tokens.weight", vec![100, 64]),
        ("model.layers.0.input_layernorm.weight", vec![64]),
        ("model.layers.0.self_attn.q_proj.weight", vec![64, 64]),
        ("model.layers.0.self_attn.k_proj.weight", vec![64, 64]),
        ("model.layers.0.self_attn.v_proj.weight", vec![64, 64]),
        ("model.layers.0.self_attn.o_proj.weight", vec![64, 64]),
        ("model.layers.0.post_attention_layernorm.weight", vec![64]),
        ("model.layers.0.mlp.gate_proj.weight", vec![128, 64]),
        ("model.layers.0.mlp.up_proj.weight", vec![128, 64]),
        ("model.layers.0.mlp.down_proj.weight", vec![64, 128]),
        ("model.norm.weight", vec![64]),
        ("lm_head.weight", vec![100, 64]),
    ]
    .into_iter()
    .map(|(name, shape)| ParameterShape { name: name.into(), shape })
    .collect();
    assert_eq!(config.parameter_shapes(), expected);
    let total: usize = expected.iter().map(ParameterShape::len).sum();
    assert_eq!(config.num_parameters(), total as u64);
}

#[test]
fn tied_embeddings_have_no_lm_head() {
    let config = parse(&with(small(), "tie_word_embeddings", json!(true))).unwrap();
    assert_eq!(shape(&config, "lm_head.weight"), None);
    assert_eq!(shape(&config, "model.embed_tokens.weight"), Some(vec![100, 64]));
    let total: usize = config.parameter_shapes().iter().map(ParameterShape::len).sum();
    assert_eq!(config.num_parameters(), total as u64);
    let untied = parse(&small()).unwrap();
    assert_eq!(untied.num_parameters() - config.num_parameters(), 100 * 64);
}

#[test]
fn missing_required_keys_are_named() {
    for key in [
        "hidden_size",
        "intermediate_size",
        "num_attention_heads",
        "num_hidden_layers",
        "rms_norm_eps",
        "vocab_size",
        "max_position_embeddings",
    ] {
        let (kind, message) = invalid(&without(small(), key));
        assert_eq!(kind, ConfigErrorKind::Missing { key: key.into() });
        assert_eq!(message, format!("config.json: missing required key `{key}`"));
    }
}

#[test]
fn zero_sizes_are_rejected() {
    for key in [
        "hidden_size",
        "intermediate_size",
        "num_attention_heads",
        "num_key_value_heads",
        "head_dim",
        "num_hidden_layers",
        "vocab_size",
        "max_position_embeddings",
    ] {
        let (kind, message) = invalid(&with(small(), key, json!(0)));
        assert_eq!(kind, ConfigErrorKind::Zero { key: key.into() });
        assert_eq!(message, format!("config.json: `{key}` must be at least 1, found 0"));
    }
}

#[test]
fn values_of_the_wrong_type_are_named() {
    let (kind, message) = invalid(&with(small(), "hidden_size", json!("64")));
    assert_eq!(
        kind,
        ConfigErrorKind::WrongType {
            key: "hidden_size".into(),
            expected: "a non-negative integer",
            found: "\"64\"".into()
        }
    );
    assert_eq!(message, "config.json: `hidden_size` must be a non-negative integer, found \"64\"");
    let (_, message) = invalid(&with(small(), "num_hidden_layers", json!(2.5)));
    assert_eq!(message, "config.json: `num_hidden_layers` must be a non-negative integer, found 2.5");
    let (_, message) = invalid(&with(small(), "vocab_size", json!(-3)));
    assert_eq!(message, "config.json: `vocab_size` must be a non-negative integer, found -3");
    let (_, message) = invalid(&with(small(), "tie_word_embeddings", json!("yes")));
    assert_eq!(message, "config.json: `tie_word_embeddings` must be true or false, found \"yes\"");
    let (_, message) = invalid(&with(small(), "rms_norm_eps", json!([1e-5])));
    assert_eq!(message, "config.json: `rms_norm_eps` must be a number, found an array");
    let (_, message) = invalid(&with(small(), "rope_scaling", json!("linear")));
    assert_eq!(message, "config.json: `rope_scaling` must be an object or null, found \"linear\"");
    let (_, message) = invalid(&with(small(), "rope_scaling", json!({"type": 1, "factor": 2})));
    assert_eq!(message, "config.json: `rope_scaling.type` must be a string, found 1");
    let (kind, message) = invalid(&json!([1, 2]));
    assert_eq!(kind, ConfigErrorKind::NotAnObject { found: "an array".into() });
    assert_eq!(message, "config.json: the top level must be a JSON object, found an array");
}

#[test]
fn heads_must_divide_hidden_size_when_head_dim_is_absent() {
    let (kind, message) = invalid(&with(small(), "num_attention_heads", json!(5)));
    assert_eq!(kind, ConfigErrorKind::HeadsDoNotDivideHidden { hidden_size: 64, heads: 5 });
    assert_eq!(
        message,
        "config.json: `hidden_size` (64) is not divisible by `num_attention_heads` (5); set `head_dim` \
         if the model's heads are not hidden_size / num_attention_heads wide"
    );
}

#[test]
fn kv_heads_must_divide_heads() {
    for kv in [3, 8] {
        let (kind, message) = invalid(&with(small(), "num_key_value_heads", json!(kv)));
        assert_eq!(kind, ConfigErrorKind::KvHeadsDoNotDivideHeads { heads: 4, kv_heads: kv });
        assert_eq!(
            message,
            format!(
                "config.json: `num_attention_heads` (4) is not divisible by `num_key_value_heads` ({kv}); \
                 grouped-query attention shares each key/value head among the same number of query heads"
            )
        );
    }
}

#[test]
fn head_dim_must_be_even() {
    let (kind, message) = invalid(&with(small(), "head_dim", json!(15)));
    assert_eq!(kind, ConfigErrorKind::OddHeadDim { head_dim: 15, source_of: "head_dim" });
    assert_eq!(
        message,
        "config.json: the head dimension (15, from head_dim) must be even: RoPE rotates pairs of channels"
    );
    let (kind, message) = invalid(&with(small(), "hidden_size", json!(60)));
    assert_eq!(
        kind,
        ConfigErrorKind::OddHeadDim { head_dim: 15, source_of: "hidden_size / num_attention_heads" }
    );
    assert_eq!(
        message,
        "config.json: the head dimension (15, from hidden_size / num_attention_heads) must be even: RoPE \
         rotates pairs of channels"
    );
}

#[test]
fn eps_theta_and_factor_must_be_positive() {
    let cases = [
        (with(small(), "rms_norm_eps", json!(0.0)), "rms_norm_eps", 0.0),
        (with(small(), "rms_norm_eps", json!(-1e-5)), "rms_norm_eps", -1e-5),
        (with(small(), "rope_theta", json!(-10000)), "rope_theta", -10000.0),
        (with(small(), "rope_scaling", json!({"type": "linear", "factor": 0})), "rope_scaling.factor", 0.0),
        (
            with(small(), "rope_parameters", json!({"rope_type": "linear", "factor": -2.0})),
            "rope_parameters.factor",
            -2.0,
        ),
        (
            with(small(), "rope_parameters", json!({"rope_type": "default", "rope_theta": 0})),
            "rope_parameters.rope_theta",
            0.0,
        ),
    ];
    for (config, key, value) in cases {
        let (kind, message) = invalid(&config);
        assert_eq!(kind, ConfigErrorKind::NotPositive { key: key.into(), value });
        assert_eq!(
            message,
            format!("config.json: `{key}` must be a positive finite number, found {value:?}")
        );
    }
    let (kind, message) = invalid(&with(small(), "rope_scaling", json!({"type": "linear"})));
    assert_eq!(kind, ConfigErrorKind::Missing { key: "rope_scaling.factor".into() });
    assert_eq!(message, "config.json: missing required key `rope_scaling.factor`");
}

#[test]
fn unsupported_rope_types_name_the_type_and_the_supported_ones() {
    let supported = "\"default\" (no scaling), \"linear\" (position interpolation), \"llama3\" (Llama 3.1's frequency bands)";
    for rope_type in ["dynamic", "yarn", "longrope"] {
        let legacy = with(small(), "rope_scaling", json!({"type": rope_type, "factor": 2.0}));
        let (kind, message) = invalid(&legacy);
        assert_eq!(
            kind,
            ConfigErrorKind::UnsupportedRope {
                key: "rope_scaling.type".into(),
                rope_type: rope_type.into(),
                supported
            }
        );
        assert_eq!(
            message,
            format!(
                "config.json: `rope_scaling.type` is \"{rope_type}\", a RoPE type weft does not support; \
                 supported: {supported}"
            )
        );
        let current = with(small(), "rope_parameters", json!({"rope_type": rope_type, "factor": 8.0}));
        let (_, message) = invalid(&current);
        assert_eq!(
            message,
            format!(
                "config.json: `rope_parameters.rope_type` is \"{rope_type}\", a RoPE type weft does not \
                 support; supported: {supported}"
            )
        );
    }
    let (kind, message) = invalid(&with(small(), "rope_scaling", json!({"factor": 2.0})));
    assert_eq!(kind, ConfigErrorKind::MissingRopeType { key: "rope_scaling".into(), supported });
    assert_eq!(
        message,
        format!(
            "config.json: `rope_scaling` names no RoPE type; give `rope_type` (or `type`) as one of: {supported}"
        )
    );
}

#[test]
fn disagreeing_rope_settings_are_rejected() {
    let (kind, message) = invalid(&with(
        small(),
        "rope_scaling",
        json!({"type": "linear", "rope_type": "dynamic", "factor": 2}),
    ));
    assert_eq!(
        kind,
        ConfigErrorKind::Conflict {
            first: "rope_scaling.type".into(),
            first_value: "\"linear\"".into(),
            second: "rope_scaling.rope_type".into(),
            second_value: "\"dynamic\"".into(),
        }
    );
    assert_eq!(
        message,
        "config.json: `rope_scaling.type` says \"linear\" but `rope_scaling.rope_type` says \"dynamic\"; \
         remove one of them"
    );
    let scaling = with(
        with(small(), "rope_scaling", json!({"type": "linear", "factor": 2})),
        "rope_parameters",
        json!({"rope_type": "default"}),
    );
    let (_, message) = invalid(&scaling);
    assert_eq!(
        message,
        "config.json: `rope_scaling` says linear scaling by 2.0 but `rope_parameters` says no scaling; \
         remove one of them"
    );
    let theta = with(
        with(small(), "rope_theta", json!(10000)),
        "rope_parameters",
        json!({"rope_type": "default", "rope_theta": 5e5}),
    );
    let (_, message) = invalid(&theta);
    assert_eq!(
        message,
        "config.json: `rope_theta` says 10000.0 but `rope_parameters.rope_theta` says 500000.0; remove one of them"
    );
}

#[test]
fn json_syntax_errors_give_line_and_column() {
    let text = "{\n  \"hidden_size\": 64,\n  \"vocab_size\": 100,,\n}";
    let err = LlamaConfig::from_json_str(text, "models/tiny/config.json").unwrap_err();
    assert!(matches!(err, ConfigError::Json { line: 3, column: 21, .. }), "{err:?}");
    assert_eq!(err.to_string(), "models/tiny/config.json:3:21: invalid JSON: key must be a string");
    assert_eq!(err.kind(), None);
}

#[test]
fn from_file_names_the_file() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("model_config");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("config.json");
    std::fs::write(&path, with(small(), "vocab_size", json!(0)).to_string()).unwrap();
    let err = LlamaConfig::from_file(&path).unwrap_err();
    assert_eq!(err.to_string(), format!("{}: `vocab_size` must be at least 1, found 0", path.display()));
    std::fs::write(&path, small().to_string()).unwrap();
    assert_eq!(LlamaConfig::from_file(&path).unwrap(), parse(&small()).unwrap());

    let missing = dir.join("no-such-config.json");
    let err = LlamaConfig::from_file(&missing).unwrap_err();
    assert!(matches!(err, ConfigError::Io { .. }));
    assert!(
        err.to_string().starts_with(&format!("cannot read model config {}: ", missing.display())),
        "{err}"
    );
}

#[test]
fn sizes_too_large_to_count_are_rejected() {
    let huge = with(with(small(), "vocab_size", json!(u64::MAX / 2)), "hidden_size", json!(1u64 << 40));
    let huge = with(huge, "head_dim", json!(2));
    // Each size is within `weft_ir::limits` long before the parameter count could overflow.
    let (kind, message) = invalid(&huge);
    assert!(matches!(kind, ConfigErrorKind::TooLargeSize(_)), "{kind:?}");
    assert!(
        message.starts_with("config.json: hidden_size = 1099511627776 is larger than the limit 131072"),
        "{message}"
    );
}

#[test]
fn validate_checks_configs_built_in_code() {
    let mut config = parse(&small()).unwrap();
    assert_eq!(config.validate(), Ok(()));
    config.rope.scaling = RopeScaling::Linear { factor: f64::NAN };
    assert!(
        matches!(config.validate(), Err(ConfigErrorKind::NotPositive { ref key, .. }) if key == "rope_scaling.factor")
    );
    config.rope.scaling = RopeScaling::None;
    config.num_key_value_heads = 3;
    assert_eq!(config.validate(), Err(ConfigErrorKind::KvHeadsDoNotDivideHeads { heads: 4, kv_heads: 3 }));
}
