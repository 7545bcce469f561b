//! Reverse-mode differentiation of a graph into another graph.
//!
//! [`differentiate`] appends the backward pass to a copy of the forward graph:
//! one cotangent input per seeded output (every output, unless the caller
//! names some), one gradient output per requested leaf. The
//! result is an ordinary [`ValidGraph`], so the interpreter, the optimizer and
//! the code generators take it like any other.
//!
//! - `rules.rs`: each op's vector-Jacobian product, spelled with graph ops.
//!   Dense `attention` gets the eager backward (materialized probabilities);
//!   `fused-attention` gets `fused-attention-grad` nodes, a FlashAttention-2
//!   backward. So differentiating the optimized graph gives the fused step;
//! - `checkpoint.rs`: [`checkpoint`], gradient checkpointing: the backward
//!   pass recomputes each segment's activations from a few kept ones;
//! - `error.rs`: [`AutodiffError`].
//!
//! The gradient checks live in `ir/tests/gradcheck.rs`.

mod checkpoint;
mod error;
mod rules;

use std::collections::{BTreeSet, HashSet};

pub use checkpoint::{Checkpointing, checkpoint};
pub use error::AutodiffError;

use crate::graph::{Graph, NodeId, Op, ValidGraph};

/// A forward graph with its backward pass appended.
#[derive(Clone, Debug)]
pub struct Gradients {
    /// The forward outputs first, then one gradient output per requested leaf.
    pub graph: ValidGraph,
    /// `(output, cotangent input)`: the input that seeds each differentiated
    /// output, of the output's type (`o` is seeded by `do`).
    pub seeds: Vec<(String, String)>,
    /// `(leaf, gradient output)`: where each requested leaf's gradient is (`q` in `dq`).
    pub grads: Vec<(String, String)>,
}

/// The name of the cotangent of output `name`, and of the gradient of leaf `name`.
pub fn grad_name(name: &str) -> String {
    format!("d{name}")
}

/// The names of the graph's trainable parameters, in node order: what
/// [`differentiate`] is asked for when training.
pub fn trainable_parameters(graph: &Graph) -> Vec<String> {
    graph
        .node_ids()
        .filter_map(|id| match &graph.node(id).op {
            Op::Parameter { name, trainable: true } => Some(name.clone()),
            _ => None,
        })
        .collect()
}

/// Differentiates every output of `graph` with respect to the leaves named in `wrt`.
///
/// Each output that depends on some leaf of `wrt` gets a cotangent input named
/// [`grad_name`] of it; each leaf of `wrt` gets a gradient output named the
/// same way. The gradient is the vector-Jacobian product: the sum over the
/// outputs of their cotangents pulled back to the leaf. Nodes that do not lie
/// between a requested leaf and an output get no backward nodes.
///
/// Leaves may be inputs or trainable parameters; asking for a frozen
/// parameter, an unknown name or a leaf no output depends on is an error, as is
/// an op on the path that has no gradient rule.
pub fn differentiate(graph: &ValidGraph, wrt: &[&str]) -> Result<Gradients, AutodiffError> {
    differentiate_outputs(graph, None, wrt)
}

