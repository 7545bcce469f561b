//! Evaluation on the host side: which windows perplexity scores, and the
//! passkey retrieval prompts and their scoring. The model itself runs
//! wherever the caller runs it (`weft eval` on the GPU, tests also through
//! the f64 interpreter); nothing here needs a device.
//!
//! - [`windows`]: LongLoRA's `eval.py` sliding windows over one token stream
//!   and the perplexity of their losses.
//! - [`passkey`]: LongLoRA's `passkey_retrivial.py` prompt fitted to a
//!   length, and the one-pass greedy check of the answer.

pub mod passkey;
pub mod windows;

pub use passkey::{PasskeyTrial, passkey_trial, training_trial};
pub use windows::{MeanLoss, next_token_targets, window_starts};

use crate::data::DataError;

/// Why an evaluation could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("the stride must be at least 1")]
    ZeroStride,
    #[error(
        "a window of {len} token(s) has no next-token prediction to score; the length must be at least 2"
    )]
    WindowTooShort { len: usize },
    #[error(
        "the passkey prompt needs at least {needed} tokens with {tokenizer} (with no filler), more \
         than the length {seq_len}"
    )]
    PasskeyTooLong { seq_len: usize, needed: usize, tokenizer: String },
    #[error(
        "{tokenizer} tokenizes the passkey prompt differently when the answer ` {key}` follows it, \
         so the answer's tokens cannot be told apart from the prompt's"
    )]
    AnswerBoundary { tokenizer: String, key: u32 },
    #[error("{0}")]
    Data(#[from] DataError),
}
