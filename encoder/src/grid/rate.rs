//! The rate half of a training step: the float twin of the fixed-point
//! context network (`strata_format::grid::entropy`) predicts each latent's
//! Laplace mean and scale from the same context, and the bits of the latent
//! under that discretized Laplace are differentiated by hand with respect to
//! the latent and the network's parameters. Contexts are treated as
//! constants (no gradient into the neighbours), as a detached context.

use rayon::prelude::*;
use strata_format::grid::entropy::{
    chunks, is_coded, log2_eighths, parents, Chunk, ACTIVITY_INPUT, CONTEXT_CLAMP, CONTEXT_INPUTS,
    LEVEL_INPUT, NEIGHBOURS, PARITY_INPUT, SCALE_STEPS,
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

    /// Per parameter, a multiple of the learning rate: the weights of the
    /// inputs that run to tens (the activities, the level) move slower, so
    /// that one Adam step does not swing the prediction through them (at
    /// one rate for all, a 40×36×28 volume's calibration measured 70% more
    /// bits for a 4% finer step and landed at CR 48.9 for 40; MNI152 at
    /// half size changed by ≤ 0.1 dB).
    pub fn lr_scales(&self) -> Vec<f32> {
        let (n, h) = (CONTEXT_INPUTS, self.hidden);
        let of_input = |i: usize| match i {
            i if i >= ACTIVITY_INPUT => 0.25,
            LEVEL_INPUT => 0.5,
            _ => 1.0,
        };
        let mut s = Vec::with_capacity(self.len());
        for i in 0..n {
            s.extend(std::iter::repeat_n(of_input(i), h));
        }
        s.extend(std::iter::repeat_n(1.0, h + h * 2));
        for i in 0..n {
            s.extend([of_input(i); 2]);
        }
        s.extend([1.0; 2]);
        s
    }
}

/// Gradients of one step's rate term.
pub struct RateGrads {
    /// Total bits of the latents visited under the current model.
    pub bits: f64,
    /// Per level, per chunk (`entropy::chunks` order): its bits, 0 for the
    /// chunks not visited.
    pub chunk_bits: Vec<Vec<f64>>,
    pub params: Vec<f32>,
    /// Per latent level, d(bits)/d(latent).
    pub latents: Vec<Vec<f32>>,
}

/// Laplace scale of a (continuous) scale index: b = 2^(s/8)/16, and db/ds.
#[inline]
pub fn scale_of(s: f32) -> (f32, f32) {
    let clamped = s.clamp(0.0, (SCALE_STEPS - 1) as f32);
    let b = (clamped / 8.0).exp2() / 16.0;
    let db = if s == clamped { b * LN2 / 8.0 } else { 0.0 };
    (b, db)
}

/// The context network's parameters, split as the format stores them.
struct Net<'a> {
    h: usize,
    w1: &'a [f32],
    b1: &'a [f32],
    w2: &'a [f32],
    skip: &'a [f32],
    b2: &'a [f32],
}

