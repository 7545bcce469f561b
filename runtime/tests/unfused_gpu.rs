//! The unfused reference path on the GPU: every op's simple kernels, and the
//! reference graph of every example pattern, against the f64 interpreter.
//!
//! Tolerance: `max |gpu - ref| / max |ref| <= 1e-4` per output (f32 kernels
//! against f64; the largest reductions here sum 64 terms, worth ~1e-6).
//! Inputs are fresh random values, magnitudes in [0.1, 2) with random signs (so
//! never zero); integer leaves get valid ids below the vocabulary of the op
//! that reads them (a leaf called `targets` about a quarter -100, one called
//! `ignored` all -100). `WEFT_TEST_SEED=<seed>` replays a run.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use weft_compiler::{AttentionTiles, DeviceLimits};
use weft_compiler::{GraphPlanOptions, MatmulConfig, MatmulKernel, MatmulTable, plan_graph};
use weft_ir::autodiff::differentiate;
use weft_ir::expr::parse_mask;
use weft_ir::graph::{
    AttentionGrad, DType, Graph, HeadMask, HeadRange, NodeId, Op, RopeFreqs, RopeParams, TensorType, UnaryOp,
    ValidGraph,
};
use weft_ir::interp::{Tensor, run};
use weft_ir::lower::{LowerOptions, lower_pattern};
use weft_ir::{Mask, Overrides};
use weft_runtime::testing::{executor, expectations};
use weft_runtime::{Executor, HostValues};

/// Llama 3.1's RoPE frequencies, with an original context short enough
/// that a head of 8 columns reaches two of the bands.
const LLAMA3: RopeFreqs =
    RopeFreqs::Llama3 { factor: 4.0, low_freq_factor: 1.0, high_freq_factor: 2.0, original_context: 8.0 };

const TOLERANCE: f64 = 1e-4;

