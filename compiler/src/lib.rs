//! weft's compiler: from a validated tensor graph to GPU kernels. Nothing here
//! touches a device; the runtime runs what it returns.
//!
//! The pipeline is [`compile`] (`compile.rs`): reference graph → optimizer →
//! (for training) autodiff → kernel plan → per-kernel statistics. Its stages,
//! in the order a graph meets them:
//! - [`optimize`]: the egg e-graph optimizer that fuses attention patterns,
//!   folds LoRA, and reports what it did under the cost model.
//! - [`plan`]: a graph → [`KernelPlan`]: buffers, elementwise fusion, memory
//!   sharing, and the binding of fused attention nodes ([`plan_graph`]).
//! - [`kernels`]: one WGSL emitter per op family, with the emitter context.
//! - [`attention`]: the FlashAttention-2 kernels of a fused attention node,
//!   self-contained: block tables, chunking, forward and backward kernels
//!   ([`plan_attention`]).
//! - [`mask`]: a mask as the WGSL function `mask_allows`, for both.
//!
//! And what they share: [`kernel`], the contract with the runtime (a
//! [`KernelPlan`] of validated WGSL kernels and the buffers they bind);
//! [`device`], the device limits a plan is made within; [`shader`], naga
//! validation of every emitted module, and SPIR-V output.

pub mod attention;
pub mod compile;
pub mod device;
pub mod kernel;
pub mod kernels;
pub mod mask;
pub mod optimize;
pub mod plan;
pub mod shader;

pub use attention::{
    AttentionError, AttentionKernel, AttentionPlanOptions, AttentionTiles, FusedAttentionDesc, PlanStats,
    attention_sources, plan_attention,
};
pub use compile::{
    CompileError, CompileOptions, Compiled, CompiledAttention, FusedGraph, FusedKernel, KernelKind,
    KernelStats, Mode, compile, compile_attention, fuse_attention,
};
pub use device::DeviceLimits;
pub use kernel::{Access, Binding, BufferDecl, BufferRole, ElemType, Kernel, KernelPlan};
pub use kernels::{CodegenError, Hyper, MatmulClass, MatmulConfig, MatmulKernel, MatmulTable};
pub use optimize::{Cost, OptimizeError, OptimizeOptions, OptimizeReport, Optimized};
pub use plan::{
    GraphPlanOptions, TrainedParam, UpdateOptions, UpdatePlan, plan_graph, plan_update, render_plan,
};
pub use shader::{ShaderError, to_spirv, validate_wgsl};
