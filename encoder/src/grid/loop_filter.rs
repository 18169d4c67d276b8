//! Fits a grid scale's loop filter (`strata_format::grid::loop_filter`) to
//! the level's reconstruction by least squares, per activity class and value
//! band, and keeps it where the squared error it removes is worth its bytes
//! at the scale's λ; [`fit_chain`] adds a second where that pays too.

use rayon::prelude::*;
use strata_format::grid::loop_filter::{
    activity, taps, Shape, COEFFICIENT_FRAC, MAX_CLASSES, MAX_COEFFICIENTS, PAIRS,
};
use strata_format::grid::{LoopFilter, MAX_LOOP_FILTERS};

/// The largest shape's inputs; a smaller shape's are a prefix of them, so
/// one pass of normal equations serves every shape.
const N: usize = MAX_COEFFICIENTS;
/// Ridge towards the identity filter: a class with few voxels (or none,
/// where quantiles tie) keeps the level as it is.
const RIDGE: f64 = 1e-3;
/// Voxels sampled for the activity and value quantiles.
const QUANTILE_SAMPLES: usize = 1 << 20;
/// The finest value bands; coarser ones merge runs of them.
const FINE_BANDS: usize = 4;

/// Normal equations of one class: Σ x xᵀ, Σ x·t, Σ t².
#[derive(Clone)]
struct Normal {
    xx: [[f64; N]; N],
    xt: [f64; N],
    tt: f64,
}

impl Normal {
    fn zero() -> Normal {
        Normal {
            xx: [[0.0; N]; N],
            xt: [0.0; N],
            tt: 0.0,
        }
    }

    fn add(&mut self, x: &[f32; N], t: f32) {
        let x = x.map(|v| v as f64);
        let t = t as f64;
        for i in 0..N {
            for j in i..N {
                self.xx[i][j] += x[i] * x[j];
            }
            self.xt[i] += x[i] * t;
        }
        self.tt += t * t;
    }

    fn merge(mut self, other: &Normal) -> Normal {
        for i in 0..N {
            for j in i..N {
                self.xx[i][j] += other.xx[i][j];
            }
            self.xt[i] += other.xt[i];
        }
        self.tt += other.tt;
        self
    }

    /// Σ (t − h·x)² for the filter `h` on the first `h.len()` inputs.
    fn sse(&self, h: &[f64]) -> f64 {
        let mut s = self.tt;
        for i in 0..h.len() {
            s -= 2.0 * h[i] * self.xt[i];
            for j in 0..h.len() {
                let a = if i <= j { self.xx[i][j] } else { self.xx[j][i] };
                s += h[i] * a * h[j];
            }
        }
        s
    }

    /// The stored filter of `n` inputs with least SSE, and its SSE: the
    /// least-squares one if its coefficients fit Q14's ±2, else one ridged
    /// harder towards the identity (a sharp blur's inverse wants larger
    /// taps; clamped, they would do worse than no filter), at worst the
    /// identity.
    fn best_filter(&self, n: usize) -> (Vec<i16>, f64) {
        let mut identity = vec![0i16; n];
        identity[1] = 1 << COEFFICIENT_FRAC;
        let mut best = (identity.clone(), self.sse(&dequantize(&identity)));
        let scale = (0..n).map(|i| self.xx[i][i]).sum::<f64>() / n as f64;
        for ridge in [0.0, 1e-4, 1e-3, 1e-2, 1e-1, 1.0] {
            let h = self.solve(n, RIDGE + ridge * scale);
            let fits = h.iter().all(|v| v.abs() < 1.99);
            let c = quantize(&h);
            let e = self.sse(&dequantize(&c));
            if e < best.1 {
                best = (c, e);
            }
            if fits {
                break;
            }
        }
        best
    }

    /// The least-squares filter on the first `n` inputs, ridged by `ridge`
    /// towards the identity.
    fn solve(&self, n: usize, ridge: f64) -> Vec<f64> {
        let mut a: Vec<Vec<f64>> = (0..n)
            .map(|i| {
                (0..n)
                    .map(|j| match i.cmp(&j) {
                        std::cmp::Ordering::Less => self.xx[i][j],
                        std::cmp::Ordering::Equal => self.xx[i][i] + ridge,
                        std::cmp::Ordering::Greater => self.xx[j][i],
                    })
                    .collect()
            })
            .collect();
        let mut b = self.xt[..n].to_vec();
        b[1] += ridge;
        // Gaussian elimination with partial pivoting; the ridge keeps `a`
        // positive definite.
        for c in 0..n {
            let p = (c..n)
                .max_by(|&i, &j| a[i][c].abs().total_cmp(&a[j][c].abs()))
                .unwrap_or(c);
            a.swap(c, p);
            b.swap(c, p);
            let b_c = b[c];
            let (upper, lower) = a.split_at_mut(c + 1);
            let pivot = &upper[c];
            for (row, b_r) in lower.iter_mut().zip(&mut b[c + 1..]) {
                let f = row[c] / pivot[c];
                for (x, p) in row[c..].iter_mut().zip(&pivot[c..]) {
                    *x -= f * p;
                }
                *b_r -= f * b_c;
            }
        }
        let mut h = vec![0.0; n];
        for c in (0..n).rev() {
            let s: f64 = (c + 1..n).map(|k| a[c][k] * h[k]).sum();
            h[c] = (b[c] - s) / a[c][c];
        }
        h
    }
}

