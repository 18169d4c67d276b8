//! Raw samples beside a JSON sidecar: `NAME.raw` (any extension) holds the
//! samples, x fastest; `NAME.json` holds at least
//! `{"dims": [x, y, z(, t)], "dtype": "uint8"}`.
//! Optional keys: `"endian"` ("little", the default, or "big"), `"spacing"`
//! (up to 4 positive numbers) and `"file"` (the data file's name, used when
//! the sidecar itself is opened). Other keys are ignored.

use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use strata_format::{DataType, Volume};

use crate::{
    checked_dims, clean_spacing, commit, make_volume, open, read_samples, shape_str, temp_beside,
    IoError, IoErrorKind, ReadOptions, CHUNK,
};

#[derive(Deserialize)]
struct Sidecar {
    dims: Vec<i64>,
    dtype: String,
    #[serde(default)]
    endian: Option<String>,
    #[serde(default)]
    spacing: Option<Vec<f64>>,
    #[serde(default)]
    file: Option<String>,
}

pub(crate) fn read(path: &Path, options: &ReadOptions) -> Result<Volume, IoError> {
    let is_json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let (data_path, json_path, sidecar) = if is_json {
        let sidecar = load_sidecar(path)?;
        let data_path = data_beside(path, sidecar.file.as_deref())?;
        (data_path, path.to_path_buf(), sidecar)
    } else {
        let json_path = path.with_extension("json");
        // Open the data first so a missing data file is reported as such.
        open(path)?;
        if !json_path.is_file() {
            return Err(IoError::invalid(
                path,
                format!(
                    "no JSON sidecar {} beside it (raw data needs one with dims and dtype; \
                     other supported types: .nii, .nii.gz, .npy)",
                    file_name(&json_path)
                ),
            ));
        }
        let sidecar = load_sidecar(&json_path)?;
        (path.to_path_buf(), json_path, sidecar)
    };

    let dtype = DataType::from_name(&sidecar.dtype.to_ascii_lowercase()).ok_or_else(|| {
        IoError::new(
            &json_path,
            IoErrorKind::UnsupportedDtype(format!("{:?}", sidecar.dtype)),
        )
    })?;
    let big_endian = match sidecar.endian.as_deref() {
        None | Some("little") | Some("le") => false,
        Some("big") | Some("be") => true,
        Some(other) => {
            return Err(IoError::invalid(
                &json_path,
                format!("\"endian\" must be \"little\" or \"big\", found {other:?}"),
            ))
        }
    };
    if sidecar.dims.iter().any(|&d| d <= 0) {
        return Err(IoError::invalid(
            &json_path,
            format!("dims must be positive, found {:?}", sidecar.dims),
        ));
    }
    let dims64: Vec<u64> = sidecar.dims.iter().map(|&d| d as u64).collect();
    let (dims, count) = checked_dims(&json_path, &dims64, options)?;
    let spacing = parse_spacing(&json_path, sidecar.spacing.as_deref())?;

    let file = open(&data_path)?;
    let found = file
        .metadata()
        .map_err(|e| IoError::io(&data_path, "cannot read file size", e))?
        .len();
    // count <= max_voxels fits u64; times at most 8 may not.
    let expected = (count as u64).checked_mul(dtype.size() as u64);
    if expected != Some(found) {
        return Err(IoError::new(
            &data_path,
            IoErrorKind::SizeMismatch {
                expected: expected.unwrap_or(u64::MAX),
                found,
                shape: shape_str(&dims64),
                dtype: dtype.name().to_string(),
            },
        ));
    }

    let data = read_samples(&data_path, file, count, dtype, big_endian)?;
    make_volume(&data_path, dims, data, dtype, spacing)
}

/// Sidecars are a few hundred bytes; refuse to slurp anything huge.
const MAX_SIDECAR: u64 = 1 << 20;

