//! `weft tune [--quick] [--force]`: measure fused attention configurations and
//! matmul kernel shapes on the current adapter and cache the fastest; and the
//! lookups of those choices that the other commands share.

use std::time::Duration;

use anyhow::Context;
use clap::Args;
use weft_compiler::GraphPlanOptions;
use weft_compiler::{MatmulClass, MatmulTable};
use weft_runtime::tune::{
    AttentionEntry, CacheEntry, CacheKey, ChoiceSource, KernelChoice, MatmulOutcome, MatmulResult,
    MatmulShape, Outcome, TuneEvent, TuneOptions, TuneReport, TuningCache, matmul_candidates, tune,
    tune_matmul,
};
use weft_runtime::{Executor, Gpu};

#[derive(Args, Debug)]
pub struct TuneArgs {
    /// Fewer candidates (tiles 32 and 64, rows 2 and 4), fewer runs and a shorter budget.
    #[arg(long)]
    pub quick: bool,
    /// Measure again even when the cache holds a result for this adapter and driver.
    #[arg(long)]
    pub force: bool,
    /// Sequence length of the causal attention timed (default 512).
    #[arg(long, value_name = "N", value_parser = crate::args::seq_len)]
    pub seq_len: Option<usize>,
    /// Heads of the attention timed (default 4).
    #[arg(long, value_name = "H", value_parser = crate::args::heads)]
    pub heads: Option<usize>,
    /// Head dimension of the attention timed (default 64); rows per invocation are tuned for it.
    #[arg(long, value_name = "D", value_parser = crate::args::head_dim)]
    pub head_dim: Option<usize>,
    /// Timed runs per candidate, after one warm-up; the median counts (default 3, quick 2).
    #[arg(long, value_parser = crate::args::repeats)]
    pub repeats: Option<usize>,
    /// Start no candidate after this many seconds (default 150, quick 60).
    #[arg(long, value_name = "SECONDS")]
    pub budget: Option<u64>,
}

/// The fused attention configurations for the current adapter at `head_dim`:
/// `weft tune`'s result if the cache has one for this adapter and driver
/// (at this head dimension if tuned at it), else the defaults. A cache file
/// that cannot be used is a warning, never an error.
pub fn kernel_choice(gpu: &Gpu, head_dim: usize) -> KernelChoice {
    let cache = match TuningCache::from_env() {
        Ok(cache) => cache,
        Err(e) => {
            unusable_cache(&e, false);
            return KernelChoice::default_for(&gpu.limits());
        }
    };
    let (choice, warning) = cache.choice(&CacheKey::new(gpu.identity()), head_dim);
    if let Some(w) = warning {
        unusable_cache(&w, true);
    }
    match choice.source {
        ChoiceSource::Default => KernelChoice::default_for(&gpu.limits()),
        ChoiceSource::Cached { .. } => choice,
    }
}

/// Plan options for the op-by-op code generator on this device, with the
/// matmul shapes (per shape class) and fused attention tiles `weft tune`
/// measured for it when the cache has them (else the device's defaults; the
/// attention tiles of the latest head dimension tuned, their rows applying at
/// that head dimension only). A cache that cannot be used leaves the defaults
/// and is a warning, never an error.
pub fn plan_options(gpu: &Gpu) -> GraphPlanOptions {
    let mut opts = gpu.plan_options();
    let entry = match TuningCache::from_env() {
        Ok(cache) => cache.lookup(&CacheKey::new(gpu.identity())).unwrap_or_else(|e| {
            unusable_cache(&e, true);
            None
        }),
        Err(e) => {
            unusable_cache(&e, false);
            None
        }
    };
    if let Some(entry) = entry {
        for (&class, &config) in &entry.matmul {
            opts.matmul.set(class, config);
        }
        if let Some(a) = entry.attention.last() {
            opts.attention_forward = a.forward.tiles(Some(a.head_dim));
            opts.attention_backward = a.backward.tiles(Some(a.head_dim));
        }
    }
    opts
}

/// Plan options for the adapter this machine would run a plan on, as
/// [`plan_options`] makes them, for commands that only show a plan; WebGPU's
/// default limits and kernel shapes when there is no adapter.
pub fn local_plan_options() -> GraphPlanOptions {
    match crate::gpu::open() {
        Ok(gpu) => {
            errln!("planning for {}", gpu.adapter_description());
            plan_options(&gpu)
        }
        Err(e) => {
            errln!("note: {e}; planning for WebGPU's default limits");
            GraphPlanOptions::default()
        }
    }
}

