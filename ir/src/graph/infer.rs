//! Shape inference: the output type of an op applied to operand types.
//!
//! The builder, the validator and the parser all go through [`infer`], so a
//! graph that validates is one the builder could have built.

use super::op::{Arity, HeadMask, HeadRange, Op};
use super::rope::RopeParams;
use super::types::{Dims, TensorType, num_elements};
use crate::mask::{ConcreteMask, Mask};

/// Why an op cannot take its operands; the caller adds the node and the op.
#[derive(Debug)]
pub(crate) enum Problem {
    Arity(Arity),
    Invalid(String),
}

type Inferred = Result<TensorType, Problem>;

fn bad<T>(reason: impl Into<String>) -> Result<T, Problem> {
    Err(Problem::Invalid(reason.into()))
}

/// The operand types as `f32[2, 4], f32[4]`.
fn list(xs: &[&TensorType]) -> String {
    xs.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(", ")
}

/// Checks a leaf's declared type: every dimension at least 1, a representable size.
///
/// Zero-sized tensors are rejected everywhere so that every op (roll's modulus,
/// softmax's max) is defined on every valid graph.
pub(crate) fn check_leaf(ty: &TensorType) -> Result<(), String> {
    if ty.shape.contains(&0) {
        return Err(format!("declared type {ty} has a zero dimension"));
    }
    if ty.num_elements().is_none() {
        return Err(format!("declared type {ty} has too many elements"));
    }
    Ok(())
}

