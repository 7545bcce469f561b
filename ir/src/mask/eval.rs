//! Point evaluation: does query `q` attend to key `k`?

use super::{ConcreteMask, MaskExpr};
use crate::expr::SizeOp;

impl ConcreteMask {
    /// Evaluates the mask at query `q` and key `k` of a sequence of length `n`.
    ///
    /// Sizes are assumed validated (positive where a primitive needs it); a zero
    /// divisor is treated as "never" rather than a panic.
    pub fn allows(&self, n: i64, q: i64, k: i64) -> bool {
        match self {
            MaskExpr::Full => true,
            MaskExpr::Causal => k <= q,
            MaskExpr::Window(w) => (q - k).abs() < *w,
            MaskExpr::Sink(s) => k < *s,
            MaskExpr::Groups { size, offset } => match (div(q - offset, *size), div(k - offset, *size)) {
                (Some(a), Some(b)) => a == b,
                _ => false,
            },
            MaskExpr::LocalStride { block, local, stride, offset } => {
                let (Some(qb), Some(kb)) = (div(q, *block), div(k, *block)) else {
                    return false;
                };
                qb - kb < *local || rem(kb + offset, *stride) == Some(0)
            }
            MaskExpr::Roll { offset, inner } => match (rem(q - offset, n), rem(k - offset, n)) {
                (Some(rq), Some(rk)) => inner.allows(n, rq, rk),
                _ => false,
            },
            MaskExpr::Not(a) => !a.allows(n, q, k),
            MaskExpr::And(a, b) => a.allows(n, q, k) && b.allows(n, q, k),
            MaskExpr::Or(a, b) => a.allows(n, q, k) || b.allows(n, q, k),
        }
    }
}

fn div(a: i64, b: i64) -> Option<i64> {
    SizeOp::Div.apply(a, b)
}

fn rem(a: i64, b: i64) -> Option<i64> {
    SizeOp::Rem.apply(a, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(src: &str) -> ConcreteMask {
        crate::expr::parse_mask(src).unwrap().try_map_sizes(&mut |s, _| s.eval(&|_| None)).unwrap()
    }

    #[test]
    fn primitives_follow_the_design_table() {
        assert!(m("causal").allows(8, 3, 3) && !m("causal").allows(8, 3, 4));
        assert!(m("window(2)").allows(8, 3, 2) && !m("window(2)").allows(8, 3, 1));
        assert!(m("sink(2)").allows(8, 7, 1) && !m("sink(2)").allows(8, 7, 2));
        assert!(m("groups(4)").allows(8, 3, 0) && !m("groups(4)").allows(8, 4, 3));
        // [0, o) is a group of its own.
        assert!(m("groups(4, 2)").allows(8, 1, 0) && !m("groups(4, 2)").allows(8, 2, 1));
        assert!(m("groups(4, 2)").allows(8, 5, 2) && !m("groups(4, 2)").allows(8, 6, 5));
        // Two local blocks (the current one and the previous), block 0 is vertical.
        let ls = m("local_stride(2, 2, 3)");
        assert!(ls.allows(16, 7, 4) && !ls.allows(16, 7, 3) && ls.allows(16, 7, 0) && ls.allows(16, 15, 7));
        assert!(!ls.allows(16, 15, 9));
    }

    #[test]
    fn roll_shifts_both_positions() {
        // Shifted S2 head, N = 16, G = 8: token 0 sees itself and [12, 16).
        let mask = m("roll(4, causal & groups(8))");
        let row0: Vec<i64> = (0..16).filter(|&k| mask.allows(16, 0, k)).collect();
        assert_eq!(row0, vec![0, 12, 13, 14, 15]);
    }
}
