//! A fused attention node inside a graph's plan: the FlashAttention-2
//! kernels of [`crate::attention`], bound to the operands' buffers.
//!
//! This is what keeps a whole model's forward and backward passes free of N×N
//! buffers once the optimizer has fused its attention: the score tiles live in
//! registers, and only per-row statistics (N floats per head) are written.
//! The gradient nodes of one attention (`dq`, `dk`, `dv`) are one backward
//! pass, planned at the first of them; it reads the forward node's output and
//! log-sum-exp (N floats per head) rather than running the forward again.

use std::collections::HashMap;

use weft_ir::graph::{HeadMask, RopeParams};

use crate::attention::{AttentionPlanOptions, AttentionTiles, FusedAttentionDesc, plan_attention};
use crate::kernel::{BufferRole, Kernel};
use crate::kernels::{CodegenError, Ctx, Operand};

/// The forward kernels, and the plan buffer they leave the log-sum-exp in:
/// a backward pass of the same attention reads it instead of recomputing it.
pub(crate) fn emit(
    cx: &mut Ctx,
    tiles: &AttentionTiles,
    heads: &[HeadMask],
    scale: f64,
    rope: Option<RopeParams>,
    inputs: &[Operand],
    out: &Operand,
) -> Result<(Vec<Kernel>, String), CodegenError> {
    let [q, k, v] = inputs else { return Err(cx.unsupported()) };
    let bound = [("q", q), ("k", k), ("v", v), ("o", out)];
    let (kernels, rename) = planned(cx, tiles, (heads, scale, rope), q.shape, Pass::Forward, &bound, &[])?;
    let lse = rename.get("lse").cloned().ok_or_else(|| cx.unsupported())?;
    Ok((kernels, lse))
}

/// What the forward pass of an attention left for its backward pass: its
/// output `o` and the buffer of its log-sum-exp (from [`emit`]).
pub(crate) struct SavedForward<'g> {
    pub o: Operand<'g>,
    pub lse: String,
}

/// The backward pass of one fused attention, for its gradient nodes `grads`
/// (`[dq, dk, dv]`, a missing one written to scratch): FlashAttention-2's
/// delta, dK/dV and dQ kernels. They read the forward pass's `o` and
/// log-sum-exp where it is `saved`; otherwise a forward pass runs first to
/// recompute them.
// The node's description (tiles, heads, scale, rope) and its bound operands,
// as `emit` takes them, plus the gradients and the saved forward.
#[allow(clippy::too_many_arguments)]
pub(crate) fn emit_backward(
    cx: &mut Ctx,
    tiles: &AttentionTiles,
    heads: &[HeadMask],
    scale: f64,
    rope: Option<RopeParams>,
    inputs: &[Operand],
    grads: &[Option<Operand>; 3],
    saved: Option<&SavedForward>,
) -> Result<Vec<Kernel>, CodegenError> {
    let [q, k, v, dout] = inputs else { return Err(cx.unsupported()) };
    let mut bound = vec![("q", q), ("k", k), ("v", v), ("do", dout)];
    for (name, grad) in ["dq", "dk", "dv"].into_iter().zip(grads) {
        if let Some(g) = grad {
            bound.push((name, g));
        }
    }
    let (pass, named) = match saved {
        Some(s) => {
            bound.push(("o", &s.o));
            (Pass::BackwardFromSaved, vec![("lse", s.lse.as_str())])
        }
        None => (Pass::BackwardWithForward, Vec::new()),
    };
    planned(cx, tiles, (heads, scale, rope), q.shape, pass, &bound, &named).map(|(kernels, _)| kernels)
}

/// Which kernels of a fused attention a node plans.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pass {
    Forward,
    /// The forward (to recompute `o` and the log-sum-exp), then the backward.
    BackwardWithForward,
    /// The backward alone, on a saved forward pass.
    BackwardFromSaved,
}

/// Plans the fused kernels and binds the sub-plan's buffers named in `bound`
/// to those operands; every other buffer (log-sum-exp, scratch, parameters,
/// block tables, unwanted outputs) becomes this node's own.
///
/// `named` binds sub-plan buffers to plan buffers by name (whole buffers of
/// the same size: the saved log-sum-exp). Returns the kernels and where each
/// sub-plan buffer went.
fn planned(
    cx: &mut Ctx,
    tiles: &AttentionTiles,
    (heads, scale, rope): (&[HeadMask], f64, Option<RopeParams>),
    q_shape: &[usize],
    pass: Pass,
    bound: &[(&str, &Operand)],
    named: &[(&str, &str)],
) -> Result<(Vec<Kernel>, HashMap<String, String>), CodegenError> {
    // The fused kernels bind whole tensors of one head dimension.
    let fits = |o: &Operand| o.region.base == 0 && o.region.elems == o.region.total && o.shape == q_shape;
    if !bound.iter().all(|(_, o)| fits(o)) {
        return Err(cx.unsupported());
    }
    let desc = FusedAttentionDesc::from_node(cx.kernel_name(""), heads, scale, rope, q_shape)
        .ok_or_else(|| cx.unsupported())?;
    let base = AttentionPlanOptions {
        backward: pass != Pass::Forward,
        saved_forward: pass == Pass::BackwardFromSaved,
        limits: *cx.limits,
        ..AttentionPlanOptions::default()
    };
    let opts = tiles.apply(base, desc.head_dim);
    let (plan, _) = plan_attention(&desc, &opts)
        .map_err(|e| cx.site.too_large(format!("fused attention cannot be planned: {e}")))?;

    let mut rename: HashMap<String, String> =
        bound.iter().map(|(from, to)| (from.to_string(), to.region.buffer.clone())).collect();
    rename.extend(named.iter().map(|(from, to)| (from.to_string(), to.to_string())));
    for (name, decl) in &plan.buffers {
        if rename.contains_key(name) {
            continue;
        }
        let role = match &decl.role {
            BufferRole::Const(bytes) => BufferRole::Const(bytes.clone()),
            _ => BufferRole::Scratch,
        };
        let fresh = cx.add_buffer(name, decl.bytes, role, decl.shape.clone());
        rename.insert(name.clone(), fresh);
    }
    let mut kernels = plan.kernels;
    for kernel in &mut kernels {
        for binding in &mut kernel.bindings {
            if let Some(to) = rename.get(&binding.buffer) {
                binding.buffer = to.clone();
            }
        }
    }
    Ok((kernels, rename))
}
