//! Why a graph could not be differentiated.

use crate::graph::{GraphError, NodeId};

#[derive(Debug, thiserror::Error)]
pub enum AutodiffError {
    #[error("cannot differentiate with respect to `{leaf}`: no input or parameter has that name (the leaves are {})", .leaves.join(", "))]
    UnknownLeaf { leaf: String, leaves: Vec<String> },

    #[error("`{leaf}` is a frozen parameter; only inputs and trainable parameters get gradients")]
    Frozen { leaf: String },

    #[error("`{leaf}` has type {ty}; only floating-point leaves have gradients")]
    NotFloat { leaf: String, ty: String },

    #[error("cannot seed the backward pass at `{output}`: the graph has no output of that name (the outputs are {})", .outputs.join(", "))]
    UnknownOutput { output: String, outputs: Vec<String> },

    #[error("`{leaf}` is asked for twice")]
    Duplicate { leaf: String },

    #[error("no output depends on `{leaf}`, so it has no gradient")]
    Unreachable { leaf: String },

    #[error("the backward pass needs the name `{name}`, which the graph already uses")]
    NameClash { name: String },

    #[error("node {node}: op `{op}` has no gradient rule yet")]
    NoRule { node: NodeId, op: &'static str },

    #[error("node {node} ({op}): {reason}")]
    Rule { node: NodeId, op: &'static str, reason: String },

    /// A backward node did not type-check: a bug in a gradient rule.
    #[error("building the backward pass: {source}")]
    Graph {
        #[source]
        source: GraphError,
    },
}
