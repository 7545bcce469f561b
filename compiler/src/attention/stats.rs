//! What a plan costs: tiles visited, FLOPs and bytes, for `weft inspect kernels`.

use std::fmt;

use weft_ir::mask::TileCounts;

use super::{AttentionKernel, AttentionPlanOptions, BlockTables, FusedAttentionDesc};

/// One block table: its heads, its mask and its tiles (for one (batch, head)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableStats {
    pub heads: Vec<usize>,
    /// The canonical concrete mask, printed.
    pub mask: String,
    pub tiles: TileCounts,
    /// (query, key) pairs inside visited tiles, for one (batch, head).
    pub visited_pairs: u64,
}

/// The statistics of a fused attention plan. Tile, FLOP and byte counts are
/// totals over every (batch, head); FLOPs count the multiply-adds of the
/// matrix products (2 per multiply-add) over visited tiles, and bytes are the
/// global-memory traffic of the kernels as written (each workgroup reads the
/// key/value or query/gradient rows of every tile it visits).
#[derive(Clone, Debug, PartialEq)]
pub struct PlanStats {
    pub name: String,
    pub batch: usize,
    pub n_heads: usize,
    pub seq_len: usize,
    pub head_dim: usize,
    pub block_q: usize,
    pub block_k: usize,
    pub rows_per_invocation: usize,
    /// The kernels that run: lane or subgroup loads.
    pub kernel: AttentionKernel,
    pub q_blocks: usize,
    pub k_blocks: usize,
    pub tables: Vec<TableStats>,
    pub tiles_full: u64,
    pub tiles_partial: u64,
    pub tiles_empty: u64,
    pub visited_pairs: u64,
    pub flops_forward: u64,
    pub flops_backward: u64,
    pub bytes_forward: u64,
    pub bytes_backward: u64,
    /// Bytes of the constant block tables.
    pub table_bytes: u64,
    /// FLOPs and bytes of each backward kernel (`bwd_delta`, `bwd_dkdv`,
    /// `bwd_dq`), which add up to `flops_backward` and `bytes_backward`.
    pub backward_kernels: [(u64, u64); 3],
    /// Chunks of (batch, head) pairs the tensors are split into.
    pub chunks: usize,
    /// Dispatches in the plan.
    pub dispatches: usize,
    pub backward: bool,
}

impl PlanStats {
    /// The FLOPs and bytes of one kernel kind of the plan (`fwd`,
    /// `bwd_delta`, `bwd_dkdv`, `bwd_dq`), over all its chunks.
    pub fn kernel_cost(&self, kind: &str) -> (u64, u64) {
        match kind {
            "fwd" => (self.flops_forward, self.bytes_forward),
            "bwd_delta" => self.backward_kernels[0],
            "bwd_dkdv" => self.backward_kernels[1],
            "bwd_dq" => self.backward_kernels[2],
            _ => (0, 0),
        }
    }

    pub(super) fn new(
        desc: &FusedAttentionDesc,
        opts: &AttentionPlanOptions,
        tables: &BlockTables,
        chunks: usize,
        dispatches: usize,
    ) -> PlanStats {
        let (n, d) = (desc.seq_len as u64, desc.head_dim as u64);
        let (bq, bk) = (tables.block_q as u64, tables.block_k as u64);
        let len = |block: u64, size: u64| size.min(n - block * size);
        let batch = desc.batch as u64;
        let mut stats = PlanStats {
            name: desc.name.clone(),
            batch: desc.batch,
            n_heads: desc.n_heads,
            seq_len: desc.seq_len,
            head_dim: desc.head_dim,
            block_q: tables.block_q,
            block_k: tables.block_k,
            rows_per_invocation: opts.rows_per_invocation,
            kernel: opts.kernel_for(desc),
            q_blocks: tables.q_blocks(),
            k_blocks: tables.k_blocks(),
            tables: Vec::new(),
            tiles_full: 0,
            tiles_partial: 0,
            tiles_empty: 0,
            visited_pairs: 0,
            flops_forward: 0,
            flops_backward: 0,
            bytes_forward: 0,
            bytes_backward: 0,
            table_bytes: 4 * (tables.forward_words().len() as u64),
            backward_kernels: [(0, 0); 3],
            chunks,
            dispatches,
            backward: opts.backward,
        };
        if opts.backward {
            stats.table_bytes += 4 * tables.backward_words().len() as u64;
        }
        let row = 4 * d; // bytes of one f32 row
        for table in &tables.tables {
            let copies = batch * table.heads.len() as u64;
            let mut pairs = 0;
            // Rows of the other side read per visited tile.
            let (mut keys_read, mut queries_read) = (0, 0);
            for (qb, tiles) in table.rows.iter().enumerate() {
                for tile in tiles {
                    let (q_len, k_len) = (len(qb as u64, bq), len(u64::from(tile.block), bk));
                    pairs += q_len * k_len;
                    keys_read += k_len;
                    queries_read += q_len;
                }
            }
            stats.tables.push(TableStats {
                heads: table.heads.clone(),
                mask: table.mask.to_string(),
                tiles: table.counts,
                visited_pairs: pairs,
            });
            stats.tiles_full += copies * table.counts.full as u64;
            stats.tiles_partial += copies * table.counts.partial as u64;
            stats.tiles_empty += copies * table.counts.empty as u64;
            stats.visited_pairs += copies * pairs;
            // Forward: S = QK^T and PV, 2 FLOPs per multiply-add.
            stats.flops_forward += copies * 4 * d * pairs;
            // q, o, lse once; k and v rows of every visited tile.
            stats.bytes_forward += copies * (n * (2 * row + 4) + keys_read * 2 * row);
            // dK/dV: S, dP, dV, dK; dQ: S, dP, dQ; delta: one dot product per row.
            stats.flops_backward += copies * (14 * d * pairs + 2 * d * n);
            // delta: o, do, lse in, (lse, delta) out.
            let delta = n * (2 * row + 4 + 8);
            // dK/dV: k, v in, dk, dv out; q, do, (lse, delta) per visited query row.
            let dkdv = n * 4 * row + queries_read * (2 * row + 8);
            // dQ: q, do, (lse, delta) in, dq out; k, v per visited key row.
            let dq = n * (3 * row + 8) + keys_read * 2 * row;
            stats.bytes_backward += copies * (delta + dkdv + dq);
            let flops = [2 * d * n, 8 * d * pairs, 6 * d * pairs];
            for (i, bytes) in [delta, dkdv, dq].into_iter().enumerate() {
                stats.backward_kernels[i].0 += copies * flops[i];
                stats.backward_kernels[i].1 += copies * bytes;
            }
        }
        if !opts.backward {
            stats.flops_backward = 0;
            stats.bytes_backward = 0;
            stats.backward_kernels = [(0, 0); 3];
        }
        // The forward pass ran in another plan.
        if opts.saved_forward {
            stats.flops_forward = 0;
            stats.bytes_forward = 0;
        }
        stats
    }

