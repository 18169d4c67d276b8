//! The synthesis half of a training step, by hand: interpolate every latent
//! level to the scale's grid, run the MLP per voxel, and back-propagate the
//! squared error into the MLP's parameters and the latents. The forward pass
//! uses the reference decoder's own interpolation and row order
//! (`strata_format::grid`), so training sees what decoding will compute.

use rayon::prelude::*;
use strata_format::grid::{interpolation_taps, latent_dims, level_rows, AxisTaps};

/// Gradients of one step's distortion term.
pub struct SynthesisGrads {
    /// Σ (out − target)² over the rows visited.
    pub sq_error: f64,
    /// Voxels visited.
    pub voxels: usize,
    pub params: Vec<f32>,
    /// Per latent level, d(Σ err²)/d(latent).
    pub latents: Vec<Vec<f32>>,
}

/// Taps and latent dims of a scale's levels, built once per scale.
pub struct Interpolation {
    pub dims: [usize; 4],
    pub taps: Vec<[AxisTaps; 4]>,
    pub ldims: Vec<[usize; 4]>,
}

impl Interpolation {
    pub fn new(dims: [usize; 4], levels: u8) -> Interpolation {
        Interpolation {
            dims,
            taps: (0..levels)
                .map(|l| [0, 1, 2, 3].map(|a| interpolation_taps(dims[a], l)))
                .collect(),
            ldims: (0..levels).map(|l| latent_dims(dims, l)).collect(),
        }
    }
}

// Voxels of a row are processed 8 at a time: the MLP runs on lanes.
use super::lanes::{has_avx2_fma, madd, Lanes, LANES};

/// Forward and backward over the voxel rows `rows` (indices of (y, z, t)
/// rows; all rows when `None`), against `target` (the scale's grid).
pub fn step(
    interp: &Interpolation,
    shapes: &[(usize, usize)],
    params: &[f32],
    latents: &[Vec<f32>],
    target: &[f32],
    rows: Option<&[u32]>,
) -> SynthesisGrads {
    let [_, ny, nz, nt] = interp.dims;
    let n_rows = ny * nz * nt;
    let threads = rayon::current_num_threads().max(1);
    let all: Vec<u32>;
    let rows = match rows {
        Some(r) => r,
        None => {
            all = (0..n_rows as u32).collect();
            &all
        }
    };
    let per = rows.len().div_ceil(threads).max(1);
    let parts: Vec<SynthesisGrads> = rows
        .par_chunks(per)
        .map(|chunk| run_rows(interp, shapes, params, latents, target, chunk))
        .collect();
    let mut it = parts.into_iter();
    let mut total = it.next().expect("at least one part");
    for p in it {
        total.sq_error += p.sq_error;
        total.voxels += p.voxels;
        add_into(&mut total.params, &p.params);
        for (a, b) in total.latents.iter_mut().zip(&p.latents) {
            add_into(a, b);
        }
    }
    total
}

/// Rows on this CPU's widest vectors: the same code compiled for AVX2 and
/// FMA where the CPU has them (8 f32 lanes), else for the baseline (SSE2).
fn run_rows(
    interp: &Interpolation,
    shapes: &[(usize, usize)],
    params: &[f32],
    latents: &[Vec<f32>],
    target: &[f32],
    rows: &[u32],
) -> SynthesisGrads {
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: the CPU has AVX2 and FMA, checked just above.
        return unsafe { run_rows_avx2(interp, shapes, params, latents, target, rows) };
    }
    run_rows_generic::<false>(interp, shapes, params, latents, target, rows)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn run_rows_avx2(
    interp: &Interpolation,
    shapes: &[(usize, usize)],
    params: &[f32],
    latents: &[Vec<f32>],
    target: &[f32],
    rows: &[u32],
) -> SynthesisGrads {
    run_rows_generic::<true>(interp, shapes, params, latents, target, rows)
}

