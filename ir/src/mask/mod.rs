//! The mask algebra of DESIGN.md: primitives, boolean combinators, evaluation,
//! printing and tile classification.
//!
//! A mask is generic over its size type:
//! - [`MaskAst`] (`MaskExpr<SizeExpr>`) as parsed, sizes may mention any variable;
//! - [`Mask`], resolved for a pattern: sizes mention at most `h`, the head index;
//! - [`ConcreteMask`] (`MaskExpr<i64>`), one head's mask, ready to evaluate.

mod complexity;
mod dense;
mod display;
mod eval;
mod reach;
mod stats;
mod tiles;

use crate::expr::{ExprError, ExprErrorKind, SizeExpr};

pub use complexity::{MAX_MASK_TERMS, check_complexity};
pub use reach::Reach;
pub use stats::{HeadStats, TileCounts, causal_stats, head_stats};
pub use tiles::{TileClass, Verdict, classify_interval, classify_tile, tile_table};

/// A mask expression over sizes of type `S`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum MaskExpr<S> {
    /// Always true.
    Full,
    /// `k <= q`.
    Causal,
    /// `|q - k| < w`.
    Window(S),
    /// `k < s`.
    Sink(S),
    /// `floor((q - o) / g) == floor((k - o) / g)`.
    Groups {
        size: S,
        offset: S,
    },
    /// With `qb = q / b`, `kb = k / b`: `qb - kb < l` or `(kb + o) mod s == 0`.
    LocalStride {
        block: S,
        local: S,
        stride: S,
        offset: S,
    },
    /// `inner((q - o) mod N, (k - o) mod N)`.
    Roll {
        offset: S,
        inner: Box<MaskExpr<S>>,
    },
    Not(Box<MaskExpr<S>>),
    And(Box<MaskExpr<S>>, Box<MaskExpr<S>>),
    Or(Box<MaskExpr<S>>, Box<MaskExpr<S>>),
}

/// Dropped without recursion, like [`MaskExpr::height`] measures: a mask
/// built through the API may be nested far deeper than the parser allows
/// (it is then refused by [`check_complexity`]), and dropping it must not
/// overflow the stack. Each child is moved out of its box before the box is
/// dropped, so every drop is shallow.
impl<S> Drop for MaskExpr<S> {
    fn drop(&mut self) {
        fn take_children<S>(m: &mut MaskExpr<S>, pending: &mut Vec<MaskExpr<S>>) {
            match m {
                MaskExpr::Roll { inner, .. } | MaskExpr::Not(inner) => {
                    pending.push(std::mem::replace(&mut **inner, MaskExpr::Full))
                }
                MaskExpr::And(a, b) | MaskExpr::Or(a, b) => {
                    pending.push(std::mem::replace(&mut **a, MaskExpr::Full));
                    pending.push(std::mem::replace(&mut **b, MaskExpr::Full));
                }
                _ => {}
            }
        }
        let mut pending = Vec::new();
        take_children(self, &mut pending);
        while let Some(mut m) = pending.pop() {
            take_children(&mut m, &mut pending);
        }
    }
}

/// A mask as parsed from a spec, before variables are resolved.
pub type MaskAst = MaskExpr<SizeExpr>;

/// One head's mask with every size a number.
pub type ConcreteMask = MaskExpr<i64>;

/// Which parameter of which primitive a size fills, and what it must satisfy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SizeRole {
    pub primitive: &'static str,
    pub param: &'static str,
    /// Widths, block sizes and group sizes must be >= 1; offsets may be any integer.
    pub positive: bool,
}

impl SizeRole {
    const fn size(primitive: &'static str, param: &'static str) -> Self {
        SizeRole { primitive, param, positive: true }
    }
    const fn offset(primitive: &'static str, param: &'static str) -> Self {
        SizeRole { primitive, param, positive: false }
    }
}

impl<S> MaskExpr<S> {
    /// Rebuilds the mask with every size mapped through `f`, stopping at the first error.
    pub fn try_map_sizes<T, E>(
        &self,
        f: &mut impl FnMut(&S, SizeRole) -> Result<T, E>,
    ) -> Result<MaskExpr<T>, E> {
        use MaskExpr::*;
        Ok(match self {
            Full => Full,
            Causal => Causal,
            Window(w) => Window(f(w, SizeRole::size("window", "w"))?),
            Sink(s) => Sink(f(s, SizeRole::size("sink", "s"))?),
            Groups { size, offset } => Groups {
                size: f(size, SizeRole::size("groups", "g"))?,
                offset: f(offset, SizeRole::offset("groups", "o"))?,
            },
            LocalStride { block, local, stride, offset } => LocalStride {
                block: f(block, SizeRole::size("local_stride", "b"))?,
                local: f(local, SizeRole::size("local_stride", "l"))?,
                stride: f(stride, SizeRole::size("local_stride", "s"))?,
                offset: f(offset, SizeRole::offset("local_stride", "o"))?,
            },
            Roll { offset, inner } => Roll {
                offset: f(offset, SizeRole::offset("roll", "o"))?,
                inner: Box::new(inner.try_map_sizes(f)?),
            },
            Not(a) => Not(Box::new(a.try_map_sizes(f)?)),
            And(a, b) => And(Box::new(a.try_map_sizes(f)?), Box::new(b.try_map_sizes(f)?)),
            Or(a, b) => Or(Box::new(a.try_map_sizes(f)?), Box::new(b.try_map_sizes(f)?)),
        })
    }