/// The output type of `op` on operands of types `xs`.
pub(crate) fn infer(op: &Op, xs: &[&TensorType]) -> Inferred {
    let arity = op.arity();
    if !arity.accepts(xs.len()) {
        return Err(Problem::Arity(arity));
    }
    match (op, xs) {
        (Op::Input { .. } | Op::Parameter { .. }, _) => bad(
            "inputs and parameters have a declared type; build them with `Graph::input` or `Graph::parameter`",
        ),
        (Op::MatMul { transpose_a, transpose_b }, &[a, b]) => matmul(a, b, *transpose_a, *transpose_b),
        (Op::Add | Op::Mul, &[a, b]) => {
            if a == b {
                Ok(a.clone())
            } else {
                bad(format!("operand types differ: {a}, {b}"))
            }
        }
        (Op::Scale { factor }, &[x]) => {
            float(x)?;
            finite("factor", *factor)?;
            Ok(x.clone())
        }
        (Op::Unary(_), &[x]) => {
            float(x)?;
            Ok(x.clone())
        }
        (Op::Reshape { shape }, &[x]) => reshape(x, shape),
        (Op::Permute { perm }, &[x]) => permute(x, perm),
        (Op::Roll { axis, heads, .. }, &[x]) => roll(x, *axis, *heads),
        (Op::Slice { axis, start, end }, &[x]) => {
            let dim = axis_dim(x, *axis)?;
            if start >= end {
                return bad(format!("empty slice {start}..{end} of axis {axis} of {x}"));
            }
            if *end > dim {
                return bad(format!("slice {start}..{end} out of bounds for axis {axis} of {x}"));
            }
            let mut shape = x.shape.clone();
            shape[*axis] = end - start;
            Ok(x.with_shape(shape))
        }
        (Op::Concat { axis }, _) => concat(xs, *axis),
        (Op::Softmax { axis }, &[x]) => {
            float(x)?;
            axis_dim(x, *axis)?;
            Ok(x.clone())
        }
        (Op::SoftmaxGrad { axis }, &[y, dy]) => {
            float(y)?;
            axis_dim(y, *axis)?;
            if y == dy { Ok(y.clone()) } else { bad(format!("operand types differ: {y}, {dy}")) }
        }
        (Op::MaskedSoftmax { mask, head_offset, scale }, &[s]) => {
            masked_softmax(s, mask, *head_offset, *scale)
        }
        (Op::Broadcast { axis, size }, &[x]) => {
            if *axis > x.rank() {
                return bad(format!("axis {axis} out of range 0..={} for {x}", x.rank()));
            }
            if *size == 0 {
                return bad("broadcast size must be at least 1");
            }
            let mut shape = x.shape.clone();
            shape.insert(*axis, *size);
            checked_size(x.with_shape(shape))
        }
        (Op::Pad { axis, before, after }, &[x]) => {
            let dim = axis_dim(x, *axis)?;
            let Some(padded) = dim.checked_add(*before).and_then(|d| d.checked_add(*after)) else {
                return bad(format!("padding {before} + {after} overflows axis {axis} of {x}"));
            };
            let mut shape = x.shape.clone();
            shape[*axis] = padded;
            checked_size(x.with_shape(shape))
        }
        (Op::ReduceMean { axis }, &[x]) => {
            float(x)?;
            reduce(x, *axis)
        }
        (Op::ReduceSum { axis } | Op::ReduceMax { axis }, &[x]) => reduce(x, *axis),
        (Op::RmsNorm { eps }, &[x, w]) => rms_norm(x, w, *eps),
        (Op::RmsNormGrad { eps }, &[x, w, dy]) => {
            let out = rms_norm(x, w, *eps)?;
            if dy == x { Ok(out) } else { bad(format!("dy must have the type of x: {}", list(xs))) }
        }
        (Op::RmsNormWeightGrad { eps }, &[x, dy]) => {
            let [.., d] = x.shape[..] else { return bad(format!("x must have rank >= 1: {x}")) };
            rms_norm(x, &x.with_shape(vec![d]), *eps)?;
            if dy == x {
                Ok(x.with_shape(vec![d]))
            } else {
                bad(format!("dy must have the type of x: {}", list(xs)))
            }
        }
        (Op::Rope { theta, position_scale, .. }, &[x]) => {
            float(x)?;
            rope(x, *theta, *position_scale)?;
            Ok(x.clone())
        }
        (Op::RopeTable, &[x, table]) => {
            rope(x, 1.0, 1.0)?;
            same_dtype(&[x, table])?;
            float(x)?;
            if table.shape[..] != [x.shape[0], x.shape[2], 2, x.shape[3]] {
                return bad(format!("table must be [B, T, 2, D] of x [B, H, T, D]: {}", list(xs)));
            }
            Ok(x.clone())
        }
        (Op::CachedAttention { heads, scale }, &[q, k_new, v_new, k_cache, v_cache, slots, positions]) => {
            cached_attention(xs, [q, k_new, v_new, k_cache, v_cache, slots, positions], heads, *scale)
        }
        (Op::Attention { mask, head_offset, scale }, &[q, k, v]) => {
            attention(q, k, v, mask, *head_offset, *scale)
        }
        (Op::FusedAttention { heads, scale, rope }, &[q, k, v]) => {
            fused_attention(q, k, v, heads, *scale, rope)
        }
        (Op::FusedAttentionGrad { heads, scale, grad, rope }, &[q, k, v, dout]) => {
            let out = fused_attention(q, k, v, heads, *scale, rope)?;
            if dout != &out {
                return bad(format!("do must have the output's type {out}, found {dout}"));
            }
            Ok([q, k, v][grad.operand()].clone())
        }
        (Op::Embedding, &[ids, table]) => {
            integer(ids)?;
            float(table)?;
            let [_, c] = table.shape[..] else { return bad(format!("table must be [V, C], found {table}")) };
            checked_size(table.with_shape([&ids.shape[..], &[c]].concat()))
        }
        (Op::EmbeddingGrad { vocab }, &[ids, dy]) => {
            integer(ids)?;
            float(dy)?;
            match dy.shape.split_last() {
                Some((&c, rows)) if rows == &ids.shape[..] && *vocab > 0 => {
                    checked_size(dy.with_shape(vec![*vocab, c]))
                }
                _ => bad(format!("dy must be ids' shape plus one axis, and vocab >= 1: {}", list(xs))),
            }
        }
        (Op::CrossEntropy, &[logits, targets]) => {
            cross_entropy(logits, targets)?;
            Ok(logits.with_shape(vec![]))
        }
        (Op::CrossEntropyGrad, &[logits, targets, dloss]) => {
            cross_entropy(logits, targets)?;
            if dloss.shape.is_empty() && dloss.dtype == logits.dtype {
                Ok(logits.clone())
            } else {
                bad(format!("dloss must be a scalar of the logits' dtype: {}", list(xs)))
            }
        }
        // Arity was checked above, so every op matched one of the arms.
        _ => Err(Problem::Arity(arity)),
    }
}

fn float(x: &TensorType) -> Result<(), Problem> {
    if x.dtype.is_float() { Ok(()) } else { bad(format!("needs a float dtype, found {x}")) }
}

fn integer(x: &TensorType) -> Result<(), Problem> {
    if x.dtype.is_float() { bad(format!("needs an integer dtype, found {x}")) } else { Ok(()) }
}

