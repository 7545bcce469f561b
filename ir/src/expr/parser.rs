//! Recursive-descent parser for sizes, ranges and masks.
//!
//! ```text
//! mask    := and ('|' and)*
//! and     := unary ('&' unary)*
//! unary   := '!' unary | '(' mask ')' | primitive
//! primitive := NAME [ '(' args ')' ]
//! size    := term (('+' | '-') term)*
//! term    := factor (('*' | '/' | '%') factor)*
//! factor  := '-' factor | INT | NAME | '(' size ')'
//! range   := size '..' size
//! ```

use super::error::{ExprError, ExprErrorKind};
use super::lexer::{Tok, Token, lex};
use super::size::{SizeExpr, SizeKind, SizeOp};
use crate::mask::MaskExpr;

/// The primitives and what each takes, in the order error messages list them.
const PRIMITIVES: &[(&str, &str)] = &[
    ("full", "no arguments"),
    ("causal", "no arguments"),
    ("window", "1 argument (w)"),
    ("sink", "1 argument (s)"),
    ("groups", "1 or 2 arguments (g[, o])"),
    ("local_stride", "3 or 4 arguments (b, l, s[, o])"),
    ("roll", "2 arguments (o, mask)"),
];
const KNOWN: &str = "full, causal, window, sink, groups, local_stride, roll";

/// Parses a whole mask expression.
pub fn parse_mask(src: &str) -> Result<MaskExpr<SizeExpr>, ExprError> {
    let mut p = Parser::new(src)?;
    let mask = p.mask()?;
    p.expect_end("`&`, `|` or the end of the mask")?;
    Ok(mask)
}

/// Parses a whole size expression.
pub fn parse_size(src: &str) -> Result<SizeExpr, ExprError> {
    let mut p = Parser::new(src)?;
    let size = p.size()?;
    p.expect_end("an operator or the end of the expression")?;
    Ok(size)
}

/// Parses `start..end`.
pub fn parse_range(src: &str) -> Result<(SizeExpr, SizeExpr), ExprError> {
    let mut p = Parser::new(src)?;
    let start = p.size()?;
    p.expect(Tok::DotDot, "`..` (a range is written `start..end`)")?;
    let end = p.size()?;
    p.expect_end("an operator or the end of the range")?;
    Ok((start, end))
}

struct Parser<'s> {
    src: &'s str,
    tokens: Vec<Token>,
    pos: usize,
}

impl<'s> Parser<'s> {
    fn new(src: &'s str) -> Result<Self, ExprError> {
        Ok(Parser { src, tokens: lex(src)?, pos: 0 })
    }

    fn peek(&self) -> Token {
        self.tokens[self.pos.min(self.tokens.len() - 1)]
    }

    fn bump(&mut self) -> Token {
        let t = self.peek();
        if t.tok != Tok::Eof {
            self.pos += 1;
        }
        t
    }

