//! Building e-graph terms for masks and sizes, and the size algebra that keeps
//! equal sizes equal terms: `h + 2 - 2` and `h` must land in one e-class, or
//! head ranges with equal masks would never merge.

use egg::Id;
use weft_ir::MaskExpr;
use weft_ir::expr::{SizeExpr, SizeKind, SizeOp};

use super::lang::Weft;

/// The head index variable of resolved masks.
pub const HEAD_VAR: &str = "h";

/// `e` in a normal form: constants folded, and an expression linear in `h`
/// written `a * h + b` (`h`, `h + 2`, `2 * h - 1`). Other expressions keep their
/// shape with normalized operands.
pub fn normalize_size(e: &SizeExpr) -> SizeExpr {
    if let Some((a, b)) = linear(e) {
        return emit_linear(a, b);
    }
    match &e.kind {
        SizeKind::Lit(_) | SizeKind::Var(_) => e.clone(),
        SizeKind::Neg(x) => {
            let x = normalize_size(x);
            match x.as_lit().and_then(i64::checked_neg) {
                Some(v) => SizeExpr::lit(v),
                None => SizeExpr { kind: SizeKind::Neg(Box::new(x)), span: e.span },
            }
        }
        SizeKind::Bin(op, a, b) => {
            let (a, b) = (normalize_size(a), normalize_size(b));
            if let (Some(x), Some(y)) = (a.as_lit(), b.as_lit())
                && let Some(v) = op.apply(x, y)
            {
                return SizeExpr::lit(v);
            }
            SizeExpr { kind: SizeKind::Bin(*op, Box::new(a), Box::new(b)), span: e.span }
        }
    }
}

/// `(a, b)` when `e == a * h + b` for every `h`, without overflow.
fn linear(e: &SizeExpr) -> Option<(i64, i64)> {
    match &e.kind {
        SizeKind::Lit(v) => Some((0, *v)),
        SizeKind::Var(name) if name == HEAD_VAR => Some((1, 0)),
        SizeKind::Var(_) => None,
        SizeKind::Neg(x) => {
            let (a, b) = linear(x)?;
            Some((a.checked_neg()?, b.checked_neg()?))
        }
        SizeKind::Bin(op, x, y) => {
            let ((a1, b1), (a2, b2)) = (linear(x)?, linear(y)?);
            match op {
                SizeOp::Add => Some((a1.checked_add(a2)?, b1.checked_add(b2)?)),
                SizeOp::Sub => Some((a1.checked_sub(a2)?, b1.checked_sub(b2)?)),
                SizeOp::Mul if a1 == 0 => Some((b1.checked_mul(a2)?, b1.checked_mul(b2)?)),
                SizeOp::Mul if a2 == 0 => Some((a1.checked_mul(b2)?, b1.checked_mul(b2)?)),
                // Floor division and remainder are linear only between constants.
                SizeOp::Div | SizeOp::Rem if a1 == 0 && a2 == 0 => Some((0, op.apply(b1, b2)?)),
                _ => None,
            }
        }
    }
}

fn emit_linear(a: i64, b: i64) -> SizeExpr {
    let bin = |op, x: SizeExpr, y: SizeExpr| SizeExpr {
        kind: SizeKind::Bin(op, Box::new(x), Box::new(y)),
        span: Default::default(),
    };
    if a == 0 {
        return SizeExpr::lit(b);
    }
    let h = SizeExpr::var(HEAD_VAR);
    let term = if a == 1 { h } else { bin(SizeOp::Mul, SizeExpr::lit(a), h) };
    match b {
        0 => term,
        b if b > 0 => bin(SizeOp::Add, term, SizeExpr::lit(b)),
        b => match b.checked_neg() {
            Some(nb) => bin(SizeOp::Sub, term, SizeExpr::lit(nb)),
            None => bin(SizeOp::Add, term, SizeExpr::lit(b)),
        },
    }
}

/// `mask` with every size normalized.
pub fn normalize_mask(mask: &MaskExpr<SizeExpr>) -> MaskExpr<SizeExpr> {
    mask.try_map_sizes(&mut |s, _| Ok::<_, std::convert::Infallible>(normalize_size(s)))
        .unwrap_or_else(|never| match never {})
}

/// `mask` with the head index moved by `delta` (`h` becomes `h + delta`), normalized.
///
/// A mask read at head `i` of a node whose heads start at global head `delta`
/// is the global mask read at `i + delta`.
pub fn shift_heads(mask: &MaskExpr<SizeExpr>, delta: i64) -> MaskExpr<SizeExpr> {
    mask.try_map_sizes(&mut |s, _| Ok::<_, std::convert::Infallible>(normalize_size(&substitute_h(s, delta))))
        .unwrap_or_else(|never| match never {})
}

