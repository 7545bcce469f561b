//! WGSL code generation.

pub mod simple;
