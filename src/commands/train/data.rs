//! The training sequences and their order: pre-tokenized `[S, T]` rows from
//! a safetensors file, a held-out tail for evaluation, and a permutation per
//! epoch drawn from the seed.

use std::cell::RefCell;

use anyhow::bail;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use weft_runtime::io::TensorFile;

use super::settings::Settings;

pub struct Sequences {
    /// Training rows, each `seq_len` ids, in file order.
    train: Vec<Vec<i64>>,
    heldout: Vec<Vec<i64>>,
    /// The last epoch's order, drawn once per epoch.
    order: RefCell<(u64, Vec<usize>)>,
}

impl Sequences {
    /// Reads `settings.data` and checks every id against the vocabulary.
    pub fn load(settings: &Settings, vocab: usize) -> anyhow::Result<Sequences> {
        let path = &settings.data;
        let ids = TensorFile::load(path)?.ints("input_ids")?;
        let [rows, t] = ids.shape[..] else {
            bail!("`input_ids` in {} has shape {:?}; expected [S, T]", path.display(), ids.shape);
        };
        if t != settings.seq_len {
            bail!(
                "`input_ids` in {} holds sequences of T = {t} tokens, but --seq-len is {}",
                path.display(),
                settings.seq_len
            );
        }
        if rows == 0 {
            bail!("{} holds no sequences (`input_ids` has shape [0, {t}])", path.display());
        }
        if let Some((position, id)) =
            ids.data.iter().enumerate().find(|(_, id)| !(0..vocab as i64).contains(id))
        {
            bail!(
                "input_ids[{}, {}] = {id} in {} is not a token id of this model (vocab_size {vocab})",
                position / t,
                position % t,
                path.display()
            );
        }
        let mut all: Vec<Vec<i64>> = ids.data.chunks(t).map(<[i64]>::to_vec).collect();
        // The last rows, a `heldout` fraction of them (at least one when there are two or more).
        let held = if settings.heldout > 0.0 && rows >= 2 {
            ((rows as f64 * settings.heldout).floor() as usize).clamp(1, rows - 1)
        } else {
            0
        };
        let heldout = all.split_off(rows - held);
        Ok(Sequences { train: all, heldout, order: RefCell::new((u64::MAX, Vec::new())) })
    }

    pub fn train_rows(&self) -> usize {
        self.train.len()
    }

    pub fn heldout_rows(&self) -> usize {
        self.heldout.len()
    }

    /// The row at position `p` of the concatenated epoch orders.
    fn row_at(&self, settings: &Settings, p: u64) -> &[i64] {
        let rows = self.train.len() as u64;
        let (epoch, index) = (p / rows, (p % rows) as usize);
        if !settings.shuffle {
            return &self.train[index];
        }
        let mut order = self.order.borrow_mut();
        if order.0 != epoch {
            let mut fresh: Vec<usize> = (0..self.train.len()).collect();
            // Epoch e's order depends on the seed and e only, so a resumed run draws the same.
            let mut rng =
                ChaCha8Rng::seed_from_u64(settings.seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            fresh.shuffle(&mut rng);
            *order = (epoch, fresh);
        }
        &self.train[order.1[index]]
    }

    /// The ids of micro-batch `j` of update `s`: positions
    /// `s·B·A + j·B .. + B` of the epoch orders.
    pub fn micro_batch(&self, settings: &Settings, s: u64, j: usize) -> Vec<i64> {
        let b = settings.batch_size as u64;
        let start = s * b * settings.grad_accum as u64 + j as u64 * b;
        (start..start + b).flat_map(|p| self.row_at(settings, p).to_vec()).collect()
    }

    /// The held-out rows in whole micro-batches of `batch` (the tail that
    /// does not fill one is left out).
    pub fn heldout_batches(&self, batch: usize) -> Vec<Vec<i64>> {
        self.heldout.chunks_exact(batch.max(1)).map(|rows| rows.concat()).collect()
    }
}
