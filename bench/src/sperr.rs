//! SPERR (0.8.5, through the `sperr` crate): wavelet coding of the volume in
//! SPERR's point-wise error mode — the bound is an absolute error bound, as
//! for SZ3 — single-threaded (the crate's `openmp` feature is off).
//!
//! SPERR takes 2D slices and 3D volumes: axes of length 1 are dropped as for
//! SZ3, fewer than three axes are padded with length 1 at the slow end, and
//! a 4D volume is compressed as 3D with t folded into z (z·t slices of
//! y × x), so the wavelet transform runs across the time steps too.

use anyhow::{bail, Context, Result};
use ndarray::{ArrayView3, ArrayViewMut3};

use crate::codec::{significant_dims, ErrorBounded};

pub struct Sperr;

/// SPERR's chunk size (its command-line default): a volume up to 256³ is
/// one chunk.
const CHUNK: usize = 256;

/// The (z, y, x) shape SPERR sees, slowest first.
fn shape(dims: [usize; 4]) -> (usize, usize, usize) {
    match significant_dims(dims).as_slice() {
        [x] => (1, 1, *x),
        [y, x] => (1, *y, *x),
        [z, y, x] => (*z, *y, *x),
        // Folded: t·z slices, t slowest.
        [t, z, y, x] => (t * z, *y, *x),
        d => unreachable!("significant_dims gave {} axes", d.len()),
    }
}

impl ErrorBounded for Sperr {
    fn name(&self) -> &'static str {
        "sperr"
    }

    fn bound_label(&self) -> &'static str {
        "pwe"
    }

    fn compress(&self, data: &[f32], dims: [usize; 4], bound: f64) -> Result<Vec<u8>> {
        if !(bound.is_finite() && bound > 0.0) {
            bail!("SPERR needs a positive error bound, got {bound}");
        }
        let view = ArrayView3::from_shape(shape(dims), data)
            .with_context(|| format!("{} samples for dims {dims:?}", data.len()))?;
        let (z, y, x) = view.dim();
        ::sperr::compress_3d(
            view,
            ::sperr::CompressionMode::PointwiseError { pwe: bound },
            (z.min(CHUNK), y.min(CHUNK), x.min(CHUNK)),
        )
        .context("SPERR compression")
    }

    fn decompress(&self, bytes: &[u8], dims: [usize; 4]) -> Result<Vec<f32>> {
        // The header (format, flags, dims, chunk lengths) is read before
        // anything is checked: refuse what cannot hold one.
        if bytes.len() < 14 {
            bail!("not a SPERR stream ({} bytes)", bytes.len());
        }
        let mut out = vec![0f32; dims.iter().product()];
        let view = ArrayViewMut3::from_shape(shape(dims), &mut out)?;
        ::sperr::decompress_into_3d(bytes, view).context("SPERR decompression")?;
        Ok(out)
    }
}
