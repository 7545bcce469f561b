//! Gradient checks: the backward graph `differentiate` builds agrees with
//! central finite differences of the forward graph, in f64.
//!
//! Every case computes `f(x) = Σ <w_o, o(x)>` over the outputs `o` with fresh
//! random cotangents `w`, and compares `df/dx` from the backward graph with
//! the five-point central difference `(8 (f(x + h) - f(x - h)) - (f(x + 2h) -
//! f(x - 2h))) / 12h` along every element of every input.

use std::collections::HashMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use weft_ir::autodiff::{
    AutodiffError, differentiate, differentiate_outputs, grad_name, trainable_parameters,
};
use weft_ir::expr::parse_mask;
use weft_ir::graph::{
    DType, Graph, HeadMask, HeadRange, NodeId, Op, RopeFreqs, RopeParams, TensorType, UnaryOp, ValidGraph,
};
use weft_ir::interp::{Tensor, run};
use weft_ir::lower::{LowerOptions, lower_pattern};
use weft_ir::model::{ModelGraphOptions, build_llama_graph};
use weft_ir::{Mask, Overrides};

#[path = "support/llama.rs"]
mod llama;

/// Largest allowed `|analytic - numeric|`, relative to the largest analytic magnitude.
const TOLERANCE: f64 = 1e-6;
/// The steps of the five-point stencil. Its truncation error grows as STEP⁴
/// and its rounding error as 1/STEP; on the LLaMA layer each of 1e-3 and 1e-4
/// alone exceeds 1e-6 for about 1% of seeds (measured over 300 seeds each),
/// so an element passes when either step agrees. A wrong gradient differs at both.
const STEPS: [f64; 2] = [1e-3, 1e-4];

