//! Tokens of the s-expression format, with byte spans for error positions.

use crate::source::Span;

#[derive(Clone, Debug, PartialEq)]
pub(super) enum Tok {
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    /// A run of characters other than whitespace, `()[],";`: names, numbers, `%3`, `:axis`.
    Atom(String),
    /// A quoted string, unescaped.
    Str(String),
    Eof,
}

#[derive(Clone, Debug)]
pub(super) struct Token {
    pub tok: Tok,
    pub span: Span,
}

/// A lexing failure: what was expected at `span` and what was there.
#[derive(Debug)]
pub(super) struct LexError {
    pub span: Span,
    pub expected: &'static str,
    pub found: String,
}

fn is_delimiter(c: char) -> bool {
    c.is_whitespace() || matches!(c, '(' | ')' | '[' | ']' | ',' | '"' | ';')
}

/// Splits `src` into tokens ending with [`Tok::Eof`]; `;` starts a comment to the end of the line.
pub(super) fn lex(src: &str) -> Result<Vec<Token>, LexError> {
    let mut tokens = Vec::new();
    let mut chars = src.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        let single = match c {
            '(' => Some(Tok::LParen),
            ')' => Some(Tok::RParen),
            '[' => Some(Tok::LBracket),
            ']' => Some(Tok::RBracket),
            ',' => Some(Tok::Comma),
            _ => None,
        };
        if let Some(tok) = single {
            tokens.push(Token { tok, span: Span::new(start, start + 1) });
        } else if c.is_whitespace() {
            continue;
        } else if c == ';' {
            while chars.next_if(|&(_, c)| c != '\n').is_some() {}
        } else if c == '"' {
            let (text, end) = string(src, start, &mut chars)?;
            tokens.push(Token { tok: Tok::Str(text), span: Span::new(start, end) });
        } else {
            let mut end = start + c.len_utf8();
            while let Some((i, c)) = chars.next_if(|&(_, c)| !is_delimiter(c)) {
                end = i + c.len_utf8();
            }
            tokens.push(Token { tok: Tok::Atom(src[start..end].to_string()), span: Span::new(start, end) });
        }
    }
    tokens.push(Token { tok: Tok::Eof, span: Span::new(src.len(), src.len()) });
    Ok(tokens)
}

/// Reads a string whose opening quote is at `start`; returns the text and the end offset.
fn string(
    src: &str,
    start: usize,
    chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>,
) -> Result<(String, usize), LexError> {
    let mut text = String::new();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((text, i + 1)),
            '\\' => match chars.next() {
                Some((_, '"')) => text.push('"'),
                Some((_, '\\')) => text.push('\\'),
                Some((_, 'n')) => text.push('\n'),
                Some((_, 't')) => text.push('\t'),
                Some((j, other)) => {
                    return Err(LexError {
                        span: Span::new(i, j + other.len_utf8()),
                        expected: "an escape (`\\\"`, `\\\\`, `\\n` or `\\t`)",
                        found: format!("`\\{other}`"),
                    });
                }
                None => break,
            },
            c => text.push(c),
        }
    }
    Err(LexError {
        span: Span::new(start, src.len()),
        expected: "a closing `\"` for the string",
        found: "the end of the file".to_string(),
    })
}
