//! The tuner and its cache: the cache file round-trips, applies only to its
//! own adapter, driver, weft version and format, and a broken file falls back
//! to the defaults with a warning and is kept aside rather than overwritten;
//! unchecked shader modules compute what checked ones do; quick tuning on a
//! tiny problem picks one of its candidates. No timing is asserted.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use weft_compiler::plan::{FusedAttentionDesc, PlanOptions};
use weft_compiler::{MatmulConfig, MatmulKernel};
use weft_ir::expr::parse_mask;
use weft_ir::interp::{Tensor, masked_attention};
use weft_ir::{ConcreteMask, Mask};
use weft_runtime::testing::{executor, expectations};
use weft_runtime::tune::{
    CacheEntry, CacheError, CacheKey, CandidateSpace, ChoiceSource, KernelChoice, KernelConfig,
    MatmulOutcome, MatmulShape, Outcome, TuneEvent, TuneOptions, TuneProblem, TuningCache, matmul_candidates,
    rel_error, tune, tune_matmul,
};
use weft_runtime::{AdapterIdentity, FusedPlan, ShaderChecks};

/// A fresh directory for one test's cache files.
fn scratch(test: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("tune-{test}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn adapter(name: &str, driver_info: &str) -> AdapterIdentity {
    AdapterIdentity {
        name: name.into(),
        driver: "drv".into(),
        driver_info: driver_info.into(),
        backend: "vulkan".into(),
    }
}

fn entry(key: CacheKey, block: usize, checks: ShaderChecks) -> CacheEntry {
    let config = KernelConfig { block_q: block, block_k: block, rows_per_invocation: 2, checks };
    CacheEntry {
        key,
        problem: "causal B=1 H=4 N=512 D=64".into(),
        head_dim: 64,
        forward: config,
        backward: KernelConfig { rows_per_invocation: 1, ..config },
        // With a matmul choice for some entries, without (as older files are) for others.
        matmul: (block == 64).then_some(MatmulConfig {
            kernel: MatmulKernel::Subgroup,
            rows: 4,
            cols: 64,
            workgroup: 8,
        }),
    }
}

#[test]
fn cache_round_trips_and_keeps_other_adapters() {
    let dir = scratch("round-trip");
    // The directory does not exist yet: `store` creates it.
    let cache = TuningCache::at(dir.join("sub/tuning.toml"));
    let a = CacheKey::new(adapter("GPU A", "1.0"));
    let b = CacheKey::new(adapter("GPU B", "1.0"));
    assert_eq!(cache.lookup(&a).unwrap(), None, "a missing file has no entries");
    assert_eq!(cache.choice(&a).0, KernelChoice::default());
    assert!(cache.choice(&a).1.is_none(), "a missing file is no warning");

    let stored = cache.store(entry(a.clone(), 64, ShaderChecks::Unchecked)).unwrap();
    assert!(!stored.replaced && stored.moved_aside.is_none());
    cache.store(entry(b.clone(), 16, ShaderChecks::Checked)).unwrap();
    assert_eq!(cache.lookup(&a).unwrap(), Some(entry(a.clone(), 64, ShaderChecks::Unchecked)));
    assert_eq!(cache.lookup(&b).unwrap(), Some(entry(b.clone(), 16, ShaderChecks::Checked)));

    // Storing under the same key replaces that entry only.
    let stored = cache.store(entry(a.clone(), 32, ShaderChecks::Checked)).unwrap();
    assert!(stored.replaced);
    assert_eq!(cache.entries().unwrap().len(), 2);
    let (choice, warning) = cache.choice(&a);
    assert!(warning.is_none());
    assert_eq!(choice.forward, entry(a, 32, ShaderChecks::Checked).forward);
    assert_eq!(choice.backward.rows_per_invocation, 1);
    assert_eq!(choice.head_dim, Some(64));
    assert!(matches!(choice.source, ChoiceSource::Cached { ref path, .. } if path == cache.path()));
    // No temporary file is left behind.
    assert_eq!(std::fs::read_dir(dir.join("sub")).unwrap().count(), 1);
}

#[test]
fn another_driver_version_or_weft_is_no_hit() {
    let dir = scratch("mismatch");
    let cache = TuningCache::at(dir.join("tuning.toml"));
    let key = CacheKey::new(adapter("GPU A", "Mesa 22.3.6"));
    cache.store(entry(key.clone(), 64, ShaderChecks::Unchecked)).unwrap();
    assert!(cache.lookup(&key).unwrap().is_some());

    let updated_driver = CacheKey::new(adapter("GPU A", "Mesa 25.0.7"));
    let other_backend =
        CacheKey { adapter: AdapterIdentity { backend: "gl".into(), ..key.adapter.clone() }, ..key.clone() };
    let other_weft = CacheKey { weft_version: "0.0.1".into(), ..key.clone() };
    for other in [updated_driver, other_backend, other_weft] {
        assert_eq!(cache.lookup(&other).unwrap(), None, "{other:?}");
        let (choice, warning) = cache.choice(&other);
        assert_eq!(choice, KernelChoice::default());
        assert!(warning.is_none());
    }

    // A file of another format is not read, and says why.
    let text = std::fs::read_to_string(cache.path()).unwrap().replace("format = 1", "format = 99");
    std::fs::write(cache.path(), text).unwrap();
    let (choice, warning) = cache.choice(&key);
    assert_eq!(choice, KernelChoice::default());
    let message = warning.unwrap().to_string();
    assert!(message.contains("has format 99; this weft reads format 1"), "{message}");
}

#[test]
fn a_corrupt_cache_warns_gives_defaults_and_is_kept_aside() {
    let dir = scratch("corrupt");
    let path = dir.join("tuning.toml");
    let cache = TuningCache::at(&path);
    let key = CacheKey::new(adapter("GPU A", "1.0"));
    let garbage = "format = 1\n[[adapter]\nname = \"half a write";
    std::fs::write(&path, garbage).unwrap();

    let (choice, warning) = cache.choice(&key);
    assert_eq!(choice, KernelChoice::default());
    let warning = warning.expect("a warning");
    assert!(matches!(warning, CacheError::Corrupt { .. }), "{warning:?}");
    let message = warning.to_string();
    assert!(message.starts_with(&format!("the tuning cache {} is not valid: ", path.display())), "{message}");

    // Values that parse but make no sense are corrupt too, with the field named.
    let bad = format!(
        "format = 1\n[[adapter]]\nname = \"GPU A\"\ndriver = \"drv\"\ndriver_info = \"1.0\"\n\
         backend = \"vulkan\"\nweft_version = \"{}\"\nproblem = \"p\"\nhead_dim = 64\n\
         forward = {{ block_q = 32, block_k = 32, rows_per_invocation = 2, checks = \"sometimes\" }}\n\
         backward = {{ block_q = 32, block_k = 48, rows_per_invocation = 32, checks = \"checked\" }}\n",
        env!("CARGO_PKG_VERSION")
    );
    std::fs::write(&path, &bad).unwrap();
    let message = cache.choice(&key).1.expect("a warning").to_string();
    assert!(message.contains("adapter `GPU A`, forward: checks = \"sometimes\""), "{message}");
    let good_forward =
        "forward = { block_q = 32, block_k = 32, rows_per_invocation = 2, checks = \"checked\" }";
    let bad = bad.replace(
        "forward = { block_q = 32, block_k = 32, rows_per_invocation = 2, checks = \"sometimes\" }",
        good_forward,
    );
    let bad = bad
        .replace("rows_per_invocation = 32", "rows_per_invocation = 2")
        .replace("block_k = 48", "block_k = 32");
    for (matmul, want) in [
        ("kernel = \"fast\", rows = 4, cols = 64, workgroup = 8", "matmul: kernel = \"fast\" is neither"),
        ("kernel = \"subgroup\", rows = 4, cols = 48, workgroup = 8", "matmul: subgroup matmul columns"),
    ] {
        std::fs::write(&path, format!("{bad}matmul = {{ {matmul} }}\n")).unwrap();
        let message = cache.choice(&key).1.expect("a warning").to_string();
        assert!(message.contains(&format!("adapter `GPU A`, {want}")), "{message}");
    }

    // Storing does not lose the broken file: it is renamed, then the new file written.
    std::fs::write(&path, garbage).unwrap();
    let stored = cache.store(entry(key.clone(), 64, ShaderChecks::Checked)).unwrap();
    let (aside, why) = stored.moved_aside.expect("the old file was moved aside");
    assert!(why.to_string().contains("is not valid"), "{why}");
    assert_eq!(std::fs::read_to_string(&aside).unwrap(), garbage);
    assert!(aside.file_name().unwrap().to_string_lossy().starts_with("tuning.toml.bad-"), "{aside:?}");
    assert_eq!(cache.lookup(&key).unwrap(), Some(entry(key, 64, ShaderChecks::Checked)));
}

#[test]
fn an_unreadable_cache_is_a_warning_too() {
    let dir = scratch("unreadable");
    // A directory where the file should be cannot be read as one.
    let cache = TuningCache::at(&dir);
    let key = CacheKey::new(adapter("GPU A", "1.0"));
    let (choice, warning) = cache.choice(&key);
    assert_eq!(choice, KernelChoice::default());
    let message = warning.expect("a warning").to_string();
    assert!(message.starts_with("cannot read the tuning cache"), "{message}");
    assert!(cache.store(entry(key, 32, ShaderChecks::Checked)).is_err());
}

/// Fixed, non-zero inputs in ±[0.1, 1.1).
fn inputs(len: usize) -> HashMap<String, Vec<f32>> {
    ["q", "k", "v", "do"]
        .iter()
        .enumerate()
        .map(|(t, name)| {
            let values = (0..len)
                .map(|i| {
                    let x = ((i * 7919 + t * 104_729) % 1000) as f32 / 1000.0 + 0.1;
                    if (i + t) % 3 == 0 { -x } else { x }
                })
                .collect();
            (name.to_string(), values)
        })
        .collect()
}

#[test]
fn unchecked_modules_compute_what_checked_ones_do() {
    let Some(mut ex) = executor() else { return };
    let limits = ex.gpu().limits();
    let mask = |src: &str| Mask::new(parse_mask(src).unwrap()).unwrap();
    // S2-Attn's roll form with a sequence that is not a multiple of the block,
    // two batches and a query block row per invocation pair: every index path.
    let (b, h, n, d) = (2, 2, 72, 16);
    let desc = FusedAttentionDesc {
        name: "s2".into(),
        batch: b,
        n_heads: h,
        seq_len: n,
        head_dim: d,
        heads: vec![(0..1, mask("causal & groups(24)")), (1..2, mask("roll(12, causal & groups(24))"))],
        scale: 0.25,
        rope: None,
    };
    let opts = PlanOptions {
        block_q: 16,
        block_k: 32,
        rows_per_invocation: 2,
        backward: true,
        max_storage_binding: limits.max_storage_binding,
        saved_forward: false,
        max_workgroups_per_dim: limits.max_workgroups_per_dim,
    };
    let inputs = inputs(b * h * n * d);
    let checked = FusedPlan::new(&desc, &opts, ShaderChecks::Checked).unwrap();
    let unchecked = FusedPlan::new(&desc, &opts, ShaderChecks::Unchecked).unwrap();
    assert_eq!(checked.plan(), unchecked.plan(), "the checks change the modules, not the plan");
    let a = ex.run_fused(&checked, &inputs).unwrap();
    let pipelines = ex.cached_pipelines();
    let u = ex.run_fused(&unchecked, &inputs).unwrap();
    assert_eq!(ex.cached_pipelines(), 2 * pipelines, "checks are part of the pipeline cache key");

    // Same kernels, same arithmetic: any difference is the driver compiling
    // two modules differently, so allow rounding only.
    for name in ["o", "lse", "dq", "dk", "dv"] {
        let err = rel_error(&u[name], a[name].iter().map(|&x| f64::from(x)));
        assert!(err <= 1e-6, "`{name}` differs between checked and unchecked modules by {err:e}");
    }
    // And both are right.
    let tensor = |name: &str| {
        Tensor::new(vec![b, h, n, d], inputs[name].iter().map(|&x| f64::from(x)).collect()).unwrap()
    };
    let masks: Vec<ConcreteMask> = (0..h)
        .map(|head| desc.heads.iter().find(|(r, _)| r.contains(&head)).unwrap().1.for_head(head).unwrap())
        .collect();
    let want = masked_attention(&tensor("q"), &tensor("k"), &tensor("v"), &masks, 0.25).unwrap();
    let err = rel_error(&u["o"], want.data().iter().copied());
    assert!(err <= 1e-4, "unchecked `o` differs from the interpreter by {err:e}");
}

#[test]
fn quick_tuning_on_a_tiny_problem_picks_a_candidate() {
    let Some(mut ex) = executor() else { return };
    let options = TuneOptions {
        problem: TuneProblem { batch: 1, heads: 2, seq_len: 64, head_dim: 16 },
        repeats: 1,
        budget: Duration::from_secs(600),
        ..TuneOptions::quick()
    };
    let candidates = CandidateSpace::quick().candidates(16, &ex.gpu().limits());
    assert_eq!(candidates[0], KernelConfig::default().resolved(16));
    let mut events = Vec::new();
    let report = tune(&mut ex, &options, &mut |e| {
        events.push(match e {
            TuneEvent::Reference => "reference".to_string(),
            TuneEvent::Start { index, .. } => format!("start {index}"),
            TuneEvent::Done { index, .. } => format!("done {index}"),
            TuneEvent::FinalRound => "final".to_string(),
        })
    })
    .unwrap();
    assert!(candidates.contains(&report.forward), "{:?} not among {candidates:?}", report.forward);
    assert!(candidates.contains(&report.backward), "{:?} not among {candidates:?}", report.backward);
    let run: Vec<KernelConfig> = report.results.iter().map(|r| r.config).collect();
    assert_eq!(run, candidates);
    // The default is the reference: it always runs and passes its own check.
    assert!(report.baseline().is_some(), "{:?}", report.results[0]);
    // Every candidate runs and passes its check, unless a known driver quirk
    // (`weft_runtime::testing::expectations`) says it fails on this adapter.
    let adapter = ex.gpu().identity();
    let mut failures = Vec::new();
    for r in &report.results {
        let subject = format!("attention candidate {}", r.config);
        match &r.outcome {
            Outcome::Timed(t) => {
                assert!(t.error <= 1e-3, "{subject}: error {}", t.error);
                assert!(t.total >= t.forward && t.samples.len() >= options.repeats);
                if let Err(e) = expectations::check_pass(&adapter, &subject) {
                    failures.push(e);
                }
            }
            Outcome::Failed(why) => match expectations::check_failure(&adapter, &subject, why) {
                Ok(reason) => eprintln!("{subject} failed, as expected on this adapter ({reason}): {why}"),
                Err(e) => failures.push(e),
            },
            Outcome::Skipped(why) => failures.push(format!("{subject} was not run: {why}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The winners were timed and checked.
    assert!(report.timing_of(&report.forward).is_some() && report.timing_of(&report.backward).is_some());
    assert_eq!(events.first().map(String::as_str), Some("reference"));
    assert_eq!(events.iter().filter(|e| e.starts_with("done")).count(), candidates.len());
    assert!(events.contains(&"final".to_string()));
}

#[test]
fn matmul_tuning_checks_every_candidate_and_picks_a_passing_one() {
    let Some(mut ex) = executor() else { return };
    let limits = ex.gpu().limits();
    let mut candidates = matmul_candidates(&limits, true);
    assert!(candidates.contains(&limits.default_matmul()), "the device's default is always a candidate");
    // One that cannot be generated: reported as failed, with the reason, and never chosen.
    let bad = MatmulConfig { kernel: MatmulKernel::Registers, rows: 17, cols: 8, workgroup: 64 };
    candidates.push(bad);
    let mut seen = Vec::new();
    let report = tune_matmul(
        &mut ex,
        &limits.simple_plan_options(),
        &candidates,
        &[MatmulShape::new(64, 32, 48)],
        1,
        &mut |r| seen.push(r.config),
    )
    .unwrap();
    assert_eq!(seen, candidates, "progress sees every candidate, in order");
    let failed = report.results.iter().find(|r| r.config == bad).unwrap();
    assert!(
        matches!(&failed.outcome, MatmulOutcome::Failed(why) if why.contains("not in 1..=16")),
        "{:?}",
        failed.outcome
    );
    assert_ne!(report.best, bad);
    assert!(candidates.contains(&report.best));
    assert!(report.best_rates.len() == 1 && report.best_rates[0] > 0.0, "{:?}", report.best_rates);
    for r in &report.results {
        if r.config != bad {
            assert!(matches!(r.outcome, MatmulOutcome::Timed(_)), "{}: {:?}", r.config, r.outcome);
        }
    }
}
