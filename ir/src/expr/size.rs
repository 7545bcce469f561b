use std::fmt;
use std::hash::{Hash, Hasher};

use super::error::{ExprError, ExprErrorKind};
use crate::source::Span;

/// An integer size expression such as `N / 4` or `G/2 + h`.
///
/// Division is floor division and `%` takes the sign of the divisor (Python's
/// `//` and `%`), so `(x - o) % N` is always in `[0, N)`. Equality and hashing
/// ignore spans.
#[derive(Clone, Debug)]
pub struct SizeExpr {
    pub kind: SizeKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SizeKind {
    Lit(i64),
    /// `N`, `H`, `L`, `h` or a `[vars]` name.
    Var(String),
    Neg(Box<SizeExpr>),
    Bin(SizeOp, Box<SizeExpr>, Box<SizeExpr>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SizeOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

impl SizeOp {
    fn symbol(self) -> &'static str {
        match self {
            SizeOp::Add => "+",
            SizeOp::Sub => "-",
            SizeOp::Mul => "*",
            SizeOp::Div => "/",
            SizeOp::Rem => "%",
        }
    }

    fn precedence(self) -> u8 {
        match self {
            SizeOp::Add | SizeOp::Sub => 1,
            SizeOp::Mul | SizeOp::Div | SizeOp::Rem => 2,
        }
    }

    /// Applies the operator; `None` on division by zero or overflow.
    pub fn apply(self, a: i64, b: i64) -> Option<i64> {
        match self {
            SizeOp::Add => a.checked_add(b),
            SizeOp::Sub => a.checked_sub(b),
            SizeOp::Mul => a.checked_mul(b),
            SizeOp::Div => floor_div(a, b),
            SizeOp::Rem => floor_rem(a, b),
        }
    }
}

/// Floor division (rounds towards negative infinity); `None` when `b == 0`.
pub fn floor_div(a: i64, b: i64) -> Option<i64> {
    let q = a.checked_div(b)?;
    Some(if (a % b != 0) && ((a < 0) != (b < 0)) { q - 1 } else { q })
}

/// The remainder of [`floor_div`]: it has the sign of `b`.
pub fn floor_rem(a: i64, b: i64) -> Option<i64> {
    let r = a.checked_rem(b)?;
    Some(if r != 0 && ((r < 0) != (b < 0)) { r + b } else { r })
}

/// Gives a variable's value, `None` to keep it symbolic, or an error.
pub type Substitution<'a> = dyn FnMut(&str, Span) -> Result<Option<i64>, ExprError> + 'a;

impl PartialEq for SizeExpr {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind
    }
}
impl Eq for SizeExpr {}
impl Hash for SizeExpr {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.kind.hash(state)
    }
}

impl SizeExpr {
    pub fn lit(value: i64) -> Self {
        SizeExpr { kind: SizeKind::Lit(value), span: Span::default() }
    }

    pub fn var(name: &str) -> Self {
        SizeExpr { kind: SizeKind::Var(name.to_string()), span: Span::default() }
    }

    /// The value when the expression is a constant literal.
    pub fn as_lit(&self) -> Option<i64> {
        match self.kind {
            SizeKind::Lit(v) => Some(v),
            _ => None,
        }
    }

    /// Evaluates with `lookup` giving each variable's value.
    pub fn eval(&self, lookup: &dyn Fn(&str) -> Option<i64>) -> Result<i64, ExprError> {
        self.eval_with(&mut |name, span| {
            lookup(name).ok_or_else(|| {
                ExprError::new(
                    ExprErrorKind::UndefinedVar { name: name.into(), available: String::new() },
                    span,
                )
            })
        })
    }

    /// Evaluates with a fallible lookup, so the caller chooses the error for unknown names.
    pub fn eval_with(
        &self,
        lookup: &mut dyn FnMut(&str, Span) -> Result<i64, ExprError>,
    ) -> Result<i64, ExprError> {
        match &self.kind {
            SizeKind::Lit(v) => Ok(*v),
            SizeKind::Var(name) => lookup(name, self.span),
            SizeKind::Neg(a) => {
                let a = a.eval_with(lookup)?;
                a.checked_neg().ok_or_else(|| self.overflow())
            }
            SizeKind::Bin(op, a, b) => {
                let a = a.eval_with(lookup)?;
                let b = b.eval_with(lookup)?;
                op.apply(a, b).ok_or_else(|| {
                    if b == 0 && matches!(op, SizeOp::Div | SizeOp::Rem) {
                        ExprError::new(ExprErrorKind::DivisionByZero(self.to_string()), self.span)
                    } else {
                        self.overflow()
                    }
                })
            }
        }
    }