fn load_sidecar(json_path: &Path) -> Result<Sidecar, IoError> {
    let mut text = Vec::new();
    open(json_path)?
        .take(MAX_SIDECAR + 1)
        .read_to_end(&mut text)
        .map_err(|e| IoError::io(json_path, "cannot read", e))?;
    if text.len() as u64 > MAX_SIDECAR {
        return Err(IoError::invalid(
            json_path,
            format!("JSON sidecar larger than {MAX_SIDECAR} bytes"),
        ));
    }
    serde_json::from_slice(&text)
        .map_err(|e| IoError::invalid(json_path, format!("bad JSON sidecar: {e}")))
}

fn parse_spacing(json_path: &Path, spacing: Option<&[f64]>) -> Result<[f32; 4], IoError> {
    let mut out = [1.0f32; 4];
    let Some(s) = spacing else {
        return Ok(out);
    };
    if s.len() > 4 || s.iter().any(|&v| !(v.is_finite() && v > 0.0)) {
        return Err(IoError::invalid(
            json_path,
            format!("\"spacing\" must be up to 4 positive numbers, found {s:?}"),
        ));
    }
    for (o, &v) in out.iter_mut().zip(s) {
        *o = clean_spacing(v as f32);
    }
    Ok(out)
}

/// The data file for a sidecar opened directly: its `"file"` key, else the
/// one sibling `NAME.EXT` that is not JSON, NIfTI or NumPy (`.raw` wins a tie).
fn data_beside(json_path: &Path, file_key: Option<&str>) -> Result<PathBuf, IoError> {
    let dir = match json_path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if let Some(f) = file_key {
        return Ok(dir.join(f));
    }
    let Some(stem) = json_path.file_stem() else {
        return Err(IoError::invalid(json_path, "no file name"));
    };
    let entries = std::fs::read_dir(dir)
        .map_err(|e| IoError::io(json_path, "cannot list its directory", e))?;
    let ext_of = |p: &Path| {
        p.extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
    };
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_stem() == Some(stem)
                && !matches!(
                    ext_of(p).as_deref(),
                    None | Some("json" | "npy" | "nii" | "gz")
                )
                && p.is_file()
        })
        .collect();
    found.sort();
    let stem = stem.to_string_lossy();
    match found.len() {
        0 => Err(IoError::invalid(
            json_path,
            format!("no data file {stem}.raw (or other {stem}.*) beside this sidecar"),
        )),
        1 => Ok(found.remove(0)),
        _ => match found
            .iter()
            .position(|p| ext_of(p).as_deref() == Some("raw"))
        {
            Some(i) => Ok(found.remove(i)),
            None => Err(IoError::invalid(
                json_path,
                format!(
                    "several data files match ({}); open the data file itself",
                    found
                        .iter()
                        .map(|p| file_name(p))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        },
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

pub(crate) fn write(path: &Path, vol: &Volume) -> Result<(), IoError> {
    let json_path = path.with_extension("json");
    // Both files are complete on disk before either is renamed into place.
    let data_tmp = temp_beside(path, ".raw")?;
    {
        let mut w = BufWriter::new(data_tmp.as_file());
        for chunk in vol.data.chunks(CHUNK / 4) {
            let bytes: Vec<u8> = chunk.iter().flat_map(|v| v.to_le_bytes()).collect();
            w.write_all(&bytes)
                .map_err(|e| IoError::io(path, "write failed", e))?;
        }
        w.flush()
            .map_err(|e| IoError::io(path, "write failed", e))?;
    }

    let ndims = if vol.dims[3] == 1 { 3 } else { 4 };
    let spacing = vol.spacing.map(clean_spacing);
    let mut sidecar = serde_json::json!({
        "dims": &vol.dims[..ndims],
        "dtype": "float32",
        "endian": "little",
        "spacing": spacing,
    });
    if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
        sidecar["file"] = name.into();
    }
    let json_tmp = temp_beside(&json_path, ".json")?;
    {
        let mut w = BufWriter::new(json_tmp.as_file());
        serde_json::to_writer_pretty(&mut w, &sidecar)
            .map_err(|e| IoError::io(&json_path, "write failed", e.into()))?;
        w.write_all(b"\n")
            .and_then(|()| w.flush())
            .map_err(|e| IoError::io(&json_path, "write failed", e))?;
    }

    commit(data_tmp, path)?;
    commit(json_tmp, &json_path)
}
