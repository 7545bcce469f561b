//! Tensors exchanged with the command line, as safetensors files.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

use super::float16::{bf16_to_f32, f16_to_f32};
use super::write_atomically;

/// An f32 tensor in host memory, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// An integer tensor in host memory, row-major: token ids or targets, as
/// i64 whatever their stored width (see [`crate::HostValues::I64`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IntTensor {
    pub shape: Vec<usize>,
    pub data: Vec<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum TensorFileError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a valid safetensors file: {message}")]
    Format { path: PathBuf, message: String },
    #[error("{path} has no tensor `{name}`; it has: {available}")]
    Missing { path: PathBuf, name: String, available: String },
    #[error("tensor `{name}` in {path} is {found}; expected {expected}")]
    Dtype { path: PathBuf, name: String, found: String, expected: &'static str },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("cannot write {path}: {message}")]
    Serialize { path: PathBuf, message: String },
}

impl TensorFileError {
    /// What went wrong, without the file's path: for a message that names
    /// the file already.
    pub fn reason(&self) -> String {
        match self {
            TensorFileError::Read { source, .. } => format!("cannot read it: {source}"),
            TensorFileError::Format { message, .. } => format!("not a valid safetensors file: {message}"),
            TensorFileError::Missing { name, available, .. } => {
                format!("no tensor `{name}`; it has: {available}")
            }
            TensorFileError::Dtype { name, found, expected, .. } => {
                format!("tensor `{name}` is {found}; expected {expected}")
            }
            TensorFileError::Write { source, .. } => format!("cannot write it: {source}"),
            TensorFileError::Serialize { message, .. } => format!("cannot write it: {message}"),
        }
    }
}

/// A safetensors file read into memory.
pub struct TensorFile {
    path: PathBuf,
    bytes: Vec<u8>,
}

impl TensorFile {
    pub fn load(path: &Path) -> Result<TensorFile, TensorFileError> {
        let bytes =
            std::fs::read(path).map_err(|source| TensorFileError::Read { path: path.into(), source })?;
        TensorFile::from_bytes(path, bytes)
    }

    /// A safetensors file already in memory; `path` names it in errors.
    pub fn from_bytes(path: impl Into<PathBuf>, bytes: Vec<u8>) -> Result<TensorFile, TensorFileError> {
        let file = TensorFile { path: path.into(), bytes };
        file.parse()?;
        Ok(file)
    }

    fn parse(&self) -> Result<SafeTensors<'_>, TensorFileError> {
        SafeTensors::deserialize(&self.bytes)
            .map_err(|e| TensorFileError::Format { path: self.path.clone(), message: e.to_string() })
    }

    /// Tensor names, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> =
            self.parse().map(|st| st.names().into_iter().map(str::to_string).collect()).unwrap_or_default();
        names.sort();
        names
    }

    pub fn contains(&self, name: &str) -> bool {
        self.names().iter().any(|n| n == name)
    }

    /// The tensor `name`, which must be F32.
    pub fn f32(&self, name: &str) -> Result<HostTensor, TensorFileError> {
        self.decode(name, &[Dtype::F32], "F32")
    }

    /// The tensor `name` as f32: F32 as stored, F16 and BF16 widened exactly.
    /// This is what checkpoints hold.
    pub fn float_as_f32(&self, name: &str) -> Result<HostTensor, TensorFileError> {
        self.decode(name, FLOATS, FLOAT_NAMES)
    }

    /// The tensor `name`, which must be I32 or I64 (token ids, targets).
    pub fn ints(&self, name: &str) -> Result<IntTensor, TensorFileError> {
        let expected = "I32 or I64";
        self.with_view(name, &[Dtype::I32, Dtype::I64], expected, |view| {
            // Little-endian and maybe unaligned: decode byte by byte.
            let bytes = view.data();
            let data = match view.dtype() {
                Dtype::I32 => bytes
                    .chunks_exact(4)
                    .map(|c| i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                    .collect(),
                _ => bytes
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                    .collect(),
            };
            IntTensor { shape: view.shape().to_vec(), data }
        })
    }

    /// `f` of the tensor `name`, whose dtype must be one of `accepted`.
    fn with_view<T>(
        &self,
        name: &str,
        accepted: &[Dtype],
        expected: &'static str,
        f: impl FnOnce(&TensorView<'_>) -> T,
    ) -> Result<T, TensorFileError> {
        let st = self.parse()?;
        let view = st.tensor(name).map_err(|_| missing(&self.path, name, self.names()))?;
        check_dtype(&self.path, name, view.dtype(), accepted, expected)?;
        Ok(f(&view))
    }

    /// A float tensor as f32; `accepted` lists float dtypes only.
    fn decode(
        &self,
        name: &str,
        accepted: &[Dtype],
        expected: &'static str,
    ) -> Result<HostTensor, TensorFileError> {
        self.with_view(name, accepted, expected, |view| HostTensor {
            shape: view.shape().to_vec(),
            data: floats_as_f32(view.dtype(), view.data()),
        })
    }
}

/// `name` is not in the file at `path`, which holds `available` (sorted).
fn missing(path: &Path, name: &str, available: Vec<String>) -> TensorFileError {
    TensorFileError::Missing { path: path.into(), name: name.into(), available: available.join(", ") }
}

/// Refuses a tensor whose dtype is not one of `accepted`.
fn check_dtype(
    path: &Path,
    name: &str,
    dtype: Dtype,
    accepted: &[Dtype],
    expected: &'static str,
) -> Result<(), TensorFileError> {
    if accepted.contains(&dtype) {
        return Ok(());
    }
    Err(TensorFileError::Dtype {
        path: path.into(),
        name: name.into(),
        found: format!("{dtype:?}"),
        expected,
    })
}

/// Little-endian F16, BF16 or F32 values (maybe unaligned) as f32, widened
/// exactly; callers accept no other dtype.
fn floats_as_f32(dtype: Dtype, bytes: &[u8]) -> Vec<f32> {
    match dtype {
        Dtype::F16 => bytes.chunks_exact(2).map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]]))).collect(),
        Dtype::BF16 => bytes.chunks_exact(2).map(|c| bf16_to_f32(u16::from_le_bytes([c[0], c[1]]))).collect(),
        _ => bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
    }
}

