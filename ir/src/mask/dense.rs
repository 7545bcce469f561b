//! Dense masks, materialized a block of rows at a time for files and pictures.
//!
//! Key tiles that are empty or full are filled without evaluating a pair, so
//! writing a sparse mask costs little more than writing its bytes.

use std::ops::Range;

use super::{ConcreteMask, TileClass, classify_tile};

/// Key tile width used when filling rows.
const KEY_BLOCK: usize = 64;

impl ConcreteMask {
    /// Fills `out` (`rows.len() * n` bytes, row-major) with 1 where query `q` in
    /// `rows` attends to key `k`, 0 elsewhere.
    pub fn fill_rows(&self, n: usize, rows: Range<usize>, out: &mut [u8]) {
        debug_assert_eq!(out.len(), rows.len() * n);
        for k0 in (0..n).step_by(KEY_BLOCK) {
            let keys = k0..(k0 + KEY_BLOCK).min(n);
            let class = classify_tile(self, n, rows.clone(), keys.clone());
            for (r, q) in rows.clone().enumerate() {
                let cells = &mut out[r * n + keys.start..r * n + keys.end];
                match class {
                    TileClass::Empty => cells.fill(0),
                    TileClass::Full => cells.fill(1),
                    TileClass::Partial => {
                        for (cell, k) in cells.iter_mut().zip(keys.clone()) {
                            *cell = u8::from(self.allows(n as i64, q as i64, k as i64));
                        }
                    }
                }
            }
        }
    }

    /// The dense `n x n` mask, row-major by query.
    pub fn dense(&self, n: usize) -> Vec<bool> {
        let mut bytes = vec![0u8; n * n];
        self.fill_rows(n, 0..n, &mut bytes);
        bytes.into_iter().map(|b| b == 1).collect()
    }

    /// The same mask with offsets reduced to their period (`roll` modulo `n`,
    /// `groups` modulo `g`, `local_stride` modulo `s`), so that heads whose masks
    /// are equal compare equal.
    pub fn canonical(&self, n: i64) -> ConcreteMask {
        use super::MaskExpr::*;
        let reduce = |o: i64, period: i64| if period > 0 { o.rem_euclid(period) } else { o };
        match self {
            Full => Full,
            Causal => Causal,
            Window(w) => Window(*w),
            Sink(s) => Sink(*s),
            Groups { size, offset } => Groups { size: *size, offset: reduce(*offset, *size) },
            LocalStride { block, local, stride, offset } => LocalStride {
                block: *block,
                local: *local,
                stride: *stride,
                offset: reduce(*offset, *stride),
            },
            Roll { offset, inner } => match reduce(*offset, n) {
                0 => inner.canonical(n),
                o => Roll { offset: o, inner: Box::new(inner.canonical(n)) },
            },
            Not(a) => Not(Box::new(a.canonical(n))),
            And(a, b) => And(Box::new(a.canonical(n)), Box::new(b.canonical(n))),
            Or(a, b) => Or(Box::new(a.canonical(n)), Box::new(b.canonical(n))),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::mask::MaskExpr;

    #[test]
    fn canonical_masks_are_equal_masks() {
        let n = 24;
        let masks = [
            MaskExpr::Groups { size: 5, offset: 13 },
            MaskExpr::LocalStride { block: 2, local: 2, stride: 3, offset: -7 },
            MaskExpr::roll(-30, MaskExpr::Causal.and(MaskExpr::Groups { size: 6, offset: 0 })),
            MaskExpr::roll(48, MaskExpr::Window(3)),
        ];
        for mask in masks {
            let canonical = mask.canonical(n);
            assert_ne!(canonical, mask, "{mask} is already canonical");
            assert_eq!(canonical.dense(n as usize), mask.dense(n as usize), "{mask} vs {canonical}");
        }
    }

    #[test]
    fn filled_rows_match_point_evaluation() {
        let mask = MaskExpr::Causal.and(MaskExpr::Sink(3).or(MaskExpr::Window(70)));
        let n = 200;
        let mut out = vec![7u8; 50 * n];
        mask.fill_rows(n, 100..150, &mut out);
        for (r, q) in (100..150).enumerate() {
            for k in 0..n {
                assert_eq!(out[r * n + k] == 1, mask.allows(n as i64, q, k as i64), "q {q} k {k}");
            }
        }
    }
}
