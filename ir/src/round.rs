//! Round half to even without a library call.
//!
//! `f64::round_ties_even` compiles to a call to libm's `rint` on baseline x86-64 (no SSE4.1
//! `roundsd`), which dominated the quantiser's time on large models (13 % of compiling VGG-19).
//! These give the same value for every input, sign of zero included: for `|x| < 2^52` (`2^23` for
//! `f32`), adding `2^52` leaves a number whose last place is 1, so IEEE addition itself rounds
//! to the nearest integer with ties to even, and subtracting `2^52` again is exact; larger
//! magnitudes, infinities and NaN are returned as they are (already integral or not numbers).

/// `x.round_ties_even()` for `f64`.
#[inline]
pub fn round_even(x: f64) -> f64 {
    const BIG: f64 = 4_503_599_627_370_496.0; // 2^52
    let a = x.abs();
    if a < BIG {
        ((a + BIG) - BIG).copysign(x)
    } else {
        x
    }
}

/// `x.round_ties_even()` for `f32`.
#[inline]
pub fn round_even_f32(x: f32) -> f32 {
    const BIG: f32 = 8_388_608.0; // 2^23
    let a = x.abs();
    if a < BIG {
        ((a + BIG) - BIG).copysign(x)
    } else {
        x
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // the library is the reference here
mod tests {
    use super::*;

    fn specials64() -> Vec<f64> {
        let mut v = vec![
            0.0,
            -0.0,
            0.5,
            -0.5,
            1.5,
            2.5,
            -2.5,
            0.49999999999999994,
            -0.49999999999999994,
            4_503_599_627_370_495.5,
            -4_503_599_627_370_495.5,
            4_503_599_627_370_496.0,
            2_251_799_813_685_247.5,
            9.007_199_254_740_993e15,
            f64::MAX,
            f64::MIN_POSITIVE,
            -f64::MIN_POSITIVE,
            5e-324,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ];
        let mut s: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            v.push(f64::from_bits(s));
            v.push((s >> 11) as f64 / 1024.0 - 4e12);
            v.push(((s >> 40) as f64 - 8e6) / 2.0);
        }
        v
    }

    #[test]
    fn f64_matches_the_library_bit_for_bit() {
        for x in specials64() {
            let (got, want) = (round_even(x), x.round_ties_even());
            assert!(
                got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                "{x:e}: {got:e} vs {want:e}"
            );
        }
        assert!(round_even(f64::NAN).is_nan());
    }

    #[test]
    fn f32_matches_the_library_bit_for_bit() {
        for x in specials64() {
            let x = x as f32;
            let (got, want) = (round_even_f32(x), x.round_ties_even());
            assert!(
                got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                "{x:e}: {got:e} vs {want:e}"
            );
        }
        for bits in (0..u32::MAX).step_by(9_973) {
            let x = f32::from_bits(bits);
            let (got, want) = (round_even_f32(x), x.round_ties_even());
            assert!(got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()));
        }
    }
}
