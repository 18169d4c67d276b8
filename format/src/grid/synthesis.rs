//! A grid scale's CPU decode: each latent level linearly interpolated to the
//! scale's grid (level l's sample j sits at voxel 2^l·j, as the pyramid's
//! coarse samples do; clamped at the far edge), the channels stacked, the
//! synthesis MLP per voxel, the result added into the scale's grid.

use super::{latent_dims, GridSection};
#[cfg(feature = "parallel")]
use rayon::prelude::*;

/// Interpolation along one axis of one level: for each voxel index, the two
/// latent indices and the weight of the second (a dyadic fraction, exact).
#[derive(Clone, Debug)]
pub struct AxisTaps {
    pub j0: Vec<u32>,
    pub j1: Vec<u32>,
    pub w1: Vec<f32>,
}

/// Taps of latent level `l` (length ⌈n/2^l⌉) for an axis of `n` voxels.
pub fn interpolation_taps(n: usize, l: u8) -> AxisTaps {
    let m = n.div_ceil(1 << l);
    let step = 1usize << l;
    let mut taps = AxisTaps {
        j0: Vec::with_capacity(n),
        j1: Vec::with_capacity(n),
        w1: Vec::with_capacity(n),
    };
    for i in 0..n {
        let j0 = (i >> l).min(m - 1);
        let j1 = (j0 + 1).min(m - 1);
        taps.j0.push(j0 as u32);
        taps.j1.push(j1 as u32);
        taps.w1.push((i % step) as f32 / step as f32);
    }
    taps
}

/// The synthesis MLP at one voxel: `input` has one value per latent level;
/// `params` per layer its weights (inputs × outputs, outputs fastest) then
/// biases; ReLU after every layer but the last. `scratch` holds two buffers
/// of the widest layer.
#[inline]
pub fn synthesize_voxel(
    shapes: &[(usize, usize)],
    params: &[f32],
    input: &[f32],
    scratch: &mut [Vec<f32>; 2],
) -> f32 {
    let [a, b] = scratch;
    a.clear();
    a.extend_from_slice(input);
    let mut p = 0;
    let last = shapes.len() - 1;
    for (k, &(i, o)) in shapes.iter().enumerate() {
        let (w, rest) = params[p..].split_at(i * o);
        let bias = &rest[..o];
        p += i * o + o;
        b.clear();
        b.extend_from_slice(bias);
        for (r, &x) in a.iter().enumerate() {
            let row = &w[r * o..(r + 1) * o];
            for (acc, &wv) in b.iter_mut().zip(row) {
                *acc += x * wv;
            }
        }
        if k < last {
            for v in b.iter_mut() {
                *v = v.max(0.0);
            }
        }
        std::mem::swap(a, b);
    }
    a[0]
}

/// Voxels of a row the decoder synthesizes together, one per lane.
const LANES: usize = 8;
type Lanes = [f32; LANES];

/// [`synthesize_voxel`] at 8 voxels at once (`input`: one lane array per
/// latent level): per lane exactly its arithmetic, in its order (no fused
/// multiply-adds), so the result is the same to the bit; only faster.
#[inline]
fn synthesize_lanes(
    shapes: &[(usize, usize)],
    params: &[f32],
    input: &[Lanes],
    scratch: &mut [Vec<Lanes>; 2],
) -> Lanes {
    let [a, b] = scratch;
    a.clear();
    a.extend_from_slice(input);
    let mut p = 0;
    let last = shapes.len() - 1;
    for (k, &(i, o)) in shapes.iter().enumerate() {
        let (w, rest) = params[p..].split_at(i * o);
        let bias = &rest[..o];
        p += i * o + o;
        b.clear();
        for (j, &bj) in bias.iter().enumerate() {
            let mut acc = [bj; LANES];
            for (x, row) in a.iter().zip(w.chunks_exact(o)) {
                let wv = row[j];
                for l in 0..LANES {
                    acc[l] += x[l] * wv;
                }
            }
            if k < last {
                acc = acc.map(|v| v.max(0.0));
            }
            b.push(acc);
        }
        std::mem::swap(a, b);
    }
    a[0]
}

