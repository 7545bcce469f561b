//! The register-blocked matmul kernel, for any device: each thread computes a
//! `rows × cols` output tile in registers (`cols / 4` `vec4` accumulators per
//! row) and reads its operands straight from storage, with no workgroup memory
//! and no barriers (both are emulated, and slow, on CPU adapters such as
//! lavapipe). The reduction runs four steps of K at a time.
//!
//! An operand is read as `vec4` wherever its layout allows it, along whichever
//! axis is contiguous in memory:
//!
//! | operand | stored as | contiguous along | vec4 when |
//! |---|---|---|---|
//! | A | `[M, K]` | K | `K % 4 == 0` |
//! | A, transposed | `[K, M]` | M (the tile's rows) | `M % 4 == 0` and `rows % 4 == 0` |
//! | B | `[K, N]` | N (the tile's columns) | `N % 4 == 0` |
//! | B, transposed | `[N, K]` | K | `K % 4 == 0` |
//!
//! Otherwise it is read one element at a time. Edge tiles read clamped
//! rows/columns (every load stays in bounds) and drop them on store.

use std::fmt::Write;

use super::{MatmulClass, MatmulConfig};
use crate::kernel::Kernel;
use crate::kernels::CodegenError;
use crate::kernels::builder::KernelBuilder;
use crate::kernels::{Ctx, Operand};

/// How one operand is loaded.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Load {
    /// One element at a time.
    Scalar,
    /// `vec4` along K (four reduction steps at once).
    AlongK,
    /// `vec4` along the output tile's rows (A) or columns (B).
    AlongTile,
}

pub(super) fn emit(
    cx: &Ctx,
    class: MatmulClass,
    cfg: MatmulConfig,
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
    let (m, n) = (dim(out.shape, r - 2), dim(out.shape, r - 1));
    let k = if ta { dim(a.shape, r - 2) } else { dim(a.shape, r - 1) };
    let batch: u64 = out.shape[..r - 2].iter().map(|&d| d as u64).product();
    let (tr, tc) = (u64::from(cfg.rows), u64::from(cfg.cols));
    let (gm, gn) = (m.div_ceil(tr), n.div_ceil(tc));

    let k4 = k.is_multiple_of(4);
    let a_load = match ta {
        false if k4 => Load::AlongK,
        true if m.is_multiple_of(4) && tr.is_multiple_of(4) => Load::AlongTile,
        _ => Load::Scalar,
    };
    let b_load = match tb {
        true if k4 => Load::AlongK,
        false if n.is_multiple_of(4) => Load::AlongTile,
        _ => Load::Scalar,
    };

    let mut body = String::new();
    let w = &mut body;
    let _ = writeln!(w, "let col0 = (i % {gn}u) * {tc}u;");
    let _ = writeln!(w, "let row0 = ((i / {gn}u) % {gm}u) * {tr}u;");
    let _ = writeln!(w, "let batch = i / {};", gm * gn);
    // Element offsets of this batch's operands; vector loads count in vec4s.
    let a_unit = if a_load == Load::Scalar { 1 } else { 4 };
    let b_unit = if b_load == Load::Scalar { 1 } else { 4 };
    let _ = writeln!(w, "let abase = batch * {}u;", m * k / a_unit);
    let _ = writeln!(w, "let bbase = batch * {}u;", k * n / b_unit);
    // Clamped rows and columns: edge tiles load valid data and drop it on store.
    for t in 0..tr {
        let _ = writeln!(w, "let r{t} = min(row0 + {t}u, {}u);", m - 1);
    }
    for t in 0..tc {
        let _ = writeln!(w, "let c{t} = min(col0 + {t}u, {}u);", n - 1);
    }
    // Vector loads along the tile start at a multiple of 4 that is in bounds.
    if a_load == Load::AlongTile {
        for g in 0..tr / 4 {
            let _ = writeln!(w, "let ra{g} = min(row0 + {}u, {}u) / 4u;", 4 * g, m - 4);
        }
    }
    if b_load == Load::AlongTile {
        for g in 0..tc / 4 {
            let _ = writeln!(w, "let cb{g} = min(col0 + {}u, {}u) / 4u;", 4 * g, n - 4);
        }
    }
    for t in 0..tr {
        for j in 0..tc / 4 {
            let _ = writeln!(w, "var acc{t}_{j} = vec4<f32>(0.0);");
        }
    }
    let main = k / 4;
    if main > 0 {
        let _ = writeln!(w, "for (var q = 0u; q < {main}u; q++) {{");
        let _ = writeln!(w, "    let p = q * 4u;");
        step(w, 4, (m, n, k), (tr, tc), a_load, b_load, ta, tb);
        w.push_str("}\n");
    }
    if !k4 {
        // Only scalar and along-tile loads get here: along-K needs K % 4 == 0.
        let _ = writeln!(w, "for (var p = {}u; p < {k}u; p++) {{", main * 4);
        step(w, 1, (m, n, k), (tr, tc), a_load, b_load, ta, tb);
        w.push_str("}\n");
    }
    let _ = writeln!(w, "let y0 = batch * {}u;", m * n);
    for t in 0..tr {
        for c in 0..tc {
            let _ = writeln!(
                w,
                "if (row0 + {t}u < {m}u && col0 + {c}u < {n}u) {{ st_y(y0 + (row0 + {t}u) * {n}u + col0 + {c}u, acc{t}_{}[{}]); }}",
                c / 4,
                c % 4
            );
        }
    }
    let title = format!(
        "matmul{}{} {}, {class} {cfg} (loads: a {}, b {})",
        if ta { ", transpose_a" } else { "" },
        if tb { ", transpose_b" } else { "" },
        super::problem_name(batch, m, k, n),
        describe(a_load),
        describe(b_load)
    );
    let mut kb = KernelBuilder::new(cx.site, cx.limits, &cx.kernel_name(""), &title);
    kb.workgroup_size(cfg.workgroup);
    if a_load == Load::Scalar {
        kb.read("a", &a.region)?
    } else {
        kb.read_vec4("a", &a.region)?
    }
    if b_load == Load::Scalar {
        kb.read("b", &b.region)?
    } else {
        kb.read_vec4("b", &b.region)?
    }
    kb.write("y", &out.region)?;
    Ok(vec![kb.finish(batch * gm * gn, &body)?])
}

