//! Element types and tensor types.

use std::fmt;

/// The element type a tensor is declared with.
///
/// The reference interpreter computes everything in f64; the dtype matters to
/// kernels and to type checking (float-only ops, operands that must agree).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    F16,
    I32,
    I64,
}

impl DType {
    pub const ALL: [DType; 4] = [DType::F32, DType::F16, DType::I32, DType::I64];

    /// The lowercase name used in text formats (`f32`).
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::I32 => "i32",
            DType::I64 => "i64",
        }
    }

    /// The dtype spelled `name`, if any.
    pub fn from_name(name: &str) -> Option<DType> {
        DType::ALL.into_iter().find(|d| d.name() == name)
    }

    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F16)
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A dtype and a static shape; displayed as `f32[2, 4, 64, 16]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TensorType {
    pub dtype: DType,
    pub shape: Vec<usize>,
}

impl TensorType {
    pub fn new(dtype: DType, shape: impl Into<Vec<usize>>) -> Self {
        TensorType { dtype, shape: shape.into() }
    }

    /// Shorthand for the common case.
    pub fn f32(shape: impl Into<Vec<usize>>) -> Self {
        TensorType::new(DType::F32, shape)
    }

    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// The number of elements, or `None` if it overflows `usize`.
    pub fn num_elements(&self) -> Option<usize> {
        num_elements(&self.shape)
    }

    /// The same dtype with another shape.
    pub fn with_shape(&self, shape: Vec<usize>) -> Self {
        TensorType { dtype: self.dtype, shape }
    }
}

/// The product of `shape`, or `None` on overflow.
pub(crate) fn num_elements(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

/// Writes `[2, 4, 64]`.
pub(crate) struct Dims<'a>(pub &'a [usize]);

impl fmt::Display for Dims<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{d}")?;
        }
        f.write_str("]")
    }
}

impl fmt::Display for TensorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.dtype, Dims(&self.shape))
    }
}
