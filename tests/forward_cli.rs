//! `weft forward` on Hugging Face checkpoints the test writes (random weights,
//! GQA, tied and untied embeddings, linear RoPE scaling, an S²-Attn pattern
//! and a PEFT adapter), against the loop-by-loop f64 LLaMA in
//! `ir/tests/support/llama_reference.rs`.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use common::{example, gpu, ok, scratch, stderr, weft};
use weft_ir::interp::Tensor;
use weft_ir::model::{LlamaConfig, LoraConfig};
use weft_ir::{Overrides, Schedule};
use weft_runtime::io::{HostTensor, TensorFile, save};

#[path = "../ir/tests/support/llama_reference.rs"]
mod llama_reference;

/// GPU f32 against the f64 reference, relative to the largest logit.
const TOLERANCE: f64 = 1e-4;

fn config_json(tied: bool, hidden_act: &str) -> String {
    format!(
        r#"{{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 16,
            "intermediate_size": 24, "num_attention_heads": 4, "num_key_value_heads": 2,
            "num_hidden_layers": 2, "rms_norm_eps": 1e-5, "vocab_size": 11,
            "max_position_embeddings": 64, "tie_word_embeddings": {tied}, "torch_dtype": "float32",
            "hidden_act": "{hidden_act}",
            "rope_theta": 500.0, "rope_scaling": {{"type": "linear", "factor": 2.0}}}}"#
    )
}

/// Deterministic values in (-0.5, 0.5) that differ from tensor to tensor.
fn values(len: usize, salt: usize) -> Vec<f32> {
    (0..len).map(|i| (((i * 7919 + salt * 104_729) % 1000) as f32 / 1000.0) - 0.5).collect()
}

/// Writes config.json and model.safetensors; returns the weights as f64 tensors.
fn write_model(dir: &Path, tied: bool) -> (LlamaConfig, HashMap<String, Tensor>) {
    write_model_with(dir, tied, "silu")
}

fn write_model_with(dir: &Path, tied: bool, hidden_act: &str) -> (LlamaConfig, HashMap<String, Tensor>) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("config.json"), config_json(tied, hidden_act)).unwrap();
    let config = LlamaConfig::from_file(&dir.join("config.json")).unwrap();
    let mut tensors = BTreeMap::new();
    for (salt, p) in config.parameter_shapes().into_iter().enumerate() {
        tensors.insert(p.name.clone(), HostTensor { data: values(p.len(), salt), shape: p.shape });
    }
    save(&dir.join("model.safetensors"), &tensors).unwrap();
    (config, as_f64(&tensors))
}

/// A PEFT adapter on q_proj and v_proj, rank 2, alpha 8 (rank-stabilized with `use_rslora`).
fn write_adapter(
    dir: &Path,
    config: &LlamaConfig,
    use_rslora: bool,
) -> (LoraConfig, HashMap<String, Tensor>) {
    std::fs::create_dir_all(dir).unwrap();
    let config_text = format!(
        r#"{{"peft_type": "LORA", "r": 2, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"],
            "use_rslora": {use_rslora}}}"#
    );
    std::fs::write(dir.join("adapter_config.json"), config_text).unwrap();
    let (hidden, q, kv) = (config.hidden_size, 4 * config.head_dim, 2 * config.head_dim);
    let mut tensors = BTreeMap::new();
    for layer in 0..2 {
        for (module, out) in [("q_proj", q), ("v_proj", kv)] {
            for (factor, shape) in [("lora_A", vec![2, hidden]), ("lora_B", vec![out, 2])] {
                let name = format!("model.layers.{layer}.self_attn.{module}.{factor}.weight");
                let data = values(shape.iter().product(), 1000 + tensors.len());
                tensors.insert(name, HostTensor { shape, data });
            }
        }
    }
    let peft: BTreeMap<String, HostTensor> =
        tensors.iter().map(|(n, t)| (format!("base_model.model.{n}"), t.clone())).collect();
    save(&dir.join("adapter_model.safetensors"), &peft).unwrap();
    let lora = LoraConfig {
        rank: 2,
        alpha: 8.0,
        target_modules: vec!["q_proj".into(), "v_proj".into()],
        use_rslora,
    };
    (lora, as_f64(&tensors))
}