fn describe(load: Load) -> &'static str {
    match load {
        Load::Scalar => "scalar",
        Load::AlongK => "vec4 along k",
        Load::AlongTile => "vec4 along the tile",
    }
}

/// One loop body: `steps` (4 or 1) reduction steps starting at `p` (and, for
/// along-K loads, vector index `q`), accumulated into every `acc`.
#[allow(clippy::too_many_arguments)]
fn step(
    w: &mut String,
    steps: u64,
    (m, n, k): (u64, u64, u64),
    (tr, tc): (u64, u64),
    a_load: Load,
    b_load: Load,
    ta: bool,
    tb: bool,
) {
    let kk_at = |kk: u64| if kk == 0 { "p".to_string() } else { format!("p + {kk}u") };
    // A's value at (row t, step kk), as a WGSL expression.
    let mut a_val: Vec<Vec<String>> = vec![Vec::new(); tr as usize];
    match a_load {
        Load::AlongK => {
            for t in 0..tr {
                let _ = writeln!(w, "    let va{t} = ld_a(abase + r{t} * {}u + q);", k / 4);
                a_val[t as usize] = (0..steps).map(|kk| format!("va{t}[{kk}]")).collect();
            }
        }
        Load::AlongTile => {
            for kk in 0..steps {
                for g in 0..tr / 4 {
                    let _ = writeln!(
                        w,
                        "    let va{kk}_{g} = ld_a(abase + ({}) * {}u + ra{g});",
                        kk_at(kk),
                        m / 4
                    );
                }
            }
            for t in 0..tr {
                a_val[t as usize] = (0..steps).map(|kk| format!("va{kk}_{}[{}]", t / 4, t % 4)).collect();
            }
        }
        Load::Scalar => {
            for kk in 0..steps {
                for t in 0..tr {
                    let at = if ta {
                        format!("({}) * {m}u + r{t}", kk_at(kk))
                    } else {
                        format!("r{t} * {k}u + {}", kk_at(kk))
                    };
                    let _ = writeln!(w, "    let sa{kk}_{t} = ld_a(abase + {at});");
                }
            }
            for t in 0..tr {
                a_val[t as usize] = (0..steps).map(|kk| format!("sa{kk}_{t}")).collect();
            }
        }
    }
    // B's columns 4j..4j+4 at step kk, as a vec4 expression.
    let bv = |kk: u64, j: u64| -> String {
        match b_load {
            Load::AlongTile => format!("vb{kk}_{j}"),
            Load::AlongK => {
                let parts: Vec<String> = (0..4).map(|c| format!("vb{}[{kk}]", 4 * j + c)).collect();
                format!("vec4<f32>({})", parts.join(", "))
            }
            Load::Scalar => {
                let parts: Vec<String> = (0..4).map(|c| format!("sb{kk}_{}", 4 * j + c)).collect();
                format!("vec4<f32>({})", parts.join(", "))
            }
        }
    };
    match b_load {
        Load::AlongK => {
            for c in 0..tc {
                let _ = writeln!(w, "    let vb{c} = ld_b(bbase + c{c} * {}u + q);", k / 4);
            }
        }
        Load::AlongTile => {
            for kk in 0..steps {
                for j in 0..tc / 4 {
                    let _ = writeln!(
                        w,
                        "    let vb{kk}_{j} = ld_b(bbase + ({}) * {}u + cb{j});",
                        kk_at(kk),
                        n / 4
                    );
                }
            }
        }
        Load::Scalar => {
            for kk in 0..steps {
                for c in 0..tc {
                    let at = if tb {
                        format!("c{c} * {k}u + {}", kk_at(kk))
                    } else {
                        format!("({}) * {n}u + c{c}", kk_at(kk))
                    };
                    let _ = writeln!(w, "    let sb{kk}_{c} = ld_b(bbase + {at});");
                }
            }
        }
    }
    for kk in 0..steps {
        for j in 0..tc / 4 {
            let _ = writeln!(w, "    let bv{kk}_{j} = {};", bv(kk, j));
        }
        for t in 0..tr {
            for j in 0..tc / 4 {
                let _ = writeln!(w, "    acc{t}_{j} += {} * bv{kk}_{j};", a_val[t as usize][kk as usize]);
            }
        }
    }
}
