use super::error::{ExprError, ExprErrorKind};
use crate::source::Span;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tok {
    Int,
    Ident,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    Amp,
    Pipe,
    Bang,
    LParen,
    RParen,
    Comma,
    DotDot,
    Eof,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Token {
    pub tok: Tok,
    pub span: Span,
}

/// Splits an expression into tokens. Whitespace separates tokens and is dropped.
pub(crate) fn lex(src: &str) -> Result<Vec<Token>, ExprError> {
    let bytes = src.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        let single = match c {
            b'+' => Some(Tok::Plus),
            b'-' => Some(Tok::Minus),
            b'*' => Some(Tok::Star),
            b'/' => Some(Tok::Slash),
            b'%' => Some(Tok::Percent),
            b'&' => Some(Tok::Amp),
            b'|' => Some(Tok::Pipe),
            b'!' => Some(Tok::Bang),
            b'(' => Some(Tok::LParen),
            b')' => Some(Tok::RParen),
            b',' => Some(Tok::Comma),
            _ => None,
        };
        if let Some(tok) = single {
            tokens.push(Token { tok, span: Span::new(i, i + 1) });
            i += 1;
        } else if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'.' && bytes.get(i + 1) == Some(&b'.') {
            tokens.push(Token { tok: Tok::DotDot, span: Span::new(i, i + 2) });
            i += 2;
        } else if c.is_ascii_digit() {
            while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'_') {
                i += 1;
            }
            tokens.push(Token { tok: Tok::Int, span: Span::new(start, i) });
        } else if c.is_ascii_alphabetic() || c == b'_' {
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            tokens.push(Token { tok: Tok::Ident, span: Span::new(start, i) });
        } else {
            let ch = src[i..].chars().next().unwrap_or('?');
            let span = Span::new(i, i + ch.len_utf8());
            return Err(ExprError::new(
                ExprErrorKind::Unexpected {
                    expected: "a number, a name, an operator or a parenthesis".into(),
                    found: format!("`{ch}`"),
                },
                span,
            ));
        }
    }
    tokens.push(Token { tok: Tok::Eof, span: Span::new(src.len(), src.len()) });
    Ok(tokens)
}
