//! PEFT LoRA adapters written the way PEFT saves them, read back.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use weft_ir::model::LlamaConfig;
use weft_runtime::io::{AdapterError, HostTensor, apply_saved_modules, load_adapter, merge_adapter, save};

fn config() -> LlamaConfig {
    config_tied(false)
}

fn config_tied(tied: bool) -> LlamaConfig {
    let json = format!(
        r#"{{"hidden_size": 8, "intermediate_size": 12, "num_attention_heads": 4,
        "num_key_value_heads": 2, "num_hidden_layers": 2, "rms_norm_eps": 1e-6,
        "vocab_size": 10, "max_position_embeddings": 32, "tie_word_embeddings": {tied}}}"#
    );
    LlamaConfig::from_json_str(&json, "config.json").unwrap()
}

fn dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("weft-adapter-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// PEFT's layout: q_proj and v_proj adapted at rank 2, values `i / 10`.
fn write_adapter(dir: &Path, modules: &[&str], skip: Option<&str>, v_rows: usize) {
    let config = format!(
        r#"{{"peft_type": "LORA", "r": 2, "lora_alpha": 16, "target_modules": {modules:?}, "lora_dropout": 0.05}}"#
    );
    std::fs::write(dir.join("adapter_config.json"), config).unwrap();
    let mut tensors = BTreeMap::new();
    for layer in 0..2 {
        for (module, out) in [("q_proj", 8), ("v_proj", v_rows)] {
            let base = format!("base_model.model.model.layers.{layer}.self_attn.{module}");
            for (factor, shape) in [("lora_A", vec![2, 8]), ("lora_B", vec![out, 2])] {
                let name = format!("{base}.{factor}.weight");
                if Some(name.as_str()) == skip {
                    continue;
                }
                let len = shape.iter().product::<usize>();
                tensors.insert(name, HostTensor { shape, data: (0..len).map(|i| i as f32 / 10.0).collect() });
            }
        }
    }
    save(&dir.join("adapter_model.safetensors"), &tensors).unwrap();
}

#[test]
fn a_peft_adapter_loads_under_weft_names() {
    let dir = dir("ok");
    write_adapter(&dir, &["q_proj", "v_proj"], None, 4);
    let adapter = load_adapter(&dir, &config()).unwrap();
    assert_eq!(adapter.lora.rank, 2);
    assert_eq!(adapter.lora.alpha, 16.0);
    assert_eq!(adapter.lora.target_modules, ["q_proj", "v_proj"]);
    assert_eq!(adapter.tensors.len(), 8);
    let b = &adapter.tensors["model.layers.1.self_attn.v_proj.lora_B.weight"];
    assert_eq!(b.shape, [4, 2]);
    assert_eq!(b.data[3], 0.3);
}

#[test]
fn bad_adapters_name_the_problem() {
    let config = config();
    let dir = dir("missing");
    let skipped = "base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight";
    write_adapter(&dir, &["q_proj", "v_proj"], Some(skipped), 4);
    let err = load_adapter(&dir, &config).unwrap_err();
    assert!(matches!(err, AdapterError::Missing { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with(&format!("adapter tensor `{skipped}` (expected shape [2, 8]) is missing"))
    );

    let dir = self::dir("shape");
    write_adapter(&dir, &["q_proj", "v_proj"], None, 8);
    let err = load_adapter(&dir, &config).unwrap_err();
    assert!(err.to_string().ends_with("has shape [8, 2]; expected [4, 2]"), "{err}");

    let dir = self::dir("module");
    write_adapter(&dir, &["q_proj", "gate_proj"], None, 4);
    let err = load_adapter(&dir, &config).unwrap_err();
    assert!(
        err.to_string().ends_with(
            "`target_modules: \"gate_proj\"` is not supported (weft adapts q_proj, k_proj, v_proj, o_proj)"
        ),
        "{err}"
    );

    let dir = self::dir("json");
    std::fs::write(dir.join("adapter_config.json"), "{\"r\": 2,\n \"lora_alpha\": }").unwrap();
    let err = load_adapter(&dir, &config).unwrap_err();
    assert!(matches!(err, AdapterError::Json { line: 2, .. }), "{err:?}");
}

fn filled(shape: &[usize], value: f32) -> HostTensor {
    HostTensor { shape: shape.to_vec(), data: vec![value; shape.iter().product()] }
}

/// [`write_adapter`]'s adapter with `modules_to_save` (and `extra` config keys) and `tensors` added.
fn write_saving_adapter(dir: &Path, modules_to_save: &str, extra: &str, tensors: &[(&str, HostTensor)]) {
    write_adapter(dir, &["q_proj", "v_proj"], None, 4);
    let config = format!(
        r#"{{"peft_type": "LORA", "r": 2, "lora_alpha": 16, "target_modules": ["q_proj", "v_proj"],
            "modules_to_save": {modules_to_save}{extra}}}"#
    );
    std::fs::write(dir.join("adapter_config.json"), config).unwrap();
    let file = weft_runtime::io::TensorFile::load(&dir.join("adapter_model.safetensors")).unwrap();
    let mut all: BTreeMap<String, HostTensor> =
        file.names().into_iter().map(|n| (n.clone(), file.f32(&n).unwrap())).collect();
    for (name, tensor) in tensors {
        all.insert(name.to_string(), tensor.clone());
    }
    save(&dir.join("adapter_model.safetensors"), &all).unwrap();
}

const EMBED: &str = "base_model.model.model.embed_tokens.weight";
const NORM: &str = "base_model.model.model.norm.weight";
const LM_HEAD: &str = "base_model.model.lm_head.weight";

#[test]
fn saved_modules_load_under_the_names_they_replace() {
    let dir = dir("saved");
    let layer_norm = "base_model.model.model.layers.1.post_attention_layernorm.weight";
    write_saving_adapter(
        &dir,
        r#"["embed_tokens", "norm"]"#,
        "",
        &[(EMBED, filled(&[10, 8], 0.5)), (NORM, filled(&[8], 2.0)), (layer_norm, filled(&[8], 3.0))],
    );
    let adapter = load_adapter(&dir, &config()).unwrap();
    assert_eq!(adapter.modules_to_save, ["embed_tokens", "norm"]);
    let names: Vec<&str> = adapter.replacements.keys().map(String::as_str).collect();
    // A listed module absent from the file (the other norms) keeps its base weight: no replacement.
    assert_eq!(
        names,
        ["model.embed_tokens.weight", "model.layers.1.post_attention_layernorm.weight", "model.norm.weight"]
    );
    assert_eq!(adapter.replacements["model.norm.weight"].data, [2.0; 8]);
    assert_eq!(adapter.tensors.len(), 8, "the LoRA factors as before");
}

#[test]
fn tensors_the_config_does_not_account_for_are_errors() {
    let config = config();
    // (label, modules_to_save, tensors added to the file, expected message fragment)
    type Case<'a> = (&'a str, &'a str, Vec<(&'a str, HostTensor)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            "not listed",
            r#"["norm"]"#,
            vec![(EMBED, filled(&[10, 8], 0.5))],
            "adapter tensor `base_model.model.model.embed_tokens.weight` in {file} replaces the module \
             `model.embed_tokens`, which `modules_to_save` in {config} does not list",
        ),
        (
            "layer norm only",
            r#"["input_layernorm"]"#,
            vec![(NORM, filled(&[8], 1.0))],
            "replaces the module `model.norm`, which `modules_to_save`",
        ),
        (
            "unknown key",
            r#"["norm"]"#,
            vec![("base_model.model.model.layers.0.mlp.up_proj.weight", filled(&[12, 8], 1.0))],
            "adapter tensor `base_model.model.model.layers.0.mlp.up_proj.weight` in {file} is neither a LoRA \
             factor nor a weight of a module weft replaces",
        ),
        (
            "no prefix",
            "null",
            vec![("model.norm.weight", filled(&[8], 1.0))],
            "does not start with PEFT's prefix",
        ),
        (
            "unlisted target",
            "null",
            vec![("base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight", filled(&[2, 8], 1.0))],
            "is a LoRA factor of `model.layers.0.self_attn.k_proj`, which `target_modules` in {config} does not list",
        ),
        (
            "layer beyond the base",
            "null",
            vec![("base_model.model.model.layers.2.self_attn.q_proj.lora_A.weight", filled(&[2, 8], 1.0))],
            "is for layer 2, but the base model has 2 layers",
        ),
        (
            "saved module shape",
            r#"["lm_head"]"#,
            vec![(LM_HEAD, filled(&[12, 8], 1.0))],
            "adapter tensor `base_model.model.lm_head.weight` in {file} has shape [12, 8]; expected [10, 8]",
        ),
    ];
    for (label, modules, tensors, fragment) in cases {
        let dir = dir(&format!("unexpected-{}", label.replace(' ', "-")));
        write_saving_adapter(&dir, modules, "", &tensors);
        let err = load_adapter(&dir, &config).unwrap_err().to_string();
        let fragment = fragment
            .replace("{file}", &dir.join("adapter_model.safetensors").display().to_string())
            .replace("{config}", &dir.join("adapter_config.json").display().to_string());
        assert!(err.contains(&fragment), "{label}: {err}");
    }
}

