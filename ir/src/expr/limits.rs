//! How deeply an expression may nest, and the parser's guard for it.
//!
//! The parser, and every walk over a parsed tree (evaluation, printing, tiling,
//! substitution, the compiler's WGSL emission and e-graph terms), is recursive.
//! Refusing deeper input here, at parse time, bounds all of them at once.
//! Real patterns nest a handful of levels; the limits are far beyond that.

/// The most levels a mask may nest: parentheses, `!`, `roll(…)`, and each `&`
/// or `|` of a chain (`a & b & c` is `(a & b) & c`, two levels). The WGSL the
/// kernels get nests as the mask does, and naga's front end stops at 200
/// levels (measured: an `&` chain of 195 `window`s compiled, 200 did not), so
/// 64 keeps 3x below it, with room for a size nested in the deepest primitive.
pub const MAX_MASK_DEPTH: usize = 64;

/// The most levels a size expression may nest: parentheses, unary `-` and each
/// operator of a chain (`N - 1 - 1` is two levels).
pub const MAX_SIZE_DEPTH: usize = 64;

/// What kind of expression nests too deeply, for the error message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nested {
    Mask,
    Size,
}

impl Nested {
    pub fn limit(self) -> usize {
        match self {
            Nested::Mask => MAX_MASK_DEPTH,
            Nested::Size => MAX_SIZE_DEPTH,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Nested::Mask => "mask",
            Nested::Size => "size expression",
        }
    }
}
