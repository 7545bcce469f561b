//! Embedding lookups and the cross-entropy loss, with their gradients.

use super::error::InterpError;
use super::tensor::Tensor;

/// `value` as an index below `limit`, or a [`InterpError::BadId`].
fn index(op: &'static str, value: f64, position: usize, limit: usize) -> Result<usize, InterpError> {
    if value.fract() == 0.0 && value >= 0.0 && value < limit as f64 {
        Ok(value as usize)
    } else {
        Err(InterpError::BadId { op, value, position, limit })
    }
}

pub(super) fn embedding(ids: &Tensor, table: &Tensor) -> Result<Tensor, InterpError> {
    let (vocab, c) = (table.shape()[0], table.shape()[1]);
    let mut out = Vec::with_capacity(ids.len() * c);
    for (position, &id) in ids.data().iter().enumerate() {
        let row = index("embedding", id, position, vocab)?;
        out.extend_from_slice(&table.data()[row * c..(row + 1) * c]);
    }
    Tensor::new([ids.shape(), &[c]].concat(), out)
}

pub(super) fn embedding_grad(ids: &Tensor, dy: &Tensor, vocab: usize) -> Result<Tensor, InterpError> {
    let c = dy.shape().last().copied().unwrap_or(1);
    let mut out = vec![0.0; vocab * c];
    for (position, (&id, g)) in ids.data().iter().zip(dy.data().chunks(c)).enumerate() {
        let row = index("embedding-grad", id, position, vocab)?;
        for (o, g) in out[row * c..(row + 1) * c].iter_mut().zip(g) {
            *o += g;
        }
    }
    Tensor::new(vec![vocab, c], out)
}

/// The rows that count (target >= 0), as (row index, target).
fn counted(targets: &Tensor, vocab: usize, op: &'static str) -> Result<Vec<(usize, usize)>, InterpError> {
    let mut rows = Vec::new();
    for (position, &t) in targets.data().iter().enumerate() {
        if t < 0.0 && t.fract() == 0.0 {
            continue;
        }
        rows.push((position, index(op, t, position, vocab)?));
    }
    Ok(rows)
}

fn log_sum_exp(row: &[f64]) -> f64 {
    let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    max + row.iter().map(|v| (v - max).exp()).sum::<f64>().ln()
}

pub(super) fn cross_entropy(logits: &Tensor, targets: &Tensor) -> Result<Tensor, InterpError> {
    let vocab = logits.shape().last().copied().unwrap_or(1);
    let rows = counted(targets, vocab, "cross-entropy")?;
    let total: f64 = rows
        .iter()
        .map(|&(r, t)| {
            let row = &logits.data()[r * vocab..(r + 1) * vocab];
            log_sum_exp(row) - row[t]
        })
        .sum();
    Tensor::new(vec![], vec![if rows.is_empty() { 0.0 } else { total / rows.len() as f64 }])
}

pub(super) fn cross_entropy_grad(
    logits: &Tensor,
    targets: &Tensor,
    dloss: f64,
) -> Result<Tensor, InterpError> {
    let vocab = logits.shape().last().copied().unwrap_or(1);
    let rows = counted(targets, vocab, "cross-entropy-grad")?;
    let mut out = vec![0.0; logits.len()];
    let weight = if rows.is_empty() { 0.0 } else { dloss / rows.len() as f64 };
    for &(r, t) in &rows {
        let row = &logits.data()[r * vocab..(r + 1) * vocab];
        let lse = log_sum_exp(row);
        let grad = &mut out[r * vocab..(r + 1) * vocab];
        for (g, v) in grad.iter_mut().zip(row) {
            *g = weight * (v - lse).exp();
        }
        grad[t] -= weight;
    }
    Tensor::new(logits.shape().to_vec(), out)
}
