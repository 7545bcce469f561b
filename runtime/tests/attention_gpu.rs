//! Fused block-sparse attention on the device, forward and backward, against
//! an f64 reference: every example pattern, random mask expressions (with
//! sizes that depend on the head), batches, sequence lengths that are not a
//! multiple of the block, queries that see no key, and plans split into chunks
//! with folded grids.
//!
//! Inputs are fresh random numbers each run; `WEFT_TEST_SEED` replays a run
//! of the example tests, and proptest records failing random cases in
//! `attention_gpu.proptest-regressions`, which replays them first.

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Instant;

use mask_strategy::mask_strategy;
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use weft_compiler::attention::{AttentionKernel, AttentionPlanOptions, FusedAttentionDesc};
use weft_compiler::{DeviceLimits, KernelPlan, plan_attention};
use weft_ir::expr::{SizeExpr, SizeKind, SizeOp, parse_mask};
use weft_ir::graph::RopeParams;
use weft_ir::interp::{Tensor, masked_attention};
use weft_ir::{ConcreteMask, Mask, MaskExpr, Overrides, Span};
use weft_runtime::Executor;
use weft_runtime::testing::executor;

#[path = "../../ir/tests/support/mask_strategy.rs"]
mod mask_strategy;

/// The largest error allowed, relative to the largest magnitude of the reference tensor.
const TOLERANCE: f64 = 1e-4;

