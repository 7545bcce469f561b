//! Reach: which earlier keys a decoder must still hold.
//!
//! A causal decoder runs query `t` after appending key `t` to its cache. A key
//! `k <= t` may leave the cache once no query `q >= t` is allowed to see it.
//! [`ConcreteMask::reach`] over-approximates that set symbolically, one rule
//! per primitive and combinator, so the cache a pattern needs follows from its
//! mask rather than from its name:
//!
//! | mask | kept at `t` (keys `k <= t`) | at most |
//! |---|---|---|
//! | `full`, `causal` | every key | `N` |
//! | `sink(s)` | `k < s` | `s` |
//! | `window(w)` | `k > t - w` | `w` |
//! | `groups(g, o)` | `k` in `t`'s group | `g` |
//! | `local_stride(b, l, s, o)` | the `l` newest blocks, and blocks `kb` with `(kb + o) mod s == 0` | `l·b + b·⌈N / (b·s)⌉` |
//! | `a & b` | kept by both | the smaller |
//! | `a \| b` | kept by either | the sum |
//! | `!a`, `roll(..)` | every key (`!causal`, `!full`: none) | `N` |
//!
//! `a & b` keeps the intersection because a pair both allow is a pair each
//! allows. `roll` evaluates positions modulo the sequence length, which grows
//! while decoding, so it has no finite reach (and is refused by a decoder that
//! must match a full recomputation: see [`ConcreteMask::mentions_length`]).

use std::fmt;

use super::{ConcreteMask, MaskExpr};
use crate::expr::size::{floor_div, floor_rem};

/// The keys `k <= t` a decoder keeps while running query `t` (and later ones).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Reach {
    /// No key: the mask allows no `k <= q`.
    Nothing,
    /// Every key: no finite reach.
    Everything,
    /// Attention sinks: `k < s`.
    Prefix(i64),
    /// A sliding window: the `w` newest keys, `k > t - w`.
    Recent(i64),
    /// The keys of `t`'s own group: `floor((k - o) / g) == floor((t - o) / g)`.
    Group { size: i64, offset: i64 },
    /// The `local` newest blocks of `block` keys: `floor(k / b) > floor(t / b) - l`.
    RecentBlocks { block: i64, local: i64 },
    /// Whole blocks on a stride: `(floor(k / b) + o) mod s == 0` for any of
    /// the offsets (sorted residues mod `s`, one per head a KV head serves).
    Strided { block: i64, stride: i64, offsets: Vec<i64> },
    /// Kept by any part; at least two parts, none of them `Nothing` or `Everything`.
    Union(Vec<Reach>),
    /// Kept by every part; at least two parts, none of them `Nothing` or `Everything`.
    Intersection(Vec<Reach>),
}

impl ConcreteMask {
    /// Which keys a decoder must keep for this mask (see the module docs).
    pub fn reach(&self) -> Reach {
        match self {
            MaskExpr::Full | MaskExpr::Causal => Reach::Everything,
            MaskExpr::Sink(s) => Reach::Prefix(*s),
            MaskExpr::Window(w) => Reach::Recent(*w),
            MaskExpr::Groups { size, offset } => Reach::Group { size: *size, offset: *offset },
            MaskExpr::LocalStride { block, local, stride, offset } => Reach::union(vec![
                Reach::RecentBlocks { block: *block, local: *local },
                Reach::Strided {
                    block: *block,
                    stride: *stride,
                    offsets: vec![floor_rem(*offset, *stride).unwrap_or(*offset)],
                },
            ]),
            // `k <= q` always holds for a cached key, so neither negation lets one through.
            MaskExpr::Not(inner) if matches!(**inner, MaskExpr::Causal | MaskExpr::Full) => Reach::Nothing,
            MaskExpr::Not(_) | MaskExpr::Roll { .. } => Reach::Everything,
            MaskExpr::And(a, b) => Reach::intersection(vec![a.reach(), b.reach()]),
            MaskExpr::Or(a, b) => Reach::union(vec![a.reach(), b.reach()]),
        }
    }

    /// Whether the mask reads the sequence length (a `roll`): then a key's
    /// hidden states change as the sequence grows, and a cache cannot reproduce
    /// a full recomputation.
    pub fn mentions_length(&self) -> bool {
        match self {
            MaskExpr::Roll { .. } => true,
            MaskExpr::Not(a) => a.mentions_length(),
            MaskExpr::And(a, b) | MaskExpr::Or(a, b) => a.mentions_length() || b.mentions_length(),
            _ => false,
        }
    }

    /// Whether the mask provably never allows a key after its query (`k > q`),
    /// which a decoder cannot see. Conservative: `false` means "not shown".
    pub fn implies_causal(&self) -> bool {
        match self {
            MaskExpr::Causal => true,
            MaskExpr::And(a, b) => a.implies_causal() || b.implies_causal(),
            MaskExpr::Or(a, b) => a.implies_causal() && b.implies_causal(),
            MaskExpr::Not(a) => matches!(**a, MaskExpr::Full),
            _ => false,
        }
    }
}