#[inline(always)]
fn run_rows_generic<const FMA: bool>(
    interp: &Interpolation,
    shapes: &[(usize, usize)],
    params: &[f32],
    latents: &[Vec<f32>],
    target: &[f32],
    rows: &[u32],
) -> SynthesisGrads {
    let [nx, ny, nz, _] = interp.dims;
    let levels = latents.len();
    let n_layers = shapes.len();
    let mut g = SynthesisGrads {
        sq_error: 0.0,
        voxels: 0,
        params: vec![0.0; params.len()],
        latents: latents.iter().map(|l| vec![0.0; l.len()]).collect(),
    };
    // Per-lane parameter gradients, summed over lanes at the end.
    let mut gp: Vec<Lanes> = vec![[0.0; LANES]; params.len()];
    // Activations per layer: the input, then each layer's output.
    let mut acts: Vec<Vec<Lanes>> = std::iter::once(levels)
        .chain(shapes.iter().map(|s| s.1))
        .map(|w| vec![[0.0; LANES]; w])
        .collect();
    let widest = shapes.iter().map(|s| s.1.max(s.0)).max().unwrap_or(1);
    let mut grad: Vec<Lanes> = vec![[0.0; LANES]; widest];
    let mut grad_next: Vec<Lanes> = vec![[0.0; LANES]; widest];
    let mut combined: Vec<Vec<f32>> = vec![Vec::new(); levels];
    let mut gcombined: Vec<Vec<f32>> = vec![Vec::new(); levels];
    let mut lrows: Vec<([usize; 8], [f32; 8])> = Vec::with_capacity(levels);
    let mut err_sum = 0f64;
    // Layer offsets into `params`.
    let mut offsets = Vec::with_capacity(n_layers);
    let mut p = 0;
    for &(i, o) in shapes {
        offsets.push(p);
        p += i * o + o;
    }
    for &r in rows {
        let r = r as usize;
        let (y, z, t) = (r % ny, (r / ny) % nz, r / (ny * nz));
        lrows.clear();
        for l in 0..levels {
            let (base, w) = level_rows(&interp.taps[l], interp.ldims[l], [y, z, t]);
            let lx = interp.ldims[l][0];
            strata_format::grid::combine_rows(&latents[l], &base, &w, lx, &mut combined[l]);
            gcombined[l].clear();
            gcombined[l].resize(lx, 0.0);
            lrows.push((base, w));
        }
        let trow = &target[r * nx..(r + 1) * nx];
        let mut x0 = 0;
        while x0 < nx {
            let n = LANES.min(nx - x0);
            // Forward: the channels, then the layers.
            for l in 0..levels {
                let tx = &interp.taps[l][0];
                for k in 0..LANES {
                    acts[0][l][k] = if k < n {
                        strata_format::grid::channel(&combined[l], tx, x0 + k)
                    } else {
                        0.0
                    };
                }
            }
            for (li, &(i, o)) in shapes.iter().enumerate() {
                let (before, after) = acts.split_at_mut(li + 1);
                let (a, b) = (&before[li][..i], &mut after[0][..o]);
                let off = offsets[li];
                let wts = &params[off..off + i * o];
                let bias = &params[off + i * o..off + i * o + o];
                let relu = li + 1 < n_layers;
                for (j, (bj, &bias_j)) in b.iter_mut().zip(bias).enumerate() {
                    let mut acc = [bias_j; LANES];
                    for (av, wrow) in a.iter().zip(wts.chunks_exact(o)) {
                        acc = madd::<FMA>(*av, [wrow[j]; LANES], acc);
                    }
                    if relu {
                        acc = acc.map(|v| v.max(0.0));
                    }
                    *bj = acc;
                }
            }
            // d(err²)/d(out) = 2·err, 0 on the lanes past the row's end.
            let out = acts[n_layers][0];
            let mut g0 = [0f32; LANES];
            for k in 0..n {
                let err = out[k] - trow[x0 + k];
                err_sum += (err * err) as f64;
                g0[k] = 2.0 * err;
            }
            grad[0] = g0;
            for (li, &(i, o)) in shapes.iter().enumerate().rev() {
                let off = offsets[li];
                let a = &acts[li][..i];
                let wts = &params[off..off + i * o];
                let (gw_all, gb) = gp[off..off + i * o + o].split_at_mut(i * o);
                let gj = &grad[..o];
                for (g, d) in gb.iter_mut().zip(gj) {
                    for k in 0..LANES {
                        g[k] += d[k];
                    }
                }
                let rows = a
                    .iter()
                    .zip(wts.chunks_exact(o))
                    .zip(gw_all.chunks_exact_mut(o));
                for (ii, ((av, wrow), gwrow)) in rows.enumerate() {
                    let mut s = [0f32; LANES];
                    for ((gw, &w), d) in gwrow.iter_mut().zip(wrow).zip(gj) {
                        *gw = madd::<FMA>(*av, *d, *gw);
                        s = madd::<FMA>([w; LANES], *d, s);
                    }
                    // Through the ReLU of the layer below (not the input).
                    if li > 0 {
                        for k in 0..LANES {
                            if av[k] <= 0.0 {
                                s[k] = 0.0;
                            }
                        }
                    }
                    grad_next[ii] = s;
                }
                std::mem::swap(&mut grad, &mut grad_next);
            }
            // grad[..levels] is d/d(channel): into the combined rows.
            for l in 0..levels {
                let tx = &interp.taps[l][0];
                let gc = &mut gcombined[l];
                for k in 0..n {
                    let x = x0 + k;
                    let (j0, j1, wx) = (tx.j0[x] as usize, tx.j1[x] as usize, tx.w1[x]);
                    gc[j0] += (1.0 - wx) * grad[l][k];
                    gc[j1] += wx * grad[l][k];
                }
            }
            x0 += LANES;
        }
        // The combined rows' gradients back to their latent rows.
        for (l, (base, w)) in lrows.iter().enumerate() {
            let lx = interp.ldims[l][0];
            let gl = &mut g.latents[l];
            for k in 0..8 {
                if w[k] == 0.0 {
                    continue;
                }
                for (d, &s) in gl[base[k]..base[k] + lx].iter_mut().zip(&gcombined[l]) {
                    *d += w[k] * s;
                }
            }
        }
        g.voxels += nx;
    }
    for (d, lanes) in g.params.iter_mut().zip(&gp) {
        *d = lanes.iter().sum();
    }
    g.sq_error = err_sum;
    g
}

