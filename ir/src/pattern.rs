//! Resolved attention patterns and layer schedules: what a spec file means once
//! every size is a number.

use std::ops::Range;

use crate::mask::{ConcreteMask, Mask, NewMaskError, Reach};

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

    /// What each KV head's cache keeps while decoding ([`ConcreteMask::reach`]):
    /// under grouped-query attention, query head `h` reads KV head
    /// `h / (n_heads / n_kv_heads)`, so a KV head keeps the union of its query
    /// heads' reaches. `None` when `n_kv_heads` does not divide the heads.
    pub fn kv_reach(&self, n_kv_heads: usize) -> Option<Vec<Reach>> {
        let n_heads = self.n_heads();
        if n_kv_heads == 0 || !n_heads.is_multiple_of(n_kv_heads) {
            return None;
        }
        let per_kv = n_heads / n_kv_heads;
        Some(
            self.head_masks
                .chunks(per_kv)
                .map(|heads| Reach::union(heads.iter().map(ConcreteMask::reach).collect()))
                .collect(),
        )
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

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(masks: &[&str]) -> Pattern {
        let head_masks: Vec<ConcreteMask> = masks
            .iter()
            .map(|src| {
                crate::expr::parse_mask(src).unwrap().try_map_sizes(&mut |s, _| s.eval(&|_| None)).unwrap()
            })
            .collect();
        Pattern::new("test".into(), Vec::new(), head_masks)
    }

    #[test]
    fn a_kv_head_keeps_what_any_of_its_query_heads_needs() {
        // Vertical blocks at a per-head offset, as in LongGen's local-stride heads.
        let p = pattern(&[
            "causal & local_stride(4, 2, 4, 0)",
            "causal & local_stride(4, 2, 4, 1)",
            "causal & local_stride(4, 2, 4, 2)",
            "causal & local_stride(4, 2, 4, 3)",
        ]);
        let mha = p.kv_reach(4).unwrap();
        assert_eq!(mha.len(), 4);
        assert_eq!(mha[1].capacity(64), 8 + 4 * 4);
        let gqa = p.kv_reach(2).unwrap();
        assert_eq!(gqa.len(), 2);
        assert_eq!(gqa[0].to_string(), "2*4 + 2*4*ceil(N/16)");
        assert_eq!(gqa[0].capacity(64), 8 + 2 * 4 * 4);
        // KV head 1 serves offsets 2 and 3: key blocks 1 and 2 of every 4 (kb + o = 0 mod 4).
        for kb in 0..16 {
            let wanted = kb % 4 == 1 || kb % 4 == 2;
            assert_eq!(gqa[1].keeps(63, kb * 4), wanted || kb >= 14, "block {kb}");
        }
        // Equal masks share one reach.
        let uniform = pattern(&["causal & (sink(4) | window(8))"; 4]);
        assert_eq!(uniform.kv_reach(1).unwrap()[0].to_string(), "4 + 8");
        assert_eq!(p.kv_reach(3), None);
        assert_eq!(p.kv_reach(0), None);
    }
}
