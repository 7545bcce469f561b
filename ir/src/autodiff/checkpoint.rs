//! Gradient checkpointing: the backward pass computes a layer's activations
//! again instead of keeping them from the forward pass.
//!
//! A training step as [`differentiate`](super::differentiate) builds it keeps
//! every activation the backward pass reads alive from the forward pass to
//! the backward: at long context that is most of the step's memory (about
//! 1.5 GiB per layer of hidden 2048 at T = 8192). [`checkpoint`] keeps only
//! the *checkpoints*, activations through which everything later in the
//! forward pass flows, one per attention (each layer's residual sum after
//! attention, as transformers keeps one per layer), and gives the backward
//! pass its own copy of each segment's other nodes, computed from the
//! segment's checkpoint. The copies come just
//! before the first backward node that reads them, so the planner, which runs
//! nodes in order and frees a buffer after its last reader, holds one
//! segment's activations at a time. The price is a second forward pass over
//! every segment (attention included): about a third more work per step,
//! what `gradient_checkpointing` costs in transformers.
//!
//! The copies compute the same ops on the same values, so the step's outputs
//! do not change.

use super::{AutodiffError, Gradients};
use crate::graph::{Graph, NodeId, Op};

/// What [`checkpoint`] did to a training step.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Checkpointing {
    /// Forward activations through which every later one flows.
    pub checkpoints: usize,
    /// Forward nodes the backward pass computes again.
    pub recomputed: usize,
}

/// Rebuilds `step` (a forward graph of `forward_len` nodes with its backward
/// pass appended, as [`differentiate`](super::differentiate) returns it) so
/// that its backward pass reads no forward activation other than the
/// checkpoints: it recomputes the others from them.
///
/// An activation is a forward node that depends on a run-time input (the
/// token ids); values computed from parameters alone (a weight's transpose)
/// stay shared. A checkpoint is an activation that, in node order, is the
/// only activation still to be read after it: every later activation reaches
/// the earlier ones through it. A graph without checkpoints (say, an input
/// that every layer reads) comes back unchanged but for the report.
pub fn checkpoint(step: Gradients, forward_len: usize) -> Result<(Gradients, Checkpointing), AutodiffError> {
    let graph = &step.graph;
    let forward_len = forward_len.min(graph.len());
    let activation = activations(graph, forward_len);
    let mut is_checkpoint = checkpoints(graph, forward_len, &activation);
    one_per_attention(graph, forward_len, &mut is_checkpoint);

    let mut g = Graph::new(graph.name());
    let mut segments = Segments {
        graph,
        activation,
        is_checkpoint,
        map: Vec::with_capacity(graph.len()),
        copy: vec![None; forward_len],
        recomputed: 0,
    };
    let err = |source| AutodiffError::Graph { source };
    for id in graph.node_ids() {
        let node = graph.node(id);
        let new = match &node.op {
            Op::Input { name } => g.input(name, node.ty.clone()),
            Op::Parameter { name, trainable } => g.parameter(name, node.ty.clone(), *trainable),
            op if id.index() < forward_len => {
                let inputs: Vec<NodeId> = node.inputs.iter().map(|x| segments.map[x.index()]).collect();
                g.add(op.clone(), &inputs).map_err(err)?
            }
            op => {
                let mut inputs = Vec::with_capacity(node.inputs.len());
                for &x in &node.inputs {
                    inputs.push(if segments.recomputes(x) {
                        segments.copy_of(&mut g, x)?
                    } else {
                        segments.map[x.index()]
                    });
                }
                g.add(op.clone(), &inputs).map_err(err)?
            }
        };
        segments.map.push(new);
    }
    for (name, id) in graph.outputs() {
        g.set_output(name, segments.map[id.index()]);
    }
    let report = Checkpointing {
        checkpoints: segments.is_checkpoint.iter().filter(|&&c| c).count(),
        recomputed: segments.recomputed,
    };
    let graph = g.validate().map_err(err)?;
    Ok((Gradients { graph, ..step }, report))
}

/// `activation[i]`: forward node `i` is computed, not a leaf, and depends on
/// a run-time input.
fn activations(graph: &Graph, forward_len: usize) -> Vec<bool> {
    let mut from_input = vec![false; forward_len];
    let mut activation = vec![false; forward_len];
    for id in graph.node_ids().take(forward_len) {
        let node = graph.node(id);
        let i = id.index();
        from_input[i] =
            matches!(node.op, Op::Input { .. }) || node.inputs.iter().any(|x| from_input[x.index()]);
        activation[i] = from_input[i] && node.op.leaf_name().is_none();
    }
    activation
}

