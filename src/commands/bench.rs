//! `weft bench attn`: fused vs unfused, S2-Attn vs full causal, on the current
//! adapter; `weft bench matmul` lives in `bench_matmul.rs`.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use rand::{Rng, SeedableRng, rngs::StdRng};
use weft_compiler::{
    AttentionPlanOptions, CompileOptions, FusedAttentionDesc, Mode, OptimizeOptions, compile, fuse_attention,
};
use weft_ir::mask::head_stats;
use weft_runtime::tune::{KernelChoice, MatmulShape, matmul_rate};
use weft_runtime::{Executor, FusedPlan, Prepared};

use crate::commands::tune::kernel_choice;

use weft_ir::graph::ValidGraph;
use weft_ir::lower::{LowerOptions, lower_pattern};
use weft_ir::{Overrides, SourceFile, Spec};

/// The benchmarked patterns, built in so that the benchmark runs from any directory.
const PATTERNS: [(&str, &str); 2] = [
    ("s2attn-roll", include_str!("../../examples/patterns/s2attn-roll.toml")),
    ("causal", include_str!("../../examples/patterns/causal.toml")),
];

fn reference(name: &str, n: usize, args: &BenchAttnArgs) -> anyhow::Result<ValidGraph> {
    let text = PATTERNS.iter().find(|(p, _)| *p == name).map(|(_, t)| *t).context("unknown pattern")?;
    let overrides = Overrides {
        seq_len: Some(n),
        n_heads: Some(args.heads),
        head_dim: Some(args.head_dim),
        n_layers: None,
    };
    let schedule = Spec::parse(SourceFile::new(format!("{name}.toml"), text))?.resolve(&overrides)?;
    Ok(lower_pattern(&schedule.patterns[0], &LowerOptions::new(args.batch, n, args.head_dim))?)
}

#[derive(Subcommand, Debug)]
pub enum BenchWhat {
    /// Attention: fused causal and S2-Attn, forward and forward+backward, against
    /// the matmul rate of the same run; and the unfused roll graph.
    Attn(BenchAttnArgs),
    /// One fine-tuning step (forward, loss, backward) of a ~20M-parameter LLaMA, causal vs S2-Attn.
    Step(super::bench_step::BenchStepArgs),
    /// Serving: LongGen's hybrid against full causal on one model: KV-cache bytes, prefill time and
    /// decode tokens/s per context length, with the ratios the masks predict.
    Generate(super::bench_generate::BenchGenerateArgs),
    /// Matmul: every candidate tile shape and workgroup size of the simple code generator.
    Matmul(crate::commands::bench_matmul::BenchMatmulArgs),
}

#[derive(Args, Debug)]
pub struct BenchAttnArgs {
    /// Sequence lengths, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1024,4096,8192", value_parser = crate::args::seq_len)]
    pub seq_len: Vec<usize>,
    #[arg(long, default_value_t = 8, value_parser = crate::args::heads)]
    pub heads: usize,
    #[arg(long, default_value_t = 64, value_parser = crate::args::head_dim)]
    pub head_dim: usize,
    #[arg(long, default_value_t = 1, value_parser = crate::args::batch)]
    pub batch: usize,
    /// Timed runs after one warm-up run (which also compiles the pipelines); the median is reported.
    #[arg(long, default_value_t = 3, value_parser = crate::args::repeats)]
    pub repeats: usize,
    /// Skip the unfused baseline (it materializes N x N scores and is slow; it
    /// never runs above N = 4096).
    #[arg(long)]
    pub no_unfused: bool,
}

pub fn run(what: &BenchWhat) -> anyhow::Result<()> {
    match what {
        BenchWhat::Attn(args) => attn(args),
        BenchWhat::Step(args) => super::bench_step::run(args),
        BenchWhat::Generate(args) => super::bench_generate::run(args),
        BenchWhat::Matmul(args) => super::bench_matmul::run(args),
    }
}

