//! Reading and writing scalar volumes for Strata.
//!
//! Formats, chosen by the path's extension:
//! - `.nii`, `.nii.gz`: NIfTI-1 (read: any common sample type, 1D to 4D;
//!   write: float32);
//! - `.npy`: NumPy arrays of shape (z, y, x) or (t, z, y, x) (fewer axes read
//!   too: (y, x), (x));
//! - anything else: raw little-endian samples described by a JSON sidecar
//!   `NAME.json` beside `NAME.raw` (or `NAME.f32`, ...); the sidecar's own
//!   path works as well. Writing raw needs a `.raw` or `.f32` path.
//!
//! Every reader checks the declared dims against [`ReadOptions::max_voxels`]
//! and the data's length before allocating, and every writer goes through a
//! temporary file in the target's directory that is renamed into place, so a
//! failed write leaves neither a partial file nor a clobbered old one.

mod error;
mod nii;
mod npy;
mod raw;

use std::fs::File;
use std::io::Read;
use std::path::Path;

use strata_format::{DataType, Volume};
use tempfile::NamedTempFile;

pub use error::{IoError, IoErrorKind};

/// Default for [`ReadOptions::max_voxels`]: 2^32 voxels, 16 GiB as `f32`.
pub const DEFAULT_MAX_VOXELS: u64 = 1 << 32;

/// Limits applied while reading.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadOptions {
    /// Files declaring more voxels (x·y·z·t) than this are refused before
    /// any sample is read, so a corrupt or hostile header cannot make the
    /// reader allocate without bound.
    pub max_voxels: u64,
}

impl Default for ReadOptions {
    fn default() -> ReadOptions {
        ReadOptions {
            max_voxels: DEFAULT_MAX_VOXELS,
        }
    }
}

/// A volume file format, as told by a path's extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileFormat {
    /// `.nii`
    Nifti,
    /// `.nii.gz`
    NiftiGz,
    /// `.npy`
    Npy,
    /// Any other extension: raw samples plus a `.json` sidecar.
    Raw,
}

impl FileFormat {
    /// The format `read_volume` would use for `path` (case-insensitive).
    pub fn from_path(path: &Path) -> FileFormat {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        if name.ends_with(".nii.gz") {
            FileFormat::NiftiGz
        } else if name.ends_with(".nii") {
            FileFormat::Nifti
        } else if name.ends_with(".npy") {
            FileFormat::Npy
        } else {
            FileFormat::Raw
        }
    }
}

/// Reads a volume with the default [`ReadOptions`].
pub fn read_volume(path: &Path) -> Result<Volume, IoError> {
    read_volume_with(path, &ReadOptions::default())
}

/// Reads a volume; the format follows from the extension (see the crate
/// docs). Samples are converted to `f32`; `dtype` records the type on disk.
pub fn read_volume_with(path: &Path, options: &ReadOptions) -> Result<Volume, IoError> {
    match FileFormat::from_path(path) {
        FileFormat::Nifti | FileFormat::NiftiGz => nii::read(path, options),
        FileFormat::Npy => npy::read(path, options),
        FileFormat::Raw => raw::read(path, options),
    }
}

/// Writes `vol` as float32 in the format named by the extension: `.nii`,
/// `.nii.gz`, `.npy`, or `.raw` / `.f32` (plus a `NAME.json` sidecar).
pub fn write_volume(path: &Path, vol: &Volume) -> Result<(), IoError> {
    check_volume(path, vol)?;
    match FileFormat::from_path(path) {
        FileFormat::Nifti => nii::write(path, vol, false),
        FileFormat::NiftiGz => nii::write(path, vol, true),
        FileFormat::Npy => npy::write(path, vol),
        FileFormat::Raw => {
            let ext = path
                .extension()
                .map(|e| e.to_string_lossy().to_ascii_lowercase());
            match ext.as_deref() {
                Some("raw") | Some("f32") => raw::write(path, vol),
                _ => Err(IoError::new(
                    path,
                    IoErrorKind::UnsupportedFileType("write to .nii, .nii.gz, .npy, .raw or .f32"),
                )),
            }
        }
    }
}

