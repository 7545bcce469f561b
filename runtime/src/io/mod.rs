//! Explicit load and save functions for files users already have.

mod adapter;
mod adapter_config;
mod atomic;
mod atomic_dir;
mod checkpoint;
mod export;
mod float16;
mod merge;
mod output_guard;
mod rope_factor;
mod run_record;
mod saved_modules;
mod tensors;

pub use adapter::{
    ADAPTER_CONFIG, ADAPTER_WEIGHTS, Adapter, AdapterError, load_adapter, parse_adapter_config,
    read_adapter_config,
};
pub use adapter_config::AdapterConfig;
pub use atomic::{TEMP_PREFIX, remove_leftovers, write_atomically};
pub use atomic_dir::{DirWriter, write_dir_atomically};
pub use checkpoint::{
    CheckpointError, CheckpointReader, INDEX_FILE, SINGLE_FILE, check_layer_count, load_checkpoint,
    load_checkpoint_with,
};
pub use export::{COPIED_FILES, ExportError, merged_config_json, write_merged_checkpoint};
pub use float16::{bf16_from_f32_exact, bf16_to_f32, f16_from_f32_exact, f16_to_f32};
pub use merge::{MergeError, MergePlan, MergedTensor, merge_adapter, merge_lora, plan_merge};
pub use output_guard::{Input, Output, OutputError, OutputKind, check_output};
pub use rope_factor::{RopeFactorError, apply_linear_factor, write_linear_factor};
pub use run_record::{RUN_RECORD, RUN_RECORD_FORMAT, RunRecord, RunRecordError};
pub use saved_modules::{SAVABLE_MODULES, apply_saved_modules};
pub use tensors::{
    FloatType, HostTensor, IntTensor, TensorFile, TensorFileError, TensorFileReader, TensorRef, save,
    save_with_ints, torch_metadata, write_floats_from, write_safetensors, write_safetensors_from,
};