    /// Visits every size with its role.
    pub fn for_each_size(&self, f: &mut impl FnMut(&S, SizeRole)) {
        let _ = self.try_map_sizes(&mut |s, role| {
            f(s, role);
            Ok::<(), std::convert::Infallible>(())
        });
    }

    pub fn and(self, other: Self) -> Self {
        MaskExpr::And(Box::new(self), Box::new(other))
    }

    pub fn or(self, other: Self) -> Self {
        MaskExpr::Or(Box::new(self), Box::new(other))
    }

    #[allow(clippy::should_implement_trait)]
    pub fn not(self) -> Self {
        MaskExpr::Not(Box::new(self))
    }

    pub fn roll(offset: S, inner: Self) -> Self {
        MaskExpr::Roll { offset, inner: Box::new(inner) }
    }

    /// `g` when the mask is `causal & groups(g)` (either order, offset 0): the
    /// mask LongLoRA computes by reshaping the sequence into groups.
    pub fn causal_groups_size(&self) -> Option<&S>
    where
        S: std::fmt::Display,
    {
        let MaskExpr::And(a, b) = self else { return None };
        let groups = match (&**a, &**b) {
            (MaskExpr::Causal, g) | (g, MaskExpr::Causal) => g,
            _ => return None,
        };
        match groups {
            MaskExpr::Groups { size, offset } if offset.to_string() == "0" => Some(size),
            _ => None,
        }
    }
}

/// Why [`Mask::new`] refuses an expression.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NewMaskError {
    #[error("mask mentions `{0}`; only `h`, the head index, may appear")]
    Unresolved(String),
    #[error("{0}")]
    TooComplex(ExprErrorKind),
}

/// A pattern's mask for a range of heads: sizes are numbers or expressions in `h`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Mask {
    expr: MaskExpr<SizeExpr>,
}

impl Mask {
    /// Wraps a mask whose sizes mention no variable but `h`, and that is no
    /// deeper or bigger than a parsed mask may be ([`check_complexity`]).
    pub fn new(expr: MaskExpr<SizeExpr>) -> Result<Self, NewMaskError> {
        check_complexity(&expr).map_err(NewMaskError::TooComplex)?;
        let mut bad = None;
        expr.for_each_size(&mut |s, _| {
            for (name, _) in s.variables() {
                if name != "h" && bad.is_none() {
                    bad = Some(name.to_string());
                }
            }
        });
        match bad {
            Some(name) => Err(NewMaskError::Unresolved(name)),
            None => Ok(Mask { expr }),
        }
    }

    /// A mask with constant sizes, no deeper or bigger than a parsed mask may be.
    pub fn constant(expr: &ConcreteMask) -> Result<Self, NewMaskError> {
        expr.check_shape().map_err(NewMaskError::TooComplex)?;
        let expr = expr
            .try_map_sizes(&mut |v, _| Ok::<_, std::convert::Infallible>(SizeExpr::lit(*v)))
            .unwrap_or_else(|never| match never {});
        Ok(Mask { expr })
    }

    /// `causal` on every head.
    pub fn causal() -> Self {
        Mask { expr: MaskExpr::Causal }
    }

    pub fn expr(&self) -> &MaskExpr<SizeExpr> {
        &self.expr
    }

    /// Whether sizes differ from head to head.
    pub fn depends_on_head(&self) -> bool {
        let mut yes = false;
        self.expr.for_each_size(&mut |s, _| yes |= s.mentions("h"));
        yes
    }

    /// The mask of head `head_idx`.
    pub fn for_head(&self, head_idx: usize) -> Result<ConcreteMask, ExprError> {
        let h = head_idx as i64;
        self.expr.try_map_sizes(&mut |s, _| s.eval(&|name| (name == "h").then_some(h)))
    }
}

impl std::fmt::Display for Mask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.expr.fmt(f)
    }
}
