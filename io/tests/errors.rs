//! Bad input gives a one-line error naming the file, never a panic, and a
//! failed write leaves what was there before.

use std::fs;
use std::path::Path;

use strata_format::Volume;
use strata_io::{read_volume, read_volume_with, write_volume, IoError, IoErrorKind, ReadOptions};

fn err_of(path: &Path) -> IoError {
    let e = read_volume(path).expect_err("expected an error");
    let msg = e.to_string();
    assert!(!msg.contains('\n'), "multi-line message: {msg}");
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let stem = name.split('.').next().unwrap().to_owned();
    assert!(msg.contains(&stem), "message does not name the file: {msg}");
    e
}

fn small_volume() -> Volume {
    Volume::new([4, 3, 2, 1], (0..24).map(|i| i as f32).collect()).unwrap()
}

#[test]
fn truncated_raw_reports_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("engine.raw");
    fs::write(&raw, vec![0u8; 100]).unwrap();
    fs::write(
        dir.path().join("engine.json"),
        r#"{"dims": [256, 256, 128], "dtype": "uint8"}"#,
    )
    .unwrap();
    let e = err_of(&raw);
    assert!(
        e.to_string()
            .ends_with("engine.raw: expected 8388608 bytes for 256x256x128 uint8, found 100"),
        "{e}"
    );
    assert!(matches!(e.kind, IoErrorKind::SizeMismatch { .. }));
}

#[test]
fn raw_too_long_is_an_error_too() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("v.raw");
    fs::write(&raw, vec![0u8; 25]).unwrap();
    fs::write(
        dir.path().join("v.json"),
        r#"{"dims": [4, 3, 2], "dtype": "uint8"}"#,
    )
    .unwrap();
    assert!(matches!(
        err_of(&raw).kind,
        IoErrorKind::SizeMismatch { .. }
    ));
}

#[test]
fn missing_sidecar() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("lonely.raw");
    fs::write(&raw, [0u8; 8]).unwrap();
    let e = err_of(&raw);
    assert!(e.to_string().contains("lonely.json"), "{e}");
}

