//! The WGSL modules of the four attention kernels.
//!
//! Each module is a header (constants specialized on [`AttentionShape`], the
//! `Params` uniform, the bindings), the mask functions, and an entry point
//! written out for the shape (`bodies.rs`).

use super::{AttentionKernel, AttentionShape, EMPTY_ROW_LSE, bodies};
use crate::kernel::Access;

/// One binding of a kernel: the WGSL variable, the plan buffer behind it and how it is used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BindingSpec {
    pub var: &'static str,
    /// The plan buffer name (`params`, `blocks_fwd`, `blocks_bwd`, `q`, `k`, `v`,
    /// `o`, `lse`, `do`, `delta`, `dq`, `dk`, `dv`).
    pub buffer: &'static str,
    pub access: Access,
    /// The WGSL store type.
    pub ty: &'static str,
}

/// An emitted kernel module, before validation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelSource {
    /// `fwd`, `bwd_delta`, `bwd_dkdv` or `bwd_dq`.
    pub kind: &'static str,
    pub wgsl: String,
    pub workgroup_size: u32,
    /// `bindings[i]` is `@binding(i)`.
    pub bindings: Vec<BindingSpec>,
}

const ROWS: &str = "array<vec4<f32>>";

const fn bind(var: &'static str, buffer: &'static str, access: Access, ty: &'static str) -> BindingSpec {
    BindingSpec { var, buffer, access, ty }
}

const PARAMS: BindingSpec = bind("params", "params", Access::Uniform, "Params");

/// The RoPE table `[N, 2, D]` as rows of vec4: per position, cosines then signed sines.
const ROPE: BindingSpec = bind("rope", "rope", Access::Read, ROWS);

/// Appends the RoPE table's binding when the kernels rotate on load.
fn with_rope(shape: &AttentionShape, mut bindings: Vec<BindingSpec>) -> Vec<BindingSpec> {
    if shape.rope {
        bindings.push(ROPE);
    }
    bindings
}

/// The forward kernel: `O` and `L` for every query block.
pub fn forward_kernel(shape: &AttentionShape, masks: &str) -> KernelSource {
    let bindings = vec![
        PARAMS,
        bind("blocks", "blocks_fwd", Access::Read, "array<u32>"),
        bind("q", "q", Access::Read, ROWS),
        bind("k", "k", Access::Read, ROWS),
        bind("v", "v", Access::Read, ROWS),
        bind("o", "o", Access::ReadWrite, ROWS),
        bind("lse", "lse", Access::ReadWrite, "array<f32>"),
    ];
    let bindings = with_rope(shape, bindings);
    let wg = shape.forward_workgroup();
    let about = "forward: per query block, online softmax (FlashAttention-2) over the\n\
        // non-empty key blocks of the forward block table; writes O and the row log-sum-exp L.";
    let body = bodies::forward(shape);
    assemble("fwd", shape, about, wg, bindings, masks, &body)
}

/// The backward preprocess: `delta = rowsum(dO * O)`, stored as `(L, delta)` pairs.
pub fn delta_kernel(shape: &AttentionShape) -> KernelSource {
    let bindings = vec![
        PARAMS,
        bind("o", "o", Access::Read, ROWS),
        bind("lse", "lse", Access::Read, "array<f32>"),
        bind("dout", "do", Access::Read, ROWS),
        bind("stats", "delta", Access::ReadWrite, "array<vec2<f32>>"),
    ];
    let about = "backward preprocess: delta = rowsum(dO * O), one row per invocation,\n\
        // stored next to the row's log-sum-exp as (L, delta).";
    assemble("bwd_delta", shape, about, shape.delta_workgroup, bindings, "", &bodies::delta(shape))
}

/// The backward dK/dV kernel: per key block, over the transposed block table.
pub fn dkdv_kernel(shape: &AttentionShape, masks: &str) -> KernelSource {
    let bindings = vec![
        PARAMS,
        bind("blocks", "blocks_bwd", Access::Read, "array<u32>"),
        bind("q", "q", Access::Read, ROWS),
        bind("k", "k", Access::Read, ROWS),
        bind("v", "v", Access::Read, ROWS),
        bind("dout", "do", Access::Read, ROWS),
        bind("stats", "delta", Access::Read, "array<vec2<f32>>"),
        bind("dk", "dk", Access::ReadWrite, ROWS),
        bind("dv", "dv", Access::ReadWrite, ROWS),
    ];
    let bindings = with_rope(shape, bindings);
    let about = "backward dK/dV: per key block, over the non-empty query blocks of the\n\
        // transposed block table, recomputing P = exp(S - L) (FlashAttention-2).";
    let body = bodies::dkdv(shape);
    assemble("bwd_dkdv", shape, about, shape.dkdv_workgroup(), bindings, masks, &body)
}