impl<'a> Net<'a> {
    fn new(layout: ContextLayout, params: &'a [f32]) -> Net<'a> {
        let (n, h) = (CONTEXT_INPUTS, layout.hidden);
        let (w1, rest) = params.split_at(n * h);
        let (b1, rest) = rest.split_at(h);
        let (w2, rest) = rest.split_at(h * 2);
        let (skip, b2) = rest.split_at(n * 2);
        Net {
            h,
            w1,
            b1,
            w2,
            skip,
            b2,
        }
    }
    // Offsets of W1, b1, W2, skip, b2 in the parameter vector.
    fn offsets(&self) -> [usize; 5] {
        let n = CONTEXT_INPUTS;
        let o_b1 = n * self.h;
        let o_w2 = o_b1 + self.h;
        let o_skip = o_w2 + self.h * 2;
        [0, o_b1, o_w2, o_skip, o_skip + n * 2]
    }
}

/// Bits of all levels' latents `values` (finest first; the proxy values a
/// step trains on) and their gradients, on the chunks `visit` selects (per
/// level, per chunk; all when `None`: chunks are coded independently, so a
/// subset is exact for its own latents). The network's parameter gradients
/// are taken on one visited chunk in `param_every` (those whose rank ≡
/// `phase`), scaled up: they need far fewer samples than the latents, which
/// all get their own gradient every step.
pub fn step(
    layout: ContextLayout,
    params: &[f32],
    values: &[Vec<f32>],
    ldims: &[[usize; 4]],
    param_every: usize,
    phase: usize,
    visit: Option<&[Vec<bool>]>,
) -> RateGrads {
    let param_every = param_every.max(1);
    let net = Net::new(layout, params);
    let levels = values.len();
    let mut latents: Vec<Vec<f32>> = values.iter().map(|v| vec![0.0; v.len()]).collect();
    let mut bits = 0f64;
    let mut chunk_bits = Vec::with_capacity(levels);
    let mut gparams = vec![0f32; params.len()];
    for l in 0..levels {
        let dims = ldims[l];
        let parent = (l + 1 < levels).then(|| (values[l + 1].as_slice(), ldims[l + 1]));
        let cs = chunks(dims);
        let chosen = |ci: usize| visit.is_none_or(|v| v[l][ci]);
        // Visited chunks with their gradient runs and their rank among the
        // visited ones (which picks the parameter-gradient chunks).
        let mut runs: Vec<(usize, usize, &mut [f32])> = Vec::with_capacity(cs.len());
        let mut rest: &mut [f32] = &mut latents[l];
        for (ci, c) in cs.iter().enumerate() {
            let (head, tail) = rest.split_at_mut(c.len(dims));
            if chosen(ci) {
                runs.push((runs.len(), ci, head));
            }
            rest = tail;
        }
        // Small levels (one or few chunks) always train the parameters.
        let sampled = runs.len() / 4 >= param_every;
        let boost = if sampled { param_every as f32 } else { 1.0 };
        let parts: Vec<(usize, f64, Option<Vec<f32>>)> = runs
            .into_par_iter()
            .map(|(rank, ci, grun)| {
                let c = cs[ci];
                let weigh = !sampled || rank % param_every == phase % param_every;
                let run = &values[l][c.offset(dims)..][..c.len(dims)];
                let mut gp = weigh.then(|| vec![0f32; params.len()]);
                let at = Place {
                    dims,
                    chunk: c,
                    level: l,
                };
                let total = chunk_rate(&net, run, at, parent, grun, gp.as_deref_mut(), boost);
                (ci, total, gp)
            })
            .collect();
        let mut per_chunk = vec![0f64; cs.len()];
        for (ci, b, gp) in parts {
            bits += b;
            per_chunk[ci] = b;
            if let Some(gp) = gp {
                for (a, g) in gparams.iter_mut().zip(&gp) {
                    *a += g;
                }
            }
        }
        chunk_bits.push(per_chunk);
    }
    RateGrads {
        bits,
        chunk_bits,
        params: gparams,
        latents,
    }
}

/// The context network's prediction for single latents (the float twin of
/// `entropy::ContextNet::predict`): what rate–distortion rounding asks.
pub struct ContextModel<'a> {
    net: Net<'a>,
}

