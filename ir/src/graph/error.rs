//! Errors from building, validating and parsing graphs.

use super::op::Arity;
use super::{NodeId, TensorType};
use crate::source::{LineCol, SourceFile, Span};

/// Everything that can be wrong with a graph or its text.
///
/// Shape errors name the node (when it exists), the op and the operand types;
/// text errors carry the file name, the position and the span.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum GraphError {
    #[error("`{}` takes {expected}, found {found}", subject(.node, .op))]
    Arity { node: Option<NodeId>, op: &'static str, expected: Arity, found: usize },

    /// The operands do not fit the op; `reason` says how and shows their types.
    #[error("`{}`: {reason}", subject(.node, .op))]
    Type { node: Option<NodeId>, op: &'static str, operands: Vec<TensorType>, reason: String },

    /// A node's recorded (or, in text, declared) type is not what its operands give.
    #[error("`{}`: declared type {declared} does not match inferred type {inferred}", subject(.node, .op))]
    TypeMismatch { node: Option<NodeId>, op: &'static str, declared: TensorType, inferred: TensorType },

    #[error("`{node}`: operand {operand} is not a node of this graph")]
    UnknownOperand { node: NodeId, operand: NodeId },

    #[error("output `{name}` refers to {node}, which is not a node of this graph")]
    UnknownOutput { name: String, node: NodeId },

    #[error("the graph has a cycle through {node}")]
    Cycle { node: NodeId },

    #[error("{node} uses {operand}, which is defined after it; nodes must be in topological order")]
    OutOfOrder { node: NodeId, operand: NodeId },

    #[error("graph `{graph}` has no outputs")]
    NoOutputs { graph: String },

    #[error("name `{name}` is used by both {first} and {second}; input and parameter names must be unique")]
    DuplicateName { name: String, first: NodeId, second: NodeId },

    #[error("output `{name}` is declared twice")]
    DuplicateOutput { name: String },

    /// The text does not follow the grammar.
    #[error("{file}:{pos}: expected {expected}, found {found}")]
    Syntax { file: String, pos: LineCol, span: Span, expected: String, found: String },

    /// The text is grammatical but means nothing (an undefined `%id`, an unknown op).
    #[error("{file}:{pos}: {message}")]
    Parse { file: String, pos: LineCol, span: Span, message: String },

    /// A graph error (such as a shape error) found while parsing, with its place in the text.
    #[error("{file}:{pos}: {error}")]
    Located { file: String, pos: LineCol, span: Span, error: Box<GraphError> },
}

impl GraphError {
    /// The span in the parsed text, for errors that come from text.
    pub fn span(&self) -> Option<Span> {
        match self {
            GraphError::Syntax { span, .. }
            | GraphError::Parse { span, .. }
            | GraphError::Located { span, .. } => Some(*span),
            _ => None,
        }
    }

    /// A rustc-style excerpt of `file` under the error, for errors that come from text.
    pub fn excerpt(&self, file: &SourceFile) -> Option<String> {
        self.span().map(|span| file.excerpt(span))
    }
}

/// `%5 = matmul` when the node is known, `matmul` otherwise.
fn subject(node: &Option<NodeId>, op: &str) -> String {
    match node {
        Some(id) => format!("{id} = {op}"),
        None => op.to_string(),
    }
}
