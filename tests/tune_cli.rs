//! `weft tune` writes the per-adapter cache, and `weft attn` uses it, or warns
//! about a broken one and runs with the defaults. No timing is asserted.

mod common;

use common::{example, gpu, root, scratch, stderr, stdout, weft_with_cache};
use weft_runtime::io::TensorFile;

/// Runs the S2-Attn fixture through `weft attn` with the cache at `cache`;
/// checks the result against numpy's and returns stderr.
fn attn_fixture(dir: &std::path::Path, cache: &std::path::Path) -> String {
    let out = dir.join("out.safetensors");
    let spec = example("s2attn-roll.toml");
    let input = root().join("tests/data/s2attn-roll-input.safetensors");
    let args =
        ["attn", spec.to_str().unwrap(), "--input", input.to_str().unwrap(), "--out", out.to_str().unwrap()];
    let o = weft_with_cache(&args, cache);
    assert!(o.status.success(), "weft attn failed:\n{}", stderr(&o));
    let got = TensorFile::load(&out).unwrap();
    let expected = TensorFile::load(&root().join("tests/data/s2attn-roll-expected.safetensors")).unwrap();
    for name in ["o", "dq", "dk", "dv"] {
        let (g, e) = (got.f32(name).unwrap(), expected.f32(name).unwrap());
        let scale = e.data.iter().fold(0f32, |m, v| m.max(v.abs()));
        let err = g.data.iter().zip(&e.data).fold(0f32, |m, (a, b)| m.max((a - b).abs())) / scale;
        assert!(err <= 1e-4, "{name}: relative error {err:e}");
    }
    stderr(&o)
}

