//! The seeded randomness of data handling: which documents are held out, the
//! order of sequences per epoch, and the passkey trials.
//!
//! Each use draws from its own ChaCha8 stream, keyed by the user's seed, a
//! purpose tag and two counters (epoch, length, trial). ChaCha8's output is
//! fixed by `rand_chacha` (unlike `rand`'s `StdRng`, whose algorithm may change
//! between `rand` versions), and the integer sampling and the shuffle are
//! written out here, so the same seed gives the same order from any build of
//! weft until this file changes.

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};

/// What a stream is for; distinct tags give independent streams for one seed.
#[derive(Clone, Copy, Debug)]
pub enum Purpose {
    HeldOut,
    Order,
    Passkey,
    /// Passkey documents mixed into training data: never an evaluation trial.
    PasskeyTraining,
}

impl Purpose {
    fn tag(self) -> [u8; 8] {
        match self {
            Purpose::HeldOut => *b"heldout\0",
            Purpose::Order => *b"order\0\0\0",
            Purpose::Passkey => *b"passkey\0",
            Purpose::PasskeyTraining => *b"pktrain\0",
        }
    }
}

/// The stream for `(seed, purpose, a, b)`: the 32-byte key is the four
/// little-endian words, so no two arguments share a stream.
pub fn stream(seed: u64, purpose: Purpose, a: u64, b: u64) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&purpose.tag());
    key[16..24].copy_from_slice(&a.to_le_bytes());
    key[24..].copy_from_slice(&b.to_le_bytes());
    ChaCha8Rng::from_seed(key)
}

/// A uniform integer in `0..n` (`n` ≥ 1), without modulo bias: draws below
/// `2^64 mod n` are rejected, leaving a whole number of copies of `0..n`.
pub fn below(rng: &mut ChaCha8Rng, n: u64) -> u64 {
    let n = n.max(1);
    let reject = n.wrapping_neg() % n;
    loop {
        let x = rng.next_u64();
        if x >= reject {
            return x % n;
        }
    }
}

/// A uniform float in [0, 1) with 53 random bits.
pub fn unit(rng: &mut ChaCha8Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// A uniform permutation of `0..n` (Fisher–Yates, from the last position down).
pub fn permutation(n: usize, rng: &mut ChaCha8Rng) -> Vec<usize> {
    let mut items: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = below(rng, i as u64 + 1) as usize;
        items.swap(i, j);
    }
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let draw = |seed, purpose, a, b| {
            let mut rng = stream(seed, purpose, a, b);
            (0..4).map(|_| rng.next_u64()).collect::<Vec<_>>()
        };
        assert_eq!(draw(7, Purpose::Order, 1, 0), draw(7, Purpose::Order, 1, 0));
        assert_ne!(draw(7, Purpose::Order, 1, 0), draw(7, Purpose::Order, 2, 0));
        assert_ne!(draw(7, Purpose::Order, 1, 0), draw(8, Purpose::Order, 1, 0));
        assert_ne!(draw(7, Purpose::Order, 1, 0), draw(7, Purpose::HeldOut, 1, 0));
        assert_ne!(draw(7, Purpose::Order, 1, 0), draw(7, Purpose::Order, 0, 1));
    }

    /// The stream is pinned: a change here changes every user's data order.
    #[test]
    fn the_first_permutation_of_seed_zero_is_pinned() {
        let mut rng = stream(0, Purpose::Order, 0, 0);
        let order = permutation(10, &mut rng);
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(sorted, (0..10).collect::<Vec<_>>());
        expect_test::expect!["[4, 0, 6, 7, 5, 9, 8, 2, 1, 3]"].assert_eq(&format!("{order:?}"));
    }

    #[test]
    fn below_is_in_range_and_roughly_uniform() {
        let mut rng = stream(1, Purpose::Passkey, 0, 0);
        let mut counts = [0usize; 3];
        for _ in 0..30_000 {
            counts[below(&mut rng, 3) as usize] += 1;
        }
        assert!(counts.iter().all(|&c| (9_000..11_000).contains(&c)), "{counts:?}");
        assert_eq!(below(&mut rng, 1), 0);
        let x = unit(&mut rng);
        assert!((0.0..1.0).contains(&x));
    }
}