impl Reach {
    /// `parts` kept by any: flattened, deduplicated, `Everything` absorbing.
    pub fn union(parts: Vec<Reach>) -> Reach {
        Reach::combine(parts, true)
    }

    /// `parts` kept by all: flattened, deduplicated, `Nothing` absorbing.
    pub fn intersection(parts: Vec<Reach>) -> Reach {
        Reach::combine(parts, false)
    }

    fn combine(parts: Vec<Reach>, union: bool) -> Reach {
        let (absorbing, identity) =
            if union { (Reach::Everything, Reach::Nothing) } else { (Reach::Nothing, Reach::Everything) };
        let mut flat: Vec<Reach> = Vec::new();
        for part in parts {
            let nested = match part {
                Reach::Union(inner) if union => inner,
                Reach::Intersection(inner) if !union => inner,
                other => vec![other],
            };
            for p in nested {
                if p == absorbing {
                    return absorbing;
                }
                if p == identity || flat.contains(&p) {
                    continue;
                }
                // Strided blocks on one grid are one term: the union of their offsets.
                if let (true, Reach::Strided { block, stride, offsets }) = (union, &p) {
                    let same_grid = flat.iter_mut().find_map(|q| match q {
                        Reach::Strided { block: b, stride: s, offsets: o } if b == block && s == stride => {
                            Some(o)
                        }
                        _ => None,
                    });
                    if let Some(existing) = same_grid {
                        existing.extend(offsets);
                        existing.sort_unstable();
                        existing.dedup();
                        continue;
                    }
                }
                flat.push(p);
            }
        }
        match flat.len() {
            0 => identity,
            1 => flat.remove(0),
            _ if union => Reach::Union(flat),
            _ => Reach::Intersection(flat),
        }
    }

    /// Whether key `k` is kept while query `t` runs (`k <= t`).
    pub fn keeps(&self, t: i64, k: i64) -> bool {
        let block_of = |x: i64, b: i64| floor_div(x, b);
        match self {
            Reach::Nothing => false,
            Reach::Everything => true,
            Reach::Prefix(s) => k < *s,
            Reach::Recent(w) => t - k < *w,
            Reach::Group { size, offset } => {
                let (gk, gt) = (floor_div(k - offset, *size), floor_div(t - offset, *size));
                gk.is_some() && gk == gt
            }
            Reach::RecentBlocks { block, local } => match (block_of(k, *block), block_of(t, *block)) {
                (Some(kb), Some(tb)) => tb - kb < *local,
                _ => false,
            },
            Reach::Strided { block, stride, offsets } => offsets
                .iter()
                .any(|offset| block_of(k, *block).and_then(|kb| floor_rem(kb + offset, *stride)) == Some(0)),
            Reach::Union(parts) => parts.iter().any(|p| p.keeps(t, k)),
            Reach::Intersection(parts) => parts.iter().all(|p| p.keeps(t, k)),
        }
    }

    /// Whether the kept set grows with the sequence (so a cache of it does too).
    pub fn is_bounded(&self) -> bool {
        match self {
            Reach::Everything | Reach::Strided { .. } => false,
            Reach::Union(parts) => parts.iter().all(Reach::is_bounded),
            Reach::Intersection(parts) => parts.iter().any(Reach::is_bounded),
            _ => true,
        }
    }

    /// An upper bound on the keys kept at once by a decoder of `n` positions:
    /// `max` over `t < n` of `|{k <= t : keeps(t, k)}|`.
    pub fn capacity(&self, n: u64) -> u64 {
        let at_most = |x: i64| u64::try_from(x).unwrap_or(0).min(n);
        match self {
            Reach::Nothing => 0,
            Reach::Everything => n,
            Reach::Prefix(s) => at_most(*s),
            Reach::Recent(w) => at_most(*w),
            Reach::Group { size, .. } => at_most(*size),
            Reach::RecentBlocks { block, local } => at_most(block.saturating_mul(*local)),
            Reach::Strided { block, stride, offsets } => {
                let (block, stride) = (u64::try_from(*block).unwrap_or(1).max(1), (*stride).max(1));
                if n == 0 {
                    return 0;
                }
                // Per offset, the blocks 0..=last whose index is -offset mod stride.
                let last = (n - 1) / block;
                let blocks: u64 = offsets
                    .iter()
                    .map(|offset| {
                        let first = floor_rem(-*offset, stride).unwrap_or(0) as u64;
                        if first > last { 0 } else { (last - first) / stride as u64 + 1 }
                    })
                    .sum();
                blocks.saturating_mul(block).min(n)
            }
            Reach::Union(parts) => parts.iter().map(|p| p.capacity(n)).fold(0u64, u64::saturating_add).min(n),
            Reach::Intersection(parts) => parts.iter().map(|p| p.capacity(n)).min().unwrap_or(n),
        }
    }
}