fn rng() -> StdRng {
    let seed = std::env::var("WEFT_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    eprintln!("seed {seed} (rerun with WEFT_TEST_SEED={seed})");
    StdRng::seed_from_u64(seed)
}

/// The device's own limits.
fn device_options(ex: &Executor) -> GraphPlanOptions {
    // The device's own choices, the matmul kernel and subgroups among them.
    ex.gpu().plan_options()
}

/// 512-byte bindings and 3 workgroups per dimension: small tensors take the
/// split-binding, chunked-scores and folded-grid paths.
fn tiny_options(ex: &Executor) -> GraphPlanOptions {
    let l = ex.gpu().limits();
    GraphPlanOptions {
        limits: DeviceLimits {
            max_storage_binding: 512,
            max_buffer_size: 8 << 20,
            max_workgroups_per_dimension: 3,
            ..l
        },
        alias_reshapes: true,
        share_scratch: true,
        in_place_loss_gradient: true,
        matmul: MatmulTable::default_for(&l),
        fuse_elementwise: true,
        attention_forward: AttentionTiles::default(),
        attention_backward: AttentionTiles::default(),
        leaf_storage: Default::default(),
    }
}

/// A graph applying `op` to inputs `x0`, `x1`, ... of the given shapes, output `y`.
fn op_graph(op: Op, shapes: &[&[usize]]) -> ValidGraph {
    let mut g = Graph::new(op.name());
    let xs: Vec<NodeId> = shapes
        .iter()
        .enumerate()
        .map(|(i, s)| g.input(&format!("x{i}"), TensorType::f32(s.to_vec())))
        .collect();
    let y = g.add(op, &xs).unwrap();
    g.set_output("y", y);
    g.validate().unwrap()
}

/// A graph applying `op` to leaves of the given names, dtypes and shapes
/// (integer ids and targets among them), output `y`.
fn leaf_graph(op: Op, leaves: &[(&str, DType, &[usize])]) -> ValidGraph {
    let mut g = Graph::new(op.name());
    let xs: Vec<NodeId> =
        leaves.iter().map(|&(name, dtype, shape)| g.input(name, TensorType::new(dtype, shape))).collect();
    let y = g.add(op, &xs).unwrap();
    g.set_output("y", y);
    g.validate().unwrap()
}

fn mask(src: &str) -> Mask {
    Mask::new(parse_mask(src).unwrap()).unwrap()
}

fn attention(src: &str, head_offset: usize) -> Op {
    Op::Attention { mask: mask(src), head_offset, scale: 0.3 }
}

fn masked_softmax(src: &str, head_offset: usize) -> Op {
    Op::MaskedSoftmax { mask: mask(src), head_offset, scale: 0.7 }
}

/// One small graph per op and per interesting variant (the same list as the
/// compiler's `simple_codegen` tests).
fn op_cases() -> Vec<(&'static str, ValidGraph)> {
    use DType::{F32, I32, I64};
    let bhnd: &[usize] = &[2, 4, 8, 6];
    let mm = |ta, tb| Op::MatMul { transpose_a: ta, transpose_b: tb };
    // Every unary op of the table, so a new one is tested without a new line here.
    let unary = UnaryOp::ALL.iter().map(|&op| (op.name(), op_graph(Op::Unary(op), &[&[4, 5]])));
    let mut cases = vec![
        ("add", op_graph(Op::Add, &[&[2, 3, 5], &[2, 3, 5]])),
        ("mul", op_graph(Op::Mul, &[&[7, 5], &[7, 5]])),
        ("scale", op_graph(Op::Scale { factor: -0.75 }, &[&[3, 5]])),
        ("rms-norm-grad", op_graph(Op::RmsNormGrad { eps: 1e-5 }, &[&[3, 10], &[10], &[3, 10]])),
        ("rms-norm-weight-grad", op_graph(Op::RmsNormWeightGrad { eps: 1e-5 }, &[&[2, 3, 10], &[2, 3, 10]])),
        // The transpose of a rotary embedding: it turns the other way.
        (
            "rope-inverse",
            op_graph(
                Op::Rope { theta: 10000.0, position_scale: -4.0, freqs: RopeFreqs::Default },
                &[&[1, 2, 9, 8]],
            ),
        ),
        ("reshape", op_graph(Op::Reshape { shape: vec![6, 4] }, &[&[2, 3, 4]])),
        ("permute", op_graph(Op::Permute { perm: vec![2, 0, 3, 1] }, &[&[2, 3, 4, 5]])),
        ("roll", op_graph(Op::Roll { axis: 2, shift: -3, heads: None }, &[bhnd])),
        ("roll-long-shift", op_graph(Op::Roll { axis: 0, shift: 11, heads: None }, &[&[5, 3]])),
        (
            "roll-heads",
            op_graph(Op::Roll { axis: 2, shift: 3, heads: Some(HeadRange::new(1, 2, 4)) }, &[bhnd]),
        ),
        (
            "roll-middle-heads",
            op_graph(Op::Roll { axis: 2, shift: -5, heads: Some(HeadRange::new(1, 1, 3)) }, &[bhnd]),
        ),
        ("slice", op_graph(Op::Slice { axis: 1, start: 1, end: 3 }, &[&[2, 4, 5]])),
        ("concat", op_graph(Op::Concat { axis: 1 }, &[&[2, 1, 3], &[2, 2, 3], &[2, 3, 3]])),
        ("softmax", op_graph(Op::Softmax { axis: 1 }, &[&[3, 7, 5]])),
        ("softmax-last", op_graph(Op::Softmax { axis: 1 }, &[&[6, 9]])),
        ("softmax-grad", op_graph(Op::SoftmaxGrad { axis: 1 }, &[&[3, 7, 5], &[3, 7, 5]])),
        ("masked-softmax", op_graph(masked_softmax("roll(3, causal & groups(4))", 0), &[&[2, 4, 8, 8]])),
        // Heads 1..5 of the mask: the first h queries of head h see no key.
        ("masked-softmax-empty-rows", op_graph(masked_softmax("causal & !window(h)", 1), &[&[2, 4, 8, 8]])),
        ("broadcast", op_graph(Op::Broadcast { axis: 1, size: 3 }, &[&[2, 5]])),
        ("broadcast-last", op_graph(Op::Broadcast { axis: 2, size: 4 }, &[&[3, 5]])),
        ("pad", op_graph(Op::Pad { axis: 1, before: 2, after: 1 }, &[&[2, 3, 4]])),
        ("pad-after", op_graph(Op::Pad { axis: 0, before: 0, after: 3 }, &[&[2, 5]])),
        ("reduce-sum", op_graph(Op::ReduceSum { axis: 0 }, &[&[5, 4, 3]])),
        ("reduce-max", op_graph(Op::ReduceMax { axis: 2 }, &[&[5, 4, 3]])),
        ("reduce-mean", op_graph(Op::ReduceMean { axis: 1 }, &[&[5, 4, 3]])),
        ("matmul", op_graph(mm(false, false), &[&[2, 5, 7], &[2, 7, 6]])),
        ("matmul-ta", op_graph(mm(true, false), &[&[3, 9], &[3, 4]])),
        ("matmul-tb", op_graph(mm(false, true), &[&[8, 16], &[12, 16]])),
        ("matmul-ta-tb", op_graph(mm(true, true), &[&[2, 3, 7, 5], &[2, 3, 6, 7]])),
        ("rms-norm", op_graph(Op::RmsNorm { eps: 1e-5 }, &[&[3, 10], &[10]])),
        (
            "rope",
            op_graph(
                Op::Rope { theta: 10000.0, position_scale: 4.0, freqs: RopeFreqs::Default },
                &[&[1, 2, 9, 8]],
            ),
        ),
        // Llama 3's bands: pair 0 blended, pairs 1..4 divided by the factor.
        (
            "rope-llama3",
            op_graph(Op::Rope { theta: 10000.0, position_scale: 1.0, freqs: LLAMA3 }, &[&[1, 2, 9, 8]]),
        ),
        (
            "fused-attention",
            op_graph(
                Op::FusedAttention {
                    heads: vec![
                        HeadMask::new(0..2, mask("causal & groups(4)")),
                        HeadMask::new(2..4, mask("roll(2, causal & groups(4)) & !window(h - 1)")),
                    ],
                    scale: 0.4,
                    rope: None,
                },
                &[&[2, 4, 16, 8], &[2, 4, 16, 8], &[2, 4, 16, 8]],
            ),
        ),
        (
            // The dk of one attention alone: dq and dv go to scratch.
            "fused-attention-grad",
            op_graph(
                Op::FusedAttentionGrad {
                    heads: vec![
                        HeadMask::new(0..1, mask("causal & sink(2)")),
                        HeadMask::new(1..4, mask("causal & window(h + 2)")),
                    ],
                    scale: 0.3,
                    grad: AttentionGrad::Dk,
                    rope: None,
                },
                &[&[2, 4, 16, 8], &[2, 4, 16, 8], &[2, 4, 16, 8], &[2, 4, 16, 8]],
            ),
        ),
        // RoPE on load: D = 8 rotates whole vec4 columns, D = 12 mixes their
        // components; 70 positions span two query and key blocks.
        ("fused-attention-rope", op_graph(fused_rope(None), &[&[2, 2, 70, 8][..]; 3])),
        ("fused-attention-rope-d12", op_graph(fused_rope(None), &[&[1, 2, 70, 12][..]; 3])),
        (
            "fused-attention-grad-rope-dq",
            op_graph(fused_rope(Some(AttentionGrad::Dq)), &[&[2, 2, 70, 8][..]; 4]),
        ),
        (
            "fused-attention-grad-rope-dk",
            op_graph(fused_rope(Some(AttentionGrad::Dk)), &[&[2, 2, 70, 8][..]; 4]),
        ),
        (
            "fused-attention-grad-rope-dv",
            op_graph(fused_rope(Some(AttentionGrad::Dv)), &[&[2, 2, 70, 8][..]; 4]),
        ),
        (
            "fused-attention-grad-rope-d12-dk",
            op_graph(fused_rope(Some(AttentionGrad::Dk)), &[&[1, 2, 70, 12][..]; 4]),
        ),
        ("attention-causal", op_graph(attention("causal", 0), &[bhnd, bhnd, bhnd])),
        (
            "attention-local-stride-h",
            op_graph(attention("causal & local_stride(2, 1, 3, h)", 1), &[bhnd, bhnd, bhnd]),
        ),
        ("attention-roll", op_graph(attention("roll(3, causal & groups(4))", 0), &[bhnd, bhnd, bhnd])),
        (
            "attention-groups-offset-dv",
            op_graph(attention("causal & groups(4, 2)", 0), &[bhnd, bhnd, &[2, 4, 8, 3]]),
        ),
        (
            "attention-sink-window-h",
            op_graph(
                attention("causal & (sink(h - 1) | window((h + 1) / 2 * 3 % 5 + 1))", 2),
                &[bhnd, bhnd, bhnd],
            ),
        ),
        (
            "attention-negative-floor",
            op_graph(attention("groups(3, h - 7) & roll(h - 9, causal)", 0), &[bhnd, bhnd, bhnd]),
        ),
        // Queries 0..3 see no key at all: their rows must come out as zeros.
        ("attention-empty-rows", op_graph(attention("!window(3) & causal", 0), &[bhnd, bhnd, bhnd])),
        // Integer leaves: ids and targets (`targets` about a quarter -100 on
        // the GPU, `ignored` all -100), i32 or narrowed from i64.
        ("embedding", leaf_graph(Op::Embedding, &[("ids", I32, &[2, 70]), ("table", F32, &[7, 3])])),
        ("embedding-i64", leaf_graph(Op::Embedding, &[("ids", I64, &[5]), ("table", F32, &[9, 3])])),
        (
            "embedding-grad",
            leaf_graph(Op::EmbeddingGrad { vocab: 7 }, &[("ids", I32, &[2, 70]), ("dy", F32, &[2, 70, 3])]),
        ),
        (
            "cross-entropy",
            leaf_graph(Op::CrossEntropy, &[("logits", F32, &[2, 20, 9]), ("targets", I32, &[2, 20])]),
        ),
        (
            "cross-entropy-i64",
            leaf_graph(Op::CrossEntropy, &[("logits", F32, &[5, 11]), ("targets", I64, &[5])]),
        ),
        (
            "cross-entropy-all-ignored",
            leaf_graph(Op::CrossEntropy, &[("logits", F32, &[4, 6]), ("ignored", I32, &[4])]),
        ),
        (
            "cross-entropy-grad",
            leaf_graph(
                Op::CrossEntropyGrad,
                &[("logits", F32, &[2, 20, 9]), ("targets", I32, &[2, 20]), ("dloss", F32, &[])],
            ),
        ),
        (
            "cross-entropy-grad-all-ignored",
            leaf_graph(
                Op::CrossEntropyGrad,
                &[("logits", F32, &[4, 6]), ("ignored", I32, &[4]), ("dloss", F32, &[])],
            ),
        ),
        ("rope-table", op_graph(Op::RopeTable, &[&[2, 3, 2, 8], &[2, 2, 2, 8]])),
        // 70 slots: two chunks, the second partial. Sinks and a window on
        // heads 0..2, per-head vertical blocks on 2..4; a roll reads the
        // length p + 1.
        (
            "cached-attention",
            cached_attention("causal & (sink(3) | window(20))", "causal & local_stride(4, 2, 3, h)"),
        ),
        ("cached-attention-roll", cached_attention("causal", "roll(3, causal & groups(8))")),
    ];
    cases.extend(unary);
    cases
}

/// A decoding step's attention: 4 query heads on 2 KV heads, 70 cache slots
/// (a quarter empty, some holding positions at or after the query's). Small
/// heads, so that with 512-byte bindings its kernels stay within 32 bindings.
fn cached_attention(first_half: &str, second_half: &str) -> ValidGraph {
    use DType::{F32, I32};
    let heads = vec![HeadMask::new(0..2, mask(first_half)), HeadMask::new(2..4, mask(second_half))];
    leaf_graph(
        Op::CachedAttention { heads, scale: 0.35 },
        &[
            ("q", F32, &[2, 4, 1, 4]),
            ("k_new", F32, &[2, 2, 1, 4]),
            ("v_new", F32, &[2, 2, 1, 3]),
            ("k_cache", F32, &[2, 2, 70, 4]),
            ("v_cache", F32, &[2, 2, 70, 3]),
            ("slots", I32, &[2, 2, 70]),
            ("positions", I32, &[2]),
        ],
    )
}

/// A fused attention (or one of its gradients) with RoPE on load: linear
/// position interpolation by 2, a causal head and a windowed one.
fn fused_rope(grad: Option<AttentionGrad>) -> Op {
    let heads = vec![HeadMask::new(0..1, mask("causal")), HeadMask::new(1..2, mask("causal & window(40)"))];
    let rope = Some(RopeParams::new(500.0, 2.0));
    match grad {
        None => Op::FusedAttention { heads, scale: 0.35, rope },
        Some(grad) => Op::FusedAttentionGrad { heads, scale: 0.35, grad, rope },
    }
}

/// A value in ±[0.1, 2): never zero; positive only for `log`'s operand.
fn value(rng: &mut StdRng, positive: bool) -> f32 {
    let magnitude = rng.random_range(0.1f32..2.0);
    if positive || rng.random_bool(0.5) { magnitude } else { -magnitude }
}

/// The number of valid ids of integer leaf `leaf`: the vocabulary of the
/// first op that reads it.
fn id_limit(graph: &ValidGraph, leaf: NodeId) -> usize {
    let reader = graph.node_ids().map(|id| graph.node(id)).find(|n| n.inputs.contains(&leaf)).unwrap();
    let shape = |i: usize| &graph.node(reader.inputs[i]).ty.shape;
    match reader.op {
        Op::Embedding => shape(1)[0],
        Op::EmbeddingGrad { vocab } => vocab,
        Op::CrossEntropy | Op::CrossEntropyGrad => *shape(0).last().unwrap(),
        // Positions, in and past the cache's slots.
        Op::CachedAttention { .. } => shape(3)[2] + 10,
        ref op => panic!("integer leaf read by {op}"),
    }
}

/// Random inputs for every leaf of `graph`, typed for the GPU (f32, and i32 or
/// i64 ids) and the same values as f64 tensors for the interpreter.
fn inputs(graph: &ValidGraph, rng: &mut StdRng) -> (HashMap<String, HostValues>, HashMap<String, Tensor>) {
    let positive = graph.node_ids().any(|id| matches!(graph.node(id).op, Op::Unary(UnaryOp::Log)));
    let mut gpu = HashMap::new();
    let mut reference = HashMap::new();
    for (id, name) in graph.leaves() {
        let ty = &graph.node(id).ty;
        let count = ty.shape.iter().product();
        let (values, f64s): (HostValues, Vec<f64>) = if ty.dtype == DType::F32 {
            let data: Vec<f32> = (0..count).map(|_| value(rng, positive)).collect();
            let f64s = data.iter().map(|&v| f64::from(v)).collect();
            (HostValues::F32(data), f64s)
        } else {
            let limit = id_limit(graph, id) as i64;
            let ignored = match name {
                "targets" | "slots" => 0.25,
                "ignored" => 1.0,
                _ => 0.0,
            };
            let data: Vec<i64> = (0..count)
                .map(|_| if rng.random_bool(ignored) { -100 } else { rng.random_range(0..limit) })
                .collect();
            let f64s = data.iter().map(|&v| v as f64).collect();
            match ty.dtype {
                DType::I64 => (HostValues::I64(data), f64s),
                _ => (HostValues::I32(data.iter().map(|&v| v as i32).collect()), f64s),
            }
        };
        gpu.insert(name.to_string(), values);
        reference.insert(name.to_string(), Tensor::new(ty.shape.clone(), f64s).unwrap());
    }
    (gpu, reference)
}

/// Plans `graph` with `opts`, runs it on the GPU and in the interpreter, and
/// returns the worst relative error over its outputs.
fn gpu_error(
    ex: &mut Executor,
    label: &str,
    graph: &ValidGraph,
    opts: &GraphPlanOptions,
    rng: &mut StdRng,
) -> f64 {
    let plan = plan_graph(graph, opts).unwrap_or_else(|e| panic!("{label}: {e}"));
    let (gpu_inputs, ref_inputs) = inputs(graph, rng);
    let got = ex.run(&plan, &gpu_inputs).unwrap_or_else(|e| panic!("{label}: {e}"));
    let want = run(graph, &ref_inputs).unwrap_or_else(|e| panic!("{label}: {e}"));
    let mut worst = 0.0f64;
    for (name, expected) in &want {
        let data = got.get(name).unwrap_or_else(|| panic!("{label}: output `{name}` missing"));
        let actual =
            Tensor::new(expected.shape().to_vec(), data.iter().map(|&v| f64::from(v)).collect()).unwrap();
        worst = worst.max(actual.max_rel_error(expected));
    }
    worst
}

fn check_all(ex: &mut Executor, cases: &[(String, ValidGraph)], opts: &GraphPlanOptions, rng: &mut StdRng) {
    let mut failures = Vec::new();
    for (label, graph) in cases {
        let err = gpu_error(ex, label, graph, opts, rng);
        eprintln!("{label}: max relative error {err:.2e}");
        if err.is_nan() || err > TOLERANCE {
            failures.push(format!("{label}: {err:.3e}"));
        }
    }
    assert!(failures.is_empty(), "relative error above {TOLERANCE:e}:\n{}", failures.join("\n"));
}

fn named(cases: Vec<(&'static str, ValidGraph)>) -> Vec<(String, ValidGraph)> {
    cases.into_iter().map(|(n, g)| (n.to_string(), g)).collect()
}

#[test]
fn every_op_matches_the_interpreter_on_the_gpu() {
    let mut rng = rng();
    let Some(mut ex) = executor() else { return };
    let opts = device_options(&ex);
    check_all(&mut ex, &named(op_cases()), &opts, &mut rng);
    // A reshape that copies rather than aliases.
    let copy = GraphPlanOptions { alias_reshapes: false, ..opts };
    let reshape: Vec<_> = named(op_cases()).into_iter().filter(|(n, _)| n == "reshape").collect();
    check_all(&mut ex, &reshape, &copy, &mut rng);
}

/// Batched matmuls of every transpose combination on sizes that leave edge
/// tiles: odd (scalar loads) and multiples of 4 but not 8 (vec4 loads along
/// whichever axis is contiguous), and mixtures.
fn matmul_cases() -> Vec<(String, ValidGraph)> {
    let mut cases = Vec::new();
    // (40, 136, 12): several column tiles of 64 and row tiles of 32, a partial one of each.
    for (m, n, k) in [(37, 29, 53), (36, 28, 52), (37, 28, 52), (36, 29, 53), (3, 5, 2), (40, 136, 12)] {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            cases
                .push((format!("matmul m{m} n{n} k{k} ta={ta} tb={tb}"), matmul_graph(&[(ta, tb, m, n, k)])));
        }
    }
    cases
}

/// One graph of batched (B = 2) matmuls `y<i> = x<i> · w<i>`, each `(ta, tb, m, n, k)`.
fn matmul_graph(products: &[(bool, bool, usize, usize, usize)]) -> ValidGraph {
    let mut g = Graph::new("matmuls");
    for (i, &(ta, tb, m, n, k)) in products.iter().enumerate() {
        let a = if ta { [2, k, m] } else { [2, m, k] };
        let b = if tb { [2, n, k] } else { [2, k, n] };
        let x = g.input(&format!("x{i}"), TensorType::f32(a.to_vec()));
        let w = g.input(&format!("w{i}"), TensorType::f32(b.to_vec()));
        let y = g.add(Op::MatMul { transpose_a: ta, transpose_b: tb }, &[x, w]).unwrap();
        g.set_output(&format!("y{i}"), y);
    }
    g.validate().unwrap()
}

/// For one candidate configuration, one graph of four matmuls, one per
/// transpose combination, so that each of its kernels' load paths runs once
/// (one plan, four kernels, one run). The register kernel reads an operand as
/// `vec4` along its contiguous axis when that axis is a multiple of 4, so the
/// sizes alternate: across the four, each of A, Aᵀ, B and Bᵀ is read both as
/// scalars and as `vec4`. The subgroup kernel needs K, and the contiguous
/// axis of A and B, to be multiples of 4 (else the default register kernel
/// runs instead), so its sizes are odd only where that allows. `n` (even) and
/// `n + 1` span several column tiles of a candidate, with a partial one; M =
/// 36/37 leaves partial row tiles; K = 21 has a remainder after steps of 4.
/// Sizes are baked into the kernels, and lavapipe compiles them unrolled:
/// small K keeps compiling cheap.
fn matmul_candidate_graph(kernel: MatmulKernel, n: usize) -> ValidGraph {
    match kernel {
        MatmulKernel::Registers => matmul_graph(&[
            (false, false, 37, n + 1, 20), // A vec4 along k, B scalar
            (false, true, 37, n, 21),      // A scalar, Bᵀ scalar
            (true, false, 36, n, 21),      // Aᵀ vec4 along the tile (rows % 4 == 0), B vec4
            (true, true, 37, n + 1, 20),   // Aᵀ scalar, Bᵀ vec4 along k
        ]),
        MatmulKernel::Subgroup => matmul_graph(&[
            (false, false, 37, n, 20),
            (false, true, 37, n + 1, 20),
            (true, false, 36, n, 20),
            (true, true, 36, n + 1, 20),
        ]),
    }
}

/// The configurations a test runs: every one `weft tune` may choose, and two
/// odd ones (3 rows: the subgroup kernel then cannot read Aᵀ as `vec4`).
fn matmul_configs(ex: &Executor) -> Vec<MatmulConfig> {
    let limits = ex.gpu().limits();
    // Where the adapter is known to have 8-wide subgroups, they must be there:
    // otherwise the subgroup kernels would silently go untested.
    expectations::check_subgroups(&ex.gpu().identity(), &limits).unwrap_or_else(|e| panic!("{e}"));
    let subgroups = limits.subgroup_min_size.is_some_and(|size| size >= 8);
    let mut configs = MatmulConfig::candidates(subgroups);
    configs.push(MatmulConfig { kernel: MatmulKernel::Registers, rows: 3, cols: 12, workgroup: 32 });
    if subgroups {
        configs.push(MatmulConfig { kernel: MatmulKernel::Subgroup, rows: 3, cols: 96, workgroup: 16 });
    }
    let defaults = [MatmulConfig::default(), MatmulConfig::default_for(&limits)];
    assert!(defaults.iter().all(|d| configs.contains(d)), "{defaults:?} among {configs:?}");
    configs
}

/// Every configuration on one graph of four matmuls ([`matmul_candidate_graph`]):
/// one plan, four kernels and one run each. The kernels are checked to be the
/// configuration's own (each load path of the register kernel among them),
/// or the default register kernel where the subgroup kernel cannot run.
#[test]
fn every_matmul_candidate_config_matches_the_interpreter() {
    let mut rng = rng();
    let Some(mut ex) = executor() else { return };
    for matmul in matmul_configs(&ex) {
        let opts = GraphPlanOptions { matmul: MatmulTable::uniform(matmul), ..device_options(&ex) };
        // N = 136/137: several column tiles of every candidate (up to 128 wide).
        let graph = matmul_candidate_graph(matmul.kernel, 136);
        let plan = plan_graph(&graph, &opts).unwrap();
        let titles: Vec<&str> = plan.kernels.iter().map(|k| k.wgsl.lines().next().unwrap_or("")).collect();
        assert_eq!(titles.len(), 4, "{titles:?}");
        for title in &titles {
            let fallback = matmul.kernel == MatmulKernel::Subgroup
                && title.contains("transpose_a")
                && matmul.rows % 4 != 0;
            let runs = if fallback { MatmulConfig::default() } else { matmul };
            assert!(title.contains(&format!(" {runs}")), "{matmul}: {titles:?}");
        }
        if matmul.kernel == MatmulKernel::Registers && matmul.rows % 4 == 0 {
            let loads = titles.join("\n");
            for path in [
                "a vec4 along k",
                "a scalar",
                "a vec4 along the tile",
                "b scalar",
                "b vec4 along the tile",
                "b vec4 along k",
            ] {
                assert!(loads.contains(path), "{matmul}: no `{path}` load in {titles:?}");
            }
        }
        check_all(&mut ex, &[(format!("config {matmul}: four matmuls"), graph)], &opts, &mut rng);
    }
}

/// The subgroup kernel walks its tiles in bands of 8 rows of tiles. With
/// 32-row tiles (4 rows per thread, 8 threads), M = 348 makes 11 rows of
/// tiles: a full band, then a band of 3 whose last tile is partial; N = 36
/// makes two columns of tiles, one partial; and each of the 2 batch entries
/// starts its bands afresh. Every transpose combination, as each has its own
/// load path.
#[test]
fn subgroup_matmul_tile_bands_cover_every_output() {
    let mut rng = rng();
    let Some(mut ex) = executor() else { return };
    let limits = ex.gpu().limits();
    expectations::check_subgroups(&ex.gpu().identity(), &limits).unwrap_or_else(|e| panic!("{e}"));
    if !limits.shares_subgroups() {
        return;
    }
    let matmul = MatmulConfig { kernel: MatmulKernel::Subgroup, rows: 4, cols: 32, workgroup: 8 };
    let opts = GraphPlanOptions { matmul: MatmulTable::uniform(matmul), ..device_options(&ex) };
    let graph = matmul_graph(&[
        (false, false, 348, 36, 8),
        (false, true, 348, 36, 8),
        (true, false, 348, 36, 8),
        (true, true, 348, 36, 8),
    ]);
    let plan = plan_graph(&graph, &opts).unwrap();
    for kernel in &plan.kernels {
        let title = kernel.wgsl.lines().next().unwrap_or("");
        assert!(title.contains(" sg4x32/wg8"), "{title}");
    }
    check_all(&mut ex, &[("tile bands, four matmuls".to_string(), graph)], &opts, &mut rng);
}

/// The configurations that run untuned (the GPU default, and the device's
/// own) on every shape of [`matmul_cases`]; then operands split across 4 KiB
/// bindings, read as `vec4` through the split accessors, on a folded grid: 7
/// workgroups per dimension leave surplus workgroups that redo the last.
#[test]
fn default_matmul_configs_match_on_every_shape_and_with_split_bindings() {
    let mut rng = rng();
    let Some(mut ex) = executor() else { return };
    let limits = ex.gpu().limits();
    let cases = matmul_cases();
    // The GPU default on every class, then the device's own table (a shape
    // per class on CPU adapters).
    for table in [MatmulTable::uniform(MatmulConfig::default()), MatmulTable::default_for(&limits)] {
        eprintln!("matmul table {table:?}, every shape");
        let opts = GraphPlanOptions { matmul: table, ..device_options(&ex) };
        check_all(&mut ex, &cases, &opts, &mut rng);
    }
    // Small tiles: every store of a tile goes through the split accessor, and
    // big kernels take minutes to compile. The four-matmul graph covers each
    // kernel's load paths.
    let tiny = tiny_options(&ex);
    let limits = DeviceLimits { max_storage_binding: 4096, max_workgroups_per_dimension: 7, ..tiny.limits };
    let split = GraphPlanOptions { limits, ..tiny };
    let mut small = vec![MatmulConfig::default()];
    if limits.subgroup_min_size.is_some_and(|size| size >= 8) {
        small.push(MatmulConfig { kernel: MatmulKernel::Subgroup, rows: 2, cols: 32, workgroup: 8 });
    }
    for matmul in small {
        let opts = GraphPlanOptions { matmul: MatmulTable::uniform(matmul), ..split.clone() };
        // N = 28/29: operands of a few KiB cross binding boundaries; split
        // accessors on wide operands take long to compile.
        let graph = matmul_candidate_graph(matmul.kernel, 28);
        let cases = [(format!("split bindings, config {matmul}: four matmuls"), graph)];
        check_all(&mut ex, &cases, &opts, &mut rng);
    }
}

#[test]
fn every_op_matches_with_split_bindings_and_folded_grids() {
    let mut rng = rng();
    let Some(mut ex) = executor() else { return };
    let opts = tiny_options(&ex);
    // Fused attention chunks by (batch, head) pairs and never splits one; a
    // 512-byte binding holds none. Its chunked plans are tested in `attention_gpu.rs`.
    let cases: Vec<_> =
        named(op_cases()).into_iter().filter(|(n, _)| !n.starts_with("fused-attention")).collect();
    check_all(&mut ex, &cases, &opts, &mut rng);
}

#[test]
fn attention_with_a_reused_score_scratch_matches() {
    let mut rng = rng();
    let Some(mut ex) = executor() else { return };
    // 64 score rows of 32 bytes in 512-byte chunks; the scratch holds three.
    let tiny = tiny_options(&ex);
    let opts = GraphPlanOptions { limits: DeviceLimits { max_buffer_size: 1536, ..tiny.limits }, ..tiny };
    let cases: Vec<_> = named(op_cases()).into_iter().filter(|(n, _)| n.starts_with("attention")).collect();
    let plan = plan_graph(&cases[0].1, &opts).unwrap();
    assert!(plan.buffers.values().any(|b| b.name.ends_with("_scores") && b.bytes == 1536));
    check_all(&mut ex, &cases, &opts, &mut rng);
}

fn example_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/patterns");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn example_reference_graphs_match_the_interpreter_on_the_gpu() {
    let mut rng = rng();
    let Some(mut ex) = executor() else { return };
    let opts = device_options(&ex);
    let overrides = Overrides { seq_len: Some(64), n_heads: Some(4), ..Overrides::default() };
    let mut cases = Vec::new();
    for file in example_files() {
        let schedule = weft_ir::spec::load_schedule(&file, &overrides).unwrap();
        let stem = file.file_stem().unwrap().to_string_lossy().to_string();
        for pattern in &schedule.patterns {
            for batch in [1, 2] {
                let graph = lower_pattern(pattern, &LowerOptions::new(batch, 64, 16)).unwrap();
                cases.push((format!("{stem}:{} B={batch}", pattern.name), graph));
            }
        }
    }
    assert!(cases.len() >= 12, "every example at B = 1 and 2, found {}", cases.len());
    check_all(&mut ex, &cases, &opts, &mut rng);
}

