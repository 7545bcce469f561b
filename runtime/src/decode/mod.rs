//! Decoding with a KV cache shaped by the pattern (issue 15, in progress).
//!
//! - [`slots`]: which cached position each slot of a layer's cache holds, per
//!   batch row and KV head; a key is evicted once the mask's reach
//!   ([`weft_ir::mask::Reach`]) says no later query can see it, so a cache
//!   never holds more keys than the reach's capacity.

pub mod slots;

pub use slots::{SlotError, SlotTable};
