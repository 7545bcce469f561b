//! How the subgroup-shared attention kernels load the rows they visit, for
//! adapters where every storage load is a per-lane gather (lavapipe: one SIMD
//! lane per invocation). The kernel bodies are `bodies.rs`'s; only the loads
//! of visited rows (and RoPE's running rotation of them) differ.
//!
//! The lane kernels have every invocation of a workgroup load each visited
//! row in full, although all of them visit the same rows. Here
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
use super::bodies::Code;
use crate::device::DeviceLimits;

/// Lanes that load a visited row between them; subgroups must have at least
/// this many, and workgroups must be multiples of it.
const SHARERS: usize = crate::device::SUBGROUP_SHARERS;

/// Whether the subgroup kernels can run a problem with this head dimension
/// (and RoPE) in workgroups of `workgroups` invocations on a device with
/// `limits`.
pub fn applies(head_dim: usize, rope: bool, workgroups: &[usize], limits: &DeviceLimits) -> bool {
    let whole = workgroups.iter().all(|w| *w > 0 && w.is_multiple_of(SHARERS));
    limits.shares_subgroups() && whole && (!rope || head_dim.is_multiple_of(64))
}

/// `vec4` columns each sharing lane loads of a visited row.
fn lane_columns(shape: &AttentionShape) -> usize {
    (shape.head_dim / 4).div_ceil(SHARERS)
}

/// The lane's place among the sharers and the columns it loads (`lc<h>`,
/// clamped to the row: lanes past its end load its last column again).
pub(super) fn lane_setup(c: &mut Code, shape: &AttentionShape) {
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
pub(super) fn rope_step(c: &mut Code, shape: &AttentionShape) {
    c.line("// RoPE of the visited rows: each lane turns the columns it loads, the");
    c.line("// tile's first position from the table, then one step (row 1) per row.");
    for h in 0..lane_columns(shape) / 2 {
        c.line(format!("let step_c{h} = rope[RS + lc{h}];"));
        c.line(format!("let step_s{h} = rope[RS + D4 + lc{h}];"));
    }
}

/// At the start of a tile: the cos/sin of its first position `first`.
pub(super) fn rope_tile_start(c: &mut Code, shape: &AttentionShape, first: &str) {
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

/// Lets `<name><d>` (`d < D4`) be the visited row at `at` of `buffer`: the
/// lane's columns loaded (and with `rotate` turned by RoPE), then every column
/// broadcast from the lane that loaded it.
pub(super) fn load_shared(
    c: &mut Code,
    shape: &AttentionShape,
    buffer: &str,
    at: &str,
    name: &str,
    rotate: bool,
) {
    let part = format!("{name}l");
    load_part(c, shape, buffer, at, &part, rotate);
    for d in 0..shape.head_dim / 4 {
        c.line(format!("let {name}{d} = {};", shared(&part, d)));
    }
}