fn quantize(h: &[f64]) -> Vec<i16> {
    let one = (1u32 << COEFFICIENT_FRAC) as f64;
    h.iter()
        .map(|v| (v * one).round().clamp(i16::MIN as f64, i16::MAX as f64) as i16)
        .collect()
}

fn dequantize(c: &[i16]) -> Vec<f64> {
    let one = (1u32 << COEFFICIENT_FRAC) as f64;
    c.iter().map(|&v| v as f64 / one).collect()
}

/// The loop filters for a level reconstructed as `rec`: [`fit`]'s, then
/// where it pays and `most` allows, a second one fitted to what the first
/// leaves, within `max_bytes` together.
pub fn fit_chain(
    rec: &[f32],
    truth: &[f32],
    dims: [usize; 4],
    lambda: f64,
    max_bytes: usize,
    clamp: bool,
    most: usize,
) -> Vec<LoopFilter> {
    let most = most.min(MAX_LOOP_FILTERS);
    let mut filters: Vec<LoopFilter> = Vec::new();
    // The level as the next filter sees it: `rec` itself until one is fitted.
    let mut filtered: Option<Vec<f32>> = None;
    let mut left = max_bytes;
    while filters.len() < most {
        let current = filtered.as_deref().unwrap_or(rec);
        let Some(filter) = fit(current, truth, dims, lambda, left, clamp) else {
            break;
        };
        left = left.saturating_sub(filter.coded_len());
        if filters.len() + 1 < most {
            filtered = Some(filter.apply(dims, current));
        }
        filters.push(filter);
    }
    filters
}

/// Rows of the normal equations' blocks (summed in parallel, merged in
/// order).
const NORMAL_BLOCK_ROWS: usize = 1024;

