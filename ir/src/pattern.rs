//! Resolved attention patterns and layer schedules: what a spec file means once
//! every size is a number.

use std::ops::Range;

use crate::mask::{ConcreteMask, Mask, NewMaskError};

/// The model sizes a spec is resolved at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dims {
    pub seq_len: usize,
    pub n_heads: usize,
    pub n_layers: usize,
    pub head_dim: usize,
}

/// One mask shared by a contiguous range of heads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeadGroup {
    pub heads: Range<usize>,
    pub mask: Mask,
}

/// An assignment of masks to head ranges, covering every head exactly once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    pub name: String,
    /// Sorted by first head; the ranges tile `0..n_heads`.
    pub groups: Vec<HeadGroup>,
    /// Each head's mask with its sizes evaluated, indexed by head.
    head_masks: Vec<ConcreteMask>,
}

impl Pattern {
    /// Builds a pattern from groups already checked to tile the heads, and the
    /// per-head masks already evaluated from them.
    pub(crate) fn new(name: String, groups: Vec<HeadGroup>, head_masks: Vec<ConcreteMask>) -> Self {
        Pattern { name, groups, head_masks }
    }

    /// A pattern that uses one constant mask on every head.
    pub fn uniform(name: &str, n_heads: usize, mask: &ConcreteMask) -> Result<Self, NewMaskError> {
        let groups = vec![HeadGroup { heads: 0..n_heads, mask: Mask::constant(mask)? }];
        Ok(Pattern { name: name.to_string(), groups, head_masks: vec![mask.clone(); n_heads] })
    }

    pub fn n_heads(&self) -> usize {
        self.head_masks.len()
    }

    /// The mask of head `head_idx` with its sizes evaluated.
    pub fn head_mask(&self, head_idx: usize) -> Option<&ConcreteMask> {
        self.head_masks.get(head_idx)
    }

    pub fn head_masks(&self) -> &[ConcreteMask] {
        &self.head_masks
    }
}

/// Which pattern a range of layers uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerRange {
    pub layers: Range<usize>,
    /// Index into [`Schedule::patterns`].
    pub pattern: usize,
}

/// A resolved spec: the sizes, the patterns and their assignment to layers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    pub name: String,
    pub dims: Dims,
    /// `[vars]` in evaluation order, with their values.
    pub vars: Vec<(String, i64)>,
    pub patterns: Vec<Pattern>,
    /// Sorted by first layer; the ranges tile `0..n_layers`.
    pub layers: Vec<LayerRange>,
}

impl Schedule {
    /// The pattern layer `layer_idx` uses.
    pub fn pattern_for_layer(&self, layer_idx: usize) -> Option<&Pattern> {
        self.layers.iter().find(|r| r.layers.contains(&layer_idx)).and_then(|r| self.patterns.get(r.pattern))
    }

    /// The layer ranges that use pattern `pattern_idx`, written `a..b, c..d`
    /// (empty when no layer uses it).
    pub fn layers_using(&self, pattern_idx: usize) -> String {
        let ranges: Vec<String> = self
            .layers
            .iter()
            .filter(|r| r.pattern == pattern_idx)
            .map(|r| format!("{}..{}", r.layers.start, r.layers.end))
            .collect();
        ranges.join(", ")
    }

    /// Whether the spec assigns different patterns to different layers.
    pub fn is_hybrid(&self) -> bool {
        self.layers.len() > 1
    }
}
