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
        "useful GFLOP/s counts",
        "matmul 64x64x64 (",
        "fused causal fwd ",
        "fused causal fwd+bwd",
        "fused s2attn-roll fwd ",
        "fused s2attn-roll fwd+bwd",
        "S2-Attn / causal time (fwd):",
        "S2-Attn / causal time (fwd+bwd):",
        "unfused s2attn-roll fwd",
        "unfused / fused (forward):",
        "unfused s2attn-roll fwd+bwd",
        "unfused / fused (fwd+bwd):",
        "MiB",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
    // Every fused row: visited GFLOP/s, useful GFLOP/s (no more than visited)
    // and their ratio to the matmul, all positive.
    let rows: Vec<&str> = out.lines().filter(|l| l.trim_start().starts_with("fused ")).collect();
    assert_eq!(rows.len(), 4, "{out}");
    for row in rows {
        let fields: Vec<&str> = row.split_whitespace().collect();
        let number = |i: usize| -> f64 {
            fields[i].trim_end_matches('x').parse().unwrap_or_else(|e| panic!("{row}: field {i}: {e}"))
        };
        let (visited, useful, vs_matmul) = (number(4), number(5), number(6));
        assert!(fields[6].ends_with('x'), "{row}");
        assert!(useful > 0.0 && useful <= visited * 1.001 && vs_matmul > 0.0, "{row}");
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
        // Each of the slowest kernels with its rate and its title.
        " GFLOP/s  ",
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

/// Serving at a length where LongGen's window (1024 + 64 sinks) leaves keys
/// behind: the hybrid's sparse layers keep 1088 slots of 1400.
#[test]
fn bench_generate_compares_the_hybrid_with_causal() {
    if !gpu() {
        return;
    }
    let args =
        ["bench", "generate", "--seq-len", "1400", "--new-tokens", "2", "--hidden", "64", "--heads", "2"];
    let out = ok(&[&args[..], &["--vocab", "64"]].concat());
    for needle in [
        "T = 1400: prefill 1398 tokens, then decode 2",
        "causal",
        "longgen-hybrid",
        "hybrid / causal: KV cache",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
    let slots = |name: &str| -> usize {
        let line = out.lines().find(|l| l.trim_start().starts_with(name)).unwrap();
        line.split_whitespace().nth(3).unwrap().parse().unwrap()
    };
    // 3 layers × 2 KV heads' worth of positions; one slot count per layer.
    assert_eq!(slots("causal "), 3 * 1400);
    assert_eq!(slots("longgen-hybrid"), 2 * 1088 + 1400);
    assert!(out.contains("the masks predict: KV cache 0.851x"), "{out}");
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
