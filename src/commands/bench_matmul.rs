//! `weft bench matmul`: every candidate matmul configuration of the simple
//! code generator, timed on the current adapter.
//!
//! Shader modules run with wgpu's runtime checks on: the executor creates
//! unchecked modules only for sealed plans the runtime planned itself (fused
//! attention), and the simple plans made here are not among them.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use rand::{Rng, SeedableRng, rngs::StdRng};
use weft_compiler::{KernelPlan, MatmulConfig, SimplePlanOptions, plan_graph};
use weft_ir::graph::{Graph, Op, TensorType, ValidGraph};
use weft_runtime::{Executor, Gpu};

/// Each candidate is checked on this size first (edge tiles for every
/// candidate, vec4 loads): `[M, K] × [K, N]`.
const CHECK: Shape = Shape { m: 132, k: 68, n: 100 };
/// `max |gpu - cpu| / max |cpu|` a candidate must stay within.
const TOLERANCE: f64 = 1e-4;

/// `[M, K] × [K, N]`, written `MxKxN`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    m: usize,
    k: usize,
    n: usize,
}

impl FromStr for Shape {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<usize> = s
            .split('x')
            .map(|p| p.trim().parse::<usize>())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("`{s}`: {e}"))?;
        match parts[..] {
            [m, k, n] if m > 0 && k > 0 && n > 0 => Ok(Shape { m, k, n }),
            _ => Err(format!("`{s}` is not MxKxN with three positive sizes")),
        }
    }
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}x{}]x[{}x{}]", self.m, self.k, self.k, self.n)
    }
}

impl Shape {
    fn flops(&self) -> f64 {
        2.0 * self.m as f64 * self.n as f64 * self.k as f64
    }
}

#[derive(Args, Debug)]
pub struct BenchMatmulArgs {
    /// Problem sizes `MxKxN` (`[M, K] x [K, N]`), comma-separated. Default:
    /// 1024x1024x1024 and 4096x4096x1024 (1024x1024x1024 only with --quick).
    #[arg(long, value_delimiter = ',')]
    pub shape: Vec<Shape>,
    /// Timed runs after one warm-up run (none above 1e10 FLOP); the median is
    /// reported. Default 3 (1 with --quick).
    #[arg(long)]
    pub repeats: Option<usize>,
    /// Fewer candidates (workgroup 64 only), one timed run, 1024x1024x1024 only.
    #[arg(long)]
    pub quick: bool,
}

pub fn run(args: &BenchMatmulArgs) -> anyhow::Result<()> {
    let gpu = Gpu::new()?;
    println!("adapter: {}", gpu.adapter_description());
    let limits = gpu.limits();
    let base = limits.simple_plan_options();
    let mut executor = Executor::new(gpu);
    let shapes = match (&args.shape[..], args.quick) {
        ([], false) => vec![Shape { m: 1024, k: 1024, n: 1024 }, Shape { m: 4096, k: 4096, n: 1024 }],
        ([], true) => vec![Shape { m: 1024, k: 1024, n: 1024 }],
        (given, _) => given.to_vec(),
    };
    let repeats = args.repeats.unwrap_or(if args.quick { 1 } else { 3 }).max(1);
    let candidates: Vec<MatmulConfig> =
        MatmulConfig::candidates(limits.subgroup_min_size.is_some_and(|size| size >= 8))
            .into_iter()
            .filter(|c| !args.quick || c.workgroup == 64 || *c == limits.default_matmul())
            .collect();
    println!(
        "f32 matmul, shader runtime checks on, median of {repeats} run(s) (after a warm-up below 1e10 FLOP); \
         each candidate first checked against a CPU reference at {CHECK}"
    );
    let header: Vec<String> = shapes.iter().map(|s| format!("{s} GFLOP/s")).collect();
    let width = header.iter().map(|h| h.len() + 2).max().unwrap_or(0);
    println!("  {:<14}{}", "config", header.iter().map(|h| format!("{h:>width$}")).collect::<String>());
    let mut rows: Vec<(MatmulConfig, Vec<f64>)> = Vec::new();
    for config in candidates {
        let opts = SimplePlanOptions { matmul: config, ..base.clone() };
        match check(&mut executor, &opts) {
            Ok(err) if err <= TOLERANCE => {}
            Ok(err) => {
                println!(
                    "  {:<14}skipped: relative error {err:.2e} above {TOLERANCE:e} at {CHECK}",
                    config.to_string()
                );
                continue;
            }
            Err(e) => {
                println!("  {:<14}skipped: {e:#}", config.to_string());
                continue;
            }
        }
        let mut rates = Vec::new();
        for shape in &shapes {
            let median = time(&mut executor, &opts, *shape, repeats)
                .with_context(|| format!("timing {config} at {shape}"))?;
            rates.push(shape.flops() / median.as_secs_f64() / 1e9);
        }
        println!(
            "  {:<14}{}",
            config.to_string(),
            rates.iter().map(|r| format!("{r:>width$.2}")).collect::<String>()
        );
        rows.push((config, rates));
    }
    // The best by the geometric mean over the sizes.
    let score = |rates: &[f64]| rates.iter().map(|r| r.ln()).sum::<f64>() / rates.len() as f64;
    let Some((best, rates)) = rows.iter().max_by(|a, b| score(&a.1).total_cmp(&score(&b.1))) else {
        bail!("no candidate passed its correctness check");
    };
    let rates: Vec<String> = rates.iter().map(|r| format!("{r:.2}")).collect();
    println!("best: {best} ({} GFLOP/s); the default is {}", rates.join(" / "), limits.default_matmul());
    Ok(())
}

