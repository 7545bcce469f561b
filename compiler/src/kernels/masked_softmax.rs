//! Attention's probabilities from materialized scores, for the backward pass
//! of the unfused path: one thread per query row of `[B, H, N, N]`.

use std::fmt::Write;

use weft_ir::Mask;

use super::CodegenError;
use super::builder::KernelBuilder;
use super::dense_attention::mask_allows;
use super::{Ctx, Operand};
use crate::kernel::Kernel;

pub(crate) fn emit(
    cx: &Ctx,
    mask: &Mask,
    head_offset: usize,
    scale: f64,
    inputs: &[Operand],
    out: &Operand,
) -> Result<Vec<Kernel>, CodegenError> {
    let ([s], &[b, h, n, _]) = (inputs, out.shape) else {
        return Err(cx.unsupported());
    };
    let allows = mask_allows(cx, mask, head_offset, h, n)?;
    let scale = cx.site.f32_lit("scale", scale)?;
    let rows = (b * h * n) as u64;
    let mut body = String::new();
    // The row maximum over allowed keys only, so a masked-out score never wins.
    let _ = write!(
        body,
        "let h = i32({head_offset}u + (i / {n}u) % {h}u);\n\
         let q = i32(i % {n}u);\n\
         let base = i * {n}u;\n\
         var m = 0.0;\n\
         var seen = false;\n\
         for (var key = 0u; key < {n}u; key++) {{\n\
         \x20   if (mask_allows(h, q, i32(key))) {{\n\
         \x20       let s = ld_s(base + key) * {scale};\n\
         \x20       if (!seen || s > m) {{\n\
         \x20           m = s;\n\
         \x20       }}\n\
         \x20       seen = true;\n\
         \x20   }}\n\
         }}\n\
         var total = 0.0;\n\
         for (var key = 0u; key < {n}u; key++) {{\n\
         \x20   if (mask_allows(h, q, i32(key))) {{\n\
         \x20       total += exp(ld_s(base + key) * {scale} - m);\n\
         \x20   }}\n\
         }}\n\
         // A query that may see no key gets a row of zeros.\n\
         let inv = select(0.0, 1.0 / total, total > 0.0);\n\
         for (var key = 0u; key < {n}u; key++) {{\n\
         \x20   var p = 0.0;\n\
         \x20   if (mask_allows(h, q, i32(key))) {{\n\
         \x20       p = exp(ld_s(base + key) * {scale} - m) * inv;\n\
         \x20   }}\n\
         \x20   st_p(base + key, p);\n\
         }}\n"
    );
    let title = format!("masked softmax; mask `{mask}`, head_offset {head_offset}, scale {scale}");
    let mut k = KernelBuilder::new(cx.site, cx.limits, &cx.kernel_name(""), &title);
    k.read("s", &s.region)?;
    k.write("p", &out.region)?;
    k.helper(&allows);
    Ok(vec![k.finish(rows, &body)?])
}
