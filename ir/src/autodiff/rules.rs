//! Vector-Jacobian products: for a node `y = f(x1, .., xn)` and the cotangent
//! `g` of `y`, the cotangent each operand receives, as new graph nodes.

use super::AutodiffError;
use crate::graph::{AttentionGrad, Graph, GraphError, NodeId, Op, RopeParams, UnaryOp, ValidGraph};
use crate::mask::Mask;

/// The contributions of node `id` to its operands' cotangents, given its own
/// cotangent `g`; `None` for the operands `wanted` says need none.
pub(super) fn vjp(
    b: &mut Graph,
    forward: &ValidGraph,
    id: NodeId,
    g: NodeId,
    wanted: &[bool],
) -> Result<Vec<Option<NodeId>>, AutodiffError> {
    let node = forward.node(id);
    let x = &node.inputs;
    let shape = |n: NodeId| forward.node(n).ty.shape.clone();
    let graph_err = |source: GraphError| AutodiffError::Graph { source };
    let rule = |reason: String| AutodiffError::Rule { node: id, op: node.op.name(), reason };
    // One contribution per operand; only the wanted ones are built.
    let mut out: Vec<Option<NodeId>> = vec![None; x.len()];
    let mut each = |f: &mut dyn FnMut(&mut Graph, usize) -> Result<NodeId, GraphError>| {
        for (slot, want) in wanted.iter().enumerate() {
            if *want {
                out[slot] = Some(f(b, slot).map_err(graph_err)?);
            }
        }
        Ok::<_, AutodiffError>(())
    };
    match &node.op {
        // `C = op(A) op(B)`: `dop(A) = g op(B)ᵀ`, `dop(B) = op(A)ᵀ g`, transposed back where needed.
        &Op::MatMul { transpose_a: ta, transpose_b: tb } => each(&mut |b, slot| match (slot, ta, tb) {
            (0, false, _) => b.matmul(g, x[1], false, !tb),
            (0, true, _) => b.matmul(x[1], g, tb, true),
            (_, _, false) => b.matmul(x[0], g, !ta, false),
            (_, _, true) => b.matmul(g, x[0], true, ta),
        })?,
        Op::Add => each(&mut |_, _| Ok(g))?,
        // d(a * b) = g * b da + g * a db.
        Op::Mul => each(&mut |b, slot| b.elementwise_mul(g, x[1 - slot]))?,
        &Op::Scale { factor } => each(&mut |b, _| b.scale(g, factor))?,
        // d exp(x) = exp(x) dx: reuse the forward value.
        Op::Unary(UnaryOp::Exp) => each(&mut |b, _| b.elementwise_mul(g, id))?,
        // d log(x) = dx / x, and 1 / x = exp(-log x) with log x the forward value.
        Op::Unary(UnaryOp::Log) => each(&mut |b, _| {
            let neg = b.scale(id, -1.0)?;
            let recip = b.exp(neg)?;
            b.elementwise_mul(g, recip)
        })?,
        // silu'(x) = s + x s (1 - s) = s + y - y s, with s = sigmoid(x) and y = silu(x).
        Op::Unary(UnaryOp::Silu) => each(&mut |b, _| {
            let s = b.add(Op::Unary(UnaryOp::Sigmoid), &[x[0]])?;
            let ys = b.elementwise_mul(id, s)?;
            let minus_ys = b.scale(ys, -1.0)?;
            let s_plus_y = b.elementwise_add(s, id)?;
            let slope = b.elementwise_add(s_plus_y, minus_ys)?;
            b.elementwise_mul(g, slope)
        })?,
        // sigmoid'(x) = y (1 - y) = y - y².
        Op::Unary(UnaryOp::Sigmoid) => each(&mut |b, _| {
            let yy = b.elementwise_mul(id, id)?;
            let minus_yy = b.scale(yy, -1.0)?;
            let slope = b.elementwise_add(id, minus_yy)?;
            b.elementwise_mul(g, slope)
        })?,
        // erf'(x) = 2/√π e^(-x²).
        Op::Unary(UnaryOp::Erf) => each(&mut |b, _| {
            let xx = b.elementwise_mul(x[0], x[0])?;
            let minus_xx = b.scale(xx, -1.0)?;
            let gauss = b.exp(minus_xx)?;
            let slope = b.scale(gauss, std::f64::consts::FRAC_2_SQRT_PI)?;
            b.elementwise_mul(g, slope)
        })?,
        &Op::RmsNorm { eps } => each(&mut |b, slot| match slot {
            0 => b.add(Op::RmsNormGrad { eps }, &[x[0], x[1], g]),
            _ => b.add(Op::RmsNormWeightGrad { eps }, &[x[0], g]),
        })?,
        // A rotation's transpose turns by the opposite angle.
        &Op::Rope { theta, position_scale, freqs } => {
            each(&mut |b, _| b.rope_with(g, RopeParams { theta, position_scale, freqs }.transposed()))?
        }
        Op::Reshape { .. } => {
            let to = shape(x[0]);
            each(&mut |b, _| b.reshape(g, &to))?
        }
        // Output axis i is input axis perm[i], so the inverse sends perm[i] back to i.
        Op::Permute { perm } => {
            let mut inverse = vec![0; perm.len()];
            for (i, &p) in perm.iter().enumerate() {
                inverse[p] = i;
            }
            each(&mut |b, _| b.permute(g, &inverse))?
        }
        // A roll is a permutation; its transpose rolls the other way.
        &Op::Roll { axis, shift, heads } => {
            let back = shift.checked_neg().ok_or_else(|| rule(format!("shift {shift} cannot be negated")))?;
            each(&mut |b, _| b.add(Op::Roll { axis, shift: back, heads }, &[g]))?
        }
        &Op::Slice { axis, start, end } => {
            let after = shape(x[0])[axis] - end;
            each(&mut |b, _| b.pad(g, axis, start, after))?
        }
        &Op::Pad { axis, before, .. } => {
            let len = shape(x[0])[axis];
            each(&mut |b, _| b.slice(g, axis, before, before + len))?
        }
        // Each operand gets its own stretch of the cotangent back.
        &Op::Concat { axis } => {
            let mut starts = Vec::with_capacity(x.len());
            let mut at = 0;
            for &xi in x {
                starts.push(at);
                at += shape(xi)[axis];
            }
            each(&mut |b, slot| b.slice(g, axis, starts[slot], starts[slot] + shape(x[slot])[axis]))?
        }
        &Op::Softmax { axis } => each(&mut |b, _| b.softmax_grad(id, g, axis))?,
        &Op::Broadcast { axis, .. } => each(&mut |b, _| b.reduce_sum(g, axis))?,
        &Op::ReduceSum { axis } => {
            let size = shape(x[0])[axis];
            each(&mut |b, _| b.broadcast(g, axis, size))?
        }
        &Op::ReduceMean { axis } => {
            let size = shape(x[0])[axis];
            each(&mut |b, _| {
                let spread = b.broadcast(g, axis, size)?;
                b.scale(spread, 1.0 / size as f64)
            })?
        }
        // Masked-out entries are constant zeros; the rest is a softmax of `scale * s`.
        &Op::MaskedSoftmax { scale, .. } => each(&mut |b, _| {
            let d = b.softmax_grad(id, g, 3)?;
            b.scale(d, scale)
        })?,
        // Only the table has a gradient; ids are integers.
        Op::Embedding => {
            let vocab = shape(x[1])[0];
            if wanted[1] {
                out[1] = Some(b.add(Op::EmbeddingGrad { vocab }, &[x[0], g]).map_err(graph_err)?);
            }
        }
        Op::CrossEntropy => {
            if wanted[0] {
                out[0] = Some(b.add(Op::CrossEntropyGrad, &[x[0], x[1], g]).map_err(graph_err)?);
            }
        }
        Op::Attention { mask, head_offset, scale } => {
            out = attention(b, x, g, mask, *head_offset, *scale, wanted).map_err(graph_err)?;
        }
        // The fused backward pass: one FlashAttention-2 backward for all three,
        // planned together because the nodes share operands and attributes. A
        // rope on load stays on the backward's load, its transpose on dq and dk.
        Op::FusedAttention { heads, scale, rope } => {
            for grad in AttentionGrad::ALL {
                if wanted[grad.operand()] {
                    let op =
                        Op::FusedAttentionGrad { heads: heads.clone(), scale: *scale, grad, rope: *rope };
                    out[grad.operand()] = Some(b.add(op, &[x[0], x[1], x[2], g]).map_err(graph_err)?);
                }
            }
        }
        // Backward-only ops are not differentiated again, and a maximum has no
        // gradient weft needs yet (LLaMA's graph has none).
        Op::SoftmaxGrad { .. }
        | Op::EmbeddingGrad { .. }
        | Op::CrossEntropyGrad
        | Op::FusedAttentionGrad { .. }
        // Decoding ops run at inference only.
        | Op::RopeTable
        | Op::CachedAttention { .. }
        | Op::RmsNormGrad { .. }
        | Op::RmsNormWeightGrad { .. }
        | Op::ReduceMax { .. }
        | Op::Input { .. }
        | Op::Parameter { .. } => return Err(AutodiffError::NoRule { node: id, op: node.op.name() }),
    }
    Ok(out)
}

