//! Source positions: byte spans and their translation to line and column.

use std::fmt;
use std::ops::Range;

/// A half-open byte range `[start, end)` inside some source text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }

    /// Moves the span by `base` bytes, for a string embedded at `base` in a larger text.
    pub fn offset(self, base: usize) -> Span {
        Span::new(self.start + base, self.end + base)
    }
}

impl From<Range<usize>> for Span {
    fn from(r: Range<usize>) -> Self {
        Span::new(r.start, r.end)
    }
}

/// A 1-based line and column (columns count characters, not bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineCol {
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for LineCol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// A named text (a spec file, a graph file) that errors point into.
#[derive(Clone, Debug)]
pub struct SourceFile {
    pub name: String,
    pub text: String,
}

impl SourceFile {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Self {
        SourceFile { name: name.into(), text: text.into() }
    }

    /// Line and column of a byte offset; offsets past the end clamp to the end.
    pub fn line_col(&self, offset: usize) -> LineCol {
        let offset = floor_char_boundary(&self.text, offset.min(self.text.len()));
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = self.text[line_start..offset].chars().count() + 1;
        LineCol { line, column }
    }

    /// The full text of a 1-based line, without its newline.
    pub fn line_text(&self, line: usize) -> &str {
        self.text.lines().nth(line.saturating_sub(1)).unwrap_or("")
    }

    /// A rustc-style excerpt: the line holding `span` with carets under it.
    /// A line longer than [`EXCERPT_CHARS`] is cut to a window around the
    /// span's start, with `…` where text is left out.
    pub fn excerpt(&self, span: Span) -> String {
        let start = self.line_col(span.start);
        let line: Vec<char> = self.line_text(start.line).chars().collect();
        let end = self.line_col(span.end.max(span.start));
        let first = start.column - 1;
        let width = if end.line == start.line {
            end.column.saturating_sub(start.column).max(1)
        } else {
            line.len().saturating_sub(first).max(1)
        };
        let from = first.saturating_sub(EXCERPT_CHARS / 4).min(line.len().saturating_sub(EXCERPT_CHARS));
        let to = (from + EXCERPT_CHARS).min(line.len());
        let (before, after) = (if from > 0 { "…" } else { "" }, if to < line.len() { "…" } else { "" });
        let text: String = line[from..to].iter().collect();
        let gutter = start.line.to_string().len();
        format!(
            "{pad} |\n{line} | {before}{text}{after}\n{pad} | {space}{carets}",
            pad = " ".repeat(gutter),
            line = start.line,
            space = " ".repeat(first - from + before.chars().count()),
            carets = "^".repeat(width.min(to.saturating_sub(first).max(1))),
        )
    }
}

/// The most characters of a line an excerpt shows.
const EXCERPT_CHARS: usize = 200;

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_from_one() {
        let src = SourceFile::new("x", "ab\ncdé\nf");
        assert_eq!(src.line_col(0), LineCol { line: 1, column: 1 });
        assert_eq!(src.line_col(3), LineCol { line: 2, column: 1 });
        assert_eq!(src.line_col(7), LineCol { line: 2, column: 4 });
        assert_eq!(src.line_col(8), LineCol { line: 3, column: 1 });
        assert_eq!(src.line_col(100), LineCol { line: 3, column: 2 });
    }

    #[test]
    fn excerpt_underlines_the_span() {
        let src = SourceFile::new("x", "a = 1\nmask = \"causl\"\n");
        let start = src.text.find("causl").unwrap();
        let got = src.excerpt(Span::new(start, start + 5));
        assert_eq!(got, "  |\n2 | mask = \"causl\"\n  |         ^^^^^");
    }

    #[test]
    fn excerpt_of_a_long_line_is_a_window_around_the_span() {
        let text = format!("mask = \"{}causl{}\"", "x".repeat(500), "y".repeat(500));
        let src = SourceFile::new("x", &text);
        let start = text.find("causl").unwrap();
        let got = src.excerpt(Span::new(start, start + 5));
        let expected =
            format!("  |\n1 | …{}causl{}…\n  | {}^^^^^", "x".repeat(50), "y".repeat(145), " ".repeat(51));
        assert_eq!(got, expected);
    }
}
