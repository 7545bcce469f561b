//! `weft export`: a PEFT adapter (random LoRA factors on q, k, v, o, a
//! `modules_to_save` norm, and a `weft_run.json` with RoPE factor 2) merged
//! into `tests/data/llama-2layer`. The merged weights are checked against
//! `W + s·B·A` computed here in f64 and the config against the run's factor
//! (host only); on a GPU, `weft forward MERGED` must give the logits of
//! `weft forward BASE --adapter DIR`.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{gpu, root, scratch, stderr, weft};
use weft_ir::model::{LlamaConfig, RopeScaling};
use weft_runtime::io::{HostTensor, TensorFile, save};

const BASE: &str = "tests/data/llama-2layer";
/// The adapter's rank and alpha: s = 8 / 4 = 2.
const RANK: usize = 4;
const ALPHA: f64 = 8.0;

/// Deterministic values in [-0.5, 0.5): a 64-bit LCG, seeded per tensor.
fn random(len: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
    (0..len)
        .map(|_| {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        })
        .collect()
}

/// A copy of the base checkpoint with `config` as its config.json and two tokenizer files.
fn base_copy(dir: &Path, config: &str) -> PathBuf {
    let base = dir.join("base");
    std::fs::create_dir_all(&base).unwrap();
    for file in ["model.safetensors", "generation_config.json"] {
        std::fs::copy(root().join(BASE).join(file), base.join(file)).unwrap();
    }
    std::fs::write(base.join("config.json"), config).unwrap();
    std::fs::write(base.join("tokenizer.json"), "{\"model\": {}}\n").unwrap();
    std::fs::write(base.join("tokenizer.model"), [0u8, 1, 2, 3]).unwrap();
    base
}

fn base_config_text() -> String {
    std::fs::read_to_string(root().join(BASE).join("config.json")).unwrap()
}

/// Writes a PEFT adapter for the base into `dir`: LoRA on every attention
/// projection, `modules_to_save: ["norm"]` with every norm saved, and a run
/// record with RoPE factor 2. Returns its tensors under weft's names.
fn write_adapter(dir: &Path, config: &LlamaConfig) -> BTreeMap<String, HostTensor> {
    std::fs::create_dir_all(dir).unwrap();
    let adapter_config = format!(
        r#"{{"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": {RANK}, "lora_alpha": {ALPHA},
            "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"], "modules_to_save": ["norm"],
            "lora_dropout": 0.0, "bias": "none", "fan_in_fan_out": false, "use_rslora": false,
            "use_dora": false, "inference_mode": true}}"#
    );
    std::fs::write(dir.join("adapter_config.json"), adapter_config).unwrap();
    let record = r#"{"format": 1, "rope_linear_factor": 2.0, "base_max_position_embeddings": 256,
        "seq_len": 512, "pattern": "s2attn-roll", "mode": "lora+"}"#;
    std::fs::write(dir.join("weft_run.json"), record).unwrap();
    let (hidden, q, kv) = (config.hidden_size, 4 * config.head_dim, 2 * config.head_dim);
    let mut tensors = BTreeMap::new();
    let mut add = |name: String, shape: Vec<usize>, scale: f32| {
        let seed = tensors.len() as u64 + 1;
        let data = random(shape.iter().product(), seed).into_iter().map(|v| v * scale).collect();
        tensors.insert(name, HostTensor { shape, data });
    };
    for layer in 0..config.num_hidden_layers {
        for (module, input, out) in
            [("q_proj", hidden, q), ("k_proj", hidden, kv), ("v_proj", hidden, kv), ("o_proj", q, hidden)]
        {
            let base = format!("model.layers.{layer}.self_attn.{module}");
            add(format!("{base}.lora_A.weight"), vec![RANK, input], 0.5);
            add(format!("{base}.lora_B.weight"), vec![out, RANK], 0.1);
        }
        for norm in ["input_layernorm", "post_attention_layernorm"] {
            add(format!("model.layers.{layer}.{norm}.weight"), vec![hidden], 1.0);
        }
    }
    add("model.norm.weight".into(), vec![hidden], 1.0);
    // Norms near 1, as trained ones are.
    for (name, t) in tensors.iter_mut() {
        if name.ends_with("norm.weight") {
            t.data.iter_mut().for_each(|v| *v += 1.0);
        }
    }
    let peft: BTreeMap<String, HostTensor> =
        tensors.iter().map(|(n, t)| (format!("base_model.model.{n}"), t.clone())).collect();
    save(&dir.join("adapter_model.safetensors"), &peft).unwrap();
    tensors
}

