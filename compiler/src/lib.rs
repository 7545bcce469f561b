//! weft's compiler: from a validated tensor graph to GPU kernels.
//!
//! - [`kernel`]: what the compiler hands the runtime, a [`KernelPlan`] of WGSL
//!   kernels and the buffers they bind. Device-agnostic: nothing here touches wgpu.
//! - [`codegen`]: WGSL generation; [`codegen::simple`] runs an unfused graph
//!   op by op ([`plan_graph`]).
//! - [`shader`]: naga validation of every emitted module, and SPIR-V output.

pub mod codegen;
pub mod kernel;
pub mod shader;

pub use codegen::simple::{SimplePlanOptions, plan_graph, render_plan};
pub use kernel::{Access, Binding, BufferDecl, BufferRole, Kernel, KernelPlan};
pub use shader::{ShaderError, to_spirv, validate_wgsl};
