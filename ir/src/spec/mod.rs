//! Pattern spec files (DESIGN.md, "The pattern spec file").
//!
//! Loading happens in two steps. [`Spec::parse`] reads the TOML and parses every
//! expression, so syntax errors surface without any sizes. [`Spec::resolve`]
//! then fixes the sizes (the file's `[defaults]`, overridden from the command
//! line), evaluates `[vars]`, checks the ranges and masks, and yields a
//! [`Schedule`]. Every error points at a line and column of the file.

mod error;
mod parse;
mod raw;
mod resolve;

use std::path::Path;

pub use error::{RangeOf, SpecError, SpecErrorKind};
pub use resolve::MAX_VAR_CHAIN;

use crate::pattern::Schedule;
use crate::source::SourceFile;

/// Sizes given on the command line; each replaces the file's `[defaults]` entry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Overrides {
    pub seq_len: Option<usize>,
    pub n_heads: Option<usize>,
    pub n_layers: Option<usize>,
    pub head_dim: Option<usize>,
}

/// A parsed spec file: syntax checked, sizes not yet fixed.
#[derive(Debug)]
pub struct Spec {
    source: SourceFile,
    parsed: parse::ParsedSpec,
}

impl Spec {
    /// Reads and parses a spec file.
    pub fn load(path: &Path) -> Result<Spec, SpecError> {
        let file = path.display().to_string();
        let text =
            std::fs::read_to_string(path).map_err(|source| SpecError::Io { file: file.clone(), source })?;
        Spec::parse(SourceFile::new(file, text))
    }

    /// Parses spec text; `source.name` is used in error messages.
    pub fn parse(source: SourceFile) -> Result<Spec, SpecError> {
        let parsed = parse::parse(&source)?;
        Ok(Spec { source, parsed })
    }

    pub fn source(&self) -> &SourceFile {
        &self.source
    }

    /// Fixes the sizes and checks everything that depends on them.
    pub fn resolve(&self, overrides: &Overrides) -> Result<Schedule, SpecError> {
        resolve::resolve(&self.source, &self.parsed, overrides)
    }
}

/// Loads and resolves a spec in one step.
pub fn load_schedule(path: &Path, overrides: &Overrides) -> Result<Schedule, SpecError> {
    Spec::load(path)?.resolve(overrides)
}
