//! Errors of the tuner and of its cache file.

use std::path::PathBuf;

use weft_compiler::CodegenError;

use super::matmul::MatmulShape;
use crate::error::RuntimeError;

/// Why tuning could not produce a result. A candidate that fails is not an
/// error: it is skipped with a note; these are the failures of the whole run.
#[derive(Debug, thiserror::Error)]
pub enum TuneError {
    #[error("tuning problem {problem}: {message}")]
    Problem { problem: String, message: String },
    #[error("no candidate configurations fit this adapter for {problem}")]
    NoCandidates { problem: String },
    #[error(
        "the default configuration {config} failed on {problem}, so there is nothing to check the \
         candidates against: {reason}"
    )]
    Reference { config: String, problem: String, reason: CandidateError },
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

/// What can go wrong with the tuning cache file. Reading problems are warnings
/// for the caller: the defaults apply and `weft tune` rewrites the file.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cannot read the tuning cache {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("the tuning cache {path} is not valid: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error("the tuning cache {path} has format {found}; this weft reads format {expected}")]
    Format { path: PathBuf, found: i64, expected: i64 },
    #[error("cannot write the tuning cache {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("cannot write the tuning cache {path}: {message}")]
    Serialize { path: PathBuf, message: String },
    #[error("no place for the tuning cache: set WEFT_TUNING_CACHE to a file path, or XDG_CACHE_HOME or HOME")]
    NoPath,
}

/// Why one fused attention candidate has no timing. The candidate is
/// reported with it and never chosen; the run goes on. The device's errors
/// are kept as text so that results can be compared and cloned.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum CandidateError {
    #[error("planning: {0}")]
    Plan(String),
    #[error("compiling: {0}")]
    Compile(String),
    #[error("running: {0}")]
    Run(String),
    #[error("no output `{0}`")]
    MissingOutput(&'static str),
    #[error("`{output}` differs from {against} by {error:.1e} (tolerance {tolerance:.0e})")]
    Inaccurate { output: &'static str, against: &'static str, error: f64, tolerance: f64 },
    #[error("time budget of {seconds} s spent")]
    OverBudget { seconds: u64 },
}

/// Why one matmul candidate was not timed. The candidate is reported with
/// it and never chosen; the run goes on.
#[derive(Debug, thiserror::Error)]
pub enum MatmulError {
    #[error("cannot build the {shape} matmul graph: {message}")]
    Graph { shape: MatmulShape, message: String },
    #[error("cannot plan {shape}: {source}")]
    Plan { shape: MatmulShape, source: CodegenError },
    #[error("running {shape} failed: {source}")]
    Run { shape: MatmulShape, source: RuntimeError },
    #[error("the plan of {shape} has no output `y`")]
    NoOutput { shape: MatmulShape },
    #[error("relative error {error:.2e} above {tolerance:e} at {shape}")]
    Inaccurate { shape: MatmulShape, error: f64, tolerance: f64 },
}

/// A `MxKxN` matmul size that does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ShapeParseError {
    #[error("`{text}`: {source}")]
    Number { text: String, source: std::num::ParseIntError },
    #[error("`{0}` is not MxKxN with three positive sizes")]
    NotThree(String),
}
