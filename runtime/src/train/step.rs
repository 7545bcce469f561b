//! A compiled training plan on the device: weights, gradients and AdamW's
//! moments stay in device buffers across steps; per micro-batch only token
//! ids go up and the loss comes down, per update the `hyper` scalars go up
//! and the gradient norm comes down.

use std::collections::HashMap;
use std::time::Duration;

use weft_compiler::{Compiled, UpdatePlan};

use super::TrainError;
use crate::executor::{Executor, Prepared};
use crate::host::HostValues;

/// What one optimizer update reports.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UpdateStats {
    /// The mean loss over the update's micro-batches, before the update.
    pub loss: f64,
    /// The global gradient norm, before clipping.
    pub grad_norm: f64,
    /// Wall time of the micro-steps and the update.
    pub elapsed: Duration,
}

/// A training plan prepared on one executor.
pub struct TrainingStep {
    prepared: Prepared,
    update: UpdatePlan,
    /// The cotangent input that seeds the loss (`dloss`).
    loss_seed: String,
    batch: usize,
    seq_len: usize,
}

impl TrainingStep {
    /// Prepares `compiled`, which must be a training plan with its update
    /// (`CompileOptions::update`) of a model graph with `input_ids`,
    /// `targets` and a `loss` output, for micro-batches of `[batch, seq_len]`.
    pub fn new(
        executor: &mut Executor,
        compiled: &Compiled,
        batch: usize,
        seq_len: usize,
    ) -> Result<TrainingStep, TrainError> {
        let (Some(update), Some(gradients)) = (&compiled.update, &compiled.gradients) else {
            return Err(TrainError::Plan("the plan has no optimizer update".into()));
        };
        let loss_seed = gradients
            .seeds
            .iter()
            .find(|(output, _)| output == "loss")
            .map(|(_, seed)| seed.clone())
            .ok_or_else(|| TrainError::Plan("the training graph has no `loss` output".into()))?;
        let prepared = executor.prepare(&compiled.plan)?;
        Ok(TrainingStep { prepared, update: update.clone(), loss_seed, batch, seq_len })
    }

    /// The update's parameters and buffers.
    pub fn update_plan(&self) -> &UpdatePlan {
        &self.update
    }

    /// Device memory of the plan's buffers, optimizer state included.
    pub fn device_bytes(&self) -> u64 {
        self.prepared.total_bytes()
    }

    /// Uploads every weight (trained and frozen) and the loss seed for
    /// `micro_batches` per update (each micro-batch's gradient is scaled by
    /// its share, so the sum is the gradient of the mean loss).
    pub fn upload_weights(
        &self,
        executor: &Executor,
        weights: &HashMap<String, HostValues>,
        micro_batches: usize,
    ) -> Result<(), TrainError> {
        // Borrowed, not copied: a 7B model's weights are tens of GB on the host.
        executor.upload_some(&self.prepared, weights)?;
        let seed = HashMap::from([(self.loss_seed.clone(), vec![1.0 / micro_batches.max(1) as f32])]);
        executor.upload_some(&self.prepared, &seed)?;
        Ok(())
    }

    /// Runs one micro-batch, `ids` holding `batch × seq_len` token ids: the
    /// forward pass, the loss against the next ids, the backward pass and,
    /// with accumulation, the sum of gradients. Returns the micro-batch loss.
    pub fn micro_step(
        &self,
        executor: &Executor,
        ids: &[i64],
        hyper: Vec<f32>,
    ) -> Result<(f64, Duration), TrainError> {
        let t = self.seq_len;
        if ids.len() != self.batch * t {
            return Err(TrainError::Plan(format!(
                "a micro-batch holds {} ids, not batch × seq_len = {} × {t}",
                ids.len(),
                self.batch
            )));
        }
        // targets[b, i] = ids[b, i + 1]; each sequence's last position predicts nothing.
        let targets = (0..ids.len()).map(|i| if i % t + 1 < t { ids[i + 1] } else { -100 }).collect();
        let inputs = HashMap::from([
            ("input_ids".to_string(), HostValues::I64(ids.to_vec())),
            ("targets".to_string(), HostValues::I64(targets)),
            (self.update.hyper.clone(), HostValues::F32(hyper)),
        ]);
        executor.upload_some(&self.prepared, &inputs)?;
        let elapsed = executor.execute_range(&self.prepared, self.update.micro_step.clone())?;
        let loss = executor.read_f32(&self.prepared, "loss")?;
        Ok((loss.first().copied().unwrap_or(f32::NAN) as f64, elapsed))
    }

    /// Runs the update: the gradient norm, clipping and AdamW with the last
    /// uploaded `hyper`. Returns the norm before clipping.
    pub fn apply_update(&self, executor: &Executor) -> Result<(f64, Duration), TrainError> {
        let elapsed = executor.execute_range(&self.prepared, self.update.update.clone())?;
        let stats = executor.read_f32(&self.prepared, &self.update.stats)?;
        Ok((stats.first().copied().unwrap_or(f32::NAN) as f64, elapsed))
    }

    /// One optimizer update over `micro_batches` (each `batch × seq_len`
    /// ids), with the update's `hyper` for its first micro-batch (`keep`
    /// off) and the rest: see [`crate::train::AdamW::hyper`].
    pub fn step(
        &self,
        executor: &Executor,
        micro_batches: &[Vec<i64>],
        hyper: impl Fn(bool) -> Vec<f32>,
    ) -> Result<UpdateStats, TrainError> {
        let mut loss = 0.0;
        let mut elapsed = Duration::ZERO;
        for (j, ids) in micro_batches.iter().enumerate() {
            let (l, t) = self.micro_step(executor, ids, hyper(j > 0))?;
            loss += l;
            elapsed += t;
        }
        let (grad_norm, t) = self.apply_update(executor)?;
        elapsed += t;
        Ok(UpdateStats { loss: loss / micro_batches.len().max(1) as f64, grad_norm, elapsed })
    }

    /// Reads a weight or state buffer back by name (checkpoints).
    pub fn read(&self, executor: &Executor, name: &str) -> Result<Vec<f32>, TrainError> {
        Ok(executor.read_f32(&self.prepared, name)?)
    }

    /// Restores a weight or state buffer by name (resuming).
    pub fn write(&self, executor: &Executor, name: &str, values: &[f32]) -> Result<(), TrainError> {
        Ok(executor.write_f32(&self.prepared, name, values)?)
    }
}