fn rng(test: &str) -> (StdRng, u64) {
    let seed = std::env::var("WEFT_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    eprintln!("{test}: seed {seed} (rerun with WEFT_TEST_SEED={seed})");
    (StdRng::seed_from_u64(seed), seed)
}

/// Options for the device at hand, with the backward kernels.
fn device_options(ex: &Executor) -> AttentionPlanOptions {
    let limits = ex.gpu().limits();
    AttentionPlanOptions { limits, backward: true, ..AttentionPlanOptions::default() }
}

/// The kernels this device runs: the lane kernels everywhere, and the
/// subgroup-shared ones where subgroups have at least 8 lanes.
fn kernels(ex: &Executor) -> Vec<AttentionKernel> {
    let shared = ex.gpu().limits().shares_subgroups();
    AttentionKernel::ALL.into_iter().filter(|k| *k == AttentionKernel::Lanes || shared).collect()
}

/// [`check`] with each of the device's kernels, asserting that the planner
/// ran the one asked for (the shapes here all allow the subgroup kernels).
fn check_each_kernel(
    ex: &mut Executor,
    desc: &FusedAttentionDesc,
    opts: &AttentionPlanOptions,
    rng: &mut StdRng,
    seed: u64,
) {
    for kernel in kernels(ex) {
        let opts = AttentionPlanOptions { kernel, ..opts.clone() };
        assert_eq!(opts.resolved(desc.head_dim).kernel_for(desc), kernel, "{}", desc.name);
        check(ex, desc, &opts, rng, seed);
    }
}

/// Random values in ±[0.05, 2): never zero.
fn random_values(rng: &mut StdRng, len: usize) -> Vec<f32> {
    (0..len)
        .map(|_| {
            let magnitude = rng.random_range(0.05f32..2.0);
            if rng.random_bool(0.5) { magnitude } else { -magnitude }
        })
        .collect()
}

/// Named f32 tensors, as the executor takes and returns them.
type Tensors = HashMap<String, Vec<f32>>;

/// What a fused attention computes, in f64 from the definition.
struct Reference {
    o: Vec<f64>,
    lse: Vec<f64>,
    dq: Vec<f64>,
    dk: Vec<f64>,
    dv: Vec<f64>,
    /// Rows whose mask allows no key, as (b * H + h) * N + i.
    empty_rows: Vec<usize>,
}

/// Forward and backward of masked softmax attention. For a query with allowed
/// keys J: `P = softmax_J(scale q k^T)`, `o = P v`, and with `dP = dO v^T`,
/// `delta = rowsum(dO * o)`, `dS = P * (dP - delta)`: `dq = scale dS k`,
/// `dk = scale dS^T q`, `dv = P^T dO`. A query with no allowed key has o = 0
/// and contributes nothing.
fn reference(
    inputs: &HashMap<String, Vec<f64>>,
    shape: [usize; 4],
    masks: &[ConcreteMask],
    scale: f64,
) -> Reference {
    let [b, h, n, d] = shape;
    let (q, k, v, dout) = (&inputs["q"], &inputs["k"], &inputs["v"], &inputs["do"]);
    let len = b * h * n * d;
    let mut r = Reference {
        o: vec![0.0; len],
        lse: vec![0.0; b * h * n],
        dq: vec![0.0; len],
        dk: vec![0.0; len],
        dv: vec![0.0; len],
        empty_rows: Vec::new(),
    };
    let row = |x: &[f64], bh: usize, i: usize| -> Vec<f64> { x[(bh * n + i) * d..][..d].to_vec() };
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    for bh in 0..b * h {
        let mask = &masks[bh % h];
        for i in 0..n {
            let keys: Vec<usize> = (0..n).filter(|&j| mask.allows(n as i64, i as i64, j as i64)).collect();
            if keys.is_empty() {
                r.empty_rows.push(bh * n + i);
                continue;
            }
            let qi = row(q, bh, i);
            let gi = row(dout, bh, i);
            let s: Vec<f64> = keys.iter().map(|&j| scale * dot(&qi, &row(k, bh, j))).collect();
            let m = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let total: f64 = s.iter().map(|x| (x - m).exp()).sum();
            r.lse[bh * n + i] = m + total.ln();
            let p: Vec<f64> = s.iter().map(|x| (x - m).exp() / total).collect();
            let oi = &mut r.o[(bh * n + i) * d..][..d];
            for (&j, &pj) in keys.iter().zip(&p) {
                for (o, x) in oi.iter_mut().zip(&v[(bh * n + j) * d..][..d]) {
                    *o += pj * x;
                }
            }
            let delta = dot(&gi, &r.o[(bh * n + i) * d..][..d]);
            for (&j, &pj) in keys.iter().zip(&p) {
                let dp = dot(&gi, &row(v, bh, j));
                let ds = pj * (dp - delta);
                for c in 0..d {
                    r.dq[(bh * n + i) * d + c] += scale * ds * k[(bh * n + j) * d + c];
                    r.dk[(bh * n + j) * d + c] += scale * ds * qi[c];
                    r.dv[(bh * n + j) * d + c] += pj * gi[c];
                }
            }
        }
    }
    r
}

/// Hugging Face's rotate-half RoPE of rows `[.., N, D]`, in f64: position `p`
/// turns the pair `(i, i + D/2)` by `(p / position_scale) · theta^(−2i/D)`;
/// `transposed` turns the other way (the gradient's rotation).
fn rope_rows(x: &[f64], n: usize, d: usize, rope: RopeParams, transposed: bool) -> Vec<f64> {
    let half = d / 2;
    let sign = if transposed { -1.0 } else { 1.0 };
    let mut out = x.to_vec();
    for (r, row) in x.chunks(d).enumerate() {
        let position = (r % n) as f64 / rope.position_scale;
        for i in 0..half {
            let angle = sign * position * rope.theta.powf(-2.0 * i as f64 / d as f64);
            let (a, b) = (row[i], row[i + half]);
            out[r * d + i] = a * angle.cos() - b * angle.sin();
            out[r * d + i + half] = b * angle.cos() + a * angle.sin();
        }
    }
    out
}

/// max |got - want| / max |want|; infinite on a NaN or a length mismatch.
fn rel_error(got: &[f32], want: &[f64]) -> f64 {
    if got.len() != want.len() {
        return f64::INFINITY;
    }
    let scale = want.iter().fold(0.0f64, |m, x| m.max(x.abs())).max(f64::MIN_POSITIVE);
    let mut worst = 0.0f64;
    for (g, w) in got.iter().zip(want) {
        let e = (f64::from(*g) - w).abs();
        if e.is_nan() {
            return f64::INFINITY;
        }
        worst = worst.max(e);
    }
    worst / scale
}

/// Runs `desc` forward and backward on random inputs and compares every output
/// with the reference; returns the outputs, the reference and the inputs.
fn check(
    ex: &mut Executor,
    desc: &FusedAttentionDesc,
    opts: &AttentionPlanOptions,
    rng: &mut StdRng,
    seed: u64,
) -> (Tensors, Reference, Tensors) {
    try_check(ex, desc, opts, rng, seed).unwrap_or_else(|e| panic!("{e}"))
}

/// [`check`], with a failure as a message instead of a panic.
fn try_check(
    ex: &mut Executor,
    desc: &FusedAttentionDesc,
    opts: &AttentionPlanOptions,
    rng: &mut StdRng,
    seed: u64,
) -> Result<(Tensors, Reference, Tensors), String> {
    let (plan, stats) = plan_attention(desc, opts).map_err(|e| e.to_string())?;
    let inputs = random_inputs(&plan, desc, rng)?;
    let started = Instant::now();
    let out = ex.run(&plan, &inputs).map_err(|e| format!("{}: {e}", desc.name))?;
    let elapsed = started.elapsed();
    let mut masks: Vec<ConcreteMask> = Vec::with_capacity(desc.n_heads);
    for head in 0..desc.n_heads {
        let (_, mask) = desc
            .heads
            .iter()
            .find(|(r, _)| r.contains(&head))
            .ok_or_else(|| format!("{}: no mask for head {head}", desc.name))?;
        masks.push(mask.for_head(head).map_err(|e| format!("{}: head {head}: {e}", desc.name))?);
    }
    let shape = [desc.batch, desc.n_heads, desc.seq_len, desc.head_dim];
    // With RoPE on load, the reference attends over rotated q and k, and its
    // dq and dk turn back by the transposed rotation.
    let (n, d) = (desc.seq_len, desc.head_dim);
    let mut seen: HashMap<String, Vec<f64>> =
        inputs.iter().map(|(name, x)| (name.clone(), x.iter().map(|&v| f64::from(v)).collect())).collect();
    if let Some(rope) = desc.rope {
        for name in ["q", "k"] {
            let rotated = rope_rows(&seen[name], n, d, rope, false);
            seen.insert(name.to_string(), rotated);
        }
    }
    let mut want = reference(&seen, shape, &masks, f64::from(desc.scale));
    if let Some(rope) = desc.rope {
        want.dq = rope_rows(&want.dq, n, d, rope, true);
        want.dk = rope_rows(&want.dk, n, d, rope, true);
    }
    let what = format!(
        "`{}` (B={} H={} N={} D={}, blocks {}x{}, {} rows/invocation, {} kernels, {} chunks; seed {seed})",
        desc.name,
        desc.batch,
        desc.n_heads,
        desc.seq_len,
        desc.head_dim,
        stats.block_q,
        stats.block_k,
        stats.rows_per_invocation,
        stats.kernel,
        stats.chunks
    );

    // The forward against the interpreter's masked attention, too.
    let tensor = |name: &str| {
        Tensor::new(shape.to_vec(), seen[name].clone()).map_err(|e| format!("{what}: `{name}`: {e}"))
    };
    let dense = masked_attention(&tensor("q")?, &tensor("k")?, &tensor("v")?, &masks, f64::from(desc.scale))
        .map_err(|e| format!("{what}: masked_attention: {e}"))?;
    let output = |name: &str| out.get(name).ok_or_else(|| format!("{what}: no output `{name}`"));
    let err = rel_error(output("o")?, dense.data());
    if err > TOLERANCE {
        return Err(format!("{what}: o differs from masked_attention by {err:e}"));
    }

    for (name, want) in [("o", &want.o), ("dq", &want.dq), ("dk", &want.dk), ("dv", &want.dv)] {
        let err = rel_error(output(name)?, want);
        if err > TOLERANCE {
            return Err(format!("{what}: `{name}` has relative error {err:e}"));
        }
    }
    // The log-sum-exp of rows that see a key, absolutely (it is a log).
    let mut lse_err = 0.0f64;
    for (i, (&got, &w)) in output("lse")?.iter().zip(&want.lse).enumerate() {
        if !got.is_finite() {
            return Err(format!("{what}: lse[{i}] = {got}"));
        }
        if want.empty_rows.binary_search(&i).is_err() {
            lse_err = lse_err.max((f64::from(got) - w).abs() / w.abs().max(1.0));
        }
    }
    if lse_err > TOLERANCE {
        return Err(format!("{what}: lse has error {lse_err:e}"));
    }
    for (name, values) in &out {
        if !values.iter().all(|x| x.is_finite()) {
            return Err(format!("{what}: `{name}` has a NaN or infinity"));
        }
    }
    eprintln!(
        "{what}: ok in {:.1} ms (plan + compile + run), {} empty rows",
        elapsed.as_secs_f64() * 1e3,
        want.empty_rows.len()
    );
    Ok((out, want, inputs))
}

fn random_inputs(
    plan: &KernelPlan,
    desc: &FusedAttentionDesc,
    rng: &mut StdRng,
) -> Result<HashMap<String, Vec<f32>>, String> {
    let len = desc.batch * desc.n_heads * desc.seq_len * desc.head_dim;
    let mut inputs = HashMap::new();
    for name in ["q", "k", "v", "do"] {
        if !plan.buffers.contains_key(name) {
            return Err(format!("{}: the plan has no `{name}`", desc.name));
        }
        inputs.insert(name.to_string(), random_values(rng, len));
    }
    Ok(inputs)
}

fn example_descs(file: &str, n: usize, h: usize, batch: usize, d: usize) -> Vec<FusedAttentionDesc> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/patterns").join(file);
    let overrides = Overrides { seq_len: Some(n), n_heads: Some(h), ..Overrides::default() };
    let schedule = weft_ir::spec::load_schedule(&path, &overrides).unwrap_or_else(|e| panic!("{e}"));
    schedule
        .patterns
        .iter()
        .map(|p| {
            let mut desc = FusedAttentionDesc::from_pattern(p, n, batch, d);
            desc.name = format!("{}:{}", schedule.name, p.name);
            desc
        })
        .collect()
}

