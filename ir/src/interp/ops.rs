//! The kernels of every op but attention, written for clarity over speed.
//!
//! Operand shapes are those of a [`ValidGraph`](crate::graph::ValidGraph) whose
//! inputs were checked, so attributes (axes, ranges, permutations) fit them.

use super::tensor::{Tensor, split_at_axis, strides};
use crate::graph::{HeadRange, RopeParams};

pub(super) fn unary(x: &Tensor, f: impl Fn(f64) -> f64) -> Tensor {
    Tensor::from_parts(x.shape().to_vec(), x.data().iter().map(|&v| f(v)).collect())
}

pub(super) fn binary(a: &Tensor, b: &Tensor, f: impl Fn(f64, f64) -> f64) -> Tensor {
    Tensor::from_parts(a.shape().to_vec(), a.data().iter().zip(b.data()).map(|(&x, &y)| f(x, y)).collect())
}

pub(super) fn matmul(a: &Tensor, b: &Tensor, ta: bool, tb: bool) -> Tensor {
    let r = a.shape().len();
    let batch: usize = a.shape()[..r - 2].iter().product();
    let (ar, ac) = (a.shape()[r - 2], a.shape()[r - 1]);
    let (br, bc) = (b.shape()[r - 2], b.shape()[r - 1]);
    let (m, k) = if ta { (ac, ar) } else { (ar, ac) };
    let n = if tb { br } else { bc };
    let (ad, bd) = (a.data(), b.data());
    let mut out = Vec::with_capacity(batch * m * n);
    for bi in 0..batch {
        let (a0, b0) = (bi * ar * ac, bi * br * bc);
        for i in 0..m {
            for j in 0..n {
                let mut acc = 0.0;
                for p in 0..k {
                    let x = if ta { ad[a0 + p * ac + i] } else { ad[a0 + i * ac + p] };
                    let y = if tb { bd[b0 + j * bc + p] } else { bd[b0 + p * bc + j] };
                    acc += x * y;
                }
                out.push(acc);
            }
        }
    }
    let mut shape = a.shape()[..r - 2].to_vec();
    shape.extend([m, n]);
    Tensor::from_parts(shape, out)
}

/// Output axis `i` is input axis `perm[i]`.
pub(super) fn permute(x: &Tensor, perm: &[usize]) -> Tensor {
    let in_strides = strides(x.shape());
    let shape: Vec<usize> = perm.iter().map(|&p| x.shape()[p]).collect();
    let src_strides: Vec<usize> = perm.iter().map(|&p| in_strides[p]).collect();
    let data = x.data();
    Tensor::from_fn(shape, |idx| {
        let flat: usize = idx.iter().zip(&src_strides).map(|(i, s)| i * s).sum();
        data[flat]
    })
}

/// `torch.roll` along `axis`, restricted to the index range `heads` when given.
pub(super) fn roll(x: &Tensor, axis: usize, shift: i64, heads: Option<HeadRange>) -> Tensor {
    let st = strides(x.shape());
    let n = x.shape()[axis];
    // `shift mod n` in [0, n): out[i] = in[(i - shift) mod n] = in[(i + n - s) mod n].
    let s = shift.rem_euclid(n as i64) as usize;
    let data = x.data();
    let out = (0..data.len())
        .map(|flat| {
            let rolled = heads.is_none_or(|h| h.contains(flat / st[h.axis] % x.shape()[h.axis]));
            if !rolled {
                return data[flat];
            }
            let i = flat / st[axis] % n;
            let src = (i + n - s) % n;
            data[flat - i * st[axis] + src * st[axis]]
        })
        .collect();
    Tensor::from_parts(x.shape().to_vec(), out)
}

