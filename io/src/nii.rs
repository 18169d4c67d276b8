//! NIfTI-1 single files (`.nii`, `.nii.gz`) through the `nifti` crate.
//!
//! Reading parses the header first and checks dims, type and the voxel limit
//! before the crate allocates the volume. Gzip is recognised by its magic
//! bytes, not the extension, so a mislabelled file still reads.

use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use flate2::read::MultiGzDecoder;
use ndarray::{ArrayD, ArrayView3, ArrayView4, ShapeBuilder};
use nifti::writer::WriterOptions;
use nifti::{Endianness, InMemNiftiVolume, IntoNdArray, NiftiError, NiftiHeader, NiftiType};
use strata_format::{DataType, Volume};

use crate::{
    checked_dims, clean_spacing, commit, make_volume, open, shape_str, temp_beside, IoError,
    IoErrorKind, ReadOptions,
};

const HEADER_LEN: usize = 348;

/// Decompressed bytes allowed after the voxels of a `.nii.gz`.
const MAX_GZ_TAIL: u64 = 16 << 20;

pub(crate) fn read(path: &Path, options: &ReadOptions) -> Result<Volume, IoError> {
    let mut file = BufReader::new(open(path)?);
    let gz = file
        .fill_buf()
        .map_err(|e| IoError::io(path, "read failed", e))?
        .starts_with(&[0x1f, 0x8b]);
    let mut stream: Box<dyn Read> = if gz {
        Box::new(MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    // Errors from the stream that are not the OS's come from the decoder.
    let stream_err = |e: io::Error| {
        if gz && e.raw_os_error().is_none() {
            IoError::invalid(path, format!("truncated or corrupt gzip data: {e}"))
        } else {
            IoError::io(path, "read failed", e)
        }
    };

    let mut raw_header = [0u8; HEADER_LEN];
    stream.read_exact(&mut raw_header).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            IoError::invalid(path, "too short for a NIfTI-1 header (348 bytes)")
        } else {
            stream_err(e)
        }
    })?;
    let sizeof_hdr = [
        i32::from_le_bytes([raw_header[0], raw_header[1], raw_header[2], raw_header[3]]),
        i32::from_be_bytes([raw_header[0], raw_header[1], raw_header[2], raw_header[3]]),
    ];
    if sizeof_hdr.contains(&540) {
        return Err(IoError::invalid(path, "NIfTI-2 files are not supported"));
    }
    if !sizeof_hdr.contains(&(HEADER_LEN as i32)) {
        return Err(IoError::invalid(
            path,
            "not a NIfTI-1 file (header size field is not 348)",
        ));
    }
    let mut header = NiftiHeader::from_reader(&raw_header[..]).map_err(|e| match e {
        NiftiError::InvalidFormat => IoError::invalid(path, "not a NIfTI-1 file (bad magic)"),
        other => IoError::invalid(path, format!("bad NIfTI-1 header: {other}")),
    })?;
    if &header.magic != b"n+1\0" {
        return Err(IoError::invalid(
            path,
            "header-only NIfTI (.hdr/.img pair) is not supported",
        ));
    }

    let dims64 = header_dims(path, &header)?;
    let (dims, count) = checked_dims(path, &dims64, options)?;
    let nifti_type = header.data_type().map_err(|_| {
        IoError::new(
            path,
            IoErrorKind::UnsupportedDtype(format!("code {}", header.datatype)),
        )
    })?;
    let dtype = match nifti_type {
        NiftiType::Uint8 => DataType::U8,
        NiftiType::Int8 => DataType::I8,
        NiftiType::Uint16 => DataType::U16,
        NiftiType::Int16 => DataType::I16,
        NiftiType::Uint32 => DataType::U32,
        NiftiType::Int32 => DataType::I32,
        NiftiType::Float32 => DataType::F32,
        NiftiType::Float64 => DataType::F64,
        other => {
            return Err(IoError::new(
                path,
                IoErrorKind::UnsupportedDtype(format!("{other:?}")),
            ))
        }
    };

    // Skip the extensions: the voxels start at vox_offset.
    let vox_offset = header.vox_offset;
    if !(vox_offset.is_finite() && vox_offset >= HEADER_LEN as f32) {
        return Err(IoError::invalid(
            path,
            format!("bad vox_offset {vox_offset} (must be at least 348)"),
        ));
    }
    let skip = vox_offset as u64 - HEADER_LEN as u64;
    let skipped = io::copy(&mut (&mut stream).take(skip), &mut io::sink()).map_err(stream_err)?;
    if skipped != skip {
        return Err(IoError::invalid(
            path,
            format!("file ends before the voxel data at vox_offset {vox_offset}"),
        ));
    }

    // NIfTI says a zero slope means "no scaling"; the crate would otherwise
    // multiply by a NaN or infinite slope and spoil every voxel.
    if !header.scl_slope.is_finite() {
        header.scl_slope = 0.0;
    }
    if !header.scl_inter.is_finite() || header.scl_slope == 0.0 {
        header.scl_inter = 0.0;
    }

    let volume = InMemNiftiVolume::from_reader(&mut stream, &header).map_err(|e| match e {
        NiftiError::IncompatibleLength(got, expected) => IoError::new(
            path,
            IoErrorKind::SizeMismatch {
                expected: expected as u64,
                found: got as u64,
                shape: shape_str(&dims64),
                dtype: dtype.name().to_string(),
            },
        ),
        NiftiError::ReserveVolume(bytes, _) => {
            IoError::new(path, IoErrorKind::OutOfMemory(bytes as u64))
        }
        NiftiError::Io(e) => stream_err(e),
        other => IoError::invalid(path, format!("cannot read voxel data: {other}")),
    })?;
    if gz {
        // The gzip CRC and length sit after the voxels; read up to them so a
        // corrupt or cut stream is an error, not silently wrong voxels.
        // Bounded, so a huge tail cannot stall the read.
        let tail = io::copy(&mut (&mut stream).take(MAX_GZ_TAIL + 1), &mut io::sink())
            .map_err(stream_err)?;
        if tail > MAX_GZ_TAIL {
            return Err(IoError::invalid(
                path,
                format!("more than {MAX_GZ_TAIL} bytes of data after the voxels"),
            ));
        }
    }
    let array: ArrayD<f32> = volume
        .into_ndarray::<f32>()
        .map_err(|e| IoError::invalid(path, format!("cannot convert voxel data: {e}")))?;
    // The crate returns shape (x, y, z, ...) in Fortran order, i.e. x fastest
    // in memory, which is Volume's order; reversing the axes makes that the
    // standard layout, whose raw vector we can take without a copy.
    let array = array.reversed_axes();
    let data = if array.is_standard_layout() {
        let (v, offset) = array.into_raw_vec_and_offset();
        match offset {
            Some(0) | None => v,
            Some(o) => v[o..o + count].to_vec(),
        }
    } else {
        array.iter().copied().collect()
    };
    if data.len() != count {
        return Err(IoError::invalid(
            path,
            format!("decoded {} voxels, expected {count}", data.len()),
        ));
    }

    let spacing = [1, 2, 3, 4].map(|i| clean_spacing(header.pixdim[i].abs()));
    make_volume(path, dims, data, dtype, spacing)
}

