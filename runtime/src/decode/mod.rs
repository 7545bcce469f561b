//! Decoding with a KV cache shaped by the pattern (issue 15, in progress).
//!
//! - [`decoder`]: the prefill and the steps on the device, the caches kept
//!   in the step plan's inputs and filled by device copies.
//! - [`sample`]: greedy, temperature and top-p choice of the next token.
//! - [`slots`]: which cached position each slot of a layer's cache holds, per
//!   batch row and KV head; a key is evicted once the mask's reach
//!   ([`weft_ir::mask::Reach`]) says no later query can see it, so a cache
//!   never holds more keys than the reach's capacity.

pub mod decoder;
pub mod sample;
pub mod slots;

pub use decoder::{DecodeError, DecodeSpec, Decoder};
pub use sample::{Sampling, argmax};
pub use slots::{SlotError, SlotTable};
