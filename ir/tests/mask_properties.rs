//! Property tests of the mask algebra against brute-force evaluation.

use mask_strategy::mask_strategy;
use proptest::prelude::*;
use weft_ir::mask::{TileClass, classify_interval, classify_tile, head_stats};
use weft_ir::{ConcreteMask, MaskExpr};

#[path = "support/mask_strategy.rs"]
mod mask_strategy;

/// Masks with constant sizes, as tile classification sees them.
fn concrete_masks() -> impl Strategy<Value = ConcreteMask> {
    mask_strategy(|range| range.boxed())
}

fn brute_force(
    mask: &ConcreteMask,
    n: usize,
    q: std::ops::Range<usize>,
    k: std::ops::Range<usize>,
) -> TileClass {
    let (mut any_true, mut any_false) = (false, false);
    for qq in q {
        for kk in k.clone() {
            if mask.allows(n as i64, qq as i64, kk as i64) {
                any_true = true;
            } else {
                any_false = true;
            }
        }
    }
    match (any_true, any_false) {
        (true, true) => TileClass::Partial,
        (true, false) => TileClass::Full,
        _ => TileClass::Empty,
    }
}

fn tiles(n: usize, block: usize) -> impl Iterator<Item = (std::ops::Range<usize>, std::ops::Range<usize>)> {
    let nb = n.div_ceil(block);
    (0..nb).flat_map(move |qb| {
        (0..nb).map(move |kb| (qb * block..((qb + 1) * block).min(n), kb * block..((kb + 1) * block).min(n)))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn tile_classification_agrees_with_brute_force(mask in concrete_masks(), n in 1usize..40, block in 1usize..10) {
        for (q, k) in tiles(n, block) {
            let expected = brute_force(&mask, n, q.clone(), k.clone());
            prop_assert_eq!(classify_tile(&mask, n, q.clone(), k.clone()), expected, "mask {} tile {:?} x {:?}", mask, q, k);
        }
    }

    #[test]
    fn interval_verdicts_are_sound(mask in concrete_masks(), n in 1usize..40, block in 1usize..10) {
        for (q, k) in tiles(n, block) {
            let expected = brute_force(&mask, n, q.clone(), k.clone());
            let v = classify_interval(&mask, n as i64, (q.start as i64, q.end as i64 - 1), (k.start as i64, k.end as i64 - 1));
            if v.class != TileClass::Partial || v.certain {
                prop_assert_eq!(v.class, expected, "mask {} tile {:?} x {:?}", mask, q, k);
            }
        }
    }

    #[test]
    fn stats_count_exactly_the_allowed_pairs(mask in concrete_masks(), n in 1usize..40, block in 1usize..10) {
        let dense = mask.dense(n);
        let stats = head_stats(&mask, n, block);
        prop_assert_eq!(stats.allowed_pairs, dense.iter().filter(|&&b| b).count() as u64);
        prop_assert_eq!(stats.tiles.total(), n.div_ceil(block).pow(2));
    }

    #[test]
    fn masks_print_and_parse_back(mask in concrete_masks()) {
        let text = mask.to_string();
        let parsed = weft_ir::expr::parse_mask(&text)
            .map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?
            .try_map_sizes(&mut |s, _| s.eval(&|_| None))
            .map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        prop_assert_eq!(parsed, mask);
    }

    /// A decoder that keeps what `reach` says drops no key a later query may
    /// see, and never holds more keys than the capacity.
    #[test]
    fn reach_keeps_every_key_a_later_query_sees(mask in concrete_masks(), n in 1i64..40) {
        let reach = mask.reach();
        let capacity = reach.capacity(n as u64);
        for t in 0..n {
            let mut kept = 0;
            for k in 0..=t {
                let needed = (t..n).any(|q| mask.allows(n, q, k));
                prop_assert!(!needed || reach.keeps(t, k), "mask {} reach {}: key {} dropped at {}", mask, reach, k, t);
                kept += u64::from(reach.keeps(t, k));
            }
            prop_assert!(kept <= capacity, "mask {} reach {}: {} kept at {}, capacity {}", mask, reach, kept, t, capacity);
        }
    }
}

#[test]
fn primitive_verdicts_are_certain_on_examples() {
    // A window tile straddling the band is partial, and certainly so.
    let v = classify_interval(&MaskExpr::Window(4), 64, (8, 15), (8, 15));
    assert_eq!((v.class, v.certain), (TileClass::Partial, true));
    // causal & !causal is empty, which intervals cannot see; the scan can.
    let contradiction = MaskExpr::Causal.and(MaskExpr::Causal.not());
    let v = classify_interval(&contradiction, 64, (0, 7), (0, 7));
    assert_eq!((v.class, v.certain), (TileClass::Partial, false));
    assert_eq!(classify_tile(&contradiction, 64, 0..8, 0..8), TileClass::Empty);
}
