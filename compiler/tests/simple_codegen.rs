//! The simple (unfused) code generator: every op's kernels validate with naga
//! and spirv-val, golden WGSL for a few ops and for the S2-Attn reference plan,
//! and the plan's buffers, aliasing, splitting and errors.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use expect_test::expect_file;
use weft_compiler::mask::mask_functions;
use weft_compiler::{Access, BufferRole, ElemType, KernelPlan, to_spirv, validate_wgsl};
use weft_compiler::{CodegenError, DeviceLimits, GraphPlanOptions, plan_graph, render_plan};
use weft_compiler::{MatmulClass, MatmulConfig, MatmulKernel, MatmulTable};
use weft_ir::autodiff::{differentiate, trainable_parameters};
use weft_ir::expr::parse_mask;
use weft_ir::graph::{
    AttentionGrad, DType, Graph, HeadMask, HeadRange, NodeId, Op, RopeFreqs, RopeParams, TensorType, UnaryOp,
    ValidGraph,
};
use weft_ir::lower::{LowerOptions, lower_pattern};
use weft_ir::model::{ModelGraphOptions, build_llama_graph};
use weft_ir::{Mask, Overrides};

#[path = "../../ir/tests/support/llama.rs"]
mod llama;

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

/// One small graph per op and per interesting variant (the GPU tests in
/// `runtime/tests/unfused_gpu.rs` run the same list).
fn op_cases() -> Vec<(&'static str, ValidGraph)> {
    use DType::{F32, I32, I64};
    let bhnd: &[usize] = &[2, 4, 8, 6];
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
        (
            "matmul",
            op_graph(Op::MatMul { transpose_a: false, transpose_b: false }, &[&[2, 5, 7], &[2, 7, 6]]),
        ),
        ("matmul-ta", op_graph(Op::MatMul { transpose_a: true, transpose_b: false }, &[&[3, 9], &[3, 4]])),
        ("matmul-tb", op_graph(Op::MatMul { transpose_a: false, transpose_b: true }, &[&[8, 16], &[12, 16]])),
        (
            "matmul-ta-tb",
            op_graph(Op::MatMul { transpose_a: true, transpose_b: true }, &[&[2, 3, 7, 5], &[2, 3, 6, 7]]),
        ),
        ("rms-norm", op_graph(Op::RmsNorm { eps: 1e-5 }, &[&[3, 10], &[10]])),
        (
            "rope",
            op_graph(
                Op::Rope { theta: 10000.0, position_scale: 4.0, freqs: RopeFreqs::Default },
                &[&[1, 2, 9, 8]],
            ),
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
        (
            // RoPE on load, whole vec4 partners (D = 8) and mixed components (D = 12).
            "fused-attention-rope",
            op_graph(
                Op::FusedAttention {
                    heads: vec![HeadMask::new(0..2, mask("causal"))],
                    scale: 0.4,
                    rope: Some(RopeParams::new(10000.0, 2.0)),
                },
                &[&[1, 2, 16, 12], &[1, 2, 16, 12], &[1, 2, 16, 12]],
            ),
        ),
        (
            "fused-attention-grad-rope",
            op_graph(
                Op::FusedAttentionGrad {
                    heads: vec![HeadMask::new(0..2, mask("causal & window(5)"))],
                    scale: 0.3,
                    grad: AttentionGrad::Dq,
                    rope: Some(RopeParams::new(10000.0, 1.0)),
                },
                &[&[1, 2, 16, 8], &[1, 2, 16, 8], &[1, 2, 16, 8], &[1, 2, 16, 8]],
            ),
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
        // Decoding: RoPE by table rows, and one query per row against a cache
        // of 70 slots (two chunks), 4 query heads on 2 KV heads.
        ("rope-table", op_graph(Op::RopeTable, &[&[2, 3, 2, 8], &[2, 2, 2, 8]])),
        (
            "cached-attention",
            leaf_graph(
                Op::CachedAttention {
                    heads: vec![
                        HeadMask::new(0..2, mask("causal & (sink(3) | window(20))")),
                        HeadMask::new(2..4, mask("roll(3, causal & groups(8))")),
                    ],
                    scale: 0.35,
                },
                &[
                    ("q", F32, &[2, 4, 1, 8]),
                    ("k_new", F32, &[2, 2, 1, 8]),
                    ("v_new", F32, &[2, 2, 1, 6]),
                    ("k_cache", F32, &[2, 2, 70, 8]),
                    ("v_cache", F32, &[2, 2, 70, 6]),
                    ("slots", I32, &[2, 2, 70]),
                    ("positions", I32, &[2]),
                ],
            ),
        ),
    ];
    cases.extend(unary);
    cases
}

fn no_alias() -> GraphPlanOptions {
    GraphPlanOptions { alias_reshapes: false, ..GraphPlanOptions::default() }
}

fn plan_case(name: &str, graph: &ValidGraph) -> KernelPlan {
    let opts = if name == "reshape" { no_alias() } else { GraphPlanOptions::default() };
    plan_graph(graph, &opts).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn example_schedule(file: &str, n: usize, h: usize) -> weft_ir::Schedule {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/patterns").join(file);
    let overrides = Overrides { seq_len: Some(n), n_heads: Some(h), ..Overrides::default() };
    weft_ir::spec::load_schedule(&path, &overrides).unwrap()
}

/// The reference graph of every pattern of every example, at N=64, H=4, D=16.
fn example_graphs(batch: usize) -> Vec<(String, ValidGraph)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/patterns");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        let schedule = example_schedule(&name, 64, 4);
        for pattern in &schedule.patterns {
            let graph = lower_pattern(pattern, &LowerOptions::new(batch, 64, 16)).unwrap();
            out.push((format!("{name}:{}", pattern.name), graph));
        }
    }
    assert!(out.len() >= 6, "expected every example pattern, found {}", out.len());
    out
}

