//! Choosing the next token from a row of logits: greedy, or sampled with a
//! temperature and nucleus (top-p), as transformers' `generate` does.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// How the next token is chosen.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sampling {
    /// 0: greedy (the first of the largest logits, as `argmax` picks).
    pub temperature: f64,
    /// Keep the smallest set of most likely tokens whose probability reaches `top_p` (1: all).
    pub top_p: f64,
}

impl Sampling {
    pub const GREEDY: Sampling = Sampling { temperature: 0.0, top_p: 1.0 };

    /// The next token for `logits`. NaN logits are never chosen; a row with
    /// nothing but NaN gives token 0.
    pub fn pick(&self, logits: &[f32], rng: &mut ChaCha8Rng) -> usize {
        if self.temperature <= 0.0 {
            return argmax(logits);
        }
        // Softmax of logits / T, in f64, over the finite logits.
        let max = logits.iter().copied().filter(|x| !x.is_nan()).fold(f32::NEG_INFINITY, f32::max);
        let mut probs: Vec<(usize, f64)> = logits
            .iter()
            .enumerate()
            .filter(|(_, x)| !x.is_nan())
            .map(|(i, &x)| (i, ((f64::from(x) - f64::from(max)) / self.temperature).exp()))
            .collect();
        let total: f64 = probs.iter().map(|&(_, p)| p).sum();
        if total.is_nan() || total <= 0.0 {
            return argmax(logits);
        }
        // The nucleus: most likely first, until the mass reaches top_p.
        probs.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut kept = 0;
        let mut mass = 0.0;
        for &(_, p) in &probs {
            kept += 1;
            mass += p / total;
            if mass >= self.top_p {
                break;
            }
        }
        probs.truncate(kept.max(1));
        let kept_total: f64 = probs.iter().map(|&(_, p)| p).sum();
        let mut u = rng.random::<f64>() * kept_total;
        for &(i, p) in &probs {
            if u < p {
                return i;
            }
            u -= p;
        }
        probs.last().map_or(0, |&(i, _)| i)
    }
}

/// The index of the first largest value (NaN never wins).
pub fn argmax(values: &[f32]) -> usize {
    let mut best: Option<(usize, f32)> = None;
    for (i, &v) in values.iter().enumerate() {
        if !v.is_nan() && best.is_none_or(|(_, b)| v > b) {
            best = Some((i, v));
        }
    }
    best.map_or(0, |(i, _)| i)
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn greedy_takes_the_first_largest_and_skips_nan() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        assert_eq!(Sampling::GREEDY.pick(&[0.5, 2.0, 2.0, -1.0], &mut rng), 1);
        assert_eq!(Sampling::GREEDY.pick(&[f32::NAN, 0.1, 0.0], &mut rng), 1);
    }

    #[test]
    fn top_p_keeps_the_nucleus_and_temperature_follows_the_softmax() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        // Probabilities 0.5, 0.3, 0.2 at T = 1: top-p 0.6 keeps the first two.
        let logits = [0.5f32.ln(), 0.3f32.ln(), 0.2f32.ln()];
        let nucleus = Sampling { temperature: 1.0, top_p: 0.6 };
        let mut counts = [0usize; 3];
        for _ in 0..4000 {
            counts[nucleus.pick(&logits, &mut rng)] += 1;
        }
        assert_eq!(counts[2], 0, "{counts:?}");
        // 0.5 : 0.3 renormalized is 0.625.
        let share = counts[0] as f64 / 4000.0;
        assert!((share - 0.625).abs() < 0.03, "{counts:?}");
        let all = Sampling { temperature: 1.0, top_p: 1.0 };
        let mut counts = [0usize; 3];
        for _ in 0..4000 {
            counts[all.pick(&logits, &mut rng)] += 1;
        }
        assert!((counts[2] as f64 / 4000.0 - 0.2).abs() < 0.03, "{counts:?}");
        // The same seed draws the same tokens.
        let draw = |seed| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            (0..20).map(|_| all.pick(&logits, &mut rng)).collect::<Vec<_>>()
        };
        assert_eq!(draw(3), draw(3));
    }
}
