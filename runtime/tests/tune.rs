//! The tuner and its cache: the cache file round-trips, applies only to its
//! own adapter, driver, weft version and format, and a broken file falls back
//! to the defaults with a warning and is kept aside rather than overwritten;
//! unchecked shader modules compute what checked ones do; quick tuning on a
//! tiny problem picks one of its candidates. No timing is asserted.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use weft_compiler::attention::{AttentionKernel, AttentionPlanOptions, FusedAttentionDesc};
use weft_compiler::{MatmulClass, MatmulConfig, MatmulKernel, MatmulTable};
use weft_ir::expr::parse_mask;
use weft_ir::interp::{Tensor, masked_attention};
use weft_ir::{ConcreteMask, Mask};
use weft_runtime::testing::{executor, expectations};
use weft_runtime::tune::{
    AttentionEntry, CacheEntry, CacheError, CacheKey, CandidateSpace, ChoiceSource, KernelChoice,
    KernelConfig, MatmulError, MatmulOutcome, MatmulShape, Outcome, TuneEvent, TuneOptions, TuneProblem,
    TuningCache, matmul_candidates, rel_error, tune, tune_matmul,
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

fn attention(block: usize, checks: ShaderChecks, head_dim: usize) -> AttentionEntry {
    // The subgroup kernels forward, the lane kernels backward: both round-trip.
    let config = KernelConfig {
        block_q: block,
        block_k: block,
        rows_per_invocation: 2,
        checks,
        kernel: AttentionKernel::Subgroup,
    };
    AttentionEntry {
        problem: format!("causal B=1 H=4 N=512 D={head_dim}"),
        head_dim,
        forward: config,
        backward: KernelConfig { rows_per_invocation: 1, kernel: AttentionKernel::Lanes, ..config },
    }
}

fn entry(key: CacheKey, block: usize, checks: ShaderChecks) -> CacheEntry {
    // With matmul choices for some entries, without for others.
    let matmul = match block {
        64 => BTreeMap::from([
            (MatmulClass::NarrowN, MatmulTable::CPU_NARROW_N),
            (
                MatmulClass::Large,
                MatmulConfig { kernel: MatmulKernel::Subgroup, rows: 4, cols: 64, workgroup: 8 },
            ),
        ]),
        _ => BTreeMap::new(),
    };
    CacheEntry { key, attention: vec![attention(block, checks, 64)], matmul }
}

#[test]
fn cache_round_trips_and_keeps_other_adapters() {
    let dir = scratch("round-trip");
    // The directory does not exist yet: `store` creates it.
    let cache = TuningCache::at(dir.join("sub/tuning.toml"));
    let a = CacheKey::new(adapter("GPU A", "1.0"));
    let b = CacheKey::new(adapter("GPU B", "1.0"));
    assert_eq!(cache.lookup(&a).unwrap(), None, "a missing file has no entries");
    assert_eq!(cache.choice(&a, 64).0, KernelChoice::default());
    assert!(cache.choice(&a, 64).1.is_none(), "a missing file is no warning");

    let stored = cache.store(entry(a.clone(), 64, ShaderChecks::Unchecked)).unwrap();
    assert!(!stored.replaced && stored.moved_aside.is_none());
    cache.store(entry(b.clone(), 16, ShaderChecks::Checked)).unwrap();
    assert_eq!(cache.lookup(&a).unwrap(), Some(entry(a.clone(), 64, ShaderChecks::Unchecked)));
    assert_eq!(cache.lookup(&b).unwrap(), Some(entry(b.clone(), 16, ShaderChecks::Checked)));

    // Storing under the same key replaces that entry only.
    let stored = cache.store(entry(a.clone(), 32, ShaderChecks::Checked)).unwrap();
    assert!(stored.replaced);
    assert_eq!(cache.entries().unwrap().len(), 2);
    let (choice, warning) = cache.choice(&a, 64);
    assert!(warning.is_none());
    assert_eq!(choice.forward, entry(a, 32, ShaderChecks::Checked).attention[0].forward);
    assert_eq!(choice.backward.rows_per_invocation, 1);
    assert_eq!(choice.head_dim, Some(64));
    assert!(matches!(choice.source, ChoiceSource::Cached { ref path, .. } if path == cache.path()));
    // No temporary file is left behind.
    assert_eq!(std::fs::read_dir(dir.join("sub")).unwrap().count(), 1);
}

/// A file `weft tune` wrote before the cache had shape classes and head
/// dimensions (format 1, verbatim) still loads: its attention result is the
/// entry at its head dimension, its one matmul shape the square classes'
/// choice; the next store writes format 2 and keeps both.
#[test]
fn a_format_1_cache_still_loads() {
    let dir = scratch("format-1");
    let path = dir.join("tuning.toml");
    let old = format!(
        r#"# weft's kernel tuning cache, written by `weft tune`: the fastest fused attention
# configurations and matmul kernel shape measured per adapter and driver.
# Safe to delete.
format = 1

[[adapter]]
name = "llvmpipe (LLVM 15.0.6, 256 bits)"
driver = "llvmpipe"
driver_info = "Mesa 22.3.6 (LLVM 15.0.6)"
backend = "vulkan"
weft_version = "{}"
problem = "causal B=1 H=4 N=512 D=64"
head_dim = 64

[adapter.forward]
block_q = 64
block_k = 32
rows_per_invocation = 4
checks = "unchecked"

[adapter.backward]
block_q = 32
block_k = 32
rows_per_invocation = 2
checks = "checked"

[adapter.matmul]
kernel = "subgroup"
rows = 8
cols = 64
workgroup = 32
"#,
        env!("CARGO_PKG_VERSION")
    );
    std::fs::write(&path, &old).unwrap();
    let cache = TuningCache::at(&path);
    let key = CacheKey::new(AdapterIdentity {
        name: "llvmpipe (LLVM 15.0.6, 256 bits)".into(),
        driver: "llvmpipe".into(),
        driver_info: "Mesa 22.3.6 (LLVM 15.0.6)".into(),
        backend: "vulkan".into(),
    });
    let loaded = cache.lookup(&key).unwrap().expect("the old entry");
    let tuned = MatmulConfig { kernel: MatmulKernel::Subgroup, rows: 8, cols: 64, workgroup: 32 };
    assert_eq!(loaded.matmul, BTreeMap::from([(MatmulClass::Small, tuned), (MatmulClass::Large, tuned)]));
    // Entries from before the subgroup kernels name no kernel: the lane kernels.
    let forward = KernelConfig {
        block_q: 64,
        block_k: 32,
        rows_per_invocation: 4,
        checks: ShaderChecks::Unchecked,
        kernel: AttentionKernel::Lanes,
    };
    let backward = KernelConfig {
        block_q: 32,
        block_k: 32,
        rows_per_invocation: 2,
        checks: ShaderChecks::Checked,
        kernel: AttentionKernel::Lanes,
    };
    assert_eq!(
        loaded.attention,
        vec![AttentionEntry { problem: "causal B=1 H=4 N=512 D=64".into(), head_dim: 64, forward, backward }]
    );
    let (choice, warning) = cache.choice(&key, 64);
    assert!(warning.is_none());
    assert_eq!((choice.forward, choice.backward, choice.head_dim), (forward, backward, Some(64)));

    // Storing rewrites the file as format 2 with the same content.
    let stored = cache.store(loaded.clone()).unwrap();
    assert!(stored.replaced && stored.moved_aside.is_none());
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("format = 2") && text.contains("[adapter.matmul.small]"), "{text}");
    assert_eq!(cache.lookup(&key).unwrap(), Some(loaded));
}