fn substitute_h(e: &SizeExpr, delta: i64) -> SizeExpr {
    let kind = match &e.kind {
        SizeKind::Lit(v) => SizeKind::Lit(*v),
        SizeKind::Var(name) if name == HEAD_VAR => {
            SizeKind::Bin(SizeOp::Add, Box::new(SizeExpr::var(HEAD_VAR)), Box::new(SizeExpr::lit(delta)))
        }
        SizeKind::Var(name) => SizeKind::Var(name.clone()),
        SizeKind::Neg(x) => SizeKind::Neg(Box::new(substitute_h(x, delta))),
        SizeKind::Bin(op, x, y) => {
            SizeKind::Bin(*op, Box::new(substitute_h(x, delta)), Box::new(substitute_h(y, delta)))
        }
    };
    SizeExpr { kind, span: e.span }
}

/// Adds a size as a term; variables other than `h` cannot occur in a resolved mask
/// and are rejected.
pub fn add_size(add: &mut impl FnMut(Weft) -> Id, e: &SizeExpr) -> Result<Id, String> {
    Ok(match &e.kind {
        SizeKind::Lit(v) => add(Weft::Num(*v)),
        SizeKind::Var(name) if name == HEAD_VAR => add(Weft::HeadIndex),
        SizeKind::Var(name) => return Err(format!("size `{e}` mentions `{name}`; only `h` may appear")),
        SizeKind::Neg(x) => {
            let x = add_size(add, x)?;
            add(Weft::SNeg(x))
        }
        SizeKind::Bin(op, x, y) => {
            let ids = [add_size(add, x)?, add_size(add, y)?];
            add(match op {
                SizeOp::Add => Weft::SAdd(ids),
                SizeOp::Sub => Weft::SSub(ids),
                SizeOp::Mul => Weft::SMul(ids),
                SizeOp::Div => Weft::SDiv(ids),
                SizeOp::Rem => Weft::SRem(ids),
            })
        }
    })
}

/// Adds a mask read at sequence length `n` as a term (`n` goes into `m-roll`).
pub fn add_mask(add: &mut impl FnMut(Weft) -> Id, mask: &MaskExpr<SizeExpr>, n: i64) -> Result<Id, String> {
    Ok(match mask {
        MaskExpr::Full => add(Weft::MFull),
        MaskExpr::Causal => add(Weft::MCausal),
        MaskExpr::Window(w) => {
            let w = add_size(add, w)?;
            add(Weft::MWindow(w))
        }
        MaskExpr::Sink(s) => {
            let s = add_size(add, s)?;
            add(Weft::MSink(s))
        }
        MaskExpr::Groups { size, offset } => {
            let ids = [add_size(add, size)?, add_size(add, offset)?];
            add(Weft::MGroups(ids))
        }
        MaskExpr::LocalStride { block, local, stride, offset } => {
            let ids = [
                add_size(add, block)?,
                add_size(add, local)?,
                add_size(add, stride)?,
                add_size(add, offset)?,
            ];
            add(Weft::MLocalStride(ids))
        }
        MaskExpr::Roll { offset, inner } => {
            let ids = [add(Weft::Num(n)), add_size(add, offset)?, add_mask(add, inner, n)?];
            add(Weft::MRoll(ids))
        }
        MaskExpr::Not(a) => {
            let a = add_mask(add, a, n)?;
            add(Weft::MNot(a))
        }
        MaskExpr::And(a, b) => {
            let ids = [add_mask(add, a, n)?, add_mask(add, b, n)?];
            add(Weft::MAnd(ids))
        }
        MaskExpr::Or(a, b) => {
            let ids = [add_mask(add, a, n)?, add_mask(add, b, n)?];
            add(Weft::MOr(ids))
        }
    })
}

#[cfg(test)]
mod tests {
    use weft_ir::expr::{parse_mask, parse_size};

    use super::*;

    fn norm(src: &str) -> String {
        normalize_size(&parse_size(src).unwrap()).to_string()
    }

    #[test]
    fn linear_sizes_have_one_form() {
        assert_eq!(norm("h + 2 - 2"), "h");
        assert_eq!(norm("(h + 3) - 1"), "h + 2");
        assert_eq!(norm("2 * (h - 1) + 1"), "2 * h - 1");
        assert_eq!(norm("16 / 4 + 1"), "5");
        assert_eq!(norm("-h + h"), "0");
        // Floor division by a size in h is not linear: only its operands are normalized.
        assert_eq!(norm("64 / (h + 1 - 1)"), "64 / h");
    }

    #[test]
    fn shifting_heads_composes() {
        let mask = parse_mask("causal & local_stride(64, 4, 8, h)").unwrap();
        let there = shift_heads(&mask, 3);
        assert_eq!(there.to_string(), "causal & local_stride(64, 4, 8, h + 3)");
        assert_eq!(shift_heads(&there, -3), normalize_mask(&mask));
    }
}