/// `grid += synthesis(section)`, `grid` being the scale's grid of `dims`.
pub fn add_synthesis(section: &GridSection, dims: [usize; 4], grid: &mut [f32]) {
    assert_eq!(grid.len(), dims.iter().product::<usize>());
    let levels = section.arch.levels;
    let shapes = section.arch.synthesis_shapes();
    // Taps per level and axis, and the latents as floats.
    let taps: Vec<[AxisTaps; 4]> = (0..levels)
        .map(|l| [0, 1, 2, 3].map(|a| interpolation_taps(dims[a], l)))
        .collect();
    let ldims: Vec<[usize; 4]> = (0..levels).map(|l| latent_dims(dims, l)).collect();
    let latents = section.channels(dims);
    let [nx, ny, nz, _] = dims;
    type Scratch = ([Vec<Lanes>; 2], Vec<Lanes>, Vec<Vec<f32>>);
    let row = |(r, out): (usize, &mut [f32]), scratch: &mut Scratch| {
        let (y, z, t) = (r % ny, (r / ny) % nz, r / (ny * nz));
        let (mlp, input, combined) = scratch;
        input.resize(levels as usize, [0.0; LANES]);
        combined.resize(levels as usize, Vec::new());
        for l in 0..levels as usize {
            let (base, w) = level_rows(&taps[l], ldims[l], [y, z, t]);
            combine_rows(&latents[l], &base, &w, ldims[l][0], &mut combined[l]);
        }
        for (x0, o) in (0..nx).step_by(LANES).zip(out.chunks_mut(LANES)) {
            for l in 0..levels as usize {
                input[l] = std::array::from_fn(|k| {
                    let x = (x0 + k).min(nx - 1);
                    channel(&combined[l], &taps[l][0], x)
                });
            }
            let v = synthesize_lanes(&shapes, &section.synthesis, input, mlp);
            for (o, v) in o.iter_mut().zip(v) {
                *o += v;
            }
        }
    };
    let init = || ([Vec::new(), Vec::new()], Vec::new(), Vec::new());
    #[cfg(feature = "parallel")]
    grid.par_chunks_mut(nx)
        .enumerate()
        .for_each_init(init, |s, item| row(item, s));
    #[cfg(not(feature = "parallel"))]
    {
        let mut s = init();
        grid.chunks_mut(nx)
            .enumerate()
            .for_each(|item| row(item, &mut s));
    }
}

/// The 8 latent rows (start index) a voxel row (y, z, t) of the scale grid
/// reads at one level, and their y·z·t weights, in the fixed order t, z, y
/// (j0 before j1 on each axis).
#[inline]
pub fn level_rows(
    taps: &[AxisTaps; 4],
    ldims: [usize; 4],
    [y, z, t]: [usize; 3],
) -> ([usize; 8], [f32; 8]) {
    let [_, ty, tz, tt] = taps;
    let [lx, ly, lz, _] = ldims;
    let mut base = [0usize; 8];
    let mut w = [0f32; 8];
    let mut k = 0;
    for (jt, wt) in [(tt.j0[t], 1.0 - tt.w1[t]), (tt.j1[t], tt.w1[t])] {
        for (jz, wz) in [(tz.j0[z], 1.0 - tz.w1[z]), (tz.j1[z], tz.w1[z])] {
            for (jy, wy) in [(ty.j0[y], 1.0 - ty.w1[y]), (ty.j1[y], ty.w1[y])] {
                base[k] = ((jt as usize * lz + jz as usize) * ly + jy as usize) * lx;
                w[k] = wt * wz * wy;
                k += 1;
            }
        }
    }
    (base, w)
}

