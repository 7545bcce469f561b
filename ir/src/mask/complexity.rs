//! How big a mask may be: its depth and its number of terms, measured without
//! recursion so that a tree of any shape can be measured and refused.
//!
//! The parser refuses deeper or bigger masks with a position; [`check_complexity`]
//! is the same rule for masks built through the API ([`super::Mask::new`] and
//! the compiler's WGSL emission call it).

use super::MaskExpr;
use crate::expr::{ExprErrorKind, MAX_MASK_DEPTH, MAX_SIZE_DEPTH, Nested, SizeExpr};

/// The most primitives (`causal`, `window(w)`, …) one mask may combine. Each
/// is evaluated for every partial tile's every element in the fused kernel,
/// and for every tile when classifying tiles, so the cost grows with it; real
/// patterns combine at most a handful. A mask of 128 terms nested to the depth
/// limit compiles and passes naga's validation (tested in `compiler/src/mask.rs`).
pub const MAX_MASK_TERMS: usize = 128;

impl<S> MaskExpr<S> {
    /// Combinators (`!`, `&`, `|`, `roll`) on the longest path from the root to
    /// a primitive (a primitive alone is 0).
    pub fn height(&self) -> usize {
        let mut deepest = 0;
        let mut stack = vec![(self, 0)];
        while let Some((m, depth)) = stack.pop() {
            deepest = deepest.max(depth);
            match m {
                MaskExpr::Roll { inner, .. } | MaskExpr::Not(inner) => stack.push((inner, depth + 1)),
                MaskExpr::And(a, b) | MaskExpr::Or(a, b) => {
                    stack.extend([(&**a, depth + 1), (&**b, depth + 1)])
                }
                _ => {}
            }
        }
        deepest
    }

    /// The number of primitives, counting repeats.
    pub fn terms(&self) -> usize {
        let mut count = 0;
        let mut stack = vec![self];
        while let Some(m) = stack.pop() {
            match m {
                MaskExpr::Roll { inner, .. } | MaskExpr::Not(inner) => stack.push(inner),
                MaskExpr::And(a, b) | MaskExpr::Or(a, b) => stack.extend([&**a, &**b]),
                _ => count += 1,
            }
        }
        count
    }

    /// Refuses a mask deeper than [`MAX_MASK_DEPTH`] or with more than [`MAX_MASK_TERMS`] terms.
    pub fn check_shape(&self) -> Result<(), ExprErrorKind> {
        if self.height() > MAX_MASK_DEPTH {
            return Err(ExprErrorKind::TooDeep(Nested::Mask));
        }
        let terms = self.terms();
        if terms > MAX_MASK_TERMS {
            return Err(ExprErrorKind::TooManyTerms { terms, limit: MAX_MASK_TERMS });
        }
        Ok(())
    }
}

/// [`MaskExpr::check_shape`], and every size no deeper than [`MAX_SIZE_DEPTH`]:
/// what the parser guarantees, for a mask from anywhere.
pub fn check_complexity(mask: &MaskExpr<SizeExpr>) -> Result<(), ExprErrorKind> {
    // The shape check comes first: it bounds the recursion of the size walk.
    mask.check_shape()?;
    let mut too_deep = false;
    mask.for_each_size(&mut |s, _| too_deep |= s.height() > MAX_SIZE_DEPTH);
    if too_deep { Err(ExprErrorKind::TooDeep(Nested::Size)) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mask::{Mask, NewMaskError};
    use crate::pattern::Pattern;

    fn not_chain(depth: usize) -> MaskExpr<SizeExpr> {
        (0..depth).fold(MaskExpr::Causal, |m, _| m.not())
    }

    #[test]
    fn measuring_does_not_recurse() {
        // Deeper than any parse gives, measured without growing the stack.
        let deep = (0..5_000).fold(MaskExpr::<i64>::Full, |m, _| m.and(MaskExpr::Causal));
        assert_eq!((deep.height(), deep.terms()), (5_000, 5_001));
        let size = (0..5_000).fold(SizeExpr::lit(1), |s, _| SizeExpr {
            kind: crate::expr::SizeKind::Neg(Box::new(s)),
            span: Default::default(),
        });
        assert_eq!(size.height(), 5_000);
    }

    #[test]
    fn a_mask_too_deep_to_use_is_refused_and_dropped_without_recursion() {
        // A million levels: a recursive drop would need far more than a test thread's stack.
        let error = Mask::new(not_chain(1_000_000)).unwrap_err();
        assert_eq!(error.to_string(), "mask nested deeper than 64 levels");
        let wide =
            (0..1_000_000).fold(MaskExpr::<i64>::Full, |m, _| m.and(MaskExpr::Causal).or(MaskExpr::Full));
        assert_eq!(wide.check_shape(), Err(ExprErrorKind::TooDeep(Nested::Mask)));
    }

    #[test]
    fn masks_built_through_the_api_are_held_to_the_parser_limits() {
        assert!(Mask::new(not_chain(MAX_MASK_DEPTH)).is_ok());
        let deep = Mask::new(not_chain(MAX_MASK_DEPTH + 1)).unwrap_err();
        assert_eq!(deep.to_string(), "mask nested deeper than 64 levels");

        // Groups of 8 keep the depth low: only the term count is over.
        let group = || (1..8).fold(MaskExpr::Causal, |m, _| m.and(MaskExpr::Causal));
        let wide = (0..MAX_MASK_TERMS / 8).fold(MaskExpr::Sink(SizeExpr::lit(1)), |m, _| m.or(group()));
        assert_eq!(wide.terms(), MAX_MASK_TERMS + 1);
        let error = Mask::new(wide).unwrap_err();
        assert_eq!(error.to_string(), "mask has 129 terms; the kernels take at most 128");

        let deep_size = (0..=MAX_SIZE_DEPTH).fold(SizeExpr::var("h"), |s, _| SizeExpr {
            kind: crate::expr::SizeKind::Bin(
                crate::expr::SizeOp::Add,
                Box::new(s),
                Box::new(SizeExpr::lit(1)),
            ),
            span: Default::default(),
        });
        let error = Mask::new(MaskExpr::Window(deep_size)).unwrap_err();
        assert_eq!(error, NewMaskError::TooComplex(ExprErrorKind::TooDeep(Nested::Size)));

        let concrete = (0..=MAX_MASK_DEPTH).fold(MaskExpr::<i64>::Causal, |m, _| m.not());
        let error = Pattern::uniform("deep", 2, &concrete).unwrap_err();
        assert_eq!(error.to_string(), "mask nested deeper than 64 levels");
    }
}
