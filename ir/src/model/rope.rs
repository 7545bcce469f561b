//! RoPE settings, read from either of the two forms `config.json` carries.
//!
//! - The older form, in Llama-2 checkpoints: top-level `rope_theta` (default
//!   10000) and `rope_scaling`, either `null` or
//!   `{"type" or "rope_type": "linear", "factor": f}`.
//! - The newer form current transformers writes: `rope_parameters` =
//!   `{"rope_type": "default" | "linear", "factor": f, "rope_theta": t}`.
//!
//! Either may also give Llama 3.1's `"rope_type": "llama3"` with `factor`,
//! `low_freq_factor`, `high_freq_factor` and
//! `original_max_position_embeddings`: per-frequency scaling
//! ([`RopeFreqs::Llama3`]), with positions as they are.
//!
//! Both normalize to one [`Rope`]. A file that gives both forms is accepted
//! only when they agree, so weft never silently picks one.

use std::fmt;

use super::error::ConfigErrorKind;
use super::json::Fields;
use crate::graph::{RopeFreqs, RopeParams};

/// transformers' default when a config gives no `rope_theta`.
pub const DEFAULT_ROPE_THETA: f64 = 10000.0;

const SUPPORTED: &str =
    "\"default\" (no scaling), \"linear\" (position interpolation), \"llama3\" (Llama 3.1's frequency bands)";

/// Rotary position embedding: channel pair `i` of a `head_dim`-wide head turns
/// by `(p / position_scale) · theta^(-2i / head_dim)` at position `p`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rope {
    pub theta: f64,
    pub scaling: RopeScaling,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RopeScaling {
    None,
    /// Linear position interpolation (LongLoRA, Chen et al. 2023): positions
    /// are divided by `factor`, e.g. target length / original length.
    Linear {
        factor: f64,
    },
    /// Llama 3.1's frequency bands (see [`RopeFreqs::Llama3`]).
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max_position_embeddings: f64,
    },
}

impl Rope {
    /// The divisor of positions, as `Op::Rope { position_scale }` takes it.
    pub fn position_scale(&self) -> f64 {
        match self.scaling {
            RopeScaling::None | RopeScaling::Llama3 { .. } => 1.0,
            RopeScaling::Linear { factor } => factor,
        }
    }

    /// The frequencies of the channel pairs, as `Op::Rope { freqs }` takes them.
    pub fn freqs(&self) -> RopeFreqs {
        match self.scaling {
            RopeScaling::None | RopeScaling::Linear { .. } => RopeFreqs::Default,
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings,
            } => RopeFreqs::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_context: original_max_position_embeddings,
            },
        }
    }

    /// Everything a rope op or a rope table needs.
    pub fn params(&self) -> RopeParams {
        RopeParams::new(self.theta, self.position_scale()).with_freqs(self.freqs())
    }
}

impl fmt::Display for RopeScaling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RopeScaling::None => f.write_str("no scaling"),
            RopeScaling::Linear { factor } => write!(f, "linear scaling by {factor:?}"),
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings,
            } => {
                write!(
                    f,
                    "llama3 scaling (factor {factor:?}, low_freq_factor {low_freq_factor:?}, high_freq_factor \
                     {high_freq_factor:?}, original_max_position_embeddings {original_max_position_embeddings:?})"
                )
            }
        }
    }
}

/// Reads the RoPE settings from the top level of `config.json`.
pub(super) fn read_rope(config: &Fields) -> Result<Rope, ConfigErrorKind> {
    let top_theta = config.optional_positive("rope_theta")?;
    let legacy_scaling = config.optional_object("rope_scaling")?.map(|s| read_scaling(&s)).transpose()?;
    let Some(parameters) = config.optional_object("rope_parameters")? else {
        return Ok(Rope {
            theta: top_theta.unwrap_or(DEFAULT_ROPE_THETA),
            scaling: legacy_scaling.unwrap_or(RopeScaling::None),
        });
    };
    let scaling = read_scaling(&parameters)?;
    let theta = parameters.optional_positive("rope_theta")?;
    if let (Some(top), Some(inner)) = (top_theta, theta)
        && top != inner
    {
        return Err(ConfigErrorKind::Conflict {
            first: "rope_theta".into(),
            first_value: format!("{top:?}"),
            second: parameters.path("rope_theta"),
            second_value: format!("{inner:?}"),
        });
    }
    if let Some(legacy) = legacy_scaling
        && legacy != scaling
    {
        return Err(ConfigErrorKind::Conflict {
            first: "rope_scaling".into(),
            first_value: legacy.to_string(),
            second: "rope_parameters".into(),
            second_value: scaling.to_string(),
        });
    }
    Ok(Rope { theta: theta.or(top_theta).unwrap_or(DEFAULT_ROPE_THETA), scaling })
}

/// Reads `rope_scaling` or `rope_parameters`. Both spellings of the type key
/// occur in the wild (transformers 4.4x writes both), so either is accepted.
fn read_scaling(object: &Fields) -> Result<RopeScaling, ConfigErrorKind> {
    let rope_type = object.optional_str("rope_type")?;
    let legacy_type = object.optional_str("type")?;
    let (key, rope_type) = match (rope_type, legacy_type) {
        (Some(a), Some(b)) if a != b => {
            return Err(ConfigErrorKind::Conflict {
                first: object.path("type"),
                first_value: format!("\"{b}\""),
                second: object.path("rope_type"),
                second_value: format!("\"{a}\""),
            });
        }
        (Some(t), _) => ("rope_type", t),
        (None, Some(t)) => ("type", t),
        (None, None) => {
            return Err(ConfigErrorKind::MissingRopeType { key: object.name().into(), supported: SUPPORTED });
        }
    };
    match rope_type {
        "default" => Ok(RopeScaling::None),
        "linear" => Ok(RopeScaling::Linear { factor: object.positive("factor")? }),
        "llama3" => {
            let (low, high) = (object.positive("low_freq_factor")?, object.positive("high_freq_factor")?);
            if low >= high {
                // The middle band's blend divides by high - low.
                return Err(ConfigErrorKind::NotBelow {
                    key: object.path("low_freq_factor"),
                    value: low,
                    bound: object.path("high_freq_factor"),
                    bound_value: high,
                });
            }
            Ok(RopeScaling::Llama3 {
                factor: object.positive("factor")?,
                low_freq_factor: low,
                high_freq_factor: high,
                original_max_position_embeddings: object.positive("original_max_position_embeddings")?,
            })
        }
        other => Err(ConfigErrorKind::UnsupportedRope {
            key: object.path(key),
            rope_type: other.into(),
            supported: SUPPORTED,
        }),
    }
}
