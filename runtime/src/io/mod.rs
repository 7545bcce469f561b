//! Explicit load and save functions for files users already have.

mod atomic;
mod tensors;

pub use atomic::write_atomically;
pub use tensors::{HostTensor, TensorFile, TensorFileError, save};