/// The loop filter for a level reconstructed as `rec` whose truth is
/// `truth` (both normalized, dims `dims`), or `None` where no filter of at
/// most `max_bytes` stored bytes lowers SSE + λ·bits. `clamp`: the level's
/// values are the volume's, in [0, 1].
pub fn fit(
    rec: &[f32],
    truth: &[f32],
    dims: [usize; 4],
    lambda: f64,
    max_bytes: usize,
    clamp: bool,
) -> Option<LoopFilter> {
    if rec.is_empty() || rec.len() != truth.len() {
        return None;
    }
    let row_voxel = |r: usize| {
        (
            r % dims[1],
            (r / dims[1]) % dims[2],
            r / (dims[1] * dims[2]),
        )
    };
    // The finest classes: activity quantiles over a sample, times value
    // quantiles.
    let stride = rec.len().div_ceil(QUANTILE_SAMPLES);
    let (mut activities, mut values): (Vec<f32>, Vec<f32>) = (0..rec.len())
        .into_par_iter()
        .step_by(stride)
        .map(|i| {
            let x = i % dims[0];
            let (y, z, t) = row_voxel(i / dims[0]);
            (activity(rec, dims, [x, y, z], t), rec[i])
        })
        .unzip();
    let quantiles = |sample: &mut Vec<f32>, n: usize| -> Vec<f32> {
        sample.sort_by(f32::total_cmp);
        (1..n).map(|k| sample[k * sample.len() / n]).collect()
    };
    let fine = LoopFilter {
        shape: Shape::Diamond3,
        thresholds: quantiles(&mut activities, MAX_CLASSES),
        value_thresholds: quantiles(&mut values, FINE_BANDS),
        coefficients: vec![vec![0; N]; MAX_CLASSES * FINE_BANDS],
        clamp,
    };
    let fine_classes = fine.classes();
    // Summed per fixed block of rows, then the blocks in order: the same
    // sums however the threads split the work, so the same archive.
    let rows = rec.len() / dims[0].max(1);
    let per_class = (0..rows.div_ceil(NORMAL_BLOCK_ROWS))
        .into_par_iter()
        .map(|b| {
            let mut acc = vec![Normal::zero(); fine_classes];
            for r in b * NORMAL_BLOCK_ROWS..((b + 1) * NORMAL_BLOCK_ROWS).min(rows) {
                let (y, z, t) = row_voxel(r);
                let truth_row = &truth[r * dims[0]..(r + 1) * dims[0]];
                for (x, &target) in truth_row.iter().enumerate() {
                    let v = [x, y, z];
                    let inputs = taps(rec, dims, v, t, PAIRS.len());
                    let k = fine.class_of(activity(rec, dims, v, t), inputs[1]);
                    acc[k].add(&inputs, target);
                }
            }
            acc
        })
        .collect::<Vec<_>>()
        .into_iter()
        .reduce(|a, b| a.into_iter().zip(&b).map(|(x, y)| x.merge(y)).collect())
        .unwrap_or_else(|| vec![Normal::zero(); fine_classes]);
    let unfiltered: f64 = per_class.iter().map(|n| n.sse(&[0.0, 1.0])).sum();
    let mut best: Option<(f64, LoopFilter)> = None;
    // Coarser classings merge runs of the finest ones: of activity
    // classes, and of value bands.
    let classings = [1, 2, 4, 8, 16, 32].into_iter().flat_map(|k| {
        [1, 2, 4]
            .into_iter()
            .filter(move |&b| b <= FINE_BANDS && k * b <= MAX_CLASSES)
            .map(move |b| (k, b))
    });
    for (shape, (classes, bands)) in Shape::ALL
        .into_iter()
        .flat_map(|s| classings.clone().map(move |k| (s, k)))
    {
        // (Coded, a filter takes less than stored plainly: only those
        // hopelessly large are not fitted.)
        if LoopFilter::stored_len(shape, classes, bands) > max_bytes.saturating_mul(2) {
            continue;
        }
        let (run, band_run) = (MAX_CLASSES / classes, FINE_BANDS / bands);
        let mut sse = 0.0;
        let mut coefficients = Vec::with_capacity(classes * bands);
        for k in 0..classes * bands {
            let (a, b) = (k / bands, k % bands);
            let mut merged = Normal::zero();
            for fa in a * run..(a + 1) * run {
                for fb in b * band_run..(b + 1) * band_run {
                    merged = merged.merge(&per_class[fa * FINE_BANDS + fb]);
                }
            }
            let (c, e) = merged.best_filter(shape.coefficients());
            sse += e;
            coefficients.push(c);
        }
        let filter = LoopFilter {
            shape,
            thresholds: (1..classes).map(|j| fine.thresholds[j * run - 1]).collect(),
            value_thresholds: (1..bands)
                .map(|j| fine.value_thresholds[j * band_run - 1])
                .collect(),
            coefficients,
            clamp,
        };
        // Priced as stored: its coefficients coded.
        let bytes = filter.coded_len();
        if bytes > max_bytes {
            continue;
        }
        let cost = sse + lambda * 8.0 * bytes as f64;
        if cost < unfiltered && best.as_ref().is_none_or(|(b, _)| cost < *b) {
            best = Some((cost, filter));
        }
    }
    best.map(|(_, f)| f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_format::synth::SplitMix;

    fn sse(a: &[f32], b: &[f32]) -> f64 {
        a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum()
    }

    #[test]
    fn the_fitted_filter_undoes_a_blur_and_noise() {
        // A sharp-edged volume, blurred along x and with noise added: the
        // filter must take back much of the error, and more with classes.
        let dims = [24, 20, 16, 1];
        let mut rng = SplitMix(7);
        let truth: Vec<f32> = (0..dims.iter().product::<usize>())
            .map(|i| {
                let (x, y, z) = (i % 24, (i / 24) % 20, i / 480);
                if (x as i32 - 12).pow(2) + (y as i32 - 10).pow(2) + (z as i32 - 8).pow(2) < 40 {
                    0.8
                } else {
                    0.2
                }
            })
            .collect();
        let rec: Vec<f32> = (0..truth.len())
            .map(|i| {
                let x = i % 24;
                let l = truth[if x > 0 { i - 1 } else { i }];
                let r = truth[if x < 23 { i + 1 } else { i }];
                0.25 * l + 0.5 * truth[i] + 0.25 * r + rng.symmetric(0.01)
            })
            .collect();
        let filter =
            fit(&rec, &truth, dims, 0.0, usize::MAX, true).expect("a filter pays at λ = 0");
        let out = filter.apply(dims, &rec);
        let (before, after) = (sse(&rec, &truth), sse(&out, &truth));
        assert!(after < 0.6 * before, "SSE {before} → {after}");
        // At a λ that prices any filter above the whole error, none is kept.
        assert!(fit(&rec, &truth, dims, before, usize::MAX, true).is_none());
        // Nor one of more bytes than allowed.
        assert!(fit(&rec, &truth, dims, 0.0, 29, true).is_none());
    }

    #[test]
    fn a_level_without_error_gets_no_filter() {
        let dims = [9, 8, 7, 2];
        let v: Vec<f32> = (0..dims.iter().product::<usize>())
            .map(|i| (i % 13) as f32 * 0.05)
            .collect();
        assert!(fit(&v, &v, dims, 1e-12, usize::MAX, false).is_none());
    }
}
