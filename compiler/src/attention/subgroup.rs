//! The subgroup-shared attention kernels, for adapters where every storage
//! load is a per-lane gather (lavapipe: one SIMD lane per invocation).
//!
//! The lane kernels (`bodies.rs`) have every invocation of a workgroup load
//! each visited row in full, although all of them visit the same rows. Here
//! the first [`SHARERS`] lanes of each subgroup load a visited row between
//! them, `ceil(D/32)` `vec4` columns each (lane `j` holds columns `j`,
//! `j + 8`, …), and `subgroupBroadcast` hands each column to every lane: the
//! matmul's lesson (`kernels/matmul/subgroup.rs`). Per visited row a lane
//! issues `ceil(D/32)` loads per tensor instead of `D/4`.
//!
//! Rows are visited one at a time, as in the lane kernels: a lane's column of
//! a row is always broadcast from lane `d % 8`, a constant, so the loop over
//! the rows stays a loop. (Unrolling chunks of 8 rows, to rescale the forward's
//! accumulators once per chunk, measured slower on lavapipe and compiled 4x
//! longer.)
//!
//! Every lane of a workgroup visits the same tiles and rows (a workgroup is one
//! block of one (batch, head) pair), so the broadcasts run in uniform control
//! flow. The planner uses these kernels only where subgroups have at least 8
//! lanes and workgroups are whole multiples of 8 invocations, so lanes 0–7 of
//! every subgroup are live.
//!
//! RoPE on load: lane `j`'s columns `j + 8h` for `h < ceil(D/32) / 2` lie in the
//! first half of the row and their rotate-half partners are its own columns
//! `h + ceil(D/32) / 2` when `D` is a multiple of 64, so a lane rotates the
//! columns it loaded with its own running cosines and sines before sharing
//! them. At other head dimensions with RoPE the planner keeps the lane kernels.

use super::AttentionShape;
use super::bodies::{Code, allowed, entry, load_row, locate, own_rows, store_grad, store_rows, tiles};

/// Lanes that load a visited row between them; subgroups must have at least
/// this many, and workgroups must be multiples of it.
pub const SHARERS: usize = 8;

/// Whether the subgroup kernels can run `shape`'s problem with workgroups of
/// `workgroups` invocations on a device whose subgroups have at least
/// `subgroup_min_size` lanes.
pub fn applies(head_dim: usize, rope: bool, workgroups: &[usize], subgroup_min_size: Option<u32>) -> bool {
    let lanes = subgroup_min_size.is_some_and(|s| s as usize >= SHARERS);
    let whole = workgroups.iter().all(|w| *w > 0 && w.is_multiple_of(SHARERS));
    lanes && whole && (!rope || head_dim.is_multiple_of(64))
}

/// `vec4` columns each sharing lane loads of a visited row.
fn lane_columns(shape: &AttentionShape) -> usize {
    (shape.head_dim / 4).div_ceil(SHARERS)
}

/// The lane's place among the sharers and the columns it loads (`lc<h>`,
/// clamped to the row: lanes past its end load its last column again).
fn lane_setup(c: &mut Code, shape: &AttentionShape) {
    c.line(format!("let sharer = sl % {SHARERS}u;"));
    for h in 0..lane_columns(shape) {
        c.line(format!("let lc{h} = min(sharer + {}u, D4 - 1u);", SHARERS * h));
    }
}

/// Column `d` of the shared row whose lane parts are `<name><h>`.
fn shared(name: &str, d: usize) -> String {
    format!("subgroupBroadcast({name}{}, {}u)", d / SHARERS, d % SHARERS)
}

/// With RoPE, the rotation by one position of the lane's first-half columns.
fn rope_step(c: &mut Code, shape: &AttentionShape) {
    if !shape.rope {
        return;
    }
    c.line("// RoPE of the visited rows: each lane turns the columns it loads, the");
    c.line("// tile's first position from the table, then one step (row 1) per row.");
    for h in 0..lane_columns(shape) / 2 {
        c.line(format!("let step_c{h} = rope[RS + lc{h}];"));
        c.line(format!("let step_s{h} = rope[RS + D4 + lc{h}];"));
    }
}

/// At the start of a tile: the cos/sin of its first position `first`.
fn rope_tile_start(c: &mut Code, shape: &AttentionShape, first: &str) {
    if !shape.rope {
        return;
    }
    for h in 0..lane_columns(shape) / 2 {
        c.line(format!("var rope_c{h} = rope[{first} * RS + lc{h}];"));
        c.line(format!("var rope_s{h} = rope[{first} * RS + D4 + lc{h}];"));
    }
}

