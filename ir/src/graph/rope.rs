//! Rotary position embedding's angles: the one definition the interpreter,
//! the rope kernel's table, the fused attention's table and a decoder's
//! host-computed rows all use.

use std::f64::consts::PI;
use std::fmt;
use std::str::FromStr;

/// How the frequency of each channel pair derives from `theta`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RopeFreqs {
    /// Pair `i` of a `D`-wide head turns at `theta^(-2i/D)` per position.
    Default,
    /// Llama 3.1's bands (transformers' `rope_type: "llama3"`): a pair whose
    /// wavelength `2π / freq` is shorter than `original_context /
    /// high_freq_factor` keeps its frequency, one longer than
    /// `original_context / low_freq_factor` is divided by `factor`, and the
    /// ones between blend the two by `s = (original_context / wavelength −
    /// low_freq_factor) / (high_freq_factor − low_freq_factor)`.
    Llama3 { factor: f64, low_freq_factor: f64, high_freq_factor: f64, original_context: f64 },
}

impl RopeFreqs {
    /// The frequency of pair `pair` (of `head_dim / 2`).
    pub fn freq(&self, theta: f64, pair: usize, head_dim: usize) -> f64 {
        let base = theta.powf(-2.0 * pair as f64 / head_dim as f64);
        match *self {
            RopeFreqs::Default => base,
            RopeFreqs::Llama3 { factor, low_freq_factor, high_freq_factor, original_context } => {
                let wavelength = 2.0 * PI / base;
                if wavelength < original_context / high_freq_factor {
                    base
                } else if wavelength > original_context / low_freq_factor {
                    base / factor
                } else {
                    let s = (original_context / wavelength - low_freq_factor)
                        / (high_freq_factor - low_freq_factor);
                    (1.0 - s) * base / factor + s * base
                }
            }
        }
    }

    /// `, freqs=llama3:…` for a display, nothing for the default.
    pub fn suffix(&self) -> String {
        match self {
            RopeFreqs::Default => String::new(),
            other => format!(", freqs={other}"),
        }
    }
}

/// `default`, or `llama3:FACTOR:LOW:HIGH:CONTEXT` (`llama3:8.0:1.0:4.0:8192.0`):
/// one token, as the text format and the e-graph carry it.
impl fmt::Display for RopeFreqs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RopeFreqs::Default => f.write_str("default"),
            RopeFreqs::Llama3 { factor, low_freq_factor, high_freq_factor, original_context } => {
                write!(f, "llama3:{factor:?}:{low_freq_factor:?}:{high_freq_factor:?}:{original_context:?}")
            }
        }
    }
}

impl FromStr for RopeFreqs {
    type Err = String;

    /// The display form back; the Llama 3 numbers must be positive and
    /// finite, with `low < high`.
    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("{text:?} is not `default` or `llama3:FACTOR:LOW:HIGH:CONTEXT`");
        if text == "default" {
            return Ok(RopeFreqs::Default);
        }
        let numbers = text.strip_prefix("llama3:").ok_or_else(bad)?;
        let numbers: Vec<f64> =
            numbers.split(':').map(|n| n.parse::<f64>()).collect::<Result<_, _>>().map_err(|_| bad())?;
        let [factor, low_freq_factor, high_freq_factor, original_context] = numbers[..] else {
            return Err(bad());
        };
        if !numbers.iter().all(|v| v.is_finite() && *v > 0.0) || low_freq_factor >= high_freq_factor {
            return Err(format!("{text:?}: every number must be positive, and LOW below HIGH"));
        }
        Ok(RopeFreqs::Llama3 { factor, low_freq_factor, high_freq_factor, original_context })
    }
}

/// The rotary embedding a fused attention applies to q and k as it loads them:
/// [`Op::Rope`](super::Op::Rope)'s `theta`, `position_scale` and `freqs`,
/// position `p` being the index on the sequence axis (2) of q and k.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RopeParams {
    pub theta: f64,
    pub position_scale: f64,
    pub freqs: RopeFreqs,
}

impl RopeParams {
    /// RoPE with the default frequencies.
    pub fn new(theta: f64, position_scale: f64) -> Self {
        RopeParams { theta, position_scale, freqs: RopeFreqs::Default }
    }

    pub fn with_freqs(self, freqs: RopeFreqs) -> Self {
        RopeParams { freqs, ..self }
    }

