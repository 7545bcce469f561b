//! weft's runtime: the only crate that touches the GPU.
//!
//! - [`gpu`]: picks the user's adapter (any Vulkan/Metal/DX12 device; Mesa's
//!   lavapipe on machines without a GPU) and opens a device with its full limits.
//! - [`executor`]: runs a compiler [`KernelPlan`](weft_compiler::KernelPlan):
//!   allocates its buffers, caches pipelines by kernel hash, dispatches kernels in
//!   order and reads outputs back.

pub mod error;
pub mod executor;
pub mod gpu;
pub mod io;

pub use error::RuntimeError;
pub use executor::{Executor, Prepared};
pub use gpu::{Gpu, GpuLimits};
