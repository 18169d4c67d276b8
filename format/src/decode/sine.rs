//! A branch-free sine the compiler can vectorize (the standard library's
//! calls libm one value at a time). Absolute error below 2e-7 for |x| < 10⁴,
//! which covers any sane SIREN pre-activation.

use super::kernel::Madd;

const INV_PI: f32 = 0.318_309_87;
/// 1.5·2²³: adding and subtracting it rounds to the nearest integer.
const ROUND_MAGIC: f32 = 12_582_912.0;
/// π split in three (Cody–Waite) so k·PI_A and k·PI_B are exact for |k| < 2¹².
const PI_A: f32 = 3.140625;
const PI_B: f32 = 0.000_967_502_6;
const PI_C: f32 = 1.509_958e-7;

#[inline(always)]
pub(crate) fn sin<M: Madd>(x: f32) -> f32 {
    // k = round(x/π); the low mantissa bit of `shifted` is k's parity.
    let shifted = x * INV_PI + ROUND_MAGIC;
    let k = shifted - ROUND_MAGIC;
    let r = M::madd(-k, PI_A, x);
    let r = M::madd(-k, PI_B, r);
    let r = M::madd(-k, PI_C, r);
    // Taylor series to r¹¹ on [-π/2, π/2]: error < 6e-8.
    let s = r * r;
    let p = M::madd(s, -2.505_210_8e-8, 2.755_731_9e-6);
    let p = M::madd(s, p, -1.984_127e-4);
    let p = M::madd(s, p, 8.333_333e-3);
    let p = M::madd(s, p, -0.166_666_67);
    let p = M::madd(r * s, p, r);
    // sin(x) = (-1)^k · sin(r)
    f32::from_bits(p.to_bits() ^ (shifted.to_bits() << 31))
}

/// The plain-arithmetic sine, for callers outside the SIMD kernels.
pub fn sin_approx(x: f32) -> f32 {
    sin::<super::kernel::Separate>(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_std_sin() {
        let mut worst = 0f64;
        let mut x = -10_000.0f32;
        while x < 10_000.0 {
            let e = (sin_approx(x) as f64 - (x as f64).sin()).abs();
            worst = worst.max(e);
            x += 0.0137;
        }
        assert!(worst < 2e-7, "worst error {worst}");
    }
}
