//! PEFT LoRA adapters written the way PEFT saves them, read back.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use weft_ir::model::LlamaConfig;
use weft_runtime::io::{AdapterError, HostTensor, load_adapter, save};

fn config() -> LlamaConfig {
    let json = r#"{"hidden_size": 8, "intermediate_size": 12, "num_attention_heads": 4,
        "num_key_value_heads": 2, "num_hidden_layers": 2, "rms_norm_eps": 1e-6,
        "vocab_size": 10, "max_position_embeddings": 32}"#;
    LlamaConfig::from_json_str(json, "config.json").unwrap()
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
