//! End-to-end tests of the compiler commands: compile, inspect kernels, attn.

mod common;

use common::{example, gpu, ok, root, scratch, stderr, weft};
use weft_runtime::io::TensorFile;

#[test]
fn compile_emits_every_stage() {
    let dir = scratch("compile");
    let spec = example("s2attn-roll.toml");
    let spec = spec.to_str().unwrap();
    let sizes = ["--seq-len", "128", "--heads", "4", "--head-dim", "16"];
    let opt = ok(&[&["compile", spec, "--emit", "opt", "--out", "-"], &sizes[..]].concat());
    assert!(opt.contains("fused-attention") && !opt.contains("(roll "), "{opt}");
    assert!(opt.contains("; rules fired:") && opt.contains("fuse-roll"), "{opt}");
    let plan = ok(&[&["compile", spec, "--emit", "plan", "--out", "-", "--backward"], &sizes[..]].concat());
    assert!(plan.contains("attn_fwd") && plan.contains("attn_bwd"), "{plan}");
    let wgsl = dir.join("wgsl");
    ok(&[&["compile", spec, "--emit", "wgsl", "--out", wgsl.to_str().unwrap(), "--backward"], &sizes[..]]
        .concat());
    let spirv = dir.join("spirv");
    ok(&[&["compile", spec, "--emit", "spirv", "--out", spirv.to_str().unwrap()], &sizes[..]].concat());
    let n_wgsl = std::fs::read_dir(&wgsl).unwrap().count();
    assert!(n_wgsl >= 4, "forward + 3 backward kernels, found {n_wgsl}");
    for entry in std::fs::read_dir(&spirv).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..4], &0x0723_0203u32.to_le_bytes(), "{}: not SPIR-V", path.display());
    }
}

/// Both hand-written S2-Attn graphs, LongLoRA's roll with its groups folded
/// into the heads and its own code with the groups folded into the batch,
/// compile to the spec's kernel, and to nothing else.
#[test]
fn a_hand_written_graph_compiles_like_the_spec() {
    let fused =
        |text: &str| text.lines().find(|l| l.contains("fused-attention")).map(|l| l.trim().to_string());
    let spec = example("s2attn-roll.toml");
    let from_spec = ok(&[
        "compile",
        spec.to_str().unwrap(),
        "--emit",
        "opt",
        "--out",
        "-",
        "--seq-len",
        "64",
        "--heads",
        "4",
        "--head-dim",
        "16",
        "--batch",
        "2",
    ]);
    assert!(fused(&from_spec).is_some(), "{from_spec}");
    for name in ["s2attn-roll.sexpr", "s2attn-longlora.sexpr"] {
        let graph = root().join("examples/graphs").join(name);
        let graph = graph.to_str().unwrap();
        let from_graph = ok(&["compile", graph, "--emit", "opt", "--out", "-"]);
        assert_eq!(fused(&from_graph), fused(&from_spec), "{name}:\n{from_graph}");
        let plan = ok(&["compile", graph, "--emit", "plan", "--out", "-"]);
        assert!(plan.contains("\n1 kernels:\n") && plan.contains("attn_fwd"), "{name}:\n{plan}");
    }
}