fn rng() -> (StdRng, u64) {
    let seed = std::env::var("WEFT_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    eprintln!("seed {seed} (rerun with WEFT_TEST_SEED={seed})");
    (StdRng::seed_from_u64(seed), seed)
}

fn f32s(shape: &[usize]) -> TensorType {
    TensorType::new(DType::F32, shape.to_vec())
}

fn mask(text: &str) -> Mask {
    Mask::new(parse_mask(text).unwrap()).unwrap()
}

/// Checks every leaf's gradient of `graph`; `positive` leaves get values in
/// (0.5, 2) (for `log`), the rest in (-2, 2).
fn check(label: &str, graph: &ValidGraph, positive: &[&str], rng: &mut StdRng, seed: u64) {
    check_with(label, graph, positive, 2.0, rng, seed);
}

/// [`check`] with float values in (-magnitude, magnitude): weights of a deep
/// model at realistic sizes, so that activations (and the roundoff of the
/// finite differences) stay moderate.
fn check_with(
    label: &str,
    graph: &ValidGraph,
    positive: &[&str],
    magnitude: f64,
    rng: &mut StdRng,
    seed: u64,
) {
    // Every input and trainable parameter; frozen weights get no gradient.
    let leaves: Vec<String> = graph
        .leaves()
        .filter(|(id, _)| graph.node(*id).ty.dtype.is_float())
        .filter(|(id, _)| !matches!(graph.node(*id).op, Op::Parameter { trainable: false, .. }))
        .map(|(_, n)| n.to_string())
        .collect();
    let wrt: Vec<&str> = leaves.iter().map(String::as_str).collect();
    let grads = differentiate(graph, &wrt).unwrap_or_else(|e| panic!("{label}: {e}"));

    let mut inputs: HashMap<String, Tensor> = HashMap::new();
    for (id, name) in graph.leaves() {
        let range = if positive.contains(&name) { 0.5..2.0 } else { -magnitude..magnitude };
        let ty = &graph.node(id).ty;
        let value = |rng: &mut StdRng| match (ty.dtype.is_float(), name) {
            (true, _) => rng.random_range(range.clone()),
            // Token ids and targets below 4; a quarter of the targets ignored (-100).
            (false, "targets") if rng.random_bool(0.25) => -100.0,
            (false, _) => f64::from(rng.random_range(0..4u8)),
        };
        inputs.insert(name.to_string(), Tensor::from_fn(ty.shape.clone(), |_| value(rng)));
    }
    let mut seeds = HashMap::new();
    for (output, seed_name) in &grads.seeds {
        let id = graph.outputs().iter().find(|(n, _)| n == output).map(|(_, id)| *id).unwrap();
        let shape = graph.node(id).ty.shape.clone();
        seeds.insert(seed_name.clone(), Tensor::from_fn(shape, |_| rng.random_range(-1.0..1.0)));
    }
    let objective = |inputs: &HashMap<String, Tensor>| -> f64 {
        let outs = run(graph, inputs).unwrap();
        grads
            .seeds
            .iter()
            .map(|(o, s)| outs[o].data().iter().zip(seeds[s].data()).map(|(a, b)| a * b).sum::<f64>())
            .sum()
    };

    let mut all = inputs.clone();
    all.extend(seeds.clone());
    let analytic = run(&grads.graph, &all).unwrap_or_else(|e| panic!("{label}: backward graph: {e}"));
    for (leaf, grad) in &grads.grads {
        let got = &analytic[grad];
        let base = &inputs[leaf];
        assert_eq!(got.shape(), base.shape(), "{label}: shape of {grad}");
        let mut worst: f64 = 0.0;
        let scale = got.data().iter().fold(1e-3_f64, |m, v| m.max(v.abs()));
        for i in 0..base.len() {
            let nudged = |delta: f64| {
                let mut x = inputs.clone();
                let mut data = base.data().to_vec();
                data[i] += delta;
                x.insert(leaf.clone(), Tensor::new(base.shape().to_vec(), data).unwrap());
                objective(&x)
            };
            let error = |step: f64| {
                let near = nudged(step) - nudged(-step);
                let far = nudged(2.0 * step) - nudged(-2.0 * step);
                let numeric = (8.0 * near - far) / (12.0 * step);
                (got.data()[i] - numeric).abs() / scale
            };
            worst = worst.max(STEPS.map(error).into_iter().fold(f64::INFINITY, f64::min));
        }
        eprintln!("{label}: d{leaf}: {worst:.1e}");
        assert!(
            worst <= TOLERANCE,
            "{label}: d{leaf} differs from finite differences by {worst:e} (seed {seed})"
        );
    }
}

/// A graph of one op applied to fresh inputs `x0, x1, ...` of the given shapes.
fn op_graph(op: Op, shapes: &[&[usize]]) -> ValidGraph {
    let mut g = Graph::new("op");
    let xs: Vec<NodeId> =
        shapes.iter().enumerate().map(|(i, s)| g.input(&format!("x{i}"), f32s(s))).collect();
    let y = g.add(op, &xs).unwrap();
    g.set_output("y", y);
    g.validate().unwrap()
}

#[test]
fn every_op_with_a_rule_matches_finite_differences() {
    let (mut rng, seed) = rng();
    // Head 0 unshifted, head 1 shifted by half a group: S²-Attn with two heads.
    let s2 = "roll(2 * h, causal & groups(4))";
    // Every unary op of the table, so a new one is checked without a new line here.
    let unary = UnaryOp::ALL.iter().map(|&op| (op.name(), op_graph(Op::Unary(op), &[&[2, 5]])));
    let cases: Vec<(&str, ValidGraph)> = unary
        .chain(vec![
            (
                "matmul",
                op_graph(Op::MatMul { transpose_a: false, transpose_b: false }, &[&[2, 3, 4], &[2, 4, 5]]),
            ),
            (
                "matmul-ta",
                op_graph(Op::MatMul { transpose_a: true, transpose_b: false }, &[&[2, 4, 3], &[2, 4, 5]]),
            ),
            (
                "matmul-tb",
                op_graph(Op::MatMul { transpose_a: false, transpose_b: true }, &[&[3, 4], &[5, 4]]),
            ),
            (
                "matmul-tab",
                op_graph(Op::MatMul { transpose_a: true, transpose_b: true }, &[&[4, 3], &[5, 4]]),
            ),
            ("add", op_graph(Op::Add, &[&[3, 4], &[3, 4]])),
            ("mul", op_graph(Op::Mul, &[&[3, 4], &[3, 4]])),
            ("scale", op_graph(Op::Scale { factor: -0.75 }, &[&[5]])),
            ("rms-norm", op_graph(Op::RmsNorm { eps: 1e-3 }, &[&[2, 3, 5], &[5]])),
            (
                "rope",
                op_graph(
                    Op::Rope { theta: 100.0, position_scale: 2.0, freqs: RopeFreqs::Default },
                    &[&[1, 2, 6, 4]],
                ),
            ),
            (
                "rope-llama3",
                op_graph(
                    Op::Rope {
                        theta: 100.0,
                        position_scale: 2.0,
                        freqs: RopeFreqs::Llama3 {
                            factor: 4.0,
                            low_freq_factor: 1.0,
                            high_freq_factor: 2.0,
                            original_context: 8.0,
                        },
                    },
                    &[&[1, 2, 6, 4]],
                ),
            ),
            ("reshape", op_graph(Op::Reshape { shape: vec![6, 2] }, &[&[3, 4]])),
            ("permute", op_graph(Op::Permute { perm: vec![2, 0, 1] }, &[&[2, 3, 4]])),
            ("roll", op_graph(Op::Roll { axis: 1, shift: -3, heads: None }, &[&[2, 7]])),
            (
                "roll-heads",
                op_graph(
                    Op::Roll { axis: 2, shift: 2, heads: Some(HeadRange::new(1, 1, 3)) },
                    &[&[1, 3, 5, 2]],
                ),
            ),
            ("slice", op_graph(Op::Slice { axis: 1, start: 1, end: 3 }, &[&[2, 5]])),
            ("pad", op_graph(Op::Pad { axis: 0, before: 2, after: 1 }, &[&[2, 3]])),
            ("concat", op_graph(Op::Concat { axis: 1 }, &[&[2, 1], &[2, 3], &[2, 2]])),
            ("softmax", op_graph(Op::Softmax { axis: 0 }, &[&[4, 3]])),
            ("broadcast", op_graph(Op::Broadcast { axis: 1, size: 3 }, &[&[2, 4]])),
            ("reduce-sum", op_graph(Op::ReduceSum { axis: 1 }, &[&[2, 3, 4]])),
            ("reduce-mean", op_graph(Op::ReduceMean { axis: 0 }, &[&[3, 4]])),
            (
                "masked-softmax",
                op_graph(Op::MaskedSoftmax { mask: mask(s2), head_offset: 0, scale: 0.7 }, &[&[2, 2, 8, 8]]),
            ),
            (
                "attention",
                op_graph(
                    Op::Attention { mask: mask(s2), head_offset: 0, scale: 0.5 },
                    &[&[2, 2, 8, 3], &[2, 2, 8, 3], &[2, 2, 8, 5]],
                ),
            ),
            (
                // Heads 1 and 2 of the mask: queries 0 (and 1 on head 2) see no key.
                "attention-offset-empty-row",
                op_graph(
                    Op::Attention { mask: mask("causal & !window(h)"), head_offset: 1, scale: 0.4 },
                    &[&[1, 2, 6, 3], &[1, 2, 6, 3], &[1, 2, 6, 2]],
                ),
            ),
            (
                "fused-attention",
                op_graph(
                    Op::FusedAttention {
                        heads: vec![
                            HeadMask::new(0..1, mask("causal & groups(4)")),
                            HeadMask::new(1..3, mask("roll(2, causal & groups(4))")),
                        ],
                        scale: 0.6,
                        rope: None,
                    },
                    &[&[1, 3, 8, 2], &[1, 3, 8, 2], &[1, 3, 8, 2]],
                ),
            ),
            (
                // RoPE on load: dq and dk come back through the transposed rotation.
                "fused-attention-rope",
                op_graph(
                    Op::FusedAttention {
                        heads: vec![
                            HeadMask::new(0..1, mask("causal")),
                            HeadMask::new(1..2, mask("roll(2, causal & groups(4))")),
                        ],
                        scale: 0.6,
                        rope: Some(RopeParams::new(100.0, 2.0)),
                    },
                    &[&[1, 2, 8, 4], &[1, 2, 8, 4], &[1, 2, 8, 3]],
                ),
            ),
        ])
        .collect();
    for (label, graph) in &cases {
        let positive: &[&str] = if *label == "log" { &["x0"] } else { &[] };
        check(label, graph, positive, &mut rng, seed);
    }
}

/// One LLaMA decoder layer on `[T, C]` (batch 1): RMSNorm, q/k/v projections
/// with LoRA on q and v, grouped-query attention (one key/value head shared by
/// two query heads, repeated as transformers' `repeat_kv` does), RoPE with
/// position interpolation, an S²-Attn mask, the output projection, a residual,
/// and the SwiGLU MLP with its residual. Gradients flow to the input, the LoRA
/// factors and the norm weights; the projections are frozen.
fn llama_layer() -> ValidGraph {
    let (t, c, heads, kv_heads, hd, ffn, rank) = (8, 8, 2, 1, 4, 12, 2);
    let alpha_over_rank = 4.0 / rank as f64;
    let mut g = Graph::new("llama-layer");
    let x = g.input("x", f32s(&[t, c]));
    let frozen = |g: &mut Graph, name: &str, shape: &[usize]| g.parameter(name, f32s(shape), false);
    let trainable = |g: &mut Graph, name: &str, shape: &[usize]| g.parameter(name, f32s(shape), true);
    let norm1 = trainable(&mut g, "input_layernorm", &[c]);
    let h = g.rms_norm(x, norm1, 1e-5).unwrap();
    // y = h Wᵀ + (alpha / r) (h Aᵀ) Bᵀ.
    let project = |g: &mut Graph, name: &str, out: usize, lora: bool| {
        let w = frozen(g, &format!("{name}.weight"), &[out, c]);
        let y = g.matmul(h, w, false, true).unwrap();
        if !lora {
            return y;
        }
        let a = trainable(g, &format!("{name}.lora_A"), &[rank, c]);
        let b = trainable(g, &format!("{name}.lora_B"), &[out, rank]);
        let ha = g.matmul(h, a, false, true).unwrap();
        let hab = g.matmul(ha, b, false, true).unwrap();
        let scaled = g.scale(hab, alpha_over_rank).unwrap();
        g.elementwise_add(y, scaled).unwrap()
    };
    let q = project(&mut g, "q_proj", heads * hd, true);
    let k = project(&mut g, "k_proj", kv_heads * hd, false);
    let v = project(&mut g, "v_proj", kv_heads * hd, true);
    // [T, n * hd] -> [1, n, T, hd].
    let split = |g: &mut Graph, x: NodeId, n: usize| {
        let r = g.reshape(x, &[1, t, n, hd]).unwrap();
        g.permute(r, &[0, 2, 1, 3]).unwrap()
    };
    let repeat_kv = |g: &mut Graph, x: NodeId| {
        let b = g.broadcast(x, 2, heads / kv_heads).unwrap();
        g.reshape(b, &[1, heads, t, hd]).unwrap()
    };
    let q = split(&mut g, q, heads);
    let q = g.rope(q, 10000.0, 2.0).unwrap();
    let k = split(&mut g, k, kv_heads);
    let k = g.rope(k, 10000.0, 2.0).unwrap();
    let k = repeat_kv(&mut g, k);
    let v = split(&mut g, v, kv_heads);
    let v = repeat_kv(&mut g, v);
    let s2 = mask("roll(2 * h, causal & groups(4))");
    let o = g.attention(q, k, v, s2, 0, 0.5).unwrap();
    let o = g.permute(o, &[0, 2, 1, 3]).unwrap();
    let o = g.reshape(o, &[t, heads * hd]).unwrap();
    let wo = frozen(&mut g, "o_proj.weight", &[c, heads * hd]);
    let o = g.matmul(o, wo, false, true).unwrap();
    let x = g.elementwise_add(x, o).unwrap();

    let norm2 = trainable(&mut g, "post_attention_layernorm", &[c]);
    let h = g.rms_norm(x, norm2, 1e-5).unwrap();
    let w_gate = frozen(&mut g, "gate_proj.weight", &[ffn, c]);
    let w_up = frozen(&mut g, "up_proj.weight", &[ffn, c]);
    let w_down = frozen(&mut g, "down_proj.weight", &[c, ffn]);
    let gate = g.matmul(h, w_gate, false, true).unwrap();
    let gate = g.silu(gate).unwrap();
    let up = g.matmul(h, w_up, false, true).unwrap();
    let act = g.elementwise_mul(gate, up).unwrap();
    let down = g.matmul(act, w_down, false, true).unwrap();
    let y = g.elementwise_add(x, down).unwrap();
    g.set_output("y", y);
    g.validate().unwrap()
}

#[test]
fn a_llama_layer_with_gqa_lora_and_s2_attn_matches_finite_differences() {
    let (mut rng, seed) = rng();
    let graph = llama_layer();
    let grads =
        differentiate(&graph, &trainable_parameters(&graph).iter().map(String::as_str).collect::<Vec<_>>())
            .unwrap();
    let names: Vec<&str> = grads.grads.iter().map(|(leaf, _)| leaf.as_str()).collect();
    assert_eq!(
        names,
        [
            "input_layernorm",
            "q_proj.lora_A",
            "q_proj.lora_B",
            "v_proj.lora_A",
            "v_proj.lora_B",
            "post_attention_layernorm"
        ]
    );
    check("llama-layer", &graph, &[], &mut rng, seed);
}

/// Token ids through a trainable embedding and a projection to logits, and
/// the mean next-token cross-entropy against targets with ignored rows.
#[test]
fn embedding_and_cross_entropy_match_finite_differences() {
    let (mut rng, seed) = rng();
    let mut g = Graph::new("lm");
    let ids = g.input("ids", TensorType::new(DType::I32, [2, 3]));
    let targets = g.input("targets", TensorType::new(DType::I32, [2, 3]));
    let table = g.parameter("embed", f32s(&[5, 4]), true);
    let head = g.parameter("lm_head", f32s(&[5, 4]), true);
    let x = g.add(Op::Embedding, &[ids, table]).unwrap();
    let rows = g.reshape(x, &[6, 4]).unwrap();
    let logits = g.matmul(rows, head, false, true).unwrap();
    let logits = g.reshape(logits, &[2, 3, 5]).unwrap();
    let loss = g.add(Op::CrossEntropy, &[logits, targets]).unwrap();
    g.set_output("loss", loss);
    g.set_output("logits", logits);
    let graph = g.validate().unwrap();
    check("lm", &graph, &[], &mut rng, seed);

    let err = differentiate(&graph, &["ids"]).unwrap_err();
    assert_eq!(err.to_string(), "`ids` has type i32[2, 3]; only floating-point leaves have gradients");
}

/// The model: two LLaMA layers with GQA, LoRA on q, v and o, an
/// S²-Attn layer and a causal one, trainable embedding and norms (LongLoRA's
/// `embed,norm`), through the LM head to the next-token loss.
#[test]
fn a_two_layer_llama_with_gqa_lora_and_s2_attn_matches_finite_differences() {
    let (mut rng, seed) = rng();
    let config = llama::tiny_config(false);
    let opts = ModelGraphOptions {
        lora: Some(llama::lora()),
        train_embed: true,
        train_norm: true,
        loss: true,
        ..ModelGraphOptions::new(1, 8)
    };
    let graph = build_llama_graph(&config, Some(&llama::schedule(8)), &opts).unwrap();
    let trainable = trainable_parameters(&graph);
    assert_eq!(trainable.len(), 1 + 2 * 2 + 1 + 2 * 6, "{trainable:?}");
    check_with("llama", &graph, &[], 0.5, &mut rng, seed);
}

#[test]
fn a_node_used_twice_sums_its_cotangents() {
    // y = x * x + exp(x): dy/dx = 2x + exp(x), through three uses of x.
    let (mut rng, seed) = rng();
    let mut g = Graph::new("twice");
    let x = g.input("x", f32s(&[3, 2]));
    let sq = g.elementwise_mul(x, x).unwrap();
    let e = g.exp(x).unwrap();
    let y = g.elementwise_add(sq, e).unwrap();
    g.set_output("y", y);
    g.set_output("e", e);
    check("twice", &g.validate().unwrap(), &[], &mut rng, seed);
}

#[test]
fn every_example_pattern_graph_matches_finite_differences() {
    let (mut rng, seed) = rng();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/patterns");
    let overrides = Overrides { seq_len: Some(16), n_heads: Some(4), ..Overrides::default() };
    for name in
        ["s2attn-roll", "s2attn-flash", "causal", "sink-window", "longgen-local-stride", "longgen-hybrid"]
    {
        let schedule = weft_ir::spec::load_schedule(&dir.join(format!("{name}.toml")), &overrides).unwrap();
        for pattern in &schedule.patterns {
            let graph =
                lower_pattern(pattern, &LowerOptions { batch: 2, seq_len: 16, head_dim: 3, value_dim: 2 })
                    .unwrap();
            check(name, &graph, &[], &mut rng, seed);
        }
    }
}

#[test]
fn the_backward_graph_names_its_seeds_and_gradients() {
    let graph = op_graph(
        Op::Attention { mask: mask("causal"), head_offset: 0, scale: 1.0 },
        &[&[1, 1, 4, 2], &[1, 1, 4, 2], &[1, 1, 4, 2]],
    );
    let grads = differentiate(&graph, &["x0", "x2"]).unwrap();
    assert_eq!(grads.seeds, vec![("y".to_string(), "dy".to_string())]);
    assert_eq!(grads.grads, vec![("x0".into(), "dx0".into()), ("x2".into(), "dx2".into())]);
    let outputs: Vec<&str> = grads.graph.outputs().iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(outputs, ["y", "dx0", "dx2"]);
    // dk is not asked for, so no node computes it: one matmul fewer than with all three.
    let all = differentiate(&graph, &["x0", "x1", "x2"]).unwrap();
    let matmuls =
        |g: &ValidGraph| g.node_ids().filter(|&id| matches!(g.node(id).op, Op::MatMul { .. })).count();
    assert_eq!(matmuls(&all.graph), matmuls(&grads.graph) + 1);
    assert_eq!(grad_name("o"), "do");
}

/// A training step seeds its loss alone: the other output (here `y`, as a
/// model's `logits`) gets no cotangent input and no add into the loss's
/// gradient. Naming an output the graph lacks is an error.
#[test]
fn seeding_only_some_outputs_leaves_the_others_out_of_the_backward_pass() {
    let mut g = Graph::new("two outputs");
    let x = g.input("x", f32s(&[2, 3]));
    let w = g.parameter("w", f32s(&[3, 3]), true);
    let y = g.matmul(x, w, false, false).unwrap();
    let loss = g.add(Op::Unary(UnaryOp::Exp), &[y]).unwrap();
    g.set_output("y", y);
    g.set_output("loss", loss);
    let graph = g.validate().unwrap();
    let adds = |g: &ValidGraph| g.node_ids().filter(|&id| matches!(g.node(id).op, Op::Add)).count();

    let all = differentiate(&graph, &["w"]).unwrap();
    assert_eq!(all.seeds, vec![("y".into(), "dy".into()), ("loss".into(), "dloss".into())]);
    let seeded = differentiate_outputs(&graph, Some(&["loss"]), &["w"]).unwrap();
    assert_eq!(seeded.seeds, vec![("loss".to_string(), "dloss".to_string())]);
    assert!(!seeded.graph.leaves().any(|(_, name)| name == "dy"));
    assert_eq!(adds(&all.graph), adds(&seeded.graph) + 1);

    let err = differentiate_outputs(&graph, Some(&["logits"]), &["w"]).unwrap_err();
    assert!(matches!(err, AutodiffError::UnknownOutput { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "cannot seed the backward pass at `logits`: the graph has no output of that name (the outputs are y, loss)"
    );
}

#[test]
fn only_trainable_parameters_and_inputs_get_gradients() {
    let mut g = Graph::new("lora");
    let x = g.input("x", f32s(&[2, 3]));
    let w = g.parameter("w", f32s(&[3, 3]), false);
    let a = g.parameter("lora_a", f32s(&[3, 3]), true);
    let xw = g.matmul(x, w, false, false).unwrap();
    let xa = g.matmul(x, a, false, false).unwrap();
    let y = g.elementwise_add(xw, xa).unwrap();
    g.set_output("y", y);
    let graph = g.validate().unwrap();
    assert_eq!(trainable_parameters(&graph), ["lora_a"]);

    let err = differentiate(&graph, &["w"]).unwrap_err();
    assert!(matches!(err, AutodiffError::Frozen { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "`w` is a frozen parameter; only inputs and trainable parameters get gradients"
    );

    let err = differentiate(&graph, &["z"]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot differentiate with respect to `z`: no input or parameter has that name (the leaves are lora_a, w, x)"
    );
    let err = differentiate(&graph, &["x", "x"]).unwrap_err();
    assert_eq!(err.to_string(), "`x` is asked for twice");

    let (mut rng, seed) = rng();
    let grads = differentiate(&graph, &["lora_a"]).unwrap();
    assert_eq!(grads.grads, vec![("lora_a".into(), "dlora_a".into())]);
    let _ = (&mut rng, seed);
}

#[test]
fn errors_name_the_leaf_or_the_op() {
    let mut g = Graph::new("g");
    let x = g.input("x", f32s(&[2, 3]));
    let unused = g.input("unused", f32s(&[2]));
    let y = g.reduce_max(x, 1).unwrap();
    g.set_output("y", y);
    let _ = unused;
    let graph = g.validate().unwrap();
    let err = differentiate(&graph, &["unused"]).unwrap_err();
    assert_eq!(err.to_string(), "no output depends on `unused`, so it has no gradient");
    let err = differentiate(&graph, &["x"]).unwrap_err();
    assert!(matches!(err, AutodiffError::NoRule { op: "reduce-max", .. }), "{err:?}");
    assert_eq!(err.to_string(), "node %2: op `reduce-max` has no gradient rule yet");

    // The gradient of `x` would be `dx`, which is already a leaf.
    let mut g = Graph::new("clash");
    let x = g.input("x", f32s(&[2]));
    let dx = g.input("dx", f32s(&[2]));
    let y = g.elementwise_add(x, dx).unwrap();
    g.set_output("y", y);
    let err = differentiate(&g.validate().unwrap(), &["x"]).unwrap_err();
    assert_eq!(err.to_string(), "the backward pass needs the name `dx`, which the graph already uses");
}
