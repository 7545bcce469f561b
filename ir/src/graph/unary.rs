//! The elementwise unary ops, declared once.
//!
//! Each row of the table gives the variant, its name (the text format, the
//! e-graph, error messages) and its f64 semantics (the reference
//! interpreter). Everything generic about a unary op (one operand, the
//! operand's type, printing, parsing, the e-graph term) comes from
//! [`Op::Unary`](super::Op::Unary). What stays per op is what only that op
//! knows: its vector-Jacobian product (`autodiff/rules.rs`) and its WGSL
//! expression (the compiler's `kernels/elementwise.rs`). ARCHITECTURE.md,
//! "How to add an op", lists the steps.

macro_rules! unary_ops {
    ($($(#[doc = $doc:literal])* $variant:ident = $name:literal, $eval:expr;)*) => {
        /// An elementwise unary op: `y[i] = f(x[i])`, same type as `x`.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum UnaryOp {
            $($(#[doc = $doc])* $variant,)*
        }

        impl UnaryOp {
            /// Every unary op, in table order.
            pub const ALL: &'static [UnaryOp] = &[$(UnaryOp::$variant,)*];

            /// The op's name in the text format and in error messages.
            pub fn name(self) -> &'static str {
                match self {
                    $(UnaryOp::$variant => $name,)*
                }
            }

            /// The op called `name`, if it is a unary op.
            pub fn from_name(name: &str) -> Option<UnaryOp> {
                match name {
                    $($name => Some(UnaryOp::$variant),)*
                    _ => None,
                }
            }

            /// `f(x)` in f64, as the reference interpreter computes it.
            pub fn eval(self, x: f64) -> f64 {
                match self {
                    $(UnaryOp::$variant => ($eval)(x),)*
                }
            }
        }
    };
}

unary_ops! {
    /// `e^x`.
    Exp = "exp", f64::exp;
    /// Natural logarithm.
    Log = "log", f64::ln;
    /// `x * sigmoid(x)`.
    Silu = "silu", |x: f64| x / (1.0 + (-x).exp());
    /// `1 / (1 + exp(-x))`.
    Sigmoid = "sigmoid", |x: f64| 1.0 / (1.0 + (-x).exp());
    /// The error function `2/√π ∫₀ˣ e^(-t²) dt` (for the exact GELU).
    Erf = "erf", libm::erf;
}

impl std::fmt::Display for UnaryOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_values_are_the_functions() {
        for &op in UnaryOp::ALL {
            assert_eq!(UnaryOp::from_name(op.name()), Some(op));
        }
        assert_eq!(UnaryOp::from_name("tanh"), None);
        assert_eq!(UnaryOp::Exp.eval(1.0), std::f64::consts::E);
        assert_eq!(UnaryOp::Log.eval(std::f64::consts::E), 1.0);
        assert!((UnaryOp::Sigmoid.eval(0.0) - 0.5).abs() < 1e-15);
        assert!((UnaryOp::Silu.eval(2.0) - 2.0 / (1.0 + (-2.0f64).exp())).abs() < 1e-15);
        // erf(1) = 0.8427007929497149 (Abramowitz & Stegun, table 7.1); odd.
        assert!((UnaryOp::Erf.eval(1.0) - 0.842_700_792_949_714_9).abs() < 1e-15);
        assert_eq!(UnaryOp::Erf.eval(-0.5), -UnaryOp::Erf.eval(0.5));
    }
}
