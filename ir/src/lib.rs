//! weft's intermediate representation.
//!
//! - [`spec`] reads pattern spec files into a [`Schedule`] of [`Pattern`]s.
//! - [`mask`] is the mask algebra: evaluation, printing, tile classification.
//! - [`graph`] is the tensor dataflow graph, its validator and text formats.
//! - [`lower`] turns a pattern into its reference graph.
//! - [`interp`] is the f64 reference interpreter every kernel is checked against.
//! - [`autodiff`] appends a graph's backward pass to it, as more graph.
//! - [`limits`] holds the largest sizes weft accepts and the checks that enforce them.
//! - [`model`] reads a LLaMA `config.json` and lists the checkpoint's tensors.
//!
//! This crate knows nothing of the optimizer or the GPU.

pub mod autodiff;
pub mod expr;
pub mod graph;
pub mod interp;
pub mod limits;
pub mod lower;
pub mod mask;
pub mod model;
pub mod source;

pub use mask::{ConcreteMask, Mask, MaskAst, MaskExpr, NewMaskError, TileClass};
pub use source::{SourceFile, Span};
pub mod pattern;
pub mod spec;

pub use limits::{Limit, Origin, SizeError};
pub use pattern::{Dims, HeadGroup, LayerRange, Pattern, Schedule};
pub use spec::{Overrides, Spec, SpecError, SpecErrorKind};
