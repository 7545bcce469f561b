//! The compile pipeline: one entry point, [`compile`], for every graph a
//! command runs or shows, from a single attention pattern to a whole model's
//! training step.
//!
//! ```text
//! reference graph ─▶ optimize (e-graph) ─▶ differentiate (training) ─▶ plan ─▶ kernel stats
//! ```
//!
//! Every stage's result is kept in [`Compiled`], so `weft compile --emit`,
//! `weft inspect kernels`, `weft forward` and `weft bench step` print or run
//! the same thing. [`compile_attention`] is the same pipeline for a graph that
//! must fuse into one attention node, planned on its own (the sealed plans of
//! `weft attn` and `weft tune`).

use weft_ir::autodiff::{
    AutodiffError, Checkpointing, Gradients, checkpoint, differentiate_outputs, trainable_parameters,
};
use weft_ir::graph::{NodeId, Op, ValidGraph};

use crate::attention::{AttentionError, AttentionPlanOptions, FusedAttentionDesc, PlanStats, plan_attention};
use crate::kernel::{Kernel, KernelPlan};
use crate::kernels::CodegenError;
use crate::optimize::{OptimizeError, OptimizeOptions, Optimized, optimize};
use crate::plan::{GraphPlanOptions, UpdateOptions, UpdatePlan, plan_graph, plan_update};

/// What the compiled graph is for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// The forward pass only.
    #[default]
    Inference,
    /// The forward pass, then the backward pass for the leaves in `wrt`
    /// (empty: every trainable parameter of the optimized graph), seeded at
    /// the outputs in `seeds` (empty: every output; a model's step seeds its
    /// `loss` alone). The optimizer keeps trainable parameters unfolded (see
    /// [`OptimizeOptions::training`]).
    Training { wrt: Vec<String>, seeds: Vec<String> },
}

/// How to compile a graph.
#[derive(Clone, Debug)]
pub struct CompileOptions {
    pub mode: Mode,
    /// Run the e-graph optimizer. Off, the graph is planned op by op as
    /// written (dense attention through N×N scores): the unfused baseline.
    pub optimize: bool,
    pub optimizer: OptimizeOptions,
    /// The device and the kernel shapes (tuned or default) the plan is made for.
    pub plan: GraphPlanOptions,
    /// In training mode, append the optimizer step (gradient norm, clipping,
    /// AdamW) to the plan: `weft train`'s plan. `weft bench step` leaves it off.
    pub update: Option<UpdateOptions>,
    /// In training mode, recompute each segment's activations in the
    /// backward pass instead of keeping them ([`checkpoint`]): much less
    /// memory at long context for about a third more work.
    pub gradient_checkpointing: bool,
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions {
            mode: Mode::Inference,
            optimize: true,
            optimizer: OptimizeOptions::default(),
            plan: GraphPlanOptions::default(),
            update: None,
            gradient_checkpointing: false,
        }
    }
}

/// One kernel of a plan, as a report shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelStats {
    pub name: String,
    pub kind: KernelKind,
    pub workgroup_size: [u32; 3],
    pub workgroups: [u32; 3],
    pub bindings: usize,
    /// Estimated useful FLOPs and global-memory bytes ([`Kernel::flops`]).
    pub flops: u64,
    pub bytes: u64,
}

/// What a kernel computes, from the name its planner gave it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KernelKind {
    /// The FlashAttention-2 kernels of a fused attention node.
    FusedAttention,
    Matmul,
    /// A chain of elementwise ops in one kernel.
    FusedElementwise,
    /// Everything else: one op's kernel (norms, rope, layout, reductions, loss).
    Other,
}

impl KernelKind {
    pub fn of(kernel_name: &str) -> KernelKind {
        if kernel_name.starts_with("attn_") {
            KernelKind::FusedAttention
        } else if kernel_name.ends_with("_matmul") {
            KernelKind::Matmul
        } else if kernel_name.ends_with("_fused") {
            KernelKind::FusedElementwise
        } else {
            KernelKind::Other
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            KernelKind::FusedAttention => "fused attention",
            KernelKind::Matmul => "matmul",
            KernelKind::FusedElementwise => "fused elementwise",
            KernelKind::Other => "other",
        }
    }
}

impl std::fmt::Display for KernelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

impl KernelStats {
    fn of(kernel: &Kernel) -> KernelStats {
        KernelStats {
            name: kernel.name.clone(),
            kind: KernelKind::of(&kernel.name),
            workgroup_size: kernel.workgroup_size,
            workgroups: kernel.workgroups,
            bindings: kernel.bindings.len(),
            flops: kernel.flops,
            bytes: kernel.bytes,
        }
    }
}

