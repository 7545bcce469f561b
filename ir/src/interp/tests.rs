//! Interpreter tests: every op on hand-computed examples, roll against torch
//! semantics, attention against an independent direct loop.

use std::collections::HashMap;

use expect_test::expect;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::graph::{
    AttentionGrad, DType, Graph, HeadRange, NodeId, Op, RopeFreqs, RopeParams, TensorType, UnaryOp,
};
use crate::mask::{ConcreteMask, Mask};

fn t(shape: &[usize], data: &[f64]) -> Tensor {
    Tensor::new(shape.to_vec(), data.to_vec()).unwrap()
}

/// Uniform values in [-1, 1) from a fixed seed (never all zeros).
fn random(shape: &[usize], seed: u64) -> Tensor {
    let mut rng = StdRng::seed_from_u64(seed);
    let x = Tensor::from_fn(shape.to_vec(), |_| rng.random_range(-1.0..1.0));
    assert!(x.data().iter().any(|&v| v != 0.0));
    x
}

fn mask(src: &str) -> Mask {
    Mask::new(crate::expr::parse_mask(src).unwrap()).unwrap()
}

/// Runs `op` on inputs `x0, x1, ...` with the given values and returns its value.
fn apply(op: Op, args: &[&Tensor]) -> Tensor {
    let mut g = Graph::new("one-op");
    let mut feeds = HashMap::new();
    let ids: Vec<NodeId> = args
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let name = format!("x{i}");
            feeds.insert(name.clone(), (*a).clone());
            g.input(&name, TensorType::f32(a.shape()))
        })
        .collect();
    let y = g.add(op, &ids).unwrap();
    g.set_output("y", y);
    let mut out = run(&g.validate().unwrap(), &feeds).unwrap();
    out.remove("y").unwrap()
}

fn assert_close(got: &Tensor, want: &Tensor) {
    let err = got.max_rel_error(want);
    assert!(err < 1e-12, "relative error {err}\n got {got:?}\nwant {want:?}");
}

#[test]
fn tensor_checks_its_length_and_indexes_row_major() {
    let x = Tensor::from_fn(vec![2, 3], |i| (10 * i[0] + i[1]) as f64);
    assert_eq!(x.data(), &[0.0, 1.0, 2.0, 10.0, 11.0, 12.0]);
    assert_eq!(x.get(&[1, 2]), Some(12.0));
    assert_eq!(x.get(&[2, 0]), None);
    assert_eq!(Tensor::from_fn(vec![], |_| 7.0), Tensor::scalar(7.0));
    let err = Tensor::new(vec![2, 3], vec![1.0; 5]).unwrap_err();
    expect!["shape [2, 3] holds 6 elements, but 5 values were given"].assert_eq(&err.to_string());
}

#[test]
fn max_rel_error_is_relative_to_the_reference() {
    let a = t(&[3], &[1.0, 2.0, 4.0]);
    let b = t(&[3], &[1.0, 2.5, 4.0]);
    assert_eq!(a.max_rel_error(&b), 0.5 / 4.0);
    assert_eq!(a.max_rel_error(&a), 0.0);
    assert_eq!(a.max_rel_error(&t(&[1, 3], &[1.0, 2.0, 4.0])), f64::INFINITY);
    assert_eq!(t(&[1], &[f64::NAN]).max_rel_error(&t(&[1], &[0.0])), f64::INFINITY);
}

