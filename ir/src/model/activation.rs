//! The MLP's gate activation, `hidden_act` in `config.json`.
//!
//! transformers names its activations in `ACT2FN`; weft implements the ones
//! LLaMA-family checkpoints use and refuses the rest by name.

use std::fmt;

use super::error::ConfigErrorKind;
use super::json::Fields;

/// The activation of `gate_proj`'s output in `act(gate) * up`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HiddenAct {
    /// `x * sigmoid(x)` (`"silu"`, `"swish"`): LLaMA's SwiGLU.
    #[default]
    Silu,
    /// The exact GELU, `x Φ(x) = 0.5 x (1 + erf(x / √2))` (`"gelu"`, `"gelu_python"`).
    Gelu,
    /// The tanh approximation of GELU, `0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³)))`
    /// (`"gelu_new"`, `"gelu_pytorch_tanh"`, `"gelu_fast"`; the last rounds
    /// √(2/π) to 10 digits, 3e-12 away).
    GeluTanh,
}

/// The `hidden_act` names weft implements, for error messages.
const SUPPORTED: &str = "\"silu\" (or \"swish\"), \"gelu\" (or \"gelu_python\"), and the tanh GELU \
                         \"gelu_pytorch_tanh\" (or \"gelu_new\", \"gelu_fast\")";

impl HiddenAct {
    /// The activation transformers calls `name`, if weft implements it.
    pub fn from_name(name: &str) -> Option<HiddenAct> {
        match name {
            "silu" | "swish" => Some(HiddenAct::Silu),
            "gelu" | "gelu_python" => Some(HiddenAct::Gelu),
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Some(HiddenAct::GeluTanh),
            _ => None,
        }
    }

    /// `f(x)` in f64, the formula the graph spells.
    pub fn eval(self, x: f64) -> f64 {
        match self {
            HiddenAct::Silu => x / (1.0 + (-x).exp()),
            HiddenAct::Gelu => 0.5 * x * (1.0 + libm::erf(x * std::f64::consts::FRAC_1_SQRT_2)),
            HiddenAct::GeluTanh => {
                let inner = GELU_TANH_SCALE * (x + GELU_TANH_CUBIC * x * x * x);
                0.5 * x * (1.0 + inner.tanh())
            }
        }
    }
}

/// √(2/π), the tanh GELU's scale.
pub const GELU_TANH_SCALE: f64 = 0.797_884_560_802_865_4;
/// The tanh GELU's cubic coefficient.
pub const GELU_TANH_CUBIC: f64 = 0.044_715;

impl fmt::Display for HiddenAct {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HiddenAct::Silu => "silu",
            HiddenAct::Gelu => "gelu",
            HiddenAct::GeluTanh => "gelu_pytorch_tanh",
        })
    }
}

/// Reads `hidden_act` (default `"silu"`, as `LlamaConfig`'s).
pub(super) fn read_hidden_act(fields: &Fields) -> Result<HiddenAct, ConfigErrorKind> {
    let Some(name) = fields.optional_str("hidden_act")? else { return Ok(HiddenAct::Silu) };
    HiddenAct::from_name(name).ok_or_else(|| ConfigErrorKind::Unsupported {
        key: "hidden_act".into(),
        value: format!("\"{name}\""),
        why: format!("weft supports {SUPPORTED}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_activations() {
        for (name, act) in [
            ("silu", HiddenAct::Silu),
            ("swish", HiddenAct::Silu),
            ("gelu", HiddenAct::Gelu),
            ("gelu_python", HiddenAct::Gelu),
            ("gelu_new", HiddenAct::GeluTanh),
            ("gelu_pytorch_tanh", HiddenAct::GeluTanh),
            ("gelu_fast", HiddenAct::GeluTanh),
        ] {
            assert_eq!(HiddenAct::from_name(name), Some(act), "{name}");
        }
        for name in ["quick_gelu", "gelu_10", "relu", "tanh", "SiLU", ""] {
            assert_eq!(HiddenAct::from_name(name), None, "{name}");
        }
    }

    #[test]
    fn gelu_tanh_matches_hand_values() {
        // 0.5·1·(1 + tanh(0.7978845608·1.044715)) = 0.5·(1 + tanh(0.833556...)) = 0.841192
        // (torch.nn.functional.gelu(1.0, approximate="tanh") prints 0.8412).
        let y = HiddenAct::GeluTanh.eval(1.0);
        assert!((y - 0.841_191_990_608_276_8).abs() < 1e-12, "{y}");
        assert_eq!(HiddenAct::GeluTanh.eval(0.0), 0.0);
        // The exact GELU: 1 · Φ(1) = 0.8413447460685429 (the normal CDF at 1).
        let y = HiddenAct::Gelu.eval(1.0);
        assert!((y - 0.841_344_746_068_542_9).abs() < 1e-12, "{y}");
        // Odd part: gelu(x) - gelu(-x) = x.
        let x = 1.7;
        assert!((HiddenAct::GeluTanh.eval(x) - HiddenAct::GeluTanh.eval(-x) - x).abs() < 1e-12);
    }
}
