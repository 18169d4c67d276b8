// sin_approx: the CPU decoder's sine (format/src/decode/sine.rs), ported so
// that GPU and CPU agree to a few ulps. WGSL's built-in sin() has
// implementation-defined accuracy for large arguments; SIREN pre-activations
// (ω0 = 30 folded into the weights) reach tens to hundreds.
//
// Range reduction: k = round(x/π) (round half to even, like the CPU's
// 1.5·2²³ trick), r = x − k·π with π split in three (Cody–Waite), then an
// odd Taylor polynomial to r¹¹ on [−π/2, π/2]; sin(x) = (−1)^k · sin(r).
// CPU twin: strata_format::decode::sin_approx.

const INV_PI: f32 = 0.31830987;
const PI_A: f32 = 3.140625;
const PI_B: f32 = 0.0009675026;
const PI_C: f32 = 1.509958e-7;

fn sin_approx(x: f32) -> f32 {
    let k = round(x * INV_PI);
    var r = fma(-k, PI_A, x);
    r = fma(-k, PI_B, r);
    r = fma(-k, PI_C, r);
    let s = r * r;
    var p = fma(s, -2.5052108e-8, 2.7557319e-6);
    p = fma(s, p, -1.984127e-4);
    p = fma(s, p, 8.333333e-3);
    p = fma(s, p, -0.16666667);
    p = fma(r * s, p, r);
    // k's parity flips the sign bit.
    let odd = u32(i32(k)) & 1u;
    return bitcast<f32>(bitcast<u32>(p) ^ (odd << 31u));
}