/// Lets `<name><h>` be this lane's columns of the row at `at` of `buffer`;
/// with `rotate`, turned by the running cos/sin, which then step to the next
/// position (see `bodies::load_visited` for why the stepping is exact enough).
fn load_part(c: &mut Code, shape: &AttentionShape, buffer: &str, at: &str, name: &str, rotate: bool) {
    let lc = lane_columns(shape);
    if !(rotate && shape.rope) {
        for h in 0..lc {
            c.line(format!("let {name}{h} = {buffer}[{at} + lc{h}];"));
        }
        return;
    }
    for h in 0..lc {
        c.line(format!("let {name}raw{h} = {buffer}[{at} + lc{h}];"));
    }
    let half = lc / 2;
    for h in 0..half {
        let p = h + half;
        c.line(format!("let {name}{h} = {name}raw{h} * rope_c{h} + {name}raw{p} * rope_s{h};"));
        c.line(format!("let {name}{p} = {name}raw{p} * rope_c{h} - {name}raw{h} * rope_s{h};"));
    }
    for h in 0..half {
        c.line(format!("let {name}next{h} = rope_c{h} * step_c{h} - rope_s{h} * step_s{h};"));
        c.line(format!("rope_s{h} = rope_s{h} * step_c{h} + rope_c{h} * step_s{h};"));
        c.line(format!("rope_c{h} = {name}next{h};"));
    }
}

/// The forward kernel: online softmax over the key tiles of each query block.
pub(super) fn forward(shape: &AttentionShape) -> String {
    let (rows, d4) = (shape.rows_per_invocation, shape.head_dim / 4);
    let mut c = Code::new();
    entry(&mut c, true);
    locate(&mut c, "NQB", "qb");
    lane_setup(&mut c, shape);
    c.line("// This invocation's query rows (clamped for loading; rows past N are never stored),");
    c.line("// pre-scaled, and their running max m, sum l and output accumulator o.");
    own_rows(&mut c, rows, "qb", "BQ", "row", "qa");
    for r in 0..rows {
        load_row(&mut c, shape, "q", &format!("qa{r}"), &format!("row{r}"), &format!("q{r}_"), " * SCALE");
    }
    for r in 0..rows {
        c.line(format!("var m{r} = NEG;"));
        c.line(format!("var l{r} = 0.0;"));
        for d in 0..d4 {
            c.line(format!("var o{r}_{d} = vec4<f32>();"));
        }
    }
    rope_step(&mut c, shape);
    tiles(&mut c, "NQB", "qb", "BK", "k0");
    rope_tile_start(&mut c, shape, "k0");
    c.open("for (var j = 0u; j < count; j++) {");
    c.line("let key = k0 + j;");
    c.line("let ka = (base + key) * D4;");
    load_part(&mut c, shape, "k", "ka", "xl", true);
    for d in 0..d4 {
        c.line(format!("let x{d} = {};", shared("xl", d)));
    }
    for r in 0..rows {
        let terms: Vec<String> = (0..d4).map(|d| format!("dot(q{r}_{d}, x{d})")).collect();
        c.line(format!("let s{r} = {};", terms.join(" + ")));
    }
    c.line("// Online softmax; a masked pair scores NEG and weighs 0.");
    allowed(&mut c, rows, |r| (format!("row{r}"), "key".to_string()));
    for r in 0..rows {
        c.line(format!("let mn{r} = select(m{r}, max(m{r}, s{r}), ok{r});"));
        c.line(format!("let alpha{r} = exp(m{r} - mn{r});"));
        c.line(format!("let p{r} = select(0.0, exp(s{r} - mn{r}), ok{r});"));
        c.line(format!("l{r} = l{r} * alpha{r} + p{r};"));
        c.line(format!("m{r} = mn{r};"));
    }
    load_part(&mut c, shape, "v", "ka", "yl", false);
    for d in 0..d4 {
        c.line(format!("let y{d} = {};", shared("yl", d)));
        for r in 0..rows {
            c.line(format!("o{r}_{d} = o{r}_{d} * alpha{r} + p{r} * y{d};"));
        }
    }
    c.close(); // keys
    c.close(); // tiles
    c.line("// A query that saw no key writes zeros and EMPTY_LSE.");
    for r in 0..rows {
        c.line(format!("let inv{r} = select(0.0, 1.0 / l{r}, l{r} > 0.0);"));
    }
    store_rows(&mut c, (rows, d4), ("qb", "BQ"), &[("o", &|r, d| format!("o{r}_{d} * inv{r}"))], |c, r| {
        c.line(format!("lse[base + out{r}] = select(EMPTY_LSE, m{r} + log(l{r}), l{r} > 0.0);"))
    });
    c.close();
    c.finish()
}

