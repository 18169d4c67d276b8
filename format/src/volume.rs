//! The in-memory volume every part of Strata passes around.

use crate::error::FormatError;

/// The sample type a volume had on disk; kept in the archive so a decoder can
/// tell the user what the original was (decode always yields `f32`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DataType {
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    F32,
    F64,
}

impl DataType {
    /// Code stored in the archive header.
    pub fn code(self) -> u8 {
        match self {
            DataType::U8 => 1,
            DataType::I8 => 2,
            DataType::U16 => 3,
            DataType::I16 => 4,
            DataType::U32 => 5,
            DataType::I32 => 6,
            DataType::F32 => 7,
            DataType::F64 => 8,
        }
    }

    pub fn from_code(code: u8) -> Option<DataType> {
        Some(match code {
            1 => DataType::U8,
            2 => DataType::I8,
            3 => DataType::U16,
            4 => DataType::I16,
            5 => DataType::U32,
            6 => DataType::I32,
            7 => DataType::F32,
            8 => DataType::F64,
            _ => return None,
        })
    }

    /// Bytes per sample on disk.
    pub fn size(self) -> usize {
        match self {
            DataType::U8 | DataType::I8 => 1,
            DataType::U16 | DataType::I16 => 2,
            DataType::U32 | DataType::I32 | DataType::F32 => 4,
            DataType::F64 => 8,
        }
    }

    /// Lower-case name as used in raw-file sidecars ("uint8", "float32", ...).
    pub fn name(self) -> &'static str {
        match self {
            DataType::U8 => "uint8",
            DataType::I8 => "int8",
            DataType::U16 => "uint16",
            DataType::I16 => "int16",
            DataType::U32 => "uint32",
            DataType::I32 => "int32",
            DataType::F32 => "float32",
            DataType::F64 => "float64",
        }
    }

    pub fn from_name(name: &str) -> Option<DataType> {
        [
            DataType::U8,
            DataType::I8,
            DataType::U16,
            DataType::I16,
            DataType::U32,
            DataType::I32,
            DataType::F32,
            DataType::F64,
        ]
        .into_iter()
        .find(|d| d.name() == name)
    }
}

/// A scalar volume: `dims = [x, y, z, t]`, samples in `data` with x varying
/// fastest, then y, z and t (a 3D volume has t = 1).
#[derive(Clone, Debug, PartialEq)]
pub struct Volume {
    pub dims: [usize; 4],
    pub data: Vec<f32>,
    /// The type the samples had where they came from.
    pub dtype: DataType,
    /// Voxel spacing along x, y, z (e.g. mm) and t (e.g. s); 1.0 when unknown.
    pub spacing: [f32; 4],
}

impl Volume {
    /// A volume of the given dims; fails if `data` has the wrong length.
    pub fn new(dims: [usize; 4], data: Vec<f32>) -> Result<Volume, FormatError> {
        let n = voxel_count(dims).ok_or(FormatError::TooLarge {
            what: "volume",
            count: u64::MAX,
            limit: usize::MAX as u64,
        })?;
        if n != data.len() || n == 0 {
            return Err(FormatError::Invalid(format!(
                "volume dims {}x{}x{}x{} need {} samples, got {}",
                dims[0],
                dims[1],
                dims[2],
                dims[3],
                n,
                data.len()
            )));
        }
        Ok(Volume {
            dims,
            data,
            dtype: DataType::F32,
            spacing: [1.0; 4],
        })
    }

    /// Number of voxels in one time step.
    pub fn frame_len(&self) -> usize {
        self.dims[0] * self.dims[1] * self.dims[2]
    }

    /// Samples of time step `t`.
    pub fn frame(&self, t: usize) -> &[f32] {
        let n = self.frame_len();
        &self.data[t * n..(t + 1) * n]
    }

    /// Linear index of voxel (x, y, z, t).
    pub fn index(&self, x: usize, y: usize, z: usize, t: usize) -> usize {
        ((t * self.dims[2] + z) * self.dims[1] + y) * self.dims[0] + x
    }

    /// (min, max) over the finite samples; `None` if there are none.
    pub fn finite_range(&self) -> Option<(f32, f32)> {
        let mut it = self.data.iter().copied().filter(|v| v.is_finite());
        let first = it.next()?;
        Some(it.fold((first, first), |(lo, hi), v| (lo.min(v), hi.max(v))))
    }
}

/// x·y·z·t, or `None` on overflow.
pub fn voxel_count(dims: [usize; 4]) -> Option<usize> {
    dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}
