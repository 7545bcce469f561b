//! The emitter context: what every kernel generator of this folder is given
//! (its node, the device limits, its operands) and the errors it returns.

use std::collections::HashSet;

use weft_ir::graph::{DType, NodeId};

use super::builder::{self, Region};
use super::matmul::MatmulTable;
use crate::device::DeviceLimits;
use crate::kernel::{BufferDecl, BufferRole, ElemType};
use crate::shader::ShaderError;

/// Every element index must fit the kernels' u32 (and i32 mask) arithmetic.
pub(crate) const MAX_ELEMENTS: u64 = 1 << 31;

/// A tensor a kernel reads or writes: where it lives and its logical shape.
#[derive(Clone, Debug)]
pub(crate) struct Operand<'g> {
    pub region: Region,
    pub shape: &'g [usize],
}

/// What a generator may use besides its operands.
pub(crate) struct Ctx<'a> {
    pub site: Site,
    pub limits: &'a DeviceLimits,
    /// The matmul kernel's shape per problem class.
    pub matmul: MatmulTable,
    /// `n5`: the prefix of this node's kernel names.
    pub prefix: String,
    pub names: &'a mut Names,
    /// Buffers the generator adds (score scratch, tables).
    pub extra: Vec<BufferDecl>,
}

impl Ctx<'_> {
    /// `n5_roll` or `n5_roll_{suffix}`.
    pub(crate) fn kernel_name(&self, suffix: &str) -> String {
        let op = self.site.op.replace('-', "_");
        if suffix.is_empty() {
            format!("{}_{op}", self.prefix)
        } else {
            format!("{}_{op}_{suffix}", self.prefix)
        }
    }

    pub(crate) fn unsupported(&self) -> CodegenError {
        CodegenError::Unsupported { op: self.site.op, node: self.site.node }
    }

    /// Adds an f32 buffer named after the node (`n9_scores`) and returns its name.
    pub(crate) fn add_buffer(
        &mut self,
        suffix: &str,
        bytes: u64,
        role: BufferRole,
        shape: Vec<usize>,
    ) -> String {
        let name = self.names.fresh(&format!("{}_{suffix}", self.prefix));
        self.extra.push(BufferDecl { name: name.clone(), bytes, role, shape, elem: ElemType::F32 });
        name
    }
}

/// Buffer names in use; plan buffers, inputs and outputs share one namespace.
#[derive(Default)]
pub(crate) struct Names(pub(crate) HashSet<String>);

impl Names {
    /// `base`, or `base_1`, `base_2`, ... if it is taken.
    pub(crate) fn fresh(&mut self, base: &str) -> String {
        let mut name = base.to_string();
        let mut i = 1;
        while self.0.contains(&name) {
            name = format!("{base}_{i}");
            i += 1;
        }
        self.0.insert(name.clone());
        name
    }
}

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

    /// `value` as a WGSL f32 literal, if it is one.
    pub(crate) fn f32_lit(self, what: &'static str, value: f64) -> Result<String, CodegenError> {
        let v = value as f32;
        if v.is_finite() {
            Ok(builder::f32_literal(v))
        } else {
            Err(CodegenError::Constant { op: self.op, node: self.node, what, value })
        }
    }
}