/// The float types a weight may be stored in, and how a message names them.
const FLOATS: &[Dtype] = &[Dtype::F32, Dtype::F16, Dtype::BF16];
const FLOAT_NAMES: &str = "F32, F16 or BF16";

/// The largest header the safetensors crate accepts.
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// A safetensors file read one tensor at a time: only its header is held,
/// so loading a checkpoint shard of many GB holds one tensor's bytes, not
/// the whole file ([`TensorFile`] reads it whole).
#[derive(Debug)]
pub struct TensorFileReader {
    path: PathBuf,
    file: std::fs::File,
    metadata: safetensors::tensor::Metadata,
    /// Where the data section starts in the file.
    data_start: u64,
}

impl TensorFileReader {
    /// Opens `path` and reads and checks its header, as the safetensors crate
    /// checks it: offsets contiguous, each tensor's size its shape's, and the
    /// data section exactly the rest of the file.
    pub fn open(path: &Path) -> Result<TensorFileReader, TensorFileError> {
        use std::io::Read;
        let read_error = |source| TensorFileError::Read { path: path.into(), source };
        let format_error = |message: String| TensorFileError::Format { path: path.into(), message };
        let mut file = std::fs::File::open(path).map_err(read_error)?;
        let file_len = file.metadata().map_err(read_error)?.len();
        let mut len_bytes = [0u8; 8];
        file.read_exact(&mut len_bytes)
            .map_err(|_| format_error("shorter than its 8-byte header length".into()))?;
        let header_len = u64::from_le_bytes(len_bytes);
        if header_len > MAX_HEADER_BYTES || header_len > file_len.saturating_sub(8) {
            return Err(format_error(format!(
                "its header length {header_len} exceeds the file ({file_len} bytes) or 100 MB"
            )));
        }
        // Bounded above, so the cast and the allocation are safe.
        let mut header = vec![0u8; header_len as usize];
        file.read_exact(&mut header).map_err(read_error)?;
        let metadata: safetensors::tensor::Metadata =
            serde_json::from_slice(&header).map_err(|e| format_error(format!("invalid header: {e}")))?;
        let data_start = 8 + header_len;
        let data_len = file_len - data_start;
        if metadata.data_len() as u64 != data_len {
            return Err(format_error(format!(
                "its header describes {} bytes of tensors, and the file holds {data_len}",
                metadata.data_len()
            )));
        }
        Ok(TensorFileReader { path: path.into(), file, metadata, data_start })
    }

    /// Tensor names, in file order.
    pub fn names(&self) -> Vec<String> {
        self.metadata.offset_keys()
    }

