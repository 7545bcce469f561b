//! Tile classification: is a (query block, key block) tile empty, full or partial?
//!
//! Interval reasoning answers most tiles without looking at a single pair: every
//! primitive is classified exactly, and `& | ! roll` combine those verdicts. A
//! verdict of `Full` or `Empty` is always certain. `Partial` is certain for a
//! primitive, but may not be after combining two partial operands (`causal &
//! !causal` is empty); only then is the tile scanned pair by pair.

use std::ops::Range;

use super::{ConcreteMask, MaskExpr};
use crate::expr::SizeOp;

/// How a tile of the (query, key) plane relates to a mask.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TileClass {
    /// No pair is allowed: the kernel skips the tile.
    Empty,
    /// Every pair is allowed: the kernel skips mask evaluation.
    Full,
    /// Some pairs are allowed: the kernel evaluates the mask.
    Partial,
}

/// An interval verdict; `certain` says whether a `Partial` verdict is exact.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub class: TileClass,
    pub certain: bool,
}

impl Verdict {
    const FULL: Verdict = Verdict { class: TileClass::Full, certain: true };
    const EMPTY: Verdict = Verdict { class: TileClass::Empty, certain: true };
    const PARTIAL: Verdict = Verdict { class: TileClass::Partial, certain: true };
    const UNKNOWN: Verdict = Verdict { class: TileClass::Partial, certain: false };

    /// Certainly holds for some pair of the tile.
    fn some_true(self) -> bool {
        self.class == TileClass::Full || (self.class == TileClass::Partial && self.certain)
    }

    /// Certainly fails for some pair of the tile.
    fn some_false(self) -> bool {
        self.class == TileClass::Empty || (self.class == TileClass::Partial && self.certain)
    }

    /// The verdict for a tile that is the union of tiles with these verdicts.
    fn union(parts: &[Verdict]) -> Verdict {
        if parts.iter().all(|v| v.class == TileClass::Full) {
            Verdict::FULL
        } else if parts.iter().all(|v| v.class == TileClass::Empty) {
            Verdict::EMPTY
        } else {
            let certain = parts.iter().any(|v| v.some_true()) && parts.iter().any(|v| v.some_false());
            Verdict { class: TileClass::Partial, certain }
        }
    }
}

/// Classifies the tile `q_range x k_range` (inclusive bounds, inside `[0, n)`) by
/// interval reasoning alone.
pub fn classify_interval(mask: &ConcreteMask, n: i64, q: (i64, i64), k: (i64, i64)) -> Verdict {
    match mask {
        MaskExpr::Full => Verdict::FULL,
        MaskExpr::Causal => threshold(k.1 <= q.0, k.0 > q.1),
        MaskExpr::Window(w) => {
            let (lo, hi) = (q.0 - k.1, q.1 - k.0);
            let max_abs = lo.abs().max(hi.abs());
            let min_abs = if lo <= 0 && hi >= 0 { 0 } else { lo.abs().min(hi.abs()) };
            threshold(max_abs < *w, min_abs >= *w)
        }
        MaskExpr::Sink(s) => threshold(k.1 < *s, k.0 >= *s),
        MaskExpr::Groups { size, offset } => {
            let group = |x: i64| div(x - offset, *size);
            let (q0, q1, k0, k1) = (group(q.0), group(q.1), group(k.0), group(k.1));
            threshold(q0 == q1 && k0 == k1 && q0 == k0, q1 < k0 || k1 < q0)
        }
        MaskExpr::LocalStride { block, local, stride, offset } => {
            let (qb0, qb1) = (div(q.0, *block), div(q.1, *block));
            let (kb0, kb1) = (div(k.0, *block), div(k.1, *block));
            // All integer distances in [lo, hi] occur in the tile.
            let (lo, hi) = (qb0 - kb1, qb1 - kb0);
            let local_term = threshold(hi < *local, lo >= *local);
            let first_vertical = kb0 + rem(-(kb0 + offset), *stride);
            let has_vertical = first_vertical <= kb1;
            let all_vertical = *stride == 1 || (kb0 == kb1 && has_vertical);
            let vertical_term = threshold(all_vertical, !has_vertical);
            or(local_term, vertical_term)
        }
        MaskExpr::Roll { offset, inner } => {
            let q_pieces = roll_interval(q, *offset, n);
            let k_pieces = roll_interval(k, *offset, n);
            let mut parts = Vec::with_capacity(4);
            for &qp in &q_pieces {
                for &kp in &k_pieces {
                    parts.push(classify_interval(inner, n, qp, kp));
                }
            }
            Verdict::union(&parts)
        }
        MaskExpr::Not(a) => {
            let v = classify_interval(a, n, q, k);
            let class = match v.class {
                TileClass::Empty => TileClass::Full,
                TileClass::Full => TileClass::Empty,
                TileClass::Partial => TileClass::Partial,
            };
            Verdict { class, certain: v.certain }
        }
        MaskExpr::And(a, b) => {
            let (va, vb) = (classify_interval(a, n, q, k), classify_interval(b, n, q, k));
            match (va.class, vb.class) {
                (TileClass::Empty, _) | (_, TileClass::Empty) => Verdict::EMPTY,
                (TileClass::Full, _) => vb,
                (_, TileClass::Full) => va,
                _ => Verdict::UNKNOWN,
            }
        }
        MaskExpr::Or(a, b) => or(classify_interval(a, n, q, k), classify_interval(b, n, q, k)),
    }
}

