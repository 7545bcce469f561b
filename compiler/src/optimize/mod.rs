//! The e-graph optimizer: a validated graph goes into an egg e-graph, rewrite
//! rules (one file per concern under [`rules`]) add equivalent forms, and the
//! cheapest form under the [`cost`] model comes back out as a graph with the
//! same inputs and outputs.
//!
//! The main job is LongLoRA's and LongGen's reference graphs: rolls, grouped
//! reshapes, per-head slices and dense attention fuse into one
//! [`Op::FusedAttention`](weft_ir::graph::Op::FusedAttention) node whose
//! per-head masks carry everything those ops did.
//!
//! - `lang.rs`: the e-graph language (ops, masks and sizes as terms);
//! - `analysis.rs`: types, sizes and mask facts per e-class;
//! - `terms.rs`: masks and sizes as terms, in a normal form;
//! - `rules/`: the rewrites;
//! - `cost.rs`: bytes + FLOPs + launches;
//! - `convert.rs`, `extract.rs`: graph to e-graph and back; `dag.rs`: which
//!   node of each e-class extraction takes, priced as a DAG.

pub mod analysis;
pub mod cost;
pub mod extract;
pub mod lang;
pub mod rules;
pub mod terms;

mod convert;
mod dag;

use std::time::Duration;

use egg::{Runner, StopReason};
use weft_ir::graph::{GraphError, NodeId, ValidGraph};

pub use cost::{Cost, CostModel};
pub use lang::Weft;

/// Limits of one optimization run; egg stops at whichever comes first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OptimizeOptions {
    /// E-nodes in the e-graph.
    pub node_limit: usize,
    /// Rounds of rule application.
    pub iter_limit: usize,
    pub time_limit: Duration,
    /// The graph will be differentiated afterwards, so rules that merge a
    /// trainable parameter into a larger tensor stay off: `lora-fold` would
    /// route LoRA's gradients through a full `out × in` weight gradient.
    pub training: bool,
    /// Fold RoPE into the loads of fused attention (`rules/rope.rs`). Off by
    /// default: on lavapipe the folded kernels measured slower than the two
    /// rope kernels they replace (every query block that visits a key tile
    /// rotates it again, and the cost model does not price that yet).
    pub rope_on_load: bool,
}

impl Default for OptimizeOptions {
    /// Generous for attention patterns, which saturate in about ten rounds and a
    /// few hundred e-nodes; the limits only guard against a runaway rule set.
    fn default() -> Self {
        OptimizeOptions {
            node_limit: 50_000,
            iter_limit: 64,
            time_limit: Duration::from_secs(10),
            training: false,
            rope_on_load: false,
        }
    }
}

/// The optimized graph and how it was found.
#[derive(Clone, Debug)]
pub struct Optimized {
    pub graph: ValidGraph,
    pub report: OptimizeReport,
}

/// What the e-graph run did.
#[derive(Clone, Debug, PartialEq)]
pub struct OptimizeReport {
    /// Why egg stopped: `saturated` (no rule could add anything), or the limit it hit.
    pub stop_reason: String,
    pub iterations: usize,
    pub egraph_nodes: usize,
    pub egraph_classes: usize,
    /// Each rule that changed the e-graph, with how many times, in rule order.
    pub rules_fired: Vec<(String, usize)>,
    pub cost_before: Cost,
    pub cost_after: Cost,
}

impl OptimizeReport {
    /// How many times rule `name` fired.
    pub fn fired(&self, name: &str) -> usize {
        self.rules_fired.iter().find(|(n, _)| n == name).map_or(0, |(_, c)| *c)
    }
}

impl std::fmt::Display for OptimizeReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "stopped: {} after {} iterations ({} e-nodes, {} e-classes)",
            self.stop_reason, self.iterations, self.egraph_nodes, self.egraph_classes
        )?;
        let fired: Vec<String> = self.rules_fired.iter().map(|(n, c)| format!("{n} x{c}")).collect();
        writeln!(f, "rules fired: {}", if fired.is_empty() { "none".into() } else { fired.join(", ") })?;
        writeln!(f, "cost before: {}", self.cost_before)?;
        write!(f, "cost after:  {}", self.cost_after)
    }
}

