//! rms_norm over the last axis: one thread per row.

use std::fmt::Write;

use super::CodegenError;
use super::builder::KernelBuilder;
use super::plan::{Ctx, Operand};
use crate::kernel::Kernel;

pub(crate) fn emit(
    cx: &Ctx,
    eps: f64,
    inputs: &[Operand],
    out: &Operand,
) -> Result<Vec<Kernel>, CodegenError> {
    let [x, w] = inputs else { return Err(cx.unsupported()) };
    let d = w.region.elems;
    let rows = x.region.elems / d;
    let eps = cx.site.f32_lit("eps", eps)?;
    let mut body = String::new();
    let _ = write!(
        body,
        "let base = i * {d}u;\n\
         var total = 0.0;\n\
         for (var j = 0u; j < {d}u; j++) {{\n    let v = ld_x(base + j);\n    total += v * v;\n}}\n\
         let inv = 1.0 / sqrt(total / {d}.0 + {eps});\n\
         for (var j = 0u; j < {d}u; j++) {{\n    st_y(base + j, ld_x(base + j) * inv * ld_w(j));\n}}\n"
    );
    let mut k = KernelBuilder::new(cx.site, cx.opts, &cx.kernel_name(""), &format!("rms_norm(eps={eps})"));
    k.read("x", &x.region)?;
    k.read("w", &w.region)?;
    k.write("y", &out.region)?;
    Ok(vec![k.finish(rows, &body)?])
}
