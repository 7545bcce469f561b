//! Fine-tuning on the device: the compiled training plan driven step by step
//! (`step.rs`), AdamW's run-time scalars and schedule (`optimizer.rs`),
//! parameter initialisation as transformers and PEFT do it (`init.rs`),
//! PEFT adapters written in PEFT's own format (`peft.rs`), and checkpoints
//! that resume bit for bit (`checkpoint.rs`).

mod checkpoint;
mod error;
mod init;
mod optimizer;
mod peft;
mod step;

pub use checkpoint::{
    Checkpoint, CheckpointState, checkpoint_dirs, load_checkpoint_dir, prune_checkpoints, write_checkpoint,
    write_moments,
};
pub use error::TrainError;
pub use init::{init_lora, init_model};
pub use optimizer::AdamW;
pub use peft::{PeftAdapter, peft_key};
pub use step::{TrainingStep, UpdateStats};