fn as_f64(tensors: &BTreeMap<String, HostTensor>) -> HashMap<String, Tensor> {
    tensors
        .iter()
        .map(|(n, t)| {
            (n.clone(), Tensor::new(t.shape.clone(), t.data.iter().map(|&v| f64::from(v)).collect()).unwrap())
        })
        .collect()
}

/// `input_ids` as I64, the way PyTorch saves token ids.
fn write_ids(path: &Path, ids: &[i64], shape: &[usize]) {
    let bytes: Vec<u8> = ids.iter().flat_map(|v| v.to_le_bytes()).collect();
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::I64, shape.to_vec(), &bytes).unwrap();
    std::fs::write(path, safetensors::serialize([("input_ids", view)], None).unwrap()).unwrap();
}

fn s2_schedule(t: usize) -> Schedule {
    let overrides = Overrides { seq_len: Some(t), n_heads: Some(4), n_layers: Some(2), head_dim: Some(4) };
    weft_ir::spec::load_schedule(&example("s2attn-roll.toml"), &overrides).unwrap()
}

fn causal_schedule(t: usize) -> Schedule {
    let overrides = Overrides { seq_len: Some(t), n_heads: Some(4), n_layers: Some(2), head_dim: Some(4) };
    weft_ir::spec::load_schedule(&example("causal.toml"), &overrides).unwrap()
}

fn max_rel_error(got: &[f32], want: &[f64]) -> f64 {
    let scale = want.iter().fold(0f64, |m, v| m.max(v.abs()));
    got.iter().zip(want).fold(0f64, |m, (g, w)| m.max((f64::from(*g) - w).abs())) / scale
}

#[test]
fn forward_matches_a_straightforward_llama() {
    if !gpu() {
        return;
    }
    let dir = scratch("forward");
    let (batch, t) = (2, 16);
    let ids: Vec<i64> = (0..batch * t).map(|i| ((i * 5 + 3) % 11) as i64).collect();
    let input = dir.join("in.safetensors");
    write_ids(&input, &ids, &[batch, t]);
    let no_lora = LoraConfig { rank: 1, alpha: 1.0, target_modules: vec![], use_rslora: false };
    // The last cases: the tanh GELU with an rsLoRA adapter (scaling alpha / sqrt(r)), the exact GELU.
    for (label, tied, pattern, adapter, unfused, gelu_rslora) in [
        ("untied, causal", false, None, false, false, false),
        ("tied, s2-attn", true, Some("s2attn-roll.toml"), false, false, false),
        ("untied, s2-attn, adapter", false, Some("s2attn-roll.toml"), true, false, false),
        ("tied, s2-attn, unfused", true, Some("s2attn-roll.toml"), false, true, false),
        ("untied, causal, gelu tanh, rslora", false, None, true, false, true),
        ("tied, causal, gelu", true, None, false, false, false),
    ] {
        let model = dir.join(label.replace([',', ' '], "_"));
        let act = match label {
            _ if gelu_rslora => "gelu_pytorch_tanh",
            _ if label.ends_with("gelu") => "gelu",
            _ => "silu",
        };
        let (config, mut weights) = write_model_with(&model, tied, act);
        let out = dir.join(format!("{}.safetensors", label.replace([',', ' '], "_")));
        let mut args = vec!["forward".to_string(), model.display().to_string()];
        args.extend([
            "--input".into(),
            input.display().to_string(),
            "--out".into(),
            out.display().to_string(),
        ]);
        if let Some(p) = pattern {
            args.extend(["--pattern".into(), example(p).display().to_string()]);
        }
        if unfused {
            args.push("--unfused".into());
        }
        let lora = if adapter {
            let (lora, factors) = write_adapter(&model.join("adapter"), &config, gelu_rslora);
            weights.extend(factors);
            args.extend(["--adapter".into(), model.join("adapter").display().to_string()]);
            lora
        } else {
            no_lora.clone()
        };
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ok(&args);
        let got = TensorFile::load(&out).unwrap().f32("logits").unwrap();
        assert_eq!(got.shape, [batch, t, 11], "{label}");
        weights.insert(
            "input_ids".into(),
            Tensor::new(vec![batch, t], ids.iter().map(|&v| v as f64).collect()).unwrap(),
        );
        let schedule = if pattern.is_some() { s2_schedule(t) } else { causal_schedule(t) };
        let want = llama_reference::reference_logits(&config, &schedule, &lora, &weights, batch, t);
        let err = max_rel_error(&got.data, &want);
        assert!(err <= TOLERANCE, "{label}: relative error {err:e}");
    }
}