/// Says once per run that the tuning cache cannot be used (`broken`: a file
/// that is there but wrong, else no cache location), and that the defaults run.
fn unusable_cache(e: &dyn std::fmt::Display, broken: bool) {
    static SAID: std::sync::Once = std::sync::Once::new();
    SAID.call_once(|| {
        if broken {
            errln!(
                "warning: {e}; using the default kernel configuration (`weft tune` measures again and \
                 keeps the old file aside)"
            );
        } else {
            errln!("note: {e}; using the default kernel configuration");
        }
    });
}

pub fn run(args: &TuneArgs) -> anyhow::Result<()> {
    // Before minutes of measuring: a cache file that cannot be parsed is
    // moved aside now, and a place where none can be written is an error.
    let cache = TuningCache::from_env()?;
    if let Some((aside, why)) = cache.prepare_store()? {
        errln!("warning: {why}; moved it aside to {} and tuning anew", aside.display());
    }
    let gpu = crate::gpu::open()?;
    outln!("adapter: {}", gpu.adapter_description());
    let key = CacheKey::new(gpu.identity());
    let mut options = if args.quick { TuneOptions::quick() } else { TuneOptions::full() };
    let p = &mut options.problem;
    p.seq_len = args.seq_len.unwrap_or(p.seq_len);
    p.heads = args.heads.unwrap_or(p.heads);
    p.head_dim = args.head_dim.unwrap_or(p.head_dim);
    options.repeats = args.repeats.unwrap_or(options.repeats).max(1);
    // q, k, v, do, o and the gradients of the problem timed.
    let p = &options.problem;
    crate::memory::attention_tensors([p.batch, p.heads, p.seq_len, p.head_dim], 16, "the attention tuned")?;
    options.budget = args.budget.map_or(options.budget, Duration::from_secs);
    let head_dim = options.problem.head_dim;

    // Results at other head dimensions are kept; this run adds or replaces its own.
    let previous = match cache.lookup(&key) {
        Ok(entry) => entry,
        Err(e) => {
            errln!("warning: {e}; tuning anew");
            None
        }
    };
    if !args.force
        && let Some(entry) = &previous
        && let Some(a) = entry.attention.iter().find(|a| a.head_dim == head_dim)
        && entry.matmul.len() == MatmulClass::ALL.len()
    {
        outln!(
            "already tuned on {}: forward {}, backward {}; matmul {} (from {}); --force measures again",
            a.problem,
            a.forward,
            a.backward,
            matmul_line(entry),
            cache.path().display()
        );
        return Ok(());
    }

    outln!(
        "problem: {}, forward and backward; {} warm-up run (checked against the f64 interpreter and \
         the default configuration), then the median of {} timed runs; budget {} s",
        options.problem,
        options.warmups,
        options.repeats,
        options.budget.as_secs()
    );

    let limits = gpu.limits();
    let mut executor = Executor::new(gpu);
    let report = tune(&mut executor, &options, &mut show_progress)?;
    print_report(&report);

    // The matmul kernel shape of each shape class, on its representative problem.
    let candidates = matmul_candidates(&limits, args.quick);
    let defaults = MatmulTable::default_for(&limits);
    let base = weft_compiler::GraphPlanOptions::for_device(limits);
    outln!(
        "\nmatmul: {} candidates per shape class, each checked first against a CPU matmul, median of {} runs",
        candidates.len(),
        options.repeats
    );
    let mut matmul = std::collections::BTreeMap::new();
    for class in MatmulClass::ALL {
        let shape = MatmulShape::representative(class);
        errln!("{class} {shape}:");
        let mut show = |r: &MatmulResult| match &r.outcome {
            MatmulOutcome::Timed(rates) => {
                errln!("  {:<14} {:>7.2} GFLOP/s", r.config.to_string(), rates[0])
            }
            MatmulOutcome::Failed(why) => errln!("  {:<14} failed: {why}", r.config.to_string()),
        };
        let found = tune_matmul(&mut executor, &base, &candidates, &[shape], options.repeats, &mut show)?;
        let default = defaults.get(class);
        let default_rate =
            found.results.iter().find(|r| r.config == default).and_then(|r| match &r.outcome {
                MatmulOutcome::Timed(rates) => rates.first().copied(),
                MatmulOutcome::Failed(_) => None,
            });
        outln!(
            "matmul {class:<8} {shape}: {} ({:.2} GFLOP/s; untuned default {}{})",
            found.best,
            found.best_rates.first().copied().unwrap_or(0.0),
            default,
            default_rate.map(|r| format!(", {r:.2} GFLOP/s")).unwrap_or_default()
        );
        matmul.insert(class, found.best);
    }

    let mut entry = previous.unwrap_or(CacheEntry { key, attention: Vec::new(), matmul: Default::default() });
    entry.add_attention(AttentionEntry {
        problem: report.problem.to_string(),
        head_dim,
        forward: report.forward,
        backward: report.backward,
    });
    entry.matmul = matmul;
    let stored = cache.store(entry).context("saving the tuning result")?;
    if let Some((aside, why)) = &stored.moved_aside {
        errln!("warning: {why}; it was kept as {}", aside.display());
    }
    outln!(
        "{} {} (`weft attn`, `weft forward` and `weft bench` use it on this adapter)",
        if stored.replaced { "updated" } else { "wrote" },
        cache.path().display()
    );
    Ok(())
}

