//! Mask output formats.

pub mod ascii;
pub mod npy;
pub mod plot;
pub mod png;
