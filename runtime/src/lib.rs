//! weft's runtime: the only crate that touches the GPU.
//!
//! - [`gpu`]: picks the user's adapter (any Vulkan/Metal/DX12 device; Mesa's
//!   lavapipe on machines without a GPU) and opens a device with its full limits.
//! - [`executor`]: runs a compiler [`KernelPlan`](weft_compiler::KernelPlan):
//!   allocates its buffers, caches pipelines by kernel, dispatches kernels in
//!   order and reads outputs back; [`FusedPlan`]s, the compiler's fused
//!   attention plans sealed against modification, may run without wgpu's
//!   shader runtime checks ([`ShaderChecks`]). Inputs are f32, or
//!   [`HostValues`] for plans with integer (`i32`) buffers.
//! - [`tune`]: measures fused attention configurations (tiles, rows per
//!   invocation, runtime checks) on the current adapter and caches the fastest
//!   per adapter and driver.
//! - [`train`]: fine-tuning on the device: the training plan driven step by
//!   step, AdamW's schedule, initialisation, PEFT adapters and checkpoints.
//! - [`data`]: training and evaluation data on the host: `--data` read and
//!   tokenized, packed into sequences with a held-out part, and ordered per epoch.
//! - [`decode`]: the KV cache of decoding, sized by the mask's reach (host side so far).
//! - [`eval`]: perplexity windows and passkey retrieval prompts, host side.
//! - [`testing`]: for tests, the one helper that opens the GPU or skips a
//!   test when there is no adapter (`WEFT_REQUIRE_GPU=1` fails instead), and
//!   the known driver quirks tests expect.

pub mod data;
pub mod decode;
pub mod error;
pub mod eval;
pub mod executor;
pub mod fused;
pub mod gpu;
pub mod host;
pub mod io;
pub mod testing;
pub mod train;
pub mod tune;

pub use error::RuntimeError;
pub use executor::{ElementCopy, Executor, Prepared, Runnable, ShaderChecks};
pub use fused::FusedPlan;
pub use gpu::{AdapterIdentity, Gpu};
pub use host::{HostInput, HostOutput, HostSlice, HostValues, exact_storage};
pub use weft_compiler::DeviceLimits;
