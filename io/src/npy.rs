//! NumPy `.npy`: arrays of shape (z, y, x) or (t, z, y, x), i.e. x is the
//! last (fastest) axis in C order. Fortran-ordered files are reordered.

use std::io::{BufReader, BufWriter, ErrorKind, Seek};
use std::path::Path;

use ndarray::{ArrayViewD, IxDyn, ShapeBuilder};
use ndarray_npy::npy::header::{Header, Layout, ReadHeaderError};
use ndarray_npy::{WriteNpyError, WriteNpyExt};
use strata_format::{DataType, Volume};

use crate::{
    alloc_f32, checked_dims, commit, make_volume, open, read_samples, temp_beside, IoError,
    IoErrorKind, ReadOptions,
};

pub(crate) fn read(path: &Path, options: &ReadOptions) -> Result<Volume, IoError> {
    let file = open(path)?;
    let file_len = file
        .metadata()
        .map_err(|e| IoError::io(path, "cannot read file size", e))?
        .len();
    let mut reader = BufReader::new(file);
    let header = Header::from_reader(&mut reader).map_err(|e| match e {
        ReadHeaderError::Io(e) if e.kind() == ErrorKind::UnexpectedEof => {
            IoError::invalid(path, "not a valid .npy file (ends inside the header)")
        }
        ReadHeaderError::Io(e) => IoError::io(path, "read failed", e),
        ReadHeaderError::Parse(e) => IoError::invalid(path, format!("not a valid .npy file: {e}")),
    })?;
    let data_start = reader
        .stream_position()
        .map_err(|e| IoError::io(path, "read failed", e))?;

    let descr = header
        .type_descriptor
        .as_string()
        .cloned()
        .unwrap_or_else(|| header.type_descriptor.to_string());
    let (dtype, big_endian) = parse_descr(&descr)
        .ok_or_else(|| IoError::new(path, IoErrorKind::UnsupportedDtype(format!("{descr:?}"))))?;

    let shape = &header.shape;
    let shape_text = format!(
        "({})",
        shape
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    if shape.is_empty() || shape.len() > 4 || shape.contains(&0) {
        return Err(IoError::invalid(
            path,
            format!(
                "expected a non-empty array of shape (z, y, x) or (t, z, y, x), found {shape_text}"
            ),
        ));
    }
    // x is the last axis in the file and the first in Volume::dims.
    let dims64: Vec<u64> = shape.iter().rev().map(|&d| d as u64).collect();
    let (dims, count) = checked_dims(path, &dims64, options)?;

    let found = file_len.saturating_sub(data_start);
    let expected = (count as u64).checked_mul(dtype.size() as u64);
    if expected != Some(found) {
        return Err(IoError::new(
            path,
            IoErrorKind::SizeMismatch {
                expected: expected.unwrap_or(u64::MAX),
                found,
                shape: shape_text,
                dtype: dtype.name().to_string(),
            },
        ));
    }

    let mut data = read_samples(path, reader, count, dtype, big_endian)?;
    if header.layout == Layout::Fortran && shape.len() > 1 {
        // Column-major file: view it as such and walk it in logical (C) order.
        let view = ArrayViewD::from_shape(IxDyn(shape).f(), &data)
            .map_err(|e| IoError::invalid(path, format!("bad array shape: {e}")))?;
        let mut c_order = alloc_f32(path, count)?;
        c_order.extend(view.iter().copied());
        data = c_order;
    }
    make_volume(path, dims, data, dtype, [1.0; 4])
}

/// NumPy type string (e.g. "<f4", "|u1") to sample type and byte order.
fn parse_descr(descr: &str) -> Option<(DataType, bool)> {
    let (order, code) = match descr.as_bytes().first()? {
        b'<' | b'>' | b'|' | b'=' => (descr.as_bytes()[0], &descr[1..]),
        _ => (b'=', descr),
    };
    let big_endian = match order {
        b'>' => true,
        b'=' => cfg!(target_endian = "big"),
        _ => false,
    };
    let dtype = match code {
        "u1" | "B" => DataType::U8,
        "i1" | "b" => DataType::I8,
        "u2" => DataType::U16,
        "i2" => DataType::I16,
        "u4" => DataType::U32,
        "i4" => DataType::I32,
        "f4" => DataType::F32,
        "f8" => DataType::F64,
        _ => return None,
    };
    Some((dtype, big_endian))
}

pub(crate) fn write(path: &Path, vol: &Volume) -> Result<(), IoError> {
    let [x, y, z, t] = vol.dims;
    let shape: Vec<usize> = if t == 1 {
        vec![z, y, x]
    } else {
        vec![t, z, y, x]
    };
    // Volume data is x fastest, which is C order for this shape.
    let view = ArrayViewD::from_shape(IxDyn(&shape), &vol.data)
        .map_err(|e| IoError::invalid(path, format!("bad volume shape: {e}")))?;
    let tmp = temp_beside(path, ".npy")?;
    {
        let mut w = BufWriter::new(tmp.as_file());
        // write_npy flushes the writer itself.
        view.write_npy(&mut w).map_err(|e| match e {
            WriteNpyError::Io(e) => IoError::io(path, "write failed", e),
            other => IoError::invalid(path, format!("cannot encode .npy: {other}")),
        })?;
    }
    commit(tmp, path)
}
