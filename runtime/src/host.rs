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
///
/// `Bf16` and `F16` hold 16-bit floats as their bits: a checkpoint's weights
/// kept on the host at the size the checkpoint stores them (half of f32).
/// They upload as they are to a buffer of their own type, and widen exactly
/// into an `f32` buffer.
#[derive(Clone, Debug, PartialEq)]
pub enum HostValues {
    F32(Vec<f32>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    Bf16(Vec<u16>),
    F16(Vec<u16>),
}

impl HostValues {
    /// The number of values.
    pub fn len(&self) -> usize {
        match self {
            HostValues::F32(v) => v.len(),
            HostValues::I32(v) => v.len(),
            HostValues::I64(v) => v.len(),
            HostValues::Bf16(v) | HostValues::F16(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `f32`, `i32`, `i64`, `bf16` or `f16`, for messages.
    pub fn type_name(&self) -> &'static str {
        HostSlice::from(self).type_name()
    }

    /// `values` in the narrowest float type that holds every one of them
    /// exactly ([`exact_storage`]): 16-bit bits for a tensor a bf16 or f16
    /// checkpoint was widened from, else the f32 values unchanged.
    pub fn exact(values: Vec<f32>) -> HostValues {
        if let Some(bits) = narrow_all(&values, crate::io::bf16_from_f32_exact) {
            HostValues::Bf16(bits)
        } else if let Some(bits) = narrow_all(&values, crate::io::f16_from_f32_exact) {
            HostValues::F16(bits)
        } else {
            HostValues::F32(values)
        }
    }

    /// The element type a buffer holding these values as they are has.
    pub fn elem(&self) -> ElemType {
        match self {
            HostValues::F32(_) => ElemType::F32,
            HostValues::I32(_) | HostValues::I64(_) => ElemType::I32,
            HostValues::Bf16(_) => ElemType::Bf16,
            HostValues::F16(_) => ElemType::F16,
        }
    }

    /// The f32 values, if these are f32.
    pub fn as_f32(&self) -> Option<&[f32]> {
        if let HostValues::F32(v) = self { Some(v) } else { None }
    }

    /// The float values as f32: borrowed, or widened (exactly) from 16 bits;
    /// `None` for integers.
    pub fn float_values(&self) -> Option<Cow<'_, [f32]>> {
        match self {
            HostValues::F32(v) => Some(Cow::Borrowed(v)),
            HostValues::Bf16(v) => Some(Cow::Owned(v.iter().map(|&b| crate::io::bf16_to_f32(b)).collect())),
            HostValues::F16(v) => Some(Cow::Owned(v.iter().map(|&b| crate::io::f16_to_f32(b)).collect())),
            HostValues::I32(_) | HostValues::I64(_) => None,
        }
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
            HostValues::I32(_) | HostValues::I64(_) | HostValues::Bf16(_) | HostValues::F16(_) => {
                Err(RuntimeError::OutputType { name: name.to_string(), found: values.elem() })
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
    Bf16(&'a [u16]),
    F16(&'a [u16]),
}

impl<'a> From<&'a HostValues> for HostSlice<'a> {
    fn from(v: &'a HostValues) -> Self {
        match v {
            HostValues::F32(v) => HostSlice::F32(v),
            HostValues::I32(v) => HostSlice::I32(v),
            HostValues::I64(v) => HostSlice::I64(v),
            HostValues::Bf16(v) => HostSlice::Bf16(v),
            HostValues::F16(v) => HostSlice::F16(v),
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
            HostSlice::Bf16(v) | HostSlice::F16(v) => v.len(),
        }
    }

    fn type_name(self) -> &'static str {
        match self {
            HostSlice::F32(_) => "f32",
            HostSlice::I32(_) => "i32",
            HostSlice::I64(_) => "i64",
            HostSlice::Bf16(_) => "bf16",
            HostSlice::F16(_) => "f16",
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
            (HostSlice::Bf16(v), ElemType::Bf16) | (HostSlice::F16(v), ElemType::F16) => Ok(packed_bytes(v)),
            (HostSlice::Bf16(v), ElemType::F32) => Ok(Cow::Owned(widen(v, crate::io::bf16_to_f32))),
            (HostSlice::F16(v), ElemType::F32) => Ok(Cow::Owned(widen(v, crate::io::f16_to_f32))),
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

/// 16-bit values as a packed buffer's bytes: borrowed, unless an odd count
/// needs the last word's empty half.
fn packed_bytes(values: &[u16]) -> Cow<'_, [u8]> {
    let bytes: &[u8] = bytemuck::cast_slice(values);
    if cfg!(target_endian = "big") || values.len() % 2 == 1 {
        let mut out: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        if values.len() % 2 == 1 {
            out.extend_from_slice(&[0, 0]);
        }
        Cow::Owned(out)
    } else {
        Cow::Borrowed(bytes)
    }
}

/// 16-bit values widened to an f32 buffer's bytes (exact).
fn widen(values: &[u16], to_f32: fn(u16) -> f32) -> Vec<u8> {
    values.iter().flat_map(|&v| to_f32(v).to_ne_bytes()).collect()
}

/// The 16-bit bits of `values`, if every one converts exactly.
fn narrow_all(values: &[f32], narrow: fn(f32) -> Option<u16>) -> Option<Vec<u16>> {
    values.iter().map(|&v| narrow(v)).collect()
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