#[test]
fn forward_reports_the_next_token_loss() {
    if !gpu() {
        return;
    }
    let dir = scratch("forward_loss");
    let (config, mut weights) = write_model(&dir.join("model"), false);
    let t = 8;
    let ids: Vec<i64> = (0..t).map(|i| ((i * 3 + 1) % 11) as i64).collect();
    let input = dir.join("in.safetensors");
    write_ids(&input, &ids, &[1, t]);
    let out = dir.join("out.safetensors");
    let model = dir.join("model");
    let stdout = ok(&[
        "forward",
        model.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--loss",
    ]);
    let file = TensorFile::load(&out).unwrap();
    let loss = file.f32("loss").unwrap();
    assert_eq!(loss.shape, Vec::<usize>::new());
    weights.insert(
        "input_ids".into(),
        Tensor::new(vec![1, t], ids.iter().map(|&v| v as f64).collect()).unwrap(),
    );
    let no_lora = LoraConfig { rank: 1, alpha: 1.0, target_modules: vec![], use_rslora: false };
    let logits = llama_reference::reference_logits(&config, &causal_schedule(t), &no_lora, &weights, 1, t);
    let v = config.vocab_size;
    let want: f64 = (0..t - 1)
        .map(|i| {
            let row = &logits[i * v..(i + 1) * v];
            let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            max + row.iter().map(|x| (x - max).exp()).sum::<f64>().ln() - row[ids[i + 1] as usize]
        })
        .sum::<f64>()
        / (t - 1) as f64;
    assert!((f64::from(loss.data[0]) - want).abs() <= 1e-4 * want.abs(), "{} vs {want}", loss.data[0]);
    let printed: f64 = stdout.trim().strip_prefix("loss ").and_then(|v| v.parse().ok()).unwrap_or(f64::NAN);
    assert!((printed - want).abs() <= 1e-4 * want.abs(), "{stdout}");
}

