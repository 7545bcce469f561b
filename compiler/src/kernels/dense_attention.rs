//! Dense masked attention, the unfused reference: three kernels around a
//! materialized score matrix, as PyTorch computes it.
//!
//! 1. `scores`: `P = scale · Q Kᵀ`, every (query, key) pair of every head;
//! 2. `softmax`: per query row, softmax over the keys the mask allows, zeros
//!    elsewhere, and a row of zeros when it allows none;
//! 3. `pv`: `O = P V`.
//!
//! The score scratch holds B·H·N rows of N floats. Rows are processed in chunks
//! that fit one storage binding; when the whole matrix is larger than a device
//! buffer the scratch holds as many chunks as fit and is reused.

use std::fmt::Write;

use weft_ir::Mask;

use super::CodegenError;
use super::builder::{KernelBuilder, Region};
use super::{Ctx, Operand};
use crate::kernel::{BufferRole, ElemType, Kernel};
use crate::mask::mask_functions;

pub(crate) fn emit(
    cx: &mut Ctx,
    mask: &Mask,
    head_offset: usize,
    scale: f64,
    inputs: &[Operand],
    out: &Operand,
) -> Result<Vec<Kernel>, CodegenError> {
    let ([q, k, v], &[b, h, n, d], &[_, _, _, dv]) = (inputs, q_shape(inputs), out.shape) else {
        return Err(cx.unsupported());
    };
    let allows = mask_allows(cx, mask, head_offset, h, n)?;
    let scale = cx.site.f32_lit("scale", scale)?;
    let (h, n, d, dv) = (h as u64, n as u64, d as u64, dv as u64);
    let rows = b as u64 * h * n;
    let row_bytes = n * 4;

    // Rows per chunk: all of them if they fit one binding, else the most that
    // fit with chunk offsets at multiples of 256 bytes (64 floats).
    let binding = cx.limits.max_storage_binding.min(cx.limits.max_buffer_size);
    let chunk = if rows * row_bytes <= binding {
        rows
    } else {
        let align = 64 / gcd(n, 64);
        (binding / row_bytes) / align * align
    };
    if chunk == 0 {
        return Err(cx.site.too_large(format!(
            "one row of attention scores ({row_bytes} bytes) does not fit a storage binding \
             of {binding} bytes at 256-byte alignment"
        )));
    }
    let scratch_rows = if rows * row_bytes <= cx.limits.max_buffer_size {
        rows
    } else {
        cx.limits.max_buffer_size / row_bytes / chunk * chunk
    };
    let scores = cx.add_buffer(
        "scores",
        scratch_rows * row_bytes,
        BufferRole::Scratch,
        vec![scratch_rows as usize, n as usize],
    );
    let chunks = rows.div_ceil(chunk);

    let mut kernels = Vec::with_capacity(3 * chunks as usize);
    for c in 0..chunks {
        let row0 = c * chunk;
        let len = chunk.min(rows - row0);
        let p = Region {
            buffer: scores.clone(),
            base: (row0 % scratch_rows) * n,
            elems: len * n,
            total: scratch_rows * n,
            elem: ElemType::F32,
        };
        let name = |stage: &str| {
            if chunks == 1 { cx.kernel_name(stage) } else { cx.kernel_name(&format!("{stage}_c{c}")) }
        };
        let title = |stage: &str| {
            let rows = if chunks == 1 { String::new() } else { format!(", rows {row0}..{}", row0 + len) };
            format!("attention {stage}{rows}; {}", cx_op(mask, head_offset, &scale))
        };

        let mut body = String::new();
        let _ = write!(
            body,
            "let r = {row0}u + i / {n}u;\n\
             let key = i % {n}u;\n\
             let qo = r * {d}u;\n\
             let ko = ((r / {n}u) * {n}u + key) * {d}u;\n\
             var acc = 0.0;\n\
             for (var j = 0u; j < {d}u; j++) {{\n    acc += ld_q(qo + j) * ld_k(ko + j);\n}}\n\
             st_p(i, acc * {scale});\n"
        );
        let mut kb = KernelBuilder::new(cx.site, cx.limits, &name("scores"), &title("scores"));
        kb.read("q", &q.region)?;
        kb.read("k", &k.region)?;
        kb.write("p", &p)?;
        kernels.push(kb.finish(len * n, &body)?);

        let mut body = String::new();
        let _ = write!(
            body,
            "let r = {row0}u + i;\n\
             let h = i32({head_offset}u + (r / {n}u) % {h}u);\n\
             let q = i32(r % {n}u);\n\
             let base = i * {n}u;\n\
             var m = 0.0;\n\
             var seen = false;\n\
             for (var key = 0u; key < {n}u; key++) {{\n\
             \x20   if (mask_allows(h, q, i32(key))) {{\n\
             \x20       let s = ld_p(base + key);\n\
             \x20       if (!seen || s > m) {{\n\
             \x20           m = s;\n\
             \x20       }}\n\
             \x20       seen = true;\n\
             \x20   }}\n\
             }}\n\
             var total = 0.0;\n\
             for (var key = 0u; key < {n}u; key++) {{\n\
             \x20   var e = 0.0;\n\
             \x20   if (mask_allows(h, q, i32(key))) {{\n\
             \x20       e = exp(ld_p(base + key) - m);\n\
             \x20   }}\n\
             \x20   st_p(base + key, e);\n\
             \x20   total += e;\n\
             }}\n\
             // A query that may see no key outputs zeros.\n\
             let inv = select(0.0, 1.0 / total, total > 0.0);\n\
             for (var key = 0u; key < {n}u; key++) {{\n    st_p(base + key, ld_p(base + key) * inv);\n}}\n"
        );
        let mut kb = KernelBuilder::new(cx.site, cx.limits, &name("softmax"), &title("masked softmax"));
        kb.read_write("p", &p)?;
        kb.helper(&allows);
        kernels.push(kb.finish(len, &body)?);

        let mut body = String::new();
        let _ = write!(
            body,
            "let r = {row0}u + i / {dv}u;\n\
             let c = i % {dv}u;\n\
             let po = (i / {dv}u) * {n}u;\n\
             let vo = (r / {n}u) * {}u + c;\n\
             var acc = 0.0;\n\
             for (var key = 0u; key < {n}u; key++) {{\n    acc += ld_p(po + key) * ld_v(vo + key * {dv}u);\n}}\n\
             st_o(r * {dv}u + c, acc);\n",
            n * dv
        );
        let mut kb = KernelBuilder::new(cx.site, cx.limits, &name("pv"), &title("P·V"));
        kb.read("p", &p)?;
        kb.read("v", &v.region)?;
        kb.write("o", &out.region)?;
        kernels.push(kb.finish(len * dv, &body)?);
    }
    Ok(kernels)
}

/// The WGSL `mask_allows(h, q, k)` of heads `head_offset..head_offset + h`.
pub(super) fn mask_allows(
    cx: &Ctx,
    mask: &Mask,
    head_offset: usize,
    h: usize,
    n: usize,
) -> Result<String, CodegenError> {
    let heads = head_offset..head_offset.saturating_add(h);
    // Shapes are baked into the text, so the roll modulus is the number itself.
    mask_functions(&[(heads, mask.clone())], n, &n.to_string()).map_err(|e| CodegenError::Mask {
        op: cx.site.op,
        node: cx.site.node,
        mask: mask.to_string(),
        head: e.head,
        reason: e.reason,
    })
}

/// q's shape, or an empty one to fail the caller's pattern.
fn q_shape<'g>(inputs: &[Operand<'g>]) -> &'g [usize] {
    inputs.first().map_or(&[], |q| q.shape)
}

fn cx_op(mask: &Mask, head_offset: usize, scale: &str) -> String {
    format!("mask `{mask}`, head_offset {head_offset}, scale {scale}")
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}
