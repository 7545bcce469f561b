//! Which node of each e-class extraction takes, priced as a DAG.
//!
//! egg's `Extractor` prices a term as a tree: a value read twice is paid
//! twice. A transformer reads its residual stream several times per layer
//! (the norm, the residual add, and through the norm q, k, v and the LoRA
//! paths), so a tree price grows by some 30x per layer, and by the tenth
//! layer of a whole model the difference between a fused attention and a
//! dense one (1e10) is below the f64 resolution of the subterm prices
//! (1e30): the choice became a tie, and the last layers kept their N×N
//! scores. Here a node's price is its own cost plus the own costs of every
//! distinct class its cheapest sub-DAG uses, each once (the greedy DAG
//! extraction of extraction-gym), so prices stay within the graph's real
//! cost and the choice stays exact at any depth.

use std::collections::{HashMap, HashSet, VecDeque};

use egg::{Id, Language};

use super::analysis::WeftGraph;
use super::lang::Weft;

/// One class's choice: the node, its own cost, and the classes of the DAG
/// below it with their chosen nodes' own costs.
struct Choice {
    node: Weft,
    own: f64,
    below: HashMap<Id, f64>,
    total: f64,
}

impl Choice {
    /// Cheaper total first; of two equal totals, the smaller DAG (so
    /// `reshape(x)` wins over `reshape(reshape(x))`).
    fn better_than(&self, other: &Choice) -> bool {
        (self.total, self.below.len()) < (other.total, other.below.len())
    }
}

/// The chosen node of every class that has a finite-cost node whose
/// children all have one; `own_cost(class, node)` prices a node alone.
pub(crate) fn choose_nodes(
    egraph: &WeftGraph,
    mut own_cost: impl FnMut(Id, &Weft) -> f64,
) -> HashMap<Id, Weft> {
    // parents[c]: the classes with a node that reads class c.
    let mut parents: HashMap<Id, Vec<Id>> = HashMap::new();
    for class in egraph.classes() {
        for node in &class.nodes {
            for &child in node.children() {
                parents.entry(egraph.find(child)).or_default().push(class.id);
            }
        }
    }
    let mut best: HashMap<Id, Choice> = HashMap::new();
    let mut queue: VecDeque<Id> = egraph.classes().map(|c| c.id).collect();
    let mut queued: HashSet<Id> = queue.iter().copied().collect();
    while let Some(class) = queue.pop_front() {
        queued.remove(&class);
        let mut improved = false;
        for node in &egraph[class].nodes {
            let Some(candidate) = price(egraph, class, node, &best, &mut own_cost) else { continue };
            if best.get(&class).is_none_or(|current| candidate.better_than(current)) {
                best.insert(class, candidate);
                improved = true;
            }
        }
        if improved {
            for &parent in parents.get(&class).into_iter().flatten() {
                if queued.insert(parent) {
                    queue.push_back(parent);
                }
            }
        }
    }
    best.into_iter().map(|(class, choice)| (class, choice.node)).collect()
}

/// `node`'s choice, if every child class has one, its cost is finite, and
/// its DAG does not run through its own class (a cycle).
fn price(
    egraph: &WeftGraph,
    class: Id,
    node: &Weft,
    best: &HashMap<Id, Choice>,
    own_cost: &mut impl FnMut(Id, &Weft) -> f64,
) -> Option<Choice> {
    let own = own_cost(class, node);
    if !own.is_finite() {
        return None;
    }
    let mut below: HashMap<Id, f64> = HashMap::new();
    for &child in node.children() {
        let child = egraph.find(child);
        let choice = best.get(&child)?;
        below.insert(child, choice.own);
        for (&c, &cost) in &choice.below {
            below.insert(c, cost);
        }
    }
    if below.contains_key(&class) {
        return None;
    }
    let total = own + below.values().sum::<f64>();
    Some(Choice { node: node.clone(), own, below, total })
}