pub(super) fn slice(x: &Tensor, axis: usize, start: usize, end: usize) -> Tensor {
    let (outer, n, inner) = split_at_axis(x.shape(), axis);
    let mut out = Vec::with_capacity(outer * (end - start) * inner);
    for o in 0..outer {
        out.extend_from_slice(&x.data()[(o * n + start) * inner..(o * n + end) * inner]);
    }
    let mut shape = x.shape().to_vec();
    shape[axis] = end - start;
    Tensor::from_parts(shape, out)
}

pub(super) fn concat(xs: &[&Tensor], axis: usize) -> Tensor {
    let Some(first) = xs.first() else { return Tensor::from_parts(vec![0], Vec::new()) };
    let (outer, _, inner) = split_at_axis(first.shape(), axis);
    let mut out = Vec::new();
    for o in 0..outer {
        for x in xs {
            let chunk = x.shape()[axis] * inner;
            out.extend_from_slice(&x.data()[o * chunk..(o + 1) * chunk]);
        }
    }
    let mut shape = first.shape().to_vec();
    shape[axis] = xs.iter().map(|x| x.shape()[axis]).sum();
    Tensor::from_parts(shape, out)
}

/// Softmax along `axis`, subtracting the maximum first so large logits do not overflow.
pub(super) fn softmax(x: &Tensor, axis: usize) -> Tensor {
    let (outer, n, inner) = split_at_axis(x.shape(), axis);
    let mut out = x.data().to_vec();
    for o in 0..outer {
        for r in 0..inner {
            let at = |i: usize| (o * n + i) * inner + r;
            let max = (0..n).map(|i| out[at(i)]).fold(f64::NEG_INFINITY, f64::max);
            let mut sum = 0.0;
            for i in 0..n {
                let e = (out[at(i)] - max).exp();
                out[at(i)] = e;
                sum += e;
            }
            for i in 0..n {
                out[at(i)] /= sum;
            }
        }
    }
    Tensor::from_parts(x.shape().to_vec(), out)
}

/// `y * (dy - sum(y * dy))` along `axis`: the softmax's vector-Jacobian product.
pub(super) fn softmax_grad(y: &Tensor, dy: &Tensor, axis: usize) -> Tensor {
    let (outer, n, inner) = split_at_axis(y.shape(), axis);
    let (yd, dyd) = (y.data(), dy.data());
    let mut out = vec![0.0; y.len()];
    for o in 0..outer {
        for r in 0..inner {
            let at = |i: usize| (o * n + i) * inner + r;
            let dot: f64 = (0..n).map(|i| yd[at(i)] * dyd[at(i)]).sum();
            for i in 0..n {
                out[at(i)] = yd[at(i)] * (dyd[at(i)] - dot);
            }
        }
    }
    Tensor::from_parts(y.shape().to_vec(), out)
}

/// Repeats `x` `size` times along a new axis `axis`.
pub(super) fn broadcast(x: &Tensor, axis: usize, size: usize) -> Tensor {
    let outer: usize = x.shape()[..axis].iter().product();
    let inner: usize = x.shape()[axis..].iter().product();
    let mut out = Vec::with_capacity(x.len() * size);
    for o in 0..outer {
        for _ in 0..size {
            out.extend_from_slice(&x.data()[o * inner..(o + 1) * inner]);
        }
    }
    let mut shape = x.shape().to_vec();
    shape.insert(axis, size);
    Tensor::from_parts(shape, out)
}

/// `before` zeros in front of `x` along `axis` and `after` behind it.
pub(super) fn pad(x: &Tensor, axis: usize, before: usize, after: usize) -> Tensor {
    let (outer, n, inner) = split_at_axis(x.shape(), axis);
    let mut out = Vec::with_capacity(outer * (before + n + after) * inner);
    for o in 0..outer {
        out.extend(std::iter::repeat_n(0.0, before * inner));
        out.extend_from_slice(&x.data()[o * n * inner..(o + 1) * n * inner]);
        out.extend(std::iter::repeat_n(0.0, after * inner));
    }
    let mut shape = x.shape().to_vec();
    shape[axis] = before + n + after;
    Tensor::from_parts(shape, out)
}