/// `Volume`'s fields are public, so check that they agree before writing.
fn check_volume(path: &Path, vol: &Volume) -> Result<(), IoError> {
    let n = strata_format::voxel_count(vol.dims);
    if vol.dims.contains(&0) || n != Some(vol.data.len()) {
        return Err(IoError::invalid(
            path,
            format!(
                "cannot write a volume of dims {} with {} samples",
                shape_str(&vol.dims.map(|d| d as u64)),
                vol.data.len()
            ),
        ));
    }
    Ok(())
}

/// "256x256x128" from declared dims, for messages.
pub(crate) fn shape_str(dims: &[u64]) -> String {
    dims.iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("x")
}

/// Checks declared dims (x first; at most 4) and returns them padded to
/// `[x, y, z, t]` and their voxel count. Done before any allocation.
pub(crate) fn checked_dims(
    path: &Path,
    dims: &[u64],
    options: &ReadOptions,
) -> Result<([usize; 4], usize), IoError> {
    if dims.is_empty() || dims.len() > 4 {
        return Err(IoError::invalid(
            path,
            format!("expected 1 to 4 dims, found {}", dims.len()),
        ));
    }
    if dims.contains(&0) {
        return Err(IoError::invalid(
            path,
            format!("dims must be positive, found {}", shape_str(dims)),
        ));
    }
    let too_large = || {
        IoError::new(
            path,
            IoErrorKind::TooLarge {
                shape: shape_str(dims),
                limit: options.max_voxels,
            },
        )
    };
    let count = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= options.max_voxels)
        .ok_or_else(too_large)?;
    let count = usize::try_from(count).map_err(|_| too_large())?;
    let mut out = [1usize; 4];
    for (o, &d) in out.iter_mut().zip(dims) {
        // d <= count, which fits in usize.
        *o = d as usize;
    }
    Ok((out, count))
}

/// A `Vec` of `n` capacity, or a clean error instead of an abort.
pub(crate) fn alloc_f32(path: &Path, n: usize) -> Result<Vec<f32>, IoError> {
    let mut v = Vec::new();
    v.try_reserve_exact(n)
        .map_err(|_| IoError::new(path, IoErrorKind::OutOfMemory((n as u64).saturating_mul(4))))?;
    Ok(v)
}

/// Builds the `Volume` once the samples are in x-fastest order.
pub(crate) fn make_volume(
    path: &Path,
    dims: [usize; 4],
    data: Vec<f32>,
    dtype: DataType,
    spacing: [f32; 4],
) -> Result<Volume, IoError> {
    let mut vol = Volume::new(dims, data).map_err(|e| IoError::invalid(path, e.to_string()))?;
    vol.dtype = dtype;
    vol.spacing = spacing;
    Ok(vol)
}

/// A spacing value as given, or 1.0 ("unknown") if it is not a positive
/// finite number; NIfTI files in the wild carry 0 and negatives there.
pub(crate) fn clean_spacing(s: f32) -> f32 {
    if s.is_finite() && s > 0.0 {
        s
    } else {
        1.0
    }
}

/// A fresh temporary file beside `path` (same directory, so the final rename
/// cannot cross file systems), ending in `suffix`.
pub(crate) fn temp_beside(path: &Path, suffix: &str) -> Result<NamedTempFile, IoError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut builder = tempfile::Builder::new();
    builder.prefix(".strata-tmp-").suffix(suffix);
    // Tempfiles default to 0600; ask for what File::create would give
    // (0666 less the umask), since this file becomes the output.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    builder
        .tempfile_in(dir)
        .map_err(|e| IoError::io(path, "cannot create a temporary file beside it", e))
}