/// The backward pass autodiff appends to each example's reference graph runs
/// op by op on the GPU and agrees with the interpreter on `o`, `dq`, `dk`, `dv`.
#[test]
fn example_backward_graphs_match_the_interpreter_on_the_gpu() {
    let mut rng = rng();
    let Some(mut ex) = executor() else { return };
    let opts = device_options(&ex);
    let overrides = Overrides { seq_len: Some(32), n_heads: Some(4), ..Overrides::default() };
    let mut cases = Vec::new();
    for file in example_files() {
        let schedule = weft_ir::spec::load_schedule(&file, &overrides).unwrap();
        let stem = file.file_stem().unwrap().to_string_lossy().to_string();
        for pattern in &schedule.patterns {
            let forward = lower_pattern(pattern, &LowerOptions::new(2, 32, 8)).unwrap();
            let grads = differentiate(&forward, &["q", "k", "v"]).unwrap();
            let outputs: Vec<&str> = grads.graph.outputs().iter().map(|(n, _)| n.as_str()).collect();
            assert_eq!(outputs, ["o", "dq", "dk", "dv"]);
            cases.push((format!("{stem}:{} backward", pattern.name), grads.graph));
        }
    }
    check_all(&mut ex, &cases, &opts, &mut rng);
}

/// A tiny language model: i64 ids through a trainable embedding, a reshape, a
/// projection by a trainable lm head (`[V, C]`, transposed), a reshape back to
/// `[B, N, V]` and the mean cross-entropy against targets with ignored rows.
fn lm_graph() -> ValidGraph {
    let (b, n, c, v) = (2, 16, 8, 37);
    let mut g = Graph::new("lm");
    let ids = g.input("ids", TensorType::new(DType::I64, [b, n]));
    let targets = g.input("targets", TensorType::new(DType::I32, [b, n]));
    let embed = g.parameter("embed", TensorType::f32([v, c]), true);
    let head = g.parameter("lm_head", TensorType::f32([v, c]), true);
    let x = g.add(Op::Embedding, &[ids, embed]).unwrap();
    let rows = g.reshape(x, &[b * n, c]).unwrap();
    let logits = g.matmul(rows, head, false, true).unwrap();
    let logits = g.reshape(logits, &[b, n, v]).unwrap();
    let loss = g.add(Op::CrossEntropy, &[logits, targets]).unwrap();
    g.set_output("loss", loss);
    g.validate().unwrap()
}

