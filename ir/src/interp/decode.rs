//! The decoding ops, from their definitions: RoPE at given positions and one
//! query's attention against a KV cache.

use super::error::InterpError;
use super::tensor::Tensor;
use crate::mask::ConcreteMask;

/// A position read from an integer tensor: a whole number in `0..limit`.
fn position(op: &'static str, value: f64, index: usize, limit: usize) -> Result<usize, InterpError> {
    if value.fract() == 0.0 && value >= 0.0 && value < limit as f64 {
        Ok(value as usize)
    } else {
        Err(InterpError::BadId { op, value, position: index, limit })
    }
}

/// `x [B, H, T, D]` rotated by `table [B, T, 2, D]`: per row, cosines then
/// signed sines (negative in the first half, as `rotate_half` pairs them).
pub(super) fn rope_table(x: &Tensor, table: &Tensor) -> Result<Tensor, InterpError> {
    let &[_, h, t, d] = x.shape() else {
        return Err(InterpError::Shape { op: "rope-table", message: "x must have rank 4".into() });
    };
    let half = d / 2;
    let mut out = Vec::with_capacity(x.len());
    for (row_index, row) in x.data().chunks(d).enumerate() {
        let (batch, token) = (row_index / (h * t), row_index % t);
        let rotation = &table.data()[(batch * t + token) * 2 * d..][..2 * d];
        let (cos, signed_sin) = rotation.split_at(d);
        for j in 0..d {
            let partner = if j < half { row[j + half] } else { row[j - half] };
            out.push(row[j] * cos[j] + partner * signed_sin[j]);
        }
    }
    Tensor::new(x.shape().to_vec(), out)
}

/// The operands of [`cached_attention`], in the op's order.
pub(super) struct Cached<'a> {
    pub q: &'a Tensor,
    pub k_new: &'a Tensor,
    pub v_new: &'a Tensor,
    pub k_cache: &'a Tensor,
    pub v_cache: &'a Tensor,
    pub slots: &'a Tensor,
    pub positions: &'a Tensor,
}

/// `Op::CachedAttention`: each query head against its KV head's new key and
/// the cache slots holding positions before it, under `masks` (one per query
/// head) evaluated at `(p, s)` in a sequence of `p + 1` positions. A query
/// whose mask allows no key outputs zeros, as [`super::masked_attention`].
pub(super) fn cached_attention(x: Cached, masks: &[ConcreteMask], scale: f64) -> Result<Tensor, InterpError> {
    let (&[b, h, _, d], &[_, g, c, dv]) = (x.q.shape(), x.v_cache.shape()) else {
        return Err(InterpError::Shape {
            op: "cached-attention",
            message: "q and v_cache must have rank 4".into(),
        });
    };
    if masks.len() != h || g == 0 || h % g != 0 {
        return Err(InterpError::Shape {
            op: "cached-attention",
            message: format!("{} masks, {h} query heads, {g} KV heads", masks.len()),
        });
    }
    let per_kv = h / g;
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let mut out = vec![0.0; b * h * dv];
    for row in 0..b {
        let p = position("cached-attention", x.positions.data()[row], row, usize::MAX)?;
        for head in 0..h {
            let (kv, mask) = (head / per_kv, &masks[head]);
            let q = &x.q.data()[(row * h + head) * d..][..d];
            let allows = |s: usize| mask.allows(p as i64 + 1, p as i64, s as i64);
            // (score, value row) of every key the head may see: the cache's, then the new one.
            let mut keys: Vec<(f64, &[f64])> = Vec::new();
            for slot in 0..c {
                let at = (row * g + kv) * c + slot;
                let s = x.slots.data()[at];
                if s.fract() != 0.0 || s < 0.0 || s >= p as f64 || !allows(s as usize) {
                    continue;
                }
                let k = &x.k_cache.data()[at * d..][..d];
                keys.push((scale * dot(q, k), &x.v_cache.data()[at * dv..][..dv]));
            }
            if allows(p) {
                let at = row * g + kv;
                let k = &x.k_new.data()[at * d..][..d];
                keys.push((scale * dot(q, k), &x.v_new.data()[at * dv..][..dv]));
            }
            let max = keys.iter().map(|&(s, _)| s).fold(f64::NEG_INFINITY, f64::max);
            let total: f64 = keys.iter().map(|&(s, _)| (s - max).exp()).sum();
            let o = &mut out[(row * h + head) * dv..][..dv];
            for &(s, v) in &keys {
                let w = (s - max).exp() / total;
                for (o, x) in o.iter_mut().zip(v) {
                    *o += w * x;
                }
            }
        }
    }
    Tensor::new(vec![b, h, 1, dv], out)
}
