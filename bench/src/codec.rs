//! What the error-bounded codecs (SZ3, ZFP, SPERR, TTHRESH) have in
//! common: compress a volume under one error bound (absolute, or for
//! TTHRESH an RMSE target), decompress it, and be measured the way
//! `strata eval` measures an archive.

use std::time::Instant;

use anyhow::{bail, Result};
use strata_format::Volume;

use crate::Row;

/// A lossy compressor driven by one error bound (in the volume's own
/// units): the larger the bound, the smaller the output.
pub trait ErrorBounded {
    /// Short name, the CSV's `codec` column.
    fn name(&self) -> &'static str;
    /// What the bound means for this codec, e.g. "abs" or "tol".
    fn bound_label(&self) -> &'static str;
    /// Compresses `data` (x fastest, dims x, y, z, t) under `bound`; the
    /// output is self-contained (dims included).
    fn compress(&self, data: &[f32], dims: [usize; 4], bound: f64) -> Result<Vec<u8>>;
    /// Decompresses what `compress` wrote for a volume of `dims`.
    fn decompress(&self, bytes: &[u8], dims: [usize; 4]) -> Result<Vec<f32>>;
    /// The bounds the ratio matching searches for a volume whose values
    /// span `range`: wide enough for any ratio worth measuring.
    fn bound_range(&self, range: f64) -> (f64, f64) {
        (range * 1e-7, range * 1e3)
    }
}

/// float32 bytes / compressed bytes.
pub fn ratio(voxels: usize, compressed: usize) -> f64 {
    voxels as f64 * 4.0 / compressed.max(1) as f64
}

/// The dims a codec should see, slowest first, without axes of length 1
/// (SZ3 refuses them, and they carry no structure); a single voxel stays one
/// axis of length 1.
pub fn significant_dims(dims: [usize; 4]) -> Vec<usize> {
    let d: Vec<usize> = dims.iter().rev().copied().filter(|&n| n > 1).collect();
    if d.is_empty() {
        vec![1]
    } else {
        d
    }
}

/// Compresses and decompresses `volume` under `bound`, timing both, and
/// measures the result with `strata eval`'s definitions.
pub fn measure(codec: &dyn ErrorBounded, volume: &Volume, bound: f64) -> Result<Row> {
    let t = Instant::now();
    let bytes = codec.compress(&volume.data, volume.dims, bound)?;
    let encode_seconds = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let decoded = codec.decompress(&bytes, volume.dims)?;
    let decode_seconds = t.elapsed().as_secs_f64();
    if decoded.len() != volume.data.len() {
        bail!(
            "{} gave back {} samples for a volume of {}",
            codec.name(),
            decoded.len(),
            volume.data.len()
        );
    }
    let q = strata::metrics::quality(&volume.data, &decoded);
    Ok(Row {
        codec: codec.name().into(),
        config: format!("{}={bound:.4e}", codec.bound_label()),
        ratio: ratio(volume.data.len(), bytes.len()),
        psnr: q.psnr,
        max_abs_error: q.max_abs_error,
        encode_seconds,
        decode_seconds,
    })
}
