//! Hostile input, model and adapter fields: every `config.json` or
//! `adapter_config.json` value that would change the math in a way weft does
//! not implement is refused, naming the field, the value and the file; a
//! `num_hidden_layers` that disagrees with the checkpoint is refused, naming
//! both numbers, before anything is sized by it. docs/model-fields.md is the
//! table of fields. Harness: `common/hostile.rs`.

mod common;

use common::hostile::{Case, case, check_all};

const FIXTURE: &str = "tests/data/llama-2layer";
const FIXTURE_CONFIG: &str = include_str!("data/llama-2layer/config.json");

/// The fixture's config.json with `from` replaced by `to` (which must occur).
fn edited_config(from: &str, to: &str) -> String {
    assert!(FIXTURE_CONFIG.contains(from), "the fixture config has no {from:?}");
    FIXTURE_CONFIG.replace(from, to)
}

/// The fixture's config.json with `extra` (`"key": value`) added.
fn config_with(extra: &str) -> String {
    edited_config("\"vocab_size\": 128", &format!("\"vocab_size\": 128, {extra}"))
}

/// `input_ids` [1, 4] (I64) for `weft forward`.
fn input_ids() -> Vec<u8> {
    let bytes: Vec<u8> = [1i64, 2, 3, 4].iter().flat_map(|v| v.to_le_bytes()).collect();
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::I64, vec![1, 4], &bytes).unwrap();
    safetensors::serialize([("input_ids", view)], None).unwrap()
}

const FORWARD: &[&str] =
    &["forward", "{dir}/model", "--input", "{dir}/in.safetensors", "--out", "{dir}/out.safetensors"];
const COMPILE: &[&str] = &["compile", "{dir}/model", "--emit", "plan", "--out", "{dir}/plan.txt"];
const INSPECT: &[&str] = &["inspect", "kernels", "{dir}/model"];

/// The fixture model with `config` as its config.json, through forward, compile and inspect kernels.
fn on_every_command(name: &str, config: &str, expect: &[&str]) -> Vec<Case> {
    [("forward", FORWARD), ("compile", COMPILE), ("inspect", INSPECT)]
        .into_iter()
        .map(|(command, args)| {
            let mut c = case(&format!("{name} ({command})"), args)
                .copy(FIXTURE, "model")
                .file("model/config.json", config)
                .file("in.safetensors", input_ids());
            for fragment in expect {
                c = c.expect(fragment);
            }
            c
        })
        .collect()
}

#[test]
fn config_fields_that_change_the_math_are_refused() {
    let refusals: &[(&str, String, &[&str])] = &[
        (
            "attention bias",
            edited_config("\"attention_bias\": false", "\"attention_bias\": true"),
            &[
                "model/config.json: `attention_bias: true` is not supported (weft's LLaMA has no attention biases)",
            ],
        ),
        (
            "mlp bias",
            edited_config("\"mlp_bias\": false", "\"mlp_bias\": true"),
            &["model/config.json: `mlp_bias: true` is not supported"],
        ),
        (
            "clipped gelu",
            edited_config("\"hidden_act\": \"silu\"", "\"hidden_act\": \"gelu_10\""),
            &["model/config.json: `hidden_act: \"gelu_10\"` is not supported", "gelu_pytorch_tanh"],
        ),
        (
            "relu",
            edited_config("\"hidden_act\": \"silu\"", "\"hidden_act\": \"relu\""),
            &["model/config.json: `hidden_act: \"relu\"` is not supported"],
        ),
        (
            "mistral",
            edited_config("\"model_type\": \"llama\"", "\"model_type\": \"mistral\""),
            &["model/config.json: `model_type: \"mistral\"` is not supported"],
        ),
        (
            "architecture",
            edited_config("\"LlamaForCausalLM\"", "\"Qwen2ForCausalLM\""),
            &["model/config.json: `architectures: [\"Qwen2ForCausalLM\"]` is not supported"],
        ),
        (
            "sliding window",
            config_with("\"sliding_window\": 4096"),
            &["model/config.json: `sliding_window: 4096` is not supported"],
        ),
        (
            "quantized",
            config_with("\"quantization_config\": {\"quant_method\": \"gptq\"}"),
            &["model/config.json: `quantization_config: {\"quant_method\":\"gptq\"}` is not supported"],
        ),
        (
            "partial rotary",
            config_with("\"partial_rotary_factor\": 0.5"),
            &["model/config.json: `partial_rotary_factor: 0.5` is not supported"],
        ),
        (
            "dynamic rope",
            edited_config("\"rope_type\": \"default\"", "\"rope_type\": \"dynamic\", \"factor\": 2.0"),
            &[
                "model/config.json: `rope_parameters.rope_type` is \"dynamic\", a RoPE type weft does not support",
            ],
        ),
    ];
    let cases: Vec<Case> =
        refusals.iter().flat_map(|(name, config, expect)| on_every_command(name, config, expect)).collect();
    check_all(&cases);
}

