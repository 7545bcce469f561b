//! The tensor dataflow graph: typed nodes behind [`NodeId`] handles.
//!
//! A [`Graph`] is built through [`Graph::add`] (or the convenience builders),
//! which infers every node's type and rejects ill-typed ops at once. The text
//! parser and the mutation methods can produce graphs that are not valid, so
//! consumers take a [`ValidGraph`], which only [`Graph::validate`] makes.
//!
//! - `types.rs`: [`DType`] and [`TensorType`];
//! - `op.rs`: [`Op`] and its one-line display;
//! - `rope.rs`: RoPE's angles, [`RopeParams`] and [`RopeFreqs`];
//! - `infer.rs`: shape inference shared by the builder, validator and parser;
//! - `validate.rs`: whole-graph checks;
//! - `sexpr/`: the s-expression text format;
//! - `dot.rs`: Graphviz output.

mod dot;
mod error;
mod infer;
mod op;
mod rope;
mod sexpr;
mod types;
mod unary;
mod validate;

#[cfg(test)]
pub(crate) mod tests;

use std::fmt;
use std::ops::Deref;

use petgraph::stable_graph::{NodeIndex, StableGraph};

pub use error::GraphError;
pub use op::{Arity, AttentionGrad, HeadMask, HeadRange, Op};
pub use rope::{RopeFreqs, RopeParams};
pub use sexpr::parse_sexpr;
pub use types::{DType, TensorType};
pub use unary::UnaryOp;

use crate::mask::Mask;
use infer::Problem;

/// A handle to a node of one [`Graph`]; displayed as `%3`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(u32);

impl NodeId {
    /// The position of the node in insertion order, for indexing per-node tables.
    pub fn index(self) -> usize {
        self.0 as usize
    }

    fn to_petgraph(self) -> NodeIndex {
        NodeIndex::new(self.index())
    }

    /// Kept private: the public API speaks `NodeId`, never petgraph indices.
    fn from_petgraph(ix: NodeIndex) -> Self {
        NodeId(ix.index() as u32)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "%{}", self.0)
    }
}

/// An op applied to operands, with its inferred type.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub op: Op,
    pub inputs: Vec<NodeId>,
    pub ty: TensorType,
}

/// `roll(axis=2, shift=-8): f32[2, 4, 64, 16]`.
impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.op, self.ty)
    }
}

/// A named dataflow graph with ordered, named outputs.
///
/// Nodes live in a petgraph [`StableGraph`] whose edges run from operand to
/// user, weighted by the operand slot; `Node::inputs` holds the same
/// information in slot order. Nodes are never removed, so insertion order is
/// the [`NodeId`] order.
#[derive(Clone, Debug)]
pub struct Graph {
    name: String,
    graph: StableGraph<Node, usize>,
    outputs: Vec<(String, NodeId)>,
}

/// Two graphs are equal when they have the same name, the same nodes in the same
/// order and the same outputs.
impl PartialEq for Graph {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
            && self.outputs == other.outputs
            && self.len() == other.len()
            && self.node_ids().zip(other.node_ids()).all(|(a, b)| a == b && self.node(a) == other.node(b))
    }
}

impl Graph {
    pub fn new(name: impl Into<String>) -> Self {
        Graph { name: name.into(), graph: StableGraph::default(), outputs: Vec::new() }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Declares a run-time input; its type is checked by [`Graph::validate`].
    pub fn input(&mut self, name: &str, ty: TensorType) -> NodeId {
        self.push(Node { op: Op::Input { name: name.to_string() }, inputs: Vec::new(), ty })
    }

    /// Declares a weight; its type is checked by [`Graph::validate`].
    pub fn parameter(&mut self, name: &str, ty: TensorType, trainable: bool) -> NodeId {
        self.push(Node { op: Op::Parameter { name: name.to_string(), trainable }, inputs: Vec::new(), ty })
    }

    /// Appends `op` applied to `inputs`, inferring its type.
    ///
    /// Fails (leaving the graph unchanged) if an operand is not a node of this
    /// graph or the operands do not fit the op. Inputs and parameters go
    /// through [`Graph::input`] and [`Graph::parameter`], which know their type.
    pub fn add(&mut self, op: Op, inputs: &[NodeId]) -> Result<NodeId, GraphError> {
        let next = NodeId(self.graph.node_count() as u32);
        let ty = self.infer_node(Some(next), &op, inputs)?;
        Ok(self.push(Node { op, inputs: inputs.to_vec(), ty }))
    }

    /// The type `op` would have on `inputs`; `node` only labels errors.
    pub(crate) fn infer_node(
        &self,
        node: Option<NodeId>,
        op: &Op,
        inputs: &[NodeId],
    ) -> Result<TensorType, GraphError> {
        let mut operands = Vec::with_capacity(inputs.len());
        for &operand in inputs {
            match self.get(operand) {
                Some(n) => operands.push(&n.ty),
                None => {
                    let node = node.unwrap_or(NodeId(self.graph.node_count() as u32));
                    return Err(GraphError::UnknownOperand { node, operand });
                }
            }
        }
        infer::infer(op, &operands).map_err(|problem| match problem {
            Problem::Arity(expected) => {
                GraphError::Arity { node, op: op.name(), expected, found: inputs.len() }
            }
            Problem::Invalid(reason) => GraphError::Type {
                node,
                op: op.name(),
                operands: operands.iter().map(|&t| t.clone()).collect(),
                reason,
            },
        })
    }

    fn push(&mut self, node: Node) -> NodeId {
        let inputs = node.inputs.clone();
        let id = NodeId::from_petgraph(self.graph.add_node(node));
        self.connect(id, &inputs);
        id
    }

    /// Adds the operand edges of `id`; ids that are not nodes get no edge (the validator reports them).
    fn connect(&mut self, id: NodeId, inputs: &[NodeId]) {
        for (slot, &operand) in inputs.iter().enumerate() {
            if self.contains(operand) {
                self.graph.add_edge(operand.to_petgraph(), id.to_petgraph(), slot);
            }
        }
    }

    /// Names `node` as an output; a second call with the same name replaces the node.
    pub fn set_output(&mut self, name: &str, node: NodeId) {
        match self.outputs.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = node,
            None => self.outputs.push((name.to_string(), node)),
        }
    }

