//! Where a grid scale's training starts: the latents as a closed-loop
//! Laplacian analysis of the target quantized with one step Δ, and the
//! synthesis as a pass-through that outputs Δ·Σ channels. Training from zero
//! latents leaves them too few updates to grow (a slab step visits ~6% of
//! them; Adam moves each ≲ 0.04 per update), so the finest scales could not
//! spend their budget even at the smallest λ; from here they start at the
//! magnitudes a transform coder at that step would have.

use rayon::prelude::*;

use super::rate::{context_of, laplace_bits, ContextModel};
#[cfg(test)]
use super::synthesis;
use super::synthesis::Interpolation;
use crate::pyramid::{downsample, Downsampling, Grid};
use strata_format::decode::upsample;
use strata_format::grid::entropy::{chunks, is_coded};
use strata_format::grid::lifting::{self, axis_energy, odd_axes};

/// The steps Δ a scale may start at (normalized units). Lifted latents
/// compact smooth data far better than the interpolating pyramid did: a
/// smooth 48×40×32 volume at CR 30 needs a finer step than 1e-3.
pub const STEP_RANGE: (f32, f32) = (1e-5, 2.0);

/// Δ for a rate–distortion slope λ (per bit per voxel, normalized units):
/// high-rate theory, D = Δ²/12 falling 6 dB per bit, gives λ = ln 2·Δ²/6.
pub fn step_for_lambda(lambda: f64) -> f32 {
    ((lambda * 6.0 / std::f64::consts::LN_2).sqrt() as f32).clamp(STEP_RANGE.0, STEP_RANGE.1)
}

/// Each latent level's step is this many times finer than the next finer
/// level's: a coarse latent's rounding error spreads over 2^l voxels per
/// axis, and a step as coarse as the finest one's leaves every finer level
/// to code it again (MNI152, order-0 bits, CR ≈ 60: ratio 1 → 38.6 dB,
/// 2 → 43.8 dB). Under the context model, critically sampled, 2 made the
/// coarse levels too costly (MNI152 at half size, no training, CR 50 / 100
/// / 200: ratio 2 → 44.51 / 33.96 / 30.69 dB, 1.7 → 44.76 / 36.11 / 30.87,
/// 1.55 → 44.52 / 36.22 / 31.09).
pub const LEVEL_STEP_RATIO: f32 = 1.6;

/// A lifted level's step is (its energy / the finest's)^(-this/2) of the
/// finest step: 1 would give every coefficient the same share of the error;
/// under the context model a little less weight on the coarse levels does
/// as well or better (no training, CR 50 / 100 / 200 / 500, dB — MNI152 at
/// half size: 1.0 → 45.81 / 37.90 / 33.12 / 28.57, 0.8 → 45.72 / 37.93 /
/// 33.10 / 28.57; engine at half size: 1.0 → 47.91 / 41.22 / 34.78 /
/// 28.65, 0.8 → 48.33 / 41.43 / 34.88 / 28.57). The band gains stay at
/// full weight (½: MNI152 half, CR 200, 33.12 → 32.84 dB).
const LIFTED_LEVEL_WEIGHT: f64 = 0.8;

/// Lifted coefficients round towards 0 by this much more than to nearest: a
/// value barely past a half costs more bits than its error saves (no
/// training, CR 50 / 200, dB — MNI152 at half size: to nearest 45.72 /
/// 33.10, 0.05 → 46.04 / 33.26, 0.1 → 45.96 / 33.29, 0.2 → 45.28 / 33.07;
/// engine at half size: 48.33 / 34.88, 0.05 → 48.66 / 35.05, 0.1 → 48.45 /
/// 35.19, 0.2 → 48.07 / 34.73).
const LIFTED_DEADZONE: f32 = 0.1;

/// How a grid scale's latent levels make its values (the section's
/// transform, `docs/FORMAT.md` §8.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transform {
    /// Each level what the coarser ones leave at its samples.
    Interpolating,
    /// Each level below the coarsest the details of a 5/3 wavelet level.
    Lifting,
}

