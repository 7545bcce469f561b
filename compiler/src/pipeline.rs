//! The whole path for an attention pattern: reference graph → e-graph
//! optimizer → one fused kernel plan per fused node.

use weft_ir::graph::{NodeId, Op, ValidGraph};

use crate::codegen::AttentionError;
use crate::kernel::KernelPlan;
use crate::optimize::{OptimizeError, OptimizeOptions, Optimized, optimize};
use crate::plan::{FusedAttentionDesc, PlanOptions, PlanStats, plan_attention};

/// A fused attention node of the optimized graph with its kernel plan.
#[derive(Debug)]
pub struct FusedKernel {
    pub node: NodeId,
    pub desc: FusedAttentionDesc,
    pub plan: KernelPlan,
    pub stats: PlanStats,
}

/// Everything the compiler made of an attention graph, for running and for inspection.
#[derive(Debug)]
pub struct CompiledAttention {
    pub reference: ValidGraph,
    pub optimized: Optimized,
    pub fused: FusedKernel,
}

#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    #[error(transparent)]
    Optimize(#[from] OptimizeError),
    #[error(transparent)]
    Plan(#[from] AttentionError),
    #[error(
        "graph `{graph}` did not fuse into a single attention kernel: the optimized graph has {detail}; \
         this path takes attention graphs only (a model's graph runs through `weft forward`)"
    )]
    NotOneAttention { graph: String, detail: String },
}

/// An attention graph optimized down to one fused attention node, not yet planned.
#[derive(Debug)]
pub struct FusedGraph {
    pub reference: ValidGraph,
    pub optimized: Optimized,
    pub node: NodeId,
    pub desc: FusedAttentionDesc,
}

/// Optimizes an attention graph (inputs `q`, `k`, `v`, one output) and plans its
/// fused kernel.
pub fn compile_attention(
    reference: ValidGraph,
    optimize_opts: &OptimizeOptions,
    plan_opts: &PlanOptions,
) -> Result<CompiledAttention, CompileError> {
    let FusedGraph { reference, optimized, node, desc } = fuse_attention(reference, optimize_opts)?;
    let (plan, stats) = plan_attention(&desc, plan_opts)?;
    Ok(CompiledAttention { reference, optimized, fused: FusedKernel { node, desc, plan, stats } })
}

/// Optimizes an attention graph (inputs `q`, `k`, `v`, one output) and finds
/// its one fused attention node: [`compile_attention`] without the planning,
/// for callers that plan the node themselves.
pub fn fuse_attention(
    reference: ValidGraph,
    optimize_opts: &OptimizeOptions,
) -> Result<FusedGraph, CompileError> {
    let optimized = optimize(&reference, optimize_opts)?;
    let graph = &optimized.graph;
    let mut fused_nodes = Vec::new();
    let mut other = Vec::new();
    for id in graph.node_ids() {
        match &graph.node(id).op {
            Op::Input { .. } | Op::Parameter { .. } => {}
            Op::FusedAttention { .. } => fused_nodes.push(id),
            op => other.push(op.name()),
        }
    }
    let not_one = |detail: String| CompileError::NotOneAttention { graph: graph.name().to_string(), detail };
    if !other.is_empty() || fused_nodes.len() != 1 {
        return Err(not_one(format!(
            "{} fused attention node(s) and other ops [{}]",
            fused_nodes.len(),
            other.join(", ")
        )));
    }
    let node = fused_nodes[0];
    let desc = fused_desc(&optimized.graph, node)
        .ok_or_else(|| not_one("a fused node without [B, H, N, D] inputs".into()))?;
    Ok(FusedGraph { reference, optimized, node, desc })
}

/// The planning description of a `FusedAttention` node.
pub fn fused_desc(graph: &ValidGraph, node: NodeId) -> Option<FusedAttentionDesc> {
    let n = graph.node(node);
    let Op::FusedAttention { heads, scale, rope } = &n.op else { return None };
    let q = graph.node(*n.inputs.first()?);
    let [batch, n_heads, seq_len, head_dim] = q.ty.shape[..] else { return None };
    Some(FusedAttentionDesc {
        name: graph.name().to_string(),
        batch,
        n_heads,
        seq_len,
        head_dim,
        heads: heads.iter().map(|h| (h.heads.clone(), h.mask.clone())).collect(),
        scale: *scale as f32,
        rope: *rope,
    })
}