    /// The tensor `name`, which must be F32.
    pub fn f32(&mut self, name: &str) -> Result<HostTensor, TensorFileError> {
        self.decode(name, &[Dtype::F32], "F32")
    }

    /// The tensor `name` as f32: F32 as stored, F16 and BF16 widened exactly.
    pub fn float_as_f32(&mut self, name: &str) -> Result<HostTensor, TensorFileError> {
        self.decode(name, FLOATS, FLOAT_NAMES)
    }

    /// The shape of the F32 tensor `name`, from the header alone: whether
    /// [`TensorFileReader::f32`] would find it, without reading it.
    pub fn f32_shape(&self, name: &str) -> Result<Vec<usize>, TensorFileError> {
        Ok(self.info(name, &[Dtype::F32], "F32")?.shape.clone())
    }

    /// The shape of the float tensor `name` (F32, F16 or BF16), from the
    /// header alone: whether [`TensorFileReader::float_as_f32`] would find it.
    pub fn float_shape(&self, name: &str) -> Result<Vec<usize>, TensorFileError> {
        Ok(self.info(name, FLOATS, FLOAT_NAMES)?.shape.clone())
    }

    /// The stored type of the tensor `name`, if the file has it.
    pub fn dtype(&self, name: &str) -> Option<Dtype> {
        self.metadata.info(name).map(|info| info.dtype)
    }

    /// The header's entry for `name`, whose dtype must be one of `accepted`.
    fn info(
        &self,
        name: &str,
        accepted: &[Dtype],
        expected: &'static str,
    ) -> Result<&safetensors::tensor::TensorInfo, TensorFileError> {
        let Some(info) = self.metadata.info(name) else {
            let mut available = self.names();
            available.sort();
            return Err(missing(&self.path, name, available));
        };
        check_dtype(&self.path, name, info.dtype, accepted, expected)?;
        Ok(info)
    }

    /// A float tensor as f32, read from its offsets; `accepted` lists float dtypes only.
    fn decode(
        &mut self,
        name: &str,
        accepted: &[Dtype],
        expected: &'static str,
    ) -> Result<HostTensor, TensorFileError> {
        use std::io::{Read, Seek, SeekFrom};
        let info = self.info(name, accepted, expected)?;
        let (start, end) = info.data_offsets;
        let (dtype, shape) = (info.dtype, info.shape.clone());
        // Within the file: the header's offsets were checked against its length.
        let mut bytes = vec![0u8; end - start];
        let read_error = |source| TensorFileError::Read { path: self.path.clone(), source };
        self.file.seek(SeekFrom::Start(self.data_start + start as u64)).map_err(read_error)?;
        self.file.read_exact(&mut bytes).map_err(read_error)?;
        Ok(HostTensor { shape, data: floats_as_f32(dtype, &bytes) })
    }
}

/// Writes f32 tensors to a safetensors file, atomically.
pub fn save(path: &Path, tensors: &BTreeMap<String, HostTensor>) -> Result<(), TensorFileError> {
    save_with_ints(path, tensors, &BTreeMap::new())
}

/// Writes f32 tensors and int64 tensors (token ids) to one safetensors file,
/// atomically, one tensor at a time (a `[T, vocab]` logits tensor is not
/// copied to be encoded).
pub fn save_with_ints(
    path: &Path,
    tensors: &BTreeMap<String, HostTensor>,
    ints: &BTreeMap<String, IntTensor>,
) -> Result<(), TensorFileError> {
    let mut heads: Vec<(&str, Dtype, &[usize])> = Vec::with_capacity(tensors.len() + ints.len());
    heads.extend(tensors.iter().map(|(name, t)| (name.as_str(), Dtype::F32, &t.shape[..])));
    heads.extend(ints.iter().map(|(name, t)| (name.as_str(), Dtype::I64, &t.shape[..])));
    let floats: Vec<&[f32]> = tensors.values().map(|t| &t.data[..]).collect();
    let ints: Vec<&[i64]> = ints.values().map(|t| &t.data[..]).collect();
    let result = write_atomically(path, |w| {
        write_tensors(w, &heads, &BTreeMap::new(), |i| {
            Ok(match floats.get(i) {
                Some(&v) => Values::F32(Cow::Borrowed(v)),
                None => Values::I64(ints[i - floats.len()]),
            })
        })
    });
    result.map_err(|source| match source.kind() {
        std::io::ErrorKind::InvalidData => {
            TensorFileError::Serialize { path: path.into(), message: source.to_string() }
        }
        _ => TensorFileError::Write { path: path.into(), source },
    })
}

