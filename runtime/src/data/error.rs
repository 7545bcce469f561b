//! What can go wrong turning `--data` into token sequences.

use std::path::PathBuf;

use crate::io::TensorFileError;

/// Why data could not be loaded, tokenized, packed or ordered. Every variant
/// names the file (or the document) it is about.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is neither a regular file nor a directory")]
    NotAFile { path: PathBuf },
    #[error("{path} is not UTF-8 text (invalid byte at offset {offset})")]
    NotUtf8 { path: PathBuf, offset: usize },
    #[error("{path}:{line}: {message}")]
    Jsonl { path: PathBuf, line: usize, message: String },
    #[error("a file glob selects files in a directory, but {path} is a file")]
    GlobOnFile { path: PathBuf },
    #[error("invalid file glob `{glob}`: {reason}")]
    Glob { glob: String, reason: String },
    #[error("no file under {path}{}", describe_glob(glob.as_deref()))]
    NoFiles { path: PathBuf, glob: Option<String> },
    #[error("{0}")]
    Tensor(#[from] TensorFileError),
    #[error("tensor `input_ids` in {path} has shape {shape:?}; expected [S, T] (S sequences of T tokens)")]
    RowsShape { path: PathBuf, shape: Vec<usize> },
    #[error("{origin}, position {position}: id {id} is not a token id of this model (vocab_size {vocab})")]
    IdOutOfRange { origin: String, position: usize, id: i64, vocab: usize },
    #[error("no tokens in {what}")]
    NoTokens { what: String },
    #[error("{what} has {tokens} tokens, fewer than one sequence of {seq_len}")]
    TooShort { what: String, tokens: usize, seq_len: usize },
    #[error(
        "the rows of `input_ids` in {path} have T = {row_len} tokens, but the sequence length is \
         {seq_len}; pre-tokenized rows are used as they are, so T must equal the sequence length"
    )]
    RowLength { path: PathBuf, row_len: usize, seq_len: usize },
    #[error("the sequence length must be at least 1")]
    ZeroSeqLen,
    #[error("the held-out fraction must be in [0, 1), got {0}")]
    HeldOutFraction(f64),
    #[error(
        "a vocabulary of {asked} ids has no room for the 256 bytes and 2 special tokens: give at least {min}"
    )]
    BpeVocabTooSmall { asked: usize, min: usize },
    #[error("training the BPE tokenizer: {message}")]
    BpeTrain { message: String },
    #[error("cannot load the tokenizer {path}: {message}")]
    TokenizerLoad { path: PathBuf, message: String },
    #[error("tokenizing {what} with {tokenizer}: {message}")]
    Tokenize { what: String, tokenizer: String, message: String },
    #[error(
        "the tokenizer {tokenizer} has ids up to {largest} (vocabulary {size}), more than the \
         model's vocab_size {model}"
    )]
    TokenizerTooLarge { tokenizer: String, size: usize, largest: u32, model: usize },
    #[error(
        "the tokenizer {tokenizer}'s {which} token {id} is not a token id of the model (vocab_size {model})"
    )]
    SpecialTooLarge { tokenizer: String, which: &'static str, id: u32, model: usize },
    #[error(
        "the tokenizer {tokenizer} has no end-of-sequence token to separate documents with; give the \
         model's config.json an `eos_token_id`, or add `</s>` or `<|endoftext|>` to the tokenizer"
    )]
    NoEos { tokenizer: String },
    #[error("{path}: `{key}` must be a token id (a non-negative integer, or a list of them), found {found}")]
    SpecialId { path: PathBuf, key: &'static str, found: String },
    #[error("{path} is not valid JSON: {message}")]
    Json { path: PathBuf, message: String },
    #[error("the data order needs at least one sequence")]
    NoSequences,
    #[error("{what} must be at least 1")]
    ZeroBatch { what: &'static str },
    #[error("micro-batch {micro} is out of range: a step accumulates {accum} micro-batches")]
    MicroBatch { micro: usize, accum: usize },
    #[error("step {step} with {per_step} sequences per step is past the largest position weft counts")]
    PositionOverflow { step: u64, per_step: u64 },
}

fn describe_glob(glob: Option<&str>) -> String {
    match glob {
        Some(glob) => format!(" matches the glob `{glob}`"),
        None => " to read (hidden files and directories are skipped)".to_string(),
    }
}
