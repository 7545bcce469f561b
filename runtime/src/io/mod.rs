//! Explicit load and save functions for files users already have.

mod adapter;
mod adapter_config;
mod atomic;
mod checkpoint;
mod float16;
mod tensors;

pub use adapter::{
    ADAPTER_CONFIG, ADAPTER_WEIGHTS, Adapter, AdapterError, load_adapter, read_adapter_config,
};
pub use atomic::write_atomically;
pub use checkpoint::{CheckpointError, INDEX_FILE, SINGLE_FILE, check_layer_count, load_checkpoint};
pub use float16::{bf16_to_f32, f16_to_f32};
pub use tensors::{HostTensor, IntTensor, TensorFile, TensorFileError, save};