#[test]
fn a_layer_count_other_than_the_checkpoints_is_refused_before_the_graph() {
    let counts: &[(&str, &str, &str)] = &[
        ("fewer layers", "1", "`num_hidden_layers` is 1, but the checkpoint"),
        ("more layers", "3", "`num_hidden_layers` is 3, but the checkpoint"),
        // Within the size limit (1024) but not the weights: refused on the weights, before the
        // graph of a thousand layers is built (a billion is refused by the limit, hostile_sizes.rs).
        ("a thousand layers", "1000", "`num_hidden_layers` is 1000, but the checkpoint"),
    ];
    let cases: Vec<Case> = counts
        .iter()
        .flat_map(|(name, layers, fragment)| {
            let config =
                edited_config("\"num_hidden_layers\": 2", &format!("\"num_hidden_layers\": {layers}"));
            on_every_command(
                name,
                &config,
                &["model/config.json: ", fragment, "model.safetensors holds 2 layers"],
            )
        })
        .collect();
    check_all(&cases);
}

/// PEFT's `adapter_config.json` for the fixture: rank 2 on q_proj and v_proj, plus `extra`.
fn adapter_config(extra: &str) -> String {
    format!(
        r#"{{"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": 2, "lora_alpha": 8,
            "target_modules": ["q_proj", "v_proj"], "lora_dropout": 0.0{extra}}}"#
    )
}

#[test]
fn adapter_fields_that_change_the_math_are_refused() {
    let refusals: &[(&str, String, &str)] = &[
        ("dora", adapter_config(r#", "use_dora": true"#), "`use_dora: true` is not supported (DoRA"),
        (
            "ia3",
            r#"{"peft_type": "IA3", "target_modules": ["k_proj", "v_proj"], "feedforward_modules": []}"#
                .into(),
            "`peft_type: \"IA3\"` is not supported",
        ),
        (
            "rank pattern",
            adapter_config(r#", "rank_pattern": {"q_proj": 4}"#),
            "`rank_pattern: {\"q_proj\":4}` is not supported",
        ),
        (
            "alpha pattern",
            adapter_config(r#", "alpha_pattern": {"v_proj": 32}"#),
            "`alpha_pattern: {\"v_proj\":32}` is not supported",
        ),
        (
            "regex targets",
            r#"{"peft_type": "LORA", "r": 2, "lora_alpha": 8, "target_modules": ".*\\.(q|v)_proj"}"#.into(),
            "`target_modules: \".*\\\\.(q|v)_proj\"` is not supported",
        ),
        (
            "mlp target",
            r#"{"peft_type": "LORA", "r": 2, "lora_alpha": 8, "target_modules": ["q_proj", "gate_proj"]}"#
                .into(),
            "`target_modules: \"gate_proj\"` is not supported",
        ),
        (
            "modules to save",
            adapter_config(r#", "modules_to_save": ["lm_head"]"#),
            "`modules_to_save: [\"lm_head\"]` is not supported",
        ),
        ("bias", adapter_config(r#", "bias": "lora_only""#), "`bias: \"lora_only\"` is not supported"),
        ("lora bias", adapter_config(r#", "lora_bias": true"#), "`lora_bias: true` is not supported"),
        (
            "fan in fan out",
            adapter_config(r#", "fan_in_fan_out": true"#),
            "`fan_in_fan_out: true` is not supported",
        ),
        (
            "some layers",
            adapter_config(r#", "layers_to_transform": [0]"#),
            "`layers_to_transform: [0]` is not supported",
        ),
        (
            "excluded modules",
            adapter_config(r#", "exclude_modules": ["v_proj"]"#),
            "`exclude_modules: [\"v_proj\"]` is not supported",
        ),
    ];
    let mut args = FORWARD.to_vec();
    args.extend(["--adapter", "{dir}/adapter"]);
    let cases: Vec<Case> = refusals
        .iter()
        .map(|(name, config, fragment)| {
            case(name, &args)
                .copy(FIXTURE, "model")
                .file("in.safetensors", input_ids())
                .file("adapter/adapter_config.json", config)
                .expect(&format!("adapter/adapter_config.json: {fragment}"))
        })
        .collect();
    check_all(&cases);
}
