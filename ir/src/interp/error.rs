//! Interpreter errors.

use crate::expr::ExprError;
use crate::graph::NodeId;

/// Why the interpreter could not run; input errors name the input and what the graph expects.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum InterpError {
    #[error("shape {} holds {expected} elements, but {found} values were given", dims(.shape))]
    DataLength { shape: Vec<usize>, expected: usize, found: usize },

    #[error("shape {} has too many elements", dims(.shape))]
    TooLarge { shape: Vec<usize> },

    #[error("missing input `{name}`; the graph takes {}", names(.expected))]
    MissingInput { name: String, expected: Vec<String> },

    #[error("unexpected input `{name}`; the graph takes {}", names(.expected))]
    UnexpectedInput { name: String, expected: Vec<String> },

    #[error("input `{name}` has shape {}, but the graph declares {}", dims(.found), dims(.expected))]
    InputShape { name: String, expected: Vec<usize>, found: Vec<usize> },

    /// Operands a kernel cannot take (only reachable through the public kernels).
    #[error("`{op}`: {message}")]
    Shape { op: &'static str, message: String },

    #[error("`{op}`: id {value} at position {position} is not an integer in 0..{limit}")]
    BadId { op: &'static str, value: f64, position: usize, limit: usize },

    #[error("the mask of head {head} cannot be evaluated: {error}")]
    Mask { head: usize, error: ExprError },

    /// A broken invariant of `ValidGraph`; a bug, reported rather than panicking.
    #[error("internal error at {node}: {message}")]
    Internal { node: NodeId, message: String },
}

pub(crate) fn dims(shape: &[usize]) -> String {
    let parts: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("[{}]", parts.join(", "))
}

fn names(names: &[String]) -> String {
    if names.is_empty() {
        return "no inputs".to_string();
    }
    names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
}