fn add_into(a: &mut [f32], b: &[f32]) {
    a.par_iter_mut().zip(b).for_each(|(x, &y)| *x += y);
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_format::grid::GridArchitecture;
    use strata_format::synth::SplitMix;

    /// The hand-written backward pass against central differences of the
    /// forward one, for the MLP's parameters and the latents.
    #[test]
    fn gradients_match_finite_differences() {
        let mut rng = SplitMix(11);
        let dims = [13, 5, 4, 2];
        let arch = GridArchitecture {
            levels: 3,
            synthesis: vec![5, 4],
            context_hidden: 0,
        };
        let shapes = arch.synthesis_shapes();
        let interp = Interpolation::new(dims, arch.levels);
        let latents: Vec<Vec<f32>> = interp
            .ldims
            .iter()
            .map(|d| {
                (0..d.iter().product::<usize>())
                    .map(|_| rng.symmetric(2.0))
                    .collect()
            })
            .collect();
        let params: Vec<f32> = (0..arch.synthesis_params())
            .map(|_| rng.symmetric(0.6))
            .collect();
        let target: Vec<f32> = (0..dims.iter().product::<usize>())
            .map(|_| rng.symmetric(1.0))
            .collect();
        let rows: Vec<u32> = (0..(dims[1] * dims[2] * dims[3]) as u32)
            .filter(|r| r % 3 != 1)
            .collect();
        let loss =
            |p: &[f32], l: &[Vec<f32>]| step(&interp, &shapes, p, l, &target, Some(&rows)).sq_error;
        let g = step(&interp, &shapes, &params, &latents, &target, Some(&rows));
        let e = 1e-3f32;
        let scale = g.params.iter().fold(1e-3f32, |m, x| m.max(x.abs()));
        for i in 0..params.len() {
            let (mut a, mut b) = (params.clone(), params.clone());
            a[i] += e;
            b[i] -= e;
            let fd = ((loss(&a, &latents) - loss(&b, &latents)) / (2.0 * e as f64)) as f32;
            assert!(
                (fd - g.params[i]).abs() < 2e-2 * scale,
                "param {i}: {} vs {fd}",
                g.params[i]
            );
        }
        for l in 0..latents.len() {
            let scale = g.latents[l].iter().fold(1e-3f32, |m, x| m.max(x.abs()));
            for i in (0..latents[l].len()).step_by(7) {
                let (mut a, mut b) = (latents.clone(), latents.clone());
                a[l][i] += e;
                b[l][i] -= e;
                let fd = ((loss(&params, &a) - loss(&params, &b)) / (2.0 * e as f64)) as f32;
                assert!(
                    (fd - g.latents[l][i]).abs() < 2e-2 * scale,
                    "level {l} latent {i}: {} vs {fd}",
                    g.latents[l][i]
                );
            }
        }
    }
}