/// Everything the compiler made of a graph, stage by stage.
#[derive(Debug)]
pub struct Compiled {
    /// The graph as given.
    pub reference: ValidGraph,
    /// The optimizer's graph and report, unless optimization was off.
    pub optimized: Option<Optimized>,
    /// In training mode: the forward graph with its backward pass appended,
    /// and which output holds which gradient.
    pub gradients: Option<Gradients>,
    /// With [`CompileOptions::gradient_checkpointing`]: what it recomputes.
    pub checkpointing: Option<Checkpointing>,
    /// The kernels and buffers that run it.
    pub plan: KernelPlan,
    /// One entry per kernel of `plan`, in order.
    pub kernels: Vec<KernelStats>,
    /// With [`CompileOptions::update`]: where the micro-step and the
    /// optimizer update are in `plan`.
    pub update: Option<UpdatePlan>,
    /// The options it was compiled with.
    pub options: CompileOptions,
}

impl Compiled {
    /// The graph the plan was made from: the training step, the optimized
    /// graph, or the reference graph, whichever is last.
    pub fn planned_graph(&self) -> &ValidGraph {
        match (&self.gradients, &self.optimized) {
            (Some(g), _) => &g.graph,
            (None, Some(o)) => &o.graph,
            (None, None) => &self.reference,
        }
    }

    /// The fused attention nodes of the planned graph, with their planning
    /// descriptions.
    pub fn fused_attention(&self) -> Vec<(NodeId, FusedAttentionDesc)> {
        fused_nodes(self.planned_graph())
    }

    /// The tile statistics of each distinct fused attention node (visited,
    /// full and empty tiles, FLOPs, bytes), with the tiles the plan used and,
    /// in training mode, the backward pass.
    pub fn attention_stats(&self) -> Result<Vec<PlanStats>, CompileError> {
        let training = matches!(self.options.mode, Mode::Training { .. });
        let tiles = &self.options.plan.attention_forward;
        let tiles = if training { &self.options.plan.attention_backward } else { tiles };
        let mut seen: Vec<FusedAttentionDesc> = Vec::new();
        let mut stats = Vec::new();
        for (_, desc) in self.fused_attention() {
            if seen.contains(&desc) {
                continue;
            }
            let base = AttentionPlanOptions {
                backward: training,
                limits: self.options.plan.limits,
                ..AttentionPlanOptions::default()
            };
            let (_, s) = plan_attention(&desc, &tiles.apply(base, desc.head_dim))?;
            stats.push(s);
            seen.push(desc);
        }
        Ok(stats)
    }
}

/// Why a graph could not be compiled, by stage.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    #[error(transparent)]
    Optimize(#[from] OptimizeError),
    /// Boxed: autodiff's errors carry shapes and would make every `Result` of this stage large.
    #[error("differentiating graph `{graph}`: {source}")]
    Differentiate {
        graph: String,
        #[source]
        source: Box<AutodiffError>,
    },
    #[error("graph `{graph}` has no trainable parameter to differentiate")]
    NothingToTrain { graph: String },
    #[error("graph `{graph}`: an optimizer update needs training mode")]
    UpdateWithoutTraining { graph: String },
    #[error("planning graph `{graph}`: {source}")]
    Plan {
        graph: String,
        #[source]
        source: CodegenError,
    },
    #[error(transparent)]
    Attention(#[from] AttentionError),
    #[error(
        "graph `{graph}` did not fuse into a single attention kernel: the optimized graph has {detail}; \
         this path takes attention graphs only (a model's graph runs through `weft forward`)"
    )]
    NotOneAttention { graph: String, detail: String },
}

