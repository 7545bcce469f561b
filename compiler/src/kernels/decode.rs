//! The decoding ops: RoPE by per-row rotation rows, and one query per row
//! against a KV cache (flash-decoding: the cache is split into chunks of
//! slots scored in parallel, then the chunks' partial softmaxes are combined
//! with the new key's term).
//!
//! `cached-attention` runs as two kernels:
//! 1. `partials`: one invocation per (row, query head, chunk of `CHUNK`
//!    slots): the running max `m`, sum `l` and `Σ e^(s - m)·v` of the slots
//!    that hold a position before the query's and that the head's mask
//!    allows, into a scratch `[B, H, chunks, 2 + Dv]`;
//! 2. `combine`: one invocation per output element: the chunks' partials
//!    rescaled to their common max, plus the new key (at the query's own
//!    position, when the mask allows it), normalized. A query that may see no
//!    key outputs zeros, as every attention kernel does.
//!
//! The mask is evaluated at the query's absolute position `p` and the slot's,
//! in a sequence of `p + 1` positions (the roll modulus, `n_seq`).

use std::fmt::Write;

use weft_ir::graph::HeadMask;

use super::CodegenError;
use super::builder::{KernelBuilder, Region};
use super::{Ctx, Operand};
use crate::kernel::{BufferRole, ElemType, Kernel};
use crate::mask::mask_functions;

/// Cache slots one `partials` invocation scores.
const CHUNK: u64 = 64;

/// The largest head dimension of values the kernels keep in registers.
const MAX_DV: usize = 256;

/// Positions the mask arithmetic is checked at (`check_sizes`): a cache's
/// positions are not known when the plan is made, so the kernel's `i32`
/// arithmetic is proven for every position below 2^29.
const MAX_POSITION: usize = 1 << 29;

pub(crate) fn emit_rope_table(
    cx: &mut Ctx,
    inputs: &[Operand],
    out: &Operand,
) -> Result<Vec<Kernel>, CodegenError> {
    let ([x, table], &[_, h, t, d]) = (inputs, out.shape) else { return Err(cx.unsupported()) };
    let half = d / 2;
    let mut body = String::new();
    let _ = write!(
        body,
        "let j = i % {d}u;\n\
         let token = (i / {d}u) % {t}u;\n\
         let row = i / {row_stride}u;\n\
         let r = (row * {t}u + token) * {two_d}u + j;\n\
         var partner: f32;\n\
         if (j < {half}u) {{\n    partner = ld_x(i + {half}u);\n}} else {{\n    partner = ld_x(i - {half}u);\n}}\n\
         st_y(i, ld_x(i) * ld_t(r) + partner * ld_t(r + {d}u));\n",
        row_stride = h * t * d,
        two_d = 2 * d
    );
    let title = "rope by table [B, T, (cos, signed sin), D]";
    let mut k = KernelBuilder::new(cx.site, cx.limits, &cx.kernel_name(""), title);
    k.read("x", &x.region)?;
    k.read("t", &table.region)?;
    k.write("y", &out.region)?;
    Ok(vec![k.finish(out.region.elems, &body)?])
}