/// A borrowed f32 tensor, row-major: what a safetensors file is written
/// from, so that a checkpoint's tensors are not copied to be saved.
#[derive(Clone, Copy, Debug)]
pub struct TensorRef<'a> {
    pub shape: &'a [usize],
    pub data: &'a [f32],
}

impl HostTensor {
    pub fn view(&self) -> TensorRef<'_> {
        TensorRef { shape: &self.shape, data: &self.data }
    }
}

/// Writes f32 tensors to `w` in the safetensors format, in name order, one
/// tensor at a time (never the whole file in memory), with `metadata` as the
/// header's `__metadata__` (transformers wants `{"format": "pt"}` in a
/// checkpoint). A tensor whose data does not fill its shape is refused.
pub fn write_safetensors<'a, N: AsRef<str>>(
    w: &mut impl Write,
    tensors: impl IntoIterator<Item = (N, TensorRef<'a>)>,
    metadata: &BTreeMap<String, String>,
) -> std::io::Result<()> {
    let tensors: Vec<(N, TensorRef<'a>)> = tensors.into_iter().collect();
    let shapes: Vec<(&str, &[usize])> = tensors.iter().map(|(name, t)| (name.as_ref(), t.shape)).collect();
    write_safetensors_from(w, &shapes, metadata, |i| Ok(Cow::Borrowed(tensors[i].1.data)))
}

/// [`write_safetensors`] for tensors that are not in host memory yet (a
/// checkpoint's, on the device): `tensors` gives each one's name and shape,
/// and `values(i)` fetches the values of `tensors[i]` when its turn to be
/// written comes, so that one tensor at a time is in memory.
pub fn write_safetensors_from<'a, N: AsRef<str>, S: AsRef<[usize]>>(
    w: &mut impl Write,
    tensors: &[(N, S)],
    metadata: &BTreeMap<String, String>,
    values: impl FnMut(usize) -> std::io::Result<Cow<'a, [f32]>>,
) -> std::io::Result<()> {
    write_floats_from(w, tensors, FloatType::F32, metadata, values)
}

/// The float type a file's tensors are written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum FloatType {
    F32,
    /// Each f32 rounded to the nearest bf16, ties to even.
    Bf16,
    /// Each f32 rounded to the nearest f16, ties to even (±inf past 65504).
    F16,
}

impl FloatType {
    /// Its name in a safetensors header: F32, BF16 or F16.
    pub fn dtype(self) -> Dtype {
        match self {
            FloatType::F32 => Dtype::F32,
            FloatType::Bf16 => Dtype::BF16,
            FloatType::F16 => Dtype::F16,
        }
    }

    /// The type of a file's float tensors, if it is one of these.
    pub fn of(dtype: Dtype) -> Option<FloatType> {
        match dtype {
            Dtype::F32 => Some(FloatType::F32),
            Dtype::BF16 => Some(FloatType::Bf16),
            Dtype::F16 => Some(FloatType::F16),
            _ => None,
        }
    }

    /// Its name in a transformers `config.json` (`torch_dtype`): float32, bfloat16 or float16.
    pub fn torch_name(self) -> &'static str {
        match self {
            FloatType::F32 => "float32",
            FloatType::Bf16 => "bfloat16",
            FloatType::F16 => "float16",
        }
    }
}

/// [`write_safetensors_from`], every tensor written as `float`: f32 values
/// as they are, or rounded to the nearest bf16 or f16 as they are encoded.
pub fn write_floats_from<'a, N: AsRef<str>, S: AsRef<[usize]>>(
    w: &mut impl Write,
    tensors: &[(N, S)],
    float: FloatType,
    metadata: &BTreeMap<String, String>,
    mut values: impl FnMut(usize) -> std::io::Result<Cow<'a, [f32]>>,
) -> std::io::Result<()> {
    let heads: Vec<(&str, Dtype, &[usize])> =
        tensors.iter().map(|(name, shape)| (name.as_ref(), float.dtype(), shape.as_ref())).collect();
    write_tensors(w, &heads, metadata, |i| Ok(Values::F32(values(i)?)))
}

/// One tensor's values on their way to a file: f32 values borrowed or
/// fetched (from the device), or token ids.
enum Values<'a> {
    F32(Cow<'a, [f32]>),
    I64(&'a [i64]),
}

impl Values<'_> {
    fn len(&self) -> usize {
        match self {
            Values::F32(v) => v.len(),
            Values::I64(v) => v.len(),
        }
    }
}