fn mask(src: &str) -> Mask {
    Mask::new(parse_mask(src).unwrap_or_else(|e| panic!("{src}: {e}")))
        .unwrap_or_else(|v| panic!("{src}: {v}"))
}

fn custom(
    name: &str,
    heads: &[(Range<usize>, &str)],
    n: usize,
    batch: usize,
    d: usize,
) -> FusedAttentionDesc {
    FusedAttentionDesc {
        name: name.to_string(),
        batch,
        n_heads: heads.last().map_or(0, |(r, _)| r.end),
        seq_len: n,
        head_dim: d,
        heads: heads.iter().map(|(r, m)| (r.clone(), mask(m))).collect(),
        scale: 1.0 / (d as f32).sqrt(),
        rope: None,
    }
}

#[test]
fn example_patterns_match_the_f64_reference() {
    let (mut rng, seed) = rng("example patterns");
    let Some(mut ex) = executor() else { return };
    let opts = device_options(&ex);
    let mut files: Vec<String> =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/patterns"))
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .filter(|f| f.ends_with(".toml"))
            .collect();
    files.sort();
    assert!(files.len() >= 6, "examples: {files:?}");
    let kernels = kernels(&ex);
    for (i, file) in files.iter().enumerate() {
        // N = 100 is not a multiple of the 32-row blocks. Every kernel kind
        // runs at D = 16. D = 64 kernels take seconds each to compile on
        // lavapipe, and the head dimension changes the kernel body but not
        // the mask functions, so at D = 64 the patterns take turns: each kind
        // meets every kind of mask, each pattern meets one kind.
        for (n, d, batch) in [(64, 16, 2), (100, 16, 1)] {
            for desc in example_descs(file, n, 4, batch, d) {
                check_each_kernel(&mut ex, &desc, &opts, &mut rng, seed);
            }
        }
        let kernel = kernels[i % kernels.len()];
        for desc in example_descs(file, 100, 4, 2, 64) {
            let opts = AttentionPlanOptions { kernel, ..opts.clone() };
            assert_eq!(opts.resolved(64).kernel_for(&desc), kernel, "{}", desc.name);
            check(&mut ex, &desc, &opts, &mut rng, seed);
        }
    }
}

