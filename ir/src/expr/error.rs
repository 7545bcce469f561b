use super::limits::Nested;
use crate::source::Span;

/// An error inside one expression string, with a span relative to that string.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{kind}")]
pub struct ExprError {
    pub kind: ExprErrorKind,
    pub span: Span,
}

impl ExprError {
    pub fn new(kind: ExprErrorKind, span: Span) -> Self {
        ExprError { kind, span }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ExprErrorKind {
    #[error("expected {expected}, found {found}")]
    Unexpected { expected: String, found: String },
    #[error("unknown mask primitive `{found}`; expected one of {known}{hint}")]
    UnknownPrimitive { found: String, known: &'static str, hint: String },
    #[error("`{primitive}` takes {expected}, found {found} argument{s}", s = if *found == 1 { "" } else { "s" })]
    Arity { primitive: &'static str, expected: &'static str, found: usize },
    #[error("integer literal `{0}` is too large")]
    LiteralTooLarge(String),
    #[error("undefined variable `{name}`; {available}")]
    UndefinedVar { name: String, available: String },
    #[error("division by zero in `{0}`")]
    DivisionByZero(String),
    #[error("integer overflow in `{0}`")]
    Overflow(String),
    #[error("{} nested deeper than {} levels", .0.name(), .0.limit())]
    TooDeep(Nested),
    #[error("mask has {terms} terms; the kernels take at most {limit}")]
    TooManyTerms { terms: usize, limit: usize },
}
