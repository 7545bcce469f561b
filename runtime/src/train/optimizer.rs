//! AdamW and its learning-rate schedule, as the host drives them: the
//! run-time scalars each update's kernels read (`weft_compiler::Hyper`).
//!
//! The semantics are torch's `AdamW` (decoupled weight decay, bias-corrected
//! moments, ε added after the square root) with transformers'
//! `constant_with_warmup` schedule and torch's `clip_grad_norm_`, so a run
//! can be compared step by step with transformers' `Trainer`.

use serde::{Deserialize, Serialize};
use weft_compiler::Hyper;

/// The optimizer's settings: LongLoRA's recipe by default.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdamW {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// Updates 0, 1, … use `lr · min(1, s / warmup_steps)`.
    pub warmup_steps: u64,
    /// Clip the global gradient norm to this; 0 disables clipping.
    pub max_grad_norm: f64,
}

impl Default for AdamW {
    fn default() -> Self {
        AdamW {
            lr: 2e-5,
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            weight_decay: 0.0,
            warmup_steps: 20,
            max_grad_norm: 1.0,
        }
    }
}

impl AdamW {
    /// The learning rate of update `s` (0-based): transformers'
    /// `get_constant_schedule_with_warmup`.
    pub fn lr_at(&self, s: u64) -> f64 {
        if s < self.warmup_steps { self.lr * s as f64 / self.warmup_steps as f64 } else { self.lr }
    }

    /// The `hyper` buffer of update `s` (0-based), computed in f64 as torch
    /// computes its Python-float scalars; `keep_accumulated` is false on an
    /// update's first micro-batch.
    pub fn hyper(&self, s: u64, keep_accumulated: bool) -> Vec<f32> {
        let lr = self.lr_at(s);
        let t = (s + 1) as i32;
        let bias_correction1 = 1.0 - self.beta1.powi(t);
        let bias_correction2 = 1.0 - self.beta2.powi(t);
        let mut values = vec![0f32; Hyper::COUNT];
        let mut set = |slot: Hyper, value: f64| values[slot as usize] = value as f32;
        set(Hyper::Decay, 1.0 - lr * self.weight_decay);
        set(Hyper::OneMinusBeta1, 1.0 - self.beta1);
        set(Hyper::Beta2, self.beta2);
        set(Hyper::OneMinusBeta2, 1.0 - self.beta2);
        set(Hyper::Eps, self.eps);
        set(Hyper::StepSize, lr / bias_correction1);
        set(Hyper::BiasCorrection2Sqrt, bias_correction2.sqrt());
        set(Hyper::MaxGradNorm, self.max_grad_norm);
        set(Hyper::KeepAccumulated, if keep_accumulated { 1.0 } else { 0.0 });
        values
    }

    /// Checks the settings: finite, betas in [0, 1), ε > 0, non-negative rest.
    pub fn validate(&self) -> Result<(), String> {
        let finite = [self.lr, self.beta1, self.beta2, self.eps, self.weight_decay, self.max_grad_norm];
        if finite.iter().any(|v| !v.is_finite()) {
            return Err("every optimizer setting must be a finite number".into());
        }
        for (name, beta) in [("adam-beta1", self.beta1), ("adam-beta2", self.beta2)] {
            if !(0.0..1.0).contains(&beta) {
                return Err(format!("{name} = {beta} must be in [0, 1)"));
            }
        }
        if self.eps <= 0.0 {
            return Err(format!("adam-eps = {} must be positive", self.eps));
        }
        for (name, value) in
            [("lr", self.lr), ("weight-decay", self.weight_decay), ("max-grad-norm", self.max_grad_norm)]
        {
            if value < 0.0 {
                return Err(format!("{name} = {value} must not be negative"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_is_transformers_constant_with_warmup() {
        let adam = AdamW { lr: 1e-3, warmup_steps: 4, ..AdamW::default() };
        let lrs: Vec<f64> = (0..6).map(|s| adam.lr_at(s)).collect();
        assert_eq!(lrs, [0.0, 2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3]);
        let none = AdamW { warmup_steps: 0, ..adam };
        assert_eq!(none.lr_at(0), 1e-3);
    }

    #[test]
    fn hyper_holds_torch_scalars() {
        let adam = AdamW { lr: 1e-3, warmup_steps: 0, weight_decay: 0.1, ..AdamW::default() };
        let h = adam.hyper(1, true);
        assert_eq!(h.len(), Hyper::COUNT);
        assert_eq!(h[Hyper::Decay as usize], (1.0 - 1e-4) as f32);
        assert_eq!(h[Hyper::StepSize as usize], (1e-3 / (1.0 - 0.9f64 * 0.9)) as f32);
        assert_eq!(h[Hyper::BiasCorrection2Sqrt as usize], (1.0 - 0.95f64 * 0.95).sqrt() as f32);
        assert_eq!(h[Hyper::KeepAccumulated as usize], 1.0);
        assert_eq!(adam.hyper(0, false)[Hyper::KeepAccumulated as usize], 0.0);
    }

    #[test]
    fn bad_settings_are_named() {
        let bad = AdamW { beta2: 1.0, ..AdamW::default() };
        assert_eq!(bad.validate().unwrap_err(), "adam-beta2 = 1 must be in [0, 1)");
        let bad = AdamW { eps: 0.0, ..AdamW::default() };
        assert_eq!(bad.validate().unwrap_err(), "adam-eps = 0 must be positive");
        let bad = AdamW { lr: f64::NAN, ..AdamW::default() };
        assert!(bad.validate().unwrap_err().contains("finite"));
    }
}