/// A scale's latent levels under one transform: the steps of its levels
/// relative to the finest level's, and (lifted) its band gains.
pub struct Analysis {
    pub interp: Interpolation,
    pub transform: Transform,
    /// Per level, its step over the finest level's.
    factors: Vec<f32>,
    /// Per level below the coarsest, the gains of its bands with 1–4 odd
    /// coordinates (binary16 values; lifted only).
    pub gains: Vec<[f32; 4]>,
    /// Per level, the squared error a unit change of one of its latents
    /// makes, over the finest level's (lifted only; bands are gained to be
    /// alike within a level).
    weights: Vec<f32>,
}

/// Rate–distortion rounding of lifted latents: each latent that rounds away
/// from 0 is moved one step towards it where that saves more bits, priced
/// by the context model, than its error costs: (x − q)²·w + κ·bits, w the
/// level's weight, in units of the finest step².
pub struct Rdo<'a> {
    pub model: ContextModel<'a>,
    pub kappa: f32,
}

/// Level `l`'s step over level 0's in an interpolating pyramid.
fn interpolating_factor(l: usize) -> f32 {
    LEVEL_STEP_RATIO.powi(-(l as i32))
}

/// The energy a unit coefficient of level `l` spreads into a grid with
/// `axes` axes longer than one voxel: a band of `odd` odd coordinates, or a
/// sample of the coarsest level.
fn lifted_energy(l: u8, odd: usize, coarsest: bool, axes: usize) -> f64 {
    if coarsest {
        return axis_energy(l, false, true).powi(axes as i32);
    }
    axis_energy(l, true, false).powi(odd as i32)
        * axis_energy(l, false, false).powi(axes.saturating_sub(odd) as i32)
}

/// The step of pyramid octave `j` (a coarser scale's finest latent level)
/// when the finest level's step is `delta`.
pub fn octave_step(transform: Transform, delta: f32, j: usize) -> f32 {
    match transform {
        Transform::Interpolating => delta * interpolating_factor(j),
        Transform::Lifting => {
            let band = |l: usize| lifted_energy(l.min(8) as u8, 1, false, 3);
            delta * (band(0) / band(j)).sqrt() as f32
        }
    }
}

impl Analysis {
    pub fn new(transform: Transform, dims: [usize; 4], levels: u8) -> Analysis {
        let interp = Interpolation::new(dims, levels);
        let n = levels as usize;
        let axes = dims.iter().filter(|&&d| d > 1).count();
        let (factors, gains, weights) = match transform {
            Transform::Interpolating => (
                (0..n).map(interpolating_factor).collect(),
                Vec::new(),
                Vec::new(),
            ),
            Transform::Lifting => {
                // Steps Δ/√energy give every coefficient the same share of
                // the error (MNI152 at half size, order-0 bits, CR 50: one
                // step ratio per level 41.45 dB, by energy 42.04); the
                // levels' a little less (LIFTED_LEVEL_WEIGHT).
                let band = |l: usize, k: usize| lifted_energy(l as u8, k, false, axes);
                let finest = band(0, 1);
                let energy = |l: usize| {
                    if l + 1 == n {
                        lifted_energy(l as u8, 0, true, axes)
                    } else {
                        band(l, 1)
                    }
                };
                let factors: Vec<f32> = (0..n)
                    .map(|l| (finest / energy(l)).powf(0.5 * LIFTED_LEVEL_WEIGHT) as f32)
                    .collect();
                let weights = (0..n)
                    .map(|l| factors[l].powi(2) * (energy(l) / finest) as f32)
                    .collect();
                let gains = (0..n.saturating_sub(1))
                    .map(|l| {
                        std::array::from_fn(|k| {
                            let g = (band(l, 1) / band(l, k + 1)).sqrt() as f32;
                            half::f16::from_f32(g).to_f32()
                        })
                    })
                    .collect();
                (factors, gains, weights)
            }
        };
        Analysis {
            interp,
            transform,
            factors,
            gains,
            weights,
        }
    }

    /// Per level, its step over the finest level's.
    pub fn factors(&self) -> &[f32] {
        &self.factors
    }

    /// The step of latent level `l` when the finest level's is `delta`.
    pub fn level_step(&self, delta: f32, l: usize) -> f32 {
        delta * self.factors[l]
    }

    /// Latents whose synthesis approximates `target`, rounded in units of
    /// their level's step (the finest `delta`); `None`: not rounded, in the
    /// target's units (the open-loop coefficients [`Self::step_for_bits`]
    /// measures).
    pub fn analyse(&self, target: &[f32], delta: Option<f32>) -> Vec<Vec<f32>> {
        self.analyse_with_error(target, delta).0
    }

