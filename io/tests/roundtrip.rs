//! Every writer read back by the matching reader, plus reading the sample
//! types and layouts that only other tools write.

use std::fs;
use std::path::Path;

use ndarray::{Array, ArrayD, IxDyn, ShapeBuilder};
use strata_format::{DataType, Volume};
use strata_io::{read_volume, write_volume, FileFormat};

/// A volume whose every voxel differs, with negatives and fractions.
fn synthetic(dims: [usize; 4], spacing: [f32; 4]) -> Volume {
    let n = dims.iter().product::<usize>();
    let data = (0..n)
        .map(|i| (i as f32 * 0.37).sin() * 100.0 + i as f32 * 0.001)
        .collect();
    let mut vol = Volume::new(dims, data).unwrap();
    vol.spacing = spacing;
    vol
}

const SHAPES: [[usize; 4]; 4] = [[7, 5, 3, 1], [1, 1, 1, 1], [13, 1, 9, 1], [5, 4, 3, 2]];

/// No temporary files may be left behind in `dir`.
fn assert_no_temp_files(dir: &Path) {
    for entry in fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name();
        assert!(
            !name.to_string_lossy().starts_with(".strata-tmp-"),
            "temporary file left: {name:?}"
        );
    }
}

fn roundtrip(name: &str, keeps_spacing: bool) {
    let dir = tempfile::tempdir().unwrap();
    for (i, dims) in SHAPES.into_iter().enumerate() {
        let vol = synthetic(dims, [0.5, 1.25, 3.0, 2.5]);
        let path = dir.path().join(format!("v{i}{name}"));
        write_volume(&path, &vol).unwrap();
        let back = read_volume(&path).unwrap();
        assert_eq!(back.dims, vol.dims, "{name} {dims:?}");
        assert_eq!(back.data, vol.data, "{name} {dims:?}");
        assert_eq!(back.dtype, DataType::F32);
        let want = if keeps_spacing { vol.spacing } else { [1.0; 4] };
        assert_eq!(back.spacing, want, "{name} {dims:?}");
    }
    assert_no_temp_files(dir.path());
}

#[test]
fn nifti_roundtrip() {
    roundtrip(".nii", true);
}

#[test]
fn nifti_gz_roundtrip() {
    roundtrip(".nii.gz", true);
}

#[test]
fn npy_roundtrip() {
    roundtrip(".npy", false);
}

#[test]
fn raw_roundtrip() {
    roundtrip(".raw", true);
    roundtrip(".f32", true);
}

#[test]
fn raw_writes_sidecar_and_reads_through_it() {
    let dir = tempfile::tempdir().unwrap();
    let vol = synthetic([6, 5, 4, 3], [1.0, 2.0, 3.0, 4.0]);
    let path = dir.path().join("vol.raw");
    write_volume(&path, &vol).unwrap();
    assert_eq!(fs::metadata(&path).unwrap().len(), 6 * 5 * 4 * 3 * 4);
    let json: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.path().join("vol.json")).unwrap()).unwrap();
    assert_eq!(json["dims"], serde_json::json!([6, 5, 4, 3]));
    assert_eq!(json["dtype"], "float32");
    assert_eq!(read_volume(&dir.path().join("vol.json")).unwrap(), vol);
}

#[test]
fn npy_layout_is_z_y_x() {
    let dir = tempfile::tempdir().unwrap();
    let vol = synthetic([4, 3, 2, 1], [1.0; 4]);
    let path = dir.path().join("v.npy");
    write_volume(&path, &vol).unwrap();
    let arr: ArrayD<f32> = ndarray_npy::read_npy(&path).unwrap();
    assert_eq!(arr.shape(), &[2, 3, 4]);
    assert_eq!(arr[[1, 2, 3]], vol.data[vol.index(3, 2, 1, 0)]);

    let vol4 = synthetic([4, 3, 2, 5], [1.0; 4]);
    write_volume(&path, &vol4).unwrap();
    let arr: ArrayD<f32> = ndarray_npy::read_npy(&path).unwrap();
    assert_eq!(arr.shape(), &[5, 2, 3, 4]);
    assert_eq!(arr[[4, 1, 2, 3]], vol4.data[vol4.index(3, 2, 1, 4)]);
}

