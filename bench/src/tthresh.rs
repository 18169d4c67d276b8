//! TTHRESH (vendored, see `vendor/tthresh/README.md`; compiled by
//! `build.rs`): a Tucker decomposition (HOSVD) of the volume whose core and
//! factors are bit-plane coded until a target error is met. The bound is
//! TTHRESH's RMSE target, in the volume's units — an average error, not a
//! point-wise one as for SZ3, ZFP and SPERR. Single-threaded.
//!
//! TTHRESH takes tensors of three or more axes: a 4D volume is one 4D
//! tensor (no folding); axes of length 1 are dropped as for SZ3, and fewer
//! than three axes are padded with length 1.

use std::ffi::c_int;

use anyhow::{bail, Result};

use crate::codec::{significant_dims, ErrorBounded};

extern "C" {
    fn bench_tthresh_compress(
        data: *const f32,
        shape: *const u32,
        n: usize,
        target_rmse: f64,
        out: *mut *mut u8,
        out_len: *mut usize,
    ) -> c_int;
    fn bench_tthresh_decompress(
        input: *const u8,
        len: usize,
        shape: *mut u32,
        n: *mut usize,
        out: *mut *mut f32,
        out_len: *mut usize,
    ) -> c_int;
    fn bench_tthresh_free(p: *mut std::ffi::c_void);
}

pub struct Tthresh;

/// TTHRESH's shape, x (fastest) first, at least three axes.
fn shape(dims: [usize; 4]) -> Result<Vec<u32>> {
    let mut d = significant_dims(dims);
    d.reverse();
    d.resize(d.len().max(3), 1);
    d.into_iter()
        .map(|n| u32::try_from(n).map_err(|_| anyhow::anyhow!("TTHRESH: axis of {n} voxels")))
        .collect()
}

/// Copies a buffer the shim handed out and frees it.
///
/// SAFETY: `p` must come from the shim's malloc and hold `len` values of T.
unsafe fn take<T: Copy>(p: *mut T, len: usize) -> Vec<T> {
    let v = std::slice::from_raw_parts(p, len).to_vec();
    bench_tthresh_free(p.cast());
    v
}

impl ErrorBounded for Tthresh {
    fn name(&self) -> &'static str {
        "tthresh"
    }

    fn bound_label(&self) -> &'static str {
        "rmse"
    }

    /// From near-lossless (RMSE 1e-5 of the range, ~100 dB) to an RMSE of a
    /// quarter of the range, no better than a constant. Not wider: past
    /// that the ratio falls again (on MNI152, 48 000 at 0.1 × range, 3 500
    /// at 0.5 × range), and TTHRESH's compression time hardly depends on the
    /// target (~10 s on MNI152), so every try of the bisection counts.
    fn bound_range(&self, range: f64) -> (f64, f64) {
        (range * 1e-5, range * 0.25)
    }

    fn compress(&self, data: &[f32], dims: [usize; 4], bound: f64) -> Result<Vec<u8>> {
        if !(bound.is_finite() && bound > 0.0) {
            bail!("TTHRESH needs a positive RMSE target, got {bound}");
        }
        let shape = shape(dims)?;
        if data.len() != shape.iter().map(|&n| n as usize).product::<usize>() {
            bail!("{} samples for dims {dims:?}", data.len());
        }
        let (mut out, mut len) = (std::ptr::null_mut(), 0);
        // SAFETY: `data` holds the shape's voxels; on success the shim hands
        // out `len` bytes at `out`, taken and freed once.
        unsafe {
            let rc = bench_tthresh_compress(
                data.as_ptr(),
                shape.as_ptr(),
                shape.len(),
                bound,
                &mut out,
                &mut len,
            );
            if rc != 0 {
                bail!("TTHRESH compression failed");
            }
            Ok(take(out, len))
        }
    }

    fn decompress(&self, bytes: &[u8], dims: [usize; 4]) -> Result<Vec<f32>> {
        let expected = shape(dims)?;
        let mut got = [0u32; 8];
        let mut n = got.len();
        let (mut out, mut len) = (std::ptr::null_mut(), 0);
        // SAFETY: `bytes` is read, `got` has room for `n` axes; on success
        // the shim hands out `len` floats at `out`, taken and freed once.
        let values = unsafe {
            match bench_tthresh_decompress(
                bytes.as_ptr(),
                bytes.len(),
                got.as_mut_ptr(),
                &mut n,
                &mut out,
                &mut len,
            ) {
                0 => take(out, len),
                2 => bail!("the TTHRESH stream does not hold float32 values"),
                _ => bail!("not a TTHRESH stream, or a corrupt one"),
            }
        };
        if got[..n] != expected[..] {
            bail!(
                "the TTHRESH stream holds shape {:?}, expected {expected:?}",
                &got[..n]
            );
        }
        Ok(values)
    }
}
