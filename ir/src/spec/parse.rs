//! Step one: TOML to parsed expressions, each remembering where it stands in the file.

use std::ops::Range;

use toml::Spanned;

use super::error::{SpecError, SpecErrorKind};
use super::raw::{RawHeads, RawSpec, RawVar};
use crate::expr::{ExprError, SizeExpr, parse_mask, parse_range, parse_size};
use crate::mask::MaskAst;
use crate::source::{SourceFile, Span};

/// Where an expression string sits in the file.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Site {
    /// The whole TOML value, quotes included.
    pub value: Span,
    /// Byte offset of the string's first character, when the string has no
    /// escapes, so that spans inside it map one to one onto the file.
    pub base: Option<usize>,
}

impl Site {
    fn of_string(source: &SourceFile, value: Span, content: &str) -> Site {
        let raw = source.text.get(value.start..value.end).unwrap_or("");
        let plain = raw.len() == content.len() + 2
            && (raw.starts_with('"') || raw.starts_with('\''))
            && raw.get(1..raw.len() - 1) == Some(content);
        Site { value, base: plain.then_some(value.start + 1) }
    }

    fn of_value(value: Span) -> Site {
        Site { value, base: None }
    }

    /// Maps a span inside the expression to the file; without a one-to-one
    /// mapping the whole value is blamed.
    pub fn locate(&self, inner: Span) -> Span {
        match self.base {
            Some(base) => inner.offset(base),
            None => self.value,
        }
    }
}

#[derive(Debug)]
pub(crate) struct ParsedSpec {
    pub name: String,
    pub defaults: ParsedDefaults,
    pub vars: Vec<ParsedVar>,
    pub body: Body,
}

#[derive(Debug, Default)]
pub(crate) struct ParsedDefaults {
    /// The `[defaults]` table, for errors about a missing key.
    pub table: Option<Span>,
    pub seq_len: Option<Spanned<i64>>,
    pub n_heads: Option<Spanned<i64>>,
    pub n_layers: Option<Spanned<i64>>,
    pub head_dim: Option<Spanned<i64>>,
}

#[derive(Debug)]
pub(crate) struct ParsedVar {
    pub name: String,
    pub name_span: Span,
    pub expr: SizeExpr,
    pub site: Site,
}

#[derive(Debug)]
pub(crate) struct ParsedHeads {
    pub range: (SizeExpr, SizeExpr),
    pub range_site: Site,
    pub mask: MaskAst,
    pub mask_site: Site,
}

#[derive(Debug)]
pub(crate) struct ParsedPattern {
    pub name: String,
    pub heads: Vec<ParsedHeads>,
}

#[derive(Debug)]
pub(crate) struct ParsedLayers {
    pub range: (SizeExpr, SizeExpr),
    pub range_site: Site,
    pub pattern: String,
    pub pattern_span: Span,
}

#[derive(Debug)]
pub(crate) enum Body {
    /// `[[heads]]`: one pattern for every layer.
    Single(Vec<ParsedHeads>),
    /// `[patterns.*]` with `[[layers]]`.
    Hybrid { patterns: Vec<ParsedPattern>, layers: Vec<ParsedLayers> },
}

pub(crate) fn error_at(source: &SourceFile, span: Span, kind: SpecErrorKind) -> SpecError {
    SpecError::At {
        file: source.name.clone(),
        pos: source.line_col(span.start),
        kind: Box::new(kind),
        excerpt: source.excerpt(span),
    }
}

pub(crate) fn expr_error(source: &SourceFile, site: &Site, e: ExprError) -> SpecError {
    error_at(source, site.locate(e.span), SpecErrorKind::Expr(e.kind))
}

fn span_of(r: Range<usize>) -> Span {
    Span::from(r)
}