/// The loss and the gradients of both parameters, op by op on the GPU.
#[test]
fn a_tiny_language_model_and_its_backward_match_the_interpreter_on_the_gpu() {
    let mut rng = rng();
    let Some(mut ex) = executor() else { return };
    let forward = lm_graph();
    let grads = differentiate(&forward, &["embed", "lm_head"]).unwrap();
    let outputs: Vec<&str> = grads.graph.outputs().iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(outputs, ["loss", "dembed", "dlm_head"]);
    let ops: Vec<&str> = grads.graph.node_ids().map(|id| grads.graph.node(id).op.name()).collect();
    assert!(ops.contains(&"embedding-grad") && ops.contains(&"cross-entropy-grad"), "{ops:?}");
    let cases = vec![("lm forward".to_string(), forward), ("lm backward".to_string(), grads.graph)];
    let opts = device_options(&ex);
    check_all(&mut ex, &cases, &opts, &mut rng);
    let opts = tiny_options(&ex);
    check_all(&mut ex, &cases, &opts, &mut rng);
}

fn t(values: &[f32]) -> HostValues {
    HostValues::F32(values.to_vec())
}

/// Ids and targets outside the table cannot be reported by a kernel: they
/// read nothing out of bounds and give NaN (the lookup's row, the loss, the
/// gradient's row); the embedding gradient drops them.
#[test]
fn ids_outside_the_table_give_nan_not_a_crash() {
    use DType::I32;
    let Some(mut ex) = executor() else { return };
    let run = |ex: &mut Executor, graph: &ValidGraph, inputs: Vec<(&str, HostValues)>| {
        let plan = plan_graph(graph, &device_options(ex)).unwrap();
        let inputs = inputs.into_iter().map(|(n, v)| (n.to_string(), v)).collect();
        ex.run(&plan, &inputs).unwrap().remove("y").unwrap()
    };

    let graph = leaf_graph(Op::Embedding, &[("ids", I32, &[4]), ("table", DType::F32, &[3, 2])]);
    let table = t(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let y = run(&mut ex, &graph, vec![("ids", HostValues::I32(vec![2, 3, -1, 0])), ("table", table)]);
    assert_eq!(y[..2], [5.0, 6.0]);
    assert!(y[2..6].iter().all(|v| v.is_nan()), "{y:?}");
    assert_eq!(y[6..], [1.0, 2.0]);

    let graph =
        leaf_graph(Op::EmbeddingGrad { vocab: 2 }, &[("ids", I32, &[3]), ("dy", DType::F32, &[3, 1])]);
    let y =
        run(&mut ex, &graph, vec![("ids", HostValues::I32(vec![1, 7, 1])), ("dy", t(&[1.0, 10.0, 100.0]))]);
    assert_eq!(y, [0.0, 101.0]);

    let graph = leaf_graph(Op::CrossEntropy, &[("logits", DType::F32, &[2, 3]), ("targets", I32, &[2])]);
    let logits = t(&[0.5, -1.0, 2.0, 1.0, 1.0, 1.0]);
    let y = run(&mut ex, &graph, vec![("logits", logits.clone()), ("targets", HostValues::I32(vec![1, 3]))]);
    assert!(y[0].is_nan(), "{y:?}");
    // An ignored row next to a valid one: the mean is over the valid row only.
    let y =
        run(&mut ex, &graph, vec![("logits", logits.clone()), ("targets", HostValues::I32(vec![-100, 1]))]);
    assert!((y[0] - 3f32.ln()).abs() < 1e-6, "{y:?}");

    let graph = leaf_graph(
        Op::CrossEntropyGrad,
        &[("logits", DType::F32, &[2, 3]), ("targets", I32, &[2]), ("dloss", DType::F32, &[])],
    );
    let inputs = vec![("logits", logits), ("targets", HostValues::I32(vec![0, 5])), ("dloss", t(&[1.0]))];
    let y = run(&mut ex, &graph, inputs);
    assert!(y[..3].iter().all(|v| v.is_finite()) && y[3..].iter().all(|v| v.is_nan()), "{y:?}");
}

/// Elementwise chains the simple planner fuses into one kernel: SwiGLU with a
/// LoRA-style sum and a residual add (`h + (y + 2·xab) + silu(gate)·up`, with
/// `exp` and `log` on a side branch), and its autodiff backward (the silu and
/// sigmoid gradient chains, gradient sums). Same tolerance as every op; inputs
/// in ±[0.1, 2), never zero, positive where `log` reads them.
fn fused_chain_graph() -> ValidGraph {
    let shape = vec![5, 70];
    let mut g = Graph::new("chains");
    let [h, y, xab, gate, up] =
        ["h", "y", "xab", "gate", "up"].map(|n| g.input(n, TensorType::f32(shape.clone())));
    let lora = g.scale(xab, 2.0).unwrap();
    let proj = g.elementwise_add(y, lora).unwrap();
    let resid = g.elementwise_add(h, proj).unwrap();
    let act = g.silu(gate).unwrap();
    let act = g.elementwise_mul(act, up).unwrap();
    let sig = g.add(Op::Unary(UnaryOp::Sigmoid), &[act]).unwrap();
    let side = g.exp(sig).unwrap();
    let side = g.log(side).unwrap();
    let out = g.elementwise_add(resid, act).unwrap();
    let out = g.elementwise_mul(out, side).unwrap();
    g.set_output("out", out);
    g.set_output("act", act);
    g.validate().unwrap()
}

#[test]
fn fused_elementwise_chains_match_the_interpreter_on_the_gpu() {
    let mut rng = rng();
    let Some(mut ex) = executor() else { return };
    let forward = fused_chain_graph();
    let grads = differentiate(&forward, &["h", "y", "xab", "gate", "up"]).unwrap();
    let opts = device_options(&ex);
    for graph in [&forward, &grads.graph] {
        let fused = plan_graph(graph, &opts).unwrap();
        let apart = plan_graph(graph, &GraphPlanOptions { fuse_elementwise: false, ..opts.clone() }).unwrap();
        assert!(fused.kernels.len() < apart.kernels.len(), "{} kernels fused", fused.kernels.len());
        assert!(fused.kernels.iter().any(|k| k.wgsl.contains(": fused: ")));
    }
    assert_eq!(plan_graph(&forward, &opts).unwrap().kernels.len(), 1, "the whole forward is one kernel");
    let cases = vec![("chains forward".to_string(), forward), ("chains backward".to_string(), grads.graph)];
    check_all(&mut ex, &cases, &opts, &mut rng);
    // Split bindings and folded grids under fusion, and fusion's binding limit.
    let opts = tiny_options(&ex);
    check_all(&mut ex, &cases, &opts, &mut rng);
}
