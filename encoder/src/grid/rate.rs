//! The rate half of a training step: the float twin of the fixed-point
//! context network (`strata_format::grid::entropy`) predicts each latent's
//! Laplace mean and scale from the same context, and the bits of the latent
//! under that discretized Laplace are differentiated by hand with respect to
//! the latent and the network's parameters. Contexts are treated as
//! constants (no gradient into the neighbours), as a detached context.

use rayon::prelude::*;
use strata_format::grid::entropy::{
    chunks, Chunk, CONTEXT_CLAMP, CONTEXT_INPUTS, NEIGHBOURS, SCALE_STEPS,
};

const LN2: f32 = std::f32::consts::LN_2;

/// Bits of integer-or-continuous `x` under a Laplace of mean `mu`, scale `b`,
/// discretized to unit bins, and d(bits)/d(x), d(bits)/d(b).
#[inline]
pub fn laplace_bits(x: f32, mu: f32, b: f32) -> (f32, f32, f32) {
    let a = x - mu;
    let q = (-1.0 / b).exp();
    let one_minus_q = (1.0 - q).max(1e-12);
    if a.abs() >= 0.5 {
        // A tail bin: P = ½·e^{−(|a|−½)/b}·(1 − q).
        let m = a.abs() - 0.5;
        let bits = 1.0 + m / (b * LN2) - one_minus_q.log2();
        let da = a.signum() / (b * LN2);
        let db = (-m + q / one_minus_q) / (b * b * LN2);
        (bits, da, db)
    } else {
        let e1 = (-(0.5 - a) / b).exp();
        let e2 = (-(0.5 + a) / b).exp();
        let p = (1.0 - 0.5 * e1 - 0.5 * e2).max(1e-12);
        let dp_da = (-0.5 * e1 + 0.5 * e2) / b;
        let dp_db = (-0.5 * (0.5 - a) * e1 - 0.5 * (0.5 + a) * e2) / (b * b);
        let k = -1.0 / (p * LN2);
        (-p.log2(), k * dp_da, k * dp_db)
    }
}

/// Parameter layout of the context network, as the format stores it:
/// W1 (inputs × hidden), b1, W2 (hidden × 2), skip (inputs × 2), b2 (2).
#[derive(Clone, Copy)]
pub struct ContextLayout {
    pub hidden: usize,
}

impl ContextLayout {
    pub fn len(&self) -> usize {
        let (n, h) = (CONTEXT_INPUTS, self.hidden);
        n * h + h + h * 2 + n * 2 + 2
    }
}

/// Gradients of one step's rate term.
pub struct RateGrads {
    /// Total bits of all latents under the current model.
    pub bits: f64,
    pub params: Vec<f32>,
    /// Per latent level, d(bits)/d(latent).
    pub latents: Vec<Vec<f32>>,
}

/// The float context of a latent, the fixed-point one's twin.
#[inline]
fn context(
    values: &[f32],
    [dx, dy]: [usize; 2],
    parent: Option<(&[f32], [usize; 4])>,
    [x, y, zl]: [usize; 3],
    chunk: Chunk,
) -> [f32; CONTEXT_INPUTS] {
    let mut c = [0f32; CONTEXT_INPUTS];
    let lim = CONTEXT_CLAMP as f32;
    for (k, o) in NEIGHBOURS.iter().enumerate() {
        let (nx, ny, nz) = (
            x as isize + o[0] as isize,
            y as isize + o[1] as isize,
            zl as isize + o[2] as isize,
        );
        if nx < 0 || ny < 0 || nz < 0 || nx >= dx as isize || ny >= dy as isize {
            continue;
        }
        c[k] = values[(nz as usize * dy + ny as usize) * dx + nx as usize].clamp(-lim, lim);
    }
    if let Some((p, [px, py, pz, pt])) = parent {
        let z = chunk.z0 + zl;
        let i = ((((chunk.t / 2).min(pt - 1) * pz + (z / 2).min(pz - 1)) * py
            + (y / 2).min(py - 1))
            * px)
            + (x / 2).min(px - 1);
        c[NEIGHBOURS.len()] = p[i].clamp(-lim, lim);
    }
    c
}

/// Laplace scale of a (continuous) scale index: b = 2^(s/8)/16, and db/ds.
#[inline]
pub fn scale_of(s: f32) -> (f32, f32) {
    let clamped = s.clamp(0.0, (SCALE_STEPS - 1) as f32);
    let b = (clamped / 8.0).exp2() / 16.0;
    let db = if s == clamped { b * LN2 / 8.0 } else { 0.0 };
    (b, db)
}