    pub fn outputs(&self) -> &[(String, NodeId)] {
        &self.outputs
    }

    /// The node `id`.
    ///
    /// # Panics
    /// If `id` is not a node of this graph (a handle from another graph); use
    /// [`Graph::get`] when that is possible.
    pub fn node(&self, id: NodeId) -> &Node {
        &self.graph[id.to_petgraph()]
    }

    pub fn get(&self, id: NodeId) -> Option<&Node> {
        self.graph.node_weight(id.to_petgraph())
    }

    pub fn contains(&self, id: NodeId) -> bool {
        self.graph.contains_node(id.to_petgraph())
    }

    /// Every node in insertion order, which [`Graph::validate`] guarantees is topological.
    pub fn node_ids(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.graph.node_indices().map(NodeId::from_petgraph)
    }

    /// The nodes that use `id`, with the operand slot, in no particular order.
    pub fn users(&self, id: NodeId) -> impl Iterator<Item = (NodeId, usize)> + '_ {
        use petgraph::visit::EdgeRef;
        self.graph
            .edges_directed(id.to_petgraph(), petgraph::Direction::Outgoing)
            .map(|e| (NodeId::from_petgraph(e.target()), *e.weight()))
    }

    pub fn len(&self) -> usize {
        self.graph.node_count()
    }

    pub fn is_empty(&self) -> bool {
        self.graph.node_count() == 0
    }

    /// The input and parameter nodes with their names, in insertion order.
    pub fn leaves(&self) -> impl Iterator<Item = (NodeId, &str)> + '_ {
        self.node_ids().filter_map(|id| self.node(id).op.leaf_name().map(|name| (id, name)))
    }

    /// Rewires `id` to `inputs` without re-inferring its type, for rewrites;
    /// [`Graph::validate`] re-checks the result. Returns false if `id` is not a node.
    pub fn replace_inputs(&mut self, id: NodeId, inputs: &[NodeId]) -> bool {
        let ix = id.to_petgraph();
        let Some(node) = self.graph.node_weight_mut(ix) else {
            return false;
        };
        node.inputs = inputs.to_vec();
        use petgraph::visit::EdgeRef;
        let old: Vec<_> =
            self.graph.edges_directed(ix, petgraph::Direction::Incoming).map(|e| e.id()).collect();
        for edge in old {
            self.graph.remove_edge(edge);
        }
        self.connect(id, inputs);
        true
    }

    /// Replaces the op of `id` without re-inferring its type, for rewrites;
    /// [`Graph::validate`] re-checks the result. Returns false if `id` is not a node.
    pub fn replace_op(&mut self, id: NodeId, op: Op) -> bool {
        match self.graph.node_weight_mut(id.to_petgraph()) {
            Some(node) => {
                node.op = op;
                true
            }
            None => false,
        }
    }
}

/// Convenience builders: each is [`Graph::add`] with the op spelled out.
impl Graph {
    pub fn matmul(
        &mut self,
        a: NodeId,
        b: NodeId,
        transpose_a: bool,
        transpose_b: bool,
    ) -> Result<NodeId, GraphError> {
        self.add(Op::MatMul { transpose_a, transpose_b }, &[a, b])
    }

    /// Elementwise `a + b` (named so as not to clash with [`Graph::add`]).
    pub fn elementwise_add(&mut self, a: NodeId, b: NodeId) -> Result<NodeId, GraphError> {
        self.add(Op::Add, &[a, b])
    }

    /// Elementwise `a * b`.
    pub fn elementwise_mul(&mut self, a: NodeId, b: NodeId) -> Result<NodeId, GraphError> {
        self.add(Op::Mul, &[a, b])
    }

    pub fn scale(&mut self, x: NodeId, factor: f64) -> Result<NodeId, GraphError> {
        self.add(Op::Scale { factor }, &[x])
    }

