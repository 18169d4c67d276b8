//! Eight f32 lanes, structure of arrays: the unit the grid training's hot
//! loops work in (one AVX register). Plain arrays, so the same code runs
//! everywhere; compiled for AVX2 + FMA where the CPU has them.

pub const LANES: usize = 8;
pub type Lanes = [f32; LANES];

/// a·b + c per lane; `FMA`: fused, one instruction in code compiled for
/// FMA3 (elsewhere `mul_add` would be a libm call, so the baseline build
/// multiplies and adds).
#[inline(always)]
pub fn madd<const FMA: bool>(a: Lanes, b: Lanes, c: Lanes) -> Lanes {
    let mut r = [0f32; LANES];
    for k in 0..LANES {
        r[k] = if FMA {
            a[k].mul_add(b[k], c[k])
        } else {
            a[k] * b[k] + c[k]
        };
    }
    r
}

/// Whether this CPU runs the AVX2 + FMA builds of the hot loops.
#[inline]
pub fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}
