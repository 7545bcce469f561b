//! `weft bench matmul`: every candidate matmul configuration of the simple
//! code generator, timed on the current adapter.
//!
//! Shader modules run with wgpu's runtime checks on: the executor creates
//! unchecked modules only for sealed plans the runtime planned itself (fused
//! attention), and the simple plans made here are not among them.

use anyhow::bail;
use clap::Args;
use weft_ir::limits;
use weft_runtime::Executor;
use weft_runtime::tune::{
    MATMUL_CHECK, MatmulOutcome, MatmulResult, MatmulShape, matmul_candidates, tune_matmul,
};

#[derive(Args, Debug)]
pub struct BenchMatmulArgs {
    /// Problem sizes `MxKxN` (`[M, K] x [K, N]`), comma-separated. Default:
    /// 1024x1024x1024 and 4096x4096x1024 (1024x1024x1024 only with --quick).
    #[arg(long, value_delimiter = ',')]
    pub shape: Vec<MatmulShape>,
    /// Timed runs after one warm-up run (none above 1e10 FLOP); the median is
    /// reported. Default 3 (1 with --quick).
    #[arg(long, value_parser = crate::args::repeats)]
    pub repeats: Option<usize>,
    /// Fewer candidates (workgroup 64 only), one timed run, 1024x1024x1024 only.
    #[arg(long)]
    pub quick: bool,
}

pub fn run(args: &BenchMatmulArgs) -> anyhow::Result<()> {
    let gpu = crate::gpu::open()?;
    outln!("adapter: {}", gpu.adapter_description());
    let device_limits = gpu.limits();
    let base = weft_compiler::GraphPlanOptions::for_device(device_limits);
    let mut executor = Executor::new(gpu);
    let shapes = match (&args.shape[..], args.quick) {
        ([], false) => vec![MatmulShape::new(1024, 1024, 1024), MatmulShape::new(4096, 4096, 1024)],
        ([], true) => vec![MatmulShape::new(1024, 1024, 1024)],
        (given, _) => given.to_vec(),
    };
    let repeats = args.repeats.unwrap_or(if args.quick { 1 } else { 3 }).max(1);
    for shape in &shapes {
        // A [M, K], B [K, N] and C [M, N] in f32, on the host and the device.
        let (m, k, n) = (shape.m as u64, shape.k as u64, shape.n as u64);
        let what = "matmul elements (M × K + K × N + M × N)";
        let elements = [[m, k], [k, n], [m, n]]
            .iter()
            .map(|f| limits::check_product(f, what, &limits::ACTIVATION_ELEMENTS))
            .try_fold(0u64, |sum, e| e.map(|e| sum.saturating_add(e)))?;
        crate::memory::check_fits(elements.saturating_mul(8), &format!("bench matmul at {shape}"))?;
    }
    let candidates = matmul_candidates(&device_limits, args.quick);
    outln!(
        "f32 matmul, shader runtime checks on, median of {repeats} run(s) (after a warm-up below 1e10 FLOP); \
         each candidate first checked against a CPU reference at {MATMUL_CHECK}"
    );
    let header: Vec<String> = shapes.iter().map(|s| format!("{s} GFLOP/s")).collect();
    let width = header.iter().map(|h| h.len() + 2).max().unwrap_or(0);
    outln!("  {:<14}{}", "config", header.iter().map(|h| format!("{h:>width$}")).collect::<String>());
    let mut show = |result: &MatmulResult| match &result.outcome {
        MatmulOutcome::Timed(rates) => outln!(
            "  {:<14}{}",
            result.config.to_string(),
            rates.iter().map(|r| format!("{r:>width$.2}")).collect::<String>()
        ),
        MatmulOutcome::Failed(why) => outln!("  {:<14}skipped: {why}", result.config.to_string()),
    };
    let report = match tune_matmul(&mut executor, &base, &candidates, &shapes, repeats, &mut show) {
        Ok(report) => report,
        Err(weft_runtime::tune::TuneError::NoCandidates { .. }) => {
            bail!("no candidate passed its correctness check")
        }
        Err(e) => return Err(e.into()),
    };
    let rates: Vec<String> = report.best_rates.iter().map(|r| format!("{r:.2}")).collect();
    outln!(
        "best: {} ({} GFLOP/s); the default here is {} (`weft tune` measures and keeps the best for this adapter)",
        report.best,
        rates.join(" / "),
        weft_compiler::MatmulConfig::default_for(&device_limits)
    );
    Ok(())
}
