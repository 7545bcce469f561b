//! End-to-end tests of the compiler commands: compile, inspect kernels, attn.

mod common;

use common::{example, ok, root, scratch, stderr, weft};
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

#[test]
fn a_hand_written_graph_compiles_like_the_spec() {
    let graph = root().join("examples/graphs/s2attn-roll.sexpr");
    let from_graph = ok(&["compile", graph.to_str().unwrap(), "--emit", "opt", "--out", "-"]);
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
    assert!(fused(&from_graph).is_some(), "{from_graph}");
    assert_eq!(fused(&from_graph), fused(&from_spec));
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

#[test]
fn attn_matches_numpys_longlora_reference_forward_and_backward() {
    let dir = scratch("attn");
    let out = dir.join("out.safetensors");
    let spec = example("s2attn-roll.toml");
    let input = root().join("tests/data/s2attn-roll-input.safetensors");
    ok(&["attn", spec.to_str().unwrap(), "--input", input.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    let got = TensorFile::load(&out).unwrap();
    let expected = TensorFile::load(&root().join("tests/data/s2attn-roll-expected.safetensors")).unwrap();
    for name in ["o", "dq", "dk", "dv"] {
        let (g, e) = (got.f32(name).unwrap(), expected.f32(name).unwrap());
        assert_eq!(g.shape, e.shape, "{name}");
        let scale = e.data.iter().fold(0f32, |m, v| m.max(v.abs()));
        let err = g.data.iter().zip(&e.data).fold(0f32, |m, (a, b)| m.max((a - b).abs())) / scale;
        assert!(err <= 1e-4, "{name}: relative error {err:e}");
    }
}

#[test]
fn attn_rejects_bad_inputs_clearly() {
    let dir = scratch("attn_bad");
    let spec = example("s2attn-roll.toml");
    let spec = spec.to_str().unwrap();
    let input = root().join("tests/data/s2attn-roll-input.safetensors");
    let out = dir.join("o.safetensors");
    let o = weft(&["attn", spec, "--input", "/no/such.safetensors", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).starts_with("error: cannot read /no/such.safetensors"), "{}", stderr(&o));
    let o = weft(&[
        "attn",
        spec,
        "--input",
        input.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--unfused",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("--unfused runs the forward pass only"), "{}", stderr(&o));
    // A file whose tensors have the wrong names.
    let wrong = dir.join("wrong.safetensors");
    let t = weft_runtime::io::HostTensor { shape: vec![1, 2, 8, 4], data: vec![0.5; 64] };
    weft_runtime::io::save(&wrong, &std::collections::BTreeMap::from([("query".to_string(), t)])).unwrap();
    let o = weft(&["attn", spec, "--input", wrong.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(stderr(&o).contains("has no tensor `q`; it has: query"), "{}", stderr(&o));
    assert!(!out.exists(), "no output after a failure");
}
