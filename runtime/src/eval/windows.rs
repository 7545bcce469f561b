//! Perplexity over sliding windows, as LongLoRA's `eval.py` measures it.
//!
//! The data is one token stream. Windows of `len` tokens start at 0,
//! `stride`, 2·`stride`, … while they fit; each scores its `len − 1`
//! next-token predictions (the mean cross-entropy, the last position
//! predicting nothing), and the perplexity is `exp` of the mean over windows
//! of each window's mean loss. (LongLoRA's loop also drops the last start
//! and any start at `len(data) − len`; here every window that fits counts.)

use super::EvalError;

/// The start of every window of `len` tokens in a stream of `tokens`: 0,
/// `stride`, … while `start + len ≤ tokens`. Empty when the stream is shorter than one window.
pub fn window_starts(tokens: usize, len: usize, stride: usize) -> Result<Vec<usize>, EvalError> {
    if stride == 0 {
        return Err(EvalError::ZeroStride);
    }
    if len < 2 {
        return Err(EvalError::WindowTooShort { len });
    }
    match tokens.checked_sub(len) {
        None => Ok(Vec::new()),
        Some(last) => Ok((0..=last).step_by(stride).collect()),
    }
}

/// The targets of a window as `weft forward --loss` sets them: position `i`
/// predicts `window[i + 1]`, and the last position is ignored (-100).
pub fn next_token_targets(window: &[u32]) -> Vec<i64> {
    let next = window.iter().skip(1).map(|&id| i64::from(id));
    next.chain((!window.is_empty()).then_some(-100)).collect()
}

/// The running mean of window losses, in f64.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct MeanLoss {
    sum: f64,
    windows: usize,
}

impl MeanLoss {
    pub fn add(&mut self, window_loss: f64) {
        self.sum += window_loss;
        self.windows += 1;
    }

    pub fn windows(&self) -> usize {
        self.windows
    }

    /// The mean window loss; `None` before any window.
    pub fn mean(&self) -> Option<f64> {
        (self.windows > 0).then(|| self.sum / self.windows as f64)
    }

    /// `exp(mean)`; `None` before any window.
    pub fn perplexity(&self) -> Option<f64> {
        self.mean().map(f64::exp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_start_every_stride_while_they_fit() {
        assert_eq!(window_starts(10, 4, 4).unwrap(), [0, 4]);
        assert_eq!(window_starts(10, 4, 3).unwrap(), [0, 3, 6]);
        assert_eq!(window_starts(8, 4, 4).unwrap(), [0, 4]);
        assert_eq!(window_starts(4, 4, 100).unwrap(), [0]);
        assert!(window_starts(3, 4, 1).unwrap().is_empty());
        assert!(matches!(window_starts(10, 4, 0), Err(EvalError::ZeroStride)));
        assert!(matches!(window_starts(10, 1, 1), Err(EvalError::WindowTooShort { len: 1 })));
    }

    #[test]
    fn targets_are_the_next_ids_and_the_last_is_ignored() {
        assert_eq!(next_token_targets(&[5, 6, 7]), [6, 7, -100]);
        assert!(next_token_targets(&[]).is_empty());
    }

    #[test]
    fn perplexity_is_exp_of_the_mean_window_loss() {
        let mut mean = MeanLoss::default();
        assert_eq!(mean.perplexity(), None);
        mean.add(1.0);
        mean.add(3.0);
        assert_eq!(mean.windows(), 2);
        assert!((mean.perplexity().unwrap() - 2f64.exp()).abs() < 1e-12);
    }
}
