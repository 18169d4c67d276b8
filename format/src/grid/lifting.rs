//! The 5/3 lifting transform of a grid section's latent levels (transform 1,
//! `docs/FORMAT.md` §8.5): a level below the coarsest holds the detail
//! coefficients of one level of a separable CDF 5/3 wavelet, in place (the
//! all-even positions are the coarser level's, and hold 0). Its channel is
//! the inverse lifting of its gained latents, so that interpolating every
//! level's channel to the scale's grid and summing — what the synthesis does
//! for both transforms — is the inverse wavelet transform. The update step
//! is what the interpolating pyramid lacks: a coarse coefficient is a local
//! mean, not a sample (MNI152 at half size, order-0 bits, CR 50 / 200: 37.9
//! / 29.4 dB interpolating, 42.0 / 32.5 dB lifted).
//!
//! f32, in the order written here, without fused multiply-adds: the GPU gets
//! these channels from the CPU, so every decoder synthesizes the same values.

#[cfg(feature = "parallel")]
use rayon::prelude::*;

/// Per level below the coarsest, the gains of its bands with 1, 2, 3 and 4
/// odd coordinates (the wavelet's bands are not equally heavy: a band with
/// more odd axes spreads a unit less far).
#[derive(Clone, Debug, PartialEq)]
pub struct Lifting {
    pub gains: Vec<[f32; 4]>,
}

/// The number of odd coordinates of the position at `index` in a level of
/// `dims` (x fastest).
#[inline]
pub fn odd_axes(dims: [usize; 4], index: usize) -> usize {
    let x = index % dims[0];
    let y = (index / dims[0]) % dims[1];
    let z = (index / (dims[0] * dims[1])) % dims[2];
    let t = index / (dims[0] * dims[1] * dims[2]);
    (x & 1) + (y & 1) + (z & 1) + (t & 1)
}

/// Level `values` (dims `dims`, x fastest) times its band gains, then the
/// inverse lifting along t, z, y and x: the channel the synthesis
/// interpolates.
pub fn channel(values: &[i32], dims: [usize; 4], gains: [f32; 4]) -> Vec<f32> {
    let mut out: Vec<f32> = values
        .iter()
        .enumerate()
        .map(|(i, &v)| match odd_axes(dims, i) {
            0 => v as f32,
            k => v as f32 * gains[k - 1],
        })
        .collect();
    for axis in [3, 2, 1, 0] {
        along_lines(&mut out, dims, axis, inverse_line);
    }
    out
}

/// Applies `f` to every line of `values` along `axis` (gathered into a
/// contiguous buffer and scattered back); the slabs of lines that share
/// their coordinates above the axis are independent, and run in parallel.
pub fn along_lines(values: &mut [f32], dims: [usize; 4], axis: usize, f: fn(&mut [f32])) {
    let n = dims[axis];
    if n < 2 {
        return;
    }
    let stride: usize = dims[..axis].iter().product();
    let slab = |block: &mut [f32]| {
        let mut line = vec![0f32; n];
        for inner in 0..stride {
            for (i, v) in line.iter_mut().enumerate() {
                *v = block[inner + i * stride];
            }
            f(&mut line);
            for (i, v) in line.iter().enumerate() {
                block[inner + i * stride] = *v;
            }
        }
    };
    #[cfg(feature = "parallel")]
    values.par_chunks_mut(stride * n).for_each(slab);
    #[cfg(not(feature = "parallel"))]
    values.chunks_mut(stride * n).for_each(slab);
}

/// The detail at odd index `2j + 1` of a line whose odds are `d(j)`, mirrored
/// at both ends (`d(-1) = d(0)`, past the last odd the last one).
#[inline]
fn detail(line: &[f32], j: isize) -> f32 {
    let k = line.len() / 2;
    let j = j.clamp(0, k as isize - 1) as usize;
    line[2 * j + 1]
}

/// The even sample `2j` of a line, the last one past the end.
#[inline]
fn even(line: &[f32], j: usize) -> f32 {
    let m = line.len().div_ceil(2);
    line[2 * j.min(m - 1)]
}

/// One inverse lifting step of a line (length ≥ 2; evens hold the coarse
/// values, odds the details): evens −= (d(j−1) + d(j))/4, then odds +=
/// (e(j) + e(j+1))/2.
pub fn inverse_line(line: &mut [f32]) {
    let (m, k) = (line.len().div_ceil(2), line.len() / 2);
    for j in 0..m {
        let u = 0.25 * (detail(line, j as isize - 1) + detail(line, j as isize));
        line[2 * j] -= u;
    }
    for j in 0..k {
        let p = 0.5 * (even(line, j) + even(line, j + 1));
        line[2 * j + 1] += p;
    }
}

/// One forward lifting step of a line, the inverse of [`inverse_line`]:
/// odds −= (e(j) + e(j+1))/2, then evens += (d(j−1) + d(j))/4.
pub fn forward_line(line: &mut [f32]) {
    let (m, k) = (line.len().div_ceil(2), line.len() / 2);
    for j in 0..k {
        let p = 0.5 * (even(line, j) + even(line, j + 1));
        line[2 * j + 1] -= p;
    }
    for j in 0..m {
        let u = 0.25 * (detail(line, j as isize - 1) + detail(line, j as isize));
        line[2 * j] += u;
    }
}

