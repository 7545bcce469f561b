//! add, mul, scale, exp, log, silu, sigmoid: one thread per element.

use weft_ir::graph::Op;

use super::CodegenError;
use super::builder::KernelBuilder;
use super::plan::{Ctx, Operand};
use crate::kernel::Kernel;

pub(crate) fn emit(
    cx: &Ctx,
    op: &Op,
    inputs: &[Operand],
    out: &Operand,
) -> Result<Vec<Kernel>, CodegenError> {
    let expr = match op {
        Op::Add => "ld_a(i) + ld_b(i)".to_string(),
        Op::Mul => "ld_a(i) * ld_b(i)".to_string(),
        Op::Scale { factor } => format!("ld_x(i) * {}", cx.site.f32_lit("factor", *factor)?),
        Op::Exp => "exp(ld_x(i))".to_string(),
        Op::Log => "log(ld_x(i))".to_string(),
        // x / (1 + e^-x) rather than x * sigmoid(x): one division, and -0 instead of NaN when e^-x overflows.
        Op::Silu => "ld_x(i) / (1.0 + exp(-ld_x(i)))".to_string(),
        Op::Sigmoid => "1.0 / (1.0 + exp(-ld_x(i)))".to_string(),
        _ => return Err(cx.unsupported()),
    };
    let mut k = KernelBuilder::new(cx.site, cx.opts, &cx.kernel_name(""), &op.to_string());
    match inputs {
        [a, b] => {
            k.read("a", &a.region)?;
            k.read("b", &b.region)?;
        }
        [x] => k.read("x", &x.region)?,
        _ => return Err(cx.unsupported()),
    }
    k.write("y", &out.region)?;
    Ok(vec![k.finish(out.region.elems, &format!("st_y(i, {expr});"))?])
}