    pub fn exp(&mut self, x: NodeId) -> Result<NodeId, GraphError> {
        self.add(Op::Unary(UnaryOp::Exp), &[x])
    }

    pub fn log(&mut self, x: NodeId) -> Result<NodeId, GraphError> {
        self.add(Op::Unary(UnaryOp::Log), &[x])
    }

    pub fn silu(&mut self, x: NodeId) -> Result<NodeId, GraphError> {
        self.add(Op::Unary(UnaryOp::Silu), &[x])
    }

    pub fn reshape(&mut self, x: NodeId, shape: &[usize]) -> Result<NodeId, GraphError> {
        self.add(Op::Reshape { shape: shape.to_vec() }, &[x])
    }

    pub fn permute(&mut self, x: NodeId, perm: &[usize]) -> Result<NodeId, GraphError> {
        self.add(Op::Permute { perm: perm.to_vec() }, &[x])
    }

    pub fn roll(
        &mut self,
        x: NodeId,
        axis: usize,
        shift: i64,
        heads: Option<HeadRange>,
    ) -> Result<NodeId, GraphError> {
        self.add(Op::Roll { axis, shift, heads }, &[x])
    }

    pub fn slice(&mut self, x: NodeId, axis: usize, start: usize, end: usize) -> Result<NodeId, GraphError> {
        self.add(Op::Slice { axis, start, end }, &[x])
    }

    pub fn concat(&mut self, xs: &[NodeId], axis: usize) -> Result<NodeId, GraphError> {
        self.add(Op::Concat { axis }, xs)
    }

    pub fn softmax(&mut self, x: NodeId, axis: usize) -> Result<NodeId, GraphError> {
        self.add(Op::Softmax { axis }, &[x])
    }

    /// `y * (dy - sum(y * dy, axis))`, with `y` a softmax along `axis`.
    pub fn softmax_grad(&mut self, y: NodeId, dy: NodeId, axis: usize) -> Result<NodeId, GraphError> {
        self.add(Op::SoftmaxGrad { axis }, &[y, dy])
    }

    pub fn masked_softmax(
        &mut self,
        scores: NodeId,
        mask: Mask,
        head_offset: usize,
        scale: f64,
    ) -> Result<NodeId, GraphError> {
        self.add(Op::MaskedSoftmax { mask, head_offset, scale }, &[scores])
    }

    pub fn broadcast(&mut self, x: NodeId, axis: usize, size: usize) -> Result<NodeId, GraphError> {
        self.add(Op::Broadcast { axis, size }, &[x])
    }

    pub fn pad(&mut self, x: NodeId, axis: usize, before: usize, after: usize) -> Result<NodeId, GraphError> {
        self.add(Op::Pad { axis, before, after }, &[x])
    }

    pub fn reduce_sum(&mut self, x: NodeId, axis: usize) -> Result<NodeId, GraphError> {
        self.add(Op::ReduceSum { axis }, &[x])
    }

    pub fn reduce_max(&mut self, x: NodeId, axis: usize) -> Result<NodeId, GraphError> {
        self.add(Op::ReduceMax { axis }, &[x])
    }

    pub fn reduce_mean(&mut self, x: NodeId, axis: usize) -> Result<NodeId, GraphError> {
        self.add(Op::ReduceMean { axis }, &[x])
    }

    pub fn rms_norm(&mut self, x: NodeId, weight: NodeId, eps: f64) -> Result<NodeId, GraphError> {
        self.add(Op::RmsNorm { eps }, &[x, weight])
    }

    /// RoPE with the default frequencies.
    pub fn rope(&mut self, x: NodeId, theta: f64, position_scale: f64) -> Result<NodeId, GraphError> {
        self.rope_with(x, RopeParams::new(theta, position_scale))
    }

    pub fn rope_with(&mut self, x: NodeId, rope: RopeParams) -> Result<NodeId, GraphError> {
        let RopeParams { theta, position_scale, freqs } = rope;
        self.add(Op::Rope { theta, position_scale, freqs }, &[x])
    }

    pub fn attention(
        &mut self,
        q: NodeId,
        k: NodeId,
        v: NodeId,
        mask: Mask,
        head_offset: usize,
        scale: f64,
    ) -> Result<NodeId, GraphError> {
        self.add(Op::Attention { mask, head_offset, scale }, &[q, k, v])
    }

    pub fn fused_attention(
        &mut self,
        q: NodeId,
        k: NodeId,
        v: NodeId,
        heads: Vec<HeadMask>,
        scale: f64,
    ) -> Result<NodeId, GraphError> {
        self.add(Op::FusedAttention { heads, scale, rope: None }, &[q, k, v])
    }
}

/// A graph that passed [`Graph::validate`]: every id resolves, nodes are in
/// topological order, every type is what inference gives, names are unique
/// and there is at least one output.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidGraph(Graph);

impl ValidGraph {
    pub fn into_inner(self) -> Graph {
        self.0
    }
}

impl Deref for ValidGraph {
    type Target = Graph;

    fn deref(&self) -> &Graph {
        &self.0
    }
}
