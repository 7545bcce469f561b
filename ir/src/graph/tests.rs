//! Builder, validator, text-format and DOT tests.

use expect_test::{Expect, expect};
use proptest::prelude::*;

use super::*;
use crate::source::SourceFile;

fn mask(src: &str) -> Mask {
    Mask::new(crate::expr::parse_mask(src).unwrap()).unwrap()
}

/// Llama 3.1's RoPE frequencies, as `rope_type: "llama3"` configs give them.
const LLAMA3: RopeFreqs =
    RopeFreqs::Llama3 { factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_context: 8192.0 };

/// A graph using every op (and every attribute form) once or more.
pub(crate) fn every_op_graph() -> Graph {
    let mut g = Graph::new("every-op");
    let t = TensorType::f32([1, 4, 8, 4]);
    let q = g.input("q", t.clone());
    let k = g.input("k", t.clone());
    let v = g.input("v", t.clone());
    let w = g.parameter("w", TensorType::f32([4]), true);
    let gain = g.parameter("frozen gain", t, false);
    let qr = g.rope(q, 10000.0, 2.0).unwrap();
    let kr = g.rope_with(k, RopeParams::new(500.0, 1.0).with_freqs(LLAMA3)).unwrap();
    let kn = g.rms_norm(kr, w, 1e-6).unwrap();
    let kn_grad = g.add(Op::RmsNormGrad { eps: 1e-6 }, &[kr, w, kn]).unwrap();
    let w_grad = g.add(Op::RmsNormWeightGrad { eps: 1e-6 }, &[kr, kn]).unwrap();
    let gate = g.add(Op::Unary(UnaryOp::Sigmoid), &[kn_grad]).unwrap();
    let k_rolled = g.roll(kn, 2, -2, Some(HeadRange::new(1, 2, 4))).unwrap();
    let v_rolled = g.roll(v, 2, 3, None).unwrap();
    let att = g.attention(qr, k_rolled, v_rolled, mask("roll(h * 2, causal & groups(4))"), 1, 0.5).unwrap();
    let scores = g.matmul(qr, kn, false, true).unwrap();
    let scaled = g.scale(scores, 0.1).unwrap();
    let p = g.softmax(scaled, 3).unwrap();
    let masked = g.masked_softmax(scores, mask("causal & !window(h)"), 1, 0.25).unwrap();
    let dp = g.softmax_grad(p, masked, 3).unwrap();
    let pv = g.matmul(dp, v, false, false).unwrap();
    let gram = g.matmul(q, k, true, false).unwrap();
    let sum = g.elementwise_add(att, pv).unwrap();
    let prod = g.elementwise_mul(sum, gain).unwrap();
    let e = g.exp(prod).unwrap();
    let l = g.log(e).unwrap();
    let s = g.silu(l).unwrap();
    let perm = g.permute(s, &[0, 2, 1, 3]).unwrap();
    let flat = g.reshape(perm, &[8, 16]).unwrap();
    let part = g.slice(flat, 1, 4, 12).unwrap();
    let cat = g.concat(&[part, part, flat], 1).unwrap();
    let total = g.reduce_sum(cat, 1).unwrap();
    let max = g.reduce_max(cat, 0).unwrap();
    let mean = g.reduce_mean(cat, 1).unwrap();
    let spread = g.broadcast(total, 0, 2).unwrap();
    let padded = g.pad(spread, 1, 1, 2).unwrap();
    g.set_output("total", total);
    g.set_output("padded", padded);
    g.set_output("gate", gate);
    let heads = vec![HeadMask::new(0..2, mask("causal")), HeadMask::new(2..4, mask("window(h)"))];
    let dk = g
        .add(
            Op::FusedAttentionGrad {
                heads,
                scale: 0.5,
                grad: AttentionGrad::Dk,
                rope: Some(RopeParams::new(500.0, -2.0).with_freqs(LLAMA3)),
            },
            &[q, k, v, att],
        )
        .unwrap();
    g.set_output("dk", dk);
    g.set_output("w_grad", w_grad);
    g.set_output("max", max);
    g.set_output("mean", mean);
    g.set_output("gram", gram);
    g
}

fn parse(text: &str) -> Result<Graph, GraphError> {
    parse_sexpr(&SourceFile::new("test.sexp", text))
}

/// The error message and the excerpt under it, or "ok".
fn render(text: &str, result: Result<Graph, GraphError>) -> String {
    let file = SourceFile::new("test.sexp", text);
    match result {
        Ok(_) => "ok".into(),
        Err(e) => match e.excerpt(&file) {
            Some(excerpt) => format!("{e}\n{excerpt}"),
            None => e.to_string(),
        },
    }
}

fn check_parse(text: &str, expected: Expect) {
    expected.assert_eq(&render(text, parse(text)));
}

fn check_parse_validate(text: &str, expected: Expect) {
    let result = parse(text).and_then(|g| g.validate().map(ValidGraph::into_inner));
    expected.assert_eq(&render(text, result));
}

fn check_err<T: std::fmt::Debug>(result: Result<T, GraphError>, expected: Expect) {
    match result {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => expected.assert_eq(&e.to_string()),
    }
}

