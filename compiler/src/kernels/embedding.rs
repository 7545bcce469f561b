//! Embedding lookups and their gradient; the ids are an `i32` buffer.
//!
//! An id outside `0..V` is an error in the interpreter, but a kernel cannot
//! report one: the lookup never reads outside the table and writes NaN for
//! that position's row instead, so a bad id shows up as a NaN loss rather
//! than as someone else's row. The gradient drops such positions (their
//! forward values were NaN already).

use super::CodegenError;
use super::builder::{KernelBuilder, elements};
use super::{Ctx, Operand};
use crate::kernel::Kernel;

/// `fn quiet_nan(seed: u32) -> f32`: a NaN made at run time. WGSL has no NaN
/// literal, and a constant expression evaluating to NaN is a shader-creation
/// error, so the bit pattern is combined with a run-time value (`seed & 0`).
pub(crate) const QUIET_NAN: &str = "fn quiet_nan(seed: u32) -> f32 {\n    \
    return bitcast<f32>(0x7fc00000u | (seed & 0u));\n}\n";

/// `(ids [...], table [V, C]) -> [..., C]`: one thread per output element.
pub(crate) fn emit(cx: &Ctx, inputs: &[Operand], out: &Operand) -> Result<Vec<Kernel>, CodegenError> {
    let [ids, table] = inputs else {
        return Err(cx.unsupported());
    };
    let &[vocab, c] = table.shape else {
        return Err(cx.unsupported());
    };
    let body = format!(
        "let position = i / {c}u;\n\
         let id = ld_ids(position);\n\
         // An id outside the table reads nothing and gives NaN (see the module doc).\n\
         if (id < 0 || id >= {vocab}) {{\n\
         \x20   st_y(i, quiet_nan(i));\n\
         \x20   return;\n\
         }}\n\
         st_y(i, ld_table(u32(id) * {c}u + i % {c}u));\n"
    );
    let mut k = KernelBuilder::new(cx.site, cx.limits, &cx.kernel_name(""), "embedding lookup");
    k.read("ids", &ids.region)?;
    k.read("table", &table.region)?;
    k.write("y", &out.region)?;
    k.helper(QUIET_NAN);
    Ok(vec![k.finish(elements(out.shape), &body)?])
}

/// `(ids [...], dy [..., C]) -> [vocab, C]`: one thread per table row, summing
/// `dy` over every position whose id is that row, in position order.
/// Deterministic (no atomics).
pub(crate) fn emit_grad(cx: &Ctx, inputs: &[Operand], out: &Operand) -> Result<Vec<Kernel>, CodegenError> {
    let ([ids, dy], &[_, c]) = (inputs, out.shape) else {
        return Err(cx.unsupported());
    };
    let positions = elements(ids.shape);
    let vocab = out.shape[0] as u64;
    // One thread per table row: it scans the ids once and adds the rows of dy
    // whose id is its own, so the work is V·P comparisons plus P·C additions
    // (not V·C·P), still in position order and without atomics.
    let body = format!(
        "let row = i32(i);\n\
         let base = i * {c}u;\n\
         for (var j = 0u; j < {c}u; j++) {{\n    st_dtable(base + j, 0.0);\n}}\n\
         for (var p = 0u; p < {positions}u; p++) {{\n\
         \x20   if (ld_ids(p) == row) {{\n\
         \x20       for (var j = 0u; j < {c}u; j++) {{\n\
         \x20           st_dtable(base + j, ld_dtable(base + j) + ld_dy(p * {c}u + j));\n\
         \x20       }}\n\
         \x20   }}\n\
         }}\n"
    );
    let mut k = KernelBuilder::new(cx.site, cx.limits, &cx.kernel_name(""), "embedding gradient (gather)");
    k.read("ids", &ids.region)?;
    k.read("dy", &dy.region)?;
    k.read_write("dtable", &out.region)?;
    Ok(vec![k.finish(vocab, &body)?])
}