/// Dense attention's backward the way an eager framework computes it, with
/// the probabilities materialized:
///
/// `P = masked_softmax(q kᵀ)`, `dv = Pᵀ g`, `dS = scale · P ∘ (g vᵀ − rowsum(P ∘ g vᵀ))`,
/// `dq = dS k`, `dk = dSᵀ q`. Head `i` uses `mask.for_head(head_offset + i)`.
fn attention(
    b: &mut Graph,
    x: &[NodeId],
    g: NodeId,
    mask: &Mask,
    head_offset: usize,
    scale: f64,
    wanted: &[bool],
) -> Result<Vec<Option<NodeId>>, GraphError> {
    let (q, k, v) = (x[0], x[1], x[2]);
    let scores = b.matmul(q, k, false, true)?;
    let probs = b.masked_softmax(scores, mask.clone(), head_offset, scale)?;
    let dv = if wanted[2] { Some(b.matmul(probs, g, true, false)?) } else { None };
    let (mut dq, mut dk) = (None, None);
    if wanted[0] || wanted[1] {
        let dp = b.matmul(g, v, false, true)?;
        let ds = b.softmax_grad(probs, dp, 3)?;
        let ds = b.scale(ds, scale)?;
        if wanted[0] {
            dq = Some(b.matmul(ds, k, false, false)?);
        }
        if wanted[1] {
            dk = Some(b.matmul(ds, q, true, false)?);
        }
    }
    Ok(vec![dq, dk, dv])
}