#[test]
fn forward_names_bad_inputs() {
    let dir = scratch("forward_bad");
    let model = dir.join("model");
    write_model(&model, true);
    let out = dir.join("out.safetensors");
    let run = |ids: &[i64], shape: &[usize], model: &Path| {
        let input = dir.join("in.safetensors");
        write_ids(&input, ids, shape);
        let o = weft(&[
            "forward",
            model.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(1));
        let err = stderr(&o);
        assert!(!err.contains("panicked"), "{err}");
        err
    };
    let err = run(&[1, 2, 11, 3], &[1, 4], &model);
    assert!(err.contains("input_ids[2] = 11 is not a token id of this model (vocab_size 11)"), "{err}");
    let err = run(&[1, 2, 3, 4], &[4], &model);
    assert!(err.contains("has shape [4]; expected [B, T]"), "{err}");
    let err = run(&[1, 2], &[1, 2], &dir.join("nowhere"));
    assert!(err.contains("nowhere/config.json"), "{err}");
    // A checkpoint missing a tensor names it and its shape (both layers are there, so
    // the layer count matches the config's).
    let broken = dir.join("broken");
    write_model(&broken, true);
    let mut tensors = BTreeMap::new();
    tensors.insert(
        "model.embed_tokens.weight".to_string(),
        HostTensor { shape: vec![11, 16], data: values(176, 0) },
    );
    for layer in 0..2 {
        tensors.insert(
            format!("model.layers.{layer}.post_attention_layernorm.weight"),
            HostTensor { shape: vec![16], data: values(16, 1) },
        );
    }
    save(&broken.join("model.safetensors"), &tensors).unwrap();
    let err = run(&[1, 2], &[1, 2], &broken);
    assert!(
        err.contains(
            "checkpoint tensor `model.layers.0.input_layernorm.weight` (expected shape [16]) is missing"
        ),
        "{err}"
    );
    assert!(!out.exists(), "no output after a failure");
}

/// `--adapter` applies the adapter's `modules_to_save` tensors and its run
/// record's RoPE factor: the logits are those of a checkpoint whose tensors
/// and config were changed by hand, with the same LoRA factors.
#[test]
fn an_adapter_replaces_saved_modules_and_applies_its_runs_factor() {
    if !gpu() {
        return;
    }
    let dir = scratch("forward_saved_modules");
    let model = dir.join("model");
    let (config, _) = write_model(&model, false);
    // The LoRA factors alone, and the same factors with saved modules and a run record.
    let lora_only = dir.join("lora-only");
    write_adapter(&lora_only, &config, false);
    let adapter = dir.join("adapter");
    write_adapter(&adapter, &config, false);
    let adapter_config = std::fs::read_to_string(adapter.join("adapter_config.json")).unwrap();
    let adapter_config = adapter_config
        .replace("\"use_rslora\"", "\"modules_to_save\": [\"embed_tokens\", \"norm\"], \"use_rslora\"");
    std::fs::write(adapter.join("adapter_config.json"), adapter_config).unwrap();
    std::fs::write(
        adapter.join("weft_run.json"),
        r#"{"format": 1, "rope_linear_factor": 4.0, "base_max_position_embeddings": 64, "seq_len": 256,
            "pattern": null, "mode": "lora+"}"#,
    )
    .unwrap();
    let factors = TensorFile::load(&adapter.join("adapter_model.safetensors")).unwrap();
    let mut peft: BTreeMap<String, HostTensor> =
        factors.names().into_iter().map(|n| (n.clone(), factors.f32(&n).unwrap())).collect();
    let mut saved = BTreeMap::new();
    saved.insert(
        "model.embed_tokens.weight".to_string(),
        HostTensor { shape: vec![11, 16], data: values(176, 501) },
    );
    for (i, name) in [
        "model.norm.weight",
        "model.layers.0.input_layernorm.weight",
        "model.layers.1.post_attention_layernorm.weight",
    ]
    .into_iter()
    .enumerate()
    {
        let data = values(16, 600 + i).into_iter().map(|v| v + 1.0).collect();
        saved.insert(name.to_string(), HostTensor { shape: vec![16], data });
    }
    peft.extend(saved.iter().map(|(n, t)| (format!("base_model.model.{n}"), t.clone())));
    save(&adapter.join("adapter_model.safetensors"), &peft).unwrap();

    // By hand: the tensors replaced in the checkpoint, the factor in config.json.
    let by_hand = dir.join("by-hand");
    write_model(&by_hand, false);
    let config_text = config_json(false, "silu");
    assert!(config_text.contains("\"factor\": 2.0"));
    std::fs::write(by_hand.join("config.json"), config_text.replace("\"factor\": 2.0", "\"factor\": 4.0"))
        .unwrap();
    let weights = TensorFile::load(&by_hand.join("model.safetensors")).unwrap();
    let mut tensors: BTreeMap<String, HostTensor> =
        weights.names().into_iter().map(|n| (n.clone(), weights.f32(&n).unwrap())).collect();
    tensors.extend(saved.clone());
    save(&by_hand.join("model.safetensors"), &tensors).unwrap();

    let input = dir.join("in.safetensors");
    let ids: Vec<i64> = (0..32).map(|i| ((i * 7 + 2) % 11) as i64).collect();
    write_ids(&input, &ids, &[2, 16]);
    let run = |model: &Path, adapter: &Path, out: &str| {
        let out = dir.join(out);
        let o = weft(&[
            "forward",
            model.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
            "--adapter",
            adapter.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        (TensorFile::load(&out).unwrap().f32("logits").unwrap().data, stderr(&o))
    };
    let (got, err) = run(&model, &adapter, "adapter.safetensors");
    assert!(err.contains("RoPE: linear factor 4 from"), "{err}");
    assert!(err.contains("base config has linear factor 2"), "{err}");
    assert!(
        err.contains("modules_to_save (embed_tokens, norm): 4 base tensors replaced by the adapter's"),
        "{err}"
    );
    let (want, _) = run(&by_hand, &lora_only, "by-hand.safetensors");
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    let worst = got.iter().zip(&want).fold(0f32, |m, (g, w)| m.max((g - w).abs())) / scale;
    assert!(worst <= 1e-6, "relative difference {worst:e}");
    let (plain, _) = run(&model, &lora_only, "plain.safetensors");
    let moved = plain.iter().zip(&want).fold(0f32, |m, (p, w)| m.max((p - w).abs())) / scale;
    assert!(moved > 1e-3, "the saved modules changed nothing ({moved:e})");

    // A base saved in bf16, which the host keeps in 16 bits: the saved modules (f32) replace
    // its tensors by name all the same, and each tensor is stored as the by-hand checkpoint's is.
    let model_bf16 = dir.join("model-bf16");
    common::bf16_model_copy(&model, &model_bf16);
    // By hand: the bf16 base's tensors, the saved modules in their place, the factor in config.json.
    let by_hand_bf16 = dir.join("by-hand-bf16");
    std::fs::create_dir_all(&by_hand_bf16).unwrap();
    std::fs::copy(by_hand.join("config.json"), by_hand_bf16.join("config.json")).unwrap();
    let rounded = TensorFile::load(&model_bf16.join("model.safetensors")).unwrap();
    let mut tensors: BTreeMap<String, HostTensor> =
        rounded.names().into_iter().map(|n| (n.clone(), rounded.float_as_f32(&n).unwrap())).collect();
    tensors.extend(saved);
    save(&by_hand_bf16.join("model.safetensors"), &tensors).unwrap();
    let (got, err) = run(&model_bf16, &adapter, "adapter-bf16.safetensors");
    assert!(err.contains("frozen values stored as bf16"), "{err}");
    let (want, _) = run(&by_hand_bf16, &lora_only, "by-hand-bf16.safetensors");
    let same = got.iter().zip(&want).all(|(g, w)| g.to_bits() == w.to_bits());
    assert!(same && got.len() == want.len(), "the logits differ from the by-hand bf16 checkpoint's");
}

/// A checkpoint saved in 16 bits (BF16 and F16 tensors) keeps them on the
/// device as such (`--weight-dtype auto`, the default), at half the memory,
/// and gives the logits of f32 storage bit for bit, and the reference's.
#[test]
fn a_16_bit_checkpoint_stays_16_bit_on_the_device_with_the_same_logits() {
    if !gpu() {
        return;
    }
    let dir = scratch("forward_16_bit");
    let model = dir.join("model");
    std::fs::create_dir_all(&model).unwrap();
    std::fs::write(model.join("config.json"), config_json(false, "silu")).unwrap();
    let config = LlamaConfig::from_file(&model.join("config.json")).unwrap();
    // The MLP's weights in f16, everything else in bf16.
    let is_f16 = |name: &str| name.contains(".mlp.");
    let mut tensors = BTreeMap::new();
    for (salt, p) in config.parameter_shapes().into_iter().enumerate() {
        let data = values(p.len(), salt).into_iter().map(|v| common::to_16_bit(v, is_f16(&p.name))).collect();
        tensors.insert(p.name.clone(), HostTensor { data, shape: p.shape });
    }
    common::save_16_bit(&model.join("model.safetensors"), &tensors, is_f16);

    let t = 8;
    let ids: Vec<i64> = (0..t).map(|i| ((i * 5 + 2) % 11) as i64).collect();
    let input = dir.join("in.safetensors");
    write_ids(&input, &ids, &[1, t]);
    let run = |name: &str, extra: &[&str]| {
        let out = dir.join(name);
        let mut args = vec!["forward", model.to_str().unwrap(), "--input", input.to_str().unwrap()];
        args.extend(["--out", out.to_str().unwrap()]);
        args.extend(extra);
        let o = weft(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        (TensorFile::load(&out).unwrap().f32("logits").unwrap(), stderr(&o))
    };
    let (packed, log) = run("auto.safetensors", &[]);
    let values = config.parameter_shapes().iter().map(|p| p.len()).sum::<usize>();
    assert!(
        log.contains(&format!("weights: {values} of {values} frozen values stored as bf16 and f16")),
        "{log}"
    );
    let (plain, log) = run("f32.safetensors", &["--weight-dtype", "f32"]);
    assert!(!log.contains("stored as"), "{log}");
    let same = packed.data.iter().zip(&plain.data).all(|(a, b)| a.to_bits() == b.to_bits());
    assert!(same && packed.shape == plain.shape, "the logits differ between bf16/f16 and f32 storage");

    let mut weights = as_f64(&tensors);
    weights.insert(
        "input_ids".into(),
        Tensor::new(vec![1, t], ids.iter().map(|&v| v as f64).collect()).unwrap(),
    );
    let no_lora = LoraConfig { rank: 1, alpha: 1.0, target_modules: vec![], use_rslora: false };
    let want = llama_reference::reference_logits(&config, &causal_schedule(t), &no_lora, &weights, 1, t);
    let err = max_rel_error(&packed.data, &want);
    assert!(err <= TOLERANCE, "max relative error {err:.2e}");
}
