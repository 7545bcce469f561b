//! softmax, its gradient, and reduce sum/max/mean along one axis: one thread
//! per row, a row being the `n` elements `base + j * inner` that share all
//! other coordinates.

use std::fmt::Write;

use weft_ir::graph::Op;

use super::CodegenError;
use super::builder::{KernelBuilder, split_at_axis};
use super::{Ctx, Operand};
use crate::kernel::Kernel;

pub(crate) fn emit(
    cx: &Ctx,
    op: &Op,
    inputs: &[Operand],
    out: &Operand,
) -> Result<Vec<Kernel>, CodegenError> {
    if let (Op::SoftmaxGrad { axis }, [y, dy]) = (op, inputs) {
        return softmax_grad(cx, op, *axis, y, dy, out);
    }
    let (
        [x],
        Op::Softmax { axis } | Op::ReduceSum { axis } | Op::ReduceMax { axis } | Op::ReduceMean { axis },
    ) = (inputs, op)
    else {
        return Err(cx.unsupported());
    };
    let (outer, n, inner) = split_at_axis(x.shape, *axis);
    let mut body = String::new();
    let _ = writeln!(body, "let base = (i / {inner}u) * {}u + i % {inner}u;", n * inner);
    let at = |j: &str| format!("ld_x(base + {j} * {inner}u)");
    match op {
        Op::Softmax { .. } => {
            // Subtract the row maximum so large logits do not overflow.
            let _ = write!(
                body,
                "var m = {first};\n\
                 for (var j = 1u; j < {n}u; j++) {{\n    m = max(m, {xj});\n}}\n\
                 var total = 0.0;\n\
                 for (var j = 0u; j < {n}u; j++) {{\n    total += exp({xj} - m);\n}}\n\
                 let inv = 1.0 / total;\n\
                 for (var j = 0u; j < {n}u; j++) {{\n    st_y(base + j * {inner}u, exp({xj} - m) * inv);\n}}\n",
                first = at("0u"),
                xj = at("j"),
            );
        }
        Op::ReduceMax { .. } => {
            let _ = write!(
                body,
                "var m = {first};\nfor (var j = 1u; j < {n}u; j++) {{\n    m = max(m, {xj});\n}}\nst_y(i, m);\n",
                first = at("0u"),
                xj = at("j"),
            );
        }
        _ => {
            let finish = if matches!(op, Op::ReduceMean { .. }) {
                format!("st_y(i, total / {}.0);", n)
            } else {
                "st_y(i, total);".to_string()
            };
            let _ = write!(
                body,
                "var total = 0.0;\nfor (var j = 0u; j < {n}u; j++) {{\n    total += {xj};\n}}\n{finish}\n",
                xj = at("j"),
            );
        }
    }
    let mut k = KernelBuilder::new(cx.site, cx.limits, &cx.kernel_name(""), &op.to_string());
    k.read("x", &x.region)?;
    k.write("y", &out.region)?;
    Ok(vec![k.finish(outer * inner, &body)?])
}

/// `dx = y * (dy - sum(y * dy))` along the row.
fn softmax_grad(
    cx: &Ctx,
    op: &Op,
    axis: usize,
    y: &Operand,
    dy: &Operand,
    out: &Operand,
) -> Result<Vec<Kernel>, CodegenError> {
    let (outer, n, inner) = split_at_axis(y.shape, axis);
    let body = format!(
        "let base = (i / {inner}u) * {row}u + i % {inner}u;\n\
         var dot = 0.0;\n\
         for (var j = 0u; j < {n}u; j++) {{\n    let at = base + j * {inner}u;\n    dot += ld_y(at) * ld_dy(at);\n}}\n\
         for (var j = 0u; j < {n}u; j++) {{\n    let at = base + j * {inner}u;\n    st_dx(at, ld_y(at) * (ld_dy(at) - dot));\n}}\n",
        row = n * inner,
    );
    let mut k = KernelBuilder::new(cx.site, cx.limits, &cx.kernel_name(""), &op.to_string());
    k.read("y", &y.region)?;
    k.read("dy", &dy.region)?;
    k.write("dx", &out.region)?;
    Ok(vec![k.finish(outer * inner, &body)?])
}
