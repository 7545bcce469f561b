//! The TOML layout of a spec file, as serde reads it. Every value keeps its
//! byte span so that later errors can point at it.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSpec {
    pub name: Option<Spanned<String>>,
    pub defaults: Option<Spanned<RawDefaults>>,
    #[serde(default)]
    pub vars: BTreeMap<Spanned<String>, Spanned<RawVar>>,
    pub heads: Option<Spanned<Vec<Spanned<RawHeads>>>>,
    pub patterns: Option<Spanned<BTreeMap<Spanned<String>, Spanned<RawPattern>>>>,
    pub layers: Option<Spanned<Vec<Spanned<RawLayers>>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDefaults {
    pub seq_len: Option<Spanned<i64>>,
    pub n_heads: Option<Spanned<i64>>,
    pub n_layers: Option<Spanned<i64>>,
    pub head_dim: Option<Spanned<i64>>,
}

/// A `[vars]` value: an integer, or an expression in a string.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum RawVar {
    Int(i64),
    Expr(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHeads {
    pub range: Spanned<String>,
    pub mask: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPattern {
    pub heads: Spanned<Vec<Spanned<RawHeads>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLayers {
    pub range: Spanned<String>,
    pub pattern: Spanned<String>,
}