/// The weighted sum of a voxel row's latent rows: `out[j] = Σ_k w_k ·
/// v[base_k + j]` over the rows of non-zero weight, in order (a zero-weight
/// row would add exactly 0, so skipping it changes nothing).
#[inline]
pub fn combine_rows(
    values: &[f32],
    base: &[usize; 8],
    w: &[f32; 8],
    lx: usize,
    out: &mut Vec<f32>,
) {
    out.clear();
    out.resize(lx, 0.0);
    for k in 0..8 {
        if w[k] == 0.0 {
            continue;
        }
        let (wk, row) = (w[k], &values[base[k]..base[k] + lx]);
        for (o, &v) in out.iter_mut().zip(row) {
            *o += wk * v;
        }
    }
}

/// One channel at voxel `x`: (1 − w_x)·row[j0] + w_x·row[j1] of the combined row.
#[inline]
pub fn channel(combined: &[f32], tx: &AxisTaps, x: usize) -> f32 {
    let (j0, j1, wx) = (tx.j0[x] as usize, tx.j1[x] as usize, tx.w1[x]);
    (1.0 - wx) * combined[j0] + wx * combined[j1]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::GridArchitecture;
    use crate::synth::SplitMix;

    /// The 8-lane decode gives, to the bit, what the one-voxel reference
    /// gives at every voxel (rows not a multiple of 8 long, 4D, one-voxel
    /// axes, a linear synthesis and a deep one).
    #[test]
    fn lane_decode_is_the_voxel_reference() {
        let mut rng = SplitMix(21);
        for (dims, levels, hidden) in [
            ([13, 3, 2, 2], 3u8, vec![7u16, 5]),
            ([8, 1, 1, 1], 1, vec![]),
            ([1, 9, 4, 1], 2, vec![16]),
            ([21, 6, 5, 1], 4, vec![12, 12, 8]),
        ] {
            let arch = GridArchitecture {
                levels,
                synthesis: hidden,
                context_hidden: 0,
            };
            let shapes = arch.synthesis_shapes();
            let section = GridSection {
                level: 0,
                synthesis: (0..arch.synthesis_params())
                    .map(|_| rng.symmetric(0.7))
                    .collect(),
                context: vec![0; 0],
                latents: (0..levels)
                    .map(|l| {
                        let n: usize = latent_dims(dims, l).iter().product();
                        (0..n).map(|_| rng.symmetric(5.0).round() as i32).collect()
                    })
                    .collect(),
                arch,
                lifting: None,
                coder: crate::grid::entropy::Coder::Contextual,
                loop_filters: Vec::new(),
            };
            let n: usize = dims.iter().product();
            let base: Vec<f32> = (0..n).map(|_| rng.symmetric(1.0)).collect();
            let mut got = base.clone();
            add_synthesis(&section, dims, &mut got);

            let taps: Vec<[AxisTaps; 4]> = (0..levels)
                .map(|l| [0, 1, 2, 3].map(|a| interpolation_taps(dims[a], l)))
                .collect();
            let latents: Vec<Vec<f32>> = section
                .latents
                .iter()
                .map(|v| v.iter().map(|&x| x as f32).collect())
                .collect();
            let mut scratch = [Vec::new(), Vec::new()];
            let mut combined = Vec::new();
            for r in 0..n / dims[0] {
                let (y, z, t) = (
                    r % dims[1],
                    (r / dims[1]) % dims[2],
                    r / (dims[1] * dims[2]),
                );
                let mut input = vec![Vec::new(); levels as usize];
                for l in 0..levels as usize {
                    let (b, w) = level_rows(&taps[l], latent_dims(dims, l as u8), [y, z, t]);
                    combine_rows(
                        &latents[l],
                        &b,
                        &w,
                        latent_dims(dims, l as u8)[0],
                        &mut combined,
                    );
                    input[l] = (0..dims[0])
                        .map(|x| channel(&combined, &taps[l][0], x))
                        .collect();
                }
                for x in 0..dims[0] {
                    let inp: Vec<f32> = input.iter().map(|c| c[x]).collect();
                    let want = base[r * dims[0] + x]
                        + synthesize_voxel(&shapes, &section.synthesis, &inp, &mut scratch);
                    assert_eq!(
                        got[r * dims[0] + x].to_bits(),
                        want.to_bits(),
                        "{dims:?} row {r} x {x}"
                    );
                }
            }
        }
    }
}
