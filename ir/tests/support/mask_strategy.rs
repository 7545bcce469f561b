//! Random mask expressions for property tests, kept in one place so that every
//! crate tests against the same distribution: `ir/tests/mask_properties.rs`
//! includes it as a module, `runtime/tests/attention_gpu.rs` through `#[path]`
//! (test helpers cannot be exported from a crate's tests).

use std::fmt::Debug;
use std::ops::Range;

use proptest::prelude::*;
use weft_ir::MaskExpr;

/// Random masks with small sizes, so that every primitive is partial somewhere
/// in sequences of a few dozen tokens. `size` draws one size from a range of
/// values: plain numbers for a `ConcreteMask`, expressions for a `Mask`.
pub fn mask_strategy<S>(size: fn(Range<i64>) -> BoxedStrategy<S>) -> impl Strategy<Value = MaskExpr<S>>
where
    S: Clone + Debug + 'static,
{
    let leaf = prop_oneof![
        Just(MaskExpr::Full),
        Just(MaskExpr::Causal),
        size(1..12).prop_map(MaskExpr::Window),
        size(1..12).prop_map(MaskExpr::Sink),
        (size(1..12), size(0..12)).prop_map(|(size, offset)| MaskExpr::Groups { size, offset }),
        (size(1..6), size(1..4), size(1..5), size(0..5)).prop_map(|(block, local, stride, offset)| {
            MaskExpr::LocalStride { block, local, stride, offset }
        }),
    ];
    leaf.prop_recursive(4, 24, 2, move |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| a.and(b)),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| a.or(b)),
            inner.clone().prop_map(MaskExpr::not),
            (size(-20..20), inner).prop_map(|(o, m)| MaskExpr::roll(o, m)),
        ]
    })
}