/// A size drawn from `range`, plus `h` three times in ten, so that heads of one
/// group differ.
fn size_in_h(range: Range<i64>) -> BoxedStrategy<SizeExpr> {
    (range, prop::bool::weighted(0.3))
        .prop_map(|(v, with_h)| {
            if !with_h {
                return SizeExpr::lit(v);
            }
            let kind = SizeKind::Bin(SizeOp::Add, Box::new(SizeExpr::lit(v)), Box::new(SizeExpr::var("h")));
            SizeExpr { kind, span: Span::default() }
        })
        .boxed()
}

/// A random mask for a group of heads; most are causal, as in practice.
fn head_mask() -> impl Strategy<Value = Mask> {
    (mask_strategy(size_in_h), prop::bool::weighted(0.7)).prop_map(|(expr, causal)| {
        let expr = if causal { MaskExpr::Causal.and(expr) } else { expr };
        Mask::new(expr).unwrap_or_else(|name| panic!("the strategy made a size in `{name}`"))
    })
}

/// The device every case of the property shares: opening it and compiling
/// pipelines are what take the time on lavapipe. `None` without an adapter
/// (the first case reports the skip).
fn shared_executor() -> Option<MutexGuard<'static, Executor>> {
    static EXECUTOR: OnceLock<Option<Mutex<Executor>>> = OnceLock::new();
    // A failed case panics with the lock held; the executor itself is still fine.
    let executor = EXECUTOR.get_or_init(|| executor().map(Mutex::new)).as_ref()?;
    Some(executor.lock().unwrap_or_else(PoisonError::into_inner))
}