#[test]
fn tune_writes_the_cache_and_attn_uses_it() {
    if !gpu() {
        return;
    }
    let dir = scratch("tune_cli");
    let cache = dir.join("cache/tuning.toml");
    // The fixture's head dimension, so that the tuned rows per invocation apply as they are.
    let args = ["tune", "--quick", "--seq-len", "64", "--heads", "2", "--head-dim", "16", "--repeats", "1"];
    let o = weft_with_cache(&args, &cache);
    let out = stdout(&o);
    assert!(o.status.success(), "weft tune failed:\n{}\n{out}", stderr(&o));
    for needle in [
        "adapter:",
        "problem: causal B=1 H=2 N=64 D=16",
        "1st run s",
        "default",
        "forward (plans without backward):",
        "backward (plans with backward):",
        "matmul narrow_n [2048x1024]x[1024x8]: ",
        "matmul narrow_m [8x2048]x[2048x1024]: ",
        "matmul small    [512x512]x[512x512]: ",
        "matmul large    [1024x1024]x[1024x1024]: ",
        &format!("wrote {}", cache.display()),
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
    assert!(stderr(&o).contains("[1/"), "no progress in:\n{}", stderr(&o));
    // Every candidate run, attention and matmul, passed its correctness check
    // (the quick budget may leave some out on a slow machine: `skipped:`).
    for text in [&out, &stderr(&o)] {
        assert!(!text.contains("failed:"), "a candidate failed:\n{text}");
    }
    let text = std::fs::read_to_string(&cache).unwrap();
    for needle in ["format = 2", "[[adapter]]", "[[adapter.attention]]", "head_dim = 16"] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    for class in ["narrow_n", "narrow_m", "small", "large"] {
        assert!(text.contains(&format!("[adapter.matmul.{class}]")), "no {class} matmul in:\n{text}");
    }

    // A second run at the same head dimension finds the result and leaves it alone.
    let o = weft_with_cache(&["tune", "--quick", "--head-dim", "16"], &cache);
    assert!(o.status.success());
    assert!(stdout(&o).contains("already tuned on causal B=1 H=2 N=64 D=16"), "{}", stdout(&o));
    assert!(stdout(&o).contains("matmul narrow_n "), "{}", stdout(&o));
    assert_eq!(std::fs::read_to_string(&cache).unwrap(), text);

    // `weft compile` plans with the cached matmul shapes, and names each in its kernel table.
    let graph = dir.join("lora.sexpr");
    std::fs::write(&graph, LORA_GRAPH).unwrap();
    let o = weft_with_cache(&["compile", graph.to_str().unwrap(), "--emit", "plan", "--out", "-"], &cache);
    assert!(o.status.success(), "weft compile failed:\n{}", stderr(&o));
    let plan = stdout(&o);
    for (kernel, class) in [("n3_matmul", "narrow_n"), ("n4_matmul", "large")] {
        let want = format!("{class} {}", cached_matmul(&text, class));
        let row =
            plan.lines().find(|l| l.starts_with(kernel)).unwrap_or_else(|| panic!("no {kernel} in:\n{plan}"));
        assert!(row.trim_end().ends_with(&want), "{kernel} should run {want}:\n{row}");
    }
    let err = attn_fixture(&dir, &cache);
    let said = format!("tuned for this adapter on causal B=1 H=2 N=64 D=16, from {})", cache.display());
    assert!(err.contains("kernel config: ") && err.contains(&said), "{err}");
}

#[test]
fn attn_warns_about_a_corrupt_cache_and_runs_with_the_defaults() {
    if !gpu() {
        return;
    }
    let dir = scratch("tune_cli_corrupt");
    let cache = dir.join("tuning.toml");
    let garbage = "format = 1\n[[adapter\n";
    std::fs::write(&cache, garbage).unwrap();
    let err = attn_fixture(&dir, &cache);
    let warning = format!("warning: the tuning cache {} is not valid: ", cache.display());
    assert!(err.contains(&warning), "{err}");
    assert!(err.contains("using the default kernel configuration"), "{err}");
    // The device's defaults (on lavapipe `32x32 r4 sg checked`), whatever the adapter.
    let line = err.lines().find(|l| l.starts_with("kernel config: 32x32 r")).unwrap_or_default();
    assert!(line.ends_with(" checked (defaults; `weft tune` measures this adapter)"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // `attn` only reads the cache.
    assert_eq!(std::fs::read_to_string(&cache).unwrap(), garbage);
}

/// `bench step` reads the cache before planning; `--plan-only` stops there, so
/// the test does not run again the step `bench_cli.rs` runs with the defaults.
#[test]
fn bench_step_warns_once_about_a_corrupt_cache_and_plans_with_the_defaults() {
    if !gpu() {
        return;
    }
    let dir = scratch("tune_cli_corrupt_step");
    let cache = dir.join("tuning.toml");
    std::fs::write(&cache, "format = 1\n[[adapter\n").unwrap();
    let args = [
        "bench",
        "step",
        "--seq-len",
        "48",
        "--hidden",
        "64",
        "--layers",
        "1",
        "--heads",
        "2",
        "--vocab",
        "64",
        "--plan-only",
    ];
    let o = weft_with_cache(&args, &cache);
    let err = stderr(&o);
    assert!(o.status.success(), "weft bench step failed:\n{err}");
    let warning = format!("warning: the tuning cache {} is not valid: ", cache.display());
    // The tuned matmul and attention tiles are not applied, and it says so, once.
    assert_eq!(err.matches(&warning).count(), 1, "{err}");
    // The plans (kernels and buffers of each step) are the defaults' plans.
    let defaults = weft_with_cache(&args, &dir.join("no-such-file.toml"));
    assert!(defaults.status.success(), "{}", stderr(&defaults));
    let table = |out: &str| out.lines().filter(|l| l.contains("MiB")).map(String::from).collect::<Vec<_>>();
    assert_eq!(table(&stdout(&o)).len(), 2, "{}", stdout(&o));
    assert_eq!(table(&stdout(&o)), table(&stdout(&defaults)));
    assert_eq!(std::fs::read_to_string(&cache).unwrap(), "format = 1\n[[adapter\n", "the cache is only read");
}

/// A LoRA-shaped pair of matmuls: `x·Aᵀ` (rank 8, the narrow class) and a
/// 512 × 1024 × 1024 projection (the large class). `--emit plan` does not optimize,
/// so both stay matmuls.
const LORA_GRAPH: &str = "(graph lora
  (%0 (input x) f32[512, 1024])
  (%1 (input a) f32[8, 1024])
  (%2 (input w) f32[1024, 1024])
  (%3 (matmul %0 %1 :transpose-b) f32[512, 8])
  (%4 (matmul %0 %2 :transpose-b) f32[512, 1024])
  (output xa %3)
  (output y %4))
";

/// The `[adapter.matmul.<class>]` table of a cache file, as `sg4x64/wg8` or `8x8/wg64`.
fn cached_matmul(text: &str, class: &str) -> String {
    let table: toml::Table = toml::from_str(text).unwrap();
    let m = &table["adapter"].as_array().unwrap()[0]["matmul"][class];
    let prefix = if m["kernel"].as_str() == Some("subgroup") { "sg" } else { "" };
    format!("{prefix}{}x{}/wg{}", m["rows"], m["cols"], m["workgroup"])
}