/// One level of the forward transform of a grid (x, y, z, then t): the
/// all-even positions hold the coarser level's values, the others the
/// details.
pub fn forward(values: &mut [f32], dims: [usize; 4]) {
    for axis in [0, 1, 2, 3] {
        along_lines(values, dims, axis, forward_line);
    }
}

/// The energy (Σ squares) a unit coefficient spreads into a scale's grid
/// along one axis: `odd` a detail, else a coarse sample, of latent level
/// `l` below the coarsest (`coarsest`: a sample of the coarsest level, not
/// lifted). The encoder weighs bands and levels by these (a step `Δ/√w`
/// gives every coefficient the same share of the error).
pub fn axis_energy(l: u8, odd: bool, coarsest: bool) -> f64 {
    // A line long enough that the unit sits far from both ends.
    let n = 16usize << l;
    let m = n >> l;
    let mut level = vec![0f32; m];
    let at = (m / 2) & !1;
    level[at + odd as usize] = 1.0;
    if !coarsest {
        inverse_line(&mut level);
    }
    // Linear interpolation to the scale's grid (the synthesis's taps).
    let step = 1usize << l;
    (0..n)
        .map(|i| {
            let j0 = (i >> l).min(m - 1);
            let j1 = (j0 + 1).min(m - 1);
            let w1 = (i % step) as f64 / step as f64;
            let v = (1.0 - w1) * level[j0] as f64 + w1 * level[j1] as f64;
            v * v
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::SplitMix;

    #[test]
    fn forward_then_inverse_is_the_identity() {
        let mut rng = SplitMix(5);
        for n in 2..12 {
            let x: Vec<f32> = (0..n).map(|_| rng.symmetric(1.0)).collect();
            let mut y = x.clone();
            forward_line(&mut y);
            inverse_line(&mut y);
            for (a, b) in x.iter().zip(&y) {
                assert!((a - b).abs() < 1e-6, "n {n}: {x:?} -> {y:?}");
            }
        }
    }

    /// A level whose details are all 0 lifts to the linear interpolation of
    /// its coarse samples (so the coarser levels' interpolation is the
    /// wavelet's), and a linear ramp has no details.
    #[test]
    fn coarse_samples_alone_interpolate_linearly() {
        for n in [2usize, 3, 6, 7] {
            let mut line: Vec<f32> = (0..n)
                .map(|i| if i % 2 == 0 { (i * i) as f32 } else { 0.0 })
                .collect();
            inverse_line(&mut line);
            for i in (1..n).step_by(2) {
                let right = if i + 1 < n { i + 1 } else { i - 1 };
                let want = 0.5 * ((i - 1) * (i - 1) + right * right) as f32;
                assert_eq!(line[i], want, "n {n} i {i}");
            }
            let mut ramp: Vec<f32> = (0..n).map(|i| 3.0 * i as f32 + 1.0).collect();
            forward_line(&mut ramp);
            for i in (1..n.saturating_sub(1)).step_by(2) {
                assert_eq!(ramp[i], 0.0, "n {n} i {i}");
            }
        }
    }

    /// A 4D level: the forward transform, its coarse part cleared, the rest
    /// through `channel` with unit gains, plus the coarse part interpolated,
    /// gives the level back.
    #[test]
    fn channel_inverts_the_forward_transform() {
        let dims = [7, 6, 5, 3];
        let n: usize = dims.iter().product();
        let mut rng = SplitMix(8);
        let x: Vec<f32> = (0..n).map(|_| (rng.symmetric(20.0)).round()).collect();
        let mut c = x.clone();
        forward(&mut c, dims);
        // Details only (as integers, as a section holds them), and the
        // coarse samples alone.
        let scale = 64.0;
        let details: Vec<i32> = (0..n)
            .map(|i| {
                if odd_axes(dims, i) == 0 {
                    0
                } else {
                    (c[i] * scale).round() as i32
                }
            })
            .collect();
        let mut coarse: Vec<f32> = (0..n)
            .map(|i| if odd_axes(dims, i) == 0 { c[i] } else { 0.0 })
            .collect();
        for axis in [3, 2, 1, 0] {
            along_lines(&mut coarse, dims, axis, inverse_line);
        }
        let lifted = channel(&details, dims, [1.0; 4]);
        for i in 0..n {
            let got = lifted[i] / scale + coarse[i];
            assert!((got - x[i]).abs() < 0.05, "{i}: {got} vs {}", x[i]);
        }
        // Gains scale each band before the lifting.
        let g = channel(&details, dims, [2.0; 4]);
        for i in 0..n {
            assert!((g[i] - 2.0 * lifted[i]).abs() < 1e-3);
        }
    }

    #[test]
    fn a_detail_spreads_less_than_a_coarse_sample() {
        for l in 0..5 {
            let (e, o) = (axis_energy(l, false, false), axis_energy(l, true, false));
            assert!(e > 1.9 * o && e < 4.0 * o, "level {l}: {e} {o}");
        }
        // Level 0: the hat (½, 1, ½) and the 5/3 synthesis wavelet.
        assert!((axis_energy(0, false, false) - 1.5).abs() < 1e-9);
        assert!((axis_energy(0, true, false) - 0.71875).abs() < 1e-9);
        assert!((axis_energy(0, false, true) - 1.0).abs() < 1e-9);
    }
}
