//! Rotary embedding of `[B, H, N, D]`, Hugging Face `rotate_half` layout.
//!
//! The angles reach thousands of radians at long context, where f32
//! arithmetic and the GPU's sin/cos lose digits; so, like Hugging Face's
//! cos/sin cache, the compiler computes the table in f64
//! ([`RopeParams::table`], shared with the fused attention kernels) and ships
//! it as a constant buffer `[N, 2, D]`.

use std::fmt::Write;

use weft_ir::graph::RopeParams;

use super::CodegenError;
use super::builder::{KernelBuilder, Region};
use super::{Ctx, Operand};
use crate::kernel::{BufferRole, Kernel};

pub(crate) fn emit(
    cx: &mut Ctx,
    rope: RopeParams,
    inputs: &[Operand],
    out: &Operand,
) -> Result<Vec<Kernel>, CodegenError> {
    let ([x], &[_, _, n, d]) = (inputs, out.shape) else { return Err(cx.unsupported()) };
    let half = d / 2;
    let table = rope.table(n, d);
    let table: Vec<u8> = table.iter().flat_map(|v| v.to_le_bytes()).collect();
    let elems = (n * 2 * d) as u64;
    let name = cx.add_buffer("rope_table", elems * 4, BufferRole::Const(table), vec![n, 2, d]);

    let mut body = String::new();
    let _ = write!(
        body,
        "let j = i % {d}u;\n\
         let p = (i / {d}u) % {n}u;\n\
         let t = p * {two_d}u + j;\n\
         var partner: f32;\n\
         if (j < {half}u) {{\n    partner = ld_x(i + {half}u);\n}} else {{\n    partner = ld_x(i - {half}u);\n}}\n\
         st_y(i, ld_x(i) * ld_t(t) + partner * ld_t(t + {d}u));\n",
        two_d = 2 * d
    );
    let title = format!("{rope}, table [N, (cos, signed sin), D]");
    let mut k = KernelBuilder::new(cx.site, cx.limits, &cx.kernel_name(""), &title);
    k.read("x", &x.region)?;
    k.read("t", &Region::whole(&name, elems))?;
    k.write("y", &out.region)?;
    Ok(vec![k.finish(out.region.elems, &body)?])
}
