//! The problem the tuner times: causal attention at a representative size,
//! its inputs, and the checks every candidate's outputs must pass.

use std::collections::HashMap;
use std::fmt;

use weft_compiler::FusedAttentionDesc;
use weft_ir::interp::{Tensor, masked_attention};
use weft_ir::{Mask, MaskExpr};

use super::error::{CandidateError, TuneError};

/// The largest error of `o` allowed against the f64 interpreter, relative to
/// the largest magnitude of the reference (the GPU tests' tolerance).
pub const FORWARD_TOLERANCE: f64 = 1e-4;
/// The largest error of `dq`, `dk`, `dv` allowed against the default
/// configuration's (itself checked by the test suite against an f64
/// backward): two f32 results within `1e-4` of the truth each.
pub const GRADIENT_TOLERANCE: f64 = 5e-4;

/// Causal attention of `q, k, v: f32 [batch, heads, seq_len, head_dim]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TuneProblem {
    pub batch: usize,
    pub heads: usize,
    pub seq_len: usize,
    pub head_dim: usize,
}

impl fmt::Display for TuneProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "causal B={} H={} N={} D={}", self.batch, self.heads, self.seq_len, self.head_dim)
    }
}

impl TuneProblem {
    /// The fused attention node: every head causal, scale `1 / sqrt(D)`.
    pub fn desc(&self) -> Result<FusedAttentionDesc, TuneError> {
        let mask = Mask::new(MaskExpr::Causal).map_err(|message| TuneError::Problem {
            problem: self.to_string(),
            message: format!("causal mask: {message}"),
        })?;
        let desc = FusedAttentionDesc {
            name: "tune-causal".to_string(),
            batch: self.batch,
            n_heads: self.heads,
            seq_len: self.seq_len,
            head_dim: self.head_dim,
            heads: vec![(0..self.heads, mask)],
            scale: 1.0 / (self.head_dim as f32).sqrt(),
            rope: None,
        };
        desc.validate()
            .map_err(|e| TuneError::Problem { problem: self.to_string(), message: e.to_string() })?;
        Ok(desc)
    }

    fn len(&self) -> usize {
        self.batch * self.heads * self.seq_len * self.head_dim
    }

    /// `q`, `k`, `v` and `do`: fixed pseudo-random values in [-1, 1).
    pub fn inputs(&self) -> HashMap<String, Vec<f32>> {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            // xorshift64*: deterministic, and no dependency for a few numbers.
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let bits = state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40;
            (bits as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        };
        ["q", "k", "v", "do"]
            .iter()
            .map(|name| (name.to_string(), (0..self.len()).map(|_| next()).collect()))
            .collect()
    }

    /// The forward output `o` computed by the f64 reference interpreter.
    pub fn reference_output(&self, inputs: &HashMap<String, Vec<f32>>) -> Result<Vec<f64>, TuneError> {
        let shape = vec![self.batch, self.heads, self.seq_len, self.head_dim];
        let fail = |message: String| TuneError::Problem { problem: self.to_string(), message };
        let tensor = |name: &str| -> Result<Tensor, TuneError> {
            let data = inputs.get(name).ok_or_else(|| fail(format!("no input `{name}`")))?;
            Tensor::new(shape.clone(), data.iter().map(|&x| f64::from(x)).collect())
                .map_err(|e| fail(e.to_string()))
        };
        let masks = vec![MaskExpr::Causal; self.heads];
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let o = masked_attention(&tensor("q")?, &tensor("k")?, &tensor("v")?, &masks, scale)
            .map_err(|e| fail(e.to_string()))?;
        Ok(o.into_data())
    }
}

/// max |got - want| / max |want|; infinite on a NaN or a length mismatch.
pub fn rel_error(got: &[f32], want: impl ExactSizeIterator<Item = f64> + Clone) -> f64 {
    if got.len() != want.len() {
        return f64::INFINITY;
    }
    let scale = want.clone().fold(0.0f64, |m, x| m.max(x.abs())).max(f64::MIN_POSITIVE);
    let mut worst = 0.0f64;
    for (g, w) in got.iter().zip(want) {
        let e = (f64::from(*g) - w).abs();
        if e.is_nan() {
            return f64::INFINITY;
        }
        worst = worst.max(e);
    }
    worst / scale
}

/// What a candidate's outputs must match.
pub struct Expected {
    /// `o` from the f64 interpreter.
    pub o: Vec<f64>,
    /// `dq`, `dk`, `dv` from the default configuration, once it has run.
    pub gradients: Option<HashMap<String, Vec<f32>>>,
}

impl Expected {
    /// The worst relative error of `outputs`, or why they are wrong.
    pub fn check(&self, outputs: &HashMap<String, Vec<f32>>) -> Result<f64, CandidateError> {
        let o = outputs.get("o").ok_or(CandidateError::MissingOutput("o"))?;
        let err_o = rel_error(o, self.o.iter().copied());
        if err_o.is_nan() || err_o > FORWARD_TOLERANCE {
            return Err(CandidateError::Inaccurate {
                output: "o",
                against: "the f64 interpreter",
                error: err_o,
                tolerance: FORWARD_TOLERANCE,
            });
        }
        let mut worst = err_o;
        if let Some(gradients) = &self.gradients {
            for name in ["dq", "dk", "dv"] {
                let (Some(got), Some(want)) = (outputs.get(name), gradients.get(name)) else {
                    return Err(CandidateError::MissingOutput(name));
                };
                let err = rel_error(got, want.iter().map(|&x| f64::from(x)));
                if err.is_nan() || err > GRADIENT_TOLERANCE {
                    return Err(CandidateError::Inaccurate {
                        output: name,
                        against: "the default configuration's",
                        error: err,
                        tolerance: GRADIENT_TOLERANCE,
                    });
                }
                worst = worst.max(err);
            }
        }
        Ok(worst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_are_deterministic_and_in_range() {
        let p = TuneProblem { batch: 1, heads: 2, seq_len: 8, head_dim: 4 };
        let a = p.inputs();
        assert_eq!(a, p.inputs());
        assert_eq!(a["q"].len(), 64);
        assert!(a.values().flatten().all(|x| (-1.0..1.0).contains(x)));
        assert_ne!(a["q"], a["k"]);
        assert!(p.desc().is_ok());
    }

    #[test]
    fn a_wrong_or_missing_output_is_a_typed_failure() {
        let expected = Expected { o: vec![1.0, 2.0], gradients: None };
        let outputs = |o: Vec<f32>| HashMap::from([("o".to_string(), o)]);
        assert_eq!(expected.check(&outputs(vec![1.0, 2.0])), Ok(0.0));
        let wrong = expected.check(&outputs(vec![1.0, 3.0])).unwrap_err();
        assert!(
            matches!(wrong, CandidateError::Inaccurate { output: "o", against: "the f64 interpreter", .. }),
            "{wrong:?}"
        );
        assert!(wrong.to_string().starts_with("`o` differs from the f64 interpreter by 5.0e-1"), "{wrong}");
        assert_eq!(expected.check(&HashMap::new()), Err(CandidateError::MissingOutput("o")));
    }

    #[test]
    fn errors_are_relative_and_nan_fails() {
        assert_eq!(rel_error(&[1.0, 2.0], [1.0, 4.0].into_iter()), 0.5);
        assert!(rel_error(&[f32::NAN], [1.0].into_iter()).is_infinite());
        assert!(rel_error(&[1.0], [1.0, 2.0].into_iter()).is_infinite());
    }
}