#[test]
fn roll_follows_torch() {
    let x = t(&[5], &[0.0, 1.0, 2.0, 3.0, 4.0]);
    let roll = |shift| apply(Op::Roll { axis: 0, shift, heads: None }, &[&x]).into_data();
    // torch.roll(torch.arange(5), 2) == [3, 4, 0, 1, 2]
    assert_eq!(roll(2), [3.0, 4.0, 0.0, 1.0, 2.0]);
    assert_eq!(roll(-1), [1.0, 2.0, 3.0, 4.0, 0.0]);
    assert_eq!(roll(7), roll(2));
    assert_eq!(roll(-5), x.data());
    assert_eq!(roll(i64::MIN), roll(i64::MIN.rem_euclid(5)));
    // torch.roll(torch.arange(6).view(2, 3), 1, dims=1) == [[2, 0, 1], [5, 3, 4]]
    let m = t(&[2, 3], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    let rolled = apply(Op::Roll { axis: 1, shift: 1, heads: None }, &[&m]);
    assert_eq!(rolled.data(), &[2.0, 0.0, 1.0, 5.0, 3.0, 4.0]);
    // ... and dims=0 swaps the rows.
    let rolled = apply(Op::Roll { axis: 0, shift: 1, heads: None }, &[&m]);
    assert_eq!(rolled.data(), &[3.0, 4.0, 5.0, 0.0, 1.0, 2.0]);
}

#[test]
fn roll_with_a_head_range_leaves_other_heads_untouched() {
    // [B=2, H=4, N=6, D=2]: roll the sequence axis of heads 2 and 3 by -2 (S2-Attn's shift).
    let x = random(&[2, 4, 6, 2], 1);
    let op = Op::Roll { axis: 2, shift: -2, heads: Some(HeadRange::new(1, 2, 4)) };
    let y = apply(op, &[&x]);
    for b in 0..2 {
        for h in 0..4 {
            for n in 0..6 {
                for d in 0..2 {
                    let src = if h >= 2 { (n + 2) % 6 } else { n };
                    assert_eq!(y.get(&[b, h, n, d]), x.get(&[b, h, src, d]), "b={b} h={h} n={n} d={d}");
                }
            }
        }
    }
}

#[test]
fn matmul_with_and_without_transposes() {
    let a = t(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let b = t(&[3, 2], &[7.0, 8.0, 9.0, 10.0, 11.0, 12.0]);
    let mm = |a: &Tensor, b: &Tensor, ta, tb| apply(Op::MatMul { transpose_a: ta, transpose_b: tb }, &[a, b]);
    assert_eq!(mm(&a, &b, false, false), t(&[2, 2], &[58.0, 64.0, 139.0, 154.0]));
    // a^T a
    assert_eq!(mm(&a, &a, true, false), t(&[3, 3], &[17.0, 22.0, 27.0, 22.0, 29.0, 36.0, 27.0, 36.0, 45.0]));
    // a a^T
    assert_eq!(mm(&a, &a, false, true), t(&[2, 2], &[14.0, 32.0, 32.0, 77.0]));
    // a^T b^T = (b a)^T
    assert_eq!(mm(&a, &b, true, true), t(&[3, 3], &[39.0, 49.0, 59.0, 54.0, 68.0, 82.0, 69.0, 87.0, 105.0]));
    // Batched: each batch is its own product.
    let batched_a = t(&[2, 1, 2], &[1.0, 2.0, 3.0, 4.0]);
    let batched_b = t(&[2, 2, 1], &[1.0, 1.0, 2.0, -1.0]);
    assert_eq!(mm(&batched_a, &batched_b, false, false), t(&[2, 1, 1], &[3.0, 2.0]));
}

#[test]
fn elementwise_ops() {
    let a = t(&[2, 2], &[1.0, -2.0, 0.5, 0.0]);
    let b = t(&[2, 2], &[3.0, 4.0, -1.0, 2.0]);
    assert_eq!(apply(Op::Add, &[&a, &b]), t(&[2, 2], &[4.0, 2.0, -0.5, 2.0]));
    assert_eq!(apply(Op::Mul, &[&a, &b]), t(&[2, 2], &[3.0, -8.0, -0.5, 0.0]));
    assert_eq!(apply(Op::Scale { factor: -2.0 }, &[&a]), t(&[2, 2], &[-2.0, 4.0, -1.0, -0.0]));
    let e = t(&[3], &[0.0, 1.0, 2.0f64.ln()]);
    assert_close(&apply(Op::Unary(UnaryOp::Exp), &[&e]), &t(&[3], &[1.0, std::f64::consts::E, 2.0]));
    assert_close(
        &apply(Op::Unary(UnaryOp::Log), &[&t(&[2], &[1.0, std::f64::consts::E])]),
        &t(&[2], &[0.0, 1.0]),
    );
    // silu(0) = 0, silu(ln 3) = ln 3 * 3/4, silu(-ln 3) = -ln 3 / 4.
    let l3 = 3.0f64.ln();
    assert_close(
        &apply(Op::Unary(UnaryOp::Silu), &[&t(&[3], &[0.0, l3, -l3])]),
        &t(&[3], &[0.0, 0.75 * l3, -0.25 * l3]),
    );
}

#[test]
fn layout_ops() {
    let x = Tensor::from_fn(vec![2, 3], |i| (10 * i[0] + i[1]) as f64); // [[0 1 2] [10 11 12]]
    assert_eq!(
        apply(Op::Reshape { shape: vec![3, 2] }, &[&x]),
        t(&[3, 2], &[0.0, 1.0, 2.0, 10.0, 11.0, 12.0])
    );
    assert_eq!(
        apply(Op::Permute { perm: vec![1, 0] }, &[&x]),
        t(&[3, 2], &[0.0, 10.0, 1.0, 11.0, 2.0, 12.0])
    );
    let cube = Tensor::from_fn(vec![2, 3, 4], |i| (100 * i[0] + 10 * i[1] + i[2]) as f64);
    let p = apply(Op::Permute { perm: vec![2, 0, 1] }, &[&cube]);
    assert_eq!(p.shape(), &[4, 2, 3]);
    assert_eq!(p.get(&[3, 1, 2]), Some(123.0));
    assert_eq!(apply(Op::Slice { axis: 1, start: 1, end: 3 }, &[&x]), t(&[2, 2], &[1.0, 2.0, 11.0, 12.0]));
    assert_eq!(apply(Op::Slice { axis: 0, start: 1, end: 2 }, &[&x]), t(&[1, 3], &[10.0, 11.0, 12.0]));
    let y = t(&[2, 1], &[-1.0, -2.0]);
    assert_eq!(
        apply(Op::Concat { axis: 1 }, &[&x, &y]),
        t(&[2, 4], &[0.0, 1.0, 2.0, -1.0, 10.0, 11.0, 12.0, -2.0])
    );
    assert_eq!(
        apply(Op::Concat { axis: 0 }, &[&x, &x]),
        t(&[4, 3], &[0.0, 1.0, 2.0, 10.0, 11.0, 12.0, 0.0, 1.0, 2.0, 10.0, 11.0, 12.0])
    );
    assert_eq!(apply(Op::Concat { axis: 0 }, &[&y]), y);
}

#[test]
fn softmax_and_reductions() {
    let l3 = 3.0f64.ln();
    // Rows [0, ln 3] -> [1/4, 3/4]; a huge shared offset must not overflow.
    let x = t(&[2, 2], &[0.0, l3, 1000.0, 1000.0 + l3]);
    assert_close(&apply(Op::Softmax { axis: 1 }, &[&x]), &t(&[2, 2], &[0.25, 0.75, 0.25, 0.75]));
    let cols = t(&[2, 2], &[0.0, 5.0, l3, 5.0]);
    assert_close(&apply(Op::Softmax { axis: 0 }, &[&cols]), &t(&[2, 2], &[0.25, 0.5, 0.75, 0.5]));

    let m = t(&[2, 3], &[1.0, 5.0, 3.0, -4.0, 2.0, 8.0]);
    assert_eq!(apply(Op::ReduceSum { axis: 1 }, &[&m]), t(&[2], &[9.0, 6.0]));
    assert_eq!(apply(Op::ReduceSum { axis: 0 }, &[&m]), t(&[3], &[-3.0, 7.0, 11.0]));
    assert_eq!(apply(Op::ReduceMax { axis: 1 }, &[&m]), t(&[2], &[5.0, 8.0]));
    assert_eq!(apply(Op::ReduceMax { axis: 0 }, &[&m]), t(&[3], &[1.0, 5.0, 8.0]));
    assert_eq!(apply(Op::ReduceMean { axis: 1 }, &[&m]), t(&[2], &[3.0, 2.0]));
    assert_eq!(apply(Op::ReduceSum { axis: 0 }, &[&t(&[3], &[1.0, 2.0, 3.0])]), Tensor::scalar(6.0));
}

#[test]
fn rms_norm_divides_by_the_root_mean_square() {
    // Rows [3, 4] (rms sqrt(12.5)) and [2, -2] (rms 2), eps 0, weight [1, 10].
    let x = t(&[2, 2], &[3.0, 4.0, 2.0, -2.0]);
    let w = t(&[2], &[1.0, 10.0]);
    let r = 12.5f64.sqrt();
    assert_close(&apply(Op::RmsNorm { eps: 0.0 }, &[&x, &w]), &t(&[2, 2], &[3.0 / r, 40.0 / r, 1.0, -10.0]));
    // eps is added under the root: mean 4 + eps 5 = 9, so row 2 is [2, -2] / 3 * w.
    let y = apply(Op::RmsNorm { eps: 5.0 }, &[&x, &w]);
    assert_close(&t(&[2], &y.data()[2..]), &t(&[2], &[2.0 / 3.0, -20.0 / 3.0]));
}

#[test]
fn rope_rotates_pairs_half_a_head_apart() {
    // D = 2: one pair, frequency 1, so x = [1, 0] at position p becomes [cos p, sin p].
    let x = Tensor::from_fn(vec![1, 1, 4, 2], |i| if i[3] == 0 { 1.0 } else { 0.0 });
    let y = apply(Op::Rope { theta: 10000.0, position_scale: 1.0, freqs: RopeFreqs::Default }, &[&x]);
    let want = Tensor::from_fn(vec![1, 1, 4, 2], |i| {
        let p = i[2] as f64;
        if i[3] == 0 { p.cos() } else { p.sin() }
    });
    assert_close(&y, &want);
    // D = 4, theta = 100: dims (0, 2) turn at frequency 1, dims (1, 3) at 100^(-1/2) = 0.1.
    let x = t(&[1, 1, 2, 4], &[0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 3.0, 4.0]);
    let y = apply(Op::Rope { theta: 100.0, position_scale: 1.0, freqs: RopeFreqs::Default }, &[&x]);
    let (c1, s1, c2, s2) = (1f64.cos(), 1f64.sin(), 0.1f64.cos(), 0.1f64.sin());
    let want = t(
        &[1, 1, 2, 4],
        &[
            0.0,
            0.0,
            0.0,
            0.0,
            1.0 * c1 - 3.0 * s1,
            2.0 * c2 - 4.0 * s2,
            3.0 * c1 + 1.0 * s1,
            4.0 * c2 + 2.0 * s2,
        ],
    );
    assert_close(&y, &want);
}

#[test]
fn rope_position_scale_interpolates_positions() {
    // Every position holds the same vector, so only the angle differs between rows.
    let row = random(&[8], 2);
    let x = Tensor::from_fn(vec![1, 2, 16, 8], |i| row.data()[i[3]]);
    let plain = apply(Op::Rope { theta: 10000.0, position_scale: 1.0, freqs: RopeFreqs::Default }, &[&x]);
    let scaled = apply(Op::Rope { theta: 10000.0, position_scale: 2.0, freqs: RopeFreqs::Default }, &[&x]);
    for h in 0..2 {
        for p in 0..8 {
            for d in 0..8 {
                let (a, b) = (scaled.get(&[0, h, 2 * p, d]).unwrap(), plain.get(&[0, h, p, d]).unwrap());
                assert!((a - b).abs() < 1e-12, "h={h} p={p} d={d}: {a} vs {b}");
            }
        }
    }
    // ... and the scale matters: position 1 turns by half the angle.
    assert_ne!(scaled.get(&[0, 0, 1, 0]), plain.get(&[0, 0, 1, 0]));
}

/// Attention written independently of `masked_attention`: a dense score matrix
/// with disallowed entries at -inf, normalised without subtracting the maximum.
fn reference_attention(q: &Tensor, k: &Tensor, v: &Tensor, masks: &[ConcreteMask], scale: f64) -> Tensor {
    let (b, h, n, d) = (q.shape()[0], q.shape()[1], q.shape()[2], q.shape()[3]);
    let dv = v.shape()[3];
    Tensor::from_fn(vec![b, h, n, dv], |idx| {
        let (bi, hi, i, c) = (idx[0], idx[1], idx[2], idx[3]);
        let scores: Vec<f64> = (0..n)
            .map(|j| {
                if masks[hi].allows(n as i64, i as i64, j as i64) {
                    (0..d)
                        .map(|e| q.get(&[bi, hi, i, e]).unwrap() * k.get(&[bi, hi, j, e]).unwrap())
                        .sum::<f64>()
                        * scale
                } else {
                    f64::NEG_INFINITY
                }
            })
            .collect();
        let weights: Vec<f64> = scores.iter().map(|s| s.exp()).collect();
        let total: f64 = weights.iter().sum();
        if total == 0.0 {
            return 0.0;
        }
        (0..n).map(|j| weights[j] / total * v.get(&[bi, hi, j, c]).unwrap()).sum()
    })
}

#[test]
fn attention_matches_a_direct_loop_on_random_inputs() {
    let (b, h, n, d, dv) = (2, 4, 8, 4, 3);
    let cases = [
        ("causal", 0),
        ("causal & groups(4)", 0),
        ("roll(h * 2, causal & groups(4))", 1),
        ("causal & (window(3) | sink(1))", 0),
        ("local_stride(2, 1, 2)", 0),
    ];
    for (seed, (src, head_offset)) in cases.into_iter().enumerate() {
        let seed = 10 * seed as u64;
        let (q, k, v) =
            (random(&[b, h, n, d], seed), random(&[b, h, n, d], seed + 1), random(&[b, h, n, dv], seed + 2));
        let m = mask(src);
        let mut g = Graph::new("attention");
        let (qi, ki, vi) = (
            g.input("q", TensorType::f32(q.shape())),
            g.input("k", TensorType::f32(k.shape())),
            g.input("v", TensorType::f32(v.shape())),
        );
        let o = g.attention(qi, ki, vi, m.clone(), head_offset, 0.7).unwrap();
        g.set_output("o", o);
        let feeds = HashMap::from([
            ("q".to_string(), q.clone()),
            ("k".to_string(), k.clone()),
            ("v".to_string(), v.clone()),
        ]);
        let got = run(&g.validate().unwrap(), &feeds).unwrap().remove("o").unwrap();
        let masks: Vec<ConcreteMask> = (0..h).map(|i| m.for_head(head_offset + i).unwrap()).collect();
        let want = reference_attention(&q, &k, &v, &masks, 0.7);
        assert_close(&got, &want);
        assert_close(&masked_attention(&q, &k, &v, &masks, 0.7).unwrap(), &want);
    }
}

#[test]
fn full_mask_attention_equals_the_matmul_softmax_graph() {
    let mut g = Graph::new("dense");
    let ty = TensorType::f32([1, 2, 5, 4]);
    let (q, k, v) = (g.input("q", ty.clone()), g.input("k", ty.clone()), g.input("v", ty));
    let att = g.attention(q, k, v, mask("full"), 0, 0.5).unwrap();
    let s = g.matmul(q, k, false, true).unwrap();
    let s = g.scale(s, 0.5).unwrap();
    let p = g.softmax(s, 3).unwrap();
    let o = g.matmul(p, v, false, false).unwrap();
    g.set_output("attention", att);
    g.set_output("dense", o);
    let feeds: HashMap<String, Tensor> = ["q", "k", "v"]
        .iter()
        .enumerate()
        .map(|(i, n)| (n.to_string(), random(&[1, 2, 5, 4], 20 + i as u64)))
        .collect();
    let out = run(&g.validate().unwrap(), &feeds).unwrap();
    assert_close(&out["attention"], &out["dense"]);
}

#[test]
fn a_query_with_no_allowed_key_outputs_zeros() {
    // `causal & !window(1)`: a query sees strictly earlier keys, so query 0 sees none.
    let masks = vec![
        crate::expr::parse_mask("causal & !window(1)")
            .unwrap()
            .try_map_sizes(&mut |s, _| s.eval(&|_| None))
            .unwrap(),
    ];
    let (q, k, v) = (random(&[1, 1, 4, 2], 30), random(&[1, 1, 4, 2], 31), random(&[1, 1, 4, 3], 32));
    let o = masked_attention(&q, &k, &v, &masks, 1.0).unwrap();
    assert_eq!(&o.data()[..3], &[0.0, 0.0, 0.0]);
    // Query 1 sees only key 0, so it copies v[0].
    assert_eq!(&o.data()[3..6], &v.data()[..3]);
    assert!(o.data()[6..].iter().all(|&x| x != 0.0));
}

#[test]
fn run_all_returns_every_node_and_every_op_runs() {
    let g = crate::graph::tests::every_op_graph().validate().unwrap();
    let feeds: HashMap<String, Tensor> = g
        .leaves()
        .enumerate()
        .map(|(i, (id, name))| (name.to_string(), random(&g.node(id).ty.shape, 40 + i as u64)))
        .collect();
    let values = run_all(&g, &feeds).unwrap();
    assert_eq!(values.len(), g.len());
    for id in g.node_ids() {
        assert_eq!(values[id.index()].shape(), g.node(id).ty.shape, "{id}");
        assert!(values[id.index()].data().iter().all(|x| x.is_finite()), "{id}");
    }
    let outputs = run(&g, &feeds).unwrap();
    assert_eq!(outputs.len(), 8);
    for (name, id) in g.outputs() {
        assert_eq!(outputs[name], values[id.index()]);
    }
}

#[test]
fn input_errors_name_the_input() {
    let mut g = Graph::new("g");
    let x = g.input("x", TensorType::f32([2, 3]));
    let w = g.parameter("w", TensorType::new(DType::F16, [2, 3]), true);
    let y = g.elementwise_add(x, x).unwrap();
    g.set_output("y", y);
    let _ = w;
    let g = g.validate().unwrap();
    let x_val = random(&[2, 3], 50);
    let err = |feeds: &[(&str, &Tensor)]| {
        let feeds = feeds.iter().map(|(n, t)| (n.to_string(), (*t).clone())).collect();
        run(&g, &feeds).unwrap_err().to_string()
    };
    expect!["missing input `w`; the graph takes `x`, `w`"].assert_eq(&err(&[("x", &x_val)]));
    expect!["input `w` has shape [3, 2], but the graph declares [2, 3]"]
        .assert_eq(&err(&[("x", &x_val), ("w", &random(&[3, 2], 51))]));
    expect!["unexpected input `z`; the graph takes `x`, `w`"].assert_eq(&err(&[
        ("x", &x_val),
        ("w", &x_val),
        ("z", &x_val),
    ]));
}

#[test]
fn masked_attention_checks_its_arguments() {
    let q = random(&[1, 2, 4, 2], 60);
    let causal = ConcreteMask::Causal;
    let err = masked_attention(&q, &q, &q, std::slice::from_ref(&causal), 1.0).unwrap_err();
    expect!["`masked_attention`: 1 masks for 2 heads"].assert_eq(&err.to_string());
    let err = masked_attention(&q, &random(&[1, 2, 3, 2], 61), &q, &[causal.clone(), causal.clone()], 1.0)
        .unwrap_err();
    expect!["`masked_attention`: q and k must have the same shape and v the same [B, H, N]: q [1, 2, 4, 2], k [1, 2, 3, 2], v [1, 2, 4, 2]"]
        .assert_eq(&err.to_string());
    let err = masked_attention(&random(&[2, 4, 2], 62), &q, &q, &[causal], 1.0).unwrap_err();
    expect!["`masked_attention`: q and v must have rank 4, found [2, 4, 2] and [1, 2, 4, 2]"]
        .assert_eq(&err.to_string());
}

/// A fresh seed for each run; `WEFT_TEST_SEED` replays one.
fn fresh_seed() -> u64 {
    let seed = std::env::var("WEFT_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    eprintln!("seed {seed} (rerun with WEFT_TEST_SEED={seed})");
    seed
}

#[test]
fn fused_attention_uses_each_heads_mask() {
    let (b, h, n, d, dv) = (2, 4, 16, 4, 3);
    let seed = fresh_seed();
    let (q, k, v) = (
        random(&[b, h, n, d], seed),
        random(&[b, h, n, d], seed.wrapping_add(1)),
        random(&[b, h, n, dv], seed.wrapping_add(2)),
    );
    let ranges =
        [(0..1, mask("causal")), (1..3, mask("roll(h * 3, causal & groups(4))")), (3..4, mask("sink(2)"))];
    let heads: Vec<crate::graph::HeadMask> =
        ranges.iter().map(|(r, m)| crate::graph::HeadMask::new(r.clone(), m.clone())).collect();
    let got = apply(Op::FusedAttention { heads, scale: 0.6, rope: None }, &[&q, &k, &v]);
    let masks: Vec<ConcreteMask> = (0..h)
        .map(|head| {
            let (_, m) = ranges.iter().find(|(r, _)| r.contains(&head)).unwrap();
            m.for_head(head).unwrap()
        })
        .collect();
    assert_close(&got, &reference_attention(&q, &k, &v, &masks, 0.6));
    // Head 2 rolls by 6: not the same as head 1's roll by 3.
    assert_ne!(masks[1].dense(n), masks[2].dense(n));
}

#[test]
fn fused_attention_equals_sliced_attention_and_concat() {
    let ty = TensorType::f32([1, 4, 8, 2]);
    let mut g = Graph::new("split");
    let (q, k, v) = (g.input("q", ty.clone()), g.input("k", ty.clone()), g.input("v", ty));
    let m0 = mask("causal & window(3)");
    let m1 = mask("causal & local_stride(2, 1, 2, h)");
    let fused = g
        .fused_attention(
            q,
            k,
            v,
            vec![
                crate::graph::HeadMask::new(0..1, m0.clone()),
                crate::graph::HeadMask::new(1..4, m1.clone()),
            ],
            0.5,
        )
        .unwrap();
    let part = |g: &mut Graph, x, s, e| g.slice(x, 1, s, e).unwrap();
    let (q0, k0, v0) = (part(&mut g, q, 0, 1), part(&mut g, k, 0, 1), part(&mut g, v, 0, 1));
    let (q1, k1, v1) = (part(&mut g, q, 1, 4), part(&mut g, k, 1, 4), part(&mut g, v, 1, 4));
    let a0 = g.attention(q0, k0, v0, m0, 0, 0.5).unwrap();
    let a1 = g.attention(q1, k1, v1, m1, 1, 0.5).unwrap();
    let split = g.concat(&[a0, a1], 1).unwrap();
    g.set_output("fused", fused);
    g.set_output("split", split);
    let seed = fresh_seed();
    let feeds: HashMap<String, Tensor> = ["q", "k", "v"]
        .iter()
        .enumerate()
        .map(|(i, n)| (n.to_string(), random(&[1, 4, 8, 2], seed.wrapping_add(i as u64))))
        .collect();
    let out = run(&g.validate().unwrap(), &feeds).unwrap();
    assert_close(&out["fused"], &out["split"]);
}

#[test]
fn cross_entropy_of_uniform_logits_is_log_vocab_and_ignores_negative_targets() {
    let logits = t(&[3, 4], &[0.5; 12]);
    let targets = t(&[3], &[1.0, -100.0, 3.0]);
    let loss = eval(&Op::CrossEntropy, &[&logits, &targets]).unwrap();
    assert!((loss.data()[0] - 4f64.ln()).abs() < 1e-15, "{loss:?}");
    // The ignored row gets no gradient; each counted row sums to zero.
    let grad = eval(&Op::CrossEntropyGrad, &[&logits, &targets, &Tensor::scalar(1.0)]).unwrap();
    assert_eq!(&grad.data()[4..8], &[0.0; 4]);
    assert_eq!(grad.data()[..4], [0.125, -0.375, 0.125, 0.125]);
    let none = eval(&Op::CrossEntropy, &[&logits, &t(&[3], &[-100.0; 3])]).unwrap();
    assert_eq!(none.data(), &[0.0]);
}

#[test]
fn embedding_ids_out_of_range_are_errors() {
    let table = t(&[3, 2], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let rows = eval(&Op::Embedding, &[&t(&[2], &[2.0, 0.0]), &table]).unwrap();
    assert_eq!(rows.data(), &[5.0, 6.0, 1.0, 2.0]);
    let err = eval(&Op::Embedding, &[&t(&[2], &[1.0, 3.0]), &table]).unwrap_err();
    assert_eq!(err.to_string(), "`embedding`: id 3 at position 1 is not an integer in 0..3");
    let grad =
        eval(&Op::EmbeddingGrad { vocab: 3 }, &[&t(&[2], &[2.0, 2.0]), &t(&[2, 2], &[1.0, 2.0, 3.0, 4.0])])
            .unwrap();
    assert_eq!(grad.data(), &[0.0, 0.0, 0.0, 0.0, 4.0, 6.0]);
}

#[test]
fn fused_attention_rope_rotates_q_and_k_on_load_and_dq_dk_back() {
    let (b, h, n, d, dv) = (1, 2, 8, 4, 3);
    let seed = fresh_seed();
    let (q, k, v, dout) = (
        random(&[b, h, n, d], seed),
        random(&[b, h, n, d], seed.wrapping_add(1)),
        random(&[b, h, n, dv], seed.wrapping_add(2)),
        random(&[b, h, n, dv], seed.wrapping_add(3)),
    );
    let heads = vec![crate::graph::HeadMask::new(0..2, mask("causal"))];
    let (theta, position_scale) = (100.0, 2.0);
    let rope =
        |x: &Tensor, ps: f64| apply(Op::Rope { theta, position_scale: ps, freqs: RopeFreqs::Default }, &[x]);
    let (qr, kr) = (rope(&q, position_scale), rope(&k, position_scale));
    let fused = |rope| Op::FusedAttention { heads: heads.clone(), scale: 0.6, rope };
    let got = apply(fused(Some(RopeParams::new(theta, position_scale))), &[&q, &k, &v]);
    assert_close(&got, &apply(fused(None), &[&qr, &kr, &v]));
    for grad in AttentionGrad::ALL {
        let op = |rope| Op::FusedAttentionGrad { heads: heads.clone(), scale: 0.6, grad, rope };
        let got = apply(op(Some(RopeParams::new(theta, position_scale))), &[&q, &k, &v, &dout]);
        let plain = apply(op(None), &[&qr, &kr, &v, &dout]);
        // The chain rule through the rotation: dq and dk turn back by its transpose.
        let want = if grad == AttentionGrad::Dv { plain } else { rope(&plain, -position_scale) };
        assert_close(&got, &want);
    }
}