/// The backward dQ kernel: per query block, over the forward block table.
pub fn dq_kernel(shape: &AttentionShape, masks: &str) -> KernelSource {
    let bindings = vec![
        PARAMS,
        bind("blocks", "blocks_fwd", Access::Read, "array<u32>"),
        bind("q", "q", Access::Read, ROWS),
        bind("k", "k", Access::Read, ROWS),
        bind("v", "v", Access::Read, ROWS),
        bind("dout", "do", Access::Read, ROWS),
        bind("stats", "delta", Access::Read, "array<vec2<f32>>"),
        bind("dq", "dq", Access::ReadWrite, ROWS),
    ];
    let bindings = with_rope(shape, bindings);
    let about = "backward dQ: per query block, over the non-empty key blocks of the\n\
        // forward block table, recomputing P = exp(S - L) (FlashAttention-2).";
    let body = bodies::dq(shape);
    assemble("bwd_dq", shape, about, shape.forward_workgroup(), bindings, masks, &body)
}

/// A WGSL `f32` literal that parses back to exactly `x`.
fn f32_literal(x: f32) -> String {
    format!("{x:?}f")
}

fn assemble(
    kind: &'static str,
    shape: &AttentionShape,
    about: &str,
    workgroup: usize,
    bindings: Vec<BindingSpec>,
    masks: &str,
    body: &str,
) -> KernelSource {
    let mut w = String::new();
    w.push_str(&format!("// weft fused attention `{}`, {about}\n", shape.name));
    w.push_str("// Generated by weft-compiler; one workgroup per (block, batch x head) of a chunk.\n");
    if shape.kernel == AttentionKernel::Subgroup && kind != "bwd_delta" {
        w.push_str("// Visited rows are loaded once per subgroup of 8 lanes and broadcast.\n");
    }
    w.push('\n');
    let consts: [(&str, String, &str); 15] = [
        ("N", format!("{}u", shape.seq_len), "sequence length"),
        ("NI", format!("{}", shape.seq_len), "sequence length, signed"),
        ("H", format!("{}u", shape.n_heads), "heads"),
        ("D4", format!("{}u", shape.head_dim / 4), "head dimension / 4"),
        ("BQ", format!("{}u", shape.block_q), "query block"),
        ("BK", format!("{}u", shape.block_k), "key block"),
        ("NQB", format!("{}u", shape.q_blocks()), "query blocks"),
        ("NKB", format!("{}u", shape.k_blocks()), "key blocks"),
        ("R", format!("{}u", shape.rows_per_invocation), "rows per invocation"),
        ("WG", format!("{workgroup}u"), "invocations per workgroup"),
        ("SCALE", f32_literal(shape.scale), "softmax scale"),
        ("NEG", f32_literal(-EMPTY_ROW_LSE), "score of a masked pair"),
        ("EMPTY_LSE", f32_literal(EMPTY_ROW_LSE), "L of a query that sees no key"),
        ("TABLE", format!("{}u", shape.n_heads), "first row pointer of a block table"),
        ("ENTRY_PARTIAL", "1u".to_string(), "table entry bit: partial tile"),
    ];
    for (name, value, comment) in consts {
        let ty = if value.ends_with('u') {
            "u32"
        } else if value.ends_with('f') {
            "f32"
        } else {
            "i32"
        };
        w.push_str(&format!("const {name}: {ty} = {value}; // {comment}\n"));
    }
    if bindings.contains(&ROPE) {
        let rs = shape.head_dim / 2;
        w.push_str(&format!(
            "const RS: u32 = {rs}u; // RoPE table row in vec4s: D cosines, then D signed sines\n"
        ));
    }
    w.push_str(
        "\n// The chunk of (batch, head) pairs this dispatch covers; tensors are bound\n\
         // from the chunk's first pair on.\n\
         struct Params {\n    bh0: u32,\n    bh_count: u32,\n    pad0: u32,\n    pad1: u32,\n}\n\n",
    );
    for (i, b) in bindings.iter().enumerate() {
        let space = match b.access {
            Access::Uniform => "uniform".to_string(),
            Access::Read => "storage, read".to_string(),
            Access::ReadWrite => "storage, read_write".to_string(),
        };
        w.push_str(&format!("@group(0) @binding({i}) var<{space}> {}: {};\n", b.var, b.ty));
    }
    if !masks.is_empty() {
        w.push('\n');
        w.push_str(masks);
    }
    w.push('\n');
    w.push_str(body);
    KernelSource { kind, wgsl: w, workgroup_size: workgroup as u32, bindings }
}
