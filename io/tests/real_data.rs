//! Reads the real volumes in shared/data. Reference values were measured
//! once with nibabel / NumPy; the tests skip when the data is absent.

use std::path::PathBuf;

use strata_format::{DataType, Volume};
use strata_io::read_volume;

fn data_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data");
    if dir.is_dir() {
        Some(dir)
    } else {
        println!("skipping: test data not found at {}", dir.display());
        None
    }
}

fn sum(vol: &Volume) -> f64 {
    vol.data.iter().map(|&v| v as f64).sum()
}

#[test]
fn mni152_t1_nifti_gz() {
    let Some(dir) = data_dir() else { return };
    let vol = read_volume(&dir.join("mni152_t1.nii.gz")).unwrap();
    assert_eq!(vol.dims, [197, 233, 189, 1]);
    assert_eq!(vol.dtype, DataType::U8);
    assert_eq!(vol.spacing, [1.0; 4]);
    assert_eq!(vol.finite_range(), Some((0.0, 255.0)));
    assert_eq!(vol.data[vol.index(98, 116, 94, 0)], 198.0);
    assert_eq!(&vol.data[..5], &[0.0; 5]);
    assert_eq!(sum(&vol), 333_468_829.0);
}

#[test]
fn fmri_4d_nifti_gz() {
    let Some(dir) = data_dir() else { return };
    let vol = read_volume(&dir.join("fmri_example4d.nii.gz")).unwrap();
    assert_eq!(vol.dims, [128, 96, 24, 2]);
    assert_eq!(vol.dtype, DataType::I16);
    // pixdim as stored (nibabel shows the same 2.199999 for z).
    for (got, want) in vol.spacing.iter().zip([2.0, 2.0, 2.2, 2000.0]) {
        assert!((got - want).abs() < 1e-5, "spacing {:?}", vol.spacing);
    }
    assert_eq!(vol.finite_range(), Some((0.0, 1162.0)));
    assert_eq!(vol.data[vol.index(64, 48, 12, 1)], 266.0);
    assert_eq!(sum(&vol), 101_985_356.0);
}

#[test]
fn imide_potential_f32_with_sidecar() {
    let Some(dir) = data_dir() else { return };
    let by_data = read_volume(&dir.join("imide_potential.f32")).unwrap();
    assert_eq!(by_data.dims, [48, 43, 23, 1]);
    assert_eq!(by_data.dtype, DataType::F32);
    assert_eq!(by_data.finite_range(), Some((-0.08183, 52.19675)));
    assert_eq!(&by_data.data[..3], &[0.00282, 0.00274, 0.00262]);
    assert_eq!(by_data.data[by_data.index(24, 21, 11, 0)], 7.24084);
    assert!((sum(&by_data) - 6341.078171565321).abs() < 1e-6);
    // The sidecar's "file" key leads from the .json to the data.
    let by_json = read_volume(&dir.join("imide_potential.json")).unwrap();
    assert_eq!(by_json, by_data);
}

#[test]
fn scivis_engine_raw() {
    let Some(dir) = data_dir() else { return };
    let vol = read_volume(&dir.join("scivis/engine.raw")).unwrap();
    assert_eq!(vol.dims, [256, 256, 128, 1]);
    assert_eq!(vol.dtype, DataType::U8);
    assert_eq!(vol.finite_range(), Some((0.0, 255.0)));
    assert_eq!(vol.data[vol.index(128, 128, 64, 0)], 133.0);
    assert_eq!(sum(&vol), 187_475_057.0);
    // No "file" key here: the sibling engine.raw is found by name.
    assert_eq!(read_volume(&dir.join("scivis/engine.json")).unwrap(), vol);
}

#[test]
fn scivis_nucleon_raw() {
    let Some(dir) = data_dir() else { return };
    let vol = read_volume(&dir.join("scivis/nucleon.raw")).unwrap();
    assert_eq!(vol.dims, [41, 41, 41, 1]);
    assert_eq!(vol.dtype, DataType::U8);
    assert_eq!(vol.finite_range(), Some((0.0, 249.0)));
    assert_eq!(vol.data[vol.index(20, 20, 20, 0)], 8.0);
    assert_eq!(sum(&vol), 2_715_326.0);
}
