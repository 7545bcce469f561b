//! Block tables: which (query block, key block) tiles a kernel visits.
//!
//! Every tile of the `(query block) x (key block)` grid is classified with
//! [`weft_ir::mask::classify_tile`]; empty tiles are dropped, full tiles are
//! marked so the kernel skips mask evaluation. Heads whose canonical masks are
//! equal share one table.

use std::collections::HashMap;

use weft_ir::ConcreteMask;
use weft_ir::mask::{TileClass, TileCounts, classify_tile};

/// One non-empty tile seen from a row of a block table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TileRef {
    /// The other block: a key block in the forward table, a query block in the transposed one.
    pub block: u32,
    /// `true` for a partial tile (the kernel evaluates the mask), `false` for a full one.
    pub partial: bool,
}

impl TileRef {
    /// The table word: `block << 1 | partial`.
    pub fn word(self) -> u32 {
        (self.block << 1) | u32::from(self.partial)
    }
}

/// The tiles of one canonical mask, in both orientations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockTable {
    /// The canonical concrete mask every head of the table has.
    pub mask: ConcreteMask,
    /// The heads that use this table, ascending.
    pub heads: Vec<usize>,
    /// Forward BCSR: for each query block, its non-empty key blocks in ascending order.
    pub rows: Vec<Vec<TileRef>>,
    /// Transposed BCSR: for each key block, its non-empty query blocks in ascending order.
    pub cols: Vec<Vec<TileRef>>,
    pub counts: TileCounts,
}

impl BlockTable {
    /// Classifies every tile of `mask` at sequence length `n`.
    pub fn build(mask: &ConcreteMask, n: usize, block_q: usize, block_k: usize) -> BlockTable {
        let (nqb, nkb) = (n.div_ceil(block_q), n.div_ceil(block_k));
        let mut rows = vec![Vec::new(); nqb];
        let mut cols = vec![Vec::new(); nkb];
        let mut counts = TileCounts::default();
        for (qb, row) in rows.iter_mut().enumerate() {
            let q = qb * block_q..((qb + 1) * block_q).min(n);
            for (kb, col) in cols.iter_mut().enumerate() {
                let k = kb * block_k..((kb + 1) * block_k).min(n);
                let partial = match classify_tile(mask, n, q.clone(), k) {
                    TileClass::Empty => {
                        counts.empty += 1;
                        continue;
                    }
                    TileClass::Full => {
                        counts.full += 1;
                        false
                    }
                    TileClass::Partial => {
                        counts.partial += 1;
                        true
                    }
                };
                row.push(TileRef { block: kb as u32, partial });
                col.push(TileRef { block: qb as u32, partial });
            }
        }
        BlockTable { mask: mask.clone(), heads: Vec::new(), rows, cols, counts }
    }

    /// Non-empty tiles.
    pub fn visited(&self) -> usize {
        self.counts.full + self.counts.partial
    }
}

/// The block tables of a fused attention node and the table of each head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockTables {
    pub seq_len: usize,
    pub block_q: usize,
    pub block_k: usize,
    /// `head_table[h]` indexes `tables`.
    pub head_table: Vec<u32>,
    pub tables: Vec<BlockTable>,
}

impl BlockTables {
    /// Builds one table per distinct canonical mask; `head_masks[h]` must already be canonical.
    pub fn build(head_masks: &[ConcreteMask], n: usize, block_q: usize, block_k: usize) -> BlockTables {
        let mut index: HashMap<&ConcreteMask, u32> = HashMap::new();
        let mut tables: Vec<BlockTable> = Vec::new();
        let mut head_table = Vec::with_capacity(head_masks.len());
        for (head, mask) in head_masks.iter().enumerate() {
            let t = *index.entry(mask).or_insert_with(|| {
                tables.push(BlockTable::build(mask, n, block_q, block_k));
                (tables.len() - 1) as u32
            });
            if let Some(table) = tables.get_mut(t as usize) {
                table.heads.push(head);
            }
            head_table.push(t);
        }
        BlockTables { seq_len: n, block_q, block_k, head_table, tables }
    }