impl<'a> ContextModel<'a> {
    pub fn new(layout: ContextLayout, params: &'a [f32]) -> ContextModel<'a> {
        ContextModel {
            net: Net::new(layout, params),
        }
    }

    /// The Laplace mean and scale b for a latent's context.
    pub fn predict(&self, ctx: &[f32; CONTEXT_INPUTS]) -> (f32, f32) {
        let net = &self.net;
        let mut out = [net.b2[0], net.b2[1]];
        for j in 0..net.h {
            let mut acc = net.b1[j];
            for (i, &c) in ctx.iter().enumerate() {
                acc += net.w1[i * net.h + j] * c;
            }
            let hj = acc.max(0.0);
            out[0] += net.w2[j * 2] * hj;
            out[1] += net.w2[j * 2 + 1] * hj;
        }
        for (i, &c) in ctx.iter().enumerate() {
            out[0] += net.skip[i * 2] * c;
            out[1] += net.skip[i * 2 + 1] * c;
        }
        // The second output is the scale in octaves above 1/16.
        (out[0], scale_of(8.0 * out[1]).0)
    }
}

/// The float context of a latent, the fixed-point one's twin.
#[inline]
pub fn context_of(
    values: &[f32],
    [dx, dy]: [usize; 2],
    parent: Option<(&[f32], [usize; 4])>,
    [x, y, zl]: [usize; 3],
    chunk: Chunk,
    level: usize,
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
        for (k, v) in [x, y, z, chunk.t].into_iter().enumerate() {
            c[PARITY_INPUT + k] = (v & 1) as f32;
        }
        let mut sum = 0f32;
        for qt in parents(chunk.t, pt) {
            for qz in parents(z, pz) {
                for qy in parents(y, py) {
                    for qx in parents(x, px) {
                        sum += p[((qt * pz + qz) * py + qy) * px + qx]
                            .clamp(-lim, lim)
                            .abs();
                    }
                }
            }
        }
        c[ACTIVITY_INPUT + 1] = log2_eighths(1 + sum.round() as u32) as f32;
    }
    c[LEVEL_INPUT] = level as f32;
    let near: f32 = c[..NEIGHBOURS.len()].iter().map(|v| v.abs()).sum();
    c[ACTIVITY_INPUT] = log2_eighths(1 + near.round() as u32) as f32;
    c
}

// Latents of a row are evaluated 8 at a time, on lanes.
use super::lanes::{has_avx2_fma, madd, Lanes, LANES};

/// Where a chunk is: its level's dims, the chunk, the latent level.
#[derive(Clone, Copy)]
struct Place {
    dims: [usize; 4],
    chunk: Chunk,
    level: usize,
}

/// One chunk's bits; adds d(bits)/d(latent) into `grun` and, when `gp` is
/// given, `boost`·d(bits)/d(params) into it. Compiled for AVX2 where the
/// CPU has it, like the synthesis.
fn chunk_rate(
    net: &Net,
    run: &[f32],
    at: Place,
    parent: Option<(&[f32], [usize; 4])>,
    grun: &mut [f32],
    gp: Option<&mut [f32]>,
    boost: f32,
) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: the CPU has AVX2 and FMA, checked just above.
        return unsafe { chunk_rate_avx2(net, run, at, parent, grun, gp, boost) };
    }
    chunk_rate_generic::<false>(net, run, at, parent, grun, gp, boost)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn chunk_rate_avx2(
    net: &Net,
    run: &[f32],
    at: Place,
    parent: Option<(&[f32], [usize; 4])>,
    grun: &mut [f32],
    gp: Option<&mut [f32]>,
    boost: f32,
) -> f64 {
    chunk_rate_generic::<true>(net, run, at, parent, grun, gp, boost)
}