/// Bits of all levels' latents `values` (finest first; the proxy values a
/// step trains on) and their gradients. The network's parameter gradients
/// are taken on one chunk in `param_every` (those whose index ≡ `phase`),
/// scaled up: they need far fewer samples than the latents, which all get
/// their own gradient every step.
pub fn step(
    layout: ContextLayout,
    params: &[f32],
    values: &[Vec<f32>],
    ldims: &[[usize; 4]],
    param_every: usize,
    phase: usize,
) -> RateGrads {
    let param_every = param_every.max(1);
    let n = CONTEXT_INPUTS;
    let h = layout.hidden;
    let (w1, rest) = params.split_at(n * h);
    let (b1, rest) = rest.split_at(h);
    let (w2, rest) = rest.split_at(h * 2);
    let (skip, b2) = rest.split_at(n * 2);
    let o_w1 = 0;
    let o_b1 = n * h;
    let o_w2 = o_b1 + h;
    let o_skip = o_w2 + h * 2;
    let o_b2 = o_skip + n * 2;
    let levels = values.len();
    let mut latents: Vec<Vec<f32>> = values.iter().map(|v| vec![0.0; v.len()]).collect();
    let mut bits = 0f64;
    let mut gparams = vec![0f32; params.len()];
    for l in 0..levels {
        let dims = ldims[l];
        let parent = (l + 1 < levels).then(|| (values[l + 1].as_slice(), ldims[l + 1]));
        let cs = chunks(dims);
        let mut runs: Vec<&mut [f32]> = Vec::with_capacity(cs.len());
        let mut rest: &mut [f32] = &mut latents[l];
        for c in &cs {
            let (head, tail) = rest.split_at_mut(c.len(dims));
            runs.push(head);
            rest = tail;
        }
        // Small levels (one or few chunks) always train the parameters.
        let sampled = cs.len() / 4 >= param_every;
        let parts: Vec<(f64, Vec<f32>)> = runs
            .into_par_iter()
            .zip(cs.par_iter().enumerate())
            .map(|(grun, (ci, c))| {
                let weigh = !sampled || ci % param_every == phase % param_every;
                let boost = if sampled { param_every as f32 } else { 1.0 };
                let run = &values[l][c.offset(dims)..][..c.len(dims)];
                let mut gp = vec![0f32; params.len()];
                let mut hid = vec![0f32; h];
                let mut total = 0f64;
                let plane = [dims[0], dims[1]];
                for zl in 0..c.nz {
                    for y in 0..dims[1] {
                        for x in 0..dims[0] {
                            let ctx = context(run, plane, parent, [x, y, zl], *c);
                            let mut out = [b2[0], b2[1]];
                            for j in 0..h {
                                let mut acc = b1[j];
                                for i in 0..n {
                                    acc += w1[i * h + j] * ctx[i];
                                }
                                hid[j] = acc.max(0.0);
                                out[0] += w2[j * 2] * hid[j];
                                out[1] += w2[j * 2 + 1] * hid[j];
                            }
                            for i in 0..n {
                                out[0] += skip[i * 2] * ctx[i];
                                out[1] += skip[i * 2 + 1] * ctx[i];
                            }
                            // The second output is the scale in octaves above 1/16.
                            let (b, db_ds) = scale_of(8.0 * out[1]);
                            let i_self = (zl * dims[1] + y) * dims[0] + x;
                            let (bt, dx_, db) = laplace_bits(run[i_self], out[0], b);
                            total += bt as f64;
                            grun[i_self] += dx_;
                            if !weigh {
                                continue;
                            }
                            let g = [-dx_ * boost, db * db_ds * 8.0 * boost];
                            gp[o_b2] += g[0];
                            gp[o_b2 + 1] += g[1];
                            for i in 0..n {
                                gp[o_skip + i * 2] += g[0] * ctx[i];
                                gp[o_skip + i * 2 + 1] += g[1] * ctx[i];
                            }
                            for j in 0..h {
                                gp[o_w2 + j * 2] += g[0] * hid[j];
                                gp[o_w2 + j * 2 + 1] += g[1] * hid[j];
                                if hid[j] > 0.0 {
                                    let gh = w2[j * 2] * g[0] + w2[j * 2 + 1] * g[1];
                                    gp[o_b1 + j] += gh;
                                    for i in 0..n {
                                        gp[o_w1 + i * h + j] += gh * ctx[i];
                                    }
                                }
                            }
                        }
                    }
                }
                (total, gp)
            })
            .collect();
        for (b, gp) in parts {
            bits += b;
            for (a, g) in gparams.iter_mut().zip(&gp) {
                *a += g;
            }
        }
    }
    RateGrads {
        bits,
        params: gparams,
        latents,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn laplace_gradients_match_finite_differences() {
        for &(x, mu, b) in &[
            (0.0, 0.1, 0.3),
            (2.0, 0.4, 1.5),
            (-3.0, 0.2, 0.7),
            (0.3, -0.1, 4.0),
        ] {
            let (_, dx, db) = laplace_bits(x, mu, b);
            let e = 1e-3;
            let fx = (laplace_bits(x + e, mu, b).0 - laplace_bits(x - e, mu, b).0) / (2.0 * e);
            let fb = (laplace_bits(x, mu, b + e).0 - laplace_bits(x, mu, b - e).0) / (2.0 * e);
            assert!(
                (dx - fx).abs() < 2e-2 * (1.0 + fx.abs()),
                "{x} {mu} {b}: {dx} vs {fx}"
            );
            assert!(
                (db - fb).abs() < 2e-2 * (1.0 + fb.abs()),
                "{x} {mu} {b}: {db} vs {fb}"
            );
        }
        // The bins' probabilities add up to one.
        let total: f32 = (-60..=60)
            .map(|k| (-laplace_bits(k as f32, 0.3, 2.0).0).exp2())
            .sum();
        assert!((total - 1.0).abs() < 1e-4, "{total}");
    }
}
