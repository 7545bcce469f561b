//! Elementwise fusion: connected add/mul/scale/exp/log/silu/sigmoid nodes of
//! one shape become one kernel that evaluates their expression per element.
//!
//! A member whose consumers are all in its group is never materialized: it is
//! a `let` in the kernel, and it gets no buffer. Members read by anything
//! outside the group (or that are graph outputs) are written out.
//!
//! The fused kernel runs where its last member (in topological order) stood.
//! That is sound because a group only grows while every consumer outside it
//! comes after its last member; the inputs it reads were then all produced
//! before that member (their own groups obey the same rule).

use std::collections::BTreeSet;
use std::fmt::Write;

use weft_ir::graph::{NodeId, ValidGraph};

use super::GraphPlanOptions;
use crate::kernel::Kernel;
use crate::kernels::builder::{KernelBuilder, Region, elements};
use crate::kernels::elementwise::{expr, is_elementwise};
use crate::kernels::{CodegenError, Site};

/// The fusion groups of a graph; nodes outside any group (and groups of one)
/// are planned op by op as before.
pub(crate) struct Fusion {
    /// Each node's group, for groups of two or more members.
    group_of: Vec<Option<usize>>,
    groups: Vec<Group>,
}

/// Members in topological order, and which of them are written to memory.
pub(crate) struct Group {
    pub members: Vec<NodeId>,
    pub materialized: Vec<bool>,
}

impl Fusion {
    /// No fusion: every node on its own.
    pub(crate) fn none(graph: &ValidGraph) -> Fusion {
        Fusion { group_of: vec![None; graph.len()], groups: Vec::new() }
    }

    /// Greedy, in topological order: an elementwise node joins the groups of
    /// its elementwise operands when the merged group keeps every outside
    /// consumer after the node, and fits the stage's storage bindings.
    pub(crate) fn plan(graph: &ValidGraph, opts: &GraphPlanOptions) -> Fusion {
        let n = graph.len();
        let outputs: BTreeSet<NodeId> = graph.outputs().iter().map(|(_, id)| *id).collect();
        let mut sets: Vec<Vec<NodeId>> = Vec::new();
        // Every elementwise node seen so far is in exactly one set.
        let mut set_of: Vec<Option<usize>> = vec![None; n];
        for id in graph.node_ids() {
            if !is_elementwise(&graph.node(id).op) {
                continue;
            }
            let mut current = vec![id];
            let mut joined: Vec<usize> = Vec::new();
            for &x in &graph.node(id).inputs {
                let Some(s) = set_of[x.index()] else { continue };
                if joined.contains(&s) {
                    continue;
                }
                let mut merged = current.clone();
                merged.extend(&sets[s]);
                if fits(graph, opts, &outputs, &merged, id) {
                    current = merged;
                    joined.push(s);
                }
            }
            for s in joined {
                sets[s].clear();
            }
            current.sort();
            let index = sets.len();
            for &m in &current {
                set_of[m.index()] = Some(index);
            }
            sets.push(current);
        }

        let mut fusion = Fusion::none(graph);
        for members in sets.into_iter().filter(|s| s.len() > 1) {
            let inside: BTreeSet<NodeId> = members.iter().copied().collect();
            let mut materialized: Vec<bool> =
                members.iter().map(|&m| outputs.contains(&m) || escapes(graph, &inside, m)).collect();
            // A dead chain still computes its last value, as an unfused dead node would.
            if let (false, Some(last)) = (materialized.contains(&true), materialized.last_mut()) {
                *last = true;
            }
            let index = fusion.groups.len();
            for &m in &members {
                fusion.group_of[m.index()] = Some(index);
            }
            fusion.groups.push(Group { members, materialized });
        }
        fusion
    }

    /// The group `id` belongs to, if it was fused with others.
    pub(crate) fn group(&self, id: NodeId) -> Option<&Group> {
        self.group_of[id.index()].map(|g| &self.groups[g])
    }