    /// [`Self::analyse`], and the squared error its latents leave.
    pub fn analyse_with_error(&self, target: &[f32], delta: Option<f32>) -> (Vec<Vec<f32>>, f64) {
        match self.transform {
            Transform::Interpolating => {
                analyse_interpolating(&self.interp, &self.factors, target, delta)
            }
            Transform::Lifting => self.analyse_lifted(target, delta, None),
        }
    }

    /// [`Self::analyse`] at step `delta` with rate–distortion rounding where
    /// the transform has it (lifted), else the plain analysis.
    pub fn analyse_rd(&self, target: &[f32], delta: f32, rdo: &Rdo) -> Vec<Vec<f32>> {
        match self.transform {
            Transform::Interpolating => self.analyse(target, Some(delta)),
            Transform::Lifting => self.analyse_lifted(target, Some(delta), Some(rdo)).0,
        }
    }

    /// The levels as the synthesis interpolates them (what
    /// `GridSection::channels` gives the decoder): lifted levels through
    /// the inverse transform, else the latents themselves.
    pub fn channels(&self, latents: &[Vec<f32>]) -> Vec<Vec<f32>> {
        let coarsest = latents.len().saturating_sub(1);
        latents
            .par_iter()
            .enumerate()
            .map(|(l, y)| match self.transform {
                Transform::Lifting if l < coarsest => {
                    let q: Vec<i32> = y.iter().map(|&v| v as i32).collect();
                    lifting::channel(&q, self.interp.ldims[l], self.gains[l])
                }
                _ => y.clone(),
            })
            .collect()
    }

    /// A closed-loop 5/3 analysis: each level's target is the wavelet's
    /// coarse part of the next finer one's; coarsest first, a level codes
    /// the details of what the coarser levels' reconstruction leaves of its
    /// target (so their rounding is corrected where it can be), rounded in
    /// units of its step times its band's gain.
    fn analyse_lifted(
        &self,
        target: &[f32],
        delta: Option<f32>,
        rdo: Option<&Rdo>,
    ) -> (Vec<Vec<f32>>, f64) {
        let ldims = &self.interp.ldims;
        let n = ldims.len();
        let mut targets = vec![target.to_vec()];
        for l in 0..n - 1 {
            let level = Grid::new(ldims[l], targets[l].clone());
            targets.push(downsample(&level, Downsampling::Lifting).data);
        }
        let step = |l: usize| delta.map_or(1.0, |d| self.level_step(d, l));
        // Clamped to what a section holds, here, so that the finer levels
        // correct what the clamp leaves (a fine step makes the coarse
        // levels' latents large).
        let most = strata_format::grid::entropy::MAX_LATENT_ABS as f32;
        let round = |c: f32| match delta {
            Some(_) => {
                (c.signum() * (c.abs() + 0.5 - LIFTED_DEADZONE).floor().max(0.0)).clamp(-most, most)
            }
            None => c,
        };
        // Under RD rounding: from nearest, then moved where it pays.
        let nearest = |c: f32| c.round().clamp(-most, most);
        let rd = |x: Vec<f32>, l: usize, latents: &[Vec<f32>]| match rdo {
            Some(rdo) => {
                let mut q: Vec<f32> = x.iter().map(|&c| nearest(c)).collect();
                let parent = (l + 1 < n).then(|| (latents[l + 1].as_slice(), ldims[l + 1]));
                round_rd(
                    &mut q,
                    &x,
                    ldims[l],
                    parent,
                    l,
                    rdo.kappa / self.weights[l],
                    &rdo.model,
                );
                q
            }
            None => x.into_iter().map(round).collect(),
        };
        let mut latents = vec![Vec::new(); n];
        latents[n - 1] = rd(
            targets[n - 1].iter().map(|&v| v / step(n - 1)).collect(),
            n - 1,
            &latents,
        );
        let mut rec: Vec<f32> = latents[n - 1].iter().map(|&q| q * step(n - 1)).collect();
        for l in (0..n - 1).rev() {
            let d = ldims[l];
            let predicted = upsample(&rec, ldims[l + 1], d);
            let mut e: Vec<f32> = targets[l]
                .iter()
                .zip(&predicted)
                .map(|(t, p)| t - p)
                .collect();
            lifting::forward(&mut e, d);
            let s = step(l);
            let gains = self.gains[l];
            let scaled = e
                .par_iter()
                .enumerate()
                .map(|(i, &c)| match odd_axes(d, i) {
                    0 => 0.0,
                    k => c / (s * gains[k - 1]),
                })
                .collect();
            latents[l] = rd(scaled, l, &latents);
            if delta.is_none() {
                // Open loop: the coarser levels' reconstruction is exact.
                rec = targets[l].clone();
                continue;
            }
            let q: Vec<i32> = latents[l].iter().map(|&v| v as i32).collect();
            let lifted = lifting::channel(&q, d, gains);
            rec = predicted
                .iter()
                .zip(&lifted)
                .map(|(p, v)| p + s * v)
                .collect();
        }
        let sq_error = rec
            .iter()
            .zip(target)
            .map(|(r, t)| ((r - t) as f64).powi(2))
            .sum();
        (latents, sq_error)
    }

