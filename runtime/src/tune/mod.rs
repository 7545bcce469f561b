//! Measuring kernel configurations per adapter, and remembering the choice.
//!
//! How fast a fused attention kernel runs depends on the adapter in ways no
//! model predicts well: tile sizes, rows per invocation and wgpu's shader
//! runtime checks can each be worth a factor on one device and nothing on
//! another (on lavapipe, unchecked modules are sometimes slower). So they are
//! measured: [`tune`] times the candidates of a [`CandidateSpace`] on a
//! representative causal attention ([`TuneProblem`]), forward and backward,
//! after checking each one's outputs, and picks the fastest; a
//! [`TuningCache`] file keeps the choice per adapter and driver, and
//! [`TuningCache::choice`] gives what `weft attn` and `weft bench attn` run with.
//!
//! - `config.rs`: [`KernelConfig`] and the per-adapter [`KernelChoice`].
//! - `candidates.rs`: the configurations tried.
//! - `problem.rs`: the problem timed, its inputs and the correctness checks.
//! - `tuner.rs`: timing and choosing.
//! - `matmul.rs`: the same for the matmul kernel shapes ([`tune_matmul`]),
//!   one problem per shape class ([`weft_compiler::MatmulClass`]).
//! - `cache.rs`: the cache file.
//! - `error.rs`: [`TuneError`] and [`CacheError`].

mod cache;
mod candidates;
mod config;
mod error;
mod matmul;
mod problem;
mod tuner;

pub use cache::{
    AttentionEntry, CACHE_ENV, CACHE_FORMAT, CACHE_FORMAT_V1, CacheEntry, CacheKey, Stored, TuningCache,
    cache_path_from,
};
pub use candidates::{BLOCKS, CandidateSpace, MAX_ROW_VALUES, QUICK_BLOCKS, ROWS};
pub use config::{ChoiceSource, KernelChoice, KernelConfig};
pub use error::{CacheError, CandidateError, MatmulError, ShapeParseError, TuneError};
pub use matmul::{
    MATMUL_CHECK, MATMUL_TOLERANCE, MatmulOutcome, MatmulReport, MatmulResult, MatmulShape,
    matmul_candidates, matmul_rate, tune_matmul,
};
pub use problem::{FORWARD_TOLERANCE, GRADIENT_TOLERANCE, TuneProblem, rel_error};
pub use tuner::{CandidateResult, Outcome, Timing, TuneEvent, TuneOptions, TuneReport, tune};
