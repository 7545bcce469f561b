//! Rotary embedding of `[B, H, N, D]`, Hugging Face `rotate_half` layout.
//!
//! The angles `(p / position_scale) · theta^(−2i/D)` reach thousands of
//! radians at long context, where f32 arithmetic and the GPU's sin/cos lose
//! digits; so, like Hugging Face's cos/sin cache, the compiler computes the
//! table in f64 and ships it as a constant buffer `[N, D/2, (cos, sin)]`.

use std::fmt::Write;

use super::CodegenError;
use super::builder::{KernelBuilder, Region};
use super::{Ctx, Operand};
use crate::kernel::{BufferRole, Kernel};

pub(crate) fn emit(
    cx: &mut Ctx,
    theta: f64,
    position_scale: f64,
    inputs: &[Operand],
    out: &Operand,
) -> Result<Vec<Kernel>, CodegenError> {
    let ([x], &[_, _, n, d]) = (inputs, out.shape) else { return Err(cx.unsupported()) };
    let half = d / 2;
    let mut table = Vec::with_capacity(n * d * 4);
    for p in 0..n {
        let position = p as f64 / position_scale;
        for i in 0..half {
            let angle = position * theta.powf(-2.0 * i as f64 / d as f64);
            table.extend_from_slice(&(angle.cos() as f32).to_le_bytes());
            table.extend_from_slice(&(angle.sin() as f32).to_le_bytes());
        }
    }
    let elems = (n * d) as u64;
    let name = cx.add_buffer("rope_table", elems * 4, BufferRole::Const(table), vec![n, half, 2]);

    let mut body = String::new();
    let _ = write!(
        body,
        "let j = i % {d}u;\n\
         let p = (i / {d}u) % {n}u;\n\
         let t = (p * {half}u + j % {half}u) * 2u;\n\
         var rotated: f32;\n\
         if (j < {half}u) {{\n    rotated = -ld_x(i + {half}u);\n}} else {{\n    rotated = ld_x(i - {half}u);\n}}\n\
         st_y(i, ld_x(i) * ld_t(t) + rotated * ld_t(t + 1u));\n"
    );
    let title =
        format!("rope(theta={theta:?}, position_scale={position_scale:?}), table [N, D/2, (cos, sin)]");
    let mut k = KernelBuilder::new(cx.site, cx.limits, &cx.kernel_name(""), &title);
    k.read("x", &x.region)?;
    k.read("t", &Region::whole(&name, elems))?;
    k.write("y", &out.region)?;
    Ok(vec![k.finish(out.region.elems, &body)?])
}