    /// The rotation angle of column `j` (of `head_dim`) at sequence position
    /// `position`, in the `rotate_half` layout: column `j` pairs with
    /// `j ± D/2`, and both turn by `(p / position_scale) · freq` with the
    /// pair's [`RopeFreqs::freq`] (`theta^(−2 (j mod D/2) / D)` by default).
    pub fn angle(&self, position: usize, j: usize, head_dim: usize) -> f64 {
        let pair = j % (head_dim / 2);
        position as f64 / self.position_scale * self.freqs.freq(self.theta, pair, head_dim)
    }

    /// The kernels' table `[rows, 2, D]`: per position, the cosines of every
    /// column, then the sines signed as `rotate_half` uses them (negative in
    /// the first half), so `y[j] = x[j]·cos[j] + x[j ± D/2]·signed_sin[j]`.
    /// Computed in f64: the angles reach thousands of radians at long
    /// context, where f32 sin/cos lose digits.
    pub fn table(&self, rows: usize, head_dim: usize) -> Vec<f32> {
        (0..rows).flat_map(|p| self.rotation(p, head_dim)).map(|v| v as f32).collect()
    }

    /// One position's row of [`RopeParams::table`], `[2, D]`, in f64.
    pub fn rotation(&self, position: usize, head_dim: usize) -> Vec<f64> {
        let half = head_dim / 2;
        let cos = (0..head_dim).map(|j| self.angle(position, j, head_dim).cos());
        let signed_sin = (0..head_dim).map(|j| {
            let sin = self.angle(position, j, head_dim).sin();
            if j < half { -sin } else { sin }
        });
        cos.chain(signed_sin).collect()
    }

    /// The transposed (inverse) rotation, as autodiff's rope rule spells it.
    pub fn transposed(self) -> Self {
        RopeParams { position_scale: -self.position_scale, ..self }
    }
}

/// Displays as `rope(theta=10000.0, position_scale=1.0)`, with `, freqs=…`
/// for other than the default frequencies.
impl fmt::Display for RopeParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rope(theta={:?}, position_scale={:?}{})",
            self.theta,
            self.position_scale,
            self.freqs.suffix()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// transformers' `_compute_llama3_parameters` for theta 500, head_dim 16,
    /// factor 8, low 1, high 2, original context 16 (the `llama3` case of
    /// tests/data/make_generate_fixture.py): pair 0 (wavelength 6.28, below
    /// 16 / 2) keeps its frequency, pair 1 (13.6) is blended, pairs 2.. are
    /// divided by 8.
    #[test]
    fn llama3_frequencies_fall_in_their_bands() {
        let freqs = RopeFreqs::Llama3 {
            factor: 8.0,
            low_freq_factor: 1.0,
            high_freq_factor: 2.0,
            original_context: 16.0,
        };
        let base = |i: usize| 500f64.powf(-2.0 * i as f64 / 16.0);
        assert_eq!(freqs.freq(500.0, 0, 16), base(0));
        let s = (16.0 / (2.0 * PI / base(1)) - 1.0) / (2.0 - 1.0);
        assert!(s > 0.0 && s < 1.0, "pair 1 is in the middle band: {s}");
        assert_eq!(freqs.freq(500.0, 1, 16), (1.0 - s) * base(1) / 8.0 + s * base(1));
        for i in 2..8 {
            assert_eq!(freqs.freq(500.0, i, 16), base(i) / 8.0, "pair {i}");
        }
        assert_eq!(RopeFreqs::Default.freq(500.0, 3, 16), base(3));
    }

    #[test]
    fn freqs_round_trip_through_text_and_refuse_bad_numbers() {
        let llama3 = RopeFreqs::Llama3 {
            factor: 8.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_context: 8192.0,
        };
        for freqs in [RopeFreqs::Default, llama3] {
            assert_eq!(freqs.to_string().parse::<RopeFreqs>(), Ok(freqs));
        }
        assert_eq!(llama3.to_string(), "llama3:8.0:1.0:4.0:8192.0");
        let err = "llama3:8:4:1:8192".parse::<RopeFreqs>().unwrap_err();
        assert!(err.contains("LOW below HIGH"), "{err}");
        let err = "yarn:4".parse::<RopeFreqs>().unwrap_err();
        assert!(err.contains("is not `default` or `llama3:"), "{err}");
    }
}
