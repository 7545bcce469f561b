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
//!
//! Nesting is bounded ([`super::limits`]): each `(`, `!`, `roll(` and unary
//! `-` is one level of the parser's recursion, and each node built (an operator
//! of a chain, too) may not make its tree deeper than the limit. Chains stay
//! left-nested as written; a chain longer than the limit is refused rather
//! than rebalanced, so every tree keeps the shape its text has.

use super::error::{ExprError, ExprErrorKind};
use super::lexer::{Tok, Token, lex};
use super::limits::Nested;
use super::size::{SizeExpr, SizeKind, SizeOp};
use crate::mask::{MAX_MASK_TERMS, MaskExpr};
use crate::source::Span;

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
    let terms = mask.terms();
    if terms > MAX_MASK_TERMS {
        let kind = ExprErrorKind::TooManyTerms { terms, limit: MAX_MASK_TERMS };
        return Err(ExprError::new(kind, Span::new(0, src.len())));
    }
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
    /// Open `(`, `!` and `roll(` of the mask being parsed.
    mask_nesting: usize,
    /// Open `(` and unary `-` of the size being parsed.
    size_nesting: usize,
}

impl<'s> Parser<'s> {
    fn new(src: &'s str) -> Result<Self, ExprError> {
        Ok(Parser { src, tokens: lex(src)?, pos: 0, mask_nesting: 0, size_nesting: 0 })
    }

    /// Opens one level of `what` at `at`, refusing past its limit before recursing.
    fn enter(&mut self, what: Nested, at: Span) -> Result<(), ExprError> {
        let nesting = match what {
            Nested::Mask => &mut self.mask_nesting,
            Nested::Size => &mut self.size_nesting,
        };
        *nesting += 1;
        if *nesting > what.limit() { Err(ExprError::new(ExprErrorKind::TooDeep(what), at)) } else { Ok(()) }
    }