fn export(base: &Path, adapter: &Path, out: &Path) -> String {
    export_with(base, adapter, out, &[])
}

fn export_with(base: &Path, adapter: &Path, out: &Path, extra: &[&str]) -> String {
    let o = run_export(base, adapter, out, extra);
    assert!(o.status.success(), "weft export failed:\n{}", stderr(&o));
    stderr(&o)
}

/// A `weft export` that must fail with exit code 1 and no panic: its stderr.
fn failed_export(base: &Path, adapter: &Path, out: &Path) -> String {
    let o = run_export(base, adapter, out, &[]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

fn run_export(base: &Path, adapter: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let (base, adapter, out) = (base.to_str().unwrap(), adapter.to_str().unwrap(), out.to_str().unwrap());
    let mut args = vec!["export", base, "--adapter", adapter, "--out", out];
    args.extend(extra);
    weft(&args)
}

/// The bf16 nearest to `v` (finite), ties to even: written here from the
/// format's definition, to check the export's rounding against.
fn nearest_bf16(v: f32) -> u16 {
    let bits = v.to_bits();
    ((bits + 0x7fff + ((bits >> 16) & 1)) >> 16) as u16
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// (b) and (c): the merged config carries the factor in `rope_parameters`, and
/// every merged weight is the nearest f32 to `W + s·B·A` computed in f64.
#[test]
fn export_merges_the_adapter_and_the_runs_factor() {
    let dir = scratch("export");
    let base = base_copy(&dir, &base_config_text());
    let config = LlamaConfig::from_file(&base.join("config.json")).unwrap();
    let adapter = dir.join("adapter");
    let factors = write_adapter(&adapter, &config);
    let merged = dir.join("merged");
    let err = export(&base, &adapter, &merged);
    assert!(err.contains("RoPE: linear factor 2 from"), "{err}");
    assert!(err.contains("modules_to_save (norm): 5 base tensors replaced by the adapter's"), "{err}");
    assert_eq!(
        listing(&merged),
        [
            "config.json",
            "generation_config.json",
            "model.safetensors",
            "tokenizer.json",
            "tokenizer.model",
            "weft_run.json"
        ]
    );
    for file in ["generation_config.json", "tokenizer.json", "tokenizer.model"] {
        assert_eq!(
            std::fs::read(merged.join(file)).unwrap(),
            std::fs::read(base.join(file)).unwrap(),
            "{file}"
        );
    }
    assert_eq!(listing(&dir), ["adapter", "base", "merged"], "no temporary left beside it");

    // The config: the base's, with the factor in transformers 5's form (the
    // base has no Llama-2 `rope_scaling`, so none is added) and f32 weights.
    let text = std::fs::read_to_string(merged.join("config.json")).unwrap();
    let merged_config = LlamaConfig::from_file(&merged.join("config.json")).unwrap();
    assert_eq!(merged_config.rope.scaling, RopeScaling::Linear { factor: 2.0 });
    assert_eq!(merged_config.rope.theta, config.rope.theta);
    assert_eq!(LlamaConfig { rope: config.rope, ..merged_config.clone() }, config);
    for needle in
        ["\"rope_parameters\": {", "\"rope_type\": \"linear\"", "\"factor\": 2.0", "\"rope_theta\": 10000.0"]
    {
        assert!(text.contains(needle), "{needle} not in {text}");
    }
    assert!(!text.contains("rope_scaling"), "{text}");
    assert!(text.contains("\"transformers_version\": \"5.25.0\""), "other keys are kept: {text}");

    // The weights: metadata format pt, every tensor the config lists, merged in f64.
    let bytes = std::fs::read(merged.join("model.safetensors")).unwrap();
    let (_, metadata) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let format = metadata.metadata().as_ref().and_then(|m| m.get("format").cloned());
    assert_eq!(format.as_deref(), Some("pt"));
    let merged_file = TensorFile::from_bytes("merged", bytes).unwrap();
    let base_file = TensorFile::load(&base.join("model.safetensors")).unwrap();
    let names: Vec<String> = config.parameter_shapes().into_iter().map(|p| p.name).collect();
    assert_eq!(merged_file.names(), {
        let mut n = names.clone();
        n.sort();
        n
    });
    let s = ALPHA / RANK as f64;
    let mut merged_count = 0;
    for name in &names {
        let got = merged_file.f32(name).unwrap();
        let w = base_file.f32(name).unwrap();
        let module = name.strip_suffix(".weight").unwrap();
        if let Some(saved) = factors.get(name) {
            assert_eq!(got, *saved, "{name} is the adapter's");
            continue;
        }
        let Some(a) = factors.get(&format!("{module}.lora_A.weight")) else {
            assert_eq!(got, w, "{name} is the base's");
            continue;
        };
        let b = &factors[&format!("{module}.lora_B.weight")];
        let (out, input) = (w.shape[0], w.shape[1]);
        for o in 0..out {
            for i in 0..input {
                let ba: f64 = (0..RANK)
                    .map(|k| f64::from(b.data[o * RANK + k]) * f64::from(a.data[k * input + i]))
                    .sum();
                let want = f64::from(w.data[o * input + i]) + s * ba;
                let got = f64::from(got.data[o * input + i]);
                // Rounded once to f32: within half an ulp of the f64 sum (an ulp, to allow another summation order).
                let ulp = f64::from(f32::EPSILON) * want.abs().max(f64::from(f32::MIN_POSITIVE));
                assert!((got - want).abs() <= ulp, "{name} [{o}, {i}]: {got} vs {want}");
            }
        }
        merged_count += 1;
    }
    assert_eq!(merged_count, 8, "q, k, v, o of both layers");
}

/// A tied model stays tied (no `lm_head.weight` written) when the adapter
/// does not replace the embedding; one that does, without
/// `ensure_weight_tying`, comes apart as in PEFT.
#[test]
fn a_tied_model_exports_without_its_lm_head() {
    let dir = scratch("export_tied");
    let tied = base_config_text().replace("\"tie_word_embeddings\": false", "\"tie_word_embeddings\": true");
    let base = base_copy(&dir, &tied);
    let config = LlamaConfig::from_file(&base.join("config.json")).unwrap();
    assert!(config.tie_word_embeddings);
    let adapter = dir.join("adapter");
    write_adapter(&adapter, &config);
    let merged = dir.join("merged");
    export(&base, &adapter, &merged);
    let names = TensorFile::load(&merged.join("model.safetensors")).unwrap().names();
    assert!(!names.iter().any(|n| n == "lm_head.weight"), "{names:?}");
    assert!(LlamaConfig::from_file(&merged.join("config.json")).unwrap().tie_word_embeddings);

    // The embedding replaced: PEFT's lm_head keeps the base embedding, so the export unties.
    let config_text = std::fs::read_to_string(adapter.join("adapter_config.json")).unwrap();
    std::fs::write(
        adapter.join("adapter_config.json"),
        config_text.replace("[\"norm\"]", "[\"norm\", \"embed_tokens\"]"),
    )
    .unwrap();
    let weights = TensorFile::load(&adapter.join("adapter_model.safetensors")).unwrap();
    let mut peft: BTreeMap<String, HostTensor> =
        weights.names().into_iter().map(|n| (n.clone(), weights.f32(&n).unwrap())).collect();
    let embedding = HostTensor { shape: vec![128, 64], data: random(128 * 64, 99) };
    peft.insert("base_model.model.model.embed_tokens.weight".into(), embedding.clone());
    save(&adapter.join("adapter_model.safetensors"), &peft).unwrap();
    let err = export(&base, &adapter, &merged);
    assert!(err.contains("so the embeddings are untied"), "{err}");
    let file = TensorFile::load(&merged.join("model.safetensors")).unwrap();
    let base_embedding =
        TensorFile::load(&base.join("model.safetensors")).unwrap().f32("model.embed_tokens.weight");
    assert_eq!(file.f32("lm_head.weight").unwrap(), base_embedding.unwrap());
    assert_eq!(file.f32("model.embed_tokens.weight").unwrap(), embedding);
    let text = std::fs::read_to_string(merged.join("config.json")).unwrap();
    assert!(text.contains("\"tie_word_embeddings\": false"), "{text}");
}

#[test]
fn export_refuses_to_write_over_its_inputs() {
    let dir = scratch("export_refusals");
    let base = base_copy(&dir, &base_config_text());
    let config = LlamaConfig::from_file(&base.join("config.json")).unwrap();
    let adapter = dir.join("adapter");
    write_adapter(&adapter, &config);
    for (out, fragment) in [
        (base.clone(), "refusing to write the merged checkpoint to"),
        (adapter.join("merged"), "it is inside the adapter"),
        (dir.clone(), "it holds the input checkpoint"),
    ] {
        let err = failed_export(&base, &adapter, &out);
        assert!(err.contains(fragment), "{}: {err}", out.display());
    }
    assert_eq!(listing(&dir), ["adapter", "base"]);
}

/// The base read one tensor at a time: a sharded bf16 checkpoint exports
/// (under `--dtype f32`) the same bytes as a single f32 file of the same
/// values, and by default in bf16, each value the nearest bf16 to the f32
/// export's; a base that fails its header checks leaves an earlier export
/// as it was.
#[test]
fn a_sharded_bf16_base_exports_as_its_f32_twin_and_in_bf16() {
    let dir = scratch("export_sharded");
    let config_text =
        base_config_text().replace("\"use_cache\"", "\"torch_dtype\": \"bfloat16\",\n  \"use_cache\"");
    let twin = base_copy(&dir, &config_text);
    let config = LlamaConfig::from_file(&twin.join("config.json")).unwrap();
    let adapter = dir.join("adapter");
    write_adapter(&adapter, &config);

    // The twin holds the bf16 values in f32; the sharded base holds them in bf16.
    let original = TensorFile::load(&twin.join("model.safetensors")).unwrap();
    let rounded: BTreeMap<String, HostTensor> = original
        .names()
        .into_iter()
        .map(|name| {
            let mut t = original.f32(&name).unwrap();
            t.data.iter_mut().for_each(|v| *v = common::to_16_bit(*v, false));
            (name, t)
        })
        .collect();
    save(&twin.join("model.safetensors"), &rounded).unwrap();
    let sharded = dir.join("sharded");
    std::fs::create_dir_all(&sharded).unwrap();
    for file in ["config.json", "generation_config.json", "tokenizer.json", "tokenizer.model"] {
        std::fs::copy(twin.join(file), sharded.join(file)).unwrap();
    }
    let (first, second): (BTreeMap<_, _>, BTreeMap<_, _>) =
        rounded.into_iter().partition(|(name, _)| name.contains("layers.0.") || name.contains("embed"));
    let mut weight_map = serde_json::Map::new();
    for (shard, tensors) in
        [("model-00001-of-00002.safetensors", &first), ("model-00002-of-00002.safetensors", &second)]
    {
        common::save_16_bit(&sharded.join(shard), tensors, |_| false);
        weight_map.extend(tensors.keys().map(|name| (name.clone(), shard.into())));
    }
    let index = serde_json::json!({"metadata": {}, "weight_map": weight_map});
    std::fs::write(sharded.join("model.safetensors.index.json"), index.to_string()).unwrap();

    let (from_twin, from_shards) = (dir.join("from_twin"), dir.join("from_shards"));
    let twin_err = export(&twin, &adapter, &from_twin);
    assert!(twin_err.contains("weights in float32"), "{twin_err}");
    export_with(&sharded, &adapter, &from_shards, &["--dtype", "f32"]);
    for file in listing(&from_twin) {
        assert_eq!(
            std::fs::read(from_twin.join(&file)).unwrap(),
            std::fs::read(from_shards.join(&file)).unwrap(),
            "{file}"
        );
    }
    let twin_text = std::fs::read_to_string(from_twin.join("config.json")).unwrap();
    assert!(twin_text.contains("\"torch_dtype\": \"float32\""), "{twin_text}");

    // By default a bf16 base exports in bf16: the base's own tensors bit for
    // bit, merged and saved ones rounded to the nearest bf16.
    let in_bf16 = dir.join("in_bf16");
    let err = export(&sharded, &adapter, &in_bf16);
    assert!(err.contains("weights in bfloat16"), "{err}");
    let text = std::fs::read_to_string(in_bf16.join("config.json")).unwrap();
    assert!(text.contains("\"torch_dtype\": \"bfloat16\""), "{text}");
    let bytes = std::fs::read(in_bf16.join("model.safetensors")).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let f32_export = TensorFile::load(&from_twin.join("model.safetensors")).unwrap();
    let mut rounded_somewhere = false;
    for name in f32_export.names() {
        let view = file.tensor(&name).unwrap();
        assert_eq!(view.dtype(), safetensors::Dtype::BF16, "{name}");
        let want = f32_export.f32(&name).unwrap();
        assert_eq!(view.shape(), &want.shape[..], "{name}");
        for (i, (pair, &v)) in view.data().chunks_exact(2).zip(&want.data).enumerate() {
            let got = u16::from_le_bytes([pair[0], pair[1]]);
            assert_eq!(got, nearest_bf16(v), "{name}[{i}]: {v}");
            rounded_somewhere |= (u32::from(got) << 16) != v.to_bits();
        }
    }
    assert!(rounded_somewhere, "the merged weights are not all bf16 already");

    // A shard whose tensor has the wrong shape: refused from its header, before anything is written.
    let mut bad = second.clone();
    bad.insert("model.norm.weight".into(), HostTensor { shape: vec![65], data: vec![1.0; 65] });
    common::save_16_bit(&sharded.join("model-00002-of-00002.safetensors"), &bad, |_| false);
    let before = std::fs::read(from_shards.join("model.safetensors")).unwrap();
    let err = failed_export(&sharded, &adapter, &from_shards);
    assert!(
        err.contains("checkpoint tensor `model.norm.weight` in ")
            && err.contains("model-00002-of-00002.safetensors has shape [65]; the config expects [64]"),
        "{err}"
    );
    assert_eq!(std::fs::read(from_shards.join("model.safetensors")).unwrap(), before);
    assert_eq!(listing(&dir), ["adapter", "base", "from_shards", "from_twin", "in_bf16", "sharded"]);
}

/// `input_ids` [B, T] as I64.
fn write_ids(path: &Path, ids: &[i64], shape: &[usize]) {
    let bytes: Vec<u8> = ids.iter().flat_map(|v| v.to_le_bytes()).collect();
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::I64, shape.to_vec(), &bytes).unwrap();
    std::fs::write(path, safetensors::serialize([("input_ids", view)], None).unwrap()).unwrap();
}

fn forward(model: &Path, input: &Path, out: &Path, adapter: Option<&Path>) -> (Vec<f32>, String) {
    let mut args = vec![
        "forward",
        model.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    if let Some(adapter) = adapter {
        args.extend(["--adapter", adapter.to_str().unwrap()]);
    }
    let o = weft(&args);
    assert!(o.status.success(), "weft {args:?} failed:\n{}", stderr(&o));
    (TensorFile::load(out).unwrap().f32("logits").unwrap().data, stderr(&o))
}

/// (a): the merged checkpoint's logits are the adapter's on its base.
#[test]
fn exported_logits_match_the_adapter_on_its_base() {
    if !gpu() {
        return;
    }
    let dir = scratch("export_logits");
    let base = base_copy(&dir, &base_config_text());
    let config = LlamaConfig::from_file(&base.join("config.json")).unwrap();
    let adapter = dir.join("adapter");
    write_adapter(&adapter, &config);
    let merged = dir.join("merged");
    export(&base, &adapter, &merged);
    let (batch, t) = (2, 32);
    let ids: Vec<i64> = (0..batch * t).map(|i| ((i * 37 + 11) % 128) as i64).collect();
    let input = dir.join("ids.safetensors");
    write_ids(&input, &ids, &[batch, t]);
    let (want, err) = forward(&base, &input, &dir.join("adapted.safetensors"), Some(&adapter));
    assert!(err.contains("RoPE: linear factor 2 from"), "{err}");
    let (got, _) = forward(&merged, &input, &dir.join("merged.safetensors"), None);
    assert_eq!(got.len(), batch * t * 128);
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    let worst = got.iter().zip(&want).fold(0f32, |m, (g, w)| m.max((g - w).abs())) / scale;
    assert!(worst <= 1e-5, "relative error {worst:e}");
    // The factor matters at these positions: without it the logits differ.
    std::fs::remove_file(adapter.join("weft_run.json")).unwrap();
    let (unscaled, _) = forward(&base, &input, &dir.join("unscaled.safetensors"), Some(&adapter));
    let moved = unscaled.iter().zip(&want).fold(0f32, |m, (u, w)| m.max((u - w).abs())) / scale;
    assert!(moved > 1e-3, "the RoPE factor changed nothing ({moved:e})");
}

/// `eval --adapter` puts an adapter on its base as PEFT does, which is what
/// `export` writes: an adapter that saves the embedding of a tied model
/// unties it (the LM head keeps the base's embedding), so evaluating the
/// adapter on its base and evaluating the export give the same perplexity.
#[test]
fn eval_with_an_adapter_that_unties_embeddings_equals_eval_of_its_export() {
    if !gpu() {
        return;
    }
    let dir = scratch("export_eval_tied");
    let tied = base_config_text().replace("\"tie_word_embeddings\": false", "\"tie_word_embeddings\": true");
    let base = base_copy(&dir, &tied);
    let config = LlamaConfig::from_file(&base.join("config.json")).unwrap();
    let adapter = dir.join("adapter");
    let mut peft: BTreeMap<String, HostTensor> = write_adapter(&adapter, &config)
        .into_iter()
        .map(|(n, t)| (format!("base_model.model.{n}"), t))
        .collect();
    let config_text = std::fs::read_to_string(adapter.join("adapter_config.json")).unwrap();
    std::fs::write(
        adapter.join("adapter_config.json"),
        config_text.replace("[\"norm\"]", "[\"norm\", \"embed_tokens\"]"),
    )
    .unwrap();
    let embedding = HostTensor { shape: vec![128, 64], data: random(128 * 64, 7) };
    peft.insert("base_model.model.model.embed_tokens.weight".into(), embedding);
    save(&adapter.join("adapter_model.safetensors"), &peft).unwrap();
    let merged = dir.join("merged");
    export(&base, &adapter, &merged);

    let (rows, t) = (3, 24);
    let ids: Vec<i64> = (0..rows * t).map(|i| ((i * 53 + 5) % 128) as i64).collect();
    let data = dir.join("ids.safetensors");
    write_ids(&data, &ids, &[rows, t]);
    let eval = |model: &Path, json: &str, extra: &[&str]| -> f64 {
        let json = dir.join(json);
        let mut args =
            vec!["eval", model.to_str().unwrap(), "--data", data.to_str().unwrap(), "--seq-len", "24"];
        args.extend_from_slice(&["--json", json.to_str().unwrap()]);
        args.extend_from_slice(extra);
        let o = weft(&args);
        assert!(o.status.success(), "weft {args:?} failed:\n{}", stderr(&o));
        let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
        json["perplexity"]["24"].as_f64().unwrap()
    };
    let adapted = eval(&base, "adapted.json", &["--adapter", adapter.to_str().unwrap()]);
    let exported = eval(&merged, "merged.json", &[]);
    assert!((adapted - exported).abs() <= 1e-5 * exported, "adapter on base {adapted}, export {exported}");
    // The base alone scores otherwise: the adapter was applied.
    let plain = eval(&base, "base.json", &[]);
    assert!((plain - exported).abs() > 1e-3 * exported, "base {plain}, export {exported}");
}
