//! Whole-graph checks: everything the builder checks, plus what only a whole
//! graph can get wrong (cycles, order, names, outputs).

use std::collections::HashMap;

use super::infer;
use super::{Graph, GraphError, NodeId, ValidGraph};

impl Graph {
    /// Checks the graph and wraps it as a [`ValidGraph`].
    ///
    /// Re-infers every node's type rather than trusting it, because the parser
    /// and the mutation methods store types and operands as given.
    pub fn validate(self) -> Result<ValidGraph, GraphError> {
        self.check()?;
        Ok(ValidGraph(self))
    }

    /// What [`Graph::validate`] checks, without consuming the graph.
    pub fn check(&self) -> Result<(), GraphError> {
        self.check_operands_exist()?;
        if let Err(cycle) = petgraph::algo::toposort(&self.graph, None) {
            return Err(GraphError::Cycle { node: NodeId::from_petgraph(cycle.node_id()) });
        }
        self.check_order()?;
        self.check_types()?;
        self.check_names()?;
        self.check_outputs()
    }

    fn check_operands_exist(&self) -> Result<(), GraphError> {
        for id in self.node_ids() {
            if let Some(&operand) = self.node(id).inputs.iter().find(|&&x| !self.contains(x)) {
                return Err(GraphError::UnknownOperand { node: id, operand });
            }
        }
        Ok(())
    }

    /// Insertion order must be topological: consumers iterate `node_ids` and
    /// expect every operand to be computed already.
    fn check_order(&self) -> Result<(), GraphError> {
        for id in self.node_ids() {
            if let Some(&operand) = self.node(id).inputs.iter().find(|&&x| x >= id) {
                return Err(GraphError::OutOfOrder { node: id, operand });
            }
        }
        Ok(())
    }

    fn check_types(&self) -> Result<(), GraphError> {
        for id in self.node_ids() {
            let node = self.node(id);
            let op = node.op.name();
            let inferred = if node.op.leaf_name().is_some() {
                if !node.inputs.is_empty() {
                    let expected = node.op.arity();
                    return Err(GraphError::Arity { node: Some(id), op, expected, found: node.inputs.len() });
                }
                match infer::check_leaf(&node.ty) {
                    Ok(()) => continue,
                    Err(reason) => {
                        return Err(GraphError::Type { node: Some(id), op, operands: Vec::new(), reason });
                    }
                }
            } else {
                self.infer_node(Some(id), &node.op, &node.inputs)?
            };
            if inferred != node.ty {
                return Err(GraphError::TypeMismatch {
                    node: Some(id),
                    op,
                    declared: node.ty.clone(),
                    inferred,
                });
            }
        }
        Ok(())
    }

    /// Inputs and parameters are fed by name, so a name must pick out one node.
    fn check_names(&self) -> Result<(), GraphError> {
        let mut seen: HashMap<&str, NodeId> = HashMap::new();
        for (id, name) in self.leaves() {
            if let Some(&first) = seen.get(name) {
                return Err(GraphError::DuplicateName { name: name.to_string(), first, second: id });
            }
            seen.insert(name, id);
        }
        Ok(())
    }

    fn check_outputs(&self) -> Result<(), GraphError> {
        if self.outputs.is_empty() {
            return Err(GraphError::NoOutputs { graph: self.name.clone() });
        }
        for (i, (name, node)) in self.outputs.iter().enumerate() {
            if !self.contains(*node) {
                return Err(GraphError::UnknownOutput { name: name.clone(), node: *node });
            }
            if self.outputs[..i].iter().any(|(n, _)| n == name) {
                return Err(GraphError::DuplicateOutput { name: name.clone() });
            }
        }
        Ok(())
    }
}
