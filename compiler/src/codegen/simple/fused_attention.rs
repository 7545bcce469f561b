//! A fused attention node inside an op-by-op plan: the FlashAttention-style
//! forward kernels of [`crate::plan`], bound to the operands' buffers.
//!
//! This is what keeps a whole model's forward pass free of N×N buffers once
//! the optimizer has fused its attention: the score tiles live in registers,
//! and only the per-row log-sum-exp (N floats per head) is written.

use std::collections::HashMap;
use std::ops::Range;

use weft_ir::Mask;
use weft_ir::graph::HeadMask;

use super::CodegenError;
use super::plan::{Ctx, Operand};
use crate::kernel::{BufferRole, Kernel};
use crate::plan::{FusedAttentionDesc, PlanOptions, plan_attention};

pub(crate) fn emit(
    cx: &mut Ctx,
    heads: &[HeadMask],
    scale: f64,
    inputs: &[Operand],
    out: &Operand,
) -> Result<Vec<Kernel>, CodegenError> {
    let ([q, k, v], &[batch, n_heads, seq_len, head_dim]) = (inputs, out.shape) else {
        return Err(cx.unsupported());
    };
    // The fused kernels bind whole tensors of one head dimension.
    let whole = |o: &Operand| o.region.base == 0 && o.region.elems == o.region.total;
    if v.shape != q.shape || !inputs.iter().chain([out]).all(whole) {
        return Err(cx.unsupported());
    }
    let desc = FusedAttentionDesc {
        name: cx.kernel_name(""),
        batch,
        n_heads,
        seq_len,
        head_dim,
        heads: heads.iter().map(|h| (h.heads.clone(), h.mask.clone())).collect::<Vec<(Range<usize>, Mask)>>(),
        scale: scale as f32,
    };
    let opts = PlanOptions {
        backward: false,
        max_storage_binding: cx.opts.max_storage_binding,
        max_workgroups_per_dim: cx.opts.max_workgroups_per_dimension,
        ..PlanOptions::default()
    };
    let (plan, _) = plan_attention(&desc, &opts)
        .map_err(|e| cx.site.too_large(format!("fused attention cannot be planned: {e}")))?;

    // The sub-plan's q, k, v and o are the operands' buffers; everything else
    // (the log-sum-exp, parameters and block tables) becomes this node's own.
    let mut rename: HashMap<String, String> = [
        ("q", &q.region.buffer),
        ("k", &k.region.buffer),
        ("v", &v.region.buffer),
        ("o", &out.region.buffer),
    ]
    .into_iter()
    .map(|(from, to)| (from.to_string(), to.clone()))
    .collect();
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
    Ok(kernels)
}