/// The context rows of a latent row, structure of arrays: input `i` of the
/// latent at x is `rows[i * padded + x]`, 0 outside the chunk (as the
/// fixed-point `context` has it) and past the row's end; and in `coded`, 1
/// for the latents coded ([`is_coded`]), 0 for the others. `column`: scratch
/// of at least the parent level's row length.
#[allow(clippy::too_many_arguments)]
fn fill_context_rows(
    rows: &mut [f32],
    coded: &mut [f32],
    column: &mut [f32],
    padded: usize,
    run: &[f32],
    [dx, dy]: [usize; 2],
    parent: Option<(&[f32], [usize; 4])>,
    [y, zl]: [usize; 2],
    c: Chunk,
    level: usize,
) {
    let lim = CONTEXT_CLAMP as f32;
    rows.fill(0.0);
    for (k, o) in NEIGHBOURS.iter().enumerate() {
        let (ny, nz) = (y as isize + o[1] as isize, zl as isize + o[2] as isize);
        if ny < 0 || nz < 0 || ny >= dy as isize {
            continue;
        }
        let src = &run[(nz as usize * dy + ny as usize) * dx..][..dx];
        let dst = &mut rows[k * padded..][..dx];
        let ox = o[0] as isize;
        let lo = (-ox).max(0) as usize;
        let hi = (dx as isize - ox).min(dx as isize).max(0) as usize;
        for x in lo..hi {
            dst[x] = src[(x as isize + ox) as usize].clamp(-lim, lim);
        }
    }
    if let Some((p, [px, py, pz, pt])) = parent {
        let z = c.z0 + zl;
        let base =
            (((c.t / 2).min(pt - 1) * pz + (z / 2).min(pz - 1)) * py + (y / 2).min(py - 1)) * px;
        let prow = &p[base..base + px];
        let dst = &mut rows[NEIGHBOURS.len() * padded..][..dx];
        for (x, d) in dst.iter_mut().enumerate() {
            *d = prow[(x / 2).min(px - 1)].clamp(-lim, lim);
        }
        // The parents' activity: Σ |p| over their 2×2×2, by parent column.
        let column = &mut column[..px];
        column.fill(0.0);
        for qt in parents(c.t, pt) {
            for qz in parents(z, pz) {
                for qy in parents(y, py) {
                    let r = &p[((qt * pz + qz) * py + qy) * px..][..px];
                    for (s, v) in column.iter_mut().zip(r) {
                        *s += v.clamp(-lim, lim).abs();
                    }
                }
            }
        }
        let dst = &mut rows[(ACTIVITY_INPUT + 1) * padded..][..dx];
        for (x, d) in dst.iter_mut().enumerate() {
            let sum: f32 = parents(x, px).map(|q| column[q]).sum();
            *d = log2_eighths(1 + sum.round() as u32) as f32;
        }
        for (x, d) in rows[PARITY_INPUT * padded..][..dx].iter_mut().enumerate() {
            *d = (x & 1) as f32;
        }
        for (k, v) in [y, z, c.t].into_iter().enumerate() {
            rows[(PARITY_INPUT + 1 + k) * padded..][..dx].fill((v & 1) as f32);
        }
    }
    rows[LEVEL_INPUT * padded..][..dx].fill(level as f32);
    let (inputs, activity) = rows.split_at_mut(ACTIVITY_INPUT * padded);
    for (x, d) in activity[..dx].iter_mut().enumerate() {
        let sum: f32 = (0..NEIGHBOURS.len())
            .map(|k| inputs[k * padded + x].abs())
            .sum();
        *d = log2_eighths(1 + sum.round() as u32) as f32;
    }
    let z = c.z0 + zl;
    for (x, m) in coded[..dx].iter_mut().enumerate() {
        *m = if is_coded(parent.is_some(), [x, y, z, c.t]) {
            1.0
        } else {
            0.0
        };
    }
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn chunk_rate_generic<const FMA: bool>(
    net: &Net,
    run: &[f32],
    Place {
        dims,
        chunk: c,
        level,
    }: Place,
    parent: Option<(&[f32], [usize; 4])>,
    grun: &mut [f32],
    gp: Option<&mut [f32]>,
    boost: f32,
) -> f64 {
    let (n, h) = (CONTEXT_INPUTS, net.h);
    let [dx, dy] = [dims[0], dims[1]];
    let padded = dx.div_ceil(LANES) * LANES;
    let mut rows = vec![0f32; n * padded];
    let mut own = vec![0f32; padded];
    let mut coded = vec![0f32; padded];
    let mut column = vec![0f32; parent.map_or(0, |(_, d)| d[0])];
    let mut hid: Vec<Lanes> = vec![[0.0; LANES]; h];
    // Per-lane parameter gradients, summed over lanes at the end.
    let mut gl: Vec<Lanes> = vec![
        [0.0; LANES];
        if gp.is_some() {
            net.offsets()[4] + 2
        } else {
            0
        }
    ];
    let [_, o_b1, o_w2, o_skip, o_b2] = net.offsets();
    let mut total = 0f64;
    for zl in 0..c.nz {
        for y in 0..dy {
            fill_context_rows(
                &mut rows,
                &mut coded,
                &mut column,
                padded,
                run,
                [dx, dy],
                parent,
                [y, zl],
                c,
                level,
            );
            let at = (zl * dy + y) * dx;
            own[..dx].copy_from_slice(&run[at..at + dx]);
            let grow = &mut grun[at..at + dx];
            let mut row_bits = [0f32; LANES];
            for x0 in (0..dx).step_by(LANES) {
                let live = (dx - x0).min(LANES);
                let ctx = |i: usize| -> Lanes {
                    rows[i * padded + x0..][..LANES]
                        .try_into()
                        .expect("8 lanes")
                };
                let mut out = [[net.b2[0]; LANES], [net.b2[1]; LANES]];
                for (j, (hj, (&b1, w2))) in hid
                    .iter_mut()
                    .zip(net.b1.iter().zip(net.w2.chunks_exact(2)))
                    .enumerate()
                {
                    let mut acc = [b1; LANES];
                    for (i, w1) in net.w1.chunks_exact(h).enumerate() {
                        acc = madd::<FMA>([w1[j]; LANES], ctx(i), acc);
                    }
                    *hj = acc.map(|v| v.max(0.0));
                    out[0] = madd::<FMA>([w2[0]; LANES], *hj, out[0]);
                    out[1] = madd::<FMA>([w2[1]; LANES], *hj, out[1]);
                }
                for (i, s) in net.skip.chunks_exact(2).enumerate() {
                    let cv = ctx(i);
                    out[0] = madd::<FMA>([s[0]; LANES], cv, out[0]);
                    out[1] = madd::<FMA>([s[1]; LANES], cv, out[1]);
                }
                let xs: Lanes = own[x0..x0 + LANES].try_into().expect("8 lanes");
                let (mut bits, mut da, mut db) = laplace_bits_lanes(xs, out[0], out[1], live);
                for k in 0..LANES {
                    let m = coded[x0 + k];
                    bits[k] *= m;
                    da[k] *= m;
                    db[k] *= m;
                }
                for k in 0..live {
                    row_bits[k] += bits[k];
                    grow[x0 + k] += da[k];
                }
                if gp.is_none() {
                    continue;
                }
                let g0: Lanes = std::array::from_fn(|k| -da[k] * boost);
                let g1: Lanes = std::array::from_fn(|k| db[k] * boost);
                for k in 0..LANES {
                    gl[o_b2][k] += g0[k];
                    gl[o_b2 + 1][k] += g1[k];
                }
                for (i, gs) in gl[o_skip..o_skip + 2 * n].chunks_exact_mut(2).enumerate() {
                    let cv = ctx(i);
                    gs[0] = madd::<FMA>(g0, cv, gs[0]);
                    gs[1] = madd::<FMA>(g1, cv, gs[1]);
                }
                for j in 0..h {
                    let (w0, w1) = (net.w2[j * 2], net.w2[j * 2 + 1]);
                    let mut gh = [0f32; LANES];
                    for k in 0..LANES {
                        gl[o_w2 + j * 2][k] += g0[k] * hid[j][k];
                        gl[o_w2 + j * 2 + 1][k] += g1[k] * hid[j][k];
                        gh[k] = if hid[j][k] > 0.0 {
                            w0 * g0[k] + w1 * g1[k]
                        } else {
                            0.0
                        };
                        gl[o_b1 + j][k] += gh[k];
                    }
                    for (i, g) in gl[..n * h].chunks_exact_mut(h).enumerate() {
                        g[j] = madd::<FMA>(gh, ctx(i), g[j]);
                    }
                }
            }
            total += row_bits.iter().map(|&b| b as f64).sum::<f64>();
        }
    }
    if let Some(gp) = gp {
        for (d, lanes) in gp.iter_mut().zip(&gl) {
            *d += lanes.iter().sum::<f32>();
        }
    }
    total
}

const LOG2E: f32 = std::f32::consts::LOG2_E;

/// 2^x for |x| ≤ 126 (clamped there), to ~2e-7 relative: a degree-6
/// polynomial on the fraction in [−½, ½]; plain arithmetic, so it runs on
/// vector lanes (libm's `exp` does not).
#[inline(always)]
fn exp2_lanes(x: Lanes) -> Lanes {
    std::array::from_fn(|k| {
        let x = x[k].clamp(-126.0, 126.0);
        // round(x): truncation of x − ½, plus one where that is ≥ 0.
        let n = (x - 0.5) as i32 + (x - 0.5 >= 0.0) as i32;
        let f = x - n as f32;
        let p = 1.0
            + f * (LN2
                + f * (0.240_226_5
                    + f * (0.055_504_11
                        + f * (0.009_618_129 + f * (0.001_333_355_8 + f * 0.000_154_035_3)))));
        p * f32::from_bits(((n + 127) as u32) << 23)
    })
}

/// log2(y) for normal y > 0, to ~1e-7 absolute: the exponent, then
/// 2·atanh((m−1)/(m+1))/ln 2 on the mantissa in [1/√2, √2).
#[inline(always)]
fn log2_lanes(y: Lanes) -> Lanes {
    std::array::from_fn(|k| {
        let bits = y[k].to_bits();
        let mut e = ((bits >> 23) & 0xff) as i32 - 127;
        let mut m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000);
        if m > std::f32::consts::SQRT_2 {
            m *= 0.5;
            e += 1;
        }
        let s = (m - 1.0) / (m + 1.0);
        let s2 = s * s;
        let series = 1.0 + s2 * (1.0 / 3.0 + s2 * (0.2 + s2 * (1.0 / 7.0 + s2 / 9.0)));
        e as f32 + 2.0 * LOG2E * s * series
    })
}