/// Each shape class's matmul shape round-trips; attention results at several
/// head dimensions sit side by side and are looked up by head dimension and
/// pass, the latest one standing in (with its rows falling back) at others.
#[test]
fn matmul_classes_and_head_dims_are_cached_side_by_side() {
    let dir = scratch("per-problem");
    let cache = TuningCache::at(dir.join("tuning.toml"));
    let key = CacheKey::new(adapter("GPU A", "1.0"));
    let mut e = entry(key.clone(), 64, ShaderChecks::Unchecked);
    for (i, class) in MatmulClass::ALL.into_iter().enumerate() {
        let rows = [1, 2, 4, 8][i];
        e.matmul
            .insert(class, MatmulConfig { kernel: MatmulKernel::Registers, rows, cols: 8, workgroup: 64 });
    }
    e.add_attention(attention(16, ShaderChecks::Checked, 128));
    cache.store(e.clone()).unwrap();
    let loaded = cache.lookup(&key).unwrap().unwrap();
    assert_eq!(loaded, e);
    assert_eq!(loaded.matmul[&MatmulClass::NarrowM].rows, 2);
    assert_eq!(loaded.matmul[&MatmulClass::Large].rows, 8);

    let (at64, _) = cache.choice(&key, 64);
    assert_eq!((at64.head_dim, at64.forward.block_q), (Some(64), 64));
    assert_eq!(at64.config(false, 64), (at64.forward, None));
    assert_eq!(at64.config(true, 64).0.rows_per_invocation, 1, "the backward pass's own rows");
    let (at128, _) = cache.choice(&key, 128);
    assert_eq!((at128.head_dim, at128.forward.block_q), (Some(128), 16));
    assert_eq!(at128.config(true, 128), (at128.backward, None));
    // Untuned head dimension: the latest tuned (128) tiles, the rows the planner's.
    let (at32, _) = cache.choice(&key, 32);
    assert_eq!(at32.head_dim, Some(128));
    let (config, note) = at32.config(false, 32);
    assert_eq!(config.block_q, 16);
    assert!(note.is_some_and(|n| n.contains("tuned at D = 128")));

    // Tuning 64 again replaces that result only, and makes it the latest.
    let mut again = loaded;
    again.add_attention(attention(32, ShaderChecks::Checked, 64));
    assert_eq!(again.attention.iter().map(|a| a.head_dim).collect::<Vec<_>>(), [128, 64]);
    assert_eq!(again.attention_at(32).map(|a| a.head_dim), Some(64));
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
        let (choice, warning) = cache.choice(&other, 64);
        assert_eq!(choice, KernelChoice::default());
        assert!(warning.is_none());
    }

    // A file of another format is not read, and says why.
    let text = std::fs::read_to_string(cache.path()).unwrap().replace("format = 2", "format = 99");
    std::fs::write(cache.path(), text).unwrap();
    let (choice, warning) = cache.choice(&key, 64);
    assert_eq!(choice, KernelChoice::default());
    let message = warning.unwrap().to_string();
    assert!(message.contains("has format 99; this weft reads format 2"), "{message}");
}