#[test]
fn inspect_kernels_shows_graphs_rules_and_tiles() {
    let spec = example("sink-window.toml");
    let out = ok(&[
        "inspect",
        "kernels",
        spec.to_str().unwrap(),
        "--seq-len",
        "256",
        "--heads",
        "2",
        "--head-dim",
        "16",
    ]);
    for needle in [
        "== graphs: reference (left), optimized (right)",
        "rules fired:",
        "attn_fwd",
        "workgroup",
        "tiles visited",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
}

/// Fused, and unfused with autodiff's backward pass: both agree with numpy.
#[test]
fn attn_matches_numpys_longlora_reference_forward_and_backward() {
    if !gpu() {
        return;
    }
    assert_attn_matches_numpy(&example("s2attn-roll.toml"), &scratch("attn"));
}

/// LongLoRA's own code (groups folded into the batch, transposes around
/// them), run on the GPU from its hand-written graph: fused into one kernel,
/// and op by op as written (permutes, dense attention and autodiff's
/// backward), it agrees with numpy's reference of the roll form.
#[test]
fn attn_runs_longloras_batch_folded_graph_like_numpys_reference() {
    if !gpu() {
        return;
    }
    let graph = root().join("examples/graphs/s2attn-longlora.sexpr");
    assert_attn_matches_numpy(&graph, &scratch("attn_longlora"));
}

/// `weft attn SOURCE` fused and `--unfused` on the fixture's q, k, v, do:
/// o, dq, dk, dv within 1e-4 of numpy's f64 S2-Attn.
fn assert_attn_matches_numpy(source: &std::path::Path, dir: &std::path::Path) {
    let input = root().join("tests/data/s2attn-roll-input.safetensors");
    let expected = TensorFile::load(&root().join("tests/data/s2attn-roll-expected.safetensors")).unwrap();
    for (label, extra) in [("fused", None), ("unfused", Some("--unfused"))] {
        let out = dir.join(format!("{label}.safetensors"));
        let mut args = vec!["attn", source.to_str().unwrap(), "--input", input.to_str().unwrap()];
        args.extend(["--out", out.to_str().unwrap()]);
        args.extend(extra);
        ok(&args);
        let got = TensorFile::load(&out).unwrap();
        for name in ["o", "dq", "dk", "dv"] {
            let (g, e) = (got.f32(name).unwrap(), expected.f32(name).unwrap());
            assert_eq!(g.shape, e.shape, "{label} {name}");
            let scale = e.data.iter().fold(0f32, |m, v| m.max(v.abs()));
            let err = g.data.iter().zip(&e.data).fold(0f32, |m, (a, b)| m.max((a - b).abs())) / scale;
            assert!(err <= 1e-4, "{label} {name}: relative error {err:e}");
        }
    }
}

#[test]
fn attn_rejects_bad_inputs_clearly() {
    let dir = scratch("attn_bad");
    let spec = example("s2attn-roll.toml");
    let spec = spec.to_str().unwrap();
    let out = dir.join("o.safetensors");
    let o = weft(&["attn", spec, "--input", "/no/such.safetensors", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).starts_with("error: cannot read /no/such.safetensors"), "{}", stderr(&o));
    // The io error is part of the message once, not repeated as a cause.
    assert!(!stderr(&o).contains("caused by"), "{}", stderr(&o));
    // A file whose tensors have the wrong names.
    let wrong = dir.join("wrong.safetensors");
    let t = weft_runtime::io::HostTensor { shape: vec![1, 2, 8, 4], data: vec![0.5; 64] };
    weft_runtime::io::save(&wrong, &std::collections::BTreeMap::from([("query".to_string(), t)])).unwrap();
    let o = weft(&["attn", spec, "--input", wrong.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(stderr(&o).contains("has no tensor `q`; it has: query"), "{}", stderr(&o));
    assert!(!out.exists(), "no output after a failure");
}

/// Writes tensors to a safetensors file for a test.
fn write_tensors(path: &std::path::Path, tensors: &[(&str, Vec<usize>)]) {
    let map = tensors
        .iter()
        .map(|(name, shape)| {
            let len = shape.iter().product::<usize>();
            let data = (0..len).map(|i| ((i * 7919) % 13) as f32 / 7.0 - 0.9).collect();
            (name.to_string(), weft_runtime::io::HostTensor { shape: shape.clone(), data })
        })
        .collect();
    weft_runtime::io::save(path, &map).unwrap();
}

#[test]
fn attn_names_bad_shapes_dtypes_and_sizes() {
    let dir = scratch("attn_shapes");
    let spec = example("s2attn-roll.toml");
    let spec = spec.to_str().unwrap();
    let out = dir.join("o.safetensors");
    let run = |tensors: &[(&str, Vec<usize>)]| {
        let input = dir.join("in.safetensors");
        write_tensors(&input, tensors);
        let o = weft(&["attn", spec, "--input", input.to_str().unwrap(), "--out", out.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(1));
        let err = stderr(&o);
        assert!(!err.contains("panicked"), "{err}");
        err
    };
    let good = vec![1, 4, 64, 16];
    let err = run(&[("q", vec![4, 64, 16]), ("k", good.clone()), ("v", good.clone())]);
    assert!(
        err.contains("tensor `q` in") && err.contains("has shape [4, 64, 16]; expected [B, H, N, D]"),
        "{err}"
    );
    let err = run(&[("q", good.clone()), ("k", vec![1, 4, 32, 16]), ("v", good.clone())]);
    assert!(err.contains("tensor `k` has shape [1, 4, 32, 16]; expected [1, 4, 64, 16] like q"), "{err}");
    // N = 90 does not split into S2-Attn's groups of N/4 = 22.
    let odd = vec![1, 4, 90, 16];
    let err = run(&[("q", odd.clone()), ("k", odd.clone()), ("v", odd)]);
    assert!(err.contains("seq_len N = 90 is not divisible by 22"), "{err}");

    // A float64 tensor from another tool.
    let input = dir.join("f64.safetensors");
    let data: Vec<u8> = (0..4 * 64 * 16).flat_map(|i| (i as f64 / 100.0).to_le_bytes()).collect();
    let view = safetensors_view(&data);
    std::fs::write(&input, view).unwrap();
    let o = weft(&["attn", spec, "--input", input.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(
        stderr(&o).contains("tensor `q` in") && stderr(&o).contains("is F64; expected F32"),
        "{}",
        stderr(&o)
    );
    assert!(!out.exists());
}

/// A safetensors file holding one F64 tensor `q` of shape [1, 4, 64, 16], written by hand
/// from the format's definition: an 8-byte header length, a JSON header, then the data.
fn safetensors_view(data: &[u8]) -> Vec<u8> {
    let header =
        format!("{{\"q\":{{\"dtype\":\"F64\",\"shape\":[1,4,64,16],\"data_offsets\":[0,{}]}}}}", data.len());
    let mut header = header.into_bytes();
    while header.len() % 8 != 0 {
        header.push(b' ');
    }
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&header);
    out.extend_from_slice(data);
    out
}

#[test]
fn a_missing_adapter_is_a_clear_error() {
    let dir = scratch("no_adapter");
    let spec = example("s2attn-roll.toml");
    let input = root().join("tests/data/s2attn-roll-input.safetensors");
    let out = dir.join("o.safetensors");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_weft"))
        .args([
            "attn",
            spec.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .env("WGPU_ADAPTER_NAME", "no-such-adapter-anywhere")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("error: WGPU_ADAPTER_NAME=no-such-adapter-anywhere matches no adapter; available:"),
        "{err}"
    );
}

/// A 2-layer LLaMA `config.json` with every key transformers' `save_pretrained`
/// writes for `LlamaForCausalLM` (4.46), unknown ones included.
const SAVED_CONFIG: &str = r#"{
  "architectures": ["LlamaForCausalLM"],
  "attention_bias": false,
  "attention_dropout": 0.0,
  "bos_token_id": 1,
  "eos_token_id": 2,
  "head_dim": 16,
  "hidden_act": "silu",
  "hidden_size": 64,
  "initializer_range": 0.02,
  "intermediate_size": 176,
  "max_position_embeddings": 256,
  "mlp_bias": false,
  "model_type": "llama",
  "num_attention_heads": 4,
  "num_hidden_layers": 2,
  "num_key_value_heads": 2,
  "pretraining_tp": 1,
  "rms_norm_eps": 1e-06,
  "rope_scaling": null,
  "rope_theta": 10000.0,
  "tie_word_embeddings": false,
  "torch_dtype": "float32",
  "transformers_version": "4.46.3",
  "use_cache": true,
  "vocab_size": 128
}"#;

/// `weft compile --emit plan --train` on a model prints the training step's
/// kernels, by kind with FLOPs and bytes: attention fused forward and
/// backward, LoRA and embedding gradients, the loss.
#[test]
fn compile_prints_a_models_training_step() {
    let dir = scratch("compile-model");
    let config = dir.join("config.json");
    std::fs::write(&config, SAVED_CONFIG).unwrap();
    let args =
        ["compile", config.to_str().unwrap(), "--emit", "plan", "--train", "--seq-len", "64", "--out", "-"];
    let plan = ok(&args);
    for needle in
        ["attn_fwd", "attn_bwd_dkdv", "embedding_grad", "cross_entropy", "matmul", "MFLOP", "kernels:"]
    {
        assert!(plan.contains(needle), "missing {needle:?} in:\n{plan}");
    }
    // Two layers of causal attention: one forward and one backward pass each, no N x N buffer.
    assert_eq!(plan.lines().filter(|l| l.trim_start().starts_with("attn_fwd")).count(), 2, "{plan}");
    assert!(!plan.contains("[1, 4, 64, 64]"), "{plan}");
    // `weft train`'s step: seeded by the loss only, no logits output (nor their cotangent).
    assert!(plan.contains("buffer dloss []") && !plan.contains("buffer dlogits"), "{plan}");
    assert!(!plan.contains("buffer logits "), "{plan}");
    // Inference: no backward kernel.
    let forward =
        ok(&["compile", config.to_str().unwrap(), "--emit", "plan", "--seq-len", "64", "--out", "-"]);
    assert!(forward.contains("attn_fwd") && !forward.contains("attn_bwd"), "{forward}");
}

/// `weft inspect kernels` on a checkpoint directory written the way
/// transformers' `save_pretrained` writes one (`tests/data/llama-2layer`, made
/// by `tests/data/make_llama_checkpoint.py` with transformers 5.25), with a pattern.
#[test]
fn inspect_kernels_shows_a_checkpoints_training_step() {
    let dir = root().join("tests/data/llama-2layer");
    let spec = example("s2attn-roll.toml");
    let out = ok(&[
        "inspect",
        "kernels",
        dir.to_str().unwrap(),
        "--train",
        "--seq-len",
        "64",
        "--pattern",
        spec.to_str().unwrap(),
    ]);
    for needle in
        ["== optimizer", "== training step", "model.embed_tokens.weight", "== kernels", "tiles visited"]
    {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
    // The S2-Attn pattern's two head groups, one fused node per layer.
    assert!(out.contains("roll(G/2") || out.contains("roll(8"), "{out}");
    let err = stderr(&weft(&["inspect", "kernels", dir.to_str().unwrap(), "--heads", "8"]));
    assert!(err.contains("--heads comes from the model's config"), "{err}");
}

/// A `config.json` key weft does not know is ignored with a warning naming it
/// (known keys, even ones weft does not use, pass silently).
#[test]
fn unknown_config_keys_are_named_in_a_warning() {
    let dir = scratch("unknown-keys");
    let config = dir.join("config.json");
    let text = SAVED_CONFIG.replace("\"vocab_size\": 128", "\"vocab_size\": 128,\n  \"frobnicate_heads\": 3");
    std::fs::write(&config, text).unwrap();
    let o = weft(&["compile", config.to_str().unwrap(), "--emit", "plan", "--seq-len", "64", "--out", "-"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("ignoring keys weft does not know: frobnicate_heads"), "{err}");
    std::fs::write(&config, SAVED_CONFIG).unwrap();
    let o = weft(&["compile", config.to_str().unwrap(), "--emit", "plan", "--seq-len", "64", "--out", "-"]);
    assert!(!stderr(&o).contains("ignoring keys"), "{}", stderr(&o));
}
