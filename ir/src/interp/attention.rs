//! Masked dense attention, computed straight from the definition.

use super::error::{InterpError, dims};
use super::tensor::Tensor;
use crate::mask::ConcreteMask;

/// `softmax(scale * q k^T)` over the keys each head's mask allows, times `v`.
///
/// `q, k: [B, H, N, D]`, `v: [B, H, N, Dv]`, one mask per head evaluated with
/// sequence length `N`. A query that may see no key outputs zeros (the limit
/// kernels implement, rather than the NaN of an empty softmax).
pub fn masked_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    masks: &[ConcreteMask],
    scale: f64,
) -> Result<Tensor, InterpError> {
    let shape_error = |message: String| InterpError::Shape { op: "masked_attention", message };
    let (&[b, h, n, d], &[_, _, _, dv]) = (q.shape(), v.shape()) else {
        return Err(shape_error(format!(
            "q and v must have rank 4, found {} and {}",
            dims(q.shape()),
            dims(v.shape())
        )));
    };
    if k.shape() != q.shape() || v.shape()[..3] != q.shape()[..3] {
        return Err(shape_error(format!(
            "q and k must have the same shape and v the same [B, H, N]: q {}, k {}, v {}",
            dims(q.shape()),
            dims(k.shape()),
            dims(v.shape())
        )));
    }
    if masks.len() != h {
        return Err(shape_error(format!("{} masks for {h} heads", masks.len())));
    }
    let (qd, kd, vd) = (q.data(), k.data(), v.data());
    let mut out = vec![0.0; b * h * n * dv];
    let mut weights = Vec::with_capacity(n);
    for bh in 0..b * h {
        let mask = &masks[bh % h];
        for i in 0..n {
            let qi = &qd[(bh * n + i) * d..][..d];
            weights.clear();
            for j in 0..n {
                if mask.allows(n as i64, i as i64, j as i64) {
                    let kj = &kd[(bh * n + j) * d..][..d];
                    weights.push((j, scale * qi.iter().zip(kj).map(|(x, y)| x * y).sum::<f64>()));
                }
            }
            let max = weights.iter().map(|&(_, s)| s).fold(f64::NEG_INFINITY, f64::max);
            let mut total = 0.0;
            for (_, s) in &mut weights {
                *s = (*s - max).exp();
                total += *s;
            }
            let row = &mut out[(bh * n + i) * dv..][..dv];
            for &(j, w) in &weights {
                let vj = &vd[(bh * n + j) * dv..][..dv];
                for (o, x) in row.iter_mut().zip(vj) {
                    *o += w / total * x;
                }
            }
        }
    }
    Tensor::new(vec![b, h, n, dv], out)
}

/// Attention's probabilities from raw scores `s [B, H, N, N]`: per query row, a
/// softmax of `scale * s` over the keys the head's mask allows and zeros
/// elsewhere; a row whose mask allows no key is all zeros.
pub fn masked_softmax(s: &Tensor, masks: &[ConcreteMask], scale: f64) -> Result<Tensor, InterpError> {
    let &[b, h, n, nk] = s.shape() else {
        return Err(InterpError::Shape {
            op: "masked_softmax",
            message: format!("scores must have rank 4, found {}", dims(s.shape())),
        });
    };
    if n != nk || masks.len() != h {
        return Err(InterpError::Shape {
            op: "masked_softmax",
            message: format!("scores {} with {} masks", dims(s.shape()), masks.len()),
        });
    }
    let mut out = vec![0.0; s.len()];
    for bh in 0..b * h {
        let mask = &masks[bh % h];
        for i in 0..n {
            let row = bh * n + i;
            let allowed: Vec<usize> = (0..n).filter(|&j| mask.allows(n as i64, i as i64, j as i64)).collect();
            let max =
                allowed.iter().map(|&j| scale * s.data()[row * n + j]).fold(f64::NEG_INFINITY, f64::max);
            let total: f64 = allowed.iter().map(|&j| (scale * s.data()[row * n + j] - max).exp()).sum();
            for &j in &allowed {
                out[row * n + j] = (scale * s.data()[row * n + j] - max).exp() / total;
            }
        }
    }
    Tensor::new(vec![b, h, n, n], out)
}

/// The gradients of [`masked_attention`] for the output cotangent `dout`:
/// `(dq, dk, dv)`, from the definition with the probabilities recomputed.
///
/// `dv = Pᵀ dO`, `dS = P ∘ (dO Vᵀ − rowsum(dO ∘ O))`, `dq = scale · dS K`,
/// `dk = scale · dSᵀ Q`; a query that sees no key contributes nothing.
pub fn masked_attention_grad(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    dout: &Tensor,
    masks: &[ConcreteMask],
    scale: f64,
) -> Result<(Tensor, Tensor, Tensor), InterpError> {
    let out = masked_attention(q, k, v, masks, scale)?;
    let (&[b, h, n, d], dv_dim) = (q.shape(), v.shape()[3]) else {
        return Err(InterpError::Shape { op: "masked_attention_grad", message: "q must have rank 4".into() });
    };
    let (qd, kd, vd, od, gd) = (q.data(), k.data(), v.data(), out.data(), dout.data());
    let (mut dq, mut dk, mut dv) = (vec![0.0; qd.len()], vec![0.0; kd.len()], vec![0.0; vd.len()]);
    for bh in 0..b * h {
        let mask = &masks[bh % h];
        for i in 0..n {
            let row = bh * n + i;
            let qi = &qd[row * d..][..d];
            let scores: Vec<(usize, f64)> = (0..n)
                .filter(|&j| mask.allows(n as i64, i as i64, j as i64))
                .map(|j| {
                    (j, scale * qi.iter().zip(&kd[(bh * n + j) * d..][..d]).map(|(a, b)| a * b).sum::<f64>())
                })
                .collect();
            let max = scores.iter().map(|s| s.1).fold(f64::NEG_INFINITY, f64::max);
            let total: f64 = scores.iter().map(|s| (s.1 - max).exp()).sum();
            let g = &gd[row * dv_dim..][..dv_dim];
            let delta: f64 = g.iter().zip(&od[row * dv_dim..][..dv_dim]).map(|(a, b)| a * b).sum();
            for &(j, s) in &scores {
                let p = (s - max).exp() / total;
                let vj = &vd[(bh * n + j) * dv_dim..][..dv_dim];
                let dp: f64 = g.iter().zip(vj).map(|(a, b)| a * b).sum();
                let ds = p * (dp - delta);
                for c in 0..dv_dim {
                    dv[(bh * n + j) * dv_dim + c] += p * g[c];
                }
                for c in 0..d {
                    dq[row * d + c] += scale * ds * kd[(bh * n + j) * d + c];
                    dk[(bh * n + j) * d + c] += scale * ds * qi[c];
                }
            }
        }
    }
    Ok((
        Tensor::new(q.shape().to_vec(), dq)?,
        Tensor::new(k.shape().to_vec(), dk)?,
        Tensor::new(v.shape().to_vec(), dv)?,
    ))
}
