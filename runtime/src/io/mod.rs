//! Explicit load and save functions for files users already have.

mod adapter;
mod adapter_config;
mod atomic;
mod atomic_dir;
mod checkpoint;
mod float16;
mod output_guard;
mod tensors;

pub use adapter::{
    ADAPTER_CONFIG, ADAPTER_WEIGHTS, Adapter, AdapterError, load_adapter, parse_adapter_config,
    read_adapter_config,
};
pub use atomic::{TEMP_PREFIX, remove_leftovers, write_atomically};
pub use atomic_dir::{DirWriter, write_dir_atomically};
pub use checkpoint::{CheckpointError, INDEX_FILE, SINGLE_FILE, check_layer_count, load_checkpoint};
pub use float16::{bf16_to_f32, f16_to_f32};
pub use output_guard::{Input, Output, OutputError, OutputKind, check_output};
pub use tensors::{HostTensor, IntTensor, TensorFile, TensorFileError, save};