#[test]
fn every_op_prints_and_parses_back() {
    let g = every_op_graph();
    let text = g.to_sexpr();
    expect![[r#"
        (graph every-op
          (%0 (input q) f32[1, 4, 8, 4])
          (%1 (input k) f32[1, 4, 8, 4])
          (%2 (input v) f32[1, 4, 8, 4])
          (%3 (param w :trainable) f32[4])
          (%4 (param "frozen gain") f32[1, 4, 8, 4])
          (%5 (rope %0 :theta 10000.0 :position-scale 2.0) f32[1, 4, 8, 4])
          (%6 (rope %1 :theta 500.0 :position-scale 1.0 :freqs "llama3:8.0:1.0:4.0:8192.0") f32[1, 4, 8, 4])
          (%7 (rms-norm %6 %3 :eps 1e-6) f32[1, 4, 8, 4])
          (%8 (rms-norm-grad %6 %3 %7 :eps 1e-6) f32[1, 4, 8, 4])
          (%9 (rms-norm-weight-grad %6 %7 :eps 1e-6) f32[4])
          (%10 (sigmoid %8) f32[1, 4, 8, 4])
          (%11 (roll %7 :axis 2 :shift -2 :heads (1 2 4)) f32[1, 4, 8, 4])
          (%12 (roll %2 :axis 2 :shift 3) f32[1, 4, 8, 4])
          (%13 (attention %5 %11 %12 :mask "roll(h * 2, causal & groups(4))" :head-offset 1 :scale 0.5) f32[1, 4, 8, 4])
          (%14 (matmul %5 %7 :transpose-b) f32[1, 4, 8, 8])
          (%15 (scale %14 :factor 0.1) f32[1, 4, 8, 8])
          (%16 (softmax %15 :axis 3) f32[1, 4, 8, 8])
          (%17 (masked-softmax %14 :mask "causal & !window(h)" :head-offset 1 :scale 0.25) f32[1, 4, 8, 8])
          (%18 (softmax-grad %16 %17 :axis 3) f32[1, 4, 8, 8])
          (%19 (matmul %18 %2) f32[1, 4, 8, 4])
          (%20 (matmul %0 %1 :transpose-a) f32[1, 4, 4, 4])
          (%21 (add %13 %19) f32[1, 4, 8, 4])
          (%22 (mul %21 %4) f32[1, 4, 8, 4])
          (%23 (exp %22) f32[1, 4, 8, 4])
          (%24 (log %23) f32[1, 4, 8, 4])
          (%25 (silu %24) f32[1, 4, 8, 4])
          (%26 (permute %25 :perm (0 2 1 3)) f32[1, 8, 4, 4])
          (%27 (reshape %26 :shape (8 16)) f32[8, 16])
          (%28 (slice %27 :axis 1 :start 4 :end 12) f32[8, 8])
          (%29 (concat %28 %28 %27 :axis 1) f32[8, 32])
          (%30 (reduce-sum %29 :axis 1) f32[8])
          (%31 (reduce-max %29 :axis 0) f32[32])
          (%32 (reduce-mean %29 :axis 1) f32[8])
          (%33 (broadcast %30 :axis 0 :size 2) f32[2, 8])
          (%34 (pad %33 :axis 1 :before 1 :after 2) f32[2, 11])
          (%35 (fused-attention-grad %0 %1 %2 %13 :grad "dk" :masks ((0 2 "causal") (2 4 "window(h)")) :scale 0.5 :rope-theta 500.0 :rope-position-scale -2.0 :rope-freqs "llama3:8.0:1.0:4.0:8192.0") f32[1, 4, 8, 4])
          (output total %30)
          (output padded %34)
          (output gate %10)
          (output dk %35)
          (output w_grad %9)
          (output max %31)
          (output mean %32)
          (output gram %20))
    "#]]
    .assert_eq(&text);
    let parsed = parse(&text).unwrap();
    assert_eq!(parsed, g);
    assert_eq!(parsed.to_sexpr(), text);
    assert!(parsed.validate().is_ok());
}

#[test]
fn text_ids_may_be_any_numbering_and_comments_are_skipped() {
    let text = r#"
        ; ids need only be defined before use
        (graph "my graph"
          (%10 (input x) f32[2, 3])   ; a leaf
          (%4 (scale %10 :factor -1.5e-7) f32[2, 3])
          (output "out put" %4))
    "#;
    let g = parse(text).unwrap();
    expect![[r#"
        (graph "my graph"
          (%0 (input x) f32[2, 3])
          (%1 (scale %0 :factor -1.5e-7) f32[2, 3])
          (output "out put" %1))
    "#]]
    .assert_eq(&g.to_sexpr());
    let Op::Scale { factor } = g.node(g.outputs()[0].1).op else { panic!("not a scale") };
    assert_eq!(factor, -1.5e-7);
}

#[test]
fn floats_round_trip_exactly() {
    for factor in [0.1, 1.0 / 3.0, -2.5e-300, 1e21, f64::MIN_POSITIVE, f64::MAX, -0.0] {
        let mut g = Graph::new("f");
        let x = g.input("x", TensorType::f32([1]));
        let y = g.scale(x, factor).unwrap();
        g.set_output("y", y);
        let parsed = parse(&g.to_sexpr()).unwrap();
        let Op::Scale { factor: back } = parsed.node(y).op else { panic!("not a scale") };
        assert_eq!(back.to_bits(), factor.to_bits(), "{factor:?}");
    }
}

// ---- builder errors ----

#[test]
fn matmul_contracted_dims_must_agree() {
    let mut g = Graph::new("g");
    let a = g.input("a", TensorType::f32([2, 4, 64, 16]));
    let b = g.input("b", TensorType::f32([2, 4, 32, 16]));
    check_err(
        g.matmul(a, b, true, true),
        expect![
            "`%2 = matmul`: contracted dims differ (64 vs 16): f32[2, 4, 64, 16] x f32[2, 4, 32, 16] (transpose_a, transpose_b)"
        ],
    );
    check_err(
        g.matmul(a, b, false, false),
        expect!["`%2 = matmul`: contracted dims differ (16 vs 32): f32[2, 4, 64, 16] x f32[2, 4, 32, 16]"],
    );
    let c = g.input("c", TensorType::f32([3, 4, 16, 8]));
    check_err(
        g.matmul(a, c, false, false),
        expect!["`%3 = matmul`: batch dims differ: f32[2, 4, 64, 16] x f32[3, 4, 16, 8]"],
    );
    // A failed add leaves the graph unchanged.
    assert_eq!(g.len(), 3);
    assert!(g.matmul(a, b, false, true).is_ok());
}

#[test]
fn elementwise_and_arity_errors() {
    let mut g = Graph::new("g");
    let a = g.input("a", TensorType::f32([2, 3]));
    let b = g.input("b", TensorType::new(DType::F16, [2, 3]));
    check_err(g.elementwise_add(a, b), expect!["`%2 = add`: operand types differ: f32[2, 3], f16[2, 3]"]);
    check_err(g.add(Op::Add, &[a]), expect!["`%2 = add` takes 2 operands, found 1"]);
    check_err(g.add(Op::Concat { axis: 0 }, &[]), expect!["`%2 = concat` takes at least 1 operand, found 0"]);
    let i = g.input("i", TensorType::new(DType::I32, [2, 3]));
    check_err(g.exp(i), expect!["`%3 = exp`: needs a float dtype, found i32[2, 3]"]);
    check_err(g.scale(a, f64::NAN), expect!["`%3 = scale`: factor must be finite, found NaN"]);
    check_err(
        g.add(Op::Input { name: "x".into() }, &[]),
        expect![
            "`%3 = input`: inputs and parameters have a declared type; build them with `Graph::input` or `Graph::parameter`"
        ],
    );
    let foreign = NodeId(99);
    check_err(g.exp(foreign), expect!["`%3`: operand %99 is not a node of this graph"]);
}

#[test]
fn reshape_must_keep_the_element_count() {
    let mut g = Graph::new("g");
    let x = g.input("x", TensorType::f32([2, 4, 64, 16]));
    check_err(
        g.reshape(x, &[8, 64, 15]),
        expect![
            "`%1 = reshape`: element count differs: f32[2, 4, 64, 16] has 8192 elements, target shape [8, 64, 15] has 7680"
        ],
    );
    check_err(
        g.reshape(x, &[0, 8192]),
        expect!["`%1 = reshape`: target shape [0, 8192] has a zero dimension"],
    );
    check_err(
        g.reshape(x, &[usize::MAX, 2]),
        expect!["`%1 = reshape`: target shape [18446744073709551615, 2] has too many elements"],
    );
}

#[test]
fn permute_must_be_a_permutation() {
    let mut g = Graph::new("g");
    let x = g.input("x", TensorType::f32([2, 4, 8]));
    check_err(
        g.permute(x, &[0, 0, 1]),
        expect!["`%1 = permute`: [0, 0, 1] is not a permutation of the 3 axes of f32[2, 4, 8]"],
    );
    check_err(
        g.permute(x, &[0, 1]),
        expect!["`%1 = permute`: [0, 1] is not a permutation of the 3 axes of f32[2, 4, 8]"],
    );
    check_err(
        g.permute(x, &[0, 1, 3]),
        expect!["`%1 = permute`: [0, 1, 3] is not a permutation of the 3 axes of f32[2, 4, 8]"],
    );
}

#[test]
fn roll_axis_and_head_range_must_fit() {
    let mut g = Graph::new("g");
    let x = g.input("x", TensorType::f32([2, 4, 64, 16]));
    check_err(
        g.roll(x, 4, 8, None),
        expect!["`%1 = roll`: axis 4 out of range for f32[2, 4, 64, 16] (rank 4)"],
    );
    check_err(
        g.roll(x, 2, 8, Some(HeadRange::new(1, 2, 5))),
        expect!["`%1 = roll`: head range 1[2..5] out of bounds for f32[2, 4, 64, 16]"],
    );
    check_err(
        g.roll(x, 2, 8, Some(HeadRange::new(1, 3, 3))),
        expect!["`%1 = roll`: empty head range 1[3..3]"],
    );
    check_err(
        g.roll(x, 2, 8, Some(HeadRange::new(2, 0, 2))),
        expect!["`%1 = roll`: head range 2[0..2] is on the rolled axis 2"],
    );
}

#[test]
fn other_shape_errors() {
    let mut g = Graph::new("g");
    let x = g.input("x", TensorType::f32([2, 4, 6, 5]));
    let w = g.input("w", TensorType::f32([4]));
    check_err(
        g.slice(x, 3, 2, 6),
        expect!["`%2 = slice`: slice 2..6 out of bounds for axis 3 of f32[2, 4, 6, 5]"],
    );
    check_err(g.slice(x, 3, 2, 2), expect!["`%2 = slice`: empty slice 2..2 of axis 3 of f32[2, 4, 6, 5]"]);
    check_err(
        g.concat(&[x, w], 0),
        expect!["`%2 = concat`: operand shapes differ outside axis 0: f32[2, 4, 6, 5], f32[4]"],
    );
    check_err(g.reduce_sum(w, 1), expect!["`%2 = reduce-sum`: axis 1 out of range for f32[4] (rank 1)"]);
    check_err(
        g.rms_norm(x, w, 1e-5),
        expect!["`%2 = rms-norm`: weight must be [5] to match the last axis of x: f32[2, 4, 6, 5], f32[4]"],
    );
    check_err(g.rope(x, 10000.0, 1.0), expect!["`%2 = rope`: head dim 5 must be even: f32[2, 4, 6, 5]"]);
    check_err(g.rope(w, 10000.0, 1.0), expect!["`%2 = rope`: input must be [B, H, N, D], found f32[4]"]);
    let y = g.input("y", TensorType::f32([2, 4, 6, 4]));
    check_err(
        g.rope(y, 10000.0, 0.0),
        expect!["`%3 = rope`: position_scale must be finite and nonzero, found 0.0"],
    );
}

#[test]
fn attention_operands_and_mask_must_fit() {
    let mut g = Graph::new("g");
    let q = g.input("q", TensorType::f32([2, 4, 16, 8]));
    let k = g.input("k", TensorType::f32([2, 4, 32, 8]));
    let v = g.input("v", TensorType::f32([2, 4, 16, 3]));
    check_err(
        g.attention(q, k, v, mask("causal"), 0, 0.25),
        expect![
            "`%3 = attention`: q and k must have the same shape and v the same [B, H, N]: f32[2, 4, 16, 8], f32[2, 4, 32, 8], f32[2, 4, 16, 3]"
        ],
    );
    let w = g.input("w", TensorType::f32([4, 16, 3]));
    check_err(
        g.attention(q, q, w, mask("causal"), 0, 0.25),
        expect![
            "`%4 = attention`: q, k, v must be [B, H, N, D], [B, H, N, D], [B, H, N, Dv]: f32[2, 4, 16, 8], f32[2, 4, 16, 8], f32[4, 16, 3]"
        ],
    );
    // Head 0 of `groups(h)` would have groups of size 0.
    check_err(
        g.attention(q, q, v, mask("causal & groups(h)"), 0, 0.25),
        expect![
            "`%4 = attention`: mask `causal & groups(h)` for head 0: `groups` parameter `g` must be >= 1, found 0"
        ],
    );
    check_err(
        g.attention(q, q, v, mask("groups(16 / (h - 2))"), 2, 0.25),
        expect![
            "`%4 = attention`: mask `groups(16 / (h - 2))` cannot be evaluated for head 2: division by zero in `16 / (h - 2)`"
        ],
    );
    // With an offset the same mask is fine: heads 3..7.
    let a = g.attention(q, q, v, mask("causal & groups(h)"), 3, 0.25).unwrap();
    assert_eq!(g.node(a).ty, TensorType::f32([2, 4, 16, 3]));
}

// ---- validator ----

#[test]
fn validator_rechecks_what_mutation_can_break() {
    let mut g = Graph::new("g");
    let x = g.input("x", TensorType::f32([2, 3]));
    let y = g.exp(x).unwrap();
    let z = g.permute(y, &[1, 0]).unwrap();
    g.set_output("z", z);
    assert!(g.check().is_ok());

    let mut cyclic = g.clone();
    assert!(cyclic.replace_inputs(y, &[z]));
    check_err(cyclic.validate(), expect!["the graph has a cycle through %2"]);

    let mut out_of_order = g.clone();
    let late = out_of_order.exp(x).unwrap();
    assert!(out_of_order.replace_inputs(y, &[late]));
    check_err(
        out_of_order.validate(),
        expect!["%1 uses %3, which is defined after it; nodes must be in topological order"],
    );

    let mut dangling = g.clone();
    assert!(dangling.replace_inputs(z, &[NodeId(7)]));
    check_err(dangling.validate(), expect!["`%2`: operand %7 is not a node of this graph"]);

    let mut stale = g.clone();
    assert!(stale.replace_op(z, Op::Reshape { shape: vec![6] }));
    check_err(
        stale.clone().validate(),
        expect!["`%2 = reshape`: declared type f32[3, 2] does not match inferred type f32[6]"],
    );
    assert!(stale.replace_op(z, Op::Reshape { shape: vec![5] }));
    check_err(
        stale.validate(),
        expect!["`%2 = reshape`: element count differs: f32[2, 3] has 6 elements, target shape [5] has 5"],
    );

    let mut wrong_arity = g.clone();
    assert!(wrong_arity.replace_inputs(z, &[y, y]));
    check_err(wrong_arity.validate(), expect!["`%2 = permute` takes 1 operand, found 2"]);

    let mut leaf_with_operand = g.clone();
    assert!(leaf_with_operand.replace_inputs(x, &[x]));
    check_err(leaf_with_operand.validate(), expect!["the graph has a cycle through %0"]);

    assert!(!g.replace_op(NodeId(9), Op::Unary(UnaryOp::Exp)));
    assert!(g.validate().is_ok());
}

#[test]
fn validator_checks_leaves_names_and_outputs() {
    let mut g = Graph::new("g");
    let x = g.input("x", TensorType::f32([2, 3]));
    check_err(g.clone().validate(), expect!["graph `g` has no outputs"]);
    g.set_output("x", x);
    g.set_output("ghost", NodeId(5));
    check_err(
        g.clone().validate(),
        expect!["output `ghost` refers to %5, which is not a node of this graph"],
    );
    g.set_output("ghost", x); // replaces the node of an existing output
    assert_eq!(g.outputs().len(), 2);
    let _ = g.parameter("x", TensorType::f32([3]), true);
    check_err(
        g.clone().validate(),
        expect!["name `x` is used by both %0 and %1; input and parameter names must be unique"],
    );
    let mut zero = Graph::new("zero");
    let z = zero.input("z", TensorType::f32([2, 0]));
    zero.set_output("z", z);
    check_err(zero.validate(), expect!["`%0 = input`: declared type f32[2, 0] has a zero dimension"]);
}

// ---- text errors ----

#[test]
fn undefined_ids_in_text_are_reported_with_their_position() {
    check_parse(
        "(graph g\n  (%0 (input x) f32[4])\n  (%1 (exp %7) f32[4]))",
        expect![[r#"
            test.sexp:3:12: undefined node `%7`; nodes must be defined before they are used
              |
            3 |   (%1 (exp %7) f32[4]))
              |            ^^"#]],
    );
    check_parse(
        "(graph g (%0 (input x) f32[4]) (output y %1))",
        expect![[r#"
            test.sexp:1:42: undefined node `%1`; nodes must be defined before they are used
              |
            1 | (graph g (%0 (input x) f32[4]) (output y %1))
              |                                          ^^"#]],
    );
    check_parse(
        "(graph g\n  (%0 (input x) f32[4])\n  (%0 (exp %0) f32[4]))",
        expect![[r#"
            test.sexp:3:4: `%0` is defined twice
              |
            3 |   (%0 (exp %0) f32[4]))
              |    ^^"#]],
    );
}

#[test]
fn syntax_errors_give_line_column_expected_and_found() {
    check_parse(
        "(graph g\n  (%0 (input x) f32[4]\n  (%1 (exp %0) f32[4]))",
        expect![[r#"
            test.sexp:3:3: expected `)` after the type, found `(`
              |
            3 |   (%1 (exp %0) f32[4]))
              |   ^"#]],
    );
    check_parse(
        "(graph g\n  (%0 (input x) f32[4 4]))",
        expect![[r#"
            test.sexp:2:23: expected `,` or `]`, found `4`
              |
            2 |   (%0 (input x) f32[4 4]))
              |                       ^"#]],
    );
    check_parse(
        "(graph g\n  (%0 (input x) q32[4]))",
        expect![[r#"
            test.sexp:2:17: expected a type such as `f32[2, 4]` (dtypes: f32, f16, i32, i64), found `q32`
              |
            2 |   (%0 (input x) q32[4]))
              |                 ^^^"#]],
    );
    check_parse(
        "(graph g (%0 (input x) f32[4]) (%1 (roll %0 :axis 0 :shift 1.5) f32[4]))",
        expect![[r#"
            test.sexp:1:60: expected an integer, found `1.5`
              |
            1 | (graph g (%0 (input x) f32[4]) (%1 (roll %0 :axis 0 :shift 1.5) f32[4]))
              |                                                            ^^^"#]],
    );
    check_parse(
        "(graph g (%0 (input x) f32[4]) (%1 (scale %0 :factor inf) f32[4]))",
        expect![[r#"
            test.sexp:1:54: expected a finite number, found `inf`
              |
            1 | (graph g (%0 (input x) f32[4]) (%1 (scale %0 :factor inf) f32[4]))
              |                                                      ^^^"#]],
    );
    check_parse(
        "(graph g (%0 (input x) f32[4]) (%1 (exp %0 x) f32[4]))",
        expect![[r#"
            test.sexp:1:44: expected an operand such as `%3` or `)`, found `x`
              |
            1 | (graph g (%0 (input x) f32[4]) (%1 (exp %0 x) f32[4]))
              |                                            ^"#]],
    );
    check_parse(
        "(graph g (%0 (input x) f32[4]))\n)",
        expect![[r#"
            test.sexp:2:1: expected the end of the file, found `)`
              |
            2 | )
              | ^"#]],
    );
    check_parse(
        "(graph g (%0 (input x) f32[4])",
        expect![[r#"
            test.sexp:1:31: expected a node `(%N (op ...) type)`, an output `(output name %N)` or `)`, found the end of the file
              |
            1 | (graph g (%0 (input x) f32[4])
              |                               ^"#]],
    );
    check_parse(
        "(graph \"unterminated)",
        expect![[r#"
            test.sexp:1:8: expected a closing `"` for the string, found the end of the file
              |
            1 | (graph "unterminated)
              |        ^^^^^^^^^^^^^^"#]],
    );
    check_parse(
        "(graph \"a\\qb\")",
        expect![[r#"
            test.sexp:1:10: expected an escape (`\"`, `\\`, `\n` or `\t`), found `\q`
              |
            1 | (graph "a\qb")
              |          ^^"#]],
    );
}

#[test]
fn ops_and_attributes_are_checked_by_name() {
    check_parse(
        "(graph g (%0 (input x) f32[4]) (%1 (expp %0) f32[4]))",
        expect![[r#"
            test.sexp:1:37: unknown op `expp`; expected one of input, param, matmul, add, mul, scale, exp, log, silu, sigmoid, reshape, permute, roll, slice, concat, softmax, softmax-grad, masked-softmax, broadcast, pad, reduce-sum, reduce-max, reduce-mean, rms-norm, rms-norm-grad, rms-norm-weight-grad, rope, embedding, embedding-grad, cross-entropy, cross-entropy-grad, attention, rope-table, cached-attention, fused-attention, fused-attention-grad
              |
            1 | (graph g (%0 (input x) f32[4]) (%1 (expp %0) f32[4]))
              |                                     ^^^^"#]],
    );
    check_parse(
        "(graph g (%0 (input x) f32[4]) (%1 (roll %0 :axis 0 :shfit 1) f32[4]))",
        expect![[r#"
            test.sexp:1:53: `roll` has no attribute `:shfit`; it takes `:axis`, `:shift`, `:heads`
              |
            1 | (graph g (%0 (input x) f32[4]) (%1 (roll %0 :axis 0 :shfit 1) f32[4]))
              |                                                     ^^^^^^"#]],
    );
    check_parse(
        "(graph g (%0 (input x) f32[4]) (%1 (roll %0 :axis 0) f32[4]))",
        expect![[r#"
            test.sexp:1:37: `roll` needs `:shift`
              |
            1 | (graph g (%0 (input x) f32[4]) (%1 (roll %0 :axis 0) f32[4]))
              |                                     ^^^^"#]],
    );
    check_parse(
        "(graph g (%0 (input x) f32[4]) (%1 (roll %0 :axis 0 :axis 0 :shift 1) f32[4]))",
        expect![[r#"
            test.sexp:1:53: duplicate attribute `:axis`
              |
            1 | (graph g (%0 (input x) f32[4]) (%1 (roll %0 :axis 0 :axis 0 :shift 1) f32[4]))
              |                                                     ^^^^^"#]],
    );
    check_parse(
        "(graph g (%0 (input x) f32[4]) (%1 (exp %0 :axis 0) f32[4]))",
        expect![[r#"
            test.sexp:1:44: `exp` takes no attributes, found `:axis`
              |
            1 | (graph g (%0 (input x) f32[4]) (%1 (exp %0 :axis 0) f32[4]))
              |                                            ^^^^^"#]],
    );
    check_parse(
        "(graph g (%0 (input x) f32[4]) (%1 (input x) f32[4]))",
        expect![[r#"
            test.sexp:1:43: name `x` is already used by `%0`; input and parameter names must be unique
              |
            1 | (graph g (%0 (input x) f32[4]) (%1 (input x) f32[4]))
              |                                           ^"#]],
    );
    check_parse(
        "(graph g (%0 (input x) f32[4]) (output y %0) (output y %0))",
        expect![[r#"
            test.sexp:1:54: output `y` is declared twice
              |
            1 | (graph g (%0 (input x) f32[4]) (output y %0) (output y %0))
              |                                                      ^"#]],
    );
}

#[test]
fn masks_in_text_are_parsed_and_errors_point_into_them() {
    let head = "(graph g\n  (%0 (input q) f32[1, 2, 4, 2])\n";
    check_parse(
        &format!(
            "{head}  (%1 (attention %0 %0 %0 :mask \"causal & windw(2)\" :head-offset 0 :scale 1.0) f32[1, 2, 4, 2]))"
        ),
        expect![[r#"
            test.sexp:3:43: invalid mask "causal & windw(2)": unknown mask primitive `windw`; expected one of full, causal, window, sink, groups, local_stride, roll; did you mean `window`?
              |
            3 |   (%1 (attention %0 %0 %0 :mask "causal & windw(2)" :head-offset 0 :scale 1.0) f32[1, 2, 4, 2]))
              |                                           ^^^^^"#]],
    );
    check_parse(
        &format!(
            "{head}  (%1 (attention %0 %0 %0 :mask \"groups(G)\" :head-offset 0 :scale 1.0) f32[1, 2, 4, 2]))"
        ),
        expect![[r#"
            test.sexp:3:33: mask "groups(G)" mentions `G`; only `h`, the head index, may appear
              |
            3 |   (%1 (attention %0 %0 %0 :mask "groups(G)" :head-offset 0 :scale 1.0) f32[1, 2, 4, 2]))
              |                                 ^^^^^^^^^^^"#]],
    );
}

#[test]
fn declared_types_are_checked_against_inference() {
    check_parse(
        "(graph g\n  (%0 (input x) f32[2, 3])\n  (%1 (permute %0 :perm (1 0)) f32[2, 3]))",
        expect![[r#"
            test.sexp:3:32: `permute`: declared type f32[2, 3] does not match inferred type f32[3, 2]
              |
            3 |   (%1 (permute %0 :perm (1 0)) f32[2, 3]))
              |                                ^^^^^^^^^"#]],
    );
    check_parse(
        "(graph g\n  (%0 (input a) f32[2, 4, 64, 16])\n  (%1 (input b) f32[2, 4, 32, 16])\n  (%2 (matmul %0 %1) f32[2, 4, 64, 16]))",
        expect![[r#"
            test.sexp:4:8: `matmul`: contracted dims differ (16 vs 32): f32[2, 4, 64, 16] x f32[2, 4, 32, 16]
              |
            4 |   (%2 (matmul %0 %1) f32[2, 4, 64, 16]))
              |        ^^^^^^"#]],
    );
    check_parse(
        "(graph g\n  (%0 (input x) f32[2, 0]))",
        expect![[r#"
            test.sexp:2:17: `input`: declared type f32[2, 0] has a zero dimension
              |
            2 |   (%0 (input x) f32[2, 0]))
              |                 ^^^^^^^^^"#]],
    );
    // Parsing succeeds without outputs; validation does not.
    check_parse_validate("(graph g (%0 (input x) f32[2]))", expect!["graph `g` has no outputs"]);
}

// ---- DOT ----

#[test]
fn dot_labels_nodes_with_op_and_type_and_marks_outputs() {
    let mut g = Graph::new("s2");
    let x = g.input("x", TensorType::f32([2, 4, 64, 16]));
    let r = g.roll(x, 2, -8, Some(HeadRange::new(1, 2, 4))).unwrap();
    let s = g.elementwise_add(r, x).unwrap();
    g.set_output("y", s);
    expect![[r#"
        digraph "s2" {
            node [shape = box, fontname = "monospace"]
            0 [ label = "%0 input(\"x\")\nf32[2, 4, 64, 16]" shape = ellipse]
            1 [ label = "%1 roll(axis=2, shift=-8, heads=1[2..4])\nf32[2, 4, 64, 16]"]
            2 [ label = "%2 add\nf32[2, 4, 64, 16]\noutput y" peripheries = 2]
            0 -> 1 [ ]
            1 -> 2 [ label = "0"]
            0 -> 2 [ label = "1"]
        }
    "#]]
    .assert_eq(&g.to_dot());
}

// ---- properties ----

/// One random step of a chain; the numbers are turned into valid attributes for the current shape.
type Step = (u8, usize, usize, i64);

fn build_chain(dims: &[usize], steps: &[Step]) -> Graph {
    let mut g = Graph::new("chain");
    let mut x = g.input("x", TensorType::f32(dims));
    for &(kind, a, b, s) in steps {
        let shape = g.node(x).ty.shape.clone();
        let r = shape.len();
        let axis = a % r;
        let dim = shape[axis];
        let start = b % dim;
        let end = start + 1 + (s.unsigned_abs() as usize) % (dim - start);
        let next = match kind % 11 {
            0 => g.roll(x, axis, s, None),
            1 if r >= 2 => {
                let head_axis = (axis + 1 + b % (r - 1)) % r;
                let hd = shape[head_axis];
                let hs = b % hd;
                let he = hs + 1 + (s.unsigned_abs() as usize) % (hd - hs);
                g.roll(x, axis, s / 3, Some(HeadRange::new(head_axis, hs, he)))
            }
            2 => {
                let new: Vec<usize> = match b % 3 {
                    0 => shape.iter().rev().copied().collect(),
                    1 if r >= 2 => {
                        let mut v = shape[..r - 2].to_vec();
                        v.push(shape[r - 2] * shape[r - 1]);
                        v
                    }
                    _ if shape[0].is_multiple_of(2) => [&[2, shape[0] / 2][..], &shape[1..]].concat(),
                    _ => shape.clone(),
                };
                g.reshape(x, &new)
            }
            3 => {
                let perm: Vec<usize> = (0..r).map(|i| (i + b) % r).collect();
                g.permute(x, &perm)
            }
            4 => g.scale(x, s as f64 / 7.0e3),
            5 => g.slice(x, axis, start, end),
            6 if dim <= 8 => g.concat(&[x, x], axis),
            7 => g.softmax(x, axis),
            8 => g.exp(x).and_then(|e| g.silu(e)),
            9 => {
                if b % 2 == 0 {
                    g.elementwise_add(x, x)
                } else {
                    g.elementwise_mul(x, x)
                }
            }
            10 if r >= 2 => match b % 3 {
                0 => g.reduce_sum(x, axis),
                1 => g.reduce_max(x, axis),
                _ => g.reduce_mean(x, axis),
            },
            _ => g.log(x),
        };
        x = next.unwrap();
    }
    g.set_output("y", x);
    g
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_chains_round_trip(
        dims in prop::collection::vec(1usize..5, 1..5),
        steps in prop::collection::vec((any::<u8>(), any::<usize>(), any::<usize>(), -100i64..100), 0..10),
    ) {
        let g = build_chain(&dims, &steps);
        let text = g.to_sexpr();
        let parsed = parse(&text).unwrap();
        prop_assert_eq!(&parsed, &g);
        prop_assert_eq!(parsed.to_sexpr(), text);
        prop_assert!(parsed.validate().is_ok());
    }

    /// The parser returns an error, never panics, on damaged text.
    #[test]
    fn damaged_text_never_panics(cut in any::<prop::sample::Index>(), len in 0usize..6, insert in "\\PC{0,3}") {
        let text = every_op_graph().to_sexpr();
        let mut at = cut.index(text.len());
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        let mut end = (at + len).min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let damaged = format!("{}{insert}{}", &text[..at], &text[end..]);
        let _ = parse(&damaged);
    }

    #[test]
    fn arbitrary_text_never_panics(text in "[()\\[\\]%:\",; a-z0-9.\\-\\n\\\\]{0,60}") {
        let _ = parse(&text);
    }
}

// ---- fused attention ----

/// Fused attention over two head ranges, one of them with a mask in `h`.
fn fused_graph() -> Graph {
    let mut g = Graph::new("fused");
    let t = TensorType::f32([2, 4, 16, 8]);
    let q = g.input("q", t.clone());
    let k = g.input("k", t);
    let v = g.input("v", TensorType::f32([2, 4, 16, 3]));
    let heads = vec![
        HeadMask::new(0..2, mask("causal & groups(4)")),
        HeadMask::new(2..4, mask("roll(2, causal & groups(4)) | local_stride(2, 1, 4, h)")),
    ];
    let o = g.fused_attention(q, k, v, heads, 0.25).unwrap();
    g.set_output("o", o);
    g
}

#[test]
fn fused_attention_prints_parses_back_and_draws() {
    let g = fused_graph();
    let text = g.to_sexpr();
    expect![[r#"
        (graph fused
          (%0 (input q) f32[2, 4, 16, 8])
          (%1 (input k) f32[2, 4, 16, 8])
          (%2 (input v) f32[2, 4, 16, 3])
          (%3 (fused-attention %0 %1 %2 :masks ((0 2 "causal & groups(4)") (2 4 "roll(2, causal & groups(4)) | local_stride(2, 1, 4, h)")) :scale 0.25) f32[2, 4, 16, 3])
          (output o %3))
    "#]]
    .assert_eq(&text);
    let parsed = parse(&text).unwrap();
    assert_eq!(parsed, g);
    assert_eq!(parsed.to_sexpr(), text);
    assert!(parsed.validate().is_ok());
    let dot = g.to_dot();
    assert!(
        dot.contains(
            r#"fused-attention(masks=[0..2: \"causal & groups(4)\", 2..4: \"roll(2, causal & groups(4)) | local_stride(2, 1, 4, h)\"], scale=0.25)"#
        ),
        "{dot}"
    );
}

#[test]
fn fused_attention_head_ranges_must_tile_the_heads() {
    let mut g = Graph::new("g");
    let t = TensorType::f32([1, 4, 8, 2]);
    let q = g.input("q", t);
    let m = |r: std::ops::Range<usize>, src: &str| HeadMask::new(r, mask(src));
    let mut fused = |heads| g.fused_attention(q, q, q, heads, 1.0);
    check_err(
        fused(vec![m(0..2, "causal"), m(3..4, "causal")]),
        expect!["`%1 = fused-attention`: head range 3..4 leaves a gap before it; the ranges must tile 0..4"],
    );
    check_err(
        fused(vec![m(0..2, "causal"), m(1..4, "causal")]),
        expect![
            "`%1 = fused-attention`: head range 1..4 overlaps the previous one; the ranges must tile 0..4"
        ],
    );
    check_err(
        fused(vec![m(0..0, "causal"), m(0..4, "causal")]),
        expect!["`%1 = fused-attention`: head range 0..0 is empty"],
    );
    check_err(
        fused(vec![m(0..5, "causal")]),
        expect!["`%1 = fused-attention`: head range 0..5 is out of bounds for 4 heads"],
    );
    check_err(
        fused(vec![m(0..3, "causal")]),
        expect!["`%1 = fused-attention`: the head ranges cover 0..3, but q has 4 heads"],
    );
    check_err(
        fused(vec![]),
        expect!["`%1 = fused-attention`: the head ranges cover 0..0, but q has 4 heads"],
    );
    // Masks are checked for the heads of their own range only: `groups(h - 1)` is fine from head 2 on.
    check_err(
        fused(vec![m(0..2, "groups(h - 1)"), m(2..4, "groups(h - 1)")]),
        expect![
            "`%1 = fused-attention`: mask `groups(h - 1)` for head 0: `groups` parameter `g` must be >= 1, found -1"
        ],
    );
    assert!(fused(vec![m(0..2, "causal"), m(2..4, "groups(h - 1)")]).is_ok());
    let w = g.input("w", TensorType::f32([4, 8, 2]));
    check_err(
        g.fused_attention(q, q, w, vec![m(0..4, "causal")], 1.0),
        expect![
            "`%3 = fused-attention`: q, k, v must be [B, H, N, D], [B, H, N, D], [B, H, N, Dv]: f32[1, 4, 8, 2], f32[1, 4, 8, 2], f32[4, 8, 2]"
        ],
    );
}

#[test]
fn fused_attention_rope_takes_both_attributes_and_a_nonzero_position_scale() {
    let head = "(graph g\n  (%0 (input q) f32[1, 2, 4, 2])\n";
    let masks = ":masks ((0 2 \"causal\")) :scale 1.0";
    check_parse(
        &format!("{head}  (%1 (fused-attention %0 %0 %0 {masks} :rope-theta 10.0) f32[1, 2, 4, 2]))"),
        expect![[r#"
            test.sexp:3:8: `fused-attention` needs `:rope-position-scale`
              |
            3 |   (%1 (fused-attention %0 %0 %0 :masks ((0 2 "causal")) :scale 1.0 :rope-theta 10.0) f32[1, 2, 4, 2]))
              |        ^^^^^^^^^^^^^^^"#]],
    );
    check_parse(
        &format!(
            "{head}  (%1 (fused-attention %0 %0 %0 {masks} :rope-theta 10.0 :rope-position-scale 0.0) f32[1, 2, 4, 2]))"
        ),
        expect![[r#"
            test.sexp:3:8: `fused-attention`: position_scale must be finite and nonzero, found 0.0
              |
            3 |   (%1 (fused-attention %0 %0 %0 :masks ((0 2 "causal")) :scale 1.0 :rope-theta 10.0 :rope-position-scale 0.0) f32[1, 2, 4, 2]))
              |        ^^^^^^^^^^^^^^^"#]],
    );
}

#[test]
fn rope_freqs_that_do_not_parse_are_named_at_their_string() {
    let head = "(graph g\n  (%0 (input q) f32[1, 2, 4, 2])\n";
    check_parse(
        &format!(
            "{head}  (%1 (rope %0 :theta 10.0 :position-scale 1.0 :freqs \"llama3:8:4:1:8192\") f32[1, 2, 4, 2]))"
        ),
        expect![[r#"
            test.sexp:3:55: "llama3:8:4:1:8192": every number must be positive, and LOW below HIGH
              |
            3 |   (%1 (rope %0 :theta 10.0 :position-scale 1.0 :freqs "llama3:8:4:1:8192") f32[1, 2, 4, 2]))
              |                                                       ^^^^^^^^^^^^^^^^^^^"#]],
    );
    check_parse(
        &format!("{head}  (%1 (rope %0 :theta 10.0 :position-scale 1.0 :freqs \"yarn\") f32[1, 2, 4, 2]))"),
        expect![[r#"
            test.sexp:3:55: "yarn" is not `default` or `llama3:FACTOR:LOW:HIGH:CONTEXT`
              |
            3 |   (%1 (rope %0 :theta 10.0 :position-scale 1.0 :freqs "yarn") f32[1, 2, 4, 2]))
              |                                                       ^^^^^^"#]],
    );
}

#[test]
fn fused_attention_text_errors_point_at_the_entry() {
    let head = "(graph g\n  (%0 (input q) f32[1, 2, 4, 2])\n";
    check_parse(
        &format!("{head}  (%1 (fused-attention %0 %0 %0 :scale 1.0) f32[1, 2, 4, 2]))"),
        expect![[r#"
            test.sexp:3:8: `fused-attention` needs `:masks`
              |
            3 |   (%1 (fused-attention %0 %0 %0 :scale 1.0) f32[1, 2, 4, 2]))
              |        ^^^^^^^^^^^^^^^"#]],
    );
    check_parse(
        &format!("{head}  (%1 (fused-attention %0 %0 %0 :masks ((0 2 causal)) :scale 1.0) f32[1, 2, 4, 2]))"),
        expect![[r#"
            test.sexp:3:46: expected the range's mask as a quoted string, found `causal`
              |
            3 |   (%1 (fused-attention %0 %0 %0 :masks ((0 2 causal)) :scale 1.0) f32[1, 2, 4, 2]))
              |                                              ^^^^^^"#]],
    );
    check_parse(
        &format!(
            "{head}  (%1 (fused-attention %0 %0 %0 :masks (0 2 \"causal\") :scale 1.0) f32[1, 2, 4, 2]))"
        ),
        expect![[r#"
            test.sexp:3:41: expected `(start end "mask")` or `)`, found `0`
              |
            3 |   (%1 (fused-attention %0 %0 %0 :masks (0 2 "causal") :scale 1.0) f32[1, 2, 4, 2]))
              |                                         ^"#]],
    );
    check_parse(
        &format!(
            "{head}  (%1 (fused-attention %0 %0 %0 :masks ((0 1 \"causal\") (1 2 \"sinc(1)\")) :scale 1.0) f32[1, 2, 4, 2]))"
        ),
        expect![[r#"
            test.sexp:3:62: invalid mask "sinc(1)": unknown mask primitive `sinc`; expected one of full, causal, window, sink, groups, local_stride, roll; did you mean `sink`?
              |
            3 |   (%1 (fused-attention %0 %0 %0 :masks ((0 1 "causal") (1 2 "sinc(1)")) :scale 1.0) f32[1, 2, 4, 2]))
              |                                                              ^^^^"#]],
    );
    check_parse(
        &format!(
            "{head}  (%1 (fused-attention %0 %0 %0 :masks ((0 1 \"causal\")) :scale 1.0) f32[1, 2, 4, 2]))"
        ),
        expect![[r#"
            test.sexp:3:8: `fused-attention`: the head ranges cover 0..1, but q has 2 heads
              |
            3 |   (%1 (fused-attention %0 %0 %0 :masks ((0 1 "causal")) :scale 1.0) f32[1, 2, 4, 2]))
              |        ^^^^^^^^^^^^^^^"#]],
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The parser returns an error, never panics, on damaged fused-attention text.
    #[test]
    fn damaged_fused_text_never_panics(cut in any::<prop::sample::Index>(), len in 0usize..6, insert in "[()\" 0-9a-z%:]{0,3}") {
        let text = fused_graph().to_sexpr();
        let at = cut.index(text.len());
        let end = (at + len).min(text.len());
        let damaged = format!("{}{insert}{}", &text[..at], &text[end..]);
        let _ = parse(&damaged);
    }
}

#[test]
fn integer_ops_print_and_parse_back() {
    let mut g = Graph::new("lm");
    let ids = g.input("ids", TensorType::new(DType::I32, [2, 3]));
    let targets = g.input("targets", TensorType::new(DType::I64, [2, 3]));
    let table = g.parameter("embed", TensorType::f32([5, 4]), true);
    let x = g.add(Op::Embedding, &[ids, table]).unwrap();
    let grad = g.add(Op::EmbeddingGrad { vocab: 5 }, &[ids, x]).unwrap();
    let logits = g.add(Op::Embedding, &[targets, grad]).unwrap();
    let loss = g.add(Op::CrossEntropy, &[logits, targets]).unwrap();
    let dlogits = g.add(Op::CrossEntropyGrad, &[logits, targets, loss]).unwrap();
    g.set_output("loss", loss);
    g.set_output("dlogits", dlogits);
    let text = g.to_sexpr();
    let parsed = parse(&text).unwrap();
    assert_eq!(parsed, g);
    assert!(text.contains("(embedding-grad %0 %3 :vocab 5)"), "{text}");
    // Ids must be integers and targets must match the logits' rows.
    let err = g.add(Op::Embedding, &[x, table]).unwrap_err();
    assert_eq!(err.to_string(), "`%8 = embedding`: needs an integer dtype, found f32[2, 3, 4]");
    let short = g.input("short", TensorType::new(DType::I32, [3]));
    let err = g.add(Op::CrossEntropy, &[logits, short]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "`%9 = cross-entropy`: targets must have the logits' shape without the last axis: f32[2, 3, 4], i32[3]"
    );
}

#[test]
fn decoding_ops_check_their_operands() {
    let mut g = Graph::new("g");
    let i32s = |shape: Vec<usize>| TensorType::new(DType::I32, shape);
    let q = g.input("q", TensorType::f32([2, 4, 1, 8]));
    let k_new = g.input("k_new", TensorType::f32([2, 2, 1, 8]));
    let k_cache = g.input("k_cache", TensorType::f32([2, 2, 5, 8]));
    let slots = g.input("slots", i32s(vec![2, 2, 5]));
    let positions = g.input("positions", i32s(vec![2]));
    let rope_positions = g.input("rope_positions", i32s(vec![2, 1]));
    let heads = vec![HeadMask::new(0..4, mask("causal & window(3)"))];
    let op = Op::CachedAttention { heads: heads.clone(), scale: 0.5 };
    let ok = g.add(op.clone(), &[q, k_new, k_new, k_cache, k_cache, slots, positions]).unwrap();
    assert_eq!(g.node(ok).ty, TensorType::f32([2, 4, 1, 8]));
    check_err(
        g.add(op.clone(), &[q, k_new, k_new, k_cache, k_cache, slots, rope_positions]),
        expect![
            "`%7 = cached-attention`: operands must be q [B, H, 1, D], k_new [B, G, 1, D], v_new [B, G, 1, Dv], k_cache [B, G, C, D], v_cache [B, G, C, Dv], slots [B, G, C], positions [B]: f32[2, 4, 1, 8], f32[2, 2, 1, 8], f32[2, 2, 1, 8], f32[2, 2, 5, 8], f32[2, 2, 5, 8], i32[2, 2, 5], i32[2, 1]"
        ],
    );
    let three_kv = g.input("k3", TensorType::f32([2, 3, 1, 8]));
    let cache3 = g.input("c3", TensorType::f32([2, 3, 5, 8]));
    let slots3 = g.input("s3", i32s(vec![2, 3, 5]));
    check_err(
        g.add(op, &[q, three_kv, three_kv, cache3, cache3, slots3, positions]),
        expect![
            "`%10 = cached-attention`: 3 KV heads must divide the 4 query heads: f32[2, 4, 1, 8], f32[2, 3, 1, 8], f32[2, 3, 1, 8], f32[2, 3, 5, 8], f32[2, 3, 5, 8], i32[2, 3, 5], i32[2]"
        ],
    );
    let table = g.input("table", TensorType::f32([2, 1, 2, 8]));
    assert!(g.add(Op::RopeTable, &[q, table]).is_ok());
    check_err(
        g.add(Op::RopeTable, &[q, k_cache]),
        expect![
            "`%12 = rope-table`: table must be [B, T, 2, D] of x [B, H, T, D]: f32[2, 4, 1, 8], f32[2, 2, 5, 8]"
        ],
    );
}