fn attn(args: &BenchAttnArgs) -> anyhow::Result<()> {
    let gpu = crate::gpu::open()?;
    outln!("adapter: {}", gpu.adapter_description());
    let limits = gpu.limits();
    // `weft tune`'s choices for this adapter if there are some, else the defaults.
    let choice = kernel_choice(&gpu, args.head_dim);
    let plan_opts = super::tune::plan_options(&gpu);
    outln!("fwd+bwd {}", choice.describe(true, args.head_dim));
    outln!("fwd     {}", choice.describe(false, args.head_dim));
    outln!(
        "GFLOP/s counts the multiply-adds of the tiles the kernels visit; useful GFLOP/s counts \
         4·D per allowed (query, key) pair forward, 3.5x that forward + backward; \
         ÷ matmul is useful GFLOP/s over the matmul's, at the FLOPs of causal forward + backward"
    );
    let mut executor = Executor::new(gpu);
    let base = AttentionPlanOptions { limits, ..AttentionPlanOptions::default() };
    for &n in &args.seq_len {
        // q, k, v, do and the outputs, on the host and the device.
        let shape = [args.batch, args.heads, n, args.head_dim];
        let elements = crate::memory::attention_tensors(shape, 16, &format!("bench attn at N = {n}"))?;
        let inputs = random_inputs(elements);
        outln!("\nN = {n}, H = {}, D = {}, B = {}", args.heads, args.head_dim, args.batch);
        let mut patterns = Vec::new();
        for name in ["causal", "s2attn-roll"] {
            let reference = reference(name, n, args)?;
            let fused = fuse_attention(reference.clone(), &OptimizeOptions::default())?;
            let useful = useful_forward_flops(&fused.desc, base.block_q)?;
            patterns.push((name, reference, useful));
        }
        // The matmul the attention is held against: the kernel this adapter's
        // plans use at that size, with the FLOPs of causal forward + backward.
        let causal_all = 3.5 * patterns[0].2;
        let side = matmul_side(causal_all);
        let (config, matmul) =
            matmul_rate(&mut executor, &plan_opts, MatmulShape::new(side, side, side), args.repeats)
                .with_context(|| format!("timing the {side}x{side}x{side} matmul"))?;
        outln!(
            "  matmul {side}x{side}x{side} ({config}, {:.1} GFLOP; causal fwd+bwd is {:.1}): {matmul:.2} GFLOP/s",
            2.0 * (side as f64).powi(3) / 1e9,
            causal_all / 1e9
        );
        outln!(
            "  {:<34} {:>11} {:>9} {:>9} {:>9} {:>14} {:>9}",
            "run",
            "median ms",
            "GFLOP/s",
            "useful",
            "÷ matmul",
            "peak buffers",
            "largest"
        );
        let mut times = HashMap::new();
        for (name, reference, useful) in &patterns {
            for backward in [false, true] {
                let fused = fused_plan(reference, &choice, &base, backward, args.head_dim)?;
                let stats = fused.stats();
                let visited = (stats.flops_forward + stats.flops_backward) as f64;
                let pass = if backward { "fwd+bwd" } else { "fwd" };
                let label = format!("fused {name} {pass}");
                let prepared = executor.prepare(&fused).with_context(|| format!("preparing {label}"))?;
                let rate = Rate { visited, useful: useful * if backward { 3.5 } else { 1.0 }, matmul };
                let largest = fused.plan().largest_buffer();
                let t = time_plan(&executor, &prepared, largest, &inputs, args.repeats, &label, rate)?;
                times.insert((*name, backward), t);
            }
        }
        let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
        for (backward, pass) in [(false, "fwd"), (true, "fwd+bwd")] {
            let r = ratio(times[&("s2attn-roll", backward)], times[&("causal", backward)]);
            outln!("  S2-Attn / causal time ({pass}): {r:.3}x");
        }
        if args.no_unfused {
            continue;
        }
        if n > MAX_UNFUSED_SEQ_LEN {
            outln!(
                "  unfused baseline skipped above N = {MAX_UNFUSED_SEQ_LEN} (its N×N scores alone outgrow memory)"
            );
            continue;
        }
        let (_, reference, useful) = &patterns[1];
        let opts = plan_opts.clone();
        // The backward pass as autodiff spells it: scores and probabilities
        // materialized, as an eager framework computes it.
        let as_written =
            |mode: Mode| CompileOptions { mode, optimize: false, plan: opts.clone(), ..Default::default() };
        let backward = Mode::Training { wrt: ["q", "k", "v"].map(String::from).to_vec(), seeds: Vec::new() };
        let fused = fused_plan(reference, &choice, &base, false, args.head_dim)?;
        let flops_fwd = fused.stats().flops_forward as f64;
        let fused_all = fused_plan(reference, &choice, &base, true, args.head_dim)?;
        let flops_all = (fused_all.stats().flops_forward + fused_all.stats().flops_backward) as f64;
        let unfused_fwd = {
            let plan = compile(reference.clone(), &as_written(Mode::Inference))?.plan;
            let label = "unfused s2attn-roll fwd";
            let prepared = executor.prepare(&plan).with_context(|| format!("preparing {label}"))?;
            let rate = Rate { visited: flops_fwd, useful: *useful, matmul };
            time_plan(&executor, &prepared, plan.largest_buffer(), &inputs, args.repeats, label, rate)?
        };
        let unfused_all = {
            let plan = compile(reference.clone(), &as_written(backward))?.plan;
            let label = "unfused s2attn-roll fwd+bwd";
            let prepared = executor.prepare(&plan).with_context(|| format!("preparing {label}"))?;
            let rate = Rate { visited: flops_all, useful: 3.5 * useful, matmul };
            time_plan(&executor, &prepared, plan.largest_buffer(), &inputs, args.repeats, label, rate)?
        };
        outln!("  unfused / fused (forward): {:.2}x", ratio(unfused_fwd, times[&("s2attn-roll", false)]));
        outln!("  unfused / fused (fwd+bwd): {:.2}x", ratio(unfused_all, times[&("s2attn-roll", true)]));
    }
    Ok(())
}