/// How a reduction folds an axis.
#[derive(Clone, Copy)]
pub(super) enum Reduction {
    Sum,
    Max,
    Mean,
}

/// Folds `axis` away.
pub(super) fn reduce(x: &Tensor, axis: usize, how: Reduction) -> Tensor {
    let (outer, n, inner) = split_at_axis(x.shape(), axis);
    let data = x.data();
    let mut out = Vec::with_capacity(outer * inner);
    for o in 0..outer {
        for r in 0..inner {
            let values = (0..n).map(|i| data[(o * n + i) * inner + r]);
            out.push(match how {
                Reduction::Sum => values.sum(),
                Reduction::Max => values.fold(f64::NEG_INFINITY, f64::max),
                Reduction::Mean => values.sum::<f64>() / n as f64,
            });
        }
    }
    let mut shape = x.shape().to_vec();
    shape.remove(axis);
    Tensor::from_parts(shape, out)
}

pub(super) fn rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> Tensor {
    let d = w.len();
    let mut out = Vec::with_capacity(x.len());
    for row in x.data().chunks(d) {
        let mean_sq = row.iter().map(|v| v * v).sum::<f64>() / d as f64;
        let inv = 1.0 / (mean_sq + eps).sqrt();
        out.extend(row.iter().zip(w.data()).map(|(v, g)| v * inv * g));
    }
    Tensor::from_parts(x.shape().to_vec(), out)
}

/// `1 / sqrt(mean(row^2) + eps)`.
fn inv_rms(row: &[f64], eps: f64) -> f64 {
    1.0 / (row.iter().map(|v| v * v).sum::<f64>() / row.len() as f64 + eps).sqrt()
}

/// `r * (dy * w) - x * r^3 * mean(dy * w * x)` per row.
pub(super) fn rms_norm_grad(x: &Tensor, w: &Tensor, dy: &Tensor, eps: f64) -> Tensor {
    let d = w.len();
    let mut out = Vec::with_capacity(x.len());
    for (row, g) in x.data().chunks(d).zip(dy.data().chunks(d)) {
        let r = inv_rms(row, eps);
        let gw: Vec<f64> = g.iter().zip(w.data()).map(|(a, b)| a * b).collect();
        let dot = gw.iter().zip(row).map(|(a, b)| a * b).sum::<f64>() / d as f64;
        out.extend(row.iter().zip(&gw).map(|(v, gw)| r * gw - v * r * r * r * dot));
    }
    Tensor::from_parts(x.shape().to_vec(), out)
}

/// `sum over rows of dy * x * r`, one value per column.
pub(super) fn rms_norm_weight_grad(x: &Tensor, dy: &Tensor, eps: f64) -> Tensor {
    let d = x.shape().last().copied().unwrap_or(1);
    let mut out = vec![0.0; d];
    for (row, g) in x.data().chunks(d).zip(dy.data().chunks(d)) {
        let r = inv_rms(row, eps);
        for ((o, v), g) in out.iter_mut().zip(row).zip(g) {
            *o += g * v * r;
        }
    }
    Tensor::from_parts(vec![d], out)
}

/// Rotary embedding of `[B, H, N, D]` in the `rotate_half` layout: dimension
/// `j` pairs with `j ± D/2` and both use frequency `theta^(-2 (j mod D/2) / D)`.
pub(super) fn rope(x: &Tensor, rope: RopeParams) -> Tensor {
    let (n, d) = (x.shape()[2], x.shape()[3]);
    let half = d / 2;
    let mut out = Vec::with_capacity(x.len());
    for (row_index, row) in x.data().chunks(d).enumerate() {
        for j in 0..d {
            let angle = rope.angle(row_index % n, j, d);
            let rotated = if j < half { -row[j + half] } else { row[j - half] };
            out.push(row[j] * angle.cos() + rotated * angle.sin());
        }
    }
    Tensor::from_parts(x.shape().to_vec(), out)
}