pub(crate) fn parse(source: &SourceFile) -> Result<ParsedSpec, SpecError> {
    let raw: RawSpec = toml::from_str(&source.text).map_err(|e| {
        let span = e.span().map(span_of).unwrap_or_default();
        error_at(source, span, SpecErrorKind::Toml(e.message().trim_end().to_string()))
    })?;

    let name = match &raw.name {
        Some(n) => n.get_ref().clone(),
        None => std::path::Path::new(&source.name)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "pattern".into()),
    };

    let defaults = match raw.defaults {
        Some(d) => {
            let table = span_of(d.span());
            let d = d.into_inner();
            ParsedDefaults {
                table: Some(table),
                seq_len: d.seq_len,
                n_heads: d.n_heads,
                n_layers: d.n_layers,
                head_dim: d.head_dim,
            }
        }
        None => ParsedDefaults::default(),
    };

    let mut vars = Vec::new();
    for (key, value) in &raw.vars {
        let value_span = span_of(value.span());
        let (expr, site) = match value.get_ref() {
            RawVar::Int(v) => (
                SizeExpr { kind: crate::expr::SizeKind::Lit(*v), span: Span::default() },
                Site::of_value(value_span),
            ),
            RawVar::Expr(text) => {
                let site = Site::of_string(source, value_span, text);
                let expr = parse_size(text).map_err(|e| expr_error(source, &site, e))?;
                (expr, site)
            }
        };
        vars.push(ParsedVar { name: key.get_ref().clone(), name_span: span_of(key.span()), expr, site });
    }

    let body = match (raw.heads, raw.patterns, raw.layers) {
        (Some(heads), None, None) => Body::Single(parse_heads_list(source, heads, "the spec")?),
        (Some(heads), Some(_), _) | (Some(heads), _, Some(_)) => {
            return Err(error_at(source, span_of(heads.span()), SpecErrorKind::HeadsAndPatterns));
        }
        (None, Some(patterns), Some(layers)) => {
            let mut parsed_patterns = Vec::new();
            for (key, pattern) in patterns.into_inner() {
                let what = format!("pattern `{}`", key.get_ref());
                let heads = parse_heads_list(source, pattern.into_inner().heads, &what)?;
                parsed_patterns.push(ParsedPattern { name: key.get_ref().clone(), heads });
            }
            let mut parsed_layers = Vec::new();
            for entry in layers.into_inner() {
                let entry = entry.into_inner();
                let (range, range_site) = parse_range_value(source, &entry.range)?;
                parsed_layers.push(ParsedLayers {
                    range,
                    range_site,
                    pattern: entry.pattern.get_ref().clone(),
                    pattern_span: span_of(entry.pattern.span()),
                });
            }
            Body::Hybrid { patterns: parsed_patterns, layers: parsed_layers }
        }
        (None, Some(patterns), None) => {
            return Err(error_at(source, span_of(patterns.span()), SpecErrorKind::MissingLayers));
        }
        (None, None, Some(layers)) => {
            return Err(error_at(source, span_of(layers.span()), SpecErrorKind::LayersWithoutPatterns));
        }
        (None, None, None) => return Err(error_at(source, Span::new(0, 0), SpecErrorKind::NoPattern)),
    };

    Ok(ParsedSpec { name, defaults, vars, body })
}

fn parse_heads_list(
    source: &SourceFile,
    list: Spanned<Vec<Spanned<RawHeads>>>,
    what: &str,
) -> Result<Vec<ParsedHeads>, SpecError> {
    let list_span = span_of(list.span());
    let list = list.into_inner();
    if list.is_empty() {
        return Err(error_at(source, list_span, SpecErrorKind::NoHeads { what: what.to_string() }));
    }
    let mut out = Vec::with_capacity(list.len());
    for entry in list {
        let entry = entry.into_inner();
        let (range, range_site) = parse_range_value(source, &entry.range)?;
        let mask_site = Site::of_string(source, span_of(entry.mask.span()), entry.mask.get_ref());
        let mask = parse_mask(entry.mask.get_ref()).map_err(|e| expr_error(source, &mask_site, e))?;
        out.push(ParsedHeads { range, range_site, mask, mask_site });
    }
    Ok(out)
}

fn parse_range_value(
    source: &SourceFile,
    value: &Spanned<String>,
) -> Result<((SizeExpr, SizeExpr), Site), SpecError> {
    let site = Site::of_string(source, span_of(value.span()), value.get_ref());
    let range = parse_range(value.get_ref()).map_err(|e| expr_error(source, &site, e))?;
    Ok((range, site))
}