    fn text(&self, t: Token) -> &'s str {
        &self.src[t.span.start..t.span.end]
    }

    fn describe(&self, t: Token) -> String {
        if t.tok == Tok::Eof { "the end of the expression".into() } else { format!("`{}`", self.text(t)) }
    }

    fn unexpected(&self, expected: &str) -> ExprError {
        let t = self.peek();
        ExprError::new(
            ExprErrorKind::Unexpected { expected: expected.into(), found: self.describe(t) },
            t.span,
        )
    }

    fn expect(&mut self, tok: Tok, expected: &str) -> Result<Token, ExprError> {
        if self.peek().tok == tok { Ok(self.bump()) } else { Err(self.unexpected(expected)) }
    }

    fn expect_end(&mut self, expected: &str) -> Result<(), ExprError> {
        if self.peek().tok == Tok::Eof { Ok(()) } else { Err(self.unexpected(expected)) }
    }

    // ---- masks ----

    fn mask(&mut self) -> Result<MaskExpr<SizeExpr>, ExprError> {
        let mut lhs = self.mask_and()?;
        while self.peek().tok == Tok::Pipe {
            self.bump();
            lhs = lhs.or(self.mask_and()?);
        }
        Ok(lhs)
    }

    fn mask_and(&mut self) -> Result<MaskExpr<SizeExpr>, ExprError> {
        let mut lhs = self.mask_unary()?;
        while self.peek().tok == Tok::Amp {
            self.bump();
            lhs = lhs.and(self.mask_unary()?);
        }
        Ok(lhs)
    }

    fn mask_unary(&mut self) -> Result<MaskExpr<SizeExpr>, ExprError> {
        match self.peek().tok {
            Tok::Bang => {
                self.bump();
                Ok(self.mask_unary()?.not())
            }
            Tok::LParen => {
                self.bump();
                let inner = self.mask()?;
                self.expect(Tok::RParen, "`)`")?;
                Ok(inner)
            }
            Tok::Ident => self.primitive(),
            _ => Err(self.unexpected("a mask (a primitive such as `causal`, `!`, or `(`)")),
        }
    }

    fn primitive(&mut self) -> Result<MaskExpr<SizeExpr>, ExprError> {
        let name_tok = self.bump();
        let name = self.text(name_tok);
        let Some(&(primitive, signature)) = PRIMITIVES.iter().find(|(p, _)| *p == name) else {
            return Err(ExprError::new(
                ExprErrorKind::UnknownPrimitive { found: name.into(), known: KNOWN, hint: suggest(name) },
                name_tok.span,
            ));
        };
        let mut args: Vec<Arg> = Vec::new();
        let mut call_span = name_tok.span;
        if self.peek().tok == Tok::LParen {
            self.bump();
            if self.peek().tok != Tok::RParen {
                loop {
                    // `roll` is the one primitive whose second argument is a mask.
                    let arg = if primitive == "roll" && args.len() == 1 {
                        Arg::Mask(self.mask()?)
                    } else {
                        Arg::Size(self.size()?)
                    };
                    args.push(arg);
                    if self.peek().tok == Tok::Comma {
                        self.bump();
                    } else {
                        break;
                    }
                }
            }
            let close = self.expect(Tok::RParen, "`,` or `)`")?;
            call_span = call_span.to(close.span);
        }
        let arity_error =
            |found| ExprError::new(ExprErrorKind::Arity { primitive, expected: signature, found }, call_span);
        let n_args = args.len();
        let mut sizes = Vec::new();
        let mut inner = None;
        for arg in args {
            match arg {
                Arg::Size(s) => sizes.push(s),
                Arg::Mask(m) => inner = Some(m),
            }
        }
        let zero = || SizeExpr { kind: SizeKind::Lit(0), span: call_span };
        let mut sizes = sizes.into_iter();
        let mut next = || sizes.next();
        Ok(match (primitive, n_args) {
            ("full", 0) => MaskExpr::Full,
            ("causal", 0) => MaskExpr::Causal,
            ("window", 1) => MaskExpr::Window(next().ok_or_else(|| arity_error(n_args))?),
            ("sink", 1) => MaskExpr::Sink(next().ok_or_else(|| arity_error(n_args))?),
            ("groups", 1 | 2) => {
                let size = next().ok_or_else(|| arity_error(n_args))?;
                MaskExpr::Groups { size, offset: next().unwrap_or_else(zero) }
            }
            ("local_stride", 3 | 4) => {
                let mut take = || next().ok_or_else(|| arity_error(n_args));
                let (block, local, stride) = (take()?, take()?, take()?);
                MaskExpr::LocalStride { block, local, stride, offset: next().unwrap_or_else(zero) }
            }
            ("roll", 2) => {
                let offset = next().ok_or_else(|| arity_error(n_args))?;
                let inner = inner.ok_or_else(|| arity_error(n_args))?;
                MaskExpr::Roll { offset, inner: Box::new(inner) }
            }
            _ => return Err(arity_error(n_args)),
        })
    }

    // ---- sizes ----

    fn size(&mut self) -> Result<SizeExpr, ExprError> {
        let mut lhs = self.term()?;
        loop {
            let op = match self.peek().tok {
                Tok::Plus => SizeOp::Add,
                Tok::Minus => SizeOp::Sub,
                _ => return Ok(lhs),
            };
            self.bump();
            let rhs = self.term()?;
            lhs = binary(op, lhs, rhs);
        }
    }

    fn term(&mut self) -> Result<SizeExpr, ExprError> {
        let mut lhs = self.factor()?;
        loop {
            let op = match self.peek().tok {
                Tok::Star => SizeOp::Mul,
                Tok::Slash => SizeOp::Div,
                Tok::Percent => SizeOp::Rem,
                _ => return Ok(lhs),
            };
            self.bump();
            let rhs = self.factor()?;
            lhs = binary(op, lhs, rhs);
        }
    }

    fn factor(&mut self) -> Result<SizeExpr, ExprError> {
        let t = self.peek();
        match t.tok {
            Tok::Minus => {
                self.bump();
                let inner = self.factor()?;
                let span = t.span.to(inner.span);
                Ok(SizeExpr { kind: SizeKind::Neg(Box::new(inner)), span })
            }
            Tok::Int => {
                self.bump();
                let text = self.text(t).replace('_', "");
                let value = text
                    .parse::<i64>()
                    .map_err(|_| ExprError::new(ExprErrorKind::LiteralTooLarge(text.clone()), t.span))?;
                Ok(SizeExpr { kind: SizeKind::Lit(value), span: t.span })
            }
            Tok::Ident => {
                self.bump();
                Ok(SizeExpr { kind: SizeKind::Var(self.text(t).to_string()), span: t.span })
            }
            Tok::LParen => {
                self.bump();
                let inner = self.size()?;
                let close = self.expect(Tok::RParen, "`)`")?;
                Ok(SizeExpr { kind: inner.kind, span: t.span.to(close.span) })
            }
            _ => Err(self.unexpected("a size (a number, a name such as `N`, `-` or `(`)")),
        }
    }
}

