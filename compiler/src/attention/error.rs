//! Why a fused attention node could not be planned.

use crate::shader::ShaderError;

/// Why a kernel plan could not be made.
#[derive(Debug, thiserror::Error)]
pub enum AttentionError {
    /// The fused node itself is malformed (zero sizes, head ranges that do not
    /// tile the heads, a head dimension the kernels cannot take).
    #[error("fused attention `{name}`: {message}")]
    InvalidDesc { name: String, message: String },

    /// The planning options cannot be used (a zero block size, a block size the
    /// rows per invocation do not divide, ...).
    #[error("fused attention `{name}`: invalid plan options: {message}")]
    InvalidOptions { name: String, message: String },

    /// A head's mask cannot be evaluated or compiled.
    #[error("fused attention `{name}`, head {head}: {message}")]
    Mask { name: String, head: usize, message: String },

    /// Something must fit one storage binding or one dispatch and cannot be split further.
    #[error("fused attention `{name}`: {what} needs {needed}, but the limit is {limit}")]
    TooLarge { name: String, what: String, needed: u64, limit: u64 },

    /// An emitted module did not pass naga; a compiler bug, reported with the kernel's name.
    #[error("fused attention `{name}`: kernel `{kernel}` is invalid: {source}")]
    Shader { name: String, kernel: String, source: ShaderError },
}