    fn leave(&mut self, what: Nested) {
        match what {
            Nested::Mask => self.mask_nesting -= 1,
            Nested::Size => self.size_nesting -= 1,
        }
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
            let op = self.bump();
            lhs = bounded_mask(lhs.or(self.mask_and()?), op.span)?;
        }
        Ok(lhs)
    }

    fn mask_and(&mut self) -> Result<MaskExpr<SizeExpr>, ExprError> {
        let mut lhs = self.mask_unary()?;
        while self.peek().tok == Tok::Amp {
            let op = self.bump();
            lhs = bounded_mask(lhs.and(self.mask_unary()?), op.span)?;
        }
        Ok(lhs)
    }

    fn mask_unary(&mut self) -> Result<MaskExpr<SizeExpr>, ExprError> {
        match self.peek().tok {
            Tok::Bang => {
                let bang = self.bump();
                self.enter(Nested::Mask, bang.span)?;
                let inner = self.mask_unary()?;
                self.leave(Nested::Mask);
                bounded_mask(inner.not(), bang.span)
            }
            Tok::LParen => {
                let open = self.bump();
                self.enter(Nested::Mask, open.span)?;
                let inner = self.mask()?;
                self.expect(Tok::RParen, "`)`")?;
                self.leave(Nested::Mask);
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
                        self.enter(Nested::Mask, name_tok.span)?;
                        let inner = self.mask()?;
                        self.leave(Nested::Mask);
                        Arg::Mask(inner)
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
                bounded_mask(MaskExpr::Roll { offset, inner: Box::new(inner) }, name_tok.span)?
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
            let op_tok = self.bump();
            let rhs = self.term()?;
            lhs = bounded_size(binary(op, lhs, rhs), op_tok.span)?;
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
            let op_tok = self.bump();
            let rhs = self.factor()?;
            lhs = bounded_size(binary(op, lhs, rhs), op_tok.span)?;
        }
    }

    fn factor(&mut self) -> Result<SizeExpr, ExprError> {
        let t = self.peek();
        match t.tok {
            Tok::Minus => {
                self.bump();
                self.enter(Nested::Size, t.span)?;
                let inner = self.factor()?;
                self.leave(Nested::Size);
                let span = t.span.to(inner.span);
                bounded_size(SizeExpr { kind: SizeKind::Neg(Box::new(inner)), span }, t.span)
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
                self.enter(Nested::Size, t.span)?;
                let inner = self.size()?;
                let close = self.expect(Tok::RParen, "`)`")?;
                self.leave(Nested::Size);
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

/// `mask`, unless building it at `at` made the tree deeper than the limit.
fn bounded_mask(mask: MaskExpr<SizeExpr>, at: Span) -> Result<MaskExpr<SizeExpr>, ExprError> {
    if mask.height() > Nested::Mask.limit() {
        return Err(ExprError::new(ExprErrorKind::TooDeep(Nested::Mask), at));
    }
    Ok(mask)
}

/// `size`, unless building it at `at` made the tree deeper than the limit.
fn bounded_size(size: SizeExpr, at: Span) -> Result<SizeExpr, ExprError> {
    if size.height() > Nested::Size.limit() {
        return Err(ExprError::new(ExprErrorKind::TooDeep(Nested::Size), at));
    }
    Ok(size)
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
    use crate::expr::{MAX_MASK_DEPTH, MAX_SIZE_DEPTH};
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

    /// `error at START..END: MESSAGE` for a parse that must fail.
    fn error_of(result: Result<impl std::fmt::Debug, ExprError>) -> String {
        let e = result.expect_err("the parse must fail");
        format!("error at {}..{}: {}", e.span.start, e.span.end, e.kind)
    }

    fn chain(op: &str, n: usize) -> String {
        vec!["causal"; n].join(op)
    }

    #[test]
    fn masks_nest_up_to_the_limit() {
        let n = MAX_MASK_DEPTH;
        for src in [
            format!("{}causal{}", "(".repeat(n), ")".repeat(n)),
            format!("{}causal", "!".repeat(n)),
            format!("{}causal{}", "roll(1, ".repeat(n), ")".repeat(n)),
            chain(" & ", n + 1),
            chain(" | ", n + 1),
        ] {
            let mask = parse_mask(&src).unwrap_or_else(|e| panic!("{src}: {e}"));
            assert!(mask.height() <= n, "{src}");
        }
    }

    #[test]
    fn masks_nested_deeper_than_the_limit_are_refused_where_the_limit_is_crossed() {
        let n = MAX_MASK_DEPTH + 1;
        let deep = "mask nested deeper than 64 levels";
        assert_eq!(
            error_of(parse_mask(&format!("{}causal{}", "(".repeat(n), ")".repeat(n)))),
            format!("error at 64..65: {deep}")
        );
        assert_eq!(
            error_of(parse_mask(&format!("{}causal", "!".repeat(n)))),
            format!("error at 64..65: {deep}")
        );
        let roll = format!("{}causal{}", "roll(1, ".repeat(n), ")".repeat(n));
        assert_eq!(error_of(parse_mask(&roll)), format!("error at 512..516: {deep}"));
        // Each operator of a chain is one level: the 65th `&` is refused.
        let and = chain(" & ", 100_000);
        assert_eq!(error_of(parse_mask(&and)), format!("error at 583..584: {deep}"));
        assert_eq!(error_of(parse_mask(&chain(" | ", 100_000))), format!("error at 583..584: {deep}"));
        // A chain under `!` counts both.
        let not_chain = format!("!({})", chain(" & ", MAX_MASK_DEPTH + 1));
        assert_eq!(error_of(parse_mask(&not_chain)), format!("error at 0..1: {deep}"));
        let roll_chain = format!("roll(1, {})", chain(" & ", MAX_MASK_DEPTH + 1));
        assert_eq!(error_of(parse_mask(&roll_chain)), format!("error at 0..4: {deep}"));
    }

    #[test]
    fn sizes_nested_deeper_than_the_limit_are_refused() {
        let n = MAX_SIZE_DEPTH;
        let deep = "size expression nested deeper than 64 levels";
        assert!(parse_size(&format!("{}1{}", "(".repeat(n), ")".repeat(n))).is_ok());
        assert!(parse_size(&format!("{}1", "-".repeat(n))).is_ok());
        assert!(parse_size(&vec!["1"; n + 1].join(" + ")).is_ok());
        let parens = format!("{}1{}", "(".repeat(n + 1), ")".repeat(n + 1));
        assert_eq!(error_of(parse_size(&parens)), format!("error at 64..65: {deep}"));
        assert_eq!(
            error_of(parse_size(&format!("{}1", "-".repeat(100_000)))),
            format!("error at 64..65: {deep}")
        );
        let sum = vec!["N"; 100_000].join(" - ");
        assert_eq!(error_of(parse_size(&sum)), format!("error at 258..259: {deep}"));
        let product = vec!["N"; 100_000].join(" * ");
        assert_eq!(error_of(parse_size(&product)), format!("error at 258..259: {deep}"));
        // Inside a mask and in a range, too.
        let window = format!("window({}1{})", "(".repeat(100_000), ")".repeat(100_000));
        assert_eq!(error_of(parse_mask(&window)), format!("error at 71..72: {deep}"));
        let range = format!("0..{}", vec!["H"; 100_000].join(" / "));
        assert_eq!(error_of(parse_range(&range)), format!("error at 261..262: {deep}"));
    }

    #[test]
    fn masks_with_more_terms_than_the_kernels_take_are_refused() {
        // Groups of 8 keep the depth low, so only the term count is over.
        let masks = |groups: usize| vec![format!("({})", chain(" & ", 8)); groups].join(" | ");
        let at_limit = masks(MAX_MASK_TERMS / 8);
        assert_eq!(parse_mask(&at_limit).map(|m| m.terms()), Ok(MAX_MASK_TERMS));
        let over = format!("{at_limit} | sink(1)");
        let message = format!("error at 0..{}: mask has 129 terms; the kernels take at most 128", over.len());
        assert_eq!(error_of(parse_mask(&over)), message);
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
