//! Mask output formats.

pub mod ascii;
pub mod npy;
pub mod png;
