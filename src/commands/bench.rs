//! `weft bench attn`: fused vs unfused, S2-Attn vs full causal, on the current
//! adapter; `weft bench matmul` lives in `bench_matmul.rs`.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use rand::{Rng, SeedableRng, rngs::StdRng};
use weft_compiler::{AttentionPlanOptions, CompileOptions, Mode, OptimizeOptions, compile, fuse_attention};
use weft_runtime::tune::KernelChoice;
use weft_runtime::{Executor, FusedPlan, Gpu, Prepared};

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
    /// Attention: fused S2-Attn and full causal forward+backward, and the unfused roll graph.
    Attn(BenchAttnArgs),
    /// One fine-tuning step (forward, loss, backward) of a ~20M-parameter LLaMA, causal vs S2-Attn.
    Step(super::bench_step::BenchStepArgs),
    /// Matmul: every candidate tile shape and workgroup size of the simple code generator.
    Matmul(crate::commands::bench_matmul::BenchMatmulArgs),
}

#[derive(Args, Debug)]
pub struct BenchAttnArgs {
    /// Sequence lengths, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1024,4096", value_parser = crate::args::seq_len)]
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
    /// Skip the unfused baseline (it materializes N x N scores and is slow).
    #[arg(long)]
    pub no_unfused: bool,
}

pub fn run(what: &BenchWhat) -> anyhow::Result<()> {
    match what {
        BenchWhat::Attn(args) => attn(args),
        BenchWhat::Step(args) => super::bench_step::run(args),
        BenchWhat::Matmul(args) => super::bench_matmul::run(args),
    }
}

fn attn(args: &BenchAttnArgs) -> anyhow::Result<()> {
    let gpu = Gpu::new()?;
    println!("adapter: {}", gpu.adapter_description());
    let limits = gpu.limits();
    // `weft tune`'s choice for this adapter if there is one, else the defaults.
    let choice = kernel_choice(&gpu, args.head_dim);
    println!("fwd+bwd {}", choice.describe(true, args.head_dim));
    println!("fwd     {}", choice.describe(false, args.head_dim));
    let mut executor = Executor::new(gpu);
    let base = AttentionPlanOptions { limits, ..AttentionPlanOptions::default() };
    for &n in &args.seq_len {
        // q, k, v, do and the outputs, on the host and the device.
        let shape = [args.batch, args.heads, n, args.head_dim];
        let elements = crate::memory::attention_tensors(shape, 16, &format!("bench attn at N = {n}"))?;
        let inputs = random_inputs(elements);
        println!("\nN = {n}, H = {}, D = {}, B = {}", args.heads, args.head_dim, args.batch);
        println!(
            "  {:<34} {:>11} {:>11} {:>14} {:>9}",
            "run", "median ms", "GFLOP/s", "peak buffers", "largest"
        );
        let mut times = HashMap::new();
        for name in ["s2attn-roll", "causal"] {
            let fused = fused_plan(&reference(name, n, args)?, &choice, &base, true, args.head_dim)?;
            let flops = (fused.stats().flops_forward + fused.stats().flops_backward) as f64;
            let label = format!("fused {name} fwd+bwd");
            let prepared = executor.prepare(&fused).with_context(|| format!("preparing {label}"))?;
            let largest = fused.plan().largest_buffer();
            let t = time_plan(&executor, &prepared, largest, &inputs, args.repeats, &label, flops)?;
            times.insert(name, t);
        }
        let ratio = times["s2attn-roll"].as_secs_f64() / times["causal"].as_secs_f64();
        println!("  S2-Attn / causal (fwd+bwd): {ratio:.3}x");
        if !args.no_unfused {
            let reference = reference("s2attn-roll", n, args)?;
            let opts = super::tune::plan_options(executor.gpu());
            // The backward pass as autodiff spells it: scores and probabilities
            // materialized, as an eager framework computes it.
            let as_written = |mode: Mode| CompileOptions {
                mode,
                optimize: false,
                plan: opts.clone(),
                ..Default::default()
            };
            let backward = Mode::Training { wrt: ["q", "k", "v"].map(String::from).to_vec() };
            let fused = fused_plan(&reference, &choice, &base, false, args.head_dim)?;
            let flops_fwd = fused.stats().flops_forward as f64;
            let flops_all = flops_fwd + fused.stats().flops_backward as f64;
            let unfused_fwd = {
                let plan = compile(reference.clone(), &as_written(Mode::Inference))?.plan;
                let label = "unfused s2attn-roll fwd";
                let prepared = executor.prepare(&plan).with_context(|| format!("preparing {label}"))?;
                let largest = plan.largest_buffer();
                time_plan(&executor, &prepared, largest, &inputs, args.repeats, label, flops_fwd)?
            };
            let fused_fwd = {
                let label = "fused s2attn-roll fwd";
                let prepared = executor.prepare(&fused).with_context(|| format!("preparing {label}"))?;
                let largest = fused.plan().largest_buffer();
                time_plan(&executor, &prepared, largest, &inputs, args.repeats, label, flops_fwd)?
            };
            let unfused_all = {
                let plan = compile(reference.clone(), &as_written(backward))?.plan;
                let label = "unfused s2attn-roll fwd+bwd";
                let prepared = executor.prepare(&plan).with_context(|| format!("preparing {label}"))?;
                let largest = plan.largest_buffer();
                time_plan(&executor, &prepared, largest, &inputs, args.repeats, label, flops_all)?
            };
            let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
            println!("  unfused / fused (forward): {:.2}x", ratio(unfused_fwd, fused_fwd));
            println!("  unfused / fused (fwd+bwd): {:.2}x", ratio(unfused_all, times["s2attn-roll"]));
        }
    }
    Ok(())
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
    flops: f64,
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
    println!(
        "  {:<34} {:>11.1} {:>11.2} {:>11.1} MiB {:>5.1} MiB",
        label,
        median.as_secs_f64() * 1e3,
        flops / median.as_secs_f64() / 1e9,
        prepared.total_bytes() as f64 / (1 << 20) as f64,
        largest as f64 / (1 << 20) as f64
    );
    Ok(median)
}
