//! The unfused path: every op of a reference graph becomes one or a few plain
//! WGSL kernels, so the fused kernels can be compared with it on one device.
//!
//! One buffer per node (reshapes alias their operand, fused elementwise chains
//! keep their inner values in registers), kernels in topological
//! order, every shape baked into the shader text. Dense attention materializes
//! its scaled score matrix in a scratch buffer: that N×N buffer is exactly what
//! the unfused path costs.
//!
//! - `builder.rs`: bindings (split across several when a buffer exceeds one
//!   storage binding), the 1-D thread index and the folded dispatch grid;
//! - one file per op family: `elementwise.rs`, `layout.rs`, `reduce.rs`,
//!   `matmul.rs`, `rms_norm.rs`, `rope.rs`, `attention.rs` and
//!   `masked_softmax.rs` (their mask function comes from [`super::mask`],
//!   shared with the fused kernels), `embedding.rs` (lookup and its
//!   scatter-free gradient) and `cross_entropy.rs` (the loss and its
//!   gradient), the two families that read integer (`i32`) buffers;
//! - `fusion.rs`: connected elementwise ops of one shape become one kernel
//!   (`fused: silu, mul`), their inner values never written to memory;
//! - `fused_attention.rs`: a fused attention node's FlashAttention-style
//!   forward kernels from [`crate::plan`], bound to the node's operands;
//! - `memory.rs`: scratch buffers with disjoint lifetimes share memory;
//! - `plan.rs`: buffers, aliasing and output naming;
//! - `render.rs`: a plan as text, for golden files and inspection.

mod attention;
mod builder;
mod cross_entropy;
mod elementwise;
mod embedding;
mod fused_attention;
mod fusion;
mod layout;
mod masked_softmax;
mod matmul;
mod memory;
mod plan;
mod reduce;
mod render;
mod rms_norm;
mod rope;

use weft_ir::graph::{DType, NodeId};

use crate::plan::AttentionTiles;
use crate::shader::ShaderError;

pub use matmul::{MatmulConfig, MatmulKernel};
pub use plan::plan_graph;
pub use render::render_plan;

/// Device limits and choices the plan is made for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimplePlanOptions {
    /// The largest byte range one storage binding may cover; bigger buffers are
    /// bound as several consecutive ranges. WebGPU's default is 128 MiB.
    pub max_storage_binding: u64,
    /// The largest buffer the device can allocate. Dense attention's score
    /// scratch is capped at this size and reused chunk by chunk beyond it.
    pub max_buffer_size: u64,
    /// Storage bindings one kernel may use (WebGPU's default is 8).
    pub max_storage_buffers_per_stage: u32,
    /// Workgroups per grid dimension; larger grids are folded into 2-D.
    pub max_workgroups_per_dimension: u32,
    /// Reshapes share their operand's buffer instead of copying it.
    pub alias_reshapes: bool,
    /// Scratch buffers whose lifetimes do not overlap share one allocation.
    pub share_scratch: bool,
    /// The matmul kernel's tile shape and workgroup size.
    pub matmul: MatmulConfig,
    /// The device's smallest subgroup, when it has subgroup operations; the
    /// subgroup matmul needs at least 8 and falls back without.
    pub subgroup_min_size: Option<u32>,
    /// Connected elementwise ops of one shape run as one kernel, and their
    /// inner values get no buffers (see `fusion.rs`).
    pub fuse_elementwise: bool,
    /// Tiles and rows per invocation of the fused attention kernels of a
    /// forward node, and of a backward pass (`weft tune` measures both).
    /// These kernels keep wgpu's runtime checks: only plans the runtime seals
    /// run without them.
    pub attention_forward: AttentionTiles,
    pub attention_backward: AttentionTiles,
}

impl Default for SimplePlanOptions {
    fn default() -> Self {
        SimplePlanOptions {
            max_storage_binding: 128 << 20,
            max_buffer_size: 256 << 20,
            max_storage_buffers_per_stage: 8,
            max_workgroups_per_dimension: 65_535,
            alias_reshapes: true,
            share_scratch: true,
            matmul: MatmulConfig::default(),
            subgroup_min_size: None,
            fuse_elementwise: true,
            attention_forward: AttentionTiles::default(),
            attention_backward: AttentionTiles::default(),
        }
    }
}

impl SimplePlanOptions {
    fn check(&self) -> Result<(), CodegenError> {
        let bad = |why: String| Err(CodegenError::Options(why));
        // Ranges start at multiples of 256 bytes, so one binding must hold at least that.
        if self.max_storage_binding < 256 {
            return bad(format!("max_storage_binding {} is below 256 bytes", self.max_storage_binding));
        }
        if self.max_buffer_size < 256 {
            return bad(format!("max_buffer_size {} is below 256 bytes", self.max_buffer_size));
        }
        if self.max_storage_buffers_per_stage < 2 {
            return bad("max_storage_buffers_per_stage must be at least 2".into());
        }
        if self.max_workgroups_per_dimension == 0 {
            return bad("max_workgroups_per_dimension must be at least 1".into());
        }
        if let Some(why) = self.matmul.problem() {
            return bad(why);
        }
        Ok(())
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