/// [`laplace_bits`] on lanes, from the network's two outputs (the mean and
/// the scale in octaves): the bits, d(bits)/d(x) and d(bits)/d(out1);
/// 0 past `live`. Both branches are computed and one selected per lane.
#[inline(always)]
fn laplace_bits_lanes(xs: Lanes, mu: Lanes, octaves: Lanes, live: usize) -> (Lanes, Lanes, Lanes) {
    let max_s = (SCALE_STEPS - 1) as f32;
    let s: Lanes = std::array::from_fn(|k| 8.0 * octaves[k]);
    let b = exp2_lanes(std::array::from_fn(|k| s[k].clamp(0.0, max_s) / 8.0 - 4.0));
    // db/d(out1) = 8·db/ds = b·ln 2 inside the table's range, else 0.
    let db_do: Lanes = std::array::from_fn(|k| {
        if s[k] >= 0.0 && s[k] <= max_s {
            b[k] * LN2
        } else {
            0.0
        }
    });
    let inv_b: Lanes = std::array::from_fn(|k| 1.0 / b[k]);
    let a: Lanes = std::array::from_fn(|k| xs[k] - mu[k]);
    let ac: Lanes = std::array::from_fn(|k| a[k].clamp(-0.5, 0.5));
    let q = exp2_lanes(std::array::from_fn(|k| -inv_b[k] * LOG2E));
    let e1 = exp2_lanes(std::array::from_fn(|k| -(0.5 - ac[k]) * inv_b[k] * LOG2E));
    let e2 = exp2_lanes(std::array::from_fn(|k| -(0.5 + ac[k]) * inv_b[k] * LOG2E));
    let om: Lanes = std::array::from_fn(|k| (1.0 - q[k]).max(1e-12));
    let p: Lanes = std::array::from_fn(|k| (1.0 - 0.5 * e1[k] - 0.5 * e2[k]).max(1e-12));
    let log_om = log2_lanes(om);
    let log_p = log2_lanes(p);
    let mut bits = [0f32; LANES];
    let mut da = [0f32; LANES];
    let mut dout = [0f32; LANES];
    let inv_ln2 = 1.0 / LN2;
    for k in 0..LANES {
        let ib = inv_b[k];
        // A tail bin: P = ½·e^{−(|a|−½)/b}·(1 − q).
        let m = a[k].abs() - 0.5;
        let bits_t = 1.0 + m * ib * inv_ln2 - log_om[k];
        let da_t = (ib * inv_ln2).copysign(a[k]);
        let db_t = (-m + q[k] / om[k]) * ib * ib * inv_ln2;
        // The central bin: P = 1 − ½e^{−(½−a)/b} − ½e^{−(½+a)/b}.
        let kk = -inv_ln2 / p[k];
        let bits_c = -log_p[k];
        let da_c = kk * (-0.5 * e1[k] + 0.5 * e2[k]) * ib;
        let db_c = kk * (-0.5 * (0.5 - ac[k]) * e1[k] - 0.5 * (0.5 + ac[k]) * e2[k]) * ib * ib;
        let tail = m >= 0.0;
        let on = k < live;
        bits[k] = if !on {
            0.0
        } else if tail {
            bits_t
        } else {
            bits_c
        };
        da[k] = if !on {
            0.0
        } else if tail {
            da_t
        } else {
            da_c
        };
        let db = if tail { db_t } else { db_c };
        dout[k] = if on { db * db_do[k] } else { 0.0 };
    }
    (bits, da, dout)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scalar step the lane one replaced: per latent, its context,
    /// the network, libm's exp and log.
    fn reference_step(
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
                                let pos = [x, y, c.z0 + zl, c.t];
                                if !is_coded(parent.is_some(), pos) {
                                    continue;
                                }
                                let ctx = context_of(run, plane, parent, [x, y, zl], *c, l);
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
            chunk_bits: Vec::new(),
            params: gparams,
            latents,
        }
    }

    #[test]
    fn lane_laplace_matches_libm() {
        use strata_format::synth::SplitMix;
        let mut rng = SplitMix(8);
        for _ in 0..2000 {
            let xs: Lanes = std::array::from_fn(|_| rng.symmetric(6.0).round());
            let mu: Lanes = std::array::from_fn(|_| rng.symmetric(2.0));
            let oct: Lanes = std::array::from_fn(|_| rng.symmetric(9.0));
            let (bits, da, dout) = laplace_bits_lanes(xs, mu, oct, LANES);
            for k in 0..LANES {
                let (b, db_ds) = scale_of(8.0 * oct[k]);
                let (rb, rda, rdb) = laplace_bits(xs[k], mu[k], b);
                let rdout = rdb * db_ds * 8.0;
                let close = |x: f32, y: f32| (x - y).abs() <= 1e-3 * (1.0 + y.abs());
                assert!(
                    close(bits[k], rb) && close(da[k], rda) && close(dout[k], rdout),
                    "x {} mu {} oct {}: {:?} vs {:?}",
                    xs[k],
                    mu[k],
                    oct[k],
                    (bits[k], da[k], dout[k]),
                    (rb, rda, rdout)
                );
            }
        }
    }

    #[test]
    fn lane_step_matches_the_scalar_reference() {
        use strata_format::grid::latent_dims;
        use strata_format::synth::SplitMix;
        let mut rng = SplitMix(3);
        for (dims, hidden) in [([13, 7, 19, 2], 4), ([9, 1, 3, 1], 0), ([21, 18, 33, 1], 3)] {
            let levels = 3;
            let ldims: Vec<[usize; 4]> = (0..levels).map(|l| latent_dims(dims, l)).collect();
            let values: Vec<Vec<f32>> = ldims
                .iter()
                .map(|d| {
                    (0..d.iter().product::<usize>())
                        .map(|_| rng.symmetric(4.0))
                        .collect()
                })
                .collect();
            let layout = ContextLayout { hidden };
            let mut params: Vec<f32> = (0..layout.len()).map(|_| rng.symmetric(0.2)).collect();
            let last = params.len() - 1;
            params[last] = 2.0;
            for every in [1, 2] {
                let a = step(layout, &params, &values, &ldims, every, 1, None);
                let b = reference_step(layout, &params, &values, &ldims, every, 1);
                assert!(
                    (a.bits - b.bits).abs() < 1e-4 * b.bits,
                    "{} vs {}",
                    a.bits,
                    b.bits
                );
                let close = |x: f32, y: f32| (x - y).abs() <= 1e-3 * (1.0 + y.abs());
                // Sums over thousands of latents in f32, in other orders:
                // compared against the largest gradient.
                let big = b.params.iter().fold(1f32, |m, g| m.max(g.abs()));
                for (x, y) in a.params.iter().zip(&b.params) {
                    assert!(
                        (x - y).abs() <= 1e-4 * big,
                        "param grad {x} vs {y} (largest {big})"
                    );
                }
                for (la, lb) in a.latents.iter().zip(&b.latents) {
                    for (x, y) in la.iter().zip(lb) {
                        assert!(close(*x, *y), "latent grad {x} vs {y}");
                    }
                }
            }
        }
    }

    #[test]
    fn visiting_some_chunks_is_exact_for_them() {
        use strata_format::grid::entropy::chunks;
        use strata_format::grid::latent_dims;
        use strata_format::synth::SplitMix;
        let mut rng = SplitMix(8);
        let dims = [11, 9, 70, 2];
        let ldims: Vec<[usize; 4]> = (0..3).map(|l| latent_dims(dims, l)).collect();
        let values: Vec<Vec<f32>> = ldims
            .iter()
            .map(|d| {
                (0..d.iter().product::<usize>())
                    .map(|_| rng.symmetric(3.0).round())
                    .collect()
            })
            .collect();
        let layout = ContextLayout { hidden: 3 };
        let params: Vec<f32> = (0..layout.len()).map(|_| rng.symmetric(0.2)).collect();
        let full = step(layout, &params, &values, &ldims, 1, 0, None);
        // Every other chunk of each level.
        let visit: Vec<Vec<bool>> = ldims
            .iter()
            .map(|&d| (0..chunks(d).len()).map(|i| i % 2 == 1).collect())
            .collect();
        let part = step(layout, &params, &values, &ldims, 1, 0, Some(&visit));
        let mut expected = 0.0;
        for l in 0..3 {
            let cs = chunks(ldims[l]);
            assert!(cs.len() >= 2, "level {l} has one chunk");
            for (ci, c) in cs.iter().enumerate() {
                let run = c.offset(ldims[l])..c.offset(ldims[l]) + c.len(ldims[l]);
                if visit[l][ci] {
                    assert_eq!(part.chunk_bits[l][ci], full.chunk_bits[l][ci]);
                    assert_eq!(part.latents[l][run.clone()], full.latents[l][run]);
                    expected += full.chunk_bits[l][ci];
                } else {
                    assert_eq!(part.chunk_bits[l][ci], 0.0);
                    assert!(part.latents[l][run].iter().all(|&g| g == 0.0));
                }
            }
        }
        assert!((part.bits - expected).abs() < 1e-9 * expected);
        assert!(part.bits > 0.0 && part.bits < full.bits);
    }

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