/// [`differentiate`], seeding only the outputs named in `seeded` (`None`:
/// every output). A training step seeds its `loss` alone: a cotangent input
/// for its `logits` output would be a `[T, V]` buffer of zeros, read and added
/// to the loss's gradient every step.
pub fn differentiate_outputs(
    graph: &ValidGraph,
    seeded: Option<&[&str]>,
    wrt: &[&str],
) -> Result<Gradients, AutodiffError> {
    if let Some(names) = seeded {
        for &name in names {
            if !graph.outputs().iter().any(|(output, _)| output == name) {
                return Err(AutodiffError::UnknownOutput {
                    output: name.to_string(),
                    outputs: graph.outputs().iter().map(|(n, _)| n.clone()).collect(),
                });
            }
        }
    }
    let targets = resolve_leaves(graph, wrt)?;
    check_names(graph, wrt)?;

    // needs[i]: node i depends on a requested leaf, so gradients flow through it.
    let mut needs = vec![false; graph.len()];
    for id in graph.node_ids() {
        let node = graph.node(id);
        // Integer nodes (ids, targets) carry no gradient.
        let flows = targets.contains(&id) || node.inputs.iter().any(|x| needs[x.index()]);
        needs[id.index()] = flows && node.ty.dtype.is_float();
    }

    let mut g: Graph = graph.clone().into_inner();
    // cotangent[i]: the sum, so far, of what flows back into node i.
    let mut cotangent: Vec<Option<NodeId>> = vec![None; graph.len()];
    let mut seeds = Vec::new();
    for (name, id) in graph.outputs() {
        let wanted = seeded.is_none_or(|names| names.contains(&name.as_str()));
        if !needs[id.index()] || !wanted {
            continue;
        }
        let seed_name = grad_name(name);
        let seed = g.input(&seed_name, graph.node(*id).ty.clone());
        accumulate(&mut g, &mut cotangent, *id, seed)?;
        seeds.push((name.clone(), seed_name));
    }

    for id in graph.node_ids().collect::<Vec<_>>().into_iter().rev() {
        let node = graph.node(id);
        let Some(cot) = cotangent[id.index()] else { continue };
        if node.op.leaf_name().is_some() {
            continue;
        }
        let wanted: Vec<bool> = node.inputs.iter().map(|x| needs[x.index()]).collect();
        let pulled = rules::vjp(&mut g, graph, id, cot, &wanted)?;
        for (&input, contribution) in node.inputs.iter().zip(pulled) {
            if let Some(c) = contribution {
                accumulate(&mut g, &mut cotangent, input, c)?;
            }
        }
    }

    let mut grads = Vec::with_capacity(wrt.len());
    for (&name, &leaf) in wrt.iter().zip(&targets) {
        let Some(grad) = cotangent[leaf.index()] else {
            return Err(AutodiffError::Unreachable { leaf: name.to_string() });
        };
        let out = grad_name(name);
        g.set_output(&out, grad);
        grads.push((name.to_string(), out));
    }
    let graph = g.validate().map_err(|source| AutodiffError::Graph { source })?;
    Ok(Gradients { graph, seeds, grads })
}

/// The leaf node of each name of `wrt`; only inputs and trainable parameters qualify.
fn resolve_leaves(graph: &Graph, wrt: &[&str]) -> Result<Vec<NodeId>, AutodiffError> {
    let mut seen = HashSet::new();
    wrt.iter()
        .map(|&name| {
            if !seen.insert(name) {
                return Err(AutodiffError::Duplicate { leaf: name.to_string() });
            }
            let found = graph.leaves().find(|(_, leaf)| *leaf == name).map(|(id, _)| id);
            let Some(id) = found else {
                let leaves: BTreeSet<String> = graph.leaves().map(|(_, n)| n.to_string()).collect();
                return Err(AutodiffError::UnknownLeaf {
                    leaf: name.to_string(),
                    leaves: leaves.into_iter().collect(),
                });
            };
            let node = graph.node(id);
            match node.op {
                Op::Parameter { trainable: false, .. } => {
                    Err(AutodiffError::Frozen { leaf: name.to_string() })
                }
                _ if !node.ty.dtype.is_float() => {
                    Err(AutodiffError::NotFloat { leaf: name.to_string(), ty: node.ty.to_string() })
                }
                _ => Ok(id),
            }
        })
        .collect()
}

/// The names the backward pass adds must not be taken already.
fn check_names(graph: &Graph, wrt: &[&str]) -> Result<(), AutodiffError> {
    let taken: HashSet<&str> =
        graph.leaves().map(|(_, n)| n).chain(graph.outputs().iter().map(|(n, _)| n.as_str())).collect();
    let added = graph.outputs().iter().map(|(n, _)| n.as_str()).chain(wrt.iter().copied());
    let mut fresh = HashSet::new();
    for name in added {
        let new = grad_name(name);
        if taken.contains(new.as_str()) || !fresh.insert(new.clone()) {
            return Err(AutodiffError::NameClash { name: new });
        }
    }
    Ok(())
}

/// Adds `contribution` to node `id`'s cotangent.
fn accumulate(
    g: &mut Graph,
    cotangent: &mut [Option<NodeId>],
    id: NodeId,
    contribution: NodeId,
) -> Result<(), AutodiffError> {
    let slot = &mut cotangent[id.index()];
    *slot = Some(match *slot {
        None => contribution,
        Some(sum) => {
            g.elementwise_add(sum, contribution).map_err(|source| AutodiffError::Graph { source })?
        }
    });
    Ok(())
}