    /// The step whose analysis leaves a mean squared error of about `mse`
    /// (bisection on ln Δ; the error grows with Δ).
    pub fn step_for_mse(&self, target: &[f32], mse: f64) -> f32 {
        let voxels = target.len().max(1) as f64;
        let (mut lo, mut hi) = (STEP_RANGE.0.ln(), STEP_RANGE.1.ln());
        for _ in 0..12 {
            let mid = 0.5 * (lo + hi);
            let (_, err) = self.analyse_with_error(target, Some(mid.exp()));
            if err / voxels < mse {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        (0.5 * (lo + hi)).exp()
    }

    /// Bits the open-loop coefficients take rounded in units of their
    /// level's step (the finest `delta`; lifted levels: times their band's
    /// gain), by each level's histogram (order-0 entropy; the context model
    /// does better).
    pub fn entropy_bits(&self, coefficients: &[Vec<f32>], delta: f32) -> f64 {
        entropy_bits(coefficients, |l| self.level_step(delta, l))
    }

    /// The step whose rounded coefficients take about `bits`.
    pub fn step_for_bits(&self, coefficients: &[Vec<f32>], bits: f64) -> f32 {
        step_spending(bits, |delta| self.entropy_bits(coefficients, delta))
    }
}

/// Rate–distortion rounding of one level's latents `q` (rounded to nearest
/// from `x`, in units of their step), chunk by chunk in coding order: a
/// latent moves one step towards 0 where (x − q)² + `lambda`·bits falls,
/// its bits priced by `model` in the context of the latents decided before
/// it (greedy: a choice's effect on later contexts is not weighed).
fn round_rd(
    q: &mut [f32],
    x: &[f32],
    dims: [usize; 4],
    parent: Option<(&[f32], [usize; 4])>,
    level: usize,
    lambda: f32,
    model: &ContextModel,
) {
    let plane = [dims[0], dims[1]];
    let mut runs = Vec::new();
    let mut rest = q;
    for c in chunks(dims) {
        let (head, tail) = rest.split_at_mut(c.len(dims));
        runs.push((c, head));
        rest = tail;
    }
    runs.into_par_iter().for_each(|(c, run)| {
        let x = &x[c.offset(dims)..][..run.len()];
        for zl in 0..c.nz {
            for y in 0..dims[1] {
                for px in 0..dims[0] {
                    let i = (zl * dims[1] + y) * dims[0] + px;
                    let near = run[i];
                    if near == 0.0 || !is_coded(parent.is_some(), [px, y, c.z0 + zl, c.t]) {
                        continue;
                    }
                    let ctx = context_of(run, plane, parent, [px, y, zl], c, level);
                    let (mu, b) = model.predict(&ctx);
                    let cost = |v: f32| (x[i] - v).powi(2) + lambda * laplace_bits(v, mu, b).0;
                    let down = near - near.signum();
                    if cost(down) < cost(near) {
                        run[i] = down;
                    }
                }
            }
        }
    });
}

/// An interpolating pyramid's latents: each level holds what the coarser
/// ones left at its own sample points (latent j of level l sits at voxel
/// 2^l·j), rounded in units of its step (closed loop: a level sees the
/// coarser ones' rounding). The coarser levels are exact at their samples,
/// so a finer level's latents there stay near zero (MNI152 at CR ≈ 60,
/// order-0 bits: 43.8 dB where the interpolation-weighted means gave 41.5).
/// The error: Σ over voxels of the finest level's rounding, every voxel
/// being one of its samples.
fn analyse_interpolating(
    interp: &Interpolation,
    factors: &[f32],
    target: &[f32],
    delta: Option<f32>,
) -> (Vec<Vec<f32>>, f64) {
    let levels = interp.ldims.len();
    let [nx, ny, nz, _] = interp.dims;
    let mut latents: Vec<Vec<f32>> = interp
        .ldims
        .iter()
        .map(|d| vec![0.0; d.iter().product()])
        .collect();
    let steps: Vec<f32> = (0..levels)
        .map(|l| delta.map_or(1.0, |d| d * factors[l]))
        .collect();
    let mut sq_error = 0f64;
    for l in (0..levels).rev() {
        let (coarser, this) = {
            let (finer, coarser) = latents.split_at_mut(l + 1);
            (&*coarser, &mut finer[l])
        };
        let [mx, my, mz, _] = interp.ldims[l];
        let err: f64 = this
            .par_chunks_mut(mx)
            .enumerate()
            .map(|(row, out)| {
                let mut err = 0f64;
                let (jy, jz, jt) = (row % my, (row / my) % mz, row / (my * mz));
                let [vy, vz, vt] = [jy << l, jz << l, jt << l];
                for (jx, y) in out.iter_mut().enumerate() {
                    let v = [jx << l, vy, vz, vt];
                    let voxel = v[0] + nx * (v[1] + ny * (v[2] + nz * v[3]));
                    let mut left = target[voxel];
                    for (k, latent) in coarser.iter().enumerate() {
                        let k = l + 1 + k;
                        left -= steps[k] * interpolate_at(interp, k, latent, v);
                    }
                    let c = left / steps[l];
                    *y = if !is_coded(l + 1 < levels, [jx, jy, jz, jt]) {
                        0.0
                    } else if delta.is_some() {
                        c.round()
                    } else {
                        c
                    };
                    err += ((c - *y) * steps[l]).powi(2) as f64;
                }
                err
            })
            .sum();
        if l == 0 {
            sq_error = err;
        }
    }
    (latents, sq_error)
}

/// Level `l`'s interpolated value at voxel `v` (the decoder's taps).
fn interpolate_at(interp: &Interpolation, l: usize, latent: &[f32], v: [usize; 4]) -> f32 {
    let taps = &interp.taps[l];
    let d = interp.ldims[l];
    let axis = |a: usize| {
        let t = &taps[a];
        let w1 = t.w1[v[a]];
        [(t.j0[v[a]] as usize, 1.0 - w1), (t.j1[v[a]] as usize, w1)]
    };
    let [ax, ay, az, at] = [axis(0), axis(1), axis(2), axis(3)];
    let mut sum = 0.0;
    for &(jt, wt) in &at {
        for &(jz, wz) in &az {
            for &(jy, wy) in &ay {
                let w = wt * wz * wy;
                if w == 0.0 {
                    continue;
                }
                let base = d[0] * (jy + d[1] * (jz + d[2] * jt));
                for &(jx, wx) in &ax {
                    if wx != 0.0 {
                        sum += w * wx * latent[base + jx];
                    }
                }
            }
        }
    }
    sum
}

/// Bits the coefficients take rounded in units of `step(level)`, by each
/// level's histogram (order-0 entropy).
fn entropy_bits(coefficients: &[Vec<f32>], step: impl Fn(usize) -> f32) -> f64 {
    const SPAN: i64 = 4096;
    let mut counts = vec![0u32; 2 * SPAN as usize + 1];
    let mut bits = 0f64;
    for (l, level) in coefficients.iter().enumerate() {
        counts.iter_mut().for_each(|c| *c = 0);
        let step = step(l);
        for &c in level {
            let q = ((c / step).round() as i64).clamp(-SPAN, SPAN);
            counts[(q + SPAN) as usize] += 1;
        }
        let n = level.len() as f64;
        bits -= counts
            .iter()
            .filter(|&&c| c > 0)
            .map(|&c| c as f64 * (c as f64 / n).log2())
            .sum::<f64>();
    }
    bits
}

/// The step Δ at which `bits_at(Δ)` (falling as Δ grows) is about `bits`:
/// bisection on ln Δ over [`STEP_RANGE`].
pub fn step_spending(bits: f64, bits_at: impl Fn(f32) -> f64) -> f32 {
    let (mut lo, mut hi) = (STEP_RANGE.0.ln(), STEP_RANGE.1.ln());
    for _ in 0..14 {
        let mid = 0.5 * (lo + hi);
        if bits_at(mid.exp()) > bits {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    (0.5 * (lo + hi)).exp()
}

/// λ at which a step of `delta` is the rate–distortion optimum (the inverse
/// of [`step_for_lambda`]).
pub fn lambda_for_step(delta: f32) -> f64 {
    (delta as f64).powi(2) * std::f64::consts::LN_2 / 6.0
}

/// Sets the synthesis parameters (layout of `GridArchitecture`) so the MLP's
/// hidden unit 0 carries Σ `weights[l]` × channel l of `channels` (times the
/// finest step `delta`) through every ReLU (biased positive by the largest
/// sum they can give) and out; the other units keep their random weights
/// but neither feed unit 0 nor the output until trained.
pub fn pass_through(
    shapes: &[(usize, usize)],
    params: &mut [f32],
    delta: f32,
    channels: &[Vec<f32>],
    weights: &[f32],
) {
    let gain = |l: usize| weights[l];
    let most: f32 = channels
        .iter()
        .enumerate()
        .map(|(l, y)| gain(l) * y.iter().fold(0f32, |m, v| m.max(v.abs())))
        .sum();
    let n = shapes.len();
    // Δ spread over the layers: each weight of order Δ^(1/n), which Adam's
    // first steps (≈ lr each) do not swamp.
    let a = delta.powf(1.0 / n as f32);
    let lift = a * most * 1.25 + 0.01;
    let mut off = 0;
    for (k, &(i, o)) in shapes.iter().enumerate() {
        let (w, b) = params[off..off + i * o + o].split_at_mut(i * o);
        for (r, row) in w.chunks_exact_mut(o).enumerate() {
            for (j, v) in row.iter_mut().enumerate() {
                if j == 0 {
                    // Column 0: all inputs at the first layer, unit 0 after.
                    *v = if k == 0 {
                        a * gain(r)
                    } else if r == 0 {
                        a
                    } else {
                        0.0
                    };
                } else if k > 0 && r == 0 {
                    *v = 0.0;
                }
            }
        }
        b[0] = if n == 1 {
            0.0
        } else if k == 0 {
            lift
        } else if k + 1 == n {
            -lift * a.powi(n as i32 - 1)
        } else {
            0.0
        };
        off += i * o + o;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::rate::ContextLayout;
    use strata_format::grid::GridArchitecture;
    use strata_format::synth::SplitMix;

    /// Rate–distortion rounding only moves latents one step towards 0, more
    /// of them as bits get dearer, and never where bits are free.
    #[test]
    fn rd_rounding_moves_latents_towards_zero_as_bits_cost_more() {
        let dims = [19, 17, 11, 1];
        let target: Vec<f32> = (0..dims.iter().product::<usize>())
            .map(|i| {
                let (x, y, z) = (i % 19, (i / 19) % 17, i / 323);
                ((x * 7 + y * 3 + z * 5) % 11) as f32 * 0.05 + (x as f32 * 0.4).sin()
            })
            .collect();
        let analysis = Analysis::new(Transform::Lifting, dims, 3);
        let layout = ContextLayout { hidden: 2 };
        // A context model of one Laplace around 0: the scale output, in
        // octaves above 1/16, at 3 (b = ½).
        let mut params = vec![0f32; layout.len()];
        *params.last_mut().unwrap() = 3.0;
        let nonzero = |l: &[Vec<f32>]| l.iter().flatten().filter(|v| **v != 0.0).count();
        let delta = 0.02;
        let rd = |kappa| {
            let rdo = Rdo {
                model: ContextModel::new(layout, &params),
                kappa,
            };
            analysis.analyse_rd(&target, delta, &rdo)
        };
        let free = rd(0.0);
        // (This volume, nonzero latents: 3269 free, 3259 at κ 0.1, 3114 at 1.)
        let (cheap, dear) = (rd(0.1), rd(1.0));
        assert!(
            nonzero(&dear) < nonzero(&cheap),
            "{} vs {}",
            nonzero(&dear),
            nonzero(&cheap)
        );
        assert!(nonzero(&cheap) < nonzero(&free));
        // Bits at no price: every latent to nearest (closed loop, so a
        // finer level sees its coarser levels' nearest rounding).
        let nearest = |l: &Vec<Vec<f32>>| l.iter().flatten().all(|v| *v == v.round());
        assert!(nearest(&free) && nearest(&dear));
        // The coarsest level sees the same values either way: each latent
        // stays or moves one step towards 0.
        let coarsest = analysis.interp.ldims.len() - 1;
        for (q, d) in free[coarsest].iter().zip(&dear[coarsest]) {
            assert!(d.abs() <= q.abs() && (q - d).abs() <= 1.0, "{q} → {d}");
        }
    }

    /// The analysed latents through the pass-through synthesis give the
    /// target back to within about Δ, whatever the random hidden units.
    #[test]
    fn analysis_through_the_pass_through_synthesis_reconstructs_the_target() {
        let dims = [21, 13, 9, 1];
        let arch = GridArchitecture {
            levels: 4,
            synthesis: vec![6, 5],
            context_hidden: 0,
        };
        let shapes = arch.synthesis_shapes();
        let target: Vec<f32> = (0..dims.iter().product::<usize>())
            .map(|i| {
                let (x, y, z) = (i % 21, (i / 21) % 13, i / 273);
                0.5 + 0.3 * ((x as f32 * 0.3).sin() * (y as f32 * 0.2).cos()) + 0.01 * z as f32
            })
            .collect();
        let delta = 0.01;
        for transform in [Transform::Interpolating, Transform::Lifting] {
            let analysis = Analysis::new(transform, dims, arch.levels);
            let interp = &analysis.interp;
            let (latents, sq_error) = analysis.analyse_with_error(&target, Some(delta));
            let channels = analysis.channels(&latents);
            let mut rng = SplitMix(3);
            let mut params: Vec<f32> = (0..arch.synthesis_params())
                .map(|_| rng.symmetric(0.5))
                .collect();
            pass_through(&shapes, &mut params, delta, &channels, analysis.factors());
            let s = synthesis::step(interp, &shapes, &params, &channels, &target, None);
            let rmse = (s.sq_error / s.voxels as f64).sqrt();
            assert!(rmse < delta as f64, "{transform:?}: rmse {rmse}");
            // The analysis knows the error it leaves (to float rounding).
            assert!(
                (sq_error - s.sq_error).abs() <= 1e-3 * s.sq_error + 1e-9,
                "{transform:?}: {sq_error} vs {}",
                s.sq_error
            );
            // And it is the analysis that did it: zero latents are far off.
            let zeros: Vec<Vec<f32>> = latents.iter().map(|l| vec![0.0; l.len()]).collect();
            let z = synthesis::step(interp, &shapes, &params, &zeros, &target, None);
            assert!((z.sq_error / z.voxels as f64).sqrt() > 0.2);
        }
    }

    #[test]
    fn the_step_follows_lambda() {
        let d = step_for_lambda(1e-4);
        assert!((lambda_for_step(d) / 1e-4 - 1.0).abs() < 1e-4);
        assert!(step_for_lambda(1e-4) < step_for_lambda(1e-3));
    }

    /// The step found for a bit budget spends about that budget, and a
    /// smaller budget gets a coarser step.
    #[test]
    fn the_step_for_a_budget_spends_it() {
        let mut rng = SplitMix(9);
        let coefficients: Vec<Vec<f32>> = [4000, 500, 60]
            .iter()
            .map(|&n| (0..n).map(|_| rng.symmetric(0.2).powi(3)).collect())
            .collect();
        let analysis = Analysis::new(Transform::Interpolating, [4000, 1, 1, 1], 3);
        let d = analysis.step_for_bits(&coefficients, 6000.0);
        let spent = analysis.entropy_bits(&coefficients, d);
        assert!((spent / 6000.0 - 1.0).abs() < 0.05, "{spent} bits at Δ {d}");
        assert!(analysis.step_for_bits(&coefficients, 2000.0) > d);
    }
}