/// `logits [..., V]` (float) against `targets [...]` (integer).
fn cross_entropy(logits: &TensorType, targets: &TensorType) -> Result<(), Problem> {
    float(logits)?;
    integer(targets)?;
    match logits.shape.split_last() {
        Some((_, rows)) if rows == &targets.shape[..] => Ok(()),
        _ => bad(format!("targets must have the logits' shape without the last axis: {logits}, {targets}")),
    }
}

fn finite(what: &str, v: f64) -> Result<(), Problem> {
    if v.is_finite() { Ok(()) } else { bad(format!("{what} must be finite, found {v:?}")) }
}

fn positive(what: &str, v: f64) -> Result<(), Problem> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        bad(format!("{what} must be positive and finite, found {v:?}"))
    }
}

/// The size of `axis`, or an error if `x` has no such axis.
fn axis_dim(x: &TensorType, axis: usize) -> Result<usize, Problem> {
    match x.shape.get(axis) {
        Some(&d) => Ok(d),
        None => bad(format!("axis {axis} out of range for {x} (rank {})", x.rank())),
    }
}

fn same_dtype(xs: &[&TensorType]) -> Result<(), Problem> {
    match xs.split_first() {
        Some((first, rest)) if rest.iter().any(|t| t.dtype != first.dtype) => {
            bad(format!("operand dtypes differ: {}", list(xs)))
        }
        _ => Ok(()),
    }
}

fn matmul(a: &TensorType, b: &TensorType, ta: bool, tb: bool) -> Inferred {
    let note = match (ta, tb) {
        (false, false) => "",
        (true, false) => " (transpose_a)",
        (false, true) => " (transpose_b)",
        (true, true) => " (transpose_a, transpose_b)",
    };
    let (ra, rb) = (a.rank(), b.rank());
    if ra < 2 || rb < 2 {
        return bad(format!("operands must have rank >= 2: {a} x {b}"));
    }
    if ra != rb {
        return bad(format!("operand ranks differ: {a} x {b}"));
    }
    if a.shape[..ra - 2] != b.shape[..rb - 2] {
        return bad(format!("batch dims differ: {a} x {b}"));
    }
    if a.dtype != b.dtype {
        return bad(format!("operand dtypes differ: {a} x {b}"));
    }
    let (m, ka) = if ta { (a.shape[ra - 1], a.shape[ra - 2]) } else { (a.shape[ra - 2], a.shape[ra - 1]) };
    let (kb, n) = if tb { (b.shape[rb - 1], b.shape[rb - 2]) } else { (b.shape[rb - 2], b.shape[rb - 1]) };
    if ka != kb {
        return bad(format!("contracted dims differ ({ka} vs {kb}): {a} x {b}{note}"));
    }
    let mut shape = a.shape[..ra - 2].to_vec();
    shape.extend([m, n]);
    Ok(a.with_shape(shape))
}

fn reshape(x: &TensorType, shape: &[usize]) -> Inferred {
    if shape.contains(&0) {
        return bad(format!("target shape {} has a zero dimension", Dims(shape)));
    }
    let Some(target) = num_elements(shape) else {
        return bad(format!("target shape {} has too many elements", Dims(shape)));
    };
    let have = x.num_elements().unwrap_or(usize::MAX);
    if have != target {
        return bad(format!(
            "element count differs: {x} has {have} elements, target shape {} has {target}",
            Dims(shape)
        ));
    }
    Ok(x.with_shape(shape.to_vec()))
}

fn permute(x: &TensorType, perm: &[usize]) -> Inferred {
    let mut seen = vec![false; x.rank()];
    let is_perm = perm.len() == x.rank()
        && perm.iter().all(|&p| match seen.get_mut(p) {
            Some(s) if !*s => {
                *s = true;
                true
            }
            _ => false,
        });
    if !is_perm {
        return bad(format!("{} is not a permutation of the {} axes of {x}", Dims(perm), x.rank()));
    }
    Ok(x.with_shape(perm.iter().map(|&p| x.shape[p]).collect()))
}

fn roll(x: &TensorType, axis: usize, heads: Option<HeadRange>) -> Inferred {
    axis_dim(x, axis)?;
    if let Some(h) = heads {
        let dim = axis_dim(x, h.axis)?;
        if h.axis == axis {
            return bad(format!("head range {h} is on the rolled axis {axis}"));
        }
        if h.start >= h.end {
            return bad(format!("empty head range {h}"));
        }
        if h.end > dim {
            return bad(format!("head range {h} out of bounds for {x}"));
        }
    }
    Ok(x.clone())
}