#[test]
fn a_rank_other_than_r_is_named_as_such() {
    let dir = dir("rank");
    write_adapter(&dir, &["q_proj", "v_proj"], None, 4);
    let config_text =
        r#"{"peft_type": "LORA", "r": 4, "lora_alpha": 16, "target_modules": ["q_proj", "v_proj"]}"#;
    std::fs::write(dir.join("adapter_config.json"), config_text).unwrap();
    let err = load_adapter(&dir, &config()).unwrap_err();
    assert!(matches!(err, AdapterError::Rank { found: 2, rank: 4, .. }), "{err:?}");
    let expected = format!(
        "adapter tensor `base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight` in {} has rank 2 \
         (shape [2, 8]), but {} says `r: 4`",
        dir.join("adapter_model.safetensors").display(),
        dir.join("adapter_config.json").display()
    );
    assert_eq!(err.to_string(), expected);
    // An adapter for a wider model: A's input features are wrong, so it is a shape error.
    let wide = LlamaConfig { hidden_size: 16, head_dim: 2, ..config() };
    let err = load_adapter(&dir, &wide).unwrap_err().to_string();
    assert!(err.ends_with("has shape [2, 8]; expected [4, 16]"), "{err}");
}

/// Base weights of `config`, each tensor filled with its index.
fn base_weights(config: &LlamaConfig) -> BTreeMap<String, HostTensor> {
    config
        .parameter_shapes()
        .into_iter()
        .enumerate()
        .map(|(i, p)| (p.name.clone(), filled(&p.shape, i as f32)))
        .collect()
}