#[test]
fn overwrite_replaces_old_file() {
    let dir = tempfile::tempdir().unwrap();
    for ext in [".nii", ".nii.gz", ".npy", ".raw"] {
        let path = dir.path().join(format!("out{ext}"));
        write_volume(&path, &synthetic([9, 8, 7, 1], [1.0; 4])).unwrap();
        let small = synthetic([2, 2, 2, 1], [1.0; 4]);
        write_volume(&path, &small).unwrap();
        assert_eq!(read_volume(&path).unwrap().data, small.data, "{ext}");
    }
    assert_no_temp_files(dir.path());
}

/// Writes `values` (x fastest, dims (4, 3, 2)) as an .npy of element type T.
fn npy_of<T: ndarray_npy::WritableElement + Copy>(path: &Path, values: &[T], fortran: bool) {
    let arr = if fortran {
        // Same logical (z, y, x) array, stored column-major.
        let mut f = Array::from_elem(IxDyn(&[2, 3, 4]).f(), values[0]);
        for (dst, src) in f.iter_mut().zip(values) {
            *dst = *src;
        }
        f
    } else {
        Array::from_shape_vec(IxDyn(&[2, 3, 4]), values.to_vec()).unwrap()
    };
    ndarray_npy::write_npy(path, &arr).unwrap();
}

#[test]
fn npy_reads_all_sample_types() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.npy");
    let base: Vec<i32> = (0..24).map(|i| i * 5 - 40).collect();
    let want: Vec<f32> = base.iter().map(|&v| v as f32).collect();
    let check = |dtype: DataType, expect: Vec<f32>| {
        let vol = read_volume(&path).unwrap();
        assert_eq!(vol.dims, [4, 3, 2, 1]);
        assert_eq!(vol.dtype, dtype);
        assert_eq!(vol.data, expect, "{dtype:?}");
    };
    let unsigned: Vec<f32> = base.iter().map(|&v| (v + 40) as f32).collect();
    npy_of(
        &path,
        &base.iter().map(|&v| (v + 40) as u8).collect::<Vec<_>>(),
        false,
    );
    check(DataType::U8, unsigned.clone());
    npy_of(
        &path,
        &base.iter().map(|&v| v as i8).collect::<Vec<_>>(),
        false,
    );
    check(DataType::I8, want.clone());
    npy_of(
        &path,
        &base.iter().map(|&v| v as i16).collect::<Vec<_>>(),
        false,
    );
    check(DataType::I16, want.clone());
    npy_of(
        &path,
        &base.iter().map(|&v| (v + 40) as u16).collect::<Vec<_>>(),
        false,
    );
    check(DataType::U16, unsigned.clone());
    npy_of(&path, &base, false);
    check(DataType::I32, want.clone());
    npy_of(
        &path,
        &base.iter().map(|&v| (v + 40) as u32).collect::<Vec<_>>(),
        false,
    );
    check(DataType::U32, unsigned);
    npy_of(
        &path,
        &base.iter().map(|&v| v as f64).collect::<Vec<_>>(),
        false,
    );
    check(DataType::F64, want.clone());
    // Column-major storage is reordered to x fastest.
    npy_of(
        &path,
        &base.iter().map(|&v| v as f64).collect::<Vec<_>>(),
        true,
    );
    check(DataType::F64, want);
}

#[test]
fn npy_big_endian() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("be.npy");
    // Header written by hand: NumPy writes '>i2' for big-endian int16.
    let dict = "{'descr': '>i2', 'fortran_order': False, 'shape': (1, 2, 3), }";
    let mut header = format!("{dict:<117}\n").into_bytes();
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.append(&mut header);
    for v in [1i16, -2, 300, -400, 5, 32767] {
        bytes.extend_from_slice(&v.to_be_bytes());
    }
    fs::write(&path, bytes).unwrap();
    let vol = read_volume(&path).unwrap();
    assert_eq!(vol.dims, [3, 2, 1, 1]);
    assert_eq!(vol.data, [1.0, -2.0, 300.0, -400.0, 5.0, 32767.0]);
}