/// Flushes `tmp` to disk and renames it to `path`, replacing any old file.
pub(crate) fn commit(tmp: NamedTempFile, path: &Path) -> Result<(), IoError> {
    tmp.as_file()
        .sync_all()
        .map_err(|e| IoError::io(path, "write failed", e))?;
    tmp.persist(path)
        .map_err(|e| IoError::io(path, "cannot move the written file into place", e.error))?;
    Ok(())
}

/// Writes `bytes` to `path` through a temporary file beside it and a rename,
/// so a failure never leaves half a file or clobbers the old one.
pub fn write_file_atomically(path: &Path, bytes: &[u8]) -> Result<(), IoError> {
    use std::io::Write;
    let mut tmp = temp_beside(path, "")?;
    tmp.write_all(bytes)
        .map_err(|e| IoError::io(path, "write failed", e))?;
    commit(tmp, path)
}

/// Opens `path` for reading, with the usual error.
pub(crate) fn open(path: &Path) -> Result<File, IoError> {
    File::open(path).map_err(|e| IoError::io(path, "cannot open", e))
}

/// Bytes decoded per read, so a large file needs no second full-size buffer
/// (a multiple of every sample size).
pub(crate) const CHUNK: usize = 1 << 20;

/// Reads `count` samples of `dtype` from `reader` into `f32`s, in file order.
/// The caller has checked that the data is there, so a short read is an I/O
/// error (the file changed underneath us or the device failed).
pub(crate) fn read_samples(
    path: &Path,
    mut reader: impl Read,
    count: usize,
    dtype: DataType,
    big_endian: bool,
) -> Result<Vec<f32>, IoError> {
    let mut data = alloc_f32(path, count)?;
    let mut buf = vec![0u8; CHUNK];
    let mut left = count * dtype.size();
    while left > 0 {
        let n = left.min(CHUNK);
        reader
            .read_exact(&mut buf[..n])
            .map_err(|e| IoError::io(path, "read failed", e))?;
        decode_into(&buf[..n], dtype, big_endian, &mut data);
        left -= n;
    }
    Ok(data)
}

/// Appends the samples in `bytes` (a whole number of them) to `out`.
fn decode_into(bytes: &[u8], dtype: DataType, big_endian: bool, out: &mut Vec<f32>) {
    fn go<T: Sample>(bytes: &[u8], big_endian: bool, out: &mut Vec<f32>) {
        out.extend(
            bytes
                .chunks_exact(T::SIZE)
                .map(|c| T::from_bytes(c, big_endian).to_f32()),
        );
    }
    match dtype {
        DataType::U8 => go::<u8>(bytes, big_endian, out),
        DataType::I8 => go::<i8>(bytes, big_endian, out),
        DataType::U16 => go::<u16>(bytes, big_endian, out),
        DataType::I16 => go::<i16>(bytes, big_endian, out),
        DataType::U32 => go::<u32>(bytes, big_endian, out),
        DataType::I32 => go::<i32>(bytes, big_endian, out),
        DataType::F32 => go::<f32>(bytes, big_endian, out),
        DataType::F64 => go::<f64>(bytes, big_endian, out),
    }
}

/// On-disk sample types converted to `f32`.
pub(crate) trait Sample: Copy {
    const SIZE: usize;
    fn from_bytes(b: &[u8], big_endian: bool) -> Self;
    fn to_f32(self) -> f32;
}

macro_rules! impl_sample {
    ($($t:ty),*) => {$(
        impl Sample for $t {
            const SIZE: usize = std::mem::size_of::<$t>();
            fn from_bytes(b: &[u8], big_endian: bool) -> $t {
                let mut a = [0u8; std::mem::size_of::<$t>()];
                a.copy_from_slice(&b[..Self::SIZE]);
                if big_endian { <$t>::from_be_bytes(a) } else { <$t>::from_le_bytes(a) }
            }
            // Lossy above 2^24 for 32-bit integers and for f64: Volume is f32.
            fn to_f32(self) -> f32 { self as f32 }
        }
    )*};
}
impl_sample!(u8, i8, u16, i16, u32, i32, f32, f64);
