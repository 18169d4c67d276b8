//! Quality figures of a decoded volume against its original: PSNR over the
//! original's value range, max absolute error, and 3D SSIM.

use rayon::prelude::*;
use strata_format::{Archive, Volume};

/// Quality of `decoded` against `original` (same length, same layout).
#[derive(Clone, Debug, PartialEq)]
pub struct Quality {
    pub psnr: f64,
    pub rmse: f64,
    pub max_abs_error: f64,
    /// Value range max − min of the original.
    pub range: f64,
}

pub fn quality(original: &[f32], decoded: &[f32]) -> Quality {
    assert_eq!(original.len(), decoded.len());
    let (lo, hi) = original
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    let (sq, max) = original
        .par_iter()
        .zip(decoded)
        .map(|(&a, &b)| {
            let e = (a as f64 - b as f64).abs();
            (e * e, e)
        })
        .reduce(|| (0.0, 0.0), |a, b| (a.0 + b.0, a.1.max(b.1)));
    let rmse = (sq / original.len() as f64).sqrt();
    let range = (hi - lo) as f64;
    Quality {
        psnr: psnr(range, rmse),
        rmse,
        max_abs_error: max,
        range,
    }
}

/// 20·log10(range / RMSE); infinite for an exact match.
pub fn psnr(range: f64, rmse: f64) -> f64 {
    if rmse == 0.0 {
        f64::INFINITY
    } else {
        20.0 * (range.max(f64::MIN_POSITIVE) / rmse).log10()
    }
}

/// Gaussian window of SSIM: σ = 1.5, 7 taps (Wang et al.), normalized.
fn window() -> [f32; 7] {
    let mut w = [0f32; 7];
    for (i, v) in w.iter_mut().enumerate() {
        let d = i as f32 - 3.0;
        *v = (-d * d / (2.0 * 1.5 * 1.5)).exp();
    }
    let s: f32 = w.iter().sum();
    w.map(|v| v / s)
}

/// Separable Gaussian blur of one 3D frame along all three axes, with
/// edges clamped.
fn blur3(src: &[f32], dims: [usize; 3]) -> Vec<f32> {
    let w = window();
    let mut cur = src.to_vec();
    for axis in 0..3 {
        let n = dims[axis];
        let stride: usize = dims[..axis].iter().product();
        let mut out = vec![0f32; cur.len()];
        out.par_chunks_mut(stride * n)
            .zip(cur.par_chunks(stride * n))
            .for_each(|(dst, s)| {
                for i in 0..n {
                    for k in 0..stride {
                        let mut acc = 0f32;
                        for (j, &wj) in w.iter().enumerate() {
                            let p = (i + j).saturating_sub(3).min(n - 1);
                            acc += wj * s[p * stride + k];
                        }
                        dst[i * stride + k] = acc;
                    }
                }
            });
        cur = out;
    }
    cur
}

/// Mean 3D SSIM over all time steps; `dims` x, y, z, t; `range` is the
/// original's value range (the L of SSIM's constants).
pub fn ssim(original: &[f32], decoded: &[f32], dims: [usize; 4], range: f64) -> f64 {
    let frame = dims[0] * dims[1] * dims[2];
    let d3 = [dims[0], dims[1], dims[2]];
    let c1 = ((0.01 * range).powi(2)) as f32;
    let c2 = ((0.03 * range).powi(2)) as f32;
    let mut total = 0f64;
    for t in 0..dims[3] {
        let x = &original[t * frame..(t + 1) * frame];
        let y = &decoded[t * frame..(t + 1) * frame];
        let sq = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(p, q)| p * q).collect::<Vec<f32>>();
        let (mx, my) = (blur3(x, d3), blur3(y, d3));
        let (xx, yy, xy) = (
            blur3(&sq(x, x), d3),
            blur3(&sq(y, y), d3),
            blur3(&sq(x, y), d3),
        );
        total += (0..frame)
            .into_par_iter()
            .map(|i| {
                let (mx, my) = (mx[i], my[i]);
                let vx = xx[i] - mx * mx;
                let vy = yy[i] - my * my;
                let cxy = xy[i] - mx * my;
                (((2.0 * mx * my + c1) * (2.0 * cxy + c2))
                    / ((mx * mx + my * my + c1) * (vx + vy + c2))) as f64
            })
            .sum::<f64>();
    }
    total / (frame * dims[3]) as f64
}

/// An archive decoded with the reference decoder and compared with its
/// original: what `strata eval` and the benchmark both report.
pub struct Evaluation {
    pub decoded: Volume,
    pub quality: Quality,
    pub decode_seconds: f64,
}

/// Decodes every usable scale of `archive` (timed) and measures it against
/// `original`; an error when the archive is damaged or holds other dims.
pub fn evaluate(original: &Volume, archive: &Archive) -> anyhow::Result<Evaluation> {
    if let Some(e) = archive.first_error() {
        anyhow::bail!("{e}");
    }
    let t = std::time::Instant::now();
    let decoded = strata_format::decode(&archive.header, &archive.usable_scales(), None)?;
    let decode_seconds = t.elapsed().as_secs_f64();
    if decoded.dims != original.dims {
        anyhow::bail!(
            "the archive holds a {:?} volume, the original is {:?}",
            decoded.dims,
            original.dims
        );
    }
    let quality = quality(&original.data, &decoded.data);
    Ok(Evaluation {
        decoded,
        quality,
        decode_seconds,
    })
}
