use std::fmt;

use crate::expr::ExprErrorKind;
use crate::source::LineCol;

/// An error in a spec file.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("cannot read spec {file}: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    /// A size given on the command line that weft does not accept.
    #[error("{0}")]
    Size(#[from] crate::limits::SizeError),
    /// An error at a place in the file.
    #[error("{file}:{pos}: {kind}")]
    At { file: String, pos: LineCol, kind: Box<SpecErrorKind>, excerpt: String },
}

impl SpecError {
    /// The kind of a positioned error.
    pub fn kind(&self) -> Option<&SpecErrorKind> {
        match self {
            SpecError::At { kind, .. } => Some(kind),
            SpecError::Io { .. } | SpecError::Size(_) => None,
        }
    }

    /// A multi-line, rustc-style rendering with the offending line underlined.
    pub fn render(&self) -> String {
        match self {
            SpecError::Io { .. } | SpecError::Size(_) => self.to_string(),
            SpecError::At { file, pos, kind, excerpt } => {
                format!("{kind}\n  --> {file}:{pos}\n{excerpt}")
            }
        }
    }
}

/// Which table a range belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeOf {
    Heads,
    Layers,
}

impl fmt::Display for RangeOf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RangeOf::Heads => "head",
            RangeOf::Layers => "layer",
        })
    }
}

impl RangeOf {
    fn plural(self) -> &'static str {
        match self {
            RangeOf::Heads => "heads",
            RangeOf::Layers => "layers",
        }
    }
    fn total_name(self) -> &'static str {
        match self {
            RangeOf::Heads => "H",
            RangeOf::Layers => "L",
        }
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SpecErrorKind {
    #[error("invalid TOML: {0}")]
    Toml(String),
    #[error("{0}")]
    Expr(ExprErrorKind),
    #[error("`{key}` is not set: add it to [defaults] or pass {flag}")]
    MissingDim { key: &'static str, flag: &'static str },
    #[error("{0}")]
    TooLarge(crate::limits::SizeError),
    #[error("`{key}` must be at least 1, found {value}")]
    NonPositiveDim { key: &'static str, value: i64 },
    #[error("`{primitive}` parameter {param} must be at least 1, found {value}{}", head_note(*head))]
    NonPositiveSize { primitive: &'static str, param: &'static str, value: i64, head: Option<usize> },
    #[error("{of} range {start}..{end} is empty; expected start < end")]
    EmptyRange { of: RangeOf, start: i64, end: i64 },
    #[error("{of} range {start}..{end} is outside the {total} {} (0..{})", of.plural(), of.total_name())]
    RangeOutOfBounds { of: RangeOf, start: i64, end: i64, total: usize },
    #[error("{of} range {start}..{end} overlaps {other_start}..{other_end}")]
    Overlap { of: RangeOf, start: usize, end: usize, other_start: usize, other_end: usize },
    #[error("{} not covered by any range; ranges must cover 0..{} exactly once",
        describe_span(*of, *start, *end), of.total_name())]
    Gap { of: RangeOf, start: usize, end: usize },
    #[error("variable `{name}` depends on itself: {cycle}")]
    CyclicVar { name: String, cycle: String },
    #[error("variable `{name}` is defined through a chain of more than {limit} variables")]
    VarChainTooLong { name: String, limit: usize },
    #[error("`{name}` is built in and cannot be redefined in [vars]")]
    ReservedVar { name: String },
    #[error("`h` (the head index) can only be used inside a mask")]
    HeadIndexOutsideMask,
    #[error("layer range names pattern `{name}`, which is not defined; defined patterns: {known}")]
    UnknownPattern { name: String, known: String },
    #[error("the spec defines no attention pattern; expected [[heads]] or [patterns] with [[layers]]")]
    NoPattern,
    #[error(
        "a spec has either [[heads]] (one pattern for every layer) or [patterns] with [[layers]], not both"
    )]
    HeadsAndPatterns,
    #[error("[patterns] needs [[layers]] to assign the patterns to layers")]
    MissingLayers,
    #[error("[[layers]] needs [patterns] to name; a file with [[heads]] uses one pattern for every layer")]
    LayersWithoutPatterns,
    #[error("{what} has no [[heads]] entries")]
    NoHeads { what: String },
    #[error(
        "S2-Attn's roll form reshapes the sequence into groups of {group}, but seq_len N = {seq_len} is not divisible by {group}"
    )]
    NotDivisible { group: i64, seq_len: usize },
}

fn describe_span(of: RangeOf, start: usize, end: usize) -> String {
    if end - start == 1 { format!("{of} {start} is") } else { format!("{} {start}..{end} are", of.plural()) }
}

fn head_note(head: Option<usize>) -> String {
    head.map(|h| format!(" for head {h}")).unwrap_or_default()
}
