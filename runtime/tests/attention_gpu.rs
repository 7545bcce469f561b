//! Fused block-sparse attention on the device, forward and backward, against
//! an f64 reference: every example pattern, random mask expressions (with
//! sizes that depend on the head), batches, sequence lengths that are not a
//! multiple of the block, queries that see no key, and plans split into chunks
//! with folded grids.
//!
//! Inputs are fresh random numbers each run; `WEFT_TEST_SEED` replays a run.

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;
use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use weft_compiler::plan::{FusedAttentionDesc, PlanOptions};
use weft_compiler::{KernelPlan, plan_attention};
use weft_ir::expr::parse_mask;
use weft_ir::interp::{Tensor, masked_attention};
use weft_ir::{ConcreteMask, Mask, Overrides};
use weft_runtime::{Executor, Gpu};

/// The largest error allowed, relative to the largest magnitude of the reference tensor.
const TOLERANCE: f64 = 1e-4;

fn executor() -> Executor {
    let gpu = Gpu::new().expect("a GPU adapter (install mesa-vulkan-drivers on machines without a GPU)");
    eprintln!("adapter: {}", gpu.adapter_description());
    Executor::new(gpu)
}

fn rng(test: &str) -> (StdRng, u64) {
    let seed = std::env::var("WEFT_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    eprintln!("{test}: seed {seed} (rerun with WEFT_TEST_SEED={seed})");
    (StdRng::seed_from_u64(seed), seed)
}

/// Options for the device at hand, with the backward kernels.
fn device_options(ex: &Executor) -> PlanOptions {
    let limits = ex.gpu().limits();
    PlanOptions {
        max_storage_binding: limits.max_storage_binding,
        max_workgroups_per_dim: limits.max_workgroups_per_dim,
        backward: true,
        ..PlanOptions::default()
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
    inputs: &HashMap<String, Vec<f32>>,
    shape: [usize; 4],
    masks: &[ConcreteMask],
    scale: f64,
) -> Reference {
    let [b, h, n, d] = shape;
    let get = |name: &str| -> Vec<f64> { inputs[name].iter().map(|&x| f64::from(x)).collect() };
    let (q, k, v, dout) = (get("q"), get("k"), get("v"), get("do"));
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
            let qi = row(&q, bh, i);
            let gi = row(&dout, bh, i);
            let s: Vec<f64> = keys.iter().map(|&j| scale * dot(&qi, &row(&k, bh, j))).collect();
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
                let dp = dot(&gi, &row(&v, bh, j));
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
/// with the reference; returns the outputs and the reference.
fn check(
    ex: &mut Executor,
    desc: &FusedAttentionDesc,
    opts: &PlanOptions,
    rng: &mut StdRng,
    seed: u64,
) -> (Tensors, Reference, Tensors) {
    let (plan, stats) = plan_attention(desc, opts).unwrap_or_else(|e| panic!("{e}"));
    let inputs = random_inputs(&plan, desc, rng);
    let started = Instant::now();
    let out = ex.run(&plan, &inputs).unwrap_or_else(|e| panic!("{}: {e}", desc.name));
    let elapsed = started.elapsed();
    let masks: Vec<ConcreteMask> = (0..desc.n_heads)
        .map(|head| {
            let (_, mask) = desc.heads.iter().find(|(r, _)| r.contains(&head)).unwrap();
            mask.for_head(head).unwrap()
        })
        .collect();
    let shape = [desc.batch, desc.n_heads, desc.seq_len, desc.head_dim];
    let want = reference(&inputs, shape, &masks, f64::from(desc.scale));
    let what = format!(
        "`{}` (B={} H={} N={} D={}, blocks {}x{}, {} rows/invocation, {} chunks; seed {seed})",
        desc.name,
        desc.batch,
        desc.n_heads,
        desc.seq_len,
        desc.head_dim,
        stats.block_q,
        stats.block_k,
        stats.rows_per_invocation,
        stats.chunks
    );

    // The forward against the interpreter's masked attention, too.
    let tensor = |name: &str| {
        Tensor::new(shape.to_vec(), inputs[name].iter().map(|&x| f64::from(x)).collect()).unwrap()
    };
    let dense =
        masked_attention(&tensor("q"), &tensor("k"), &tensor("v"), &masks, f64::from(desc.scale)).unwrap();
    let err = rel_error(&out["o"], dense.data());
    assert!(err <= TOLERANCE, "{what}: o differs from masked_attention by {err:e}");

    for (name, want) in [("o", &want.o), ("dq", &want.dq), ("dk", &want.dk), ("dv", &want.dv)] {
        let err = rel_error(&out[name], want);
        assert!(err <= TOLERANCE, "{what}: `{name}` has relative error {err:e}");
    }
    // The log-sum-exp of rows that see a key, absolutely (it is a log).
    let mut lse_err = 0.0f64;
    for (i, (&got, &w)) in out["lse"].iter().zip(&want.lse).enumerate() {
        assert!(got.is_finite(), "{what}: lse[{i}] = {got}");
        if want.empty_rows.binary_search(&i).is_err() {
            lse_err = lse_err.max((f64::from(got) - w).abs() / w.abs().max(1.0));
        }
    }
    assert!(lse_err <= TOLERANCE, "{what}: lse has error {lse_err:e}");
    for (name, values) in &out {
        assert!(values.iter().all(|x| x.is_finite()), "{what}: `{name}` has a NaN or infinity");
    }
    eprintln!(
        "{what}: ok in {:.1} ms (plan + compile + run), {} empty rows",
        elapsed.as_secs_f64() * 1e3,
        want.empty_rows.len()
    );
    (out, want, inputs)
}

fn random_inputs(
    plan: &KernelPlan,
    desc: &FusedAttentionDesc,
    rng: &mut StdRng,
) -> HashMap<String, Vec<f32>> {
    let len = desc.batch * desc.n_heads * desc.seq_len * desc.head_dim;
    let mut inputs = HashMap::new();
    for name in ["q", "k", "v", "do"] {
        assert!(plan.buffers.contains_key(name), "plan has no `{name}`");
        inputs.insert(name.to_string(), random_values(rng, len));
    }
    inputs
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
    }
}

#[test]
fn example_patterns_match_the_f64_reference() {
    let (mut rng, seed) = rng("example patterns");
    let mut ex = executor();
    let opts = device_options(&ex);
    let mut files: Vec<String> =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/patterns"))
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .filter(|f| f.ends_with(".toml"))
            .collect();
    files.sort();
    assert!(files.len() >= 6, "examples: {files:?}");
    for file in &files {
        // N = 100 is not a multiple of the 32-row blocks. (D = 64 kernels take
        // seconds to compile on lavapipe, so D = 64 runs at one length.)
        for (n, d, batch) in [(64, 16, 2), (100, 16, 1), (100, 64, 2)] {
            for desc in example_descs(file, n, 4, batch, d) {
                check(&mut ex, &desc, &opts, &mut rng, seed);
            }
        }
    }
}

/// A random mask expression over sequence length `n`; sizes sometimes depend on `h`.
fn random_mask(rng: &mut StdRng, n: i64, depth: u32) -> String {
    let choice = if depth == 0 { rng.random_range(0..7) } else { rng.random_range(0..11) };
    let h_term = |rng: &mut StdRng| if rng.random_bool(0.3) { " + h" } else { "" };
    match choice {
        0 => "causal".to_string(),
        1 => format!("window({}{})", rng.random_range(1..=n / 3), h_term(rng)),
        2 => format!("sink({}{})", rng.random_range(1..=n / 4), h_term(rng)),
        3 => format!("groups({}{}, {})", rng.random_range(2..=n / 2), h_term(rng), rng.random_range(-n..n)),
        4 => format!(
            "local_stride({}, {}, {}, {}{})",
            rng.random_range(2..=12),
            rng.random_range(1..=3),
            rng.random_range(1..=5),
            rng.random_range(-5..5),
            h_term(rng)
        ),
        5 => "full".to_string(),
        6 => format!("!sink({})", rng.random_range(1..=3)),
        7 => format!("roll({}{}, {})", rng.random_range(-n..n), h_term(rng), random_mask(rng, n, depth - 1)),
        8 => format!("!({})", random_mask(rng, n, depth - 1)),
        9 => format!("({}) | ({})", random_mask(rng, n, depth - 1), random_mask(rng, n, depth - 1)),
        _ => format!("({}) & ({})", random_mask(rng, n, depth - 1), random_mask(rng, n, depth - 1)),
    }
}

#[test]
fn random_masks_and_shapes_match_the_f64_reference() {
    let (mut rng, seed) = rng("random masks");
    let mut ex = executor();
    let device = device_options(&ex);
    for case in 0..10 {
        let n = [37usize, 64, 100][rng.random_range(0..3)];
        let d = [4usize, 8, 16, 32][rng.random_range(0..4)];
        let r = [1usize, 2, 4][rng.random_range(0..3)];
        let block_q = [8usize, 16, 32][rng.random_range(0..3)].max(r);
        let block_k = [8usize, 16, 32, 64][rng.random_range(0..4)].max(r);
        let n_heads = rng.random_range(1..=4);
        // One or two head groups, each with its own mask; most masks are causal.
        let split = rng.random_range(1..=n_heads);
        let mut heads = Vec::new();
        for range in [0..split, split..n_heads] {
            if range.is_empty() {
                continue;
            }
            let body = random_mask(&mut rng, n as i64, 2);
            let m = if rng.random_bool(0.7) { format!("causal & ({body})") } else { body };
            heads.push((range, m));
        }
        let heads: Vec<(Range<usize>, &str)> = heads.iter().map(|(r, m)| (r.clone(), m.as_str())).collect();
        let desc = custom(&format!("random{case}"), &heads, n, rng.random_range(1..=2), d);
        eprintln!("case {case}: {:?}", heads);
        let opts = PlanOptions { block_q, block_k, rows_per_invocation: r, ..device.clone() };
        check(&mut ex, &desc, &opts, &mut rng, seed);
    }
}

#[test]
fn each_sample_of_a_batch_is_independent_of_the_others() {
    let (mut rng, seed) = rng("batch independence");
    let mut ex = executor();
    let opts = device_options(&ex);
    let heads = [(0..2, "causal & groups(25)"), (2..4, "roll(12, causal & groups(25))")];
    let pair = custom("s2-batch", &heads, 100, 2, 16);
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
    let mut ex = executor();
    let opts = device_options(&ex);
    // Head 0: query 0 sees no key. Head 1: the last query sees no key (keys after
    // it only). Head 2: no query sees any key.
    let heads = [(0..1, "causal & !sink(1)"), (1..2, "window(3) & !causal"), (2..3, "causal & !causal")];
    for n in [64, 100] {
        let desc = custom("empty", &heads, n, 2, 16);
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

#[test]
fn chunked_plans_with_folded_grids_match_the_reference() {
    let (mut rng, seed) = rng("chunks");
    let mut ex = executor();
    let device = device_options(&ex);
    let heads = [(0..3, "causal & (sink(4) | window(9 + h))"), (3..5, "roll(-7, causal & groups(20, h))")];
    for (n, d) in [(64, 16), (100, 8)] {
        let batch = if n == 100 { 4 } else { 2 };
        let desc = custom("chunked", &heads, n, batch, d);
        // A binding holds three (batch, head) slabs (N = 100: chunks are rounded
        // to 16 slabs so bindings start at multiples of 256 bytes, so give it room
        // for 17), and few workgroups fit in one grid dimension.
        let (slabs, block, max_workgroups) = if n == 100 { (17, 32, 8) } else { (3, 16, 4) };
        let opts = PlanOptions {
            max_storage_binding: (slabs * n * d * 4) as u64,
            max_workgroups_per_dim: max_workgroups,
            block_q: block,
            block_k: block,
            ..device.clone()
        };
        let (plan, stats) = plan_attention(&desc, &opts).unwrap();
        assert!(stats.chunks > 1, "expected chunks: {stats}");
        assert!(plan.kernels.iter().any(|k| k.workgroups[1] > 1), "expected a folded grid");
        check(&mut ex, &desc, &opts, &mut rng, seed);
    }
}