    fn overflow(&self) -> ExprError {
        ExprError::new(ExprErrorKind::Overflow(self.to_string()), self.span)
    }

    /// Replaces every variable for which `subst` gives a value, then folds constants.
    /// Variables `subst` leaves alone (such as `h`) stay symbolic.
    pub fn substitute(&self, subst: &mut Substitution<'_>) -> Result<SizeExpr, ExprError> {
        let kind = match &self.kind {
            SizeKind::Lit(v) => SizeKind::Lit(*v),
            SizeKind::Var(name) => match subst(name, self.span)? {
                Some(v) => SizeKind::Lit(v),
                None => SizeKind::Var(name.clone()),
            },
            SizeKind::Neg(a) => {
                let a = a.substitute(subst)?;
                match a.as_lit() {
                    Some(v) => SizeKind::Lit(v.checked_neg().ok_or_else(|| self.overflow())?),
                    None => SizeKind::Neg(Box::new(a)),
                }
            }
            SizeKind::Bin(op, a, b) => {
                let a = a.substitute(subst)?;
                let b = b.substitute(subst)?;
                let both_constant = a.as_lit().is_some() && b.as_lit().is_some();
                let node = SizeExpr { kind: SizeKind::Bin(*op, Box::new(a), Box::new(b)), span: self.span };
                if both_constant { SizeKind::Lit(node.eval(&|_| None)?) } else { node.kind }
            }
        };
        Ok(SizeExpr { kind, span: self.span })
    }

    /// Operators on the longest path from the root to a leaf (a literal or a
    /// name is 0). Iterative, so it is safe on a tree of any depth.
    pub fn height(&self) -> usize {
        let mut deepest = 0;
        let mut stack = vec![(self, 0)];
        while let Some((e, depth)) = stack.pop() {
            deepest = deepest.max(depth);
            match &e.kind {
                SizeKind::Lit(_) | SizeKind::Var(_) => {}
                SizeKind::Neg(a) => stack.push((a, depth + 1)),
                SizeKind::Bin(_, a, b) => stack.extend([(&**a, depth + 1), (&**b, depth + 1)]),
            }
        }
        deepest
    }

    /// Whether the expression mentions variable `name`.
    pub fn mentions(&self, name: &str) -> bool {
        match &self.kind {
            SizeKind::Lit(_) => false,
            SizeKind::Var(v) => v == name,
            SizeKind::Neg(a) => a.mentions(name),
            SizeKind::Bin(_, a, b) => a.mentions(name) || b.mentions(name),
        }
    }

    /// Every variable the expression mentions, with its span, in source order.
    pub fn variables(&self) -> Vec<(&str, Span)> {
        let mut out = Vec::new();
        self.collect_vars(&mut out);
        out
    }

    fn collect_vars<'a>(&'a self, out: &mut Vec<(&'a str, Span)>) {
        match &self.kind {
            SizeKind::Lit(_) => {}
            SizeKind::Var(v) => out.push((v, self.span)),
            SizeKind::Neg(a) => a.collect_vars(out),
            SizeKind::Bin(_, a, b) => {
                a.collect_vars(out);
                b.collect_vars(out);
            }
        }
    }

    fn fmt_prec(&self, f: &mut fmt::Formatter<'_>, parent: u8) -> fmt::Result {
        match &self.kind {
            SizeKind::Lit(v) if *v < 0 && parent > 0 => write!(f, "({v})"),
            SizeKind::Lit(v) => write!(f, "{v}"),
            SizeKind::Var(name) => f.write_str(name),
            SizeKind::Neg(a) => {
                f.write_str("-")?;
                a.fmt_prec(f, 3)
            }
            SizeKind::Bin(op, a, b) => {
                let p = op.precedence();
                if p < parent {
                    f.write_str("(")?;
                }
                a.fmt_prec(f, p)?;
                write!(f, " {} ", op.symbol())?;
                // Left-associative: the right operand needs parentheses at equal precedence.
                b.fmt_prec(f, p + 1)?;
                if p < parent {
                    f.write_str(")")?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Display for SizeExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_prec(f, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_division_matches_python() {
        for (a, b, q, r) in
            [(7, 2, 3, 1), (-7, 2, -4, 1), (7, -2, -4, -1), (-7, -2, 3, -1), (6, 3, 2, 0), (-6, 3, -2, 0)]
        {
            assert_eq!(floor_div(a, b), Some(q), "{a} // {b}");
            assert_eq!(floor_rem(a, b), Some(r), "{a} % {b}");
        }
        assert_eq!(floor_div(1, 0), None);
        assert_eq!(floor_rem(1, 0), None);
    }
}