/// The longest sequence the unfused baseline runs at: at 8192 its score
/// matrices alone would take 2 GiB per head.
const MAX_UNFUSED_SEQ_LEN: usize = 4096;

/// Useful forward FLOPs of a fused attention node: 4·D per pair its masks
/// allow (two multiply-adds per pair and head dimension: QKᵀ and PV), over
/// every head and batch entry.
fn useful_forward_flops(desc: &FusedAttentionDesc, block: usize) -> anyhow::Result<f64> {
    let pairs: u64 =
        desc.head_masks()?.iter().map(|mask| head_stats(mask, desc.seq_len, block).allowed_pairs).sum();
    Ok(4.0 * desc.head_dim as f64 * pairs as f64 * desc.batch as f64)
}

/// The side of a square matmul with about `flops` FLOPs (2·side³), a multiple of 64.
fn matmul_side(flops: f64) -> usize {
    let side = (flops / 2.0).cbrt();
    ((side / 64.0).round() as usize).max(1) * 64
}

/// What a timed run's FLOPs are: visited-tile FLOPs, useful FLOPs, and the
/// matmul rate of the same run.
#[derive(Clone, Copy)]
struct Rate {
    visited: f64,
    useful: f64,
    matmul: f64,
}

/// The fused plan of `reference` with the adapter's kernel configuration.
fn fused_plan(
    reference: &ValidGraph,
    choice: &KernelChoice,
    base: &AttentionPlanOptions,
    backward: bool,
    head_dim: usize,
) -> anyhow::Result<FusedPlan> {
    let (config, _) = choice.config(backward, head_dim);
    let fused = fuse_attention(reference.clone(), &OptimizeOptions::default())?;
    let opts = config.plan_options(&AttentionPlanOptions { backward, ..base.clone() });
    Ok(FusedPlan::new(&fused.desc, &opts, config.checks)?)
}

fn random_inputs(len: usize) -> HashMap<String, Vec<f32>> {
    let mut rng = StdRng::seed_from_u64(0x5EED);
    // `do` seeds both backward passes: the fused plan's, and autodiff's as the cotangent of `o`.
    ["q", "k", "v", "do"]
        .iter()
        .map(|n| (n.to_string(), (0..len).map(|_| rng.random_range(-1.0..1.0)).collect()))
        .collect()
}

/// Runs a prepared plan once to warm up, then `repeats` times; prints and
/// returns the median. `largest` is the plan's largest buffer.
fn time_plan(
    executor: &Executor,
    prepared: &Prepared,
    largest: u64,
    inputs: &HashMap<String, Vec<f32>>,
    repeats: usize,
    label: &str,
    rate: Rate,
) -> anyhow::Result<Duration> {
    let wanted: HashMap<String, Vec<f32>> = prepared
        .input_names()
        .into_iter()
        .filter_map(|n| inputs.get(n).map(|v| (n.to_string(), v.clone())))
        .collect();
    executor.upload(prepared, &wanted)?;
    executor.execute(prepared)?;
    let mut times: Vec<Duration> =
        (0..repeats.max(1)).map(|_| executor.execute(prepared)).collect::<Result<_, _>>()?;
    times.sort();
    let median = times[times.len() / 2];
    let seconds = median.as_secs_f64();
    let useful = rate.useful / seconds / 1e9;
    outln!(
        "  {:<34} {:>11.1} {:>9.2} {:>9.2} {:>8.2}x {:>10.1} MiB {:>5.1} MiB",
        label,
        seconds * 1e3,
        rate.visited / seconds / 1e9,
        useful,
        useful / rate.matmul,
        prepared.total_bytes() as f64 / (1 << 20) as f64,
        largest as f64 / (1 << 20) as f64
    );
    Ok(median)
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_ir::Mask;

    #[test]
    fn useful_flops_count_allowed_pairs_only() {
        // Causal at N = 8: 36 pairs per head; 4·D FLOPs each, 2 heads, batch 3.
        let desc = FusedAttentionDesc {
            name: "causal".into(),
            batch: 3,
            n_heads: 2,
            seq_len: 8,
            head_dim: 4,
            heads: vec![(0..2, Mask::causal())],
            scale: 0.5,
            rope: None,
        };
        let flops = useful_forward_flops(&desc, 4).unwrap();
        assert_eq!(flops, (4 * 4 * 36 * 2 * 3) as f64);
        // The block size changes the tiles visited, not the pairs allowed.
        assert_eq!(useful_forward_flops(&desc, 32).unwrap(), flops);
    }

    #[test]
    fn the_matmul_side_matches_the_flops_to_a_multiple_of_64() {
        assert_eq!(matmul_side(2.0 * 1024f64.powi(3)), 1024);
        assert_eq!(matmul_side(2.0 * 1000f64.powi(3)), 1024);
        assert_eq!(matmul_side(10.0), 64, "never below 64");
    }
}