pub(crate) fn emit_cached_attention(
    cx: &mut Ctx,
    heads: &[HeadMask],
    scale: f64,
    inputs: &[Operand],
    out: &Operand,
) -> Result<Vec<Kernel>, CodegenError> {
    let [q, k_new, v_new, k_cache, v_cache, slots, positions] = inputs else { return Err(cx.unsupported()) };
    let (&[b, h, _, d], &[_, g, c, dv]) = (q.shape, v_cache.shape) else { return Err(cx.unsupported()) };
    if dv > MAX_DV || g == 0 || h % g != 0 || c == 0 {
        return Err(cx.unsupported());
    }
    let groups: Vec<_> = heads.iter().map(|e| (e.heads.clone(), e.mask.clone())).collect();
    let masks = mask_functions(&groups, MAX_POSITION, "n_seq").map_err(|e| CodegenError::Mask {
        op: cx.site.op,
        node: cx.site.node,
        mask: heads.iter().map(|e| e.mask.to_string()).collect::<Vec<_>>().join(", "),
        head: e.head,
        reason: e.reason,
    })?;
    let masks = format!("var<private> n_seq: i32;\n{masks}");
    let scale = cx.site.f32_lit("scale", scale)?;
    let (b, h, d, g, c, dv) = (b as u64, h as u64, d as u64, g as u64, c as u64, dv as u64);
    let per_kv = h / g;
    let chunks = c.div_ceil(CHUNK);
    let stride = 2 + dv;
    let partials = cx.add_buffer(
        "partials",
        b * h * chunks * stride * 4,
        BufferRole::Scratch,
        vec![(b * h * chunks) as usize, stride as usize],
    );
    let partials = Region::whole(&partials, b * h * chunks * stride);
    let ints = |o: &Operand| o.region.clone().with_elem(ElemType::I32);

    // 1. Each chunk's partial softmax.
    let mut body = String::new();
    let _ = write!(
        body,
        "let chunk = i % {chunks}u;\n\
         let head = (i / {chunks}u) % {h}u;\n\
         let row = i / ({chunks}u * {h}u);\n\
         let kv = head / {per_kv}u;\n\
         let p = ld_pos(row);\n\
         n_seq = p + 1;\n\
         let qo = (row * {h}u + head) * {d}u;\n\
         var m = 0.0;\n\
         var l = 0.0;\n\
         var acc: array<f32, {dv}>;\n\
         for (var j = 0u; j < {dv}u; j++) {{\n    acc[j] = 0.0;\n}}\n\
         let first = chunk * {CHUNK}u;\n\
         let last = min(first + {CHUNK}u, {c}u);\n\
         for (var slot = first; slot < last; slot++) {{\n\
         \x20   let at = (row * {g}u + kv) * {c}u + slot;\n\
         \x20   let s = ld_slots(at);\n\
         \x20   if (s < 0 || s >= p || !mask_allows(i32(head), p, s)) {{\n        continue;\n    }}\n\
         \x20   var score = 0.0;\n\
         \x20   for (var j = 0u; j < {d}u; j++) {{\n        score += ld_q(qo + j) * ld_kc(at * {d}u + j);\n    }}\n\
         \x20   score *= {scale};\n\
         \x20   // Online softmax: rescale what is summed so far to the new max.\n\
         \x20   let m_new = select(score, max(m, score), l > 0.0);\n\
         \x20   let old = select(0.0, exp(m - m_new), l > 0.0);\n\
         \x20   let e = exp(score - m_new);\n\
         \x20   l = l * old + e;\n\
         \x20   for (var j = 0u; j < {dv}u; j++) {{\n        acc[j] = acc[j] * old + e * ld_vc(at * {dv}u + j);\n    }}\n\
         \x20   m = m_new;\n\
         }}\n\
         let po = i * {stride}u;\n\
         st_part(po, m);\n\
         st_part(po + 1u, l);\n\
         for (var j = 0u; j < {dv}u; j++) {{\n    st_part(po + 2u + j, acc[j]);\n}}\n"
    );
    let title = format!("cached attention partials, {CHUNK} slots per invocation; scale {scale}");
    let mut kb = KernelBuilder::new(cx.site, cx.limits, &cx.kernel_name("partials"), &title);
    kb.read("q", &q.region)?;
    kb.read("kc", &k_cache.region)?;
    kb.read("vc", &v_cache.region)?;
    kb.read("slots", &ints(slots))?;
    kb.read("pos", &ints(positions))?;
    kb.write("part", &partials)?;
    kb.helper(&masks);
    let first = kb.finish(b * h * chunks, &body)?;

    // 2. The chunks and the new key, combined and normalized.
    let mut body = String::new();
    let _ = write!(
        body,
        "let col = i % {dv}u;\n\
         let head = (i / {dv}u) % {h}u;\n\
         let row = i / ({dv}u * {h}u);\n\
         let kv = head / {per_kv}u;\n\
         let p = ld_pos(row);\n\
         n_seq = p + 1;\n\
         let qo = (row * {h}u + head) * {d}u;\n\
         let ko = (row * {g}u + kv) * {d}u;\n\
         // The new key's score, when the mask lets the query see itself.\n\
         let own = mask_allows(i32(head), p, p);\n\
         var s_own = 0.0;\n\
         for (var j = 0u; j < {d}u; j++) {{\n    s_own += ld_q(qo + j) * ld_kn(ko + j);\n}}\n\
         s_own *= {scale};\n\
         var m = select(0.0, s_own, own);\n\
         var any = own;\n\
         let base = (row * {h}u + head) * {chunks}u;\n\
         for (var chunk = 0u; chunk < {chunks}u; chunk++) {{\n\
         \x20   let po = (base + chunk) * {stride}u;\n\
         \x20   if (ld_part(po + 1u) > 0.0) {{\n\
         \x20       m = select(ld_part(po), max(m, ld_part(po)), any);\n\
         \x20       any = true;\n\
         \x20   }}\n\
         }}\n\
         var l = select(0.0, exp(s_own - m), own);\n\
         var o = select(0.0, exp(s_own - m) * ld_vn((row * {g}u + kv) * {dv}u + col), own);\n\
         for (var chunk = 0u; chunk < {chunks}u; chunk++) {{\n\
         \x20   let po = (base + chunk) * {stride}u;\n\
         \x20   let lc = ld_part(po + 1u);\n\
         \x20   if (lc > 0.0) {{\n\
         \x20       let w = exp(ld_part(po) - m);\n\
         \x20       l += lc * w;\n\
         \x20       o += ld_part(po + 2u + col) * w;\n\
         \x20   }}\n\
         }}\n\
         st_o(i, select(0.0, o / l, l > 0.0));\n"
    );
    let title = format!("cached attention: combine {chunks} chunks and the new key; scale {scale}");
    let mut kb = KernelBuilder::new(cx.site, cx.limits, &cx.kernel_name("combine"), &title);
    kb.read("q", &q.region)?;
    kb.read("kn", &k_new.region)?;
    kb.read("vn", &v_new.region)?;
    kb.read("pos", &ints(positions))?;
    kb.read("part", &partials)?;
    kb.write("o", &out.region)?;
    kb.helper(&masks);
    let second = kb.finish(b * h * dv, &body)?;
    Ok(vec![first, second])
}
