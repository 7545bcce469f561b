//! Training and evaluation data, on the host: `--data` read into token
//! sequences, held-out documents set aside, and the order steps read them in.
//!
//! - [`corpus`]: `--data PATH` into [`TokenRows`] (a safetensors `input_ids
//!   [S, T]`) or [`Documents`] (a text file, JSONL, or a directory filtered
//!   by a [`Glob`]).
//! - [`tokenizer`]: a Hugging Face `tokenizer.json`, or the byte-level
//!   tokenizer; [`SpecialIds`] reads a model directory's EOS and BOS.
//! - [`bpe`]: a byte-level BPE `tokenizer.json` learned from text.
//! - [`pack`]: documents joined with EOS and cut into sequences, with a
//!   held-out fraction of documents (or rows) kept as an eval stream.
//! - [`order`]: the sequence order per epoch (file order, or shuffled from the
//!   seed) and the sequences each optimizer step and micro-batch read.
//!
//! Nothing here prints: warnings (skipped files) are returned to the caller.

pub mod bpe;
pub mod corpus;
mod error;
pub mod glob;
pub mod order;
pub mod pack;
pub(crate) mod rng;
pub mod special;
pub mod tokenizer;

pub use bpe::{BPE_MIN_VOCAB, BPE_SPECIAL, BpeOptions, train_bpe};
pub use corpus::{Corpus, Document, Documents, TokenRows};
pub use error::DataError;
pub use glob::Glob;
pub use order::{Order, batch_rows, micro_positions, step_positions};
pub use pack::{
    PackOptions, Packed, heldout_units, join_documents, pack_documents, pack_rows, rows_stream,
    tokenize_documents,
};
pub use special::{SpecialIds, stop_ids_from_model_dir};
pub use tokenizer::{BYTE_BOS, BYTE_EOS, BYTE_VOCAB, Tokenizer};
