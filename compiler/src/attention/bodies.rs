//! The entry points of the attention kernels, written out for one shape.
//!
//! Everything an invocation holds (its rows of q, k or v, its accumulators) is
//! a named `let`/`var` per (row, vec4 column): the loops over rows and over
//! the head dimension are unrolled here rather than left to the driver. On
//! lavapipe this matters a great deal: private arrays indexed in loops are
//! slow to compile and slow to run, named values are plain registers. Keys
//! (in dK/dV, queries) are visited one at a time: every storage load is a
//! per-lane gather on lavapipe and each load site costs compile time, so the
//! kernels load each visited row once and use it for every owned row.

use super::{AttentionKernel, AttentionShape, subgroup};

/// A WGSL writer with indentation.
pub(super) struct Code {
    out: String,
    depth: usize,
}

impl Code {
    pub(super) fn new() -> Code {
        Code { out: String::new(), depth: 0 }
    }

    pub(super) fn line(&mut self, text: impl AsRef<str>) {
        for _ in 0..self.depth {
            self.out.push_str("    ");
        }
        self.out.push_str(text.as_ref());
        self.out.push('\n');
    }

    /// A line ending in `{`, then one level deeper.
    pub(super) fn open(&mut self, text: impl AsRef<str>) {
        self.line(text);
        self.depth += 1;
    }

    pub(super) fn close(&mut self) {
        self.depth = self.depth.saturating_sub(1);
        self.line("}");
    }

    pub(super) fn finish(self) -> String {
        self.out
    }
}

/// The entry point's signature; with `subgroup`, the invocation's index in
/// its subgroup as `sl`.
pub(super) fn entry(c: &mut Code, subgroup: bool) {
    c.line("@compute @workgroup_size(WG)");
    c.line("fn main(");
    c.line("    @builtin(workgroup_id) wid: vec3<u32>,");
    c.line("    @builtin(num_workgroups) nwg: vec3<u32>,");
    c.line("    @builtin(local_invocation_index) lid: u32,");
    if subgroup {
        c.line("    @builtin(subgroup_invocation_id) sl: u32,");
    }
    c.open(") {");
}

/// Workgroup -> (block, chunk-local batch x head), for a grid of `blocks` blocks per pair.
pub(super) fn locate(c: &mut Code, blocks: &str, block: &str) {
    c.line("let tile = wid.y * nwg.x + wid.x;");
    c.open(format!("if (tile >= {blocks} * params.bh_count) {{"));
    c.line("return;");
    c.close();
    c.line(format!("let {block} = tile % {blocks};"));
    c.line(format!("let bh = tile / {blocks};"));
    c.line("let head = (params.bh0 + bh) % H;");
    c.line("let hi = i32(head);");
    c.line("let base = bh * N;");
}

/// Bits of a tile's mask word: one per visited position.
const WORD_BITS: usize = 32;

/// `bits<r>` (`bits<r>_<w>` for tiles longer than a word): which of the
/// tile's `other_size` visited positions, from `first_pos` on, the mask allows
/// for owned row `r`. All ones in full tiles; partial tiles evaluate the mask
/// here, once per tile, so the hot loop over the positions carries only a
/// bit test. With `mask_allows` inside that loop, the S2-Attn forward at
/// T = 8192 took 277 ms on lavapipe, against 256 ms with it here.
/// `pair(r, pos)` names the (query, key) of row `r` and position `pos`.
pub(super) fn mask_bits(
    c: &mut Code,
    (rows, other_size): (usize, usize),
    first_pos: &str,
    pair: impl Fn(usize, &str) -> (String, String),
) {
    let words = other_size.div_ceil(WORD_BITS);
    let word = |r: usize, w: usize| if words == 1 { format!("bits{r}") } else { format!("bits{r}_{w}") };
    for r in 0..rows {
        for w in 0..words {
            c.line(format!("var {} = 0xffffffffu;", word(r, w)));
        }
    }
    c.open("if (partial) {");
    for r in 0..rows {
        for w in 0..words {
            c.line(format!("{} = 0u;", word(r, w)));
        }
    }
    c.open("for (var t = 0u; t < count; t++) {");
    c.line(format!("let pos = {first_pos} + t;"));
    c.line(format!("let bit = 1u << (t % {WORD_BITS}u);"));
    for r in 0..rows {
        let (q, k) = pair(r, "pos");
        c.line(format!("let on{r} = select(0u, bit, mask_allows(hi, i32({q}), i32({k})));"));
        for w in 0..words {
            if words == 1 {
                c.line(format!("{} |= on{r};", word(r, w)));
            } else {
                c.line(format!("{} |= select(0u, on{r}, t / {WORD_BITS}u == {w}u);", word(r, w)));
            }
        }
    }
    c.close();
    c.close();
}

