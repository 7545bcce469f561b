//! The slot table of one layer's KV cache, kept on the host.
//!
//! The device cache of a layer is `[batch, n_kv_heads, capacity, head_dim]`
//! for keys and again for values; this table says which absolute position
//! each `(row, kv_head, slot)` holds (`EMPTY` when none), and is uploaded
//! beside it so the decode kernel applies the mask in absolute positions.
//! Rows advance independently, so prompts of different lengths share a batch.

use weft_ir::mask::Reach;

/// A slot that holds no key.
pub const EMPTY: i32 = -1;

/// Why a key could not be admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlotError {
    #[error("row {row} is out of range (batch {batch})")]
    Row { row: usize, batch: usize },
    #[error("row {row}: position {position} comes after {held}; keys are admitted in order")]
    OutOfOrder { row: usize, position: i64, held: i64 },
    #[error("row {row}: position {position} is past the {max_len} positions the cache was sized for")]
    TooLong { row: usize, position: i64, max_len: u64 },
    /// A reach whose capacity undercounts what it keeps: a bug, reported rather than overwritten.
    #[error(
        "row {row}, KV head {kv_head}: all {capacity} slots hold keys the mask can still reach at position {position} (reach {reach})"
    )]
    Full { row: usize, kv_head: usize, capacity: usize, position: i64, reach: String },
}

/// Which position every slot of one layer's cache holds.
#[derive(Clone, Debug)]
pub struct SlotTable {
    /// Per KV head.
    reach: Vec<Reach>,
    batch: usize,
    capacity: usize,
    max_len: u64,
    /// `[batch, n_kv_heads, capacity]`.
    positions: Vec<i32>,
    /// Per row, the last admitted position (-1: none yet).
    last: Vec<i64>,
}

impl SlotTable {
    /// A table for `batch` rows of up to `max_len` positions. Its capacity is
    /// the largest of its KV heads' reach capacities at `max_len`.
    pub fn new(reach: Vec<Reach>, batch: usize, max_len: u64) -> Self {
        let capacity = reach.iter().map(|r| r.capacity(max_len)).max().unwrap_or(0) as usize;
        let positions = vec![EMPTY; batch * reach.len() * capacity];
        SlotTable { batch, capacity, max_len, positions, last: vec![-1; batch], reach }
    }

    /// Slots per `(row, kv_head)`.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn n_kv_heads(&self) -> usize {
        self.reach.len()
    }

    /// `[batch, n_kv_heads, capacity]`, `EMPTY` where a slot holds nothing.
    pub fn positions(&self) -> &[i32] {
        &self.positions
    }

    /// The positions `(row, kv_head)` holds, in slot order.
    pub fn held(&self, row: usize, kv_head: usize) -> Vec<i64> {
        self.slots(row, kv_head).iter().filter(|&&p| p != EMPTY).map(|&p| i64::from(p)).collect()
    }

    fn slots(&self, row: usize, kv_head: usize) -> &[i32] {
        let start = (row * self.reach.len() + kv_head) * self.capacity;
        &self.positions[start..start + self.capacity]
    }

    /// Admits key `position` of `row` (the next position of that row): evicts
    /// what no query from `position` on can see, then returns per KV head the
    /// slot the key's K and V go to, or `None` where the mask never needs it.
    pub fn admit(&mut self, row: usize, position: i64) -> Result<Vec<Option<usize>>, SlotError> {
        if row >= self.batch {
            return Err(SlotError::Row { row, batch: self.batch });
        }
        if position != self.last[row] + 1 {
            return Err(SlotError::OutOfOrder { row, position, held: self.last[row] });
        }
        if u64::try_from(position).map_or(true, |p| p >= self.max_len) {
            return Err(SlotError::TooLong { row, position, max_len: self.max_len });
        }
        let slot_value = i32::try_from(position).map_err(|_| SlotError::TooLong {
            row,
            position,
            max_len: self.max_len,
        })?;
        let n_kv = self.reach.len();
        let mut placed = Vec::with_capacity(n_kv);
        for kv_head in 0..n_kv {
            let reach = &self.reach[kv_head];
            let start = (row * n_kv + kv_head) * self.capacity;
            let slots = &mut self.positions[start..start + self.capacity];
            for slot in slots.iter_mut() {
                if *slot != EMPTY && !reach.keeps(position, i64::from(*slot)) {
                    *slot = EMPTY;
                }
            }
            if !reach.keeps(position, position) {
                placed.push(None);
                continue;
            }
            let Some(free) = slots.iter().position(|&p| p == EMPTY) else {
                return Err(SlotError::Full {
                    row,
                    kv_head,
                    capacity: self.capacity,
                    position,
                    reach: reach.to_string(),
                });
            };
            slots[free] = slot_value;
            placed.push(Some(free));
        }
        self.last[row] = position;
        Ok(placed)
    }
}

#[cfg(test)]
mod tests {
    use weft_ir::ConcreteMask;

    use super::*;