proptest! {
    // Each case compiles four kernels on the device, and so does each step of
    // shrinking a failure: shrinking stops after a minute.
    #![proptest_config(ProptestConfig {
        cases: 16,
        max_shrink_iters: 256,
        max_shrink_time: 60_000,
        ..ProptestConfig::default()
    })]

    /// The fused forward and backward match the f64 reference for random masks
    /// (sizes depending on the head, one or two head groups), shapes and tiles.
    #[test]
    fn random_masks_and_shapes_match_the_f64_reference(
        (n_heads, split) in (1usize..=3).prop_flat_map(|h| (Just(h), 1..=h)),
        masks in [head_mask(), head_mask()],
        n in 17usize..80,
        batch in 1usize..=2,
        d in prop::sample::select(vec![4usize, 8, 12, 16]),
        r in prop::sample::select(vec![1usize, 2, 4]),
        block_q in prop::sample::select(vec![8usize, 16, 32]),
        block_k in prop::sample::select(vec![8usize, 16, 32, 64]),
        kernel in prop::sample::select(AttentionKernel::ALL.to_vec()),
        input_seed in any::<u64>(),
    ) {
        let [first, second] = masks;
        let mut heads = vec![(0..split, first)];
        if split < n_heads {
            heads.push((split..n_heads, second));
        }
        let listing: Vec<String> = heads.iter().map(|(r, m)| format!("{}..{}: {m}", r.start, r.end)).collect();
        let desc = FusedAttentionDesc {
            name: "random".to_string(),
            batch,
            n_heads,
            seq_len: n,
            head_dim: d,
            heads,
            scale: 1.0 / (d as f32).sqrt(),
            rope: None,
        };
        let Some(mut ex) = shared_executor() else { return Ok(()) };
        // Where the workgroups are not multiples of 8 (or the device has no
        // subgroups) the planner runs the lane kernels for `Subgroup`.
        let opts = AttentionPlanOptions { block_q, block_k, rows_per_invocation: r, kernel, ..device_options(&ex) };
        let mut rng = StdRng::seed_from_u64(input_seed);
        try_check(&mut ex, &desc, &opts, &mut rng, input_seed)
            .map_err(|e| TestCaseError::fail(format!("{e}\nmasks {listing:?}")))?;
    }
}