#[test]
fn every_op_kernel_validates_with_naga() {
    for (name, graph) in op_cases() {
        let plan = plan_case(name, &graph);
        assert!(!plan.kernels.is_empty(), "{name}: no kernels");
        for k in &plan.kernels {
            validate_wgsl(&k.name, &k.wgsl).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(k.entry_point, "main");
            assert!(k.workgroups.iter().all(|&w| (1..=65_535).contains(&w)), "{name}: {:?}", k.workgroups);
        }
    }
}

/// Runs spirv-val on every module of `plan`.
fn spirv_val(label: &str, plan: &KernelPlan, dir: &Path) {
    for k in &plan.kernels {
        let words = to_spirv(&k.name, &k.wgsl).unwrap_or_else(|e| panic!("{label}: {e}"));
        let path = dir.join(format!("{}.spv", k.name));
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        std::fs::write(&path, bytes).unwrap();
        let out = Command::new("/usr/bin/spirv-val")
            .arg("--target-env")
            .arg("vulkan1.1")
            .arg(&path)
            .output()
            .unwrap_or_else(|e| panic!("cannot run /usr/bin/spirv-val (Debian package spirv-tools): {e}"));
        assert!(
            out.status.success(),
            "{label}: spirv-val rejects kernel {}:\n{}{}\n{}",
            k.name,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            k.wgsl
        );
    }
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("weft-spirv-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn spirv_of_every_op_module_passes_spirv_val() {
    let dir = temp_dir("ops");
    for (name, graph) in op_cases() {
        spirv_val(name, &plan_case(name, &graph), &dir);
    }
    // Split bindings and folded grids too.
    let (_, graph) = op_cases().into_iter().find(|(n, _)| *n == "attention-roll").unwrap();
    spirv_val("split", &plan_graph(&graph, &tiny_bindings()).unwrap(), &dir);
    // Split i32 bindings (ids of 560 bytes) and f32 ones beside them.
    for name in ["embedding", "embedding-grad", "cross-entropy", "cross-entropy-grad"] {
        let (_, graph) = op_cases().into_iter().find(|(n, _)| *n == name).unwrap();
        spirv_val(name, &plan_graph(&graph, &tiny_bindings()).unwrap(), &dir);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn spirv_of_every_example_plan_passes_spirv_val() {
    let dir = temp_dir("examples");
    for (name, graph) in example_graphs(2) {
        let plan = plan_graph(&graph, &GraphPlanOptions::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        spirv_val(&name, &plan, &dir);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn golden_wgsl_of_single_ops() {
    let cases = op_cases();
    let wgsl = |name: &str| {
        let (_, graph) = cases.iter().find(|(n, _)| *n == name).unwrap();
        let plan = plan_case(name, graph);
        plan.kernels.iter().map(|k| k.wgsl.as_str()).collect::<Vec<_>>().join("\n")
    };
    expect_file!["../../tests/golden/wgsl-simple/add.wgsl"].assert_eq(&wgsl("add"));
    expect_file!["../../tests/golden/wgsl-simple/permute.wgsl"].assert_eq(&wgsl("permute"));
    expect_file!["../../tests/golden/wgsl-simple/roll-heads.wgsl"].assert_eq(&wgsl("roll-heads"));
    expect_file!["../../tests/golden/wgsl-simple/softmax.wgsl"].assert_eq(&wgsl("softmax"));
    expect_file!["../../tests/golden/wgsl-simple/matmul-ta-tb.wgsl"].assert_eq(&wgsl("matmul-ta-tb"));
    expect_file!["../../tests/golden/wgsl-simple/rope.wgsl"].assert_eq(&wgsl("rope"));
    expect_file!["../../tests/golden/wgsl-simple/fused-attention-grad-rope.wgsl"]
        .assert_eq(&wgsl("fused-attention-grad-rope"));
    expect_file!["../../tests/golden/wgsl-simple/attention-local-stride-h.wgsl"]
        .assert_eq(&wgsl("attention-local-stride-h"));
    expect_file!["../../tests/golden/wgsl-simple/embedding.wgsl"].assert_eq(&wgsl("embedding"));
    expect_file!["../../tests/golden/wgsl-simple/embedding-grad.wgsl"].assert_eq(&wgsl("embedding-grad"));
    expect_file!["../../tests/golden/wgsl-simple/cross-entropy.wgsl"].assert_eq(&wgsl("cross-entropy"));
    expect_file!["../../tests/golden/wgsl-simple/cross-entropy-grad.wgsl"]
        .assert_eq(&wgsl("cross-entropy-grad"));
    expect_file!["../../tests/golden/wgsl-simple/cached-attention.wgsl"].assert_eq(&wgsl("cached-attention"));
}

#[test]
fn golden_plan_of_the_s2attn_roll_reference_graph() {
    let schedule = example_schedule("s2attn-roll.toml", 64, 4);
    let graph = lower_pattern(&schedule.patterns[0], &LowerOptions::new(2, 64, 16)).unwrap();
    let plan = plan_graph(&graph, &GraphPlanOptions::default()).unwrap();
    expect_file!["../../tests/golden/wgsl-simple/s2attn-roll.plan"].assert_eq(&render_plan(&plan));
}

#[test]
fn golden_wgsl_of_a_split_binding() {
    let graph = op_graph(Op::Add, &[&[40, 10], &[40, 10]]);
    let opts = {
        let base = GraphPlanOptions::default();
        GraphPlanOptions { limits: DeviceLimits { max_storage_binding: 1024, ..base.limits }, ..base }
    };
    let plan = plan_graph(&graph, &opts).unwrap();
    expect_file!["../../tests/golden/wgsl-simple/add-split.wgsl"].assert_eq(&plan.kernels[0].wgsl);
}

/// Leaves stored in 16 bits: a matmul reading a bf16 operand four values at
/// a time, and an embedding table in f16 split across two 512-byte bindings
/// (the accessor widens each half-word to f32; nothing else changes).
#[test]
fn golden_wgsl_of_packed_16_bit_leaves() {
    let storage = |leaf: &str, elem: ElemType| BTreeMap::from([(leaf.to_string(), elem)]);
    let matmul = op_graph(Op::MatMul { transpose_a: false, transpose_b: true }, &[&[8, 16], &[12, 16]]);
    let opts =
        GraphPlanOptions { leaf_storage: storage("x1", ElemType::Bf16), ..GraphPlanOptions::default() };
    let plan = plan_graph(&matmul, &opts).unwrap();
    assert_eq!((plan.buffers["x1"].elem, plan.buffers["x1"].bytes), (ElemType::Bf16, 12 * 16 * 2));
    expect_file!["../../tests/golden/wgsl-simple/matmul-bf16.wgsl"].assert_eq(&plan.kernels[0].wgsl);

    let embedding =
        leaf_graph(Op::Embedding, &[("ids", DType::I32, &[2, 5]), ("table", DType::F32, &[101, 3])]);
    let opts = GraphPlanOptions { leaf_storage: storage("table", ElemType::F16), ..tiny_bindings() };
    let plan = plan_graph(&embedding, &opts).unwrap();
    // 303 values: 606 bytes, stored as 152 words.
    assert_eq!((plan.buffers["table"].elem, plan.buffers["table"].bytes), (ElemType::F16, 608));
    expect_file!["../../tests/golden/wgsl-simple/embedding-f16-split.wgsl"].assert_eq(&plan.kernels[0].wgsl);
    let dir = temp_dir("packed");
    spirv_val("embedding-f16-split", &plan, &dir);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The attention output (n9) moves into the rolled q's buffer (n3), dead once
/// the scores are computed; nothing else overlaps.
#[test]
fn scratch_buffers_with_disjoint_lifetimes_share_memory() {
    let schedule = example_schedule("s2attn-roll.toml", 64, 4);
    let graph = lower_pattern(&schedule.patterns[0], &LowerOptions::new(2, 64, 16)).unwrap();
    let separate = GraphPlanOptions { share_scratch: false, ..GraphPlanOptions::default() };
    let apart = plan_graph(&graph, &separate).unwrap();
    let shared = plan_graph(&graph, &GraphPlanOptions::default()).unwrap();
    assert!(apart.buffers.contains_key("n9") && !shared.buffers.contains_key("n9"));
    assert_eq!(shared.total_bytes(), apart.total_bytes() - apart.buffers["n9"].bytes);
    let pv = shared.kernels.iter().find(|k| k.name == "n9_attention_pv").unwrap();
    assert_eq!(pv.bindings.last().map(|b| b.buffer.as_str()), Some("n3"));
}

/// A fused attention (`o`) and its three gradients, plus the dq of another
/// attention of the same operands (another scale), which has no forward node.
fn attention_and_gradients() -> ValidGraph {
    let mut g = Graph::new("attention-and-gradients");
    let shape = TensorType::f32(vec![2, 4, 16, 8]);
    let [q, k, v, dout] = ["q", "k", "v", "do"].map(|name| g.input(name, shape.clone()));
    let heads = vec![HeadMask::new(0..2, mask("causal")), HeadMask::new(2..4, mask("causal & window(5)"))];
    let o = g.add(Op::FusedAttention { heads: heads.clone(), scale: 0.3, rope: None }, &[q, k, v]).unwrap();
    g.set_output("o", o);
    for (grad, scale) in [
        (AttentionGrad::Dq, 0.3),
        (AttentionGrad::Dk, 0.3),
        (AttentionGrad::Dv, 0.3),
        (AttentionGrad::Dq, 0.5),
    ] {
        let op = Op::FusedAttentionGrad { heads: heads.clone(), scale, grad, rope: None };
        let id = g.add(op, &[q, k, v, dout]).unwrap();
        g.set_output(&format!("{grad:?}-{scale}").to_lowercase(), id);
    }
    g.validate().unwrap()
}

#[test]
fn a_backward_pass_reads_its_forward_nodes_log_sum_exp() {
    let plan = plan_graph(&attention_and_gradients(), &GraphPlanOptions::default()).unwrap();
    let names: Vec<&str> = plan.kernels.iter().map(|k| k.name.as_str()).collect();
    // n5..n7 differentiate n4 and plan no forward of their own; n8 (scale 0.5)
    // has no forward node, so its pass recomputes one.
    assert_eq!(
        names,
        [
            "attn_fwd_n4_fused_attention",
            "attn_bwd_delta_n5_fused_attention_grad",
            "attn_bwd_dkdv_n5_fused_attention_grad",
            "attn_bwd_dq_n5_fused_attention_grad",
            "attn_fwd_n8_fused_attention_grad",
            "attn_bwd_delta_n8_fused_attention_grad",
            "attn_bwd_dkdv_n8_fused_attention_grad",
            "attn_bwd_dq_n8_fused_attention_grad",
        ]
    );
    let buffers = |i: usize| plan.kernels[i].bindings.iter().map(|b| b.buffer.clone()).collect::<Vec<_>>();
    let (forward, delta) = (buffers(0), buffers(1));
    let saved_lse: Vec<&String> = forward.iter().filter(|b| delta.contains(b) && b.contains("lse")).collect();
    assert_eq!(saved_lse.len(), 1, "forward binds {forward:?}, delta {delta:?}");
    // It reads the forward node's output `o` too.
    assert!(delta.contains(&"o".to_string()), "{delta:?}");
    assert_eq!(plan.buffers[saved_lse[0]].role, BufferRole::Scratch);
}

#[test]
fn buffers_are_named_after_nodes_inputs_and_outputs() {
    let schedule = example_schedule("s2attn-roll.toml", 64, 4);
    let graph = lower_pattern(&schedule.patterns[0], &LowerOptions::new(2, 64, 16)).unwrap();
    let separate = GraphPlanOptions { share_scratch: false, ..GraphPlanOptions::default() };
    let plan = plan_graph(&graph, &separate).unwrap();
    for input in ["q", "k", "v"] {
        assert_eq!(plan.buffers[input].role, BufferRole::Input, "{input}");
        assert_eq!(plan.buffers[input].shape, vec![2, 4, 64, 16]);
    }
    // The output takes over the last roll's buffer; reshapes alias, so no n6..n8 or n10.
    assert_eq!(plan.buffers["o"].role, BufferRole::Output);
    assert_eq!(plan.buffers["o"].shape, vec![2, 4, 64, 16]);
    let names: Vec<&str> = plan.buffers.keys().map(String::as_str).collect();
    assert_eq!(names, ["k", "n3", "n4", "n5", "n9", "n9_scores", "o", "q", "v"]);
    // Three rolls in, attention's three kernels, one roll out.
    let kernels: Vec<&str> = plan.kernels.iter().map(|k| k.name.as_str()).collect();
    assert_eq!(
        kernels,
        [
            "n3_roll",
            "n4_roll",
            "n5_roll",
            "n9_attention_scores",
            "n9_attention_softmax",
            "n9_attention_pv",
            "n11_roll"
        ]
    );
    // The score scratch is the unfused path's cost: B·(H·N/G) groups of G×G scores.
    assert_eq!(plan.buffers["n9_scores"].bytes, 2 * 16 * 16 * 16 * 4);
}

#[test]
fn an_output_that_is_an_input_or_shared_is_copied() {
    let mut g = Graph::new("copies");
    let x = g.input("x", TensorType::f32([4, 8]));
    let r = g.reshape(x, &[32]).unwrap();
    let e = g.exp(x).unwrap();
    g.set_output("same", x);
    g.set_output("flat", r);
    g.set_output("e1", e);
    g.set_output("e2", e);
    let plan = plan_graph(&g.validate().unwrap(), &GraphPlanOptions::default()).unwrap();
    for out in ["same", "flat", "e1", "e2"] {
        assert_eq!(plan.buffers[out].role, BufferRole::Output, "{out}");
    }
    assert_eq!(plan.buffers["flat"].shape, vec![32]);
    let kernels: Vec<&str> = plan.kernels.iter().map(|k| k.name.as_str()).collect();
    assert_eq!(kernels, ["n2_exp", "output_copy_0", "output_copy_1", "output_copy_2"]);
}

#[test]
fn integer_leaves_get_i32_buffers_and_bindings() {
    let cases = op_cases();
    let find = |name: &str| plan_case(name, &cases.iter().find(|(n, _)| *n == name).unwrap().1);
    for (case, leaf) in [("embedding", "ids"), ("embedding-i64", "ids"), ("cross-entropy-i64", "targets")] {
        let plan = find(case);
        let decl = &plan.buffers[leaf];
        assert_eq!((decl.elem, &decl.role), (ElemType::I32, &BufferRole::Input), "{case}");
        assert_eq!(decl.bytes, 4 * decl.shape.iter().product::<usize>() as u64, "{case}");
        for (name, decl) in &plan.buffers {
            if name != leaf {
                assert_eq!(decl.elem, ElemType::F32, "{case}: {name}");
            }
        }
        let wgsl = &plan.kernels[0].wgsl;
        assert!(wgsl.contains(&format!("var<storage, read> {leaf}: array<i32>;")), "{wgsl}");
        assert!(wgsl.contains(&format!("fn ld_{leaf}(i: u32) -> i32")), "{wgsl}");
    }
    let text = render_plan(&find("embedding"));
    assert!(text.contains("buffer ids [2, 70] i32: 560 bytes, input"), "{text}");
    assert!(text.contains("buffer table [7, 3]: 84 bytes, input"), "{text}");

    // The two-kernel loss: rows into a scratch, then the mean.
    let plan = find("cross-entropy");
    let kernels: Vec<&str> = plan.kernels.iter().map(|k| k.name.as_str()).collect();
    assert_eq!(kernels, ["n2_cross_entropy_rows", "n2_cross_entropy_mean"]);
    assert_eq!(plan.buffers["n2_rows"].bytes, 40 * 4);
    let plan = find("cross-entropy-grad");
    let kernels: Vec<&str> = plan.kernels.iter().map(|k| k.name.as_str()).collect();
    assert_eq!(kernels, ["n3_cross_entropy_grad_weight", "n3_cross_entropy_grad_rows"]);
    assert_eq!(plan.buffers["n3_weight"].bytes, 4);
}

#[test]
fn reshapes_copy_when_aliasing_is_off() {
    let (_, graph) = op_cases().into_iter().find(|(n, _)| *n == "reshape").unwrap();
    let aliased = plan_graph(&graph, &GraphPlanOptions::default()).unwrap();
    assert_eq!(aliased.kernels.len(), 1, "an aliased reshape of an input still copies into the output");
    assert_eq!(aliased.kernels[0].name, "output_copy_0");
    let copied = plan_graph(&graph, &no_alias()).unwrap();
    assert_eq!(copied.kernels[0].name, "n1_reshape");
}

/// A 512-byte binding limit: every buffer of the small cases is split.
fn tiny_bindings() -> GraphPlanOptions {
    GraphPlanOptions::for_device(DeviceLimits {
        max_storage_binding: 512,
        max_buffer_size: 8 << 20,
        max_storage_buffers_per_stage: 1000,
        max_workgroups_per_dimension: 3,
        ..DeviceLimits::default()
    })
}

#[test]
fn large_buffers_are_split_across_aligned_bindings_and_grids_fold() {
    let opts = tiny_bindings();
    // Fused attention chunks by (batch, head) pairs, never splits one: its own
    // chunking is tested with the fused planner (`attention_codegen.rs`).
    for (name, graph) in op_cases().into_iter().filter(|(n, _)| !n.starts_with("fused-attention")) {
        let plan = plan_graph(&graph, &opts).unwrap_or_else(|e| panic!("{name}: {e}"));
        for k in &plan.kernels {
            for b in &k.bindings {
                let decl = &plan.buffers[&b.buffer];
                let (offset, size) = b.range.unwrap_or((0, decl.bytes));
                assert!(size <= 512 && size > 0, "{name}/{}: binding of {size} bytes", k.name);
                assert_eq!(offset % 256, 0, "{name}/{}: offset {offset}", k.name);
                assert!(offset + size <= decl.bytes, "{name}/{}: range past the end", k.name);
            }
            assert!(k.workgroups.iter().all(|&w| w <= 3), "{name}/{}: {:?}", k.name, k.workgroups);
            let threads = u64::from(k.workgroups[0]) * u64::from(k.workgroups[1]) * 64;
            assert!(threads > 0);
        }
    }
    // Attention at N=8: 32 bytes per score row, so 16 rows per 512-byte chunk.
    let (_, graph) = op_cases().into_iter().find(|(n, _)| *n == "attention-causal").unwrap();
    let plan = plan_graph(&graph, &opts).unwrap();
    assert_eq!(plan.kernels.len(), 3 * 4, "64 rows in 4 chunks of 16");
    assert_eq!(plan.kernels[3].name, "n3_attention_scores_c1");
}

#[test]
fn score_scratch_is_reused_when_it_exceeds_the_largest_buffer() {
    let (_, graph) = op_cases().into_iter().find(|(n, _)| *n == "attention-causal").unwrap();
    // 64 rows × 32 bytes = 2 KiB of scores; buffers of at most 1 KiB.
    let opts = {
        let base = tiny_bindings();
        GraphPlanOptions {
            limits: DeviceLimits { max_buffer_size: 1536, max_storage_binding: 512, ..base.limits },
            ..base
        }
    };
    let plan = plan_graph(&graph, &opts).unwrap();
    assert_eq!(plan.buffers["n3_scores"].bytes, 1536, "three chunks of 512 bytes");
    let offsets: Vec<u64> = plan
        .kernels
        .iter()
        .filter(|k| k.name.contains("scores_c"))
        .map(|k| k.bindings.iter().find(|b| b.buffer == "n3_scores").and_then(|b| b.range).unwrap().0)
        .collect();
    assert_eq!(offsets, [0, 512, 1024, 0]);
}

#[test]
fn errors_name_the_node_and_op() {
    let mut g = Graph::new("half");
    let x = g.input("x", TensorType::new(DType::F16, [4]));
    let y = g.exp(x).unwrap();
    g.set_output("y", y);
    let err = plan_graph(&g.validate().unwrap(), &GraphPlanOptions::default()).unwrap_err();
    assert!(matches!(err, CodegenError::UnsupportedDType { op: "input", .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "node %0 (input): dtype f16 is not supported; the simple kernels compute in f32 \
         and take integers (i32, i64) only as graph inputs"
    );

    // Integers are leaves only: no integer intermediate, no integer output.
    let mut g = Graph::new("int-reshape");
    let ids = g.input("ids", TensorType::new(DType::I32, [2, 3]));
    let flat = g.reshape(ids, &[6]).unwrap();
    let table = g.input("table", TensorType::f32([4, 2]));
    let y = g.add(Op::Embedding, &[flat, table]).unwrap();
    g.set_output("y", y);
    let err = plan_graph(&g.validate().unwrap(), &GraphPlanOptions::default()).unwrap_err();
    assert!(matches!(err, CodegenError::UnsupportedDType { op: "reshape", dtype: DType::I32, .. }), "{err}");
    let mut g = Graph::new("int-output");
    let ids = g.input("ids", TensorType::new(DType::I64, [2]));
    g.set_output("out", ids);
    let err = plan_graph(&g.validate().unwrap(), &GraphPlanOptions::default()).unwrap_err();
    assert!(matches!(err, CodegenError::UnsupportedDType { op: "output", dtype: DType::I64, .. }), "{err}");

    let mut g = Graph::new("clash");
    let x = g.input("x", TensorType::f32([4]));
    let y = g.exp(x).unwrap();
    g.set_output("x", y);
    let err = plan_graph(&g.validate().unwrap(), &GraphPlanOptions::default()).unwrap_err();
    assert!(matches!(err, CodegenError::NameClash { .. }), "{err}");

    let graph = op_graph(Op::Concat { axis: 0 }, &[&[64], &[64]]);
    let limits =
        DeviceLimits { max_storage_binding: 256, max_storage_buffers_per_stage: 2, ..Default::default() };
    let opts = GraphPlanOptions::for_device(limits);
    let err = plan_graph(&graph, &opts).unwrap_err();
    assert_eq!(
        err.to_string(),
        "node %2 (concat): kernel `n2_concat_0` needs 3 storage bindings, more than the 2 allowed per stage"
    );

    let graph = op_graph(Op::Scale { factor: 1e300 }, &[&[4]]);
    let err = plan_graph(&graph, &GraphPlanOptions::default()).unwrap_err();
    assert!(matches!(err, CodegenError::Constant { what: "factor", .. }), "{err}");

    let graph = op_graph(
        attention("window(h * 600000000 * 2 + 1)", 0),
        &[&[1, 2, 4, 2], &[1, 2, 4, 2], &[1, 2, 4, 2]],
    );
    let err = plan_graph(&graph, &GraphPlanOptions::default()).unwrap_err();
    assert!(matches!(err, CodegenError::Mask { head: 1, .. }), "{err}");
    assert!(err.to_string().contains("node %3 (attention)"), "{err}");

    let bad = GraphPlanOptions::for_device(DeviceLimits { max_storage_binding: 100, ..Default::default() });
    assert!(matches!(plan_graph(&graph, &bad), Err(CodegenError::Options(_))));
}

#[test]
fn the_mask_function_uses_floor_semantics() {
    let text = mask_functions(&[(6..8, mask("groups(h - 5, -3)"))], 16, "16").unwrap();
    assert!(text.contains("(fdiv(q - (-3), (h - 5)) == fdiv(k - (-3), (h - 5)))"), "{text}");
    assert!(text.contains("fn fmod(a: i32, b: i32) -> i32"), "{text}");
}

#[test]
fn long_context_reference_plans_respect_webgpu_default_limits() {
    // N = 8192, H = 32, D = 128, B = 2: q alone is 256 MiB and one dense head's
    // scores 256 MiB, so inputs are split across bindings and scores chunked.
    let opts = GraphPlanOptions::default();
    let overrides = Overrides { seq_len: Some(8192), n_heads: Some(32), ..Overrides::default() };
    for file in ["s2attn-roll.toml", "causal.toml"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/patterns").join(file);
        let schedule = weft_ir::spec::load_schedule(&path, &overrides).unwrap();
        let graph = lower_pattern(&schedule.patterns[0], &LowerOptions::new(2, 8192, 128)).unwrap();
        let plan = plan_graph(&graph, &opts).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(plan.largest_buffer() <= opts.limits.max_buffer_size, "{file}: {}", plan.largest_buffer());
        for k in &plan.kernels {
            assert!(k.bindings.len() <= 8, "{file}/{}: {} bindings", k.name, k.bindings.len());
            for b in &k.bindings {
                let (offset, size) = b.range.unwrap_or((0, plan.buffers[&b.buffer].bytes));
                assert!(size <= opts.limits.max_storage_binding && offset % 256 == 0, "{file}/{}", k.name);
            }
        }
        let scores = plan.buffers.values().find(|b| b.name.ends_with("_scores")).unwrap();
        eprintln!("{file}: {} kernels, score scratch {} MiB", plan.kernels.len(), scores.bytes >> 20);
    }
}

/// Options for a device with 8-wide subgroups running `matmul`.
fn subgroup_options(matmul: MatmulConfig) -> GraphPlanOptions {
    {
        let base = GraphPlanOptions::default();
        GraphPlanOptions {
            matmul: MatmulTable::uniform(matmul),
            limits: DeviceLimits { subgroup_min_size: Some(8), ..base.limits },
            ..base
        }
    }
}

/// `[2, m, k] x [2, k, n]` with either operand transposed.
fn matmul_graph(m: usize, n: usize, k: usize, ta: bool, tb: bool) -> ValidGraph {
    let a = if ta { [2, k, m] } else { [2, m, k] };
    let b = if tb { [2, n, k] } else { [2, k, n] };
    op_graph(Op::MatMul { transpose_a: ta, transpose_b: tb }, &[&a, &b])
}

/// The title line of the plan's only kernel.
fn matmul_title(graph: &ValidGraph, opts: &GraphPlanOptions) -> String {
    let plan = plan_graph(graph, opts).unwrap();
    assert_eq!(plan.kernels.len(), 1);
    plan.kernels[0].wgsl.lines().next().unwrap().to_string()
}

#[test]
fn subgroup_matmul_kernels_validate_with_naga_and_spirv_val() {
    let dir = temp_dir("subgroup-matmul");
    for (rows, cols, workgroup) in [(4, 64, 8), (3, 32, 16), (8, 128, 32)] {
        let opts = subgroup_options(MatmulConfig { kernel: MatmulKernel::Subgroup, rows, cols, workgroup });
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let graph = matmul_graph(36, 100, 12, ta, tb);
            let plan = plan_graph(&graph, &opts).unwrap();
            let label = format!("sg{rows}x{cols}/wg{workgroup} ta={ta} tb={tb}");
            for k in &plan.kernels {
                validate_wgsl(&k.name, &k.wgsl).unwrap_or_else(|e| panic!("{label}: {e}"));
            }
            spirv_val(&label, &plan, &dir);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_subgroup_matmul_falls_back_where_the_device_or_layout_rules_it_out() {
    let sg = MatmulConfig { kernel: MatmulKernel::Subgroup, rows: 4, cols: 64, workgroup: 8 };
    let shared = "B shared across each subgroup";
    let fits = matmul_graph(36, 100, 12, false, false);
    assert!(matmul_title(&fits, &subgroup_options(sg)).contains(shared));
    // No subgroups, or subgroups narrower than the 8 lanes that load B.
    for size in [None, Some(4)] {
        let opts = {
            let base = subgroup_options(sg);
            GraphPlanOptions { limits: DeviceLimits { subgroup_min_size: size, ..base.limits }, ..base }
        };
        let title = matmul_title(&fits, &opts);
        assert!(title.contains("8x8/wg64") && !title.contains(shared), "{size:?}: {title}");
    }
    // K not a multiple of 4; N not one with B untransposed; a transposed A
    // needs M and the rows per thread to be multiples of 4.
    for (graph, why) in [
        (matmul_graph(36, 100, 13, false, false), "k % 4"),
        (matmul_graph(36, 101, 12, false, false), "n % 4"),
        (matmul_graph(37, 100, 12, true, false), "m % 4 with ta"),
    ] {
        let title = matmul_title(&graph, &subgroup_options(sg));
        assert!(!title.contains(shared), "{why}: {title}");
    }
    let three_rows = MatmulConfig { rows: 3, ..sg };
    assert!(
        !matmul_title(&matmul_graph(36, 100, 12, true, false), &subgroup_options(three_rows))
            .contains(shared)
    );
    // N not a multiple of 4 is fine when B is transposed (read along K).
    assert!(matmul_title(&matmul_graph(36, 101, 12, false, true), &subgroup_options(sg)).contains(shared));
}

#[test]
fn bad_matmul_configs_are_errors_that_say_why() {
    let graph = matmul_graph(8, 8, 8, false, false);
    for (config, want) in [
        (
            MatmulConfig { kernel: MatmulKernel::Subgroup, rows: 4, cols: 48, workgroup: 8 },
            "32, 64, 96 or 128",
        ),
        (MatmulConfig { kernel: MatmulKernel::Subgroup, rows: 4, cols: 64, workgroup: 12 }, "multiple of 8"),
        (MatmulConfig { kernel: MatmulKernel::Registers, rows: 17, cols: 8, workgroup: 64 }, "1..=16"),
    ] {
        let err = plan_graph(&graph, &subgroup_options(config)).unwrap_err().to_string();
        assert!(err.contains(want), "{config}: {err}");
    }
}

/// Each matmul looks up its own shape class: a LoRA's rank-8 matmuls get the
/// narrow classes' shapes, a 1024³ projection the large class's, and the
/// kernel's title says which ran.
#[test]
fn each_matmul_runs_the_shape_of_its_class() {
    let cpu = DeviceLimits { cpu: true, subgroup_min_size: Some(8), ..DeviceLimits::default() };
    let mut table = MatmulTable::default_for(&cpu);
    let large = MatmulConfig { kernel: MatmulKernel::Subgroup, rows: 8, cols: 128, workgroup: 32 };
    table.set(MatmulClass::Large, large);
    let narrow_m = MatmulConfig { kernel: MatmulKernel::Registers, rows: 4, cols: 8, workgroup: 128 };
    table.set(MatmulClass::NarrowM, narrow_m);
    let opts = GraphPlanOptions { matmul: table, ..GraphPlanOptions::for_device(cpu) };
    let title = |graph: ValidGraph| matmul_title(&graph, &opts);
    let lora_down =
        title(op_graph(Op::MatMul { transpose_a: false, transpose_b: true }, &[&[2048, 1024], &[8, 1024]]));
    assert!(lora_down.contains(&format!("narrow_n {}", MatmulTable::CPU_NARROW_N)), "{lora_down}");
    // dA = gᵀ·x: the rank is M.
    let lora_grad =
        title(op_graph(Op::MatMul { transpose_a: true, transpose_b: false }, &[&[2048, 8], &[2048, 1024]]));
    assert!(lora_grad.contains("narrow_m 4x8/wg128 (loads"), "{lora_grad}");
    // x_a·Bᵀ: narrow K only, so a wide output but small work.
    let lora_up =
        title(op_graph(Op::MatMul { transpose_a: false, transpose_b: true }, &[&[2048, 8], &[4096, 8]]));
    assert!(lora_up.contains(&format!("small {}", table.small)), "{lora_up}");
    let small = title(matmul_graph(64, 64, 64, false, false));
    assert!(small.contains(&format!("small {}", table.small)), "{small}");
    let projection = title(op_graph(
        Op::MatMul { transpose_a: false, transpose_b: true },
        &[&[1024, 1024], &[1024, 1024]],
    ));
    assert!(projection.contains("large sg8x128/wg32"), "{projection}");
}

#[test]
fn golden_wgsl_of_the_subgroup_matmuls() {
    let sg = MatmulConfig { kernel: MatmulKernel::Subgroup, rows: 2, cols: 32, workgroup: 8 };
    let plan = plan_graph(&matmul_graph(20, 36, 8, false, true), &subgroup_options(sg)).unwrap();
    expect_file!["../../tests/golden/wgsl-simple/matmul-subgroup-tb.wgsl"].assert_eq(&plan.kernels[0].wgsl);
    // B as stored: each accumulator takes its four steps of K in a row.
    let plan = plan_graph(&matmul_graph(20, 36, 8, false, false), &subgroup_options(sg)).unwrap();
    expect_file!["../../tests/golden/wgsl-simple/matmul-subgroup.wgsl"].assert_eq(&plan.kernels[0].wgsl);
}

fn unfused() -> GraphPlanOptions {
    GraphPlanOptions { fuse_elementwise: false, ..GraphPlanOptions::default() }
}

/// SwiGLU's `silu(gate) * up`, as the model spells it.
fn swiglu_graph() -> ValidGraph {
    let mut g = Graph::new("swiglu");
    let gate = g.input("gate", TensorType::f32(vec![4, 6]));
    let up = g.input("up", TensorType::f32(vec![4, 6]));
    let act = g.silu(gate).unwrap();
    let y = g.elementwise_mul(act, up).unwrap();
    g.set_output("y", y);
    g.validate().unwrap()
}

#[test]
fn swiglu_is_one_fused_kernel_without_an_intermediate_buffer() {
    let plan = plan_graph(&swiglu_graph(), &GraphPlanOptions::default()).unwrap();
    assert_eq!(plan.kernels.len(), 1, "{}", render_plan(&plan));
    assert_eq!(plan.kernels[0].name, "n3_fused");
    let names: Vec<&str> = plan.buffers.keys().map(String::as_str).collect();
    assert_eq!(names, ["gate", "up", "y"], "silu(gate) is never materialized");
    expect_file!["../../tests/golden/wgsl-simple/swiglu-fused.wgsl"].assert_eq(&plan.kernels[0].wgsl);
    let apart = plan_graph(&swiglu_graph(), &unfused()).unwrap();
    assert_eq!(apart.kernels.len(), 2);
    assert!(apart.buffers.contains_key("n2"));
}

/// The silu gradient's chain (sigmoid, mul, scale, add, add, mul) is one kernel
/// writing only `dx`; a value read outside the group (here an output) is still
/// written, and so is every output of the group.
#[test]
fn a_fused_group_writes_exactly_the_values_read_outside_it() {
    let mut g = Graph::new("silu-grad");
    let x = g.input("x", TensorType::f32(vec![3, 70]));
    let y = g.silu(x).unwrap();
    g.set_output("y", y);
    let grads = differentiate(&g.validate().unwrap(), &["x"]).unwrap();
    let plan = plan_graph(&grads.graph, &GraphPlanOptions::default()).unwrap();
    assert_eq!(plan.kernels.len(), 1, "{}", render_plan(&plan));
    let k = &plan.kernels[0];
    assert!(k.wgsl.lines().next().unwrap().contains("fused: silu, sigmoid, mul"), "{}", k.wgsl);
    let written: Vec<&str> =
        k.bindings.iter().filter(|b| b.access == Access::ReadWrite).map(|b| b.buffer.as_str()).collect();
    assert_eq!(written, ["y", "dx"]);
    assert!(plan.buffers.values().all(|b| b.role != BufferRole::Scratch), "{}", render_plan(&plan));
}

/// A group never runs before a consumer outside it: `a = exp(x)` feeds a
/// matmul that comes before `b = a + m`, so `a` and `b` stay apart.
#[test]
fn fusion_keeps_outside_consumers_after_the_group() {
    let mut g = Graph::new("order");
    let x = g.input("x", TensorType::f32(vec![4, 4]));
    let a = g.exp(x).unwrap();
    let m = g.matmul(a, x, false, false).unwrap();
    let b = g.elementwise_add(a, m).unwrap();
    let c = g.scale(b, 0.5).unwrap();
    g.set_output("c", c);
    let plan = plan_graph(&g.validate().unwrap(), &GraphPlanOptions::default()).unwrap();
    let names: Vec<&str> = plan.kernels.iter().map(|k| k.name.as_str()).collect();
    assert_eq!(names, ["n1_exp", "n2_matmul", "n4_fused"]);
}

/// A group's reads and writes fit the stage's storage bindings.
#[test]
fn fusion_respects_the_binding_limit() {
    let mut g = Graph::new("sum");
    let xs: Vec<NodeId> = (0..6).map(|i| g.input(&format!("x{i}"), TensorType::f32(vec![8]))).collect();
    let mut acc = xs[0];
    for &x in &xs[1..] {
        acc = g.elementwise_add(acc, x).unwrap();
    }
    g.set_output("y", acc);
    let graph = g.validate().unwrap();
    let opts = {
        let base = GraphPlanOptions::default();
        GraphPlanOptions { limits: DeviceLimits { max_storage_buffers_per_stage: 4, ..base.limits }, ..base }
    };
    let plan = plan_graph(&graph, &opts).unwrap();
    assert!(plan.kernels.iter().all(|k| k.bindings.len() <= 4));
    // (x0 + x1) + x2, then that + x3 + x4, then + x5: three reads and a write each.
    assert_eq!(plan.kernels.len(), 3, "{}", render_plan(&plan));
    assert_eq!(plan_graph(&graph, &GraphPlanOptions::default()).unwrap().kernels.len(), 1);
}

/// The LLaMA forward and training graphs (LoRA sums, residual adds, SwiGLU,
/// the backward's elementwise chains and gradient sums) need fewer kernels
/// and fewer bytes fused; every kernel still validates.
#[test]
fn fusion_cuts_the_kernels_of_the_llama_forward_and_training_graphs() {
    let config = llama::tiny_config(false);
    let opts = ModelGraphOptions {
        lora: Some(llama::lora()),
        train_embed: true,
        train_norm: true,
        loss: true,
        ..ModelGraphOptions::new(2, 16)
    };
    let forward = build_llama_graph(&config, Some(&llama::schedule(16)), &opts).unwrap();
    let trainable = trainable_parameters(&forward);
    let step = differentiate(&forward, &trainable.iter().map(String::as_str).collect::<Vec<_>>()).unwrap();
    for (label, graph, at_least) in [("forward", &forward, 10), ("training", &step.graph, 25)] {
        let fused = plan_graph(graph, &GraphPlanOptions::default()).unwrap();
        let apart = plan_graph(graph, &unfused()).unwrap();
        let saved = apart.kernels.len() - fused.kernels.len();
        eprintln!("{label}: {} kernels unfused, {} fused", apart.kernels.len(), fused.kernels.len());
        assert!(saved >= at_least, "{label}: only {saved} kernels fewer");
        // Without scratch sharing every buffer counts once, and fusion only drops buffers.
        let separate = |fuse_elementwise| GraphPlanOptions {
            share_scratch: false,
            fuse_elementwise,
            ..GraphPlanOptions::default()
        };
        let bytes = |fuse| plan_graph(graph, &separate(fuse)).unwrap().total_bytes();
        assert!(bytes(true) < bytes(false), "{label}");
        for k in &fused.kernels {
            validate_wgsl(&k.name, &k.wgsl).unwrap_or_else(|e| panic!("{label}: {e}"));
        }
        let titles = fused.kernels.iter().filter(|k| k.wgsl.lines().next().unwrap().contains(": fused: "));
        assert!(titles.count() > 0);
    }
    let fused = plan_graph(&forward, &GraphPlanOptions::default()).unwrap();
    assert!(fused.kernels.iter().any(|k| k.wgsl.starts_with(&format!("// {}: fused: silu, mul\n", k.name))));
}

/// A chain nothing reads still computes its last value, as an unfused dead node does.
#[test]
fn a_dead_fused_chain_still_writes_its_last_value() {
    let mut g = Graph::new("dead");
    let x = g.input("x", TensorType::f32(vec![8]));
    let e = g.exp(x).unwrap();
    let _dead = g.log(e).unwrap();
    let y = g.scale(x, 2.0).unwrap();
    g.set_output("y", y);
    let plan = plan_graph(&g.validate().unwrap(), &GraphPlanOptions::default()).unwrap();
    let fused = plan.kernels.iter().find(|k| k.name == "n2_fused").unwrap();
    let written: Vec<&str> =
        fused.bindings.iter().filter(|b| b.access == Access::ReadWrite).map(|b| b.buffer.as_str()).collect();
    assert_eq!(written, ["n2"]);
}
