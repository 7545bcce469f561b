//! `weft bench attn` runs end to end at a tiny size and prints every figure.

mod common;

use common::{gpu, ok};

#[test]
fn bench_attn_prints_its_table() {
    if !gpu() {
        return;
    }
    let out = ok(&["bench", "attn", "--seq-len", "64", "--heads", "2", "--head-dim", "16", "--repeats", "1"]);
    for needle in [
        "adapter:",
        "fused s2attn-roll fwd+bwd",
        "fused causal fwd+bwd",
        "S2-Attn / causal (fwd+bwd):",
        "unfused s2attn-roll fwd",
        "unfused / fused (forward):",
        "unfused s2attn-roll fwd+bwd",
        "unfused / fused (fwd+bwd):",
        "MiB",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
}

#[test]
fn bench_step_prints_its_table() {
    if !gpu() {
        return;
    }
    let args = ["bench", "step", "--seq-len", "48", "--hidden", "64", "--layers", "1", "--heads", "2"];
    let out = ok(&[&args[..], &["--vocab", "64", "--profile", "3"]].concat());
    for needle in [
        "model: ",
        "T = 48",
        "causal",
        "s2attn",
        "S2-Attn / causal (step):",
        "slowest kernels",
        "none",
        "by kind (kernels): ",
        "fused attention ",
        "matmul ",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
    let plan = ok(&[&args[..], &["--vocab", "64", "--plan-only"]].concat());
    assert!(plan.contains("MiB") && !plan.contains("S2-Attn / causal"), "{plan}");
}

#[test]
fn bench_matmul_checks_and_times_every_quick_candidate() {
    if !gpu() {
        return;
    }
    let out = ok(&["bench", "matmul", "--quick", "--shape", "40x36x20,8x5x3"]);
    for needle in
        ["adapter:", "4x4/wg64", "8x8/wg64", "[40x36]x[36x20] GFLOP/s", "[8x5]x[5x3] GFLOP/s", "best: "]
    {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
    assert!(!out.contains("skipped"), "a candidate failed its check:\n{out}");
}