#[test]
fn each_sample_of_a_batch_is_independent_of_the_others() {
    let (mut rng, seed) = rng("batch independence");
    let Some(mut ex) = executor() else { return };
    let opts = device_options(&ex);
    let heads = [(0..2, "causal & groups(25)"), (2..4, "roll(12, causal & groups(25))")];
    let pair = custom("s2-batch", &heads, 100, 2, 16);
    let opts =
        AttentionPlanOptions { kernel: *kernels(&ex).last().unwrap_or(&AttentionKernel::Lanes), ..opts };
    let (both, _, inputs) = check(&mut ex, &pair, &opts, &mut rng, seed);
    // The second sample alone, through a batch-1 plan.
    let single = custom("s2-batch", &heads, 100, 1, 16);
    let (plan, _) = plan_attention(&single, &opts).unwrap();
    let half = |x: &Vec<f32>| x[x.len() / 2..].to_vec();
    let second: HashMap<String, Vec<f32>> = inputs.iter().map(|(k, v)| (k.clone(), half(v))).collect();
    let alone = ex.run(&plan, &second).unwrap();
    for name in ["o", "lse", "dq", "dk", "dv"] {
        assert_eq!(half(&both[name]), alone[name], "`{name}` of sample 1 depends on sample 0 (seed {seed})");
    }
}

#[test]
fn queries_that_see_no_key_output_zeros_and_get_zero_gradients() {
    let (mut rng, seed) = rng("empty rows");
    let Some(mut ex) = executor() else { return };
    let opts = device_options(&ex);
    // Head 0: query 0 sees no key. Head 1: the last query sees no key (keys after
    // it only). Head 2: no query sees any key.
    let heads = [(0..1, "causal & !sink(1)"), (1..2, "window(3) & !causal"), (2..3, "causal & !causal")];
    for n in [64, 100] {
        let desc = custom("empty", &heads, n, 2, 16);
        for kernel in kernels(&ex) {
            let opts = AttentionPlanOptions { kernel, ..opts.clone() };
            let (out, want, _) = check(&mut ex, &desc, &opts, &mut rng, seed);
            let d = 16;
            let expected_empty: Vec<usize> = (0..2)
                .flat_map(|b| {
                    [(b * 3) * n, (b * 3 + 1) * n + n - 1]
                        .into_iter()
                        .chain((0..n).map(move |i| (b * 3 + 2) * n + i))
                })
                .collect();
            let mut expected_empty = expected_empty;
            expected_empty.sort_unstable();
            assert_eq!(want.empty_rows, expected_empty);
            for &row in &want.empty_rows {
                for name in ["o", "dq"] {
                    let values = &out[name][row * d..][..d];
                    assert!(
                        values.iter().all(|&x| x == 0.0),
                        "`{name}` of empty row {row}: {values:?} (seed {seed})"
                    );
                }
                assert!(out["lse"][row].is_finite());
            }
            // Head 2 sees nothing: every gradient of it is zero.
            for b in 0..2 {
                let head = (b * 3 + 2) * n * d..(b * 3 + 3) * n * d;
                for name in ["dk", "dv", "dq", "o"] {
                    assert!(out[name][head.clone()].iter().all(|&x| x == 0.0), "`{name}` of the empty head");
                }
            }
        }
    }
}