/// The backward dK/dV kernel: per key block, visiting queries shared per subgroup.
pub(super) fn dkdv(shape: &AttentionShape) -> String {
    let (rows, d4) = (shape.rows_per_invocation, shape.head_dim / 4);
    let mut c = Code::new();
    entry(&mut c, true);
    locate(&mut c, "NKB", "kb");
    lane_setup(&mut c, shape);
    c.line("// This invocation's key rows (clamped for loading; rows past N are never stored),");
    c.line("// k pre-scaled, and their gradient accumulators.");
    own_rows(&mut c, rows, "kb", "BK", "col", "ca");
    for r in 0..rows {
        load_row(&mut c, shape, "k", &format!("ca{r}"), &format!("col{r}"), &format!("k{r}_"), " * SCALE");
        for d in 0..d4 {
            c.line(format!("let v{r}_{d} = v[ca{r} + {d}u];"));
        }
    }
    for r in 0..rows {
        for d in 0..d4 {
            c.line(format!("var dk{r}_{d} = vec4<f32>();"));
            c.line(format!("var dv{r}_{d} = vec4<f32>();"));
        }
    }
    rope_step(&mut c, shape);
    tiles(&mut c, "NKB", "kb", "BQ", "q0");
    rope_tile_start(&mut c, shape, "q0");
    c.open("for (var i = 0u; i < count; i++) {");
    c.line("// One query: P = exp(S - L) and dS = P * (dP - delta) against every owned key.");
    c.line("let query = q0 + i;");
    c.line("let qa = (base + query) * D4;");
    c.line("let st = stats[base + query];");
    load_part(&mut c, shape, "q", "qa", "xl", true);
    load_part(&mut c, shape, "dout", "qa", "gl", false);
    for d in 0..d4 {
        c.line(format!("let x{d} = {};", shared("xl", d)));
        c.line(format!("let g{d} = {};", shared("gl", d)));
    }
    for r in 0..rows {
        let s: Vec<String> = (0..d4).map(|d| format!("dot(x{d}, k{r}_{d})")).collect();
        let dp: Vec<String> = (0..d4).map(|d| format!("dot(g{d}, v{r}_{d})")).collect();
        c.line(format!("let s{r} = {};", s.join(" + ")));
        c.line(format!("let dp{r} = {};", dp.join(" + ")));
    }
    allowed(&mut c, rows, |r| ("query".to_string(), format!("col{r}")));
    for r in 0..rows {
        c.line(format!("let p{r} = select(0.0, exp(s{r} - st.x), ok{r});"));
        c.line(format!("let ds{r} = p{r} * (dp{r} - st.y);"));
        for d in 0..d4 {
            c.line(format!("dv{r}_{d} += p{r} * g{d};"));
            c.line(format!("dk{r}_{d} += ds{r} * x{d};"));
        }
    }
    c.close(); // queries
    c.close(); // tiles
    store_rows(
        &mut c,
        (rows, d4),
        ("kb", "BK"),
        &[("dk", &|r, d| store_grad(shape, "dk", r, d)), ("dv", &|r, d| format!("dv{r}_{d}"))],
        |_, _| {},
    );
    c.close();
    c.finish()
}

/// The backward dQ kernel: per query block, visiting keys shared per subgroup.
pub(super) fn dq(shape: &AttentionShape) -> String {
    let (rows, d4) = (shape.rows_per_invocation, shape.head_dim / 4);
    let mut c = Code::new();
    entry(&mut c, true);
    locate(&mut c, "NQB", "qb");
    lane_setup(&mut c, shape);
    c.line("// This invocation's query rows (clamped for loading; rows past N are never stored),");
    c.line("// q pre-scaled, dO, (L, delta), and the dQ accumulator.");
    own_rows(&mut c, rows, "qb", "BQ", "row", "qa");
    for r in 0..rows {
        load_row(&mut c, shape, "q", &format!("qa{r}"), &format!("row{r}"), &format!("q{r}_"), " * SCALE");
        for d in 0..d4 {
            c.line(format!("let g{r}_{d} = dout[qa{r} + {d}u];"));
        }
        c.line(format!("let st{r} = stats[base + row{r}];"));
        for d in 0..d4 {
            c.line(format!("var dq{r}_{d} = vec4<f32>();"));
        }
    }
    rope_step(&mut c, shape);
    tiles(&mut c, "NQB", "qb", "BK", "k0");
    rope_tile_start(&mut c, shape, "k0");
    c.open("for (var j = 0u; j < count; j++) {");
    c.line("// One key: P = exp(S - L) and dS = P * (dP - delta) for every owned query.");
    c.line("let key = k0 + j;");
    c.line("let ka = (base + key) * D4;");
    load_part(&mut c, shape, "k", "ka", "xl", true);
    load_part(&mut c, shape, "v", "ka", "yl", false);
    for d in 0..d4 {
        c.line(format!("let x{d} = {};", shared("xl", d)));
        c.line(format!("let y{d} = {};", shared("yl", d)));
    }
    for r in 0..rows {
        let s: Vec<String> = (0..d4).map(|d| format!("dot(q{r}_{d}, x{d})")).collect();
        let dp: Vec<String> = (0..d4).map(|d| format!("dot(g{r}_{d}, y{d})")).collect();
        c.line(format!("let s{r} = {};", s.join(" + ")));
        c.line(format!("let dp{r} = {};", dp.join(" + ")));
    }
    allowed(&mut c, rows, |r| (format!("row{r}"), "key".to_string()));
    for r in 0..rows {
        c.line(format!("let p{r} = select(0.0, exp(s{r} - st{r}.x), ok{r});"));
        c.line(format!("let ds{r} = p{r} * (dp{r} - st{r}.y);"));
        for d in 0..d4 {
            c.line(format!("dq{r}_{d} += ds{r} * x{d};"));
        }
    }
    c.close(); // keys
    c.close(); // tiles
    store_rows(&mut c, (rows, d4), ("qb", "BQ"), &[("dq", &|r, d| store_grad(shape, "dq", r, d))], |_, _| {});
    c.close();
    c.finish()
}
