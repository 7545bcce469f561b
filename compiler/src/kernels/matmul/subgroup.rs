//! The subgroup-shared matmul kernel.
//!
//! Each thread owns `rows` consecutive output rows and the workgroup's
//! `cols` columns. Every thread needs the same B values at each step of K, so
//! instead of each loading them (on lavapipe each storage load is a loop over
//! the 8 SIMD lanes, and loads dominate), the first 8 threads of a subgroup
//! each load one `vec4` of them and `subgroupBroadcast` hands each value to
//! all. A is the thread's own rows, read as `vec4`. Per four steps of K a
//! thread issues `rows + cols / 8` loads for `4 · rows · cols` multiply-adds.
//!
//! The column block is the workgroup's, so every subgroup in it agrees on it:
//! correct for any subgroup size of at least 8. Lanes 8 and up load the same
//! values again (harmlessly); they are never broadcast from.
//!
//! | operand | stored as | loaded as |
//! |---|---|---|
//! | A | `[M, K]` | `vec4` along K per row |
//! | A, transposed | `[K, M]` | `vec4` along M: four of the thread's rows at one K |
//! | B | `[K, N]` | lane `j` of 8: columns `4j..4j+4` of each 32 at one K |
//! | B, transposed | `[N, K]` | lane `j` of 8: column `j` of each 8, `vec4` along K |
//!
//! Edge tiles load clamped rows/columns and drop them on store. There is no
//! early return: every lane of a subgroup is live when it broadcasts.

use std::fmt::Write;

use super::{MatmulClass, MatmulConfig};
use crate::kernel::Kernel;
use crate::kernels::CodegenError;
use crate::kernels::builder::KernelBuilder;
use crate::kernels::{Ctx, Operand};

/// Rows of tiles per band of the tile order (Triton's `GROUP_M`).
const BAND: u64 = 8;

/// Lanes that load B between them; subgroups must have at least this many.
const SHARERS: u64 = crate::device::SUBGROUP_SHARERS as u64;

