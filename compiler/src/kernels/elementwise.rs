//! add, mul, scale, exp, log, silu, sigmoid, erf: one thread per element. The
//! per-op expressions live here; `fusion.rs` chains them into one kernel.

use weft_ir::graph::{Op, UnaryOp};

use super::builder::KernelBuilder;
use super::{CodegenError, Site};
use super::{Ctx, Operand};
use crate::kernel::Kernel;

/// Whether `op` maps equal-shaped operands to a result of the same shape, one
/// element at a time.
pub(crate) fn is_elementwise(op: &Op) -> bool {
    matches!(op, Op::Add | Op::Mul | Op::Scale { .. } | Op::Unary(_))
}

/// The WGSL f32 expression of `op` on `args`, each a plain identifier or call
/// (so no operand needs parentheses).
pub(crate) fn expr(site: Site, op: &Op, args: &[&str]) -> Result<String, CodegenError> {
    let unsupported = || CodegenError::Unsupported { op: site.op, node: site.node };
    Ok(match (op, args) {
        (Op::Add, [a, b]) => format!("{a} + {b}"),
        (Op::Mul, [a, b]) => format!("{a} * {b}"),
        (Op::Scale { factor }, [x]) => format!("{x} * {}", site.f32_lit("factor", *factor)?),
        (Op::Unary(op), [x]) => unary(*op, x),
        _ => return Err(unsupported()),
    })
}

/// The WGSL expression of a unary op (see `weft_ir::graph::UnaryOp`): the one
/// place a new unary op needs code in the compiler.
fn unary(op: UnaryOp, x: &str) -> String {
    match op {
        UnaryOp::Exp => format!("exp({x})"),
        UnaryOp::Log => format!("log({x})"),
        // x / (1 + e^-x) rather than x * sigmoid(x): one division, and -0 instead of NaN when e^-x overflows.
        UnaryOp::Silu => format!("{x} / (1.0 + exp(-{x}))"),
        UnaryOp::Sigmoid => format!("1.0 / (1.0 + exp(-{x}))"),
        // WGSL has no erf: Abramowitz & Stegun 7.1.26, |error| <= 1.5e-7 for every x,
        // erf(|x|) = 1 - t (a1 + t (a2 + t (a3 + t (a4 + t a5)))) e^(-x²), t = 1 / (1 + p |x|).
        UnaryOp::Erf => {
            let t = format!("(1.0 / (1.0 + 0.3275911 * abs({x})))");
            format!(
                "sign({x}) * (1.0 - {t} * (0.254829592 + {t} * (-0.284496736 + {t} * (1.421413741 \
                 + {t} * (-1.453152027 + {t} * 1.061405429)))) * exp(-{x} * {x}))"
            )
        }
    }
}

/// One op on its own (a node no fusion group took).
pub(crate) fn emit(
    cx: &Ctx,
    op: &Op,
    inputs: &[Operand],
    out: &Operand,
) -> Result<Vec<Kernel>, CodegenError> {
    let mut k = KernelBuilder::new(cx.site, cx.limits, &cx.kernel_name(""), &op.to_string());
    let args: &[&str] = match inputs {
        [a, b] => {
            k.read("a", &a.region)?;
            k.read("b", &b.region)?;
            &["ld_a(i)", "ld_b(i)"]
        }
        [x] => {
            k.read("x", &x.region)?;
            &["ld_x(i)"]
        }
        _ => return Err(cx.unsupported()),
    };
    let expr = expr(cx.site, op, args)?;
    k.write("y", &out.region)?;
    Ok(vec![k.finish(out.region.elems, &format!("st_y(i, {expr});"))?])
}