/// The capacity as a formula in `N`, the sequence length (`N` alone: no finite reach).
impl fmt::Display for Reach {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let join = |f: &mut fmt::Formatter<'_>, parts: &[Reach], sep: &str| -> fmt::Result {
            for (i, part) in parts.iter().enumerate() {
                if i > 0 {
                    f.write_str(sep)?;
                }
                write!(f, "{part}")?;
            }
            Ok(())
        };
        match self {
            Reach::Nothing => f.write_str("0"),
            Reach::Everything => f.write_str("N"),
            Reach::Prefix(s) => write!(f, "{s}"),
            Reach::Recent(w) => write!(f, "{w}"),
            Reach::Group { size, .. } => write!(f, "{size}"),
            Reach::RecentBlocks { block, local } => write!(f, "{local}*{block}"),
            Reach::Strided { block, stride, offsets } => {
                let per = if offsets.len() == 1 { String::new() } else { format!("{}*", offsets.len()) };
                write!(f, "{per}{block}*ceil(N/{})", block.saturating_mul(*stride))
            }
            Reach::Union(parts) => join(f, parts, " + "),
            Reach::Intersection(parts) => {
                f.write_str("min(")?;
                join(f, parts, ", ")?;
                f.write_str(")")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(src: &str) -> ConcreteMask {
        crate::expr::parse_mask(src).unwrap().try_map_sizes(&mut |s, _| s.eval(&|_| None)).unwrap()
    }

    /// The keys `k <= t` some query `q` in `t..n` may see: what must be kept.
    fn needed(mask: &ConcreteMask, n: i64, t: i64) -> Vec<i64> {
        (0..=t).filter(|&k| (t..n).any(|q| mask.allows(n, q, k))).collect()
    }

    /// `mask`'s reach prints as `formula`, keeps every needed key of every
    /// step of a length-`n` decode, and never more than its capacity.
    fn check(mask: &str, formula: &str, n: i64, capacity: u64) {
        let mask = m(mask);
        let reach = mask.reach();
        assert_eq!(reach.to_string(), formula, "{mask}");
        assert_eq!(reach.capacity(n as u64), capacity, "{mask}");
        for t in 0..n {
            for k in needed(&mask, n, t) {
                assert!(reach.keeps(t, k), "{mask}: key {k} is needed at {t} but dropped");
            }
            let kept = (0..=t).filter(|&k| reach.keeps(t, k)).count() as u64;
            assert!(kept <= capacity, "{mask}: {kept} keys kept at {t}, capacity {capacity}");
        }
    }

    #[test]
    fn primitives() {
        check("causal", "N", 40, 40);
        check("full", "N", 40, 40);
        check("causal & sink(3)", "3", 40, 3);
        check("causal & window(5)", "5", 40, 5);
        check("causal & groups(8)", "8", 40, 8);
        check("causal & groups(8, 3)", "8", 40, 8);
        // Blocks of 4: the 2 newest, and every 3rd block from block 1 (1, 4, 7): 3 blocks of 4 by N = 40.
        check("causal & local_stride(4, 2, 3, 2)", "2*4 + 4*ceil(N/12)", 40, 20);
        check("causal & local_stride(4, 2, 3)", "2*4 + 4*ceil(N/12)", 40, 24);
    }

    #[test]
    fn combinators() {
        // LongGen's sparse layers: sinks plus a ring buffer of the window.
        check("causal & (sink(4) | window(8))", "4 + 8", 40, 12);
        check("window(8) & sink(4)", "min(8, 4)", 40, 4);
        // The S2 roll form reads the length: no finite reach.
        check("roll(4, causal & groups(8))", "N", 16, 16);
        check("causal & !window(3)", "N", 20, 20);
        check("!causal", "0", 20, 0);
        check("causal & (window(6) | window(6))", "6", 30, 6);
    }

    #[test]
    fn bounded_reaches_do_not_grow() {
        assert!(m("causal & (sink(4) | window(8))").reach().is_bounded());
        assert!(m("window(8) & causal").reach().is_bounded());
        assert!(!m("causal").reach().is_bounded());
        assert!(!m("causal & local_stride(4, 2, 3)").reach().is_bounded());
    }

    #[test]
    fn length_and_causality() {
        assert!(m("roll(4, causal & groups(8))").mentions_length());
        assert!(!m("causal & groups(8)").mentions_length());
        assert!(m("causal & (sink(4) | window(8))").implies_causal());
        assert!(m("(causal & sink(2)) | (causal & window(3))").implies_causal());
        assert!(!m("sink(4) | causal").implies_causal());
        assert!(!m("local_stride(4, 2, 3)").implies_causal());
        // The roll form lets token 0 see the end of the sequence.
        assert!(!m("roll(4, causal & groups(8))").implies_causal());
    }
}
