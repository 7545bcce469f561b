//! The optimizer step appended to a training step's plan, so that weights,
//! gradients and optimizer state never leave the device.
//!
//! The plan then runs in two parts (`UpdatePlan`): the micro-step (forward,
//! backward, and with accumulation the sum of the micro-batch gradients),
//! once per micro-batch, and the update (global norm, clipping, AdamW), once
//! per optimizer step. Parameters are the plan's input buffers and AdamW
//! writes them in place: uploaded once, they stay on the device.

use std::ops::Range;

use weft_ir::graph::{NodeId, Op, ValidGraph};

use crate::kernel::{BufferDecl, BufferRole, ElemType, KernelPlan};
use crate::kernels::builder::Region;
use crate::kernels::optimizer::{self, AdamWBuffers, Hyper};
use crate::kernels::{CodegenError, Site};
use crate::plan::GraphPlanOptions;

/// How the optimizer step is planned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UpdateOptions {
    /// More than one micro-batch per update: gradients are summed into
    /// accumulators (the loss seed scales each by 1 / micro-batches).
    pub accumulate: bool,
}

/// One trained parameter and the buffers its update uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrainedParam {
    /// The parameter's name: its input buffer.
    pub name: String,
    /// The buffer the update reads: the gradient output, or its accumulator.
    pub grad: String,
    /// AdamW's first and second moments ([`BufferRole::State`]).
    pub moments: [String; 2],
    pub elems: u64,
}

/// Where a training plan's parts are, and the buffers the host drives it by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpdatePlan {
    /// The kernels of one micro-batch, in plan order.
    pub micro_step: Range<usize>,
    /// The kernels of one optimizer update.
    pub update: Range<usize>,
    /// The `f32` input of [`Hyper::COUNT`] run-time scalars, uploaded per update.
    pub hyper: String,
    /// The output `[‖g‖, clip factor]` of the last update.
    pub stats: String,
    pub params: Vec<TrainedParam>,
}

/// The name of the hyper-parameter input, stats output and sums of squares.
const HYPER: &str = "update.hyper";
const STATS: &str = "update.stats";
const SUMSQ: &str = "update.sumsq";

/// Appends the optimizer step to `plan`, the plan of the training step
/// `graph`, for the parameters and gradient outputs in `grads`.
pub fn plan_update(
    plan: &mut KernelPlan,
    graph: &ValidGraph,
    grads: &[(String, String)],
    opts: &UpdateOptions,
    plan_opts: &GraphPlanOptions,
) -> Result<UpdatePlan, CodegenError> {
    let limits = &plan_opts.limits;
    let declare =
        |plan: &mut KernelPlan, name: &str, elems: u64, role: BufferRole| -> Result<(), CodegenError> {
            if plan.buffers.contains_key(name) {
                return Err(CodegenError::NameClash { name: name.to_string() });
            }
            let decl = BufferDecl {
                name: name.to_string(),
                bytes: elems * 4,
                role,
                shape: vec![elems as usize],
                elem: ElemType::F32,
            };
            plan.buffers.insert(name.to_string(), decl);
            Ok(())
        };
    declare(plan, HYPER, Hyper::COUNT as u64, BufferRole::Input)?;
    declare(plan, STATS, 2, BufferRole::Output)?;
    let hyper = Region::whole(HYPER, Hyper::COUNT as u64);
    let stats = Region::whole(STATS, 2);

    let mut params = Vec::with_capacity(grads.len());
    let mut sites = Vec::with_capacity(grads.len());
    for (index, (name, grad)) in grads.iter().enumerate() {
        let site = Site { node: parameter_node(graph, name)?, op: "parameter" };
        if let Some(p) = plan.buffers.get(name).filter(|p| p.elem.is_packed()) {
            return Err(CodegenError::Options(format!(
                "parameter `{name}` is trained, so it must be stored as f32, not {}",
                p.elem
            )));
        }
        let elems = match (plan.buffers.get(name), plan.buffers.get(grad)) {
            (Some(p), Some(g)) if p.role == BufferRole::Input && p.bytes == g.bytes => p.bytes / 4,
            _ => {
                return Err(site.too_large(format!(
                    "parameter `{name}` and its gradient `{grad}` are not an input and an output of one size"
                )));
            }
        };
        let moments = [format!("adam.m:{name}"), format!("adam.v:{name}")];
        for m in &moments {
            declare(plan, m, elems, BufferRole::State)?;
        }
        let read_from = if opts.accumulate {
            let acc = format!("accum:{name}");
            declare(plan, &acc, elems, BufferRole::State)?;
            let kernel = optimizer::accumulate(
                site,
                limits,
                &format!("accumulate_{index}"),
                &Region::whole(&acc, elems),
                &Region::whole(grad, elems),
                &hyper,
            )?;
            plan.kernels.push(kernel);
            acc
        } else {
            grad.clone()
        };
        params.push(TrainedParam { name: name.clone(), grad: read_from, moments, elems });
        sites.push(site);
    }
    let micro_step = 0..plan.kernels.len();

    let update_start = plan.kernels.len();
    // Each gradient's partial sums of squares get their own slots.
    let slots: u64 = params.iter().map(|p| optimizer::sum_groups(p.elems)).sum();
    declare(plan, SUMSQ, slots.max(1), BufferRole::State)?;
    let sumsq = Region::whole(SUMSQ, slots.max(1));
    let mut first = 0;
    for (index, (param, &site)) in params.iter().zip(&sites).enumerate() {
        let grad = Region::whole(&param.grad, param.elems);
        let name = format!("grad_sumsq_{index}");
        plan.kernels.push(optimizer::sum_squares(site, limits, &name, &grad, &sumsq, first)?);
        first += optimizer::sum_groups(param.elems);
    }
    let Some(&norm_site) = sites.first() else {
        return Err(CodegenError::Options("a training plan needs at least one trained parameter".into()));
    };
    plan.kernels.push(optimizer::grad_norm(norm_site, limits, "grad_norm", &sumsq, &hyper, &stats)?);
    for (index, (param, &site)) in params.iter().zip(&sites).enumerate() {
        let region = |name: &str| Region::whole(name, param.elems);
        let buffers = AdamWBuffers {
            param: region(&param.name),
            grad: region(&param.grad),
            m: region(&param.moments[0]),
            v: region(&param.moments[1]),
            hyper: hyper.clone(),
            stats: stats.clone(),
        };
        let kernel = optimizer::adamw(site, limits, &format!("adamw_{index}"), &buffers)?;
        plan.kernels.push(kernel);
    }
    Ok(UpdatePlan {
        micro_step,
        update: update_start..plan.kernels.len(),
        hyper: HYPER.to_string(),
        stats: STATS.to_string(),
        params,
    })
}

/// The node of parameter `name`, to label its kernels' errors.
fn parameter_node(graph: &ValidGraph, name: &str) -> Result<NodeId, CodegenError> {
    graph
        .node_ids()
        .find(|&id| matches!(&graph.node(id).op, Op::Parameter { name: n, .. } if n == name))
        .ok_or_else(|| CodegenError::Options(format!("`{name}` is not a parameter of the training graph")))
}
