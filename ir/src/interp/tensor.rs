//! A dense row-major f64 tensor.

use super::error::InterpError;

/// A dense tensor of f64 values in row-major order.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    shape: Vec<usize>,
    data: Vec<f64>,
}

impl Tensor {
    /// Wraps `data`, which must hold exactly the product of `shape` values.
    pub fn new(shape: Vec<usize>, data: Vec<f64>) -> Result<Self, InterpError> {
        let expected = element_count(&shape)?;
        if data.len() != expected {
            return Err(InterpError::DataLength { shape, expected, found: data.len() });
        }
        Ok(Tensor { shape, data })
    }

    /// A tensor whose value at each multi-index is `f(index)`, visited in row-major order.
    ///
    /// # Panics
    /// If the element count does not fit in memory.
    pub fn from_fn(shape: Vec<usize>, mut f: impl FnMut(&[usize]) -> f64) -> Self {
        // An overflowing count saturates so the allocation below fails loudly.
        let len = element_count(&shape).unwrap_or(usize::MAX);
        let mut data = Vec::with_capacity(len);
        let mut index = vec![0; shape.len()];
        for _ in 0..len {
            data.push(f(&index));
            // Odometer increment, last axis fastest.
            for (i, &d) in index.iter_mut().zip(&shape).rev() {
                *i += 1;
                if *i < d {
                    break;
                }
                *i = 0;
            }
        }
        Tensor { shape, data }
    }

    /// A rank-0 tensor.
    pub fn scalar(value: f64) -> Self {
        Tensor { shape: Vec::new(), data: vec![value] }
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn data(&self) -> &[f64] {
        &self.data
    }

    pub fn into_data(self) -> Vec<f64> {
        self.data
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The value at a multi-index, if it is in bounds.
    pub fn get(&self, index: &[usize]) -> Option<f64> {
        if index.len() != self.shape.len() {
            return None;
        }
        let mut flat = 0;
        for (&i, &d) in index.iter().zip(&self.shape) {
            if i >= d {
                return None;
            }
            flat = flat * d + i;
        }
        self.data.get(flat).copied()
    }

    /// `max |a - b| / max(max |b|, tiny)` with `self` as `a`: the error of `self`
    /// relative to the scale of the reference `other`.
    ///
    /// Infinite when the shapes differ or any difference is NaN, so a comparison
    /// against a tolerance fails rather than passes.
    pub fn max_rel_error(&self, other: &Tensor) -> f64 {
        if self.shape != other.shape {
            return f64::INFINITY;
        }
        let scale = other.data.iter().fold(0.0f64, |m, b| m.max(b.abs())).max(f64::MIN_POSITIVE);
        let mut worst = 0.0f64;
        for (a, b) in self.data.iter().zip(&other.data) {
            let d = (a - b).abs();
            if d.is_nan() {
                return f64::INFINITY;
            }
            worst = worst.max(d);
        }
        worst / scale
    }

    /// Builds a tensor from parts the caller knows are consistent.
    pub(crate) fn from_parts(shape: Vec<usize>, data: Vec<f64>) -> Self {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        Tensor { shape, data }
    }
}

fn element_count(shape: &[usize]) -> Result<usize, InterpError> {
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| InterpError::TooLarge { shape: shape.to_vec() })
}

/// Row-major strides of `shape`.
pub(crate) fn strides(shape: &[usize]) -> Vec<usize> {
    let mut out = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        out[i] = out[i + 1] * shape[i + 1];
    }
    out
}

/// `(outer, n, inner)`: the sizes before, at and after `axis`, so element
/// `(o, i, r)` is at `(o * n + i) * inner + r`.
pub(crate) fn split_at_axis(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    let outer = shape[..axis].iter().product();
    let inner = shape[axis + 1..].iter().product();
    (outer, shape[axis], inner)
}