fn concat(xs: &[&TensorType], axis: usize) -> Inferred {
    let Some((first, _)) = xs.split_first() else {
        return Err(Problem::Arity(Arity::AtLeast(1)));
    };
    axis_dim(first, axis)?;
    same_dtype(xs)?;
    let mut total = 0usize;
    for x in xs {
        let matches = x.rank() == first.rank()
            && x.shape.iter().zip(&first.shape).enumerate().all(|(i, (a, b))| i == axis || a == b);
        if !matches {
            return bad(format!("operand shapes differ outside axis {axis}: {}", list(xs)));
        }
        total = match total.checked_add(x.shape[axis]) {
            Some(t) => t,
            None => return bad(format!("concatenated axis {axis} is too long: {}", list(xs))),
        };
    }
    let mut shape = first.shape.clone();
    shape[axis] = total;
    Ok(first.with_shape(shape))
}

fn reduce(x: &TensorType, axis: usize) -> Inferred {
    axis_dim(x, axis)?;
    let mut shape = x.shape.clone();
    shape.remove(axis);
    Ok(x.with_shape(shape))
}

fn rms_norm(x: &TensorType, w: &TensorType, eps: f64) -> Inferred {
    float(x)?;
    same_dtype(&[x, w])?;
    if !(eps.is_finite() && eps >= 0.0) {
        return bad(format!("eps must be finite and >= 0, found {eps:?}"));
    }
    match x.shape.last() {
        Some(&d) if w.shape == [d] => Ok(x.clone()),
        Some(&d) => bad(format!("weight must be [{d}] to match the last axis of x: {x}, {w}")),
        None => bad(format!("x must have rank >= 1: {x}, {w}")),
    }
}

fn attention(
    q: &TensorType,
    k: &TensorType,
    v: &TensorType,
    mask: &Mask,
    head_offset: usize,
    scale: f64,
) -> Inferred {
    attention_operands(q, k, v, scale)?;
    for i in 0..q.shape[1] {
        let Some(head) = head_offset.checked_add(i) else {
            return bad(format!("head offset {head_offset} + {i} overflows"));
        };
        check_head_mask(mask, head)?;
    }
    Ok(v.clone())
}

/// Scores `[B, H, Nq, Nk]`; the mask is evaluated at sequence length `Nq`, so
/// queries and keys must be equally many.
fn masked_softmax(s: &TensorType, mask: &Mask, head_offset: usize, scale: f64) -> Inferred {
    float(s)?;
    finite("scale", scale)?;
    let [_, h, nq, nk] = s.shape[..] else {
        return bad(format!("scores must be [B, H, N, N], found {s}"));
    };
    if nq != nk {
        return bad(format!("scores must be [B, H, N, N] with as many queries as keys, found {s}"));
    }
    for i in 0..h {
        let Some(head) = head_offset.checked_add(i) else {
            return bad(format!("head offset {head_offset} + {i} overflows"));
        };
        check_head_mask(mask, head)?;
    }
    Ok(s.clone())
}

/// A type whose element count overflows is rejected, as for leaves.
fn checked_size(ty: TensorType) -> Inferred {
    if ty.num_elements().is_none() { bad(format!("{ty} has too many elements")) } else { Ok(ty) }
}

fn fused_attention(
    q: &TensorType,
    k: &TensorType,
    v: &TensorType,
    heads: &[HeadMask],
    scale: f64,
    rope_params: &Option<RopeParams>,
) -> Inferred {
    attention_operands(q, k, v, scale)?;
    if let Some(r) = rope_params {
        rope(q, r.theta, r.position_scale)?;
    }
    head_ranges(heads, q.shape[1])?;
    Ok(v.clone())
}