fn matmul_graph(shape: Shape) -> anyhow::Result<ValidGraph> {
    let mut g = Graph::new("matmul");
    let a = g.input("a", TensorType::f32(vec![shape.m, shape.k]));
    let b = g.input("b", TensorType::f32(vec![shape.k, shape.n]));
    let y = g.add(Op::MatMul { transpose_a: false, transpose_b: false }, &[a, b])?;
    g.set_output("y", y);
    Ok(g.validate()?)
}

fn plan(opts: &SimplePlanOptions, shape: Shape) -> anyhow::Result<KernelPlan> {
    Ok(plan_graph(&matmul_graph(shape)?, opts)?)
}

fn random(len: usize, rng: &mut StdRng) -> Vec<f32> {
    (0..len).map(|_| rng.random_range(-1.0..1.0)).collect()
}

/// The worst relative error of the candidate at [`CHECK`] against an f64 CPU matmul.
fn check(executor: &mut Executor, opts: &SimplePlanOptions) -> anyhow::Result<f64> {
    let Shape { m, k, n } = CHECK;
    let mut rng = StdRng::seed_from_u64(0x5EED);
    let (a, b) = (random(m * k, &mut rng), random(k * n, &mut rng));
    let inputs = HashMap::from([("a".to_string(), a.clone()), ("b".to_string(), b.clone())]);
    let got = executor.run(&plan(opts, CHECK)?, &inputs)?;
    let y = got.get("y").context("the plan has no output `y`")?;
    let (mut worst, mut largest) = (0.0f64, 0.0f64);
    for i in 0..m {
        for j in 0..n {
            let want: f64 = (0..k).map(|p| f64::from(a[i * k + p]) * f64::from(b[p * n + j])).sum();
            worst = worst.max((f64::from(y[i * n + j]) - want).abs());
            largest = largest.max(want.abs());
        }
    }
    Ok(if worst.is_nan() { f64::INFINITY } else { worst / largest.max(f64::MIN_POSITIVE) })
}

/// Problems above this many FLOPs skip the warm-up run: pipelines are compiled
/// when the plan is prepared, and one run of them takes seconds.
const NO_WARM_UP: f64 = 1e10;

/// The median wall time of `repeats` runs after one warm-up run (none for big problems).
fn time(
    executor: &mut Executor,
    opts: &SimplePlanOptions,
    shape: Shape,
    repeats: usize,
) -> anyhow::Result<Duration> {
    let prepared = executor.prepare(&plan(opts, shape)?)?;
    let mut rng = StdRng::seed_from_u64(0xBE4C);
    let inputs = HashMap::from([
        ("a".to_string(), random(shape.m * shape.k, &mut rng)),
        ("b".to_string(), random(shape.k * shape.n, &mut rng)),
    ]);
    executor.upload(&prepared, &inputs)?;
    if shape.flops() < NO_WARM_UP {
        executor.execute(&prepared)?;
    }
    let mut times: Vec<Duration> =
        (0..repeats).map(|_| executor.execute(&prepared)).collect::<Result<_, _>>()?;
    times.sort();
    Ok(times[times.len() / 2])
}