    /// Visited tiles of all (batch, head) pairs.
    pub fn tiles_visited(&self) -> u64 {
        self.tiles_full + self.tiles_partial
    }

    /// Visited pairs over all `B * H * N * N` pairs: the work relative to dense attention.
    pub fn visited_fraction(&self) -> f64 {
        let all = (self.batch * self.n_heads) as f64 * (self.seq_len as f64).powi(2);
        self.visited_pairs as f64 / all
    }
}

fn si(x: u64, unit: &str) -> String {
    let x = x as f64;
    let (value, prefix) = if x >= 1e12 {
        (x / 1e12, "T")
    } else if x >= 1e9 {
        (x / 1e9, "G")
    } else if x >= 1e6 {
        (x / 1e6, "M")
    } else if x >= 1e3 {
        (x / 1e3, "k")
    } else {
        (x, "")
    };
    format!("{value:.2} {prefix}{unit}")
}

fn heads(list: &[usize]) -> String {
    // Compress runs: 0..4, 6, 8..10
    let mut parts = Vec::new();
    let mut i = 0;
    while i < list.len() {
        let mut j = i;
        while j + 1 < list.len() && list[j + 1] == list[j] + 1 {
            j += 1;
        }
        parts.push(if j == i { list[i].to_string() } else { format!("{}..{}", list[i], list[j] + 1) });
        i = j + 1;
    }
    parts.join(", ")
}

impl fmt::Display for PlanStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "fused attention `{}`: B={} H={} N={} D={}, blocks {}x{} ({} x {} tiles), {} row{} per invocation, {} kernels",
            self.name,
            self.batch,
            self.n_heads,
            self.seq_len,
            self.head_dim,
            self.block_q,
            self.block_k,
            self.q_blocks,
            self.k_blocks,
            self.rows_per_invocation,
            if self.rows_per_invocation == 1 { "" } else { "s" },
            self.kernel
        )?;
        for (i, t) in self.tables.iter().enumerate() {
            writeln!(
                f,
                "  table {i} (heads {}): {}: {} full, {} partial, {} empty tiles",
                heads(&t.heads),
                t.mask,
                t.tiles.full,
                t.tiles.partial,
                t.tiles.empty
            )?;
        }
        writeln!(
            f,
            "  tiles visited: {} full + {} partial of {} ({:.1}% of dense pairs)",
            self.tiles_full,
            self.tiles_partial,
            self.tiles_full + self.tiles_partial + self.tiles_empty,
            100.0 * self.visited_fraction()
        )?;
        write!(f, "  forward: {}, {}", si(self.flops_forward, "FLOP"), si(self.bytes_forward, "B"))?;
        if self.backward {
            write!(f, "; backward: {}, {}", si(self.flops_backward, "FLOP"), si(self.bytes_backward, "B"))?;
        }
        writeln!(f)?;
        write!(
            f,
            "  block tables: {}; {} chunk{}, {} dispatch{}",
            si(self.table_bytes, "B"),
            self.chunks,
            if self.chunks == 1 { "" } else { "s" },
            self.dispatches,
            if self.dispatches == 1 { "" } else { "es" }
        )
    }
}
