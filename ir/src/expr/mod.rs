//! The expression language shared by sizes, head/layer ranges and masks.
//!
//! Sizes are integer expressions (`N / 4`, `G/2 + 1`); ranges are `size..size`;
//! masks combine primitives with `& | !`. Spans in this module are byte offsets
//! into the expression string; the spec layer maps them into the file.

mod error;
mod lexer;
mod limits;
mod parser;
pub(crate) mod size;

pub use error::{ExprError, ExprErrorKind};
pub use limits::{MAX_MASK_DEPTH, MAX_SIZE_DEPTH, Nested};
pub use parser::{parse_mask, parse_range, parse_size};
pub use size::{SizeExpr, SizeKind, SizeOp};