#[test]
fn raw_reads_all_sample_types_and_big_endian() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("s.bin");
    let json = dir.path().join("s.json");
    let values = [0i32, 1, 100, 7, 3, 2];
    for (name, size) in [
        ("uint8", 1),
        ("int8", 1),
        ("uint16", 2),
        ("int16", 2),
        ("uint32", 4),
        ("int32", 4),
        ("float32", 4),
        ("float64", 8),
    ] {
        for big in [false, true] {
            let bytes: Vec<u8> = values
                .iter()
                .flat_map(|&v| {
                    let le: Vec<u8> = match name {
                        "float32" => (v as f32).to_le_bytes().to_vec(),
                        "float64" => (v as f64).to_le_bytes().to_vec(),
                        _ => v.to_le_bytes()[..size].to_vec(),
                    };
                    if big {
                        le.into_iter().rev().collect()
                    } else {
                        le
                    }
                })
                .collect();
            fs::write(&raw, bytes).unwrap();
            let endian = if big { "big" } else { "little" };
            fs::write(
                &json,
                format!(
                    r#"{{"dims": [3, 2], "dtype": "{name}", "endian": "{endian}", "note": 1}}"#
                ),
            )
            .unwrap();
            let vol = read_volume(&raw).unwrap();
            assert_eq!(vol.dims, [3, 2, 1, 1]);
            assert_eq!(vol.dtype, DataType::from_name(name).unwrap());
            assert_eq!(vol.data, values.map(|v| v as f32), "{name} {endian}");
        }
    }
}

/// Rewrites an uncompressed NIfTI-1 header field in place.
fn patch(path: &Path, offset: usize, bytes: &[u8]) {
    let mut file = fs::read(path).unwrap();
    file[offset..offset + bytes.len()].copy_from_slice(bytes);
    fs::write(path, file).unwrap();
}

#[test]
fn nifti_int16_with_scaling() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.nii");
    let values: Vec<i16> = (0..24).map(|i| i * 100 - 1000).collect();
    let arr = Array::from_shape_vec((4, 3, 2).f(), values.clone()).unwrap();
    nifti::writer::WriterOptions::new(&path)
        .write_nifti(&arr)
        .unwrap();

    let vol = read_volume(&path).unwrap();
    assert_eq!(vol.dims, [4, 3, 2, 1]);
    assert_eq!(vol.dtype, DataType::I16);
    assert_eq!(
        vol.data,
        values.iter().map(|&v| v as f32).collect::<Vec<_>>()
    );

    // scl_slope at byte 112, scl_inter at 116.
    patch(&path, 112, &0.5f32.to_le_bytes());
    patch(&path, 116, &10.0f32.to_le_bytes());
    let vol = read_volume(&path).unwrap();
    assert_eq!(vol.dtype, DataType::I16);
    assert_eq!(
        vol.data,
        values
            .iter()
            .map(|&v| v as f32 * 0.5 + 10.0)
            .collect::<Vec<_>>()
    );

    // A NaN slope means "unscaled", as in nibabel.
    patch(&path, 112, &f32::NAN.to_le_bytes());
    let vol = read_volume(&path).unwrap();
    assert_eq!(
        vol.data,
        values.iter().map(|&v| v as f32).collect::<Vec<_>>()
    );
}

#[test]
fn format_from_path() {
    assert_eq!(
        FileFormat::from_path(Path::new("a/b.NII.GZ")),
        FileFormat::NiftiGz
    );
    assert_eq!(FileFormat::from_path(Path::new("b.nii")), FileFormat::Nifti);
    assert_eq!(FileFormat::from_path(Path::new("b.npy")), FileFormat::Npy);
    assert_eq!(FileFormat::from_path(Path::new("b.raw")), FileFormat::Raw);
    assert_eq!(FileFormat::from_path(Path::new("b.json")), FileFormat::Raw);
}
