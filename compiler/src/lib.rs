//! weft's compiler: from a validated tensor graph to GPU kernels.
//!
//! - [`kernel`]: what the compiler hands the runtime, a [`KernelPlan`] of WGSL
//!   kernels and the buffers they bind. Device-agnostic: nothing here touches wgpu.
//! - [`optimize`]: the egg e-graph optimizer that fuses attention patterns.
//! - [`plan`]: kernel planning for fused attention: tile classification, block
//!   tables, chunking and dispatch layout ([`plan_attention`]).
//! - [`codegen`]: WGSL generation: [`codegen::attention`] holds the fused
//!   block-sparse attention kernels, forward and backward; [`codegen::simple`]
//!   runs an unfused graph op by op ([`plan_graph`]).
//! - [`pipeline`]: the whole path for an attention graph ([`compile_attention`]).
//! - [`shader`]: naga validation of every emitted module, and SPIR-V output.

pub mod codegen;
pub mod kernel;
pub mod optimize;
pub mod pipeline;
pub mod plan;
pub mod shader;

pub use codegen::AttentionError;
pub use codegen::simple::{MatmulConfig, MatmulKernel, SimplePlanOptions, plan_graph, render_plan};
pub use kernel::{Access, Binding, BufferDecl, BufferRole, ElemType, Kernel, KernelPlan};
pub use optimize::{Cost, OptimizeError, OptimizeOptions, OptimizeReport, Optimized, optimize};
pub use pipeline::{
    CompileError, CompiledAttention, FusedGraph, FusedKernel, compile_attention, fuse_attention, fused_desc,
};
pub use plan::{
    AttentionTiles, FusedAttentionDesc, PlanOptions, PlanStats, attention_sources, plan_attention,
};
pub use shader::{ShaderError, to_spirv, validate_wgsl};