/// The kernel, or `None` where the device or the operands' layout rule it
/// out (the caller then uses the register kernel).
pub(super) fn emit(
    cx: &Ctx,
    class: MatmulClass,
    cfg: MatmulConfig,
    ta: bool,
    tb: bool,
    inputs: &[Operand],
    out: &Operand,
) -> Result<Option<Vec<Kernel>>, CodegenError> {
    let [a, b] = inputs else { return Err(cx.unsupported()) };
    if !cx.limits.shares_subgroups() {
        return Ok(None);
    }
    let r = a.shape.len();
    if r < 2 || b.shape.len() != r || out.shape.len() != r {
        return Err(cx.unsupported());
    }
    let dim = |s: &[usize], i: usize| s[i] as u64;
    let (m, n) = (dim(out.shape, r - 2), dim(out.shape, r - 1));
    let k = if ta { dim(a.shape, r - 2) } else { dim(a.shape, r - 1) };
    let batch: u64 = out.shape[..r - 2].iter().map(|&d| d as u64).product();
    let (tr, tc, wg) = (u64::from(cfg.rows), u64::from(cfg.cols), u64::from(cfg.workgroup));
    let vec4_region = |o: &Operand| o.region.base.is_multiple_of(4) && o.region.elems.is_multiple_of(4);
    let fits = k.is_multiple_of(4)
        && (tb || n.is_multiple_of(4))
        && (!ta || (m.is_multiple_of(4) && tr.is_multiple_of(4)))
        && vec4_region(a)
        && vec4_region(b);
    if !fits {
        return Ok(None);
    }
    let rows_per_group = tr * wg;
    let (gm, gn) = (m.div_ceil(rows_per_group), n.div_ceil(tc));

    let mut body = String::new();
    let w = &mut body;
    // The workgroup's tile is uniform across it; the thread's rows are not.
    // Tiles go in bands of BAND rows of tiles, down each band's column
    // before the next column: a column of B is then read by BAND row tiles
    // in a row while it is still in cache, where going along the rows read
    // all of B again for every row tile (at 3136³ on lavapipe, where B's
    // 39 MB outgrow the host's 32 MB L3: 33 against 53 GFLOP/s).
    let _ = writeln!(w, "let tile = i / {wg}u;");
    let _ = writeln!(w, "let batch = tile / {}u;", gm * gn);
    let _ = writeln!(w, "let in_batch = tile % {}u;", gm * gn);
    let _ = writeln!(w, "let band = in_batch / {}u;", BAND * gn);
    let _ = writeln!(w, "let band_rows = min({gm}u - band * {BAND}u, {BAND}u);");
    let _ = writeln!(w, "let in_band = in_batch % {}u;", BAND * gn);
    let _ = writeln!(w, "let col0 = (in_band / band_rows) * {tc}u;");
    let _ = writeln!(
        w,
        "let row0 = (band * {BAND}u + in_band % band_rows) * {rows_per_group}u + (i % {wg}u) * {tr}u;"
    );
    let _ = writeln!(w, "let sharer = sg_lane % {SHARERS}u;");
    let _ = writeln!(w, "let abase = batch * {}u;", m * k / 4);
    let _ = writeln!(w, "let bbase = batch * {}u;", k * n / 4);
    if ta {
        for g in 0..tr / 4 {
            let _ = writeln!(w, "let ra{g} = min(row0 + {}u, {}u) / 4u;", 4 * g, m - 4);
        }
    } else {
        for t in 0..tr {
            let _ = writeln!(w, "let r{t} = min(row0 + {t}u, {}u);", m - 1);
        }
    }
    // This lane's share of B: one vec4 (B) or one column (B transposed) per chunk.
    let chunks = if tb { tc / SHARERS } else { tc / (4 * SHARERS) };
    for h in 0..chunks {
        if tb {
            let _ = writeln!(w, "let cb{h} = min(col0 + {}u + sharer, {}u);", SHARERS * h, n - 1);
        } else {
            let _ = writeln!(w, "let cb{h} = min(col0 / 4u + {}u + sharer, {}u);", SHARERS * h, n / 4 - 1);
        }
    }
    // Accumulators: vec4 over 4 columns (B), one f32 per column (B transposed).
    for t in 0..tr {
        if tb {
            for c in 0..tc {
                let _ = writeln!(w, "var acc{t}_{c} = 0.0;");
            }
        } else {
            for g in 0..tc / 4 {
                let _ = writeln!(w, "var acc{t}_{g} = vec4<f32>(0.0);");
            }
        }
    }
    let _ = writeln!(w, "for (var q = 0u; q < {}u; q++) {{", k / 4);
    // ak{t}: row t's four values of A at K = 4q..4q+4.
    if ta {
        for kk in 0..4 {
            for g in 0..tr / 4 {
                let _ =
                    writeln!(w, "    let va{kk}_{g} = ld_a(abase + (q * 4u + {kk}u) * {}u + ra{g});", m / 4);
            }
        }
        for t in 0..tr {
            let (g, e) = (t / 4, t % 4);
            let _ = writeln!(
                w,
                "    let ak{t} = vec4<f32>(va0_{g}[{e}], va1_{g}[{e}], va2_{g}[{e}], va3_{g}[{e}]);"
            );
        }
    } else {
        for t in 0..tr {
            let _ = writeln!(w, "    let ak{t} = ld_a(abase + r{t} * {}u + q);", k / 4);
        }
    }
    // Each accumulator takes its four steps of K in a row, so it is loaded
    // and stored once per iteration: the accumulators outnumber the
    // registers, and interleaving the steps (column group inside step)
    // spilled and reloaded each of them four times. On lavapipe that made
    // the untransposed kernel 1.5-2x slower than the transposed one.
    if tb {
        for h in 0..chunks {
            let _ = writeln!(w, "    let vb{h} = ld_b(bbase + cb{h} * {}u + q);", k / 4);
            for j in 0..SHARERS {
                let c = SHARERS * h + j;
                let _ = writeln!(w, "    let bk{c} = subgroupBroadcast(vb{h}, {j}u);");
                for t in 0..tr {
                    let _ = writeln!(w, "    acc{t}_{c} += dot(ak{t}, bk{c});");
                }
            }
        }
    } else {
        for kk in 0..4 {
            for h in 0..chunks {
                let _ =
                    writeln!(w, "    let vb{kk}_{h} = ld_b(bbase + (q * 4u + {kk}u) * {}u + cb{h});", n / 4);
            }
        }
        for h in 0..chunks {
            for j in 0..SHARERS {
                let g = SHARERS * h + j;
                for kk in 0..4 {
                    let _ = writeln!(w, "    let bn{kk}_{g} = subgroupBroadcast(vb{kk}_{h}, {j}u);");
                }
                for t in 0..tr {
                    for kk in 0..4 {
                        let _ = writeln!(w, "    acc{t}_{g} += ak{t}[{kk}] * bn{kk}_{g};");
                    }
                }
            }
        }
    }
    w.push_str("}\n");
    let _ = writeln!(w, "let y0 = batch * {}u;", m * n);
    for t in 0..tr {
        for c in 0..tc {
            let acc = if tb { format!("acc{t}_{c}") } else { format!("acc{t}_{}[{}]", c / 4, c % 4) };
            let _ = writeln!(
                w,
                "if (row0 + {t}u < {m}u && col0 + {c}u < {n}u) {{ st_y(y0 + (row0 + {t}u) * {n}u + col0 + {c}u, {acc}); }}"
            );
        }
    }
    let title = format!(
        "matmul{}{} {}, {class} {cfg}: B shared across each subgroup",
        if ta { ", transpose_a" } else { "" },
        if tb { ", transpose_b" } else { "" },
        super::problem_name(batch, m, k, n),
    );
    let mut kb = KernelBuilder::new(cx.site, cx.limits, &cx.kernel_name(""), &title);
    kb.workgroup_size(cfg.workgroup);
    kb.use_subgroup_lane();
    kb.without_early_return();
    kb.read_vec4("a", &a.region)?;
    kb.read_vec4("b", &b.region)?;
    kb.write("y", &out.region)?;
    Ok(Some(vec![kb.finish(batch * gm * gn * wg, &body)?]))
}