/// `checkpoint[i]`: activation `i` is the only activation defined at or
/// before it that a later forward node reads (or that is an output).
fn checkpoints(graph: &Graph, forward_len: usize, activation: &[bool]) -> Vec<bool> {
    // last_read[i]: the last forward node reading i; an output lives to the end.
    let mut last_read: Vec<usize> = (0..forward_len).collect();
    for id in graph.node_ids().take(forward_len) {
        for x in &graph.node(id).inputs {
            last_read[x.index()] = last_read[x.index()].max(id.index());
        }
    }
    for (_, id) in graph.outputs() {
        if id.index() < forward_len {
            last_read[id.index()] = forward_len;
        }
    }
    // Activation i is live after positions i..last_read[i].
    let mut change = vec![0i64; forward_len + 1];
    for i in (0..forward_len).filter(|&i| activation[i] && last_read[i] > i) {
        change[i] += 1;
        change[last_read[i]] -= 1;
    }
    let mut live = 0;
    (0..forward_len)
        .map(|i| {
            live += change[i];
            activation[i] && last_read[i] > i && live == 1
        })
        .collect()
}

/// Thins the checkpoints to one per attention, the first after it (a
/// layer's sum after attention), as transformers keeps one per layer: the
/// backward pass then recomputes an MLP and the next layer's attention from
/// each, and the step keeps half the checkpoints' memory (at hidden 4096 and
/// T = 8192, 128 MiB per layer) for one more `o_proj` matmul and residual add
/// per layer. Of the checkpoints before the first attention the last is kept
/// (the first layer's input), and after the last attention all (the final
/// norm and the logits: recomputing the logits would cost a vocabulary-wide
/// matmul and save nothing). Keeping each layer's input instead measured
/// 4–5% more memory. A graph without attention keeps every checkpoint.
fn one_per_attention(graph: &Graph, forward_len: usize, is_checkpoint: &mut [bool]) {
    let attentions: Vec<usize> = graph
        .node_ids()
        .take(forward_len)
        .filter(|&id| matches!(graph.node(id).op, Op::Attention { .. } | Op::FusedAttention { .. }))
        .map(NodeId::index)
        .collect();
    let (Some(&first), Some(&last)) = (attentions.first(), attentions.last()) else { return };
    let kept: Vec<usize> = (0..forward_len).filter(|&i| is_checkpoint[i]).collect();
    for (j, &c) in kept.iter().enumerate() {
        let keep = if c < first {
            // The last checkpoint before the first attention.
            kept.get(j + 1).is_none_or(|&next| next > first)
        } else if c > last {
            true
        } else {
            // The first checkpoint after an attention.
            j > 0 && attentions.iter().any(|&a| kept[j - 1] < a && a < c)
        };
        is_checkpoint[c] = keep;
    }
}

/// The step being rebuilt: which forward nodes the backward pass recomputes,
/// and the copies made so far.
struct Segments<'a> {
    graph: &'a Graph,
    activation: Vec<bool>,
    is_checkpoint: Vec<bool>,
    /// map[i]: node i's node in the new graph; forward nodes keep their ids.
    map: Vec<NodeId>,
    /// copy[i]: the backward pass's copy of forward node i, once made.
    copy: Vec<Option<NodeId>>,
    recomputed: usize,
}

impl Segments<'_> {
    /// Whether the backward pass reads its own copy of node `x`: a forward
    /// activation that is not a checkpoint.
    fn recomputes(&self, x: NodeId) -> bool {
        x.index() < self.activation.len() && self.activation[x.index()] && !self.is_checkpoint[x.index()]
    }

    /// The backward pass's copy of forward activation `id`, made in `g` (with
    /// the copies of the activations it reads) on first use.
    fn copy_of(&mut self, g: &mut Graph, id: NodeId) -> Result<NodeId, AutodiffError> {
        // Iterative, operands first: a segment can be hundreds of nodes deep.
        let mut stack = vec![(id, false)];
        while let Some((x, expanded)) = stack.pop() {
            if self.copy[x.index()].is_some() {
                continue;
            }
            let node = self.graph.node(x);
            if !expanded {
                stack.push((x, true));
                for &y in node.inputs.iter().rev() {
                    if self.recomputes(y) && self.copy[y.index()].is_none() {
                        stack.push((y, false));
                    }
                }
                continue;
            }
            let inputs: Vec<NodeId> = node
                .inputs
                .iter()
                .map(|&y| match self.copy.get(y.index()).copied().flatten() {
                    Some(copy) if self.recomputes(y) => copy,
                    _ => self.map[y.index()],
                })
                .collect();
            let new = g.add(node.op.clone(), &inputs).map_err(|source| AutodiffError::Graph { source })?;
            self.copy[x.index()] = Some(new);
            self.recomputed += 1;
        }
        Ok(self.copy[id.index()].unwrap_or(self.map[id.index()]))
    }
}
