//! Tensor values on the host, typed as a plan's buffers are (see
//! [`ElemType`]): what [`Executor::upload`](crate::Executor::upload)
//! takes and [`Executor::download`](crate::Executor::download) returns.

use std::borrow::Cow;

use weft_compiler::ElemType;

use crate::error::RuntimeError;

/// One tensor's values, row-major.
///
/// `I64` is accepted for `i32` buffers and narrowed on upload (token ids and
/// targets are int64 in PyTorch and in most safetensors files); a value
/// outside the `i32` range is an error, never a silent wrap.
#[derive(Clone, Debug, PartialEq)]
pub enum HostValues {
    F32(Vec<f32>),
    I32(Vec<i32>),
    I64(Vec<i64>),
}

impl HostValues {
    /// The number of values.
    pub fn len(&self) -> usize {
        match self {
            HostValues::F32(v) => v.len(),
            HostValues::I32(v) => v.len(),
            HostValues::I64(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `f32`, `i32` or `i64`, for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            HostValues::F32(_) => "f32",
            HostValues::I32(_) => "i32",
            HostValues::I64(_) => "i64",
        }
    }

    /// The f32 values, if these are f32.
    pub fn as_f32(&self) -> Option<&[f32]> {
        if let HostValues::F32(v) = self { Some(v) } else { None }
    }

    /// The i32 values, if these are i32.
    pub fn as_i32(&self) -> Option<&[i32]> {
        if let HostValues::I32(v) = self { Some(v) } else { None }
    }
}

impl From<Vec<f32>> for HostValues {
    fn from(v: Vec<f32>) -> Self {
        HostValues::F32(v)
    }
}

impl From<Vec<i32>> for HostValues {
    fn from(v: Vec<i32>) -> Self {
        HostValues::I32(v)
    }
}

impl From<Vec<i64>> for HostValues {
    fn from(v: Vec<i64>) -> Self {
        HostValues::I64(v)
    }
}

/// Host data an input buffer can be filled from: `Vec<f32>` or [`HostValues`].
pub trait HostInput {
    fn as_slice(&self) -> HostSlice<'_>;
}

impl HostInput for Vec<f32> {
    fn as_slice(&self) -> HostSlice<'_> {
        HostSlice::F32(self)
    }
}

impl HostInput for HostValues {
    fn as_slice(&self) -> HostSlice<'_> {
        HostSlice::from(self)
    }
}

/// What a download gives for each output: `Vec<f32>` (an integer output is
/// then an error) or [`HostValues`] (any element type).
pub trait HostOutput: Sized {
    fn from_values(name: &str, values: HostValues) -> Result<Self, RuntimeError>;
}

impl HostOutput for Vec<f32> {
    fn from_values(name: &str, values: HostValues) -> Result<Self, RuntimeError> {
        match values {
            HostValues::F32(v) => Ok(v),
            HostValues::I32(_) | HostValues::I64(_) => {
                Err(RuntimeError::OutputType { name: name.to_string(), found: ElemType::I32 })
            }
        }
    }
}

impl HostOutput for HostValues {
    fn from_values(_: &str, values: HostValues) -> Result<Self, RuntimeError> {
        Ok(values)
    }
}

/// Borrowed values on their way to a buffer.
#[derive(Clone, Copy, Debug)]
pub enum HostSlice<'a> {
    F32(&'a [f32]),
    I32(&'a [i32]),
    I64(&'a [i64]),
}

impl<'a> From<&'a HostValues> for HostSlice<'a> {
    fn from(v: &'a HostValues) -> Self {
        match v {
            HostValues::F32(v) => HostSlice::F32(v),
            HostValues::I32(v) => HostSlice::I32(v),
            HostValues::I64(v) => HostSlice::I64(v),
        }
    }
}

impl<'a> HostSlice<'a> {
    pub fn is_empty(self) -> bool {
        self.len() == 0
    }

    pub fn len(self) -> usize {
        match self {
            HostSlice::F32(v) => v.len(),
            HostSlice::I32(v) => v.len(),
            HostSlice::I64(v) => v.len(),
        }
    }

    fn type_name(self) -> &'static str {
        match self {
            HostSlice::F32(_) => "f32",
            HostSlice::I32(_) => "i32",
            HostSlice::I64(_) => "i64",
        }
    }

    /// The bytes of input `name` for a buffer of `elem`s: checks the type and
    /// narrows i64 to i32 (the only case that copies).
    pub(crate) fn bytes(self, name: &str, elem: ElemType) -> Result<Cow<'a, [u8]>, RuntimeError> {
        match (self, elem) {
            (HostSlice::F32(v), ElemType::F32) => Ok(Cow::Borrowed(bytemuck::cast_slice(v))),
            (HostSlice::I32(v), ElemType::I32) => Ok(Cow::Borrowed(bytemuck::cast_slice(v))),
            (HostSlice::I64(v), ElemType::I32) => {
                let mut out = Vec::with_capacity(v.len() * 4);
                for (position, &value) in v.iter().enumerate() {
                    let narrow = i32::try_from(value).map_err(|_| RuntimeError::InputOutOfRange {
                        name: name.to_string(),
                        position,
                        value,
                    })?;
                    out.extend_from_slice(&narrow.to_ne_bytes());
                }
                Ok(Cow::Owned(out))
            }
            (HostSlice::F32(v), ElemType::Bf16 | ElemType::F16) => pack(name, v, elem).map(Cow::Owned),
            _ => Err(RuntimeError::InputType {
                name: name.to_string(),
                expected: elem,
                found: self.type_name(),
            }),
        }
    }
}

/// `values` as 16-bit floats of `elem`, two per little-endian word (low half
/// first, as the kernels read them). Every value must convert exactly: a
/// packed buffer is a storage choice that may not change a weight.
fn pack(name: &str, values: &[f32], elem: ElemType) -> Result<Vec<u8>, RuntimeError> {
    let narrow = match elem {
        ElemType::Bf16 => crate::io::bf16_from_f32_exact,
        _ => crate::io::f16_from_f32_exact,
    };
    let mut out = Vec::with_capacity(elem.buffer_bytes(values.len() as u64) as usize);
    for (position, &value) in values.iter().enumerate() {
        let half = narrow(value).ok_or_else(|| RuntimeError::InputNotExact {
            name: name.to_string(),
            position,
            value,
            elem,
        })?;
        out.extend_from_slice(&half.to_le_bytes());
    }
    // An odd count leaves the last word half filled.
    if values.len() % 2 == 1 {
        out.extend_from_slice(&[0, 0]);
    }
    Ok(out)
}

/// The storage a read-only f32 tensor can have without changing a value:
/// bf16 if every value is exactly a bf16, else f16 if every value is exactly
/// an f16, else f32. A checkpoint saved in bf16 or f16 and widened on load
/// goes back to its own type, at half the memory of f32.
pub fn exact_storage(values: &[f32]) -> ElemType {
    if values.iter().all(|&v| crate::io::bf16_from_f32_exact(v).is_some()) {
        ElemType::Bf16
    } else if values.iter().all(|&v| crate::io::f16_from_f32_exact(v).is_some()) {
        ElemType::F16
    } else {
        ElemType::F32
    }
}