/// `narrow_n 8x8/wg64, ...`: the cached shape of each class measured.
fn matmul_line(entry: &CacheEntry) -> String {
    let parts: Vec<String> = entry.matmul.iter().map(|(c, m)| format!("{c} {m}")).collect();
    parts.join(", ")
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn show_progress(event: TuneEvent<'_>) {
    match event {
        TuneEvent::Reference => errln!("computing the f64 reference output"),
        TuneEvent::Start { .. } => {}
        TuneEvent::FinalRound => errln!("timing the fastest again, taking turns"),
        TuneEvent::Done { index, total, result } => {
            let what = match &result.outcome {
                Outcome::Timed(t) => format!(
                    "fwd {:.1} ms, fwd+bwd {:.1} ms (compile and first run {:.1} s)",
                    ms(t.forward),
                    ms(t.total),
                    t.first_run.as_secs_f64()
                ),
                Outcome::Failed(why) => format!("failed: {why}"),
                Outcome::Skipped(why) => format!("skipped: {why}"),
            };
            errln!("[{}/{total}] {:<20} {what}", index + 1, result.config);
        }
    }
}

fn print_report(report: &TuneReport) {
    outln!(
        "\n  {:<20} {:>9} {:>9} {:>9} {:>11} {:>8} {:>8}  note",
        "config",
        "1st run s",
        "fwd ms",
        "bwd ms",
        "fwd+bwd ms",
        "fwd x",
        "total x"
    );
    let base = report.baseline();
    for (i, r) in report.results.iter().enumerate() {
        let mut notes = Vec::new();
        if i == 0 {
            notes.push("default".to_string());
        }
        if r.config == report.forward {
            notes.push("chosen: forward".to_string());
        }
        if r.config == report.backward {
            notes.push("chosen: backward".to_string());
        }
        match &r.outcome {
            Outcome::Timed(t) => {
                let speedup = |b: Option<Duration>, x: Duration| {
                    b.map_or("-".to_string(), |b| format!("{:.2}", b.as_secs_f64() / x.as_secs_f64()))
                };
                outln!(
                    "  {:<20} {:>9.1} {:>9.1} {:>9.1} {:>11.1} {:>8} {:>8}  {}",
                    r.config,
                    t.first_run.as_secs_f64(),
                    ms(t.forward),
                    ms(t.backward),
                    ms(t.total),
                    speedup(base.map(|b| b.forward), t.forward),
                    speedup(base.map(|b| b.total), t.total),
                    notes.join(", ")
                );
            }
            Outcome::Failed(why) => outln!("  {:<20} failed: {why}", r.config),
            Outcome::Skipped(why) => outln!("  {:<20} skipped: {why}", r.config),
        }
    }
    outln!(
        "  (1st run: compiling and the first, checked, run; x: speed-up over the default \
         configuration, the first row; medians over all timed runs)"
    );
    let line = |what: &str, config, time: Option<Duration>| match time {
        Some(t) => outln!("{what} {config} ({:.1} ms)", ms(t)),
        None => outln!("{what} {config}"),
    };
    outln!();
    line(
        "forward (plans without backward):",
        report.forward,
        report.timing_of(&report.forward).map(|t| t.forward),
    );
    line(
        "backward (plans with backward):  ",
        report.backward,
        report.timing_of(&report.backward).map(|t| t.total),
    );
    outln!("tuning took {:.0} s", report.elapsed.as_secs_f64());
}