/// Why a graph could not be optimized; every variant names the graph.
#[derive(Debug, thiserror::Error)]
pub enum OptimizeError {
    #[error("graph `{graph}`: node {node} (`{op}`) cannot enter the e-graph: {reason}")]
    Convert { graph: String, node: NodeId, op: &'static str, reason: String },

    /// A rule's pattern does not parse: a bug in the rule set.
    #[error("the rewrite rules are malformed: {0}")]
    Rules(String),

    /// Two members of one e-class disagree (different types): a rule is wrong.
    #[error("graph `{graph}`: a rewrite rule merged unequal terms: {}", .conflicts.join("; "))]
    Inconsistent { graph: String, conflicts: Vec<String> },

    #[error("graph `{graph}`: cannot extract output `{output}`: {reason}")]
    Extract { graph: String, output: String, reason: String },

    #[error("graph `{graph}`: the optimized graph does not validate: {source}")]
    Invalid {
        graph: String,
        #[source]
        source: Box<GraphError>,
    },
}

/// Optimizes `graph`: same inputs (names, types, order), same outputs (names,
/// order, values), lowest cost found.
///
/// Never returns a graph that costs more than the input: if extraction (which
/// prices terms as trees and so can duplicate shared work) finds nothing
/// cheaper, the input comes back unchanged.
pub fn optimize(graph: &ValidGraph, opts: &OptimizeOptions) -> Result<Optimized, OptimizeError> {
    let name = graph.name().to_string();
    let model = CostModel::new();
    let cost_before = model.graph_cost(graph);
    let (egraph, classes) = convert::to_egraph(graph).map_err(|e| OptimizeError::Convert {
        graph: name.clone(),
        node: e.node,
        op: e.op,
        reason: e.reason,
    })?;
    let mut rules = rules::all().map_err(OptimizeError::Rules)?;
    if opts.training {
        rules.retain(|r| r.name.as_str() != rules::lora::LORA_FOLD);
    }
    if !opts.rope_on_load {
        rules.retain(|r| !rules::rope::RULES.contains(&r.name.as_str()));
    }
    let runner = Runner::default()
        .with_egraph(egraph)
        .with_node_limit(opts.node_limit)
        .with_iter_limit(opts.iter_limit)
        .with_time_limit(opts.time_limit)
        .run(&rules);
    if !runner.egraph.analysis.conflicts.is_empty() {
        return Err(OptimizeError::Inconsistent { graph: name, conflicts: runner.egraph.analysis.conflicts });
    }
    let class_of = |id: NodeId| classes[id.index()];
    let leaves: Vec<(NodeId, egg::Id)> = graph.leaves().map(|(id, _)| (id, class_of(id))).collect();
    let outputs: Vec<(String, egg::Id)> =
        graph.outputs().iter().map(|(n, id)| (n.clone(), class_of(*id))).collect();
    let extracted = extract::extract_graph(&runner.egraph, &model, graph, &leaves, &outputs)
        .map_err(|(output, reason)| OptimizeError::Extract { graph: name.clone(), output, reason })?;
    let extracted = extracted
        .validate()
        .map_err(|source| OptimizeError::Invalid { graph: name.clone(), source: Box::new(source) })?;
    let cost_extracted = model.graph_cost(&extracted);
    let (graph, cost_after) = if cost_extracted.total() <= cost_before.total() {
        (extracted, cost_extracted)
    } else {
        (graph.clone(), cost_before)
    };

    let mut rules_fired: Vec<(String, usize)> = Vec::new();
    for rule in &rules {
        let count: usize = runner.iterations.iter().filter_map(|it| it.applied.get(&rule.name)).sum();
        if count > 0 {
            rules_fired.push((rule.name.to_string(), count));
        }
    }
    let report = OptimizeReport {
        stop_reason: describe(runner.stop_reason.as_ref()),
        iterations: runner.iterations.len(),
        egraph_nodes: runner.egraph.total_number_of_nodes(),
        egraph_classes: runner.egraph.number_of_classes(),
        rules_fired,
        cost_before,
        cost_after,
    };
    Ok(Optimized { graph, report })
}

fn describe(reason: Option<&StopReason>) -> String {
    match reason {
        None => "not run".into(),
        Some(StopReason::Saturated) => "saturated".into(),
        Some(StopReason::IterationLimit(n)) => format!("iteration limit ({n} iterations)"),
        Some(StopReason::NodeLimit(n)) => format!("node limit ({n} e-nodes)"),
        Some(StopReason::TimeLimit(s)) => format!("time limit ({s:.1} s)"),
        Some(StopReason::Other(why)) => why.clone(),
    }
}
