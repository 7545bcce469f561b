//! One WGSL emitter per op family: from one graph node (or one fused
//! elementwise chain) and the buffers of its operands to validated kernels.
//!
//! Every generator takes the emitter context [`Ctx`] (`context.rs`: the node,
//! the device limits, the matmul shape, fresh buffer names) and its operands,
//! returns [`CodegenError`]s naming the node (`error.rs`),
//! and returns kernels that passed naga. Every shape is baked into the shader
//! text. The planner ([`crate::plan`]) decides which node gets which buffer;
//! nothing here imports it.
//!
//! - `builder.rs`: bindings (split across several when a buffer exceeds one
//!   storage binding), the 1-D thread index and the folded dispatch grid;
//! - `elementwise.rs` (one op, or the expression of a fused chain),
//!   `permute.rs` (reshape copies, permute, roll, slice, pad, broadcast,
//!   concat), `reduce.rs`, `matmul/`, `rms_norm.rs`, `rope.rs`;
//! - `dense_attention.rs` and `masked_softmax.rs`: attention through an N×N
//!   score scratch, the unfused baseline (their mask function comes from
//!   [`crate::mask`], shared with the fused kernels of [`crate::attention`]);
//! - `embedding.rs` (lookup and its scatter-free gradient) and
//!   `cross_entropy.rs` (the loss and its gradient), the two families that
//!   read integer (`i32`) buffers;
//! - `optimizer.rs`: the optimizer step's kernels (gradient accumulation,
//!   the global norm and clipping, AdamW), appended by `plan/update.rs`.

pub(crate) mod builder;
mod context;
mod cross_entropy;
mod decode;
mod dense_attention;
pub(crate) mod elementwise;
mod embedding;
mod error;
mod masked_softmax;
mod matmul;
pub(crate) mod optimizer;
pub(crate) mod permute;
mod reduce;
mod rms_norm;
mod rope;

use weft_ir::graph::{Op, RopeParams};

use crate::kernel::Kernel;

pub(crate) use context::{Ctx, MAX_ELEMENTS, Names, Operand};
pub use error::CodegenError;
pub(crate) use error::Site;
pub use matmul::{MatmulClass, MatmulConfig, MatmulKernel, MatmulTable};
pub use optimizer::Hyper;

/// Dispatches a node to its op family's generator.
pub(crate) fn emit(
    cx: &mut Ctx,
    op: &Op,
    inputs: &[Operand],
    out: &Operand,
) -> Result<Vec<Kernel>, CodegenError> {
    match op {
        // Leaves own buffers and have no kernel; the caller never gets here with one.
        Op::Input { .. } | Op::Parameter { .. } => Err(cx.unsupported()),
        Op::Add | Op::Mul | Op::Scale { .. } | Op::Unary(_) => elementwise::emit(cx, op, inputs, out),
        Op::Reshape { .. }
        | Op::Permute { .. }
        | Op::Roll { .. }
        | Op::Slice { .. }
        | Op::Pad { .. }
        | Op::Broadcast { .. }
        | Op::Concat { .. } => permute::emit(cx, op, inputs, out),
        Op::Softmax { .. }
        | Op::SoftmaxGrad { .. }
        | Op::ReduceSum { .. }
        | Op::ReduceMax { .. }
        | Op::ReduceMean { .. } => reduce::emit(cx, op, inputs, out),
        Op::MaskedSoftmax { mask, head_offset, scale } => {
            masked_softmax::emit(cx, mask, *head_offset, *scale, inputs, out)
        }
        Op::MatMul { transpose_a, transpose_b } => matmul::emit(cx, *transpose_a, *transpose_b, inputs, out),
        Op::RmsNorm { eps } => rms_norm::emit(cx, *eps, inputs, out),
        Op::RmsNormGrad { eps } => rms_norm::emit_grad(cx, *eps, inputs, out),
        Op::RmsNormWeightGrad { eps } => rms_norm::emit_weight_grad(cx, *eps, inputs, out),
        &Op::Rope { theta, position_scale, freqs } => {
            rope::emit(cx, RopeParams { theta, position_scale, freqs }, inputs, out)
        }
        Op::Attention { mask, head_offset, scale } => {
            dense_attention::emit(cx, mask, *head_offset, *scale, inputs, out)
        }
        // Planned by `crate::plan`, which keeps each forward's log-sum-exp for
        // its backward and binds the kernels of `crate::attention`.
        Op::FusedAttention { .. } | Op::FusedAttentionGrad { .. } => Err(cx.unsupported()),
        Op::RopeTable => decode::emit_rope_table(cx, inputs, out),
        Op::CachedAttention { heads, scale } => decode::emit_cached_attention(cx, heads, *scale, inputs, out),
        Op::Embedding => embedding::emit(cx, inputs, out),
        Op::EmbeddingGrad { .. } => embedding::emit_grad(cx, inputs, out),
        Op::CrossEntropy => cross_entropy::emit(cx, inputs, out),
        Op::CrossEntropyGrad => cross_entropy::emit_grad(cx, inputs, out),
    }
}