/// `ok<r>`: bit `index` of the tile's mask word for owned row `r` (see [`mask_bits`]).
pub(super) fn allowed(c: &mut Code, (rows, other_size): (usize, usize), index: &str) {
    let words = other_size.div_ceil(WORD_BITS);
    for r in 0..rows {
        let word = if words == 1 {
            format!("bits{r}")
        } else {
            // Nested selects, not a private array: dynamic indexing would spill it to memory.
            (1..words).fold(format!("bits{r}_0"), |acc, w| {
                format!("select({acc}, bits{r}_{w}, {index} >= {}u)", w * WORD_BITS)
            })
        };
        c.line(format!("let ok{r} = (({word} >> ({index} % {WORD_BITS}u)) & 1u) != 0u;"));
    }
}

/// The rows `<block> * B + r * WG + lid` an invocation owns: clamped to the
/// sequence for loading (`<name><r>`), and their offsets `<at><r>`.
pub(super) fn own_rows(c: &mut Code, rows: usize, block: &str, size: &str, name: &str, at: &str) {
    for r in 0..rows {
        c.line(format!("let {name}{r} = min({block} * {size} + {r}u * WG + lid, N - 1u);"));
        c.line(format!("let {at}{r} = (base + {name}{r}) * D4;"));
    }
}

/// The value of every vec4 column of an owned row, for one output buffer.
pub(super) type Column<'a> = (&'a str, &'a dyn Fn(usize, usize) -> String);