#[test]
fn a_corrupt_cache_warns_gives_defaults_and_is_kept_aside() {
    let dir = scratch("corrupt");
    let path = dir.join("tuning.toml");
    let cache = TuningCache::at(&path);
    let key = CacheKey::new(adapter("GPU A", "1.0"));
    let garbage = "format = 2\n[[adapter]\nname = \"half a write";
    std::fs::write(&path, garbage).unwrap();

    let (choice, warning) = cache.choice(&key, 64);
    assert_eq!(choice, KernelChoice::default());
    let warning = warning.expect("a warning");
    assert!(matches!(warning, CacheError::Corrupt { .. }), "{warning:?}");
    let message = warning.to_string();
    assert!(message.starts_with(&format!("the tuning cache {} is not valid: ", path.display())), "{message}");

    // Values that parse but make no sense are corrupt too, with the field named.
    let header = format!(
        "format = 2\n[[adapter]]\nname = \"GPU A\"\ndriver = \"drv\"\ndriver_info = \"1.0\"\n\
         backend = \"vulkan\"\nweft_version = \"{}\"\n",
        env!("CARGO_PKG_VERSION")
    );
    let good = "block_q = 32, block_k = 32, rows_per_invocation = 2, checks = \"checked\"";
    let attention = |forward: &str, backward: &str| {
        format!(
            "[[adapter.attention]]\nproblem = \"p\"\nhead_dim = 64\nforward = {{ {forward} }}\n\
             backward = {{ {backward} }}\n"
        )
    };
    for (body, want) in [
        (
            attention(&good.replace("\"checked\"", "\"sometimes\""), good),
            "adapter `GPU A`, attention at head_dim 64, forward: checks = \"sometimes\"",
        ),
        (
            attention(good, "block_q = 32, block_k = 48, rows_per_invocation = 32, checks = \"checked\""),
            "adapter `GPU A`, attention at head_dim 64, backward: ",
        ),
        (
            format!(
                "{}[adapter.matmul.small]\nkernel = \"fast\"\nrows = 4\ncols = 64\nworkgroup = 8\n",
                attention(good, good)
            ),
            "adapter `GPU A`, matmul.small: kernel = \"fast\" is neither",
        ),
        (
            format!(
                "{}[adapter.matmul.large]\nkernel = \"subgroup\"\nrows = 4\ncols = 48\nworkgroup = 8\n",
                attention(good, good)
            ),
            "adapter `GPU A`, matmul.large: subgroup matmul columns",
        ),
        (
            format!(
                "{}[adapter.matmul.huge]\nkernel = \"subgroup\"\nrows = 4\ncols = 64\nworkgroup = 8\n",
                attention(good, good)
            ),
            "adapter `GPU A`, matmul: no shape class `huge` (the classes: narrow_n, narrow_m, small, large)",
        ),
    ] {
        std::fs::write(&path, format!("{header}{body}")).unwrap();
        let warning = cache.choice(&key, 64).1.expect("a warning");
        assert!(matches!(warning, CacheError::Corrupt { .. }), "{warning:?}");
        let message = warning.to_string();
        assert!(message.contains(want), "{message}");
    }
    // The same file with good values loads.
    std::fs::write(&path, format!("{header}{}", attention(good, good))).unwrap();
    assert_eq!(cache.lookup(&key).unwrap().unwrap().attention.len(), 1);

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
    let (choice, warning) = cache.choice(&key, 64);
    assert_eq!(choice, KernelChoice::default());
    let warning = warning.expect("a warning");
    assert!(matches!(warning, CacheError::Read { .. }), "{warning:?}");
    let message = warning.to_string();
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
    let opts = AttentionPlanOptions {
        block_q: 16,
        block_k: 32,
        rows_per_invocation: 2,
        backward: true,
        limits,
        saved_forward: false,
        // The subgroup kernels where the device has them: what CPU adapters run unchecked.
        kernel: AttentionKernel::Subgroup,
    };
    let inputs = inputs(b * h * n * d);
    let checked = FusedPlan::new(&desc, &opts, ShaderChecks::Checked).unwrap();
    let unchecked = FusedPlan::new(&desc, &opts, ShaderChecks::Unchecked).unwrap();
    assert_eq!(checked.plan(), unchecked.plan(), "the checks change the modules, not the plan");
    let a = ex.run(&checked, &inputs).unwrap();
    let pipelines = ex.cached_pipelines();
    let u = ex.run(&unchecked, &inputs).unwrap();
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
    let limits = ex.gpu().limits();
    let candidates = CandidateSpace::quick().candidates(16, &limits);
    // What runs untuned on this device comes first.
    assert_eq!(candidates[0], KernelChoice::default_for(&limits).config(true, 16).0);
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
            Outcome::Failed(why) => match expectations::check_failure(&adapter, &subject, &why.to_string()) {
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
    assert!(
        candidates.contains(&MatmulConfig::default_for(&limits)),
        "the device's default is always a candidate"
    );
    // One that cannot be generated: reported as failed, with the reason, and never chosen.
    let bad = MatmulConfig { kernel: MatmulKernel::Registers, rows: 17, cols: 8, workgroup: 64 };
    candidates.push(bad);
    let mut seen = Vec::new();
    let report = tune_matmul(
        &mut ex,
        &weft_compiler::GraphPlanOptions::for_device(limits),
        &candidates,
        &[MatmulShape::new(64, 32, 48)],
        1,
        &mut |r| seen.push(r.config),
    )
    .unwrap();
    assert_eq!(seen, candidates, "progress sees every candidate, in order");
    let failed = report.results.iter().find(|r| r.config == bad).unwrap();
    assert!(
        matches!(&failed.outcome, MatmulOutcome::Failed(why @ MatmulError::Plan { .. })
            if why.to_string().contains("not in 1..=16")),
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
