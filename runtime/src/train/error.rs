//! Why training, checkpointing or resuming failed.

use std::path::PathBuf;

use crate::error::RuntimeError;
use crate::io::TensorFileError;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("the training plan: {0}")]
    Plan(String),
    #[error(transparent)]
    Tensors(#[from] TensorFileError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("writing a checkpoint: {0}")]
    Write(#[from] std::io::Error),
    #[error("checkpoint {}: {reason}", path.display())]
    DamagedCheckpoint { path: PathBuf, reason: String },
    #[error(
        "step {step}: the {what} is {value}; stopping. {}",
        match last_good { Some(p) => format!("The last good checkpoint is {}.", p.display()), None => "No checkpoint was written yet.".to_string() }
    )]
    NotFinite { step: u64, what: &'static str, value: f64, last_good: Option<PathBuf> },
}

impl TrainError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> TrainError {
        let path = path.into();
        move |source| TrainError::Io { path, source }
    }
}