enum Arg {
    Size(SizeExpr),
    Mask(MaskExpr<SizeExpr>),
}

fn binary(op: SizeOp, lhs: SizeExpr, rhs: SizeExpr) -> SizeExpr {
    let span = lhs.span.to(rhs.span);
    SizeExpr { kind: SizeKind::Bin(op, Box::new(lhs), Box::new(rhs)), span }
}

/// "; did you mean `causal`?" when a known primitive is one or two edits away.
fn suggest(name: &str) -> String {
    PRIMITIVES
        .iter()
        .map(|(p, _)| (edit_distance(name, p), *p))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, p)| format!("; did you mean `{p}`?"))
        .unwrap_or_default()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::{Expect, expect};

    /// Parses `src` and prints it back, or prints the error with its span.
    fn check(src: &str, expected: Expect) {
        let got = match parse_mask(src) {
            Ok(mask) => mask.to_string(),
            Err(e) => format!("error at {}..{}: {}", e.span.start, e.span.end, e.kind),
        };
        expected.assert_eq(&got);
    }

    #[test]
    fn masks_print_back_with_minimal_parentheses() {
        check("causal", expect!["causal"]);
        check("causal()", expect!["causal"]);
        check("causal & (sink(64) | window(1024))", expect!["causal & (sink(64) | window(1024))"]);
        check("(causal & sink(4)) | window(2)", expect!["causal & sink(4) | window(2)"]);
        check("roll(G/2, causal & groups(G))", expect!["roll(G / 2, causal & groups(G))"]);
        check("causal & groups(G, G/2)", expect!["causal & groups(G, G / 2)"]);
        check("!(causal | full) & !!sink(1)", expect!["!(causal | full) & !!sink(1)"]);
        check(
            "a_b",
            expect![
                "error at 0..3: unknown mask primitive `a_b`; expected one of full, causal, window, sink, groups, local_stride, roll"
            ],
        );
        check("local_stride(64, 4, 8, h)", expect!["local_stride(64, 4, 8, h)"]);
        check("window((N - 1) - (2 - 1) * 3)", expect!["window(N - 1 - (2 - 1) * 3)"]);
        check("window(-(2 + 3))", expect!["window(-(2 + 3))"]);
    }

    #[test]
    fn parse_errors_say_what_was_expected_and_found() {
        check(
            "causl",
            expect![
                "error at 0..5: unknown mask primitive `causl`; expected one of full, causal, window, sink, groups, local_stride, roll; did you mean `causal`?"
            ],
        );
        check("window(1, 2)", expect!["error at 0..12: `window` takes 1 argument (w), found 2 arguments"]);
        check("window", expect!["error at 0..6: `window` takes 1 argument (w), found 0 arguments"]);
        check("roll(4)", expect!["error at 0..7: `roll` takes 2 arguments (o, mask), found 1 argument"]);
        check(
            "causal &",
            expect![
                "error at 8..8: expected a mask (a primitive such as `causal`, `!`, or `(`), found the end of the expression"
            ],
        );
        check(
            "causal && sink(2)",
            expect!["error at 8..9: expected a mask (a primitive such as `causal`, `!`, or `(`), found `&`"],
        );
        check("(causal", expect!["error at 7..7: expected `)`, found the end of the expression"]);
        check(
            "window(4 $ 2)",
            expect!["error at 9..10: expected a number, a name, an operator or a parenthesis, found `$`"],
        );
        check(
            "causal sink(3)",
            expect!["error at 7..11: expected `&`, `|` or the end of the mask, found `sink`"],
        );
    }

    #[test]
    fn ranges_and_sizes_parse() {
        let (a, b) = parse_range("0..H/2").unwrap();
        assert_eq!((a.to_string(), b.to_string()), ("0".into(), "H / 2".into()));
        assert_eq!(parse_size("1_024 * 2").unwrap().eval(&|_| None), Ok(2048));
        let err = parse_range("0 .. ").unwrap_err();
        assert_eq!(
            err.to_string(),
            "expected a size (a number, a name such as `N`, `-` or `(`), found the end of the expression"
        );
    }
}