#[test]
fn missing_data_file() {
    let dir = tempfile::tempdir().unwrap();
    let e = err_of(&dir.path().join("nothing.raw"));
    assert!(matches!(e.kind, IoErrorKind::Io { .. }), "{e}");
    let json = dir.path().join("orphan.json");
    fs::write(&json, r#"{"dims": [2, 2, 2], "dtype": "uint8"}"#).unwrap();
    err_of(&json);
    let e = err_of(&dir.path().join("gone.nii.gz"));
    assert!(matches!(e.kind, IoErrorKind::Io { .. }), "{e}");
}

#[test]
fn bad_sidecars() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("v.raw");
    fs::write(&raw, [0u8; 24]).unwrap();
    let json = dir.path().join("v.json");
    for (text, expect) in [
        ("{not json", "bad JSON sidecar"),
        (r#"[4, 3, 2]"#, "bad JSON sidecar"),
        (r#"{"dtype": "uint8"}"#, "dims"),
        (r#"{"dims": [4, 3, 2]}"#, "dtype"),
        (
            r#"{"dims": [4, 3, 2], "dtype": "complex64"}"#,
            "unsupported data type",
        ),
        (r#"{"dims": [4, -3, 2], "dtype": "uint8"}"#, "positive"),
        (r#"{"dims": [4, 0, 2], "dtype": "uint8"}"#, "positive"),
        (r#"{"dims": [], "dtype": "uint8"}"#, "1 to 4 dims"),
        (
            r#"{"dims": [1, 1, 1, 1, 24], "dtype": "uint8"}"#,
            "1 to 4 dims",
        ),
        (
            r#"{"dims": [4, 3.5, 2], "dtype": "uint8"}"#,
            "bad JSON sidecar",
        ),
        (
            r#"{"dims": [4, 3, 2], "dtype": "uint8", "endian": "middle"}"#,
            "endian",
        ),
        (
            r#"{"dims": [4, 3, 2], "dtype": "uint8", "spacing": [1, 0]}"#,
            "spacing",
        ),
    ] {
        fs::write(&json, text).unwrap();
        let e = read_volume(&raw).expect_err(text);
        let msg = e.to_string();
        assert!(
            msg.contains("v.json") && msg.contains(expect),
            "{text}: {msg}"
        );
    }
}

#[test]
fn voxel_limit_is_checked_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("huge.raw");
    fs::write(&raw, [0u8; 16]).unwrap();
    fs::write(
        dir.path().join("huge.json"),
        r#"{"dims": [4294967296, 4294967296, 4294967296, 4294967296], "dtype": "float64"}"#,
    )
    .unwrap();
    assert!(matches!(err_of(&raw).kind, IoErrorKind::TooLarge { .. }));

    fs::write(
        dir.path().join("huge.json"),
        r#"{"dims": [4, 4], "dtype": "uint8"}"#,
    )
    .unwrap();
    assert!(read_volume(&raw).is_ok());
    let e = read_volume_with(&raw, &ReadOptions { max_voxels: 15 }).unwrap_err();
    assert!(
        matches!(e.kind, IoErrorKind::TooLarge { limit: 15, .. }),
        "{e}"
    );
}

#[test]
fn garbage_nifti() {
    let dir = tempfile::tempdir().unwrap();
    // Not gzip at all, though named .nii.gz.
    let p = dir.path().join("junk.nii.gz");
    fs::write(&p, b"this is not a nifti file").unwrap();
    assert!(err_of(&p).to_string().contains("too short"));
    fs::write(&p, vec![7u8; 1000]).unwrap();
    assert!(err_of(&p).to_string().contains("not a NIfTI-1 file"));

    // Gzip magic followed by garbage.
    let mut bytes = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
    bytes.extend((0..2000u32).map(|i| (i * 7919 % 251) as u8));
    fs::write(&p, &bytes).unwrap();
    let e = err_of(&p);
    assert!(e.to_string().contains("gzip"), "{e}");

    // An empty file.
    let empty = dir.path().join("empty.nii");
    fs::write(&empty, b"").unwrap();
    err_of(&empty);
}

#[test]
fn truncated_and_damaged_nifti() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.nii.gz");
    write_volume(&good, &small_volume()).unwrap();
    let bytes = fs::read(&good).unwrap();

    // Cut the gzip stream short.
    let cut = dir.path().join("cut.nii.gz");
    fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    err_of(&cut);

    // Flip bytes in the middle of the deflate data.
    let mut bad = bytes.clone();
    let mid = bad.len() / 2;
    for b in &mut bad[mid..mid + 8] {
        *b ^= 0xa5;
    }
    let flipped = dir.path().join("flipped.nii.gz");
    fs::write(&flipped, &bad).unwrap();
    err_of(&flipped);

    // Damage that only the gzip trailer (CRC32, length) reveals.
    let crc = bytes.len() - 8;
    let mut bad_crc = bytes.clone();
    bad_crc[crc] ^= 1;
    fs::write(&flipped, &bad_crc).unwrap();
    assert!(err_of(&flipped).to_string().contains("gzip"));
    fs::write(&cut, &bytes[..bytes.len() - 4]).unwrap();
    err_of(&cut);

    // Uncompressed: voxel data cut short.
    let nii = dir.path().join("short.nii");
    write_volume(&nii, &small_volume()).unwrap();
    let full = fs::read(&nii).unwrap();
    fs::write(&nii, &full[..full.len() - 10]).unwrap();
    let e = err_of(&nii);
    assert!(
        e.to_string()
            .contains("expected 96 bytes for 4x3x2 float32, found 86"),
        "{e}"
    );

    // Header claiming absurd dims: refused before reading voxels.
    let mut huge = full.clone();
    for i in 0..3 {
        huge[42 + 2 * i..44 + 2 * i].copy_from_slice(&30000u16.to_le_bytes());
    }
    fs::write(&nii, &huge).unwrap();
    assert!(matches!(err_of(&nii).kind, IoErrorKind::TooLarge { .. }));

    // Negative dim.
    let mut neg = full.clone();
    neg[42..44].copy_from_slice(&(-4i16).to_le_bytes());
    fs::write(&nii, &neg).unwrap();
    assert!(err_of(&nii).to_string().contains("dim[1] = -4"));

    // Unsupported datatype (complex64 = 32).
    let mut cplx = full.clone();
    cplx[70..72].copy_from_slice(&32i16.to_le_bytes());
    fs::write(&nii, &cplx).unwrap();
    assert!(matches!(
        err_of(&nii).kind,
        IoErrorKind::UnsupportedDtype(_)
    ));
}

#[test]
fn garbage_npy() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("junk.npy");
    fs::write(&p, b"\x93NUMPY garbage").unwrap();
    assert!(err_of(&p).to_string().contains("not a valid .npy file"));

    // Valid file cut short.
    write_volume(&p, &small_volume()).unwrap();
    let full = fs::read(&p).unwrap();
    fs::write(&p, &full[..full.len() - 4]).unwrap();
    let e = err_of(&p);
    assert!(
        e.to_string()
            .contains("expected 96 bytes for (2, 3, 4) float32, found 92"),
        "{e}"
    );

    // Unsupported element type.
    ndarray_npy::write_npy(&p, &ndarray::arr1(&[1i64, 2, 3])).unwrap();
    assert!(matches!(err_of(&p).kind, IoErrorKind::UnsupportedDtype(_)));

    // Too many axes.
    ndarray_npy::write_npy(&p, &ndarray::Array5::<f32>::zeros((1, 1, 1, 1, 2))).unwrap();
    assert!(err_of(&p).to_string().contains("(t, z, y, x)"));
}

#[test]
fn write_errors_leave_old_file() {
    let dir = tempfile::tempdir().unwrap();
    for ext in ["nii", "nii.gz", "npy", "raw"] {
        let path = dir.path().join(format!("keep.{ext}"));
        write_volume(&path, &small_volume()).unwrap();
        let before = fs::read(&path).unwrap();
        // Fields disagree: refused, old file untouched.
        let mut bad = small_volume();
        bad.data.pop();
        let e = write_volume(&path, &bad).unwrap_err();
        assert!(e.to_string().contains("keep"), "{e}");
        assert_eq!(fs::read(&path).unwrap(), before);
    }
    // The rename fails (a directory is in the way) after the data was
    // written: the temporary file must go, the directory stay.
    for ext in ["nii", "nii.gz", "npy", "raw"] {
        let blocked = dir.path().join(format!("blocked.{ext}"));
        fs::create_dir(&blocked).unwrap();
        fs::write(blocked.join("inside"), b"x").unwrap();
        let e = write_volume(&blocked, &small_volume()).unwrap_err();
        assert!(matches!(e.kind, IoErrorKind::Io { .. }), "{e}");
        assert!(blocked.join("inside").exists());
        fs::remove_dir_all(&blocked).unwrap();
    }
    // NIfTI-1 cannot hold an axis over 32767.
    let wide = Volume::new([40000, 1, 1, 1], vec![0.0; 40000]).unwrap();
    let e = write_volume(&dir.path().join("wide.nii"), &wide).unwrap_err();
    assert!(e.to_string().contains("32767"), "{e}");
    assert!(!dir.path().join("wide.nii").exists());

    let e = write_volume(&dir.path().join("v.txt"), &small_volume()).unwrap_err();
    assert!(matches!(e.kind, IoErrorKind::UnsupportedFileType(_)), "{e}");
    let e = write_volume(&dir.path().join("no/such/dir/v.nii"), &small_volume()).unwrap_err();
    assert!(matches!(e.kind, IoErrorKind::Io { .. }), "{e}");

    // Only the files written on purpose remain: no temporaries.
    let mut names: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "keep.json",
            "keep.nii",
            "keep.nii.gz",
            "keep.npy",
            "keep.raw"
        ]
    );
}

#[test]
fn sidecar_opened_directly_finds_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("v.json");
    fs::write(&json, r#"{"dims": [2, 2], "dtype": "uint8"}"#).unwrap();
    fs::write(dir.path().join("v.a"), [1u8, 2, 3, 4]).unwrap();
    fs::write(dir.path().join("v.b"), [5u8, 6, 7, 8]).unwrap();
    assert!(err_of(&json).to_string().contains("several data files"));
    // .raw wins; other formats and longer names are never taken for data.
    fs::write(dir.path().join("v.raw"), [9u8, 8, 7, 6]).unwrap();
    fs::write(dir.path().join("v.npy"), [0u8; 4]).unwrap();
    fs::write(dir.path().join("v.raw.gz"), [0u8; 4]).unwrap();
    assert_eq!(read_volume(&json).unwrap().data, [9.0, 8.0, 7.0, 6.0]);
    fs::remove_file(dir.path().join("v.a")).unwrap();
    fs::remove_file(dir.path().join("v.b")).unwrap();
    fs::remove_file(dir.path().join("v.raw")).unwrap();
    assert!(err_of(&json).to_string().contains("no data file v.raw"));
}