/// The safetensors writer under [`write_floats_from`] and
/// [`save_with_ints`]: `tensors` gives each one's name, type (F32, BF16 or
/// F16 for f32 values, which are rounded to it; I64 for token ids) and shape, `values(i)` each one's values when its turn comes, in name
/// order. Little-endian, as the format is.
fn write_tensors<'v>(
    w: &mut impl Write,
    tensors: &[(&str, Dtype, &[usize])],
    metadata: &BTreeMap<String, String>,
    mut values: impl FnMut(usize) -> std::io::Result<Values<'v>>,
) -> std::io::Result<()> {
    let invalid = |message: String| std::io::Error::new(std::io::ErrorKind::InvalidData, message);
    let mut order: Vec<usize> = (0..tensors.len()).collect();
    order.sort_by(|&a, &b| tensors[a].0.cmp(tensors[b].0));
    let mut header = serde_json::Map::new();
    if !metadata.is_empty() {
        header.insert("__metadata__".into(), serde_json::json!(metadata));
    }
    let mut offset = 0usize;
    for &i in &order {
        let (name, dtype, shape) = tensors[i];
        if header.contains_key(name) {
            return Err(invalid(format!("two tensors are named `{name}`")));
        }
        let end = offset + shape.iter().product::<usize>() * dtype.bitsize() / 8;
        header.insert(
            name.to_string(),
            serde_json::json!({"dtype": dtype.to_string(), "shape": shape, "data_offsets": [offset, end]}),
        );
        offset = end;
    }
    let mut header = serde_json::Value::Object(header).to_string().into_bytes();
    // The format pads the header with spaces to a multiple of 8 bytes, so the data is aligned.
    header.resize(header.len().next_multiple_of(8), b' ');
    w.write_all(&(header.len() as u64).to_le_bytes())?;
    w.write_all(&header)?;
    let mut bytes = Vec::with_capacity(1 << 17);
    for &i in &order {
        let (name, dtype, shape) = tensors[i];
        let data = values(i)?;
        if shape.iter().product::<usize>() != data.len() {
            return Err(invalid(format!("tensor `{name}` has {} values for shape {shape:?}", data.len())));
        }
        // A chunk at a time: the file's bytes are never all in memory.
        match &data {
            Values::F32(v) => {
                for chunk in v.chunks(1 << 14) {
                    bytes.clear();
                    match dtype {
                        Dtype::BF16 => bytes.extend(
                            chunk.iter().flat_map(|&v| half::bf16::from_f32(v).to_bits().to_le_bytes()),
                        ),
                        Dtype::F16 => bytes.extend(
                            chunk.iter().flat_map(|&v| half::f16::from_f32(v).to_bits().to_le_bytes()),
                        ),
                        _ => bytes.extend(chunk.iter().flat_map(|v| v.to_le_bytes())),
                    }
                    w.write_all(&bytes)?;
                }
            }
            Values::I64(v) => {
                for chunk in v.chunks(1 << 13) {
                    bytes.clear();
                    bytes.extend(chunk.iter().flat_map(|v| v.to_le_bytes()));
                    w.write_all(&bytes)?;
                }
            }
        }
    }
    Ok(())
}

