//! Batched matmul over the last two axes, either operand transposed.
//!
//! Each thread computes a 4×4 output tile in registers and reads its operands
//! straight from storage: on lavapipe this beats workgroup-memory tiling
//! (barriers are emulated), and it is correct everywhere. Speed comes later.

use std::fmt::Write;

use super::CodegenError;
use super::builder::KernelBuilder;
use super::plan::{Ctx, Operand};
use crate::kernel::Kernel;

const T: u64 = 4;

pub(crate) fn emit(
    cx: &Ctx,
    ta: bool,
    tb: bool,
    inputs: &[Operand],
    out: &Operand,
) -> Result<Vec<Kernel>, CodegenError> {
    let [a, b] = inputs else { return Err(cx.unsupported()) };
    let r = a.shape.len();
    if r < 2 || b.shape.len() != r || out.shape.len() != r {
        return Err(cx.unsupported());
    }
    let dim = |s: &[usize], i: usize| s[i] as u64;
    let (ar, ac, br, bc) =
        (dim(a.shape, r - 2), dim(a.shape, r - 1), dim(b.shape, r - 2), dim(b.shape, r - 1));
    let (m, n) = (dim(out.shape, r - 2), dim(out.shape, r - 1));
    let k = if ta { ar } else { ac };
    let batch: u64 = out.shape[..r - 2].iter().map(|&d| d as u64).product();
    let (tm, tn) = (m.div_ceil(T), n.div_ceil(T));

    let a_at =
        |row: &str, p: &str| if ta { format!("{p} * {ac}u + {row}") } else { format!("{row} * {ac}u + {p}") };
    let b_at =
        |p: &str, col: &str| if tb { format!("{col} * {bc}u + {p}") } else { format!("{p} * {bc}u + {col}") };

    let mut body = String::new();
    let _ = writeln!(body, "let col0 = (i % {tn}u) * {T}u;");
    let _ = writeln!(body, "let row0 = ((i / {tn}u) % {tm}u) * {T}u;");
    let _ = writeln!(body, "let batch = i / {};", tm * tn);
    let _ = writeln!(body, "let a0 = batch * {}u;", ar * ac);
    let _ = writeln!(body, "let b0 = batch * {}u;", br * bc);
    // Edge tiles read a clamped row/column and drop it on store.
    for t in 0..T {
        let _ = writeln!(body, "let r{t} = min(row0 + {t}u, {}u);", m - 1);
        let _ = writeln!(body, "let c{t} = min(col0 + {t}u, {}u);", n - 1);
    }
    for t in 0..T {
        let _ = writeln!(body, "var acc{t} = vec4<f32>(0.0);");
    }
    let _ = writeln!(body, "for (var p = 0u; p < {k}u; p++) {{");
    let cols: Vec<String> = (0..T).map(|t| format!("ld_b(b0 + {})", b_at("p", &format!("c{t}")))).collect();
    let _ = writeln!(body, "    let bv = vec4<f32>({});", cols.join(", "));
    for t in 0..T {
        let _ = writeln!(body, "    acc{t} += ld_a(a0 + {}) * bv;", a_at(&format!("r{t}"), "p"));
    }
    body.push_str("}\n");
    let _ = writeln!(body, "let y0 = batch * {}u;", m * n);
    for t in 0..T {
        for c in 0..T {
            let _ = writeln!(
                body,
                "if (row0 + {t}u < {m}u && col0 + {c}u < {n}u) {{ st_y(y0 + (row0 + {t}u) * {n}u + col0 + {c}u, acc{t}[{c}]); }}"
            );
        }
    }
    let title =
        format!("matmul{}{}", if ta { ", transpose_a" } else { "" }, if tb { ", transpose_b" } else { "" });
    let mut kb = KernelBuilder::new(cx.site, cx.opts, &cx.kernel_name(""), &title);
    kb.read("a", &a.region)?;
    kb.read("b", &b.region)?;
    kb.write("y", &out.region)?;
    Ok(vec![kb.finish(batch * tm * tn, &body)?])
}
