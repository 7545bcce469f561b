//! Per-head statistics: density, tile counts, and the work a block-sparse kernel does.

use super::{ConcreteMask, MaskExpr, TileClass, classify_tile};

/// How many tiles of each class a mask has at one block size.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TileCounts {
    pub empty: usize,
    pub full: usize,
    pub partial: usize,
}

impl TileCounts {
    pub fn total(&self) -> usize {
        self.empty + self.full + self.partial
    }
}

/// Statistics of one head's mask at sequence length `n` and block size `block`.
#[derive(Clone, Debug, PartialEq)]
pub struct HeadStats {
    pub seq_len: usize,
    pub block: usize,
    /// Number of allowed (q, k) pairs.
    pub allowed_pairs: u64,
    pub tiles: TileCounts,
    /// Pairs inside non-empty tiles: what a block-sparse kernel computes.
    pub visited_pairs: u64,
}

impl HeadStats {
    /// Allowed pairs over all `n * n` pairs.
    pub fn density(&self) -> f64 {
        self.allowed_pairs as f64 / (self.seq_len as f64 * self.seq_len as f64)
    }

    /// Attention FLOPs (QK^T and PV, forward) of a block-sparse kernel at `head_dim`.
    pub fn kernel_flops(&self, head_dim: usize) -> f64 {
        4.0 * head_dim as f64 * self.visited_pairs as f64
    }

    /// Allowed pairs relative to full causal attention, `n (n + 1) / 2`.
    pub fn pairs_vs_causal(&self) -> f64 {
        let n = self.seq_len as f64;
        self.allowed_pairs as f64 / (n * (n + 1.0) / 2.0)
    }
}

/// Computes [`HeadStats`]. Empty and full tiles are counted from their class;
/// only partial tiles are scanned pair by pair.
pub fn head_stats(mask: &ConcreteMask, n: usize, block: usize) -> HeadStats {
    let block = block.max(1);
    let n_blocks = n.div_ceil(block);
    let mut stats =
        HeadStats { seq_len: n, block, allowed_pairs: 0, tiles: TileCounts::default(), visited_pairs: 0 };
    for qb in 0..n_blocks {
        for kb in 0..n_blocks {
            let q = qb * block..((qb + 1) * block).min(n);
            let k = kb * block..((kb + 1) * block).min(n);
            let area = (q.len() * k.len()) as u64;
            match classify_tile(mask, n, q.clone(), k.clone()) {
                TileClass::Empty => stats.tiles.empty += 1,
                TileClass::Full => {
                    stats.tiles.full += 1;
                    stats.allowed_pairs += area;
                    stats.visited_pairs += area;
                }
                TileClass::Partial => {
                    stats.tiles.partial += 1;
                    stats.visited_pairs += area;
                    stats.allowed_pairs += count_allowed(mask, n, q, k);
                }
            }
        }
    }
    stats
}

fn count_allowed(mask: &ConcreteMask, n: usize, q: std::ops::Range<usize>, k: std::ops::Range<usize>) -> u64 {
    let n = n as i64;
    let mut count = 0;
    for qq in q {
        for kk in k.clone() {
            count += u64::from(mask.allows(n, qq as i64, kk as i64));
        }
    }
    count
}

/// The statistics of full causal attention, the baseline `weft inspect` compares against.
pub fn causal_stats(n: usize, block: usize) -> HeadStats {
    head_stats(&MaskExpr::Causal, n, block)
}
