//! The mean cross-entropy of `logits [..., V]` against `i32` targets, and its
//! gradient with respect to the logits.
//!
//! A negative target (Hugging Face's -100) ignores its row; the mean is over
//! the other rows, and 0 when there are none. A target at or above `V` is an
//! error in the interpreter; here it makes that row's loss (and gradient) NaN,
//! never an out-of-bounds read (see `embedding.rs`).
//!
//! Both ops take two kernels: the loss writes each row's
//! `logsumexp - logit[target]` to a scratch buffer that one thread then sums
//! and divides by the count; the gradient first computes `dloss / count` once
//! into a scratch scalar (so no row thread loops over all targets), then
//! recomputes each row's softmax. The gradient may overwrite the logits in
//! place, when the planner gives both one buffer (`plan/graph.rs`).

use std::fmt::Write;

use super::CodegenError;
use super::builder::{KernelBuilder, Region, elements};
use super::embedding::QUIET_NAN;
use super::{Ctx, Operand};
use crate::kernel::{BufferRole, Kernel};

/// The row maximum `m` and `total = sum(exp(x - m))` of the row at `base`,
/// loaded through `ld_{var}`.
fn row_max_and_total(var: &str, vocab: usize) -> String {
    format!(
        "var m = ld_{var}(base);\n\
         for (var j = 1u; j < {vocab}u; j++) {{\n    m = max(m, ld_{var}(base + j));\n}}\n\
         var total = 0.0;\n\
         for (var j = 0u; j < {vocab}u; j++) {{\n    total += exp(ld_{var}(base + j) - m);\n}}\n"
    )
}

/// `(logits [..., V], targets [...]) -> []`.
pub(crate) fn emit(cx: &mut Ctx, inputs: &[Operand], out: &Operand) -> Result<Vec<Kernel>, CodegenError> {
    let [logits, targets] = inputs else {
        return Err(cx.unsupported());
    };
    let Some(&vocab) = logits.shape.last() else {
        return Err(cx.unsupported());
    };
    let rows = elements(targets.shape);
    let scratch = cx.add_buffer("rows", rows * 4, BufferRole::Scratch, vec![rows as usize]);
    let per_row = Region::whole(&scratch, rows);

    let mut body = String::new();
    let _ = write!(
        body,
        "let t = ld_targets(i);\n\
         if (t < 0) {{\n\
         \x20   st_rows(i, 0.0);\n\
         \x20   return;\n\
         }}\n\
         let base = i * {vocab}u;\n\
         {max_total}\
         var loss = quiet_nan(i);\n\
         if (t < {vocab}) {{\n\
         \x20   loss = log(total) + m - ld_logits(base + u32(t));\n\
         }}\n\
         st_rows(i, loss);\n",
        max_total = row_max_and_total("logits", vocab),
    );
    let mut k = KernelBuilder::new(cx.site, cx.limits, &cx.kernel_name("rows"), "cross-entropy per row");
    k.read("logits", &logits.region)?;
    k.read("targets", &targets.region)?;
    k.write("rows", &per_row)?;
    k.helper(QUIET_NAN);
    let row_kernel = k.finish(rows, &body)?;

    let body = format!(
        "var total = 0.0;\n\
         var count = 0u;\n\
         for (var r = 0u; r < {rows}u; r++) {{\n\
         \x20   if (ld_targets(r) >= 0) {{\n\
         \x20       total += ld_rows(r);\n\
         \x20       count += 1u;\n\
         \x20   }}\n\
         }}\n\
         st_loss(0u, select(0.0, total / f32(count), count > 0u));\n"
    );
    let mut k = KernelBuilder::new(cx.site, cx.limits, &cx.kernel_name("mean"), "cross-entropy mean");
    k.read("rows", &per_row)?;
    k.read("targets", &targets.region)?;
    k.write("loss", &out.region)?;
    Ok(vec![row_kernel, k.finish(1, &body)?])
}

/// `(logits [..., V], targets [...], dloss []) -> [..., V]`.
pub(crate) fn emit_grad(
    cx: &mut Ctx,
    inputs: &[Operand],
    out: &Operand,
) -> Result<Vec<Kernel>, CodegenError> {
    let [logits, targets, dloss] = inputs else {
        return Err(cx.unsupported());
    };
    let Some(&vocab) = logits.shape.last() else {
        return Err(cx.unsupported());
    };
    let rows = elements(targets.shape);
    let scratch = cx.add_buffer("weight", 4, BufferRole::Scratch, vec![]);
    let weight = Region::whole(&scratch, 1);

    let body = format!(
        "var count = 0u;\n\
         for (var r = 0u; r < {rows}u; r++) {{\n\
         \x20   if (ld_targets(r) >= 0) {{\n\
         \x20       count += 1u;\n\
         \x20   }}\n\
         }}\n\
         st_weight(0u, select(0.0, ld_dloss(0u) / f32(count), count > 0u));\n"
    );
    let mut k = KernelBuilder::new(cx.site, cx.limits, &cx.kernel_name("weight"), "dloss / count");
    k.read("targets", &targets.region)?;
    k.read("dloss", &dloss.region)?;
    k.write("weight", &weight)?;
    let weight_kernel = k.finish(1, &body)?;

    // The planner may give the gradient the logits' own buffer (they are
    // dead after it): each thread reads its whole row before writing it, so
    // the row is then one read-write binding.
    let in_place = out.region.buffer == logits.region.buffer && out.region.base == logits.region.base;
    let input = if in_place { "dlogits" } else { "logits" };
    let mut body = String::new();
    let _ = write!(
        body,
        "let t = ld_targets(i);\n\
         let base = i * {vocab}u;\n\
         if (t < 0) {{\n\
         \x20   for (var j = 0u; j < {vocab}u; j++) {{\n\
         \x20       st_dlogits(base + j, 0.0);\n\
         \x20   }}\n\
         \x20   return;\n\
         }}\n\
         {max_total}\
         // A target outside the row poisons the row (see the module doc).\n\
         let w = select(quiet_nan(i), ld_weight(0u), t < {vocab});\n\
         let scale = w / total;\n\
         for (var j = 0u; j < {vocab}u; j++) {{\n\
         \x20   var g = exp(ld_{input}(base + j) - m) * scale;\n\
         \x20   if (i32(j) == t) {{\n\
         \x20       g -= w;\n\
         \x20   }}\n\
         \x20   st_dlogits(base + j, g);\n\
         }}\n",
        max_total = row_max_and_total(input, vocab),
    );
    let mut k =
        KernelBuilder::new(cx.site, cx.limits, &cx.kernel_name("rows"), "cross-entropy gradient per row");
    if in_place {
        k.read_write("dlogits", &out.region)?;
        k.read("targets", &targets.region)?;
        k.read("weight", &weight)?;
    } else {
        k.read("logits", &logits.region)?;
        k.read("targets", &targets.region)?;
        k.read("weight", &weight)?;
        k.write("dlogits", &out.region)?;
    }
    k.helper(QUIET_NAN);
    Ok(vec![weight_kernel, k.finish(rows, &body)?])
}