/// The header metadata PyTorch's `save_file` writes, which transformers and
/// PEFT look for.
pub fn torch_metadata() -> BTreeMap<String, String> {
    BTreeMap::from([("format".to_string(), "pt".to_string())])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rounding to 16 bits on the way to the file: nearest, ties to even,
    /// f16 overflowing to infinity. The values are chosen at the edges.
    #[test]
    fn floats_are_rounded_to_the_nearest_16_bit_value_on_writing() {
        let ulp_bf16 = 2f32.powi(-7); // at 1.0
        let values = [
            1.0 + ulp_bf16 / 2.0,  // a tie: down to the even 1.0
            1.0 + 1.5 * ulp_bf16,  // a tie: up to the even 1 + 2 ulp
            1.0 + ulp_bf16 * 0.75, // nearer 1 + ulp
            -3.0e-3,               // not exact in either
            70_000.0,              // past f16's largest, 65504
        ];
        // -3e-3 is 0xbb44_9ba6 in f32: its low half is past the midpoint, so up in magnitude.
        let want_bf16 = [1.0, 1.0 + 2.0 * ulp_bf16, 1.0 + ulp_bf16, f32::from_bits(0xbb45_0000), 70_144.0];
        // f16 has 10 mantissa bits: the first three are exact; -3e-3's nearest is Python's `struct.pack('<e')`'s.
        let want_f16 = [
            1.0 + ulp_bf16 / 2.0,
            1.0 + 1.5 * ulp_bf16,
            1.0 + ulp_bf16 * 0.75,
            f32::from_bits(0xbb44_a000),
            f32::INFINITY,
        ];
        for (float, want) in [(FloatType::Bf16, want_bf16), (FloatType::F16, want_f16)] {
            let mut bytes = Vec::new();
            let tensors = [("t", [values.len()])];
            write_floats_from(&mut bytes, &tensors, float, &BTreeMap::new(), |_| {
                Ok(Cow::Borrowed(&values[..]))
            })
            .unwrap();
            let file = TensorFile::from_bytes("t.safetensors", bytes).unwrap();
            let got = file.float_as_f32("t").unwrap().data;
            assert_eq!(got, want, "{float:?}");
        }
    }

    #[test]
    fn written_tensors_read_back_with_their_metadata() {
        let mut tensors = BTreeMap::new();
        tensors.insert(
            "b".to_string(),
            HostTensor { shape: vec![2, 3], data: vec![1.0, -2.0, 3.5, 0.0, 5.0, 6.0] },
        );
        tensors.insert("a".to_string(), HostTensor { shape: vec![], data: vec![7.0] });
        tensors.insert("c".to_string(), HostTensor { shape: vec![0], data: vec![] });
        let mut bytes = Vec::new();
        write_safetensors(&mut bytes, tensors.iter().map(|(n, t)| (n, t.view())), &torch_metadata()).unwrap();
        let (_, read_metadata) = SafeTensors::read_metadata(&bytes).unwrap();
        let read_metadata = read_metadata.metadata().clone().unwrap();
        assert_eq!(read_metadata.get("format").map(String::as_str), Some("pt"));
        let file = TensorFile::from_bytes("x.safetensors", bytes).unwrap();
        assert_eq!(file.names(), ["a", "b", "c"]);
        for (name, tensor) in &tensors {
            assert_eq!(&file.f32(name).unwrap(), tensor, "{name}");
        }
    }

    #[test]
    fn a_tensor_that_does_not_fill_its_shape_or_repeats_a_name_is_refused() {
        let data = [1.0f32, 2.0, 3.0];
        let short = TensorRef { shape: &[2, 2], data: &data };
        let err = write_safetensors(&mut Vec::new(), [("w", short)], &BTreeMap::new()).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
        assert_eq!(err.to_string(), "tensor `w` has 3 values for shape [2, 2]");
        let fits = TensorRef { shape: &[3], data: &data };
        let err =
            write_safetensors(&mut Vec::new(), [("w", fits), ("w", fits)], &BTreeMap::new()).unwrap_err();
        assert_eq!(err.to_string(), "two tensors are named `w`");
    }

    /// Floats and token ids in one file, streamed: read back as they were written.
    #[test]
    fn floats_and_ints_save_together_and_read_back() {
        let dir = std::env::temp_dir().join(format!("weft-save-ints-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("out.safetensors");
        let logits = HostTensor { shape: vec![2, 3], data: vec![0.5, -1.25, 3.0, 1e-3, -0.0, 7.5] };
        let ids = IntTensor { shape: vec![1, 5], data: vec![1, -100, i64::MAX, 0, 42] };
        let floats = BTreeMap::from([("logits".to_string(), logits.clone())]);
        let ints = BTreeMap::from([("output_ids".to_string(), ids.clone())]);
        save_with_ints(&path, &floats, &ints).unwrap();
        let file = TensorFile::load(&path).unwrap();
        assert_eq!(file.names(), ["logits", "output_ids"]);
        assert_eq!(file.f32("logits").unwrap(), logits);
        assert_eq!(file.ints("output_ids").unwrap(), ids);

        let short = IntTensor { shape: vec![4], data: vec![1, 2] };
        let err = save_with_ints(&path, &BTreeMap::new(), &BTreeMap::from([("ids".to_string(), short)]))
            .unwrap_err();
        assert!(matches!(err, TensorFileError::Serialize { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!("cannot write {}: tensor `ids` has 2 values for shape [4]", path.display())
        );
        // The file written before is still whole.
        assert_eq!(TensorFile::load(&path).unwrap().f32("logits").unwrap(), logits);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
