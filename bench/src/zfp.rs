//! ZFP (through `zfp-sys`, built from source) in fixed-accuracy mode: the
//! bound is ZFP's absolute error tolerance. The stream carries ZFP's full
//! header, so it is self-contained and its bytes are counted.
//!
//! ZFP turns the tolerance into a power of two internally, so in this mode
//! the ratio moves in steps; `matching` takes the step closest to a target.

use anyhow::{bail, Result};
use zfp_sys as z;

use crate::codec::{significant_dims, ErrorBounded};

pub struct Zfp;

/// Owns the C objects of one compression or decompression and frees them
/// on every path.
struct Session {
    field: *mut z::zfp_field,
    stream: *mut z::zfp_stream,
    bits: *mut z::bitstream,
}

impl Drop for Session {
    fn drop(&mut self) {
        // SAFETY: each pointer is null or came from its zfp constructor and
        // is freed exactly once, here.
        unsafe {
            if !self.bits.is_null() {
                z::stream_close(self.bits);
            }
            if !self.stream.is_null() {
                z::zfp_stream_close(self.stream);
            }
            if !self.field.is_null() {
                z::zfp_field_free(self.field);
            }
        }
    }
}

impl Session {
    /// A field over `data` (x fastest) with ZFP's dims, x first, and a
    /// stream writing to or reading from `buffer`.
    ///
    /// SAFETY: `data` must hold the field's voxels and `buffer` `len` bytes,
    /// both living and unaliased while the session is used.
    unsafe fn open(
        data: *mut f32,
        dims: [usize; 4],
        buffer: *mut u8,
        len: usize,
    ) -> Result<Session> {
        let mut d = significant_dims(dims);
        d.reverse(); // ZFP takes nx (fastest) first
        let ty = z::zfp_type_zfp_type_float;
        let p = data.cast::<std::ffi::c_void>();
        let field = match d.as_slice() {
            [nx] => z::zfp_field_1d(p, ty, *nx),
            [nx, ny] => z::zfp_field_2d(p, ty, *nx, *ny),
            [nx, ny, nz] => z::zfp_field_3d(p, ty, *nx, *ny, *nz),
            [nx, ny, nz, nw] => z::zfp_field_4d(p, ty, *nx, *ny, *nz, *nw),
            _ => bail!("ZFP takes 1 to 4 dimensions"),
        };
        let mut s = Session {
            field,
            stream: z::zfp_stream_open(std::ptr::null_mut()),
            bits: std::ptr::null_mut(),
        };
        if s.field.is_null() || s.stream.is_null() {
            bail!("ZFP could not allocate its field or stream");
        }
        if !buffer.is_null() {
            s.attach(buffer, len)?;
        }
        Ok(s)
    }

    /// SAFETY: as for `open`.
    unsafe fn attach(&mut self, buffer: *mut u8, len: usize) -> Result<()> {
        self.bits = z::stream_open(buffer.cast(), len);
        if self.bits.is_null() {
            bail!("ZFP could not open its bit stream");
        }
        z::zfp_stream_set_bit_stream(self.stream, self.bits);
        z::zfp_stream_rewind(self.stream);
        Ok(())
    }
}

impl ErrorBounded for Zfp {
    fn name(&self) -> &'static str {
        "zfp"
    }

    fn bound_label(&self) -> &'static str {
        "tol"
    }

    fn compress(&self, data: &[f32], dims: [usize; 4], bound: f64) -> Result<Vec<u8>> {
        if !(bound.is_finite() && bound > 0.0) {
            bail!("ZFP needs a positive tolerance, got {bound}");
        }
        if data.len() != dims.iter().product::<usize>() {
            bail!("{} samples for dims {dims:?}", data.len());
        }
        // SAFETY: ZFP only reads the field when compressing; the buffer is
        // sized by zfp_stream_maximum_size for this field and mode, and both
        // outlive the session.
        unsafe {
            let mut s = Session::open(data.as_ptr().cast_mut(), dims, std::ptr::null_mut(), 0)?;
            z::zfp_stream_set_accuracy(s.stream, bound);
            let max = z::zfp_stream_maximum_size(s.stream, s.field);
            if max == 0 {
                bail!("ZFP refused the field or mode");
            }
            let mut buffer = vec![0u8; max];
            s.attach(buffer.as_mut_ptr(), buffer.len())?;
            if z::zfp_write_header(s.stream, s.field, z::ZFP_HEADER_FULL) == 0 {
                bail!("ZFP could not write its header");
            }
            let n = z::zfp_compress(s.stream, s.field);
            if n == 0 {
                bail!("ZFP compression failed");
            }
            buffer.truncate(n);
            Ok(buffer)
        }
    }

    fn decompress(&self, bytes: &[u8], dims: [usize; 4]) -> Result<Vec<f32>> {
        let voxels = dims.iter().product::<usize>();
        let mut out = vec![0f32; voxels];
        // ZFP reads whole 64-bit words: give it a padded copy.
        let mut buffer = bytes.to_vec();
        buffer.resize(bytes.len().next_multiple_of(8) + 8, 0);
        // SAFETY: the header is checked against the expected field before
        // decompressing into `out`, which holds that field's voxels.
        unsafe {
            let s = Session::open(out.as_mut_ptr(), dims, buffer.as_mut_ptr(), buffer.len())?;
            let expected = [(*s.field).nx, (*s.field).ny, (*s.field).nz, (*s.field).nw];
            if z::zfp_read_header(s.stream, s.field, z::ZFP_HEADER_FULL) == 0 {
                bail!("not a ZFP stream (no header)");
            }
            let got = [(*s.field).nx, (*s.field).ny, (*s.field).nz, (*s.field).nw];
            if got != expected || (*s.field).type_ != z::zfp_type_zfp_type_float {
                bail!("the ZFP stream holds a different field ({got:?}, expected {expected:?})");
            }
            // Whatever the header set, decode into `out`.
            z::zfp_field_set_pointer(s.field, out.as_mut_ptr().cast());
            if z::zfp_decompress(s.stream, s.field) == 0 {
                bail!("ZFP decompression failed");
            }
        }
        Ok(out)
    }
}
