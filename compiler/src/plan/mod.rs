//! From a validated graph to a [`KernelPlan`](crate::KernelPlan): which
//! node gets which buffer, which nodes share a kernel, and which kernels run
//! in what order.
//!
//! One buffer per node (reshapes alias their operand, fused elementwise chains
//! keep their inner values in registers), kernels in topological order, each
//! from the op family's emitter in [`crate::kernels`]. Dense attention
//! materializes its scaled score matrix in a scratch buffer: that N×N buffer
//! is exactly what an unoptimized graph costs. A `FusedAttention` node the
//! optimizer made gets the FlashAttention-2 kernels of [`crate::attention`].
//!
//! - `graph.rs`: [`plan_graph`]: buffers, aliasing, output naming, the walk
//!   over the nodes;
//! - `fusion.rs`: connected elementwise ops of one shape become one kernel
//!   (`fused: silu, mul`), their inner values never written to memory;
//! - `fused_attention.rs`: a fused attention node's forward kernels, and its
//!   gradient nodes' one backward pass, bound to the node's operands;
//! - `memory.rs`: scratch buffers with disjoint lifetimes share memory;
//! - `render.rs`: a plan as text, for golden files and inspection;
//! - `update.rs`: the optimizer step appended to a training step's plan.

mod fused_attention;
mod fusion;
mod graph;
mod memory;
mod render;
mod update;

use std::collections::BTreeMap;

use crate::attention::AttentionTiles;
use crate::device::DeviceLimits;
use crate::kernel::ElemType;
use crate::kernels::{CodegenError, MatmulTable};

pub use graph::plan_graph;
pub use render::render_plan;
pub use update::{TrainedParam, UpdateOptions, UpdatePlan, plan_update};

/// The device a graph is planned for, and the planner's choices.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GraphPlanOptions {
    /// The device's limits: binding sizes, bindings per kernel, grid sizes,
    /// subgroups (the subgroup matmul needs subgroups of 8 or more).
    pub limits: DeviceLimits,
    /// Reshapes share their operand's buffer instead of copying it.
    pub alias_reshapes: bool,
    /// Scratch buffers whose lifetimes do not overlap share one allocation.
    pub share_scratch: bool,
    /// The loss's gradient overwrites the logits when nothing reads them
    /// after it: at long context the `[T, vocab]` logits are the step's
    /// largest buffer, and this keeps one of them instead of two.
    pub in_place_loss_gradient: bool,
    /// The matmul kernel's tile shape and workgroup size per problem class
    /// (narrow, small, large): each matmul looks up its own.
    pub matmul: MatmulTable,
    /// Connected elementwise ops of one shape run as one kernel, and their
    /// inner values get no buffers (see `fusion.rs`).
    pub fuse_elementwise: bool,
    /// Tiles and rows per invocation of the fused attention kernels of a
    /// forward node, and of a backward pass (`weft tune` measures both).
    /// These kernels keep wgpu's runtime checks: only plans the runtime seals
    /// run without them.
    pub attention_forward: AttentionTiles,
    pub attention_backward: AttentionTiles,
    /// Leaves stored in a packed 16-bit type (`Bf16`, `F16`) instead of f32,
    /// by name: a model's frozen weights as its checkpoint stores them, at
    /// half the memory. Only f32 leaves that no kernel writes, read by the
    /// plain kernels (not fused attention), may be packed; names the graph
    /// does not have are ignored.
    pub leaf_storage: BTreeMap<String, ElemType>,
}

impl Default for GraphPlanOptions {
    fn default() -> Self {
        GraphPlanOptions::for_device(DeviceLimits::default())
    }
}

impl GraphPlanOptions {
    /// The defaults for a device: its limits, and the kernel shapes that suit
    /// its kind before anything was measured on it.
    pub fn for_device(limits: DeviceLimits) -> Self {
        GraphPlanOptions {
            limits,
            alias_reshapes: true,
            share_scratch: true,
            in_place_loss_gradient: true,
            matmul: MatmulTable::default_for(&limits),
            fuse_elementwise: true,
            attention_forward: AttentionTiles::default_for(&limits),
            attention_backward: AttentionTiles::default_for(&limits),
            leaf_storage: BTreeMap::new(),
        }
    }

    fn check(&self) -> Result<(), CodegenError> {
        let bad = |why: String| Err(CodegenError::Options(why));
        let l = &self.limits;
        // Ranges start at multiples of 256 bytes, so one binding must hold at least that.
        if l.max_storage_binding < 256 {
            return bad(format!("max_storage_binding {} is below 256 bytes", l.max_storage_binding));
        }
        if l.max_buffer_size < 256 {
            return bad(format!("max_buffer_size {} is below 256 bytes", l.max_buffer_size));
        }
        if l.max_storage_buffers_per_stage < 2 {
            return bad("max_storage_buffers_per_stage must be at least 2".into());
        }
        if l.max_workgroups_per_dimension == 0 {
            return bad("max_workgroups_per_dimension must be at least 1".into());
        }
        if let Some(why) = self.matmul.problem() {
            return bad(why);
        }
        if let Some((name, elem)) = self
            .leaf_storage
            .iter()
            .find(|(_, e)| !matches!(e, ElemType::F32 | ElemType::Bf16 | ElemType::F16))
        {
            return bad(format!(
                "leaf `{name}` cannot be stored as {elem}: only f32, bf16 and f16 are storage types"
            ));
        }
        Ok(())
    }
}