#[test]
fn chunked_plans_with_folded_grids_match_the_reference() {
    let (mut rng, seed) = rng("chunks");
    let Some(mut ex) = executor() else { return };
    let device = device_options(&ex);
    let heads = [(0..3, "causal & (sink(4) | window(9 + h))"), (3..5, "roll(-7, causal & groups(20, h))")];
    for (n, d) in [(64, 16), (100, 8)] {
        let batch = if n == 100 { 4 } else { 2 };
        let desc = custom("chunked", &heads, n, batch, d);
        // A binding holds three (batch, head) slabs (N = 100: chunks are rounded
        // to 16 slabs so bindings start at multiples of 256 bytes, so give it room
        // for 17), and few workgroups fit in one grid dimension.
        let (slabs, block, max_workgroups) = if n == 100 { (17, 32, 8) } else { (3, 16, 4) };
        let limits = DeviceLimits {
            max_storage_binding: (slabs * n * d * 4) as u64,
            max_workgroups_per_dimension: max_workgroups,
            ..device.limits
        };
        // Workgroups of 8 invocations, which the subgroup kernels need.
        let rows = block / 8;
        let opts = AttentionPlanOptions {
            limits,
            block_q: block,
            block_k: block,
            rows_per_invocation: rows,
            ..device.clone()
        };
        let (plan, stats) = plan_attention(&desc, &opts).unwrap();
        assert!(stats.chunks > 1, "expected chunks: {stats}");
        assert!(plan.kernels.iter().any(|k| k.workgroups[1] > 1), "expected a folded grid");
        check_each_kernel(&mut ex, &desc, &opts, &mut rng, seed);
    }
}

/// Tiles of 64 positions: each owned row's mask bits for a partial tile take
/// two 32-bit words, in the forward and dQ kernels (over keys) and in dK/dV
/// (over queries). The masks put allowed and masked pairs in both halves of
/// partial tiles; N = 150 leaves a last tile of 22.
#[test]
fn tiles_longer_than_a_mask_word_match_the_reference() {
    let (mut rng, seed) = rng("two-word tiles");
    let Some(mut ex) = executor() else { return };
    let device = device_options(&ex);
    let heads = [(0..2, "causal & (sink(5) | window(37))"), (2..3, "roll(45, causal & groups(70))")];
    for (rows, d) in [(2, 8), (4, 16)] {
        let desc = custom("two-word", &heads, 150, 1, d);
        let opts =
            AttentionPlanOptions { block_q: 64, block_k: 64, rows_per_invocation: rows, ..device.clone() };
        check_each_kernel(&mut ex, &desc, &opts, &mut rng, seed);
    }
}

/// RoPE on load (linear interpolation by 2): whole-vec4 partners (D = 8, 16)
/// and mixed components (D = 12), sequences that are not a multiple of the
/// block, long ones, and a chunked plan on a folded grid (the table is bound
/// whole); at D = 64 also through the subgroup kernels, whose lanes rotate the
/// columns they load.
#[test]
fn rope_on_load_matches_the_reference() {
    let (mut rng, seed) = rng("rope");
    let Some(mut ex) = executor() else { return };
    let device = device_options(&ex);
    let heads = [(0..2, "causal"), (2..3, "causal & groups(24, h)")];
    let rope = Some(RopeParams::new(500.0, 2.0));
    for (n, d, batch) in [(70, 8, 2), (50, 12, 2), (64, 16, 2), (1024, 16, 1)] {
        let desc = FusedAttentionDesc { rope, ..custom("rope", &heads, n, batch, d) };
        check(&mut ex, &desc, &device, &mut rng, seed);
    }
    // LLaMA's theta at long context: thousands of radians, stepped in f32 across each tile.
    let desc = FusedAttentionDesc {
        rope: Some(RopeParams::new(10000.0, 1.0)),
        ..custom("rope", &heads, 2048, 1, 8)
    };
    check(&mut ex, &desc, &device, &mut rng, seed);
    let desc = FusedAttentionDesc { rope, ..custom("rope", &heads, 100, 1, 64) };
    check_each_kernel(&mut ex, &desc, &device, &mut rng, seed);
    let desc = FusedAttentionDesc { rope, ..custom("rope-chunked", &heads, 100, 8, 8) };
    let limits = DeviceLimits {
        max_storage_binding: (17 * 100 * 8 * 4) as u64,
        max_workgroups_per_dimension: 8,
        ..device.limits
    };
    let opts = AttentionPlanOptions { limits, block_q: 32, block_k: 32, ..device.clone() };
    let (plan, stats) = plan_attention(&desc, &opts).unwrap();
    assert!(stats.chunks > 1, "expected chunks: {stats}");
    assert!(plan.kernels.iter().any(|k| k.workgroups[1] > 1), "expected a folded grid");
    check(&mut ex, &desc, &opts, &mut rng, seed);
}
