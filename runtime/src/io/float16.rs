//! Exact conversions between 16-bit floats (IEEE half and bfloat16) and f32.
//!
//! Every f16 and bf16 value is exactly representable in f32, so widening is
//! exact; NaN payloads and signed zeros are kept. Narrowing is offered only
//! where it is exact too (`*_exact`): weft stores a weight in 16 bits when
//! that loses nothing, and never rounds one. Written here rather than taken
//! from the `half` crate because four functions do not justify a dependency
//! (and its features would unify with naga's).

/// IEEE 754 binary16: 1 sign, 5 exponent (bias 15), 10 mantissa bits.
pub fn f16_to_f32(bits: u16) -> f32 {
    let sign = u32::from(bits >> 15) << 31;
    let exponent = u32::from((bits >> 10) & 0x1f);
    let mantissa = u32::from(bits & 0x3ff);
    let magnitude = match exponent {
        // Zero or subnormal: mantissa · 2^-24, exact because mantissa < 2^10.
        0 => (mantissa as f32 * f32::from_bits(0x3380_0000)).to_bits(),
        // Infinity or NaN: all-ones exponent, payload moved to the top.
        0x1f => 0x7f80_0000 | (mantissa << 13),
        // Normal: rebias the exponent from 15 to 127.
        _ => ((exponent + 112) << 23) | (mantissa << 13),
    };
    f32::from_bits(sign | magnitude)
}

/// bfloat16 is the top half of an f32.
pub fn bf16_to_f32(bits: u16) -> f32 {
    f32::from_bits(u32::from(bits) << 16)
}

/// The bf16 whose value is exactly `value`, if there is one: the low 16
/// bits of the f32 are zero.
pub fn bf16_from_f32_exact(value: f32) -> Option<u16> {
    let bits = value.to_bits();
    (bits & 0xffff == 0).then_some((bits >> 16) as u16)
}

/// The f16 whose value is exactly `value`, if there is one (NaNs keep their
/// payload's top 10 bits, which must hold all of it).
pub fn f16_from_f32_exact(value: f32) -> Option<u16> {
    let bits = value.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let exponent = ((bits >> 23) & 0xff) as i32;
    let mantissa = bits & 0x7f_ffff;
    let candidate = if exponent == 0xff {
        0x7c00 | (mantissa >> 13) as u16
    } else if value.abs() >= f32::from_bits(0x3880_0000) {
        // Normal in f16 (at least 2^-14): rebias from 127 to 15.
        let rebiased = exponent - 112;
        if rebiased >= 0x1f {
            return None;
        }
        ((rebiased as u16) << 10) | (mantissa >> 13) as u16
    } else {
        // Zero or subnormal: value = m · 2^-24 with m < 2^10 (the product is exact).
        let m = value.abs() * f32::from_bits(0x4b80_0000);
        if m.fract() != 0.0 {
            return None;
        }
        m as u16
    };
    let narrowed = sign | candidate;
    (f16_to_f32(narrowed).to_bits() == bits).then_some(narrowed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_f16_and_bf16_narrows_back_exactly() {
        for bits in 0..=u16::MAX {
            let wide = f16_to_f32(bits);
            assert_eq!(f16_from_f32_exact(wide), Some(bits), "f16 {bits:#06x}");
            let wide = bf16_to_f32(bits);
            assert_eq!(bf16_from_f32_exact(wide), Some(bits), "bf16 {bits:#06x}");
        }
    }

    #[test]
    fn values_between_16_bit_floats_do_not_narrow() {
        // 1 + 2^-11 lies between two f16s; 1 + 2^-8 between two bf16s.
        assert_eq!(f16_from_f32_exact(1.0 + 2f32.powi(-11)), None);
        assert_eq!(bf16_from_f32_exact(1.0 + 2f32.powi(-8)), None);
        assert_eq!(bf16_from_f32_exact(1.0 + 2f32.powi(-7)), Some(0x3f81));
        // Past f16's range, and below its smallest subnormal.
        assert_eq!(f16_from_f32_exact(65536.0), None);
        assert_eq!(f16_from_f32_exact(2f32.powi(-25)), None);
        assert_eq!(f16_from_f32_exact(-2f32.powi(-24)), Some(0x8001));
        assert_eq!(f16_from_f32_exact(0.1), None);
        assert_eq!(bf16_from_f32_exact(0.1), None);
    }

    /// The value of an f16 bit pattern computed from the definition, in f64.
    fn f16_by_definition(bits: u16) -> f64 {
        let sign = if bits >> 15 == 1 { -1.0 } else { 1.0 };
        let exponent = i32::from((bits >> 10) & 0x1f);
        let mantissa = f64::from(bits & 0x3ff);
        match exponent {
            0 => sign * mantissa * 2f64.powi(-24),
            0x1f if mantissa == 0.0 => sign * f64::INFINITY,
            0x1f => f64::NAN,
            _ => sign * (1.0 + mantissa / 1024.0) * 2f64.powi(exponent - 15),
        }
    }

    #[test]
    fn every_f16_widens_exactly() {
        for bits in 0..=u16::MAX {
            let widened = f16_to_f32(bits);
            let expected = f16_by_definition(bits);
            if expected.is_nan() {
                assert!(widened.is_nan(), "{bits:#06x}");
            } else {
                assert_eq!(f64::from(widened), expected, "{bits:#06x}");
                assert_eq!(widened.is_sign_negative(), bits >> 15 == 1, "{bits:#06x}");
            }
        }
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
    }

    #[test]
    fn bf16_is_the_top_half_of_an_f32() {
        for bits in 0..=u16::MAX {
            let widened = bf16_to_f32(bits);
            assert_eq!(widened.to_bits() >> 16, u32::from(bits));
            assert_eq!(widened.to_bits() & 0xffff, 0);
        }
        assert_eq!(bf16_to_f32(0x3f80), 1.0);
        assert_eq!(bf16_to_f32(0xc0a0), -5.0);
    }
}
