//! rms_norm over the last axis and its two gradients: one thread per row
//! (for the weight's gradient, per row and then per column).

use std::fmt::Write;

use super::CodegenError;
use super::builder::{KernelBuilder, Region};
use super::{Ctx, Operand};
use crate::kernel::{BufferRole, Kernel};

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
    let mut body = row_inverse_rms(d, &eps, "inv");
    let _ = write!(
        body,
        "for (var j = 0u; j < {d}u; j++) {{\n    st_y(base + j, ld_x(base + j) * inv * ld_w(j));\n}}\n"
    );
    let mut k = KernelBuilder::new(cx.site, cx.limits, &cx.kernel_name(""), &format!("rms_norm(eps={eps})"));
    k.read("x", &x.region)?;
    k.read("w", &w.region)?;
    k.write("y", &out.region)?;
    Ok(vec![k.finish(rows, &body)?])
}

/// `dx = r * (dy * w) - x * r^3 * mean(dy * w * x)` with `r = 1 / sqrt(mean(x^2) + eps)`.
pub(crate) fn emit_grad(
    cx: &Ctx,
    eps: f64,
    inputs: &[Operand],
    out: &Operand,
) -> Result<Vec<Kernel>, CodegenError> {
    let [x, w, dy] = inputs else { return Err(cx.unsupported()) };
    let d = w.region.elems;
    let rows = x.region.elems / d;
    let eps = cx.site.f32_lit("eps", eps)?;
    let mut body = String::new();
    let _ = write!(
        body,
        "let base = i * {d}u;\n\
         var total = 0.0;\n\
         var dot = 0.0;\n\
         for (var j = 0u; j < {d}u; j++) {{\n    let v = ld_x(base + j);\n    total += v * v;\n    dot += ld_dy(base + j) * ld_w(j) * v;\n}}\n\
         let r = 1.0 / sqrt(total / {d}.0 + {eps});\n\
         let c = r * r * r * dot / {d}.0;\n\
         for (var j = 0u; j < {d}u; j++) {{\n    st_dx(base + j, r * ld_dy(base + j) * ld_w(j) - ld_x(base + j) * c);\n}}\n"
    );
    let title = format!("rms_norm_grad(eps={eps})");
    let mut k = KernelBuilder::new(cx.site, cx.limits, &cx.kernel_name(""), &title);
    k.read("x", &x.region)?;
    k.read("w", &w.region)?;
    k.read("dy", &dy.region)?;
    k.write("dx", &out.region)?;
    Ok(vec![k.finish(rows, &body)?])
}

/// `dw[j] = sum over rows of dy * x * r`, in two kernels: each row's `r`
/// (one thread per row, into a scratch buffer of `rows` values), then one
/// thread per column summing over the rows. Recomputing `r` inside the column
/// loop would read `x` `d` times over.
pub(crate) fn emit_weight_grad(
    cx: &mut Ctx,
    eps: f64,
    inputs: &[Operand],
    out: &Operand,
) -> Result<Vec<Kernel>, CodegenError> {
    let [x, dy] = inputs else { return Err(cx.unsupported()) };
    let d = out.region.elems;
    let rows = x.region.elems / d;
    let eps = cx.site.f32_lit("eps", eps)?;
    let r_buffer = cx.add_buffer("rms", rows * 4, BufferRole::Scratch, vec![rows as usize]);
    let r_region = Region::whole(&r_buffer, rows);

    let body = row_inverse_rms(d, &eps, "r") + "st_r(i, r);\n";
    let title = format!("rms_norm_weight_grad(eps={eps}): each row's 1 / rms");
    let mut per_row = KernelBuilder::new(cx.site, cx.limits, &cx.kernel_name("rows"), &title);
    per_row.read("x", &x.region)?;
    per_row.write("r", &r_region)?;
    let per_row = per_row.finish(rows, &body)?;

    let mut body = String::new();
    let _ = write!(
        body,
        "var acc = 0.0;\n\
         for (var row = 0u; row < {rows}u; row++) {{\n\
         \x20   let at = row * {d}u + i;\n\
         \x20   acc += ld_dy(at) * ld_x(at) * ld_r(row);\n\
         }}\n\
         st_dw(i, acc);\n"
    );
    let title = format!("rms_norm_weight_grad(eps={eps}): sum over rows");
    let mut per_column = KernelBuilder::new(cx.site, cx.limits, &cx.kernel_name(""), &title);
    per_column.read("x", &x.region)?;
    per_column.read("dy", &dy.region)?;
    per_column.read("r", &r_region)?;
    per_column.write("dw", &out.region)?;
    Ok(vec![per_row, per_column.finish(d, &body)?])
}

/// WGSL for thread `i`'s row of `x` (`d` values from `base`): `let {name}` is
/// its `1 / sqrt(mean(x^2) + eps)`.
fn row_inverse_rms(d: u64, eps: &str, name: &str) -> String {
    format!(
        "let base = i * {d}u;\n\
         var total = 0.0;\n\
         for (var j = 0u; j < {d}u; j++) {{\n    let v = ld_x(base + j);\n    total += v * v;\n}}\n\
         let {name} = 1.0 / sqrt(total / {d}.0 + {eps});\n"
    )
}