/// [`Op::CachedAttention`]'s operands: `xs` is every operand, for messages.
fn cached_attention(
    xs: &[&TensorType],
    [q, k_new, v_new, k_cache, v_cache, slots, positions]: [&TensorType; 7],
    heads: &[HeadMask],
    scale: f64,
) -> Inferred {
    let floats = [q, k_new, v_new, k_cache, v_cache];
    if floats.iter().any(|t| t.rank() != 4) {
        return bad(format!(
            "q, k_new, v_new, k_cache, v_cache must have rank 4 ([B, H, 1, D], [B, G, 1, D], [B, G, 1, Dv], [B, G, C, D], [B, G, C, Dv]): {}",
            list(xs)
        ));
    }
    same_dtype(&floats)?;
    float(q)?;
    integer(slots)?;
    integer(positions)?;
    finite("scale", scale)?;
    let (b, h, d) = (q.shape[0], q.shape[1], q.shape[3]);
    let (g, c, dv) = (k_cache.shape[1], k_cache.shape[2], v_cache.shape[3]);
    let shapes_fit = q.shape[2] == 1
        && k_new.shape[..] == [b, g, 1, d]
        && v_new.shape[..] == [b, g, 1, dv]
        && k_cache.shape[..] == [b, g, c, d]
        && v_cache.shape[..] == [b, g, c, dv]
        && slots.shape[..] == [b, g, c]
        && positions.shape[..] == [b];
    if !shapes_fit {
        return bad(format!(
            "operands must be q [B, H, 1, D], k_new [B, G, 1, D], v_new [B, G, 1, Dv], k_cache [B, G, C, D], v_cache [B, G, C, Dv], slots [B, G, C], positions [B]: {}",
            list(xs)
        ));
    }
    if g == 0 || !h.is_multiple_of(g) {
        return bad(format!("{g} KV heads must divide the {h} query heads: {}", list(xs)));
    }
    head_ranges(heads, h)?;
    checked_size(q.with_shape(vec![b, h, 1, dv]))
}

/// The ranges of `heads` tile `0..n_heads` in order, so every head has exactly
/// one mask, and each head's mask evaluates.
fn head_ranges(heads: &[HeadMask], n_heads: usize) -> Result<(), Problem> {
    let mut next = 0;
    for entry in heads {
        let r = &entry.heads;
        if r.start != next {
            let what = if r.start < next { "overlaps the previous one" } else { "leaves a gap before it" };
            return bad(format!(
                "head range {}..{} {what}; the ranges must tile 0..{n_heads}",
                r.start, r.end
            ));
        }
        if r.start >= r.end {
            return bad(format!("head range {}..{} is empty", r.start, r.end));
        }
        if r.end > n_heads {
            return bad(format!("head range {}..{} is out of bounds for {n_heads} heads", r.start, r.end));
        }
        for head in r.clone() {
            check_head_mask(&entry.mask, head)?;
        }
        next = r.end;
    }
    if next != n_heads {
        return bad(format!("the head ranges cover 0..{next}, but q has {n_heads} heads"));
    }
    Ok(())
}

/// The checks of a rotary embedding of `x`, standalone or on a fused attention's load.
fn rope(x: &TensorType, theta: f64, position_scale: f64) -> Result<(), Problem> {
    positive("theta", theta)?;
    // Negative scales turn the other way (the transpose); zero is meaningless.
    if !(position_scale.is_finite() && position_scale != 0.0) {
        return bad(format!("position_scale must be finite and nonzero, found {position_scale:?}"));
    }
    match x.shape[..] {
        [_, _, _, d] if d % 2 == 0 => Ok(()),
        [_, _, _, d] => bad(format!("head dim {d} must be even: {x}")),
        _ => bad(format!("input must be [B, H, N, D], found {x}")),
    }
}

/// The operand checks shared by both attention ops.
fn attention_operands(q: &TensorType, k: &TensorType, v: &TensorType, scale: f64) -> Result<(), Problem> {
    let all = [q, k, v];
    if all.iter().any(|t| t.rank() != 4) {
        return bad(format!("q, k, v must be [B, H, N, D], [B, H, N, D], [B, H, N, Dv]: {}", list(&all)));
    }
    if q.shape != k.shape || v.shape[..3] != q.shape[..3] {
        return bad(format!("q and k must have the same shape and v the same [B, H, N]: {}", list(&all)));
    }
    same_dtype(&all)?;
    float(q)?;
    finite("scale", scale)
}

/// Head `head`'s mask must evaluate, with every size that must be positive positive.
fn check_head_mask(mask: &Mask, head: usize) -> Result<(), Problem> {
    let concrete = match mask.for_head(head) {
        Ok(m) => m,
        Err(e) => return bad(format!("mask `{mask}` cannot be evaluated for head {head}: {e}")),
    };
    match nonpositive_size(&concrete) {
        Some(why) => bad(format!("mask `{mask}` for head {head}: {why}")),
        None => Ok(()),
    }
}

/// A size that must be at least 1 but is not (a zero group size would divide by zero).
fn nonpositive_size(mask: &ConcreteMask) -> Option<String> {
    let mut found = None;
    mask.for_each_size(&mut |&value, role| {
        if role.positive && value < 1 && found.is_none() {
            found =
                Some(format!("`{}` parameter `{}` must be >= 1, found {value}", role.primitive, role.param));
        }
    });
    found
}