    pub fn q_blocks(&self) -> usize {
        self.seq_len.div_ceil(self.block_q)
    }

    pub fn k_blocks(&self) -> usize {
        self.seq_len.div_ceil(self.block_k)
    }

    /// The forward table as the kernels read it (see [`pack`]).
    pub fn forward_words(&self) -> Vec<u32> {
        pack(&self.head_table, self.tables.iter().map(|t| t.rows.as_slice()))
    }

    /// The transposed table as the backward dK/dV kernel reads it (see [`pack`]).
    pub fn backward_words(&self) -> Vec<u32> {
        pack(&self.head_table, self.tables.iter().map(|t| t.cols.as_slice()))
    }
}

/// Packs block rows into one `u32` array:
///
/// ```text
/// [ head_table: H words
/// | row pointers: for each table t, rows + 1 words (absolute word indices)
/// | entries: TileRef::word() of every non-empty tile ]
/// ```
///
/// The row pointers of table `t` start at word `H + t * (rows + 1)`, so a
/// kernel finds the tiles of row `r` at words `ptr[r]..ptr[r + 1]`.
pub fn pack<'a>(head_table: &[u32], tables: impl Iterator<Item = &'a [Vec<TileRef>]> + Clone) -> Vec<u32> {
    let n_rows: usize = tables.clone().map(|rows| rows.len() + 1).sum();
    let n_entries: usize = tables.clone().flat_map(|rows| rows.iter().map(Vec::len)).sum();
    let mut words = Vec::with_capacity(head_table.len() + n_rows + n_entries);
    words.extend_from_slice(head_table);
    let mut next = (head_table.len() + n_rows) as u32;
    for rows in tables.clone() {
        for row in rows {
            words.push(next);
            next += row.len() as u32;
        }
        words.push(next);
    }
    for rows in tables {
        for row in rows {
            words.extend(row.iter().map(|t| t.word()));
        }
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_ir::MaskExpr;

    #[test]
    fn tables_agree_with_point_evaluation() {
        let masks = [
            MaskExpr::Causal,
            MaskExpr::Causal.and(MaskExpr::Sink(3).or(MaskExpr::Window(9))),
            MaskExpr::roll(13, MaskExpr::Causal.and(MaskExpr::Groups { size: 25, offset: 0 })),
        ];
        let n = 50;
        for mask in &masks {
            let table = BlockTable::build(mask, n, 8, 16);
            for q in 0..n {
                for k in 0..n {
                    let tile = table.rows[q / 8].iter().find(|t| t.block as usize == k / 16);
                    let allowed = mask.allows(n as i64, q as i64, k as i64);
                    match tile {
                        None => assert!(!allowed, "{mask}: ({q}, {k}) is in an empty tile"),
                        Some(t) if !t.partial => assert!(allowed, "{mask}: ({q}, {k}) is in a full tile"),
                        Some(_) => {}
                    }
                    let transposed = table.cols[k / 16].iter().find(|t| t.block as usize == q / 8);
                    assert_eq!(tile.map(|t| t.partial), transposed.map(|t| t.partial));
                }
            }
            assert_eq!(table.counts.total(), 7 * 4);
        }
    }

    #[test]
    fn equal_masks_share_a_table_and_pack_finds_rows() {
        let a = MaskExpr::Causal;
        let b = MaskExpr::Window(4);
        let tables = BlockTables::build(&[a.clone(), b, a], 20, 8, 8);
        assert_eq!(tables.head_table, vec![0, 1, 0]);
        assert_eq!(tables.tables[0].heads, vec![0, 2]);
        let words = tables.forward_words();
        let rows = tables.q_blocks();
        for (t, table) in tables.tables.iter().enumerate() {
            for (r, row) in table.rows.iter().enumerate() {
                let ptr = 3 + t * (rows + 1) + r;
                let (first, last) = (words[ptr] as usize, words[ptr + 1] as usize);
                let found: Vec<u32> = words[first..last].to_vec();
                let expected: Vec<u32> = row.iter().map(|t| t.word()).collect();
                assert_eq!(found, expected);
            }
        }
    }
}
