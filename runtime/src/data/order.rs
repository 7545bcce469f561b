//! Which sequence each optimizer step reads.
//!
//! Training reads an endless list of positions: the concatenation of one
//! order of the S sequences per epoch, epoch `e` covering positions
//! `[e·S, (e+1)·S)`. Without shuffling an epoch's order is the file order;
//! with it, epoch `e`'s is a permutation drawn from `(seed, e)` (see
//! [`super::rng`]: ChaCha8 and a written-out Fisher–Yates, so a seed gives
//! the same order in every run and every build until that file changes).
//!
//! Optimizer step `s` (from 0) with batch `B` and gradient accumulation `A`
//! reads positions `[s·B·A, (s+1)·B·A)`; its micro-batch `j` (`j < A`) reads
//! `[s·B·A + j·B, s·B·A + (j+1)·B)`. A batch may straddle two epochs. Since
//! the positions are a function of the step alone, a resumed run needs only
//! the step, the seed and the shuffle flag to read what it would have read.

use std::ops::Range;

use super::DataError;
use super::rng::{self, Purpose};

/// The order of `sequences` sequences across epochs; keeps the last epoch's
/// permutation, since consecutive steps mostly read the same epoch.
#[derive(Clone, Debug)]
pub struct Order {
    sequences: usize,
    shuffle: bool,
    seed: u64,
    cached: Option<(u64, Vec<usize>)>,
}

impl Order {
    pub fn new(sequences: usize, shuffle: bool, seed: u64) -> Result<Order, DataError> {
        if sequences == 0 {
            return Err(DataError::NoSequences);
        }
        Ok(Order { sequences, shuffle, seed, cached: None })
    }

    pub fn sequences(&self) -> usize {
        self.sequences
    }

    /// Epoch `epoch`'s order of the sequences.
    pub fn epoch(&mut self, epoch: u64) -> &[usize] {
        if self.cached.as_ref().is_none_or(|(e, _)| *e != epoch) {
            let order = if self.shuffle {
                let mut rng = rng::stream(self.seed, Purpose::Order, epoch, self.sequences as u64);
                rng::permutation(self.sequences, &mut rng)
            } else {
                (0..self.sequences).collect()
            };
            self.cached = Some((epoch, order));
        }
        self.cached.as_ref().map_or(&[], |(_, order)| order.as_slice())
    }

    /// The sequence at `position` of the endless list.
    pub fn at(&mut self, position: u64) -> usize {
        let s = self.sequences as u64;
        self.epoch(position / s)[(position % s) as usize]
    }

    /// The sequences at `positions`.
    pub fn positions(&mut self, positions: Range<u64>) -> Vec<usize> {
        positions.map(|p| self.at(p)).collect()
    }
}

/// The positions optimizer step `step` reads: `[s·B·A, (s+1)·B·A)`.
pub fn step_positions(step: u64, batch: usize, accum: usize) -> Result<Range<u64>, DataError> {
    let per_step = per_step(batch, accum)?;
    let overflow = || DataError::PositionOverflow { step, per_step };
    let start = step.checked_mul(per_step).ok_or_else(overflow)?;
    Ok(start..start.checked_add(per_step).ok_or_else(overflow)?)
}

/// The positions micro-batch `micro` of step `step` reads: `[s·B·A + j·B, s·B·A + (j+1)·B)`.
pub fn micro_positions(step: u64, batch: usize, accum: usize, micro: usize) -> Result<Range<u64>, DataError> {
    if micro >= accum {
        return Err(DataError::MicroBatch { micro, accum });
    }
    let step_range = step_positions(step, batch, accum)?;
    // Within the step's range, which did not overflow.
    let start = step_range.start + (micro * batch) as u64;
    Ok(start..start + batch as u64)
}

/// The sequences micro-batch `micro` of step `step` reads, in batch order.
pub fn batch_rows(
    order: &mut Order,
    step: u64,
    batch: usize,
    accum: usize,
    micro: usize,
) -> Result<Vec<usize>, DataError> {
    Ok(order.positions(micro_positions(step, batch, accum, micro)?))
}

fn per_step(batch: usize, accum: usize) -> Result<u64, DataError> {
    if batch == 0 {
        return Err(DataError::ZeroBatch { what: "the batch size" });
    }
    if accum == 0 {
        return Err(DataError::ZeroBatch { what: "the gradient accumulation" });
    }
    (batch as u64)
        .checked_mul(accum as u64)
        .ok_or(DataError::PositionOverflow { step: 0, per_step: u64::MAX })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_shuffle_positions_run_through_the_file_order() {
        let mut order = Order::new(5, false, 0).unwrap();
        assert_eq!(order.epoch(3), [0, 1, 2, 3, 4]);
        // B = 2, A = 2: step 1 reads positions 4..8, straddling epochs 0 and 1.
        assert_eq!(step_positions(1, 2, 2).unwrap(), 4..8);
        assert_eq!(batch_rows(&mut order, 1, 2, 2, 0).unwrap(), [4, 0]);
        assert_eq!(batch_rows(&mut order, 1, 2, 2, 1).unwrap(), [1, 2]);
    }

    #[test]
    fn shuffled_epochs_are_permutations_fixed_by_seed_and_epoch() {
        let mut order = Order::new(50, true, 7).unwrap();
        let e0 = order.epoch(0).to_vec();
        let e1 = order.epoch(1).to_vec();
        let mut sorted = e0.clone();
        sorted.sort();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
        assert_ne!(e0, e1, "each epoch has its own order");
        assert_ne!(e0, (0..50).collect::<Vec<_>>());
        // Another Order (another run) with the same seed agrees; another seed does not.
        let mut again = Order::new(50, true, 7).unwrap();
        assert_eq!(again.epoch(1), e1);
        assert_eq!(again.epoch(0), e0);
        assert_ne!(Order::new(50, true, 8).unwrap().epoch(0), e0);
        // Positions index the concatenated epochs.
        assert_eq!(order.at(0), e0[0]);
        assert_eq!(order.at(53), e1[3]);
    }

    #[test]
    fn micro_batches_tile_their_step() {
        let mut order = Order::new(7, true, 1).unwrap();
        let (batch, accum) = (3, 2);
        for step in 0..5 {
            let whole = order.positions(step_positions(step, batch, accum).unwrap());
            let parts: Vec<usize> =
                (0..accum).flat_map(|j| batch_rows(&mut order, step, batch, accum, j).unwrap()).collect();
            assert_eq!(whole, parts);
        }
        assert_eq!(micro_positions(2, 3, 2, 1).unwrap(), 15..18);
    }

    #[test]
    fn bad_arguments_are_errors() {
        assert!(matches!(Order::new(0, true, 0), Err(DataError::NoSequences)));
        let mut order = Order::new(3, false, 0).unwrap();
        let err = batch_rows(&mut order, 0, 2, 2, 2).unwrap_err().to_string();
        assert_eq!(err, "micro-batch 2 is out of range: a step accumulates 2 micro-batches");
        assert_eq!(step_positions(0, 0, 1).unwrap_err().to_string(), "the batch size must be at least 1");
        assert!(step_positions(u64::MAX, 2, 1).is_err());
        assert!(step_positions(u64::MAX / 2, 2, 1).is_err(), "the end of the range overflows");
    }
}
