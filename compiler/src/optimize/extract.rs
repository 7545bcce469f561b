//! Extraction: the cheapest term of every output under [`CostModel`], turned
//! back into a `weft_ir` graph. Tensor classes take the node `dag.rs`
//! chooses (priced as a DAG, each shared value once); attribute classes
//! (masks, sizes) their cheapest term as egg's extractor finds it.

use std::collections::HashMap;

use egg::{CostFunction, Extractor, Id, Language, RecExpr};
use weft_ir::graph::{Graph, NodeId, Op, TensorType, ValidGraph};

use super::analysis::{Data, WeftGraph, data_of, to_op};
use super::cost::CostModel;
use super::lang::Weft;

/// The extraction cost of a term: its total cost, then its size, so that of
/// two equally cheap terms the smaller wins (`reshape(x)` over
/// `reshape(reshape(x))`, a mask without a `roll(0, ...)`).
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
pub struct ExtractCost {
    pub total: f64,
    pub nodes: usize,
}

impl ExtractCost {
    /// The tree cost of a term on its own, for tests and reports.
    pub fn of_expr(expr: &RecExpr<Weft>, model: &CostModel) -> ExtractCost {
        let data = expr_data(expr);
        let mut costs: Vec<ExtractCost> = Vec::with_capacity(expr.len());
        for (i, node) in expr.as_ref().iter().enumerate() {
            let own = own_cost(node, &|id| &data[usize::from(id)], data[i].tensor(), model);
            costs.push(add_children(own, node, |id| costs[usize::from(id)]));
        }
        costs.last().copied().unwrap_or(ExtractCost { total: 0.0, nodes: 0 })
    }
}

fn add_children(own: f64, node: &Weft, mut child: impl FnMut(Id) -> ExtractCost) -> ExtractCost {
    node.fold(ExtractCost { total: own, nodes: 1 }, |acc, id| {
        let c = child(id);
        ExtractCost { total: acc.total + c.total, nodes: acc.nodes.saturating_add(c.nodes) }
    })
}

/// The cost of `node` itself: its op's for tensor nodes, nothing for attributes.
/// A node that does not make sense costs infinitely much, so it is never extracted.
fn own_cost<'a>(
    node: &Weft,
    child: &impl Fn(Id) -> &'a Data,
    out: Option<&TensorType>,
    model: &CostModel,
) -> f64 {
    if !node.is_tensor() {
        return 0.0;
    }
    let Ok((op, operands)) = to_op(node, child) else { return f64::INFINITY };
    let types: Option<Vec<&TensorType>> = operands.iter().map(|&id| child(id).tensor()).collect();
    match (types, out) {
        (Some(types), Some(out)) => model.op_cost(&op, &types, out).total(),
        _ => f64::INFINITY,
    }
}

/// The data of every node of a term, computed as the analysis would.
pub fn expr_data(expr: &RecExpr<Weft>) -> Vec<Data> {
    let mut data: Vec<Data> = Vec::with_capacity(expr.len());
    for node in expr.as_ref() {
        let d = data_of(node, |id| &data[usize::from(id)]);
        data.push(d);
    }
    data
}

/// [`CostModel`] on e-nodes; a node's own cost depends only on its children's
/// classes, so it is computed once.
pub struct WeftCost<'a> {
    egraph: &'a WeftGraph,
    model: &'a CostModel,
    own: HashMap<Weft, f64>,
}

impl<'a> WeftCost<'a> {
    pub fn new(egraph: &'a WeftGraph, model: &'a CostModel) -> Self {
        WeftCost { egraph, model, own: HashMap::new() }
    }
}

impl CostFunction<Weft> for WeftCost<'_> {
    type Cost = ExtractCost;

    fn cost<C>(&mut self, enode: &Weft, costs: C) -> ExtractCost
    where
        C: FnMut(Id) -> ExtractCost,
    {
        let own = match self.own.get(enode) {
            Some(&c) => c,
            None => {
                let egraph = self.egraph;
                let out = egraph.lookup(enode.clone()).and_then(|id| egraph[id].data.tensor());
                let c = own_cost(enode, &|id| &egraph[id].data, out, self.model);
                self.own.insert(enode.clone(), c);
                c
            }
        };
        add_children(own, enode, costs)
    }
}

/// Builds the cheapest graph for `outputs` (output name, e-class). The leaves
/// of `original` are declared first, in their order, whether used or not, so
/// the result takes the same inputs.
pub fn extract_graph(
    egraph: &WeftGraph,
    model: &CostModel,
    original: &ValidGraph,
    leaf_classes: &[(NodeId, Id)],
    outputs: &[(String, Id)],
) -> Result<Graph, (String, String)> {
    let extractor = Extractor::new(egraph, WeftCost::new(egraph, model));
    let chosen = super::dag::choose_nodes(egraph, |class, node| {
        own_cost(node, &|id| &egraph[id].data, egraph[class].data.tensor(), model)
    });
    let mut builder =
        Builder { egraph, extractor, chosen, graph: Graph::new(original.name()), memo: HashMap::new() };
    for &(id, class) in leaf_classes {
        let node = original.node(id);
        let new = match &node.op {
            Op::Input { name } => builder.graph.input(name, node.ty.clone()),
            Op::Parameter { name, trainable } => builder.graph.parameter(name, node.ty.clone(), *trainable),
            _ => continue,
        };
        builder.memo.insert(egraph.find(class), new);
    }
    for (name, class) in outputs {
        let node = builder.tensor(*class).map_err(|reason| (name.clone(), reason))?;
        builder.graph.set_output(name, node);
    }
    Ok(builder.graph)
}

struct Builder<'a> {
    egraph: &'a WeftGraph,
    extractor: Extractor<'a, WeftCost<'a>, Weft, super::analysis::WeftAnalysis>,
    /// Each tensor class's node, chosen by DAG cost.
    chosen: HashMap<Id, Weft>,
    graph: Graph,
    /// E-class -> the graph node computing it.
    memo: HashMap<Id, NodeId>,
}

impl Builder<'_> {
    fn tensor(&mut self, class: Id) -> Result<NodeId, String> {
        let class = self.egraph.find(class);
        if let Some(&id) = self.memo.get(&class) {
            return Ok(id);
        }
        let Some(node) = self.chosen.get(&class).cloned() else {
            return Err(format!("e-class {class} has no node of finite cost"));
        };
        // Attributes and masks come from their own cheapest terms, tensors from the graph being built.
        let mut child_data: HashMap<Id, Data> = HashMap::new();
        for &c in node.children() {
            let c = self.egraph.find(c);
            let data = match &self.egraph[c].data {
                Data::Tensor(t) => Data::Tensor(t.clone()),
                _ => self.attribute(c),
            };
            child_data.insert(c, data);
        }
        let missing = Data::Invalid("a child without data".into());
        let egraph = self.egraph;
        let (op, operands) = to_op(&node, &|id| child_data.get(&egraph.find(id)).unwrap_or(&missing))?;
        if op.leaf_name().is_some() {
            return Err(format!("`{op}` is not an input of the original graph"));
        }
        let mut inputs = Vec::with_capacity(operands.len());
        for operand in operands {
            inputs.push(self.tensor(operand)?);
        }
        let id = self.graph.add(op, &inputs).map_err(|e| e.to_string())?;
        self.memo.insert(class, id);
        Ok(id)
    }

    /// The data of the cheapest term of an attribute class.
    fn attribute(&self, class: Id) -> Data {
        let (_, expr) = self.extractor.find_best(class);
        expr_data(&expr).pop().unwrap_or(Data::Invalid("an empty term".into()))
    }
}
