//! The Laplacian pyramid's downward half: V_{i+1} = D(V_i), a small Gaussian
//! low-pass then every other sample along x, y, z and t. Coarse sample j
//! sits at fine sample 2j — where the decoder's upsampling puts it — and
//! axes of odd length are padded by edge replication (hence ⌈n/2⌉ samples).

use rayon::prelude::*;

/// A 4D grid of samples, x fastest; dims x, y, z, t.
#[derive(Clone, Debug, PartialEq)]
pub struct Grid {
    pub dims: [usize; 4],
    pub data: Vec<f32>,
}

impl Grid {
    pub fn new(dims: [usize; 4], data: Vec<f32>) -> Grid {
        assert_eq!(dims.iter().product::<usize>(), data.len());
        Grid { dims, data }
    }

    pub fn index(&self, x: usize, y: usize, z: usize, t: usize) -> usize {
        ((t * self.dims[2] + z) * self.dims[1] + y) * self.dims[0] + x
    }
}

/// Binomial [1, 2, 1]/4 taps: the smallest Gaussian-like kernel that stops
/// aliasing at stride 2.
const TAPS: [f32; 3] = [0.25, 0.5, 0.25];

/// How a coarser level is made from a finer one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Downsampling {
    /// D: the binomial low-pass, then every other sample (SIREN scales:
    /// smooth previews, and residuals without aliasing).
    LowPass,
    /// Every other sample, unfiltered: each coarse sample is the fine one at
    /// 2j, so a finer scale's residual there is only the coarser scale's
    /// coding error — the grid model's interpolating latent pyramid then
    /// continues across sections instead of coding each scale's low-pass
    /// error again (MNI152 at half size, CR ≈ 38: low-passed scales 38.2 dB
    /// where one scale alone gave 41.0).
    Subsample,
    /// The coarse part of one level of the 5/3 wavelet (a local mean, where
    /// a sample would alias): lifted grid scales, whose latent levels are
    /// that wavelet's, continue it across sections.
    Lifting,
}

/// Keeps every other sample along one axis, low-passed first by `taps`.
fn down_axis(src: &Grid, axis: usize, taps: [f32; 3]) -> Grid {
    let n = src.dims[axis];
    let mut dims = src.dims;
    dims[axis] = n.div_ceil(2);
    if n == 1 {
        return src.clone();
    }
    let stride: usize = src.dims[..axis].iter().product();
    let outer: usize = src.dims[axis + 1..].iter().product();
    let mut out = vec![0f32; dims.iter().product()];
    let m = dims[axis];
    out.par_chunks_mut(stride * m)
        .zip(src.data.par_chunks(stride * n))
        .take(outer)
        .for_each(|(dst, s)| {
            for j in 0..m {
                let c = 2 * j;
                let l = c.saturating_sub(1);
                let r = (c + 1).min(n - 1);
                for k in 0..stride {
                    dst[j * stride + k] = taps[0] * s[l * stride + k]
                        + taps[1] * s[c * stride + k]
                        + taps[2] * s[r * stride + k];
                }
            }
        });
    Grid::new(dims, out)
}

/// One level down along all four axes (an axis of length 1 stays).
pub fn downsample(grid: &Grid, how: Downsampling) -> Grid {
    let taps = match how {
        Downsampling::LowPass => TAPS,
        Downsampling::Subsample => [0.0, 1.0, 0.0],
        Downsampling::Lifting => {
            let mut lifted = grid.clone();
            strata_format::grid::lifting::forward(&mut lifted.data, grid.dims);
            return downsample(&lifted, Downsampling::Subsample);
        }
    };
    (0..4).fold(grid.clone(), |g, axis| down_axis(&g, axis, taps))
}

/// Levels coarsest first, as the archive orders them: `levels[0]` is the
/// coarsest, `levels[scales - 1]` the input itself.
pub fn build(finest: Grid, scales: u8, how: Downsampling) -> Vec<Grid> {
    let mut levels = vec![finest];
    for _ in 1..scales {
        let next = downsample(levels.last().unwrap(), how);
        levels.push(next);
    }
    levels.reverse();
    levels
}

/// What a finer level adds: `fine` minus the coarser grid `coarse` (dims
/// `coarse_dims`) upsampled the way the decoder upsamples.
pub fn residual(fine: &Grid, coarse: &[f32], coarse_dims: [usize; 4]) -> Grid {
    let predicted = strata_format::decode::upsample(coarse, coarse_dims, fine.dims);
    let data = fine
        .data
        .iter()
        .zip(&predicted)
        .map(|(t, p)| t - p)
        .collect();
    Grid::new(fine.dims, data)
}