    fn mask(src: &str) -> ConcreteMask {
        weft_ir::expr::parse_mask(src).unwrap().try_map_sizes(&mut |s, _| s.eval(&|_| None)).unwrap()
    }

    /// Decodes `n` positions of one row with KV heads serving `per_kv` query
    /// heads each: after every admit, each KV head holds every key a later
    /// query of its heads may see, and never more than the capacity.
    fn check(masks: &[&str], per_kv: usize, n: i64) -> SlotTable {
        let masks: Vec<ConcreteMask> = masks.iter().map(|m| mask(m)).collect();
        let reach: Vec<Reach> = masks
            .chunks(per_kv)
            .map(|heads| Reach::union(heads.iter().map(ConcreteMask::reach).collect()))
            .collect();
        let mut table = SlotTable::new(reach, 1, n as u64);
        for t in 0..n {
            table.admit(0, t).unwrap();
            for (kv_head, heads) in masks.chunks(per_kv).enumerate() {
                let held = table.held(0, kv_head);
                assert!(held.len() <= table.capacity());
                for k in 0..=t {
                    let needed = heads.iter().any(|m| (t..n).any(|q| m.allows(n, q, k)));
                    assert!(!needed || held.contains(&k), "{masks:?}: key {k} missing at {t}; held {held:?}");
                }
            }
        }
        table
    }

    #[test]
    fn a_sink_and_window_cache_is_a_ring_of_the_window() {
        let table = check(&["causal & (sink(4) | window(8))"], 1, 64);
        assert_eq!(table.capacity(), 12);
        let mut held = table.held(0, 0);
        held.sort_unstable();
        assert_eq!(held, [0, 1, 2, 3, 56, 57, 58, 59, 60, 61, 62, 63]);
    }

    #[test]
    fn full_causal_keeps_every_key() {
        let table = check(&["causal"], 1, 40);
        assert_eq!(table.held(0, 0), (0..40).collect::<Vec<_>>());
    }

    #[test]
    fn local_stride_heads_keep_their_vertical_blocks_and_gqa_keeps_the_union() {
        let heads = ["causal & local_stride(4, 2, 4, 0)", "causal & local_stride(4, 2, 4, 1)"];
        let mha = check(&heads, 1, 64);
        let gqa = check(&heads, 2, 64);
        assert_eq!(mha.capacity(), 8 + 16);
        assert_eq!(gqa.capacity(), 8 + 32);
        // Head 0 keeps key blocks 0, 4, 8, 12 and the 2 newest (14, 15).
        let blocks = |held: Vec<i64>| {
            let mut b: Vec<i64> = held.iter().map(|k| k / 4).collect();
            b.dedup();
            b.sort_unstable();
            b.dedup();
            b
        };
        assert_eq!(blocks(mha.held(0, 0)), [0, 4, 8, 12, 14, 15]);
        assert_eq!(blocks(mha.held(0, 1)), [3, 7, 11, 14, 15]);
        assert_eq!(blocks(gqa.held(0, 0)), [0, 3, 4, 7, 8, 11, 12, 14, 15]);
    }

    #[test]
    fn groups_keep_the_current_group() {
        let table = check(&["causal & groups(8)", "causal & groups(8, 4)"], 1, 40);
        assert_eq!(table.held(0, 0), (32..40).collect::<Vec<_>>());
    }

    #[test]
    fn rows_advance_on_their_own() {
        let reach = vec![mask("causal & window(3)").reach()];
        let mut table = SlotTable::new(reach, 2, 16);
        for t in 0..5 {
            table.admit(0, t).unwrap();
        }
        table.admit(1, 0).unwrap();
        let mut held = table.held(0, 0);
        held.sort_unstable();
        assert_eq!((held, table.held(1, 0)), (vec![2, 3, 4], vec![0]));
        assert_eq!(table.positions().len(), 2 * 3);
    }

    #[test]
    fn misuse_is_an_error() {
        let reach = vec![mask("causal & window(3)").reach()];
        let mut table = SlotTable::new(reach.clone(), 1, 4);
        assert_eq!(table.admit(1, 0), Err(SlotError::Row { row: 1, batch: 1 }));
        assert_eq!(table.admit(0, 1), Err(SlotError::OutOfOrder { row: 0, position: 1, held: -1 }));
        for t in 0..4 {
            table.admit(0, t).unwrap();
        }
        assert_eq!(table.admit(0, 4), Err(SlotError::TooLong { row: 0, position: 4, max_len: 4 }));
        // A reach that undercounts: `Recent(3)` with two slots.
        let mut small = SlotTable::new(vec![Reach::Recent(2)], 1, 8);
        small.reach = reach;
        small.admit(0, 0).unwrap();
        small.admit(0, 1).unwrap();
        let e = small.admit(0, 2).unwrap_err();
        assert_eq!(
            e.to_string(),
            "row 0, KV head 0: all 2 slots hold keys the mask can still reach at position 2 (reach 3)"
        );
    }
}