fn or(va: Verdict, vb: Verdict) -> Verdict {
    match (va.class, vb.class) {
        (TileClass::Full, _) | (_, TileClass::Full) => Verdict::FULL,
        (TileClass::Empty, _) => vb,
        (_, TileClass::Empty) => va,
        _ => Verdict::UNKNOWN,
    }
}

/// The verdict of a primitive that is all-true when `full` and all-false when `empty`.
fn threshold(full: bool, empty: bool) -> Verdict {
    if full {
        Verdict::FULL
    } else if empty {
        Verdict::EMPTY
    } else {
        Verdict::PARTIAL
    }
}

/// The image of `[lo, hi]` under `x -> (x - offset) mod n`: one interval, or two when it wraps.
fn roll_interval((lo, hi): (i64, i64), offset: i64, n: i64) -> Vec<(i64, i64)> {
    let start = rem(lo - offset, n);
    let end = start + (hi - lo);
    if end < n { vec![(start, end)] } else { vec![(start, n - 1), (0, end - n)] }
}

fn div(a: i64, b: i64) -> i64 {
    SizeOp::Div.apply(a, b).unwrap_or(0)
}

fn rem(a: i64, b: i64) -> i64 {
    SizeOp::Rem.apply(a, b).unwrap_or(0)
}

/// Classifies a tile exactly: interval reasoning first, a pair-by-pair scan only
/// where that reasoning is unsure. `q` and `k` are half-open position ranges.
pub fn classify_tile(mask: &ConcreteMask, n: usize, q: Range<usize>, k: Range<usize>) -> TileClass {
    if q.is_empty() || k.is_empty() {
        return TileClass::Empty;
    }
    let (ni, qi, ki) = (n as i64, (q.start as i64, q.end as i64 - 1), (k.start as i64, k.end as i64 - 1));
    let verdict = classify_interval(mask, ni, qi, ki);
    if verdict.certain {
        return verdict.class;
    }
    scan_tile(mask, ni, qi, ki)
}

/// Brute force, stopping as soon as both an allowed and a masked pair are seen.
fn scan_tile(mask: &ConcreteMask, n: i64, q: (i64, i64), k: (i64, i64)) -> TileClass {
    let (mut any_true, mut any_false) = (false, false);
    for qq in q.0..=q.1 {
        for kk in k.0..=k.1 {
            if mask.allows(n, qq, kk) {
                any_true = true;
            } else {
                any_false = true;
            }
            if any_true && any_false {
                return TileClass::Partial;
            }
        }
    }
    if any_true { TileClass::Full } else { TileClass::Empty }
}

/// The classification of every tile at block size `block`, row-major by query
/// block; the last row and column are clipped to `n`.
pub fn tile_table(mask: &ConcreteMask, n: usize, block: usize) -> Vec<TileClass> {
    let n_blocks = n.div_ceil(block.max(1));
    let block = block.max(1);
    let mut table = Vec::with_capacity(n_blocks * n_blocks);
    for qb in 0..n_blocks {
        for kb in 0..n_blocks {
            let q = qb * block..((qb + 1) * block).min(n);
            let k = kb * block..((kb + 1) * block).min(n);
            table.push(classify_tile(mask, n, q, k));
        }
    }
    table
}
