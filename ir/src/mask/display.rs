//! Printing masks in the spec's syntax, with the fewest parentheses that parse back.

use std::fmt::{self, Display, Formatter};

use super::MaskExpr;

// Binding strength: `|` < `&` < `!` < primitives.
const OR: u8 = 1;
const AND: u8 = 2;
const NOT: u8 = 3;

impl<S: Display> MaskExpr<S> {
    fn fmt_prec(&self, f: &mut Formatter<'_>, parent: u8) -> fmt::Result {
        // An offset of zero is the default and is left out.
        let is_zero = |s: &S| s.to_string() == "0";
        match self {
            MaskExpr::Full => f.write_str("full"),
            MaskExpr::Causal => f.write_str("causal"),
            MaskExpr::Window(w) => write!(f, "window({w})"),
            MaskExpr::Sink(s) => write!(f, "sink({s})"),
            MaskExpr::Groups { size, offset } if is_zero(offset) => write!(f, "groups({size})"),
            MaskExpr::Groups { size, offset } => write!(f, "groups({size}, {offset})"),
            MaskExpr::LocalStride { block, local, stride, offset } if is_zero(offset) => {
                write!(f, "local_stride({block}, {local}, {stride})")
            }
            MaskExpr::LocalStride { block, local, stride, offset } => {
                write!(f, "local_stride({block}, {local}, {stride}, {offset})")
            }
            MaskExpr::Roll { offset, inner } => {
                write!(f, "roll({offset}, ")?;
                inner.fmt_prec(f, 0)?;
                f.write_str(")")
            }
            MaskExpr::Not(a) => {
                f.write_str("!")?;
                a.fmt_prec(f, NOT)
            }
            MaskExpr::And(a, b) => binary(f, parent, AND, " & ", a, b),
            MaskExpr::Or(a, b) => binary(f, parent, OR, " | ", a, b),
        }
    }
}

fn binary<S: Display>(
    f: &mut Formatter<'_>,
    parent: u8,
    prec: u8,
    op: &str,
    a: &MaskExpr<S>,
    b: &MaskExpr<S>,
) -> fmt::Result {
    let paren = parent > prec;
    if paren {
        f.write_str("(")?;
    }
    a.fmt_prec(f, prec)?;
    f.write_str(op)?;
    // `&` and `|` parse left-associatively, so a right operand of equal strength keeps its parentheses.
    b.fmt_prec(f, prec + 1)?;
    if paren {
        f.write_str(")")?;
    }
    Ok(())
}

impl<S: Display> Display for MaskExpr<S> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        self.fmt_prec(f, 0)
    }
}