    /// Whether `id` gets a buffer: every node but a group's inner values.
    pub(crate) fn materialized(&self, id: NodeId) -> bool {
        match self.group(id) {
            Some(g) => g.members.iter().zip(&g.materialized).any(|(&m, &w)| m == id && w),
            None => true,
        }
    }
}

/// Whether some consumer of `m` lies outside `inside`.
fn escapes(graph: &ValidGraph, inside: &BTreeSet<NodeId>, m: NodeId) -> bool {
    graph.users(m).any(|(u, _)| !inside.contains(&u))
}

/// Whether `members` (ending at `last`, the newest node) can be one kernel.
fn fits(
    graph: &ValidGraph,
    opts: &GraphPlanOptions,
    outputs: &BTreeSet<NodeId>,
    members: &[NodeId],
    last: NodeId,
) -> bool {
    let inside: BTreeSet<NodeId> = members.iter().copied().collect();
    // Outside consumers must run after the kernel, which runs at `last`.
    let ordered = members.iter().all(|&m| graph.users(m).all(|(u, _)| inside.contains(&u) || u > last));
    if !ordered {
        return false;
    }
    let seg = opts.limits.max_storage_binding / 4 / 64 * 64;
    let bindings = |id: NodeId| {
        let elems = elements(&graph.node(id).ty.shape);
        if elems * 4 <= opts.limits.max_storage_binding { 1 } else { elems.div_ceil(seg.max(1)) }
    };
    let reads: BTreeSet<NodeId> = members
        .iter()
        .flat_map(|&m| graph.node(m).inputs.iter().copied())
        .filter(|x| !inside.contains(x))
        .collect();
    let writes = members.iter().filter(|&&m| outputs.contains(&m) || escapes(graph, &inside, m));
    let needed: u64 = reads.into_iter().chain(writes.copied()).map(bindings).sum();
    needed <= u64::from(opts.limits.max_storage_buffers_per_stage)
}

/// The group's kernel: loads each outside operand once, evaluates the members
/// in order as `let`s named after their nodes, stores the materialized ones.
/// `region` gives a node's buffer region; `last` is the group's last member.
pub(crate) fn emit(
    graph: &ValidGraph,
    opts: &GraphPlanOptions,
    group: &Group,
    last: NodeId,
    region: &dyn Fn(NodeId) -> Region,
) -> Result<Kernel, CodegenError> {
    let name = format!("n{}_fused", last.index());
    let site = Site { node: last, op: "fused" };
    let ops: Vec<&str> = group.members.iter().map(|&m| graph.node(m).op.name()).collect();
    let mut k = KernelBuilder::new(site, &opts.limits, &name, &format!("fused: {}", ops.join(", ")));
    let inside: BTreeSet<NodeId> = group.members.iter().copied().collect();
    let mut reads: Vec<NodeId> = Vec::new();
    for &m in &group.members {
        for &x in &graph.node(m).inputs {
            if !inside.contains(&x) && !reads.contains(&x) {
                reads.push(x);
            }
        }
    }
    let mut body = String::new();
    for (j, &x) in reads.iter().enumerate() {
        k.read(&format!("in{j}"), &region(x))?;
        let _ = writeln!(body, "let a{j} = ld_in{j}(i);");
    }
    let value = |x: NodeId| match reads.iter().position(|&r| r == x) {
        Some(j) => format!("a{j}"),
        None => format!("n{}", x.index()),
    };
    let mut stores = String::new();
    let mut written = 0;
    for (&m, &materialized) in group.members.iter().zip(&group.materialized) {
        let node = graph.node(m);
        let args: Vec<String> = node.inputs.iter().map(|&x| value(x)).collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let e = expr(Site { node: m, op: node.op.name() }, &node.op, &args)?;
        let _ = writeln!(body, "let n{} = {e};", m.index());
        if materialized {
            k.write(&format!("out{written}"), &region(m))?;
            let _ = writeln!(stores, "st_out{written}(i, n{});", m.index());
            written += 1;
        }
    }
    body.push_str(&stores);
    k.finish(elements(&graph.node(last).ty.shape), &body)
}
