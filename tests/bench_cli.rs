//! `weft bench attn` runs end to end at a tiny size and prints every figure.

mod common;

use common::ok;

#[test]
fn bench_attn_prints_its_table() {
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
fn bench_matmul_checks_and_times_every_quick_candidate() {
    let out = ok(&["bench", "matmul", "--quick", "--shape", "40x36x20,8x5x3"]);
    for needle in
        ["adapter:", "4x4/wg64", "8x8/wg64", "[40x36]x[36x20] GFLOP/s", "[8x5]x[5x3] GFLOP/s", "best: "]
    {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
    assert!(!out.contains("skipped"), "a candidate failed its check:\n{out}");
}
