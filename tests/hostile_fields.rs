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
            "modules to save an mlp",
            adapter_config(r#", "modules_to_save": ["norm", "gate_proj"]"#),
            "`modules_to_save: \"gate_proj\"` is not supported (weft replaces whole modules among embed_tokens, \
             norm, input_layernorm, post_attention_layernorm, lm_head)",
        ),
        (
            "modules to save by path",
            adapter_config(r#", "modules_to_save": ["model.layers.0.mlp"]"#),
            "`modules_to_save: \"model.layers.0.mlp\"` is not supported",
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
    let cases: Vec<Case> = refusals
        .iter()
        .flat_map(|(name, config, fragment)| {
            with_adapter_commands(name, |c| {
                c.file("adapter/adapter_config.json", config)
                    .expect(&format!("adapter/adapter_config.json: {fragment}"))
            })
        })
        .collect();
    check_all(&cases);
}

const EXPORT: &[&str] = &["export", "{dir}/model", "--adapter", "{dir}/adapter", "--out", "{dir}/merged"];

/// `make` applied to a case of `forward --adapter` and one of `export`, both on the fixture.
fn with_adapter_commands(name: &str, make: impl Fn(Case) -> Case) -> Vec<Case> {
    let mut forward = FORWARD.to_vec();
    forward.extend(["--adapter", "{dir}/adapter"]);
    [("forward", forward.as_slice()), ("export", EXPORT)]
        .into_iter()
        .map(|(command, args)| {
            make(
                case(&format!("{name} ({command})"), args)
                    .copy(FIXTURE, "model")
                    .file("in.safetensors", input_ids()),
            )
        })
        .collect()
}

/// `adapter_model.safetensors` for the fixture: rank-2 factors of q_proj and
/// v_proj in both layers, as PEFT names them, with `edit` applied to the map.
fn adapter_weights(edit: impl Fn(&mut Vec<(String, Vec<usize>)>)) -> Vec<u8> {
    let mut tensors = Vec::new();
    for layer in 0..2 {
        for (module, out) in [("q_proj", 64), ("v_proj", 32)] {
            let base = format!("base_model.model.model.layers.{layer}.self_attn.{module}");
            tensors.push((format!("{base}.lora_A.weight"), vec![2, 64]));
            tensors.push((format!("{base}.lora_B.weight"), vec![out, 2]));
        }
    }
    edit(&mut tensors);
    let data: Vec<Vec<u8>> =
        tensors.iter().map(|(_, shape)| vec![0u8; 4 * shape.iter().product::<usize>()]).collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .zip(&data)
        .map(|((name, shape), bytes)| {
            (
                name.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes).unwrap(),
            )
        })
        .collect();
    safetensors::serialize(views, None).unwrap()
}

/// An adapter made for another model or configuration: its tensors do not
/// match the base or its own config (issue 12's "an adapter whose r, targets or
/// shapes don't match the base"), refused naming the tensor, by `forward` and
/// `export` alike, before anything is written.
#[test]
fn adapter_tensors_that_do_not_fit_the_base_are_refused() {
    let q_a = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight";
    let v_b = "base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight";
    let norm = "base_model.model.model.norm.weight";
    type Edit = Box<dyn Fn(&mut Vec<(String, Vec<usize>)>)>;
    let refusals: Vec<(&str, String, Edit, String)> = vec![
        (
            "rank",
            adapter_config(r#", "r": 4"#).replacen(r#""r": 2, "#, "", 1),
            Box::new(|_| {}),
            format!("adapter tensor `{q_a}` in {{dir}}/adapter/adapter_model.safetensors has rank 2 (shape [2, 64]), but {{dir}}/adapter/adapter_config.json says `r: 4`"),
        ),
        (
            "missing target",
            adapter_config("").replace(r#"["q_proj", "v_proj"]"#, r#"["q_proj", "k_proj", "v_proj"]"#),
            Box::new(|_| {}),
            "adapter tensor `base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight` (expected shape [2, 64]) is missing".into(),
        ),
        (
            "wider model",
            adapter_config(""),
            Box::new(move |t| t.iter_mut().filter(|(n, _)| n == v_b).for_each(|(_, s)| *s = vec![64, 2])),
            format!("adapter tensor `{v_b}` in {{dir}}/adapter/adapter_model.safetensors has shape [64, 2]; expected [32, 2]"),
        ),
        (
            "unlisted target",
            adapter_config("").replace(r#"["q_proj", "v_proj"]"#, r#"["q_proj"]"#),
            Box::new(|_| {}),
            "is a LoRA factor of `model.layers.0.self_attn.v_proj`, which `target_modules` in {dir}/adapter/adapter_config.json does not list".into(),
        ),
        (
            "unlisted saved module",
            adapter_config(""),
            Box::new(move |t| t.push((norm.into(), vec![64]))),
            format!("adapter tensor `{norm}` in {{dir}}/adapter/adapter_model.safetensors replaces the module `model.norm`, which `modules_to_save` in {{dir}}/adapter/adapter_config.json does not list"),
        ),
        (
            "saved module shape",
            adapter_config(r#", "modules_to_save": ["norm"]"#),
            Box::new(move |t| t.push((norm.into(), vec![32]))),
            format!("adapter tensor `{norm}` in {{dir}}/adapter/adapter_model.safetensors has shape [32]; expected [64]"),
        ),
        (
            "unknown tensor",
            adapter_config(""),
            Box::new(|t| t.push(("base_model.model.model.layers.0.mlp.up_proj.weight".into(), vec![176, 64]))),
            "is neither a LoRA factor nor a weight of a module weft replaces".into(),
        ),
        (
            "layer beyond the base",
            adapter_config(""),
            Box::new(|t| t.push(("base_model.model.model.layers.2.self_attn.q_proj.lora_A.weight".into(), vec![2, 64]))),
            "is for layer 2, but the base model has 2 layers".into(),
        ),
    ];
    let cases: Vec<Case> = refusals
        .iter()
        .flat_map(|(name, config, edit, fragment)| {
            with_adapter_commands(name, |c| {
                c.file("adapter/adapter_config.json", config)
                    .file("adapter/adapter_model.safetensors", adapter_weights(edit))
                    .expect(fragment)
            })
        })
        .collect();
    check_all(&cases);
}

/// A `weft_run.json` that is not a record weft wrote is refused naming it,
/// before any weights are read.
#[test]
fn a_bad_run_record_is_refused() {
    let good = r#"{"format": 1, "rope_linear_factor": 2.0, "base_max_position_embeddings": 256, "seq_len": 512, "pattern": null, "mode": "lora"}"#;
    let refusals = [
        (
            "record format",
            good.replace("\"format\": 1", "\"format\": 7"),
            "adapter/weft_run.json: `format` is 7, but this weft reads format 1",
        ),
        (
            "record factor",
            good.replace("2.0", "0.0"),
            "adapter/weft_run.json: `rope_linear_factor` must be a positive number, found 0",
        ),
        ("record json", good.replace("}", ""), "adapter/weft_run.json:1:"),
        ("record key", good.replace("\"mode\"", "\"steps\": 3, \"mode\""), "unknown field `steps`"),
    ];
    let cases: Vec<Case> = refusals
        .iter()
        .flat_map(|(name, record, fragment)| {
            with_adapter_commands(name, |c| {
                c.file("adapter/adapter_config.json", adapter_config(""))
                    .file("adapter/adapter_model.safetensors", adapter_weights(|_| {}))
                    .file("adapter/weft_run.json", record)
                    .expect(fragment)
            })
        })
        .collect();
    check_all(&cases);
}