#[test]
fn tied_embeddings_come_apart_as_in_peft_unless_weight_tying_is_ensured() {
    let tied = config_tied(true);
    let embed = filled(&[10, 8], 0.5);
    let base = base_weights(&tied);
    let base_embed = base["model.embed_tokens.weight"].clone();

    // Without ensure_weight_tying, PEFT's copy of embed_tokens leaves lm_head on the base weight.
    let dir = dir("tied-apart");
    write_saving_adapter(&dir, r#"["embed_tokens"]"#, "", &[(EMBED, embed.clone())]);
    let adapter = load_adapter(&dir, &tied).unwrap();
    let mut weights = base.clone();
    let after = apply_saved_modules(&tied, &mut weights, &adapter.replacements, adapter.ensure_weight_tying);
    assert!(!after.tie_word_embeddings);
    assert_eq!(weights["model.embed_tokens.weight"], embed);
    assert_eq!(weights["lm_head.weight"], base_embed);
    let (merged_config, merged) = merge_adapter(&tied, base.clone(), &adapter).unwrap();
    assert!(!merged_config.tie_word_embeddings);
    assert_eq!(merged["lm_head.weight"], base_embed);

    // With it, the head stays the (saved) embedding; a saved lm_head copy must agree.
    let dir = self::dir("tied-together");
    let extra = r#", "ensure_weight_tying": true"#;
    write_saving_adapter(
        &dir,
        r#"["embed_tokens"]"#,
        extra,
        &[(EMBED, embed.clone()), (LM_HEAD, embed.clone())],
    );
    let adapter = load_adapter(&dir, &tied).unwrap();
    let (merged_config, merged) = merge_adapter(&tied, base.clone(), &adapter).unwrap();
    assert!(merged_config.tie_word_embeddings);
    assert_eq!(merged["model.embed_tokens.weight"], embed);
    assert!(!merged.contains_key("lm_head.weight"), "a tied checkpoint has no lm_head");
    write_saving_adapter(
        &dir,
        r#"["embed_tokens"]"#,
        extra,
        &[(EMBED, embed.clone()), (LM_HEAD, filled(&[10, 8], 1.0))],
    );
    let err = load_adapter(&dir, &tied).unwrap_err();
    assert!(matches!(err, AdapterError::TiedDiffer { .. }), "{err:?}");

    // An untied model takes each tensor by name.
    let untied = config();
    let dir = self::dir("untied");
    write_saving_adapter(&dir, r#"["lm_head"]"#, "", &[(LM_HEAD, filled(&[10, 8], 1.0))]);
    let adapter = load_adapter(&dir, &untied).unwrap();
    let (merged_config, merged) = merge_adapter(&untied, base_weights(&untied), &adapter).unwrap();
    assert_eq!(merged_config, untied);
    assert_eq!(merged["lm_head.weight"], filled(&[10, 8], 1.0));
}

#[test]
fn merged_weights_are_w_plus_scaled_b_a_in_f64() {
    let config = config();
    let dir = dir("merge");
    write_saving_adapter(&dir, r#"["norm"]"#, "", &[(NORM, filled(&[8], 2.0))]);
    let adapter = load_adapter(&dir, &config).unwrap();
    let base = base_weights(&config);
    let (_, merged) = merge_adapter(&config, base.clone(), &adapter).unwrap();
    assert_eq!(merged.len(), config.parameter_shapes().len());
    assert_eq!(merged["model.norm.weight"].data, [2.0; 8]);
    assert_eq!(
        merged["model.layers.0.self_attn.k_proj.weight"],
        base["model.layers.0.self_attn.k_proj.weight"]
    );
    let s = adapter.lora.scaling();
    for layer in 0..2 {
        for module in ["q_proj", "v_proj"] {
            let name = |suffix: &str| format!("model.layers.{layer}.self_attn.{module}.{suffix}");
            let (w, a, b) = (
                &base[&name("weight")],
                &adapter.tensors[&name("lora_A.weight")],
                &adapter.tensors[&name("lora_B.weight")],
            );
            let (out, input) = (w.shape[0], w.shape[1]);
            let got = &merged[&name("weight")];
            for o in 0..out {
                for i in 0..input {
                    let ba: f64 =
                        (0..2).map(|k| f64::from(b.data[o * 2 + k]) * f64::from(a.data[k * input + i])).sum();
                    let want = (f64::from(w.data[o * input + i]) + s * ba) as f32;
                    assert_eq!(got.data[o * input + i], want, "{} [{o}, {i}]", name("weight"));
                }
            }
        }
    }
}