/// dim[1..=dim[0]] as x, y, z, t, checked: the fields are signed 16-bit in
/// the standard (the crate reads them unsigned), and a 5th or later axis is
/// only accepted with length 1.
fn header_dims(path: &Path, header: &NiftiHeader) -> Result<Vec<u64>, IoError> {
    let ndim = header.dim[0] as i16;
    if !(1..=7).contains(&ndim) {
        return Err(IoError::invalid(
            path,
            format!("bad dim[0] = {ndim} (must be 1 to 7)"),
        ));
    }
    let mut dims = Vec::new();
    for i in 1..=ndim as usize {
        let d = header.dim[i] as i16;
        if d <= 0 {
            return Err(IoError::invalid(
                path,
                format!("bad dim[{i}] = {d} (must be positive)"),
            ));
        }
        if i > 4 && d != 1 {
            return Err(IoError::invalid(
                path,
                format!("{ndim}D volumes are not supported (dim[{i}] = {d})"),
            ));
        }
        if i <= 4 {
            dims.push(d as u64);
        }
    }
    Ok(dims)
}

/// Largest axis NIfTI-1 can hold (dims are signed 16-bit).
const MAX_DIM: usize = i16::MAX as usize;

pub(crate) fn write(path: &Path, vol: &Volume, gz: bool) -> Result<(), IoError> {
    if let Some(&d) = vol.dims.iter().find(|&&d| d > MAX_DIM) {
        return Err(IoError::invalid(
            path,
            format!("dimension {d} exceeds the NIfTI-1 limit of {MAX_DIM}"),
        ));
    }
    let [sx, sy, sz, st] = vol.spacing.map(clean_spacing);
    // qform (code 1, zero quaternion) and sform (code 1) both say: axis-aligned
    // grid with the volume's spacing, origin at voxel 0. Units stay "unknown"
    // because Volume does not record them.
    let reference = NiftiHeader {
        pixdim: [1.0, sx, sy, sz, st, 1.0, 1.0, 1.0],
        qform_code: 1,
        sform_code: 1,
        srow_x: [sx, 0.0, 0.0, 0.0],
        srow_y: [0.0, sy, 0.0, 0.0],
        srow_z: [0.0, 0.0, sz, 0.0],
        xyzt_units: 0,
        endianness: Endianness::Little,
        ..NiftiHeader::default()
    };

    // The crate writes to a path and picks compression from its extension,
    // so the temporary file carries the real extension.
    let tmp = temp_beside(path, if gz { ".nii.gz" } else { ".nii" })?;
    let writer = WriterOptions::new(tmp.path()).reference_header(&reference);
    let [x, y, z, t] = vol.dims;
    let shape_err =
        |e: ndarray::ShapeError| IoError::invalid(path, format!("bad volume shape: {e}"));
    let result = if t == 1 {
        writer.write_nifti(&ArrayView3::from_shape((x, y, z).f(), &vol.data).map_err(shape_err)?)
    } else {
        writer.write_nifti(&ArrayView4::from_shape((x, y, z, t).f(), &vol.data).map_err(shape_err)?)
    };
    result.map_err(|e| match e {
        NiftiError::Io(e) => IoError::io(path, "write failed", e),
        other => IoError::invalid(path, format!("NIfTI write failed: {other}")),
    })?;

    // The crate drops its uncompressed BufWriter without checking the final
    // flush, so confirm the file is whole before it replaces anything.
    let written = tmp
        .as_file()
        .metadata()
        .map_err(|e| IoError::io(path, "write failed", e))?
        .len();
    let expected = 352 + 4 * vol.data.len() as u64;
    if (gz && written == 0) || (!gz && written != expected) {
        return Err(IoError::invalid(
            path,
            format!("NIfTI write failed: wrote {written} bytes"),
        ));
    }
    commit(tmp, path)
}