/// The pipeline: optimize `reference` (unless `opts.optimize` is off), append
/// the backward pass in training mode, plan the kernels, and report each one.
pub fn compile(reference: ValidGraph, opts: &CompileOptions) -> Result<Compiled, CompileError> {
    let name = reference.name().to_string();
    let training = matches!(opts.mode, Mode::Training { .. });
    let optimized = if opts.optimize {
        let optimizer = OptimizeOptions { training, ..opts.optimizer.clone() };
        Some(optimize(&reference, &optimizer)?)
    } else {
        None
    };
    let forward = optimized.as_ref().map_or(&reference, |o| &o.graph);
    let mut checkpointing = None;
    let gradients = match &opts.mode {
        Mode::Inference => None,
        Mode::Training { wrt, seeds } => {
            let wrt: Vec<String> = if wrt.is_empty() { trainable_parameters(forward) } else { wrt.clone() };
            if wrt.is_empty() {
                return Err(CompileError::NothingToTrain { graph: name });
            }
            let wrt: Vec<&str> = wrt.iter().map(String::as_str).collect();
            let seeds: Vec<&str> = seeds.iter().map(String::as_str).collect();
            let seeded = (!seeds.is_empty()).then_some(seeds.as_slice());
            let differentiate_err =
                |source| CompileError::Differentiate { graph: name.clone(), source: Box::new(source) };
            let mut step = differentiate_outputs(forward, seeded, &wrt).map_err(differentiate_err)?;
            if opts.gradient_checkpointing {
                let (rebuilt, report) = checkpoint(step, forward.len()).map_err(differentiate_err)?;
                step = rebuilt;
                checkpointing = Some(report);
            }
            Some(step)
        }
    };
    let planned = gradients.as_ref().map_or(forward, |g| &g.graph);
    let mut plan = plan_graph(planned, &opts.plan)
        .map_err(|source| CompileError::Plan { graph: name.clone(), source })?;
    let update = match (&opts.update, &gradients) {
        (Some(update), Some(g)) => Some(
            plan_update(&mut plan, &g.graph, &g.grads, update, &opts.plan)
                .map_err(|source| CompileError::Plan { graph: name, source })?,
        ),
        (Some(_), None) => return Err(CompileError::UpdateWithoutTraining { graph: name }),
        (None, _) => None,
    };
    let kernels = plan.kernels.iter().map(KernelStats::of).collect();
    Ok(Compiled {
        reference,
        optimized,
        gradients,
        checkpointing,
        plan,
        kernels,
        update,
        options: opts.clone(),
    })
}

/// The fused attention nodes of `graph` and their planning descriptions.
fn fused_nodes(graph: &ValidGraph) -> Vec<(NodeId, FusedAttentionDesc)> {
    graph.node_ids().filter_map(|id| fused_desc(graph, id).map(|desc| (id, desc))).collect()
}

/// The planning description of a `FusedAttention` node.
pub fn fused_desc(graph: &ValidGraph, node: NodeId) -> Option<FusedAttentionDesc> {
    let n = graph.node(node);
    let Op::FusedAttention { heads, scale, rope } = &n.op else { return None };
    let q = graph.node(*n.inputs.first()?);
    FusedAttentionDesc::from_node(graph.name(), heads, *scale, *rope, &q.ty.shape)
}

/// A fused attention node of the optimized graph with its own kernel plan.
#[derive(Debug)]
pub struct FusedKernel {
    pub node: NodeId,
    pub desc: FusedAttentionDesc,
    pub plan: KernelPlan,
    pub stats: PlanStats,
}

/// An attention graph compiled down to one fused node and planned on its own.
#[derive(Debug)]
pub struct CompiledAttention {
    pub reference: ValidGraph,
    pub optimized: Optimized,
    pub fused: FusedKernel,
}

/// An attention graph optimized down to one fused attention node, not yet planned.
#[derive(Debug)]
pub struct FusedGraph {
    pub reference: ValidGraph,
    pub optimized: Optimized,
    pub node: NodeId,
    pub desc: FusedAttentionDesc,
}

/// Optimizes an attention graph (inputs `q`, `k`, `v`, one output) that must
/// fuse into one attention node, and plans that node on its own.
pub fn compile_attention(
    reference: ValidGraph,
    optimize_opts: &OptimizeOptions,
    plan_opts: &AttentionPlanOptions,
) -> Result<CompiledAttention, CompileError> {
    let FusedGraph { reference, optimized, node, desc } = fuse_attention(reference, optimize_opts)?;
    let (plan, stats) = plan_attention(&desc, plan_opts)?;
    Ok(CompiledAttention { reference, optimized, fused: FusedKernel { node, desc, plan, stats } })
}

/// [`compile_attention`] without the planning, for callers that plan the
/// node themselves (the runtime's sealed plans).
pub fn fuse_attention(
    reference: ValidGraph,
    optimize_opts: &OptimizeOptions,
) -> Result<FusedGraph, CompileError> {
    let optimized = optimize(&reference, optimize_opts)?;
    let graph = &optimized.graph;
    let mut fused = Vec::new();
    let mut other = Vec::new();
    for id in graph.node_ids() {
        match &graph.node(id).op {
            Op::Input { .. } | Op::Parameter { .. } => {}
            Op::FusedAttention { .. } => fused.push(id),
            op => other.push(op.name()),
        }
    }
    let not_one = |detail: String| CompileError::NotOneAttention { graph: graph.name().to_string(), detail };
    let [node] = fused[..] else {
        return Err(not_one(format!(
            "{} fused attention node(s) and other ops [{}]",
            fused.len(),
            other.join(", ")
        )));
    };
    if !other.is_empty() {
        return Err(not_one(format!("1 fused attention node and other ops [{}]", other.join(", "))));
    }
    let desc =
        fused_desc(graph, node).ok_or_else(|| not_one("a fused node without [B, H, N, D] inputs".into()))?;
    Ok(FusedGraph { reference, optimized, node, desc })
}
