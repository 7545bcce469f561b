//! What the emitters return when they cannot emit: [`CodegenError`], labelled
//! with the [`Site`] (node and op) a kernel was being generated for.

use weft_ir::graph::{DType, NodeId};

use crate::shader::ShaderError;

/// Why a graph could not be planned; every variant names the node and its op.
#[derive(Debug, thiserror::Error)]
pub enum CodegenError {
    #[error("node {node}: op `{op}` is not supported by the simple code generator yet")]
    Unsupported { op: &'static str, node: NodeId },
    #[error(
        "node {node} ({op}): dtype {dtype} is not supported; the simple kernels compute in f32 \
         and take integers (i32, i64) only as graph inputs"
    )]
    UnsupportedDType { op: &'static str, node: NodeId, dtype: DType },
    #[error("node {node} ({op}): {what}")]
    TooLarge { op: &'static str, node: NodeId, what: String },
    #[error("node {node} ({op}): {what} = {value:?} is not a finite f32")]
    Constant { op: &'static str, node: NodeId, what: &'static str, value: f64 },
    #[error("node {node} ({op}): mask `{mask}` for head {head}: {reason}")]
    Mask { op: &'static str, node: NodeId, mask: String, head: usize, reason: String },
    #[error(
        "node {node} ({op}): kernel `{kernel}` needs {needed} storage bindings, \
         more than the {limit} allowed per stage"
    )]
    TooManyBindings { op: &'static str, node: NodeId, kernel: String, needed: usize, limit: u32 },
    #[error("node {node} ({op}): {source}")]
    Shader {
        op: &'static str,
        node: NodeId,
        #[source]
        source: ShaderError,
    },
    #[error("output `{name}` has the name of a graph input or parameter; plan buffers share one namespace")]
    NameClash { name: String },
    #[error("invalid plan options: {0}")]
    Options(String),
}

/// The node and op a kernel is generated for, to label errors.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Site {
    pub node: NodeId,
    pub op: &'static str,
}

impl Site {
    pub(crate) fn too_large(self, what: impl Into<String>) -> CodegenError {
        CodegenError::TooLarge { op: self.op, node: self.node, what: what.into() }
    }
}
