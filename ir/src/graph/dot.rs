//! Graphviz output through `petgraph::dot`.

use petgraph::dot::{Config, Dot};
use petgraph::visit::EdgeRef;

use super::{Graph, NodeId};

impl Graph {
    /// The graph in Graphviz DOT: one box per node labelled with its id, op and
    /// type; leaves are ellipses, outputs have a double border and their names.
    pub fn to_dot(&self) -> String {
        let node_attrs = |_, (ix, node): (petgraph::stable_graph::NodeIndex, &super::Node)| {
            let id = NodeId::from_petgraph(ix);
            let mut label = format!("{id} {}\n{}", node.op, node.ty);
            let names: Vec<&str> =
                self.outputs.iter().filter(|(_, n)| *n == id).map(|(name, _)| name.as_str()).collect();
            if !names.is_empty() {
                label.push_str(&format!("\noutput {}", names.join(", ")));
            }
            let mut attrs = format!("label = \"{}\"", escape(&label));
            if node.op.leaf_name().is_some() {
                attrs.push_str(" shape = ellipse");
            }
            if !names.is_empty() {
                attrs.push_str(" peripheries = 2");
            }
            attrs
        };
        // Slots matter only when a node has several operands.
        let edge_attrs = |_, edge: petgraph::stable_graph::EdgeReference<'_, usize>| {
            let arity = self.graph.node_weight(edge.target()).map_or(0, |n| n.inputs.len());
            if arity > 1 { format!("label = \"{}\"", edge.weight()) } else { String::new() }
        };
        let config = [Config::NodeNoLabel, Config::EdgeNoLabel, Config::GraphContentOnly];
        let body = Dot::with_attr_getters(&self.graph, &config, &edge_attrs, &node_attrs);
        format!(
            "digraph \"{}\" {{\n    node [shape = box, fontname = \"monospace\"]\n{body}}}\n",
            escape(&self.name)
        )
    }
}

/// Escapes a DOT string; newlines become centred line breaks.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}