/// Stores every owned row inside the sequence to each buffer of `columns`, then runs `extra`.
pub(super) fn store_rows(
    c: &mut Code,
    (rows, d4): (usize, usize),
    (block, size): (&str, &str),
    columns: &[Column<'_>],
    extra: impl Fn(&mut Code, usize),
) {
    for r in 0..rows {
        c.line(format!("let out{r} = {block} * {size} + {r}u * WG + lid;"));
        c.open(format!("if (out{r} < N) {{"));
        c.line(format!("let at = (base + out{r}) * D4;"));
        for (buffer, value) in columns {
            for d in 0..d4 {
                c.line(format!("{buffer}[at + {d}u] = {};", value(r, d)));
            }
        }
        extra(c, r);
        c.close();
    }
}

/// Opens the loop over the tiles of block row `block` of the table, binding
/// `<first_pos>` (first position of the other block), `partial` and `count`.
pub(super) fn tiles(c: &mut Code, rows_per_table: &str, block: &str, other_size: &str, first_pos: &str) {
    c.line(format!("let ptr = TABLE + blocks[head] * ({rows_per_table} + 1u) + {block};"));
    c.line("let last = blocks[ptr + 1u];");
    c.open("for (var e = blocks[ptr]; e < last; e++) {");
    c.line("let entry = blocks[e];");
    c.line(format!("let {first_pos} = (entry >> 1u) * {other_size};"));
    c.line("let partial = (entry & ENTRY_PARTIAL) != 0u;");
    c.line(format!("let count = min({other_size}, N - {first_pos});"));
}

/// The rotate-half partners of vec4 column `d` of a row whose columns are
/// `col(0..d4)`: element `j` pairs with `j ± D/2`, a whole column when `D/2`
/// is a multiple of 4.
fn partner(d4: usize, d: usize, col: &dyn Fn(usize) -> String) -> String {
    let half = 2 * d4;
    if half.is_multiple_of(4) {
        return col((d + d4 / 2) % d4);
    }
    let parts: Vec<String> = (0..4)
        .map(|c| {
            let p = (4 * d + c + half) % (4 * d4);
            format!("{}[{}]", col(p / 4), p % 4)
        })
        .collect();
    format!("vec4<f32>({})", parts.join(", "))
}

/// Column `d` of the row `col` at position `pos`, turned by RoPE (`x cos + partner
/// sin`, the table's sines signed for rotate-half) or by its transpose (`- sin`).
fn rotated(d4: usize, d: usize, col: &dyn Fn(usize) -> String, pos: &str, transposed: bool) -> String {
    let sign = if transposed { "-" } else { "+" };
    format!(
        "({} * rope[{pos} * RS + {d}u] {sign} {} * rope[{pos} * RS + D4 + {d}u])",
        col(d),
        partner(d4, d, col)
    )
}

/// Lets `<name><d>` (`d < d4`) be the columns of the row at offset `at`
/// (position `pos`) of buffer `buffer`, times `factor`; rotated by RoPE on load
/// when the kernel has it.
pub(super) fn load_row(
    c: &mut Code,
    shape: &AttentionShape,
    buffer: &str,
    at: &str,
    pos: &str,
    name: &str,
    factor: &str,
) {
    let d4 = shape.head_dim / 4;
    if !shape.rope {
        for d in 0..d4 {
            c.line(format!("let {name}{d} = {buffer}[{at} + {d}u]{factor};"));
        }
        return;
    }
    for d in 0..d4 {
        c.line(format!("let {name}raw{d} = {buffer}[{at} + {d}u];"));
    }
    let raw = |d: usize| format!("{name}raw{d}");
    for d in 0..d4 {
        c.line(format!("let {name}{d} = {}{factor};", rotated(d4, d, &raw, pos, false)));
    }
}

/// The stored value of column `d` of accumulator `acc<r>_<d>` at position
/// `out<r>`, times SCALE: with RoPE on load, turned back by the transposed
/// rotation, so that the gradient is the one of the unrotated input.
pub(super) fn store_grad(shape: &AttentionShape, acc: &str, r: usize, d: usize) -> String {
    if !shape.rope {
        return format!("{acc}{r}_{d} * SCALE");
    }
    let col = |d: usize| format!("{acc}{r}_{d}");
    format!("{} * SCALE", rotated(shape.head_dim / 4, d, &col, &format!("out{r}"), true))
}

/// The table columns the visited rows' rotation steps: with `D/2` a multiple
/// of 4, the second half's cosines repeat the first half's and its sines
/// negate them, so the first half is enough.
pub(super) fn running_columns(shape: &AttentionShape) -> usize {
    let d4 = shape.head_dim / 4;
    if d4.is_multiple_of(2) { d4 / 2 } else { d4 }
}

/// The entry point, then the workgroup's block and (batch, head) pair, and
/// with the subgroup kernels the lane's share of each visited row.
fn begin(c: &mut Code, shape: &AttentionShape, blocks: &str, block: &str) {
    let shared = shape.kernel == AttentionKernel::Subgroup;
    entry(c, shared);
    locate(c, blocks, block);
    if shared {
        subgroup::lane_setup(c, shape);
    }
}

/// Before the tile loop: the table's row 1, the rotation by one position, for
/// stepping the visited rows' cos/sin from one position to the next.
fn rope_step(c: &mut Code, shape: &AttentionShape) {
    if !shape.rope {
        return;
    }
    if shape.kernel == AttentionKernel::Subgroup {
        return subgroup::rope_step(c, shape);
    }
    c.line("// RoPE of the visited rows: the tile's first position from the table, then");
    c.line("// one step (row 1 of the table) per row, in registers rather than loads.");
    for d in 0..running_columns(shape) {
        c.line(format!("let step_c{d} = rope[RS + {d}u];"));
        c.line(format!("let step_s{d} = rope[RS + D4 + {d}u];"));
    }
}

/// At the start of a tile: the cos/sin of its first position `first`.
fn rope_tile_start(c: &mut Code, shape: &AttentionShape, first: &str) {
    if !shape.rope {
        return;
    }
    if shape.kernel == AttentionKernel::Subgroup {
        return subgroup::rope_tile_start(c, shape, first);
    }
    for d in 0..running_columns(shape) {
        c.line(format!("var rope_c{d} = rope[{first} * RS + {d}u];"));
        c.line(format!("var rope_s{d} = rope[{first} * RS + D4 + {d}u];"));
    }
}

/// Lets `<name><d>` (`d < D4`) be the visited row at offset `at` of `buffer`,
/// with `rotate` turned by the running cos/sin (which then step to the next
/// position) when the kernel has RoPE. The lane kernels load the row in every
/// invocation; the subgroup kernels load it once per subgroup and broadcast it.
///
/// The angle-addition formulas hold for the table's signed sines too (the
/// sign squares away in cos and carries through sin); in f32 they drift by
/// ~1e-7 per step, over at most one block of steps, since every tile restarts
/// from the f64 table.
fn load_visited(c: &mut Code, shape: &AttentionShape, buffer: &str, at: &str, name: &str, rotate: bool) {
    if shape.kernel == AttentionKernel::Subgroup {
        return subgroup::load_shared(c, shape, buffer, at, name, rotate);
    }
    let d4 = shape.head_dim / 4;
    if !(rotate && shape.rope) {
        for d in 0..d4 {
            c.line(format!("let {name}{d} = {buffer}[{at} + {d}u];"));
        }
        return;
    }
    for d in 0..d4 {
        c.line(format!("let {name}raw{d} = {buffer}[{at} + {d}u];"));
    }
    let raw = |d: usize| format!("{name}raw{d}");
    let running = running_columns(shape);
    if running < d4 {
        // Column d and its partner d + D4/2 share a cosine; the sines are opposite.
        for d in 0..running {
            let h = d + running;
            c.line(format!("let {name}{d} = {name}raw{d} * rope_c{d} + {name}raw{h} * rope_s{d};"));
            c.line(format!("let {name}{h} = {name}raw{h} * rope_c{d} - {name}raw{d} * rope_s{d};"));
        }
    } else {
        for d in 0..d4 {
            c.line(format!("let {name}{d} = {} * rope_c{d} + {} * rope_s{d};", raw(d), partner(d4, d, &raw)));
        }
    }
    for d in 0..running {
        c.line(format!("let {name}next{d} = rope_c{d} * step_c{d} - rope_s{d} * step_s{d};"));
        c.line(format!("rope_s{d} = rope_s{d} * step_c{d} + rope_c{d} * step_s{d};"));
        c.line(format!("rope_c{d} = {name}next{d};"));
    }
}

/// `a + b + …` of `term(d)` over the head dimension's vec4 columns.
fn sum_columns(d4: usize, term: impl Fn(usize) -> String) -> String {
    (0..d4).map(term).collect::<Vec<_>>().join(" + ")
}

/// The forward kernel: online softmax over the key tiles of each query block.
pub(super) fn forward(shape: &AttentionShape) -> String {
    let (rows, d4) = (shape.rows_per_invocation, shape.head_dim / 4);
    let mut c = Code::new();
    begin(&mut c, shape, "NQB", "qb");
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
    mask_bits(&mut c, (rows, shape.block_k), "k0", |r, pos| (format!("row{r}"), pos.to_string()));
    c.open("for (var j = 0u; j < count; j++) {");
    c.line("let key = k0 + j;");
    c.line("let ka = (base + key) * D4;");
    load_visited(&mut c, shape, "k", "ka", "x", true);
    for r in 0..rows {
        c.line(format!("let s{r} = {};", sum_columns(d4, |d| format!("dot(q{r}_{d}, x{d})"))));
    }
    c.line("// Online softmax; a masked pair scores NEG and weighs 0.");
    allowed(&mut c, (rows, shape.block_k), "j");
    for r in 0..rows {
        c.line(format!("let mn{r} = select(m{r}, max(m{r}, s{r}), ok{r});"));
        c.line(format!("let alpha{r} = exp(m{r} - mn{r});"));
        c.line(format!("let p{r} = select(0.0, exp(s{r} - mn{r}), ok{r});"));
        c.line(format!("l{r} = l{r} * alpha{r} + p{r};"));
        c.line(format!("m{r} = mn{r};"));
    }
    load_visited(&mut c, shape, "v", "ka", "y", false);
    for d in 0..d4 {
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

/// The backward preprocess: `(L, rowsum(dO * O))` per row.
pub(super) fn delta(shape: &AttentionShape) -> String {
    let d4 = shape.head_dim / 4;
    let mut c = Code::new();
    entry(&mut c, false);
    c.line("let idx = (wid.y * nwg.x + wid.x) * WG + lid;");
    c.open("if (idx >= params.bh_count * N) {");
    c.line("return;");
    c.close();
    c.line("let at = idx * D4;");
    let terms: Vec<String> = (0..d4).map(|d| format!("dot(dout[at + {d}u], o[at + {d}u])")).collect();
    c.line(format!("let acc = {};", terms.join("\n        + ")));
    c.line("stats[idx] = vec2<f32>(lse[idx], acc);");
    c.close();
    c.finish()
}

/// The backward dK/dV kernel: per key block, over the query tiles of the transposed table.
pub(super) fn dkdv(shape: &AttentionShape) -> String {
    let (rows, d4) = (shape.rows_per_invocation, shape.head_dim / 4);
    let mut c = Code::new();
    begin(&mut c, shape, "NKB", "kb");
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
    mask_bits(&mut c, (rows, shape.block_q), "q0", |r, pos| (pos.to_string(), format!("col{r}")));
    c.open("for (var i = 0u; i < count; i++) {");
    c.line("// One query: P = exp(S - L) and dS = P * (dP - delta) against every owned key.");
    c.line("let query = q0 + i;");
    c.line("let qa = (base + query) * D4;");
    c.line("let st = stats[base + query];");
    load_visited(&mut c, shape, "q", "qa", "x", true);
    load_visited(&mut c, shape, "dout", "qa", "g", false);
    for r in 0..rows {
        c.line(format!("let s{r} = {};", sum_columns(d4, |d| format!("dot(x{d}, k{r}_{d})"))));
        c.line(format!("let dp{r} = {};", sum_columns(d4, |d| format!("dot(g{d}, v{r}_{d})"))));
    }
    allowed(&mut c, (rows, shape.block_q), "i");
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

/// The backward dQ kernel: per query block, over the key tiles of the forward table.
pub(super) fn dq(shape: &AttentionShape) -> String {
    let (rows, d4) = (shape.rows_per_invocation, shape.head_dim / 4);
    let mut c = Code::new();
    begin(&mut c, shape, "NQB", "qb");
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
    mask_bits(&mut c, (rows, shape.block_k), "k0", |r, pos| (format!("row{r}"), pos.to_string()));
    c.open("for (var j = 0u; j < count; j++) {");
    c.line("// One key: P = exp(S - L) and dS = P * (dP - delta) for every owned query.");
    c.line("let key = k0 + j;");
    c.line("let ka = (base + key) * D4;");
    load_visited(&mut c, shape, "k", "ka", "x", true);
    load_visited(&mut c, shape, "v", "ka", "y", false);
    for r in 0..rows {
        c.line(format!("let s{r} = {};", sum_columns(d4, |d| format!("dot(q{r}_{d}, x{d})"))));
        c.line(format!("let dp{r} = {};", sum_columns(d4, |d| format!("dot(g{r}_{d}, y{d})"))));
    }
    allowed(&mut c, (rows, shape.block_k), "j");
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
