//! The `strata` command line end to end: real processes, real files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn strata(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(args)
        .output()
        .expect("run strata")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A failure: non-zero exit, exactly one line on stderr, no panic.
fn assert_clean_failure(o: &Output, needle: &str) {
    let err = stderr(o);
    assert!(!o.status.success(), "expected failure, stderr: {err}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "one line expected: {err}"
    );
    assert!(err.starts_with("strata: error: "), "{err}");
    assert!(
        !err.contains("panicked") && !err.contains("internal error"),
        "{err}"
    );
    assert!(err.contains(needle), "{err:?} should mention {needle:?}");
}

fn example(dir: &Path, dims: [u32; 4]) -> PathBuf {
    let path = dir.join("sample.strata");
    let d: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
    let o = strata(&[
        "example",
        path.to_str().unwrap(),
        "--dims",
        &d[0],
        &d[1],
        &d[2],
        &d[3],
        "--block",
        "8",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    path
}

#[test]
fn info_json_has_the_documented_keys() {
    let dir = tempfile::tempdir().unwrap();
    let archive = example(dir.path(), [21, 18, 13, 2]);
    let o = strata(&["info", archive.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["dims"], serde_json::json!([21, 18, 13, 2]));
    assert_eq!(v["scales"], 3);
    assert_eq!(v["bytes"], std::fs::metadata(&archive).unwrap().len());
    let sections = v["sections"].as_array().unwrap();
    assert_eq!(sections.len(), 4); // 3 scales + metadata
    for (i, s) in sections[..3].iter().enumerate() {
        assert_eq!(s["kind"], "scale");
        assert_eq!(s["scale"], i);
        assert_eq!(s["ok"], true);
        assert!(s["offset"].as_u64().unwrap() > 0 && s["length"].as_u64().unwrap() > 0);
    }
    assert_eq!(sections[3]["kind"], "metadata");
    // The byte breakdown by component adds up to each section and the header.
    let parts = v["components"].as_array().unwrap();
    assert_eq!(parts[0]["part"], "header");
    assert_eq!(parts[0]["bytes"]["total"], v["header_bytes"]);
    for (i, s) in sections[..3].iter().enumerate() {
        let b = &parts[i + 1]["bytes"];
        let names = [
            "occupancy",
            "assignment",
            "latents",
            "ranges",
            "masks",
            "codebooks",
            "weights",
            "framing",
        ];
        let sum: u64 = names.iter().map(|n| b[n].as_u64().unwrap()).sum();
        assert_eq!(sum, b["total"].as_u64().unwrap());
        assert_eq!(b["total"], s["length"], "scale {i}");
        assert!(b["weights"].as_u64().unwrap() > 0);
    }
    // The human-readable form works too.
    let o = strata(&["info", archive.to_str().unwrap()]);
    assert!(o.status.success());
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(text.contains("21 × 18 × 13 × 2"));
    assert!(
        text.contains("codebooks") && text.contains("scale 2"),
        "{text}"
    );
}

#[test]
fn decode_writes_nifti_the_nifti_crate_reads() {
    use nifti::{IntoNdArray, NiftiObject, ReaderOptions};
    let dir = tempfile::tempdir().unwrap();
    let archive = example(dir.path(), [21, 18, 13, 1]);
    let out = dir.path().join("out.nii.gz");
    let o = strata(&[
        "decode",
        archive.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let obj = ReaderOptions::new().read_file(&out).unwrap();
    let dim = obj.header().dim;
    assert_eq!(&dim[..4], &[3, 21, 18, 13]);
    let arr = obj.into_volume().into_ndarray::<f32>().unwrap();
    assert_eq!(arr.shape(), &[21, 18, 13]);
    // Same values as the library decoder.
    let bytes = std::fs::read(&archive).unwrap();
    let a = strata_format::Archive::read(&bytes, &Default::default()).unwrap();
    let v = strata_format::decode(&a.header, &a.usable_scales(), None).unwrap();
    for (x, y, z) in [(0, 0, 0), (20, 17, 12), (5, 9, 3)] {
        assert_eq!(arr[[x, y, z]], v.data[v.index(x, y, z, 0)]);
    }
}

#[test]
fn decode_writes_npy_numpy_loads_as_zyx() {
    let dir = tempfile::tempdir().unwrap();
    let archive = example(dir.path(), [21, 18, 13, 1]);
    let out = dir.path().join("out.npy");
    let o = strata(&[
        "decode",
        archive.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--scales",
        "2",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // The .npy header, by the NumPy format spec.
    let bytes = std::fs::read(&out).unwrap();
    assert_eq!(&bytes[..6], b"\x93NUMPY");
    let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let dict = String::from_utf8_lossy(&bytes[10..10 + hlen]);
    assert!(dict.contains("'descr': '<f4'"), "{dict}");
    assert!(dict.contains("'fortran_order': False"), "{dict}");
    assert!(dict.contains("'shape': (13, 18, 21)"), "{dict}");
    // And NumPy itself, where it is installed (CI installs it).
    let script = format!(
        "import numpy as np; a = np.load({:?}); print(a.shape, a.dtype)",
        out.to_str().unwrap()
    );
    match Command::new("python3").args(["-c", &script]).output() {
        Ok(o) if o.status.success() => {
            assert_eq!(
                String::from_utf8_lossy(&o.stdout).trim(),
                "(13, 18, 21) float32"
            );
        }
        _ => eprintln!("NumPy not available: skipped loading the .npy with NumPy"),
    }
}

#[test]
fn damaged_archives_fail_cleanly_and_coarse_scales_survive() {
    let dir = tempfile::tempdir().unwrap();
    let archive = example(dir.path(), [32, 32, 32, 1]);
    let bytes = std::fs::read(&archive).unwrap();
    let a = strata_format::Archive::read(&bytes, &Default::default()).unwrap();
    let fine = &a.header.sections[2];
    // Flip a byte inside the finest scale.
    let mut damaged = bytes.clone();
    damaged[fine.offset as usize + 10] ^= 0x40;
    let bad = dir.path().join("bad.strata");
    std::fs::write(&bad, &damaged).unwrap();
    let out = dir.path().join("out.npy");
    std::fs::write(&out, b"keep me").unwrap();
    let o = strata(&["decode", bad.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert_clean_failure(&o, "section 2 (scale)");
    assert!(stderr(&o).contains(&format!("offset {}", fine.offset)));
    assert_eq!(
        std::fs::read(&out).unwrap(),
        b"keep me",
        "existing output clobbered"
    );
    // The two intact coarser scales still decode.
    let o = strata(&[
        "decode",
        bad.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--scales",
        "2",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // info shows the damage and fails.
    let o = strata(&["info", bad.to_str().unwrap(), "--json"]);
    assert!(!o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["sections"][1]["ok"], true);
    assert_eq!(v["sections"][2]["ok"], false);
    // Truncated mid-file.
    let cut = dir.path().join("cut.strata");
    std::fs::write(&cut, &bytes[..fine.offset as usize + 5]).unwrap();
    let o = strata(&["decode", cut.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert_clean_failure(&o, "truncated");
}

#[test]
fn bad_inputs_give_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.strata");
    assert_clean_failure(&strata(&["info", missing.to_str().unwrap()]), "cannot read");
    let junk = dir.path().join("junk.strata");
    std::fs::write(&junk, b"this is not an archive at all, sorry").unwrap();
    assert_clean_failure(
        &strata(&["info", junk.to_str().unwrap()]),
        "not a .strata archive",
    );
    let empty = dir.path().join("empty.strata");
    std::fs::write(&empty, b"").unwrap();
    assert_clean_failure(
        &strata(&["decode", empty.to_str().unwrap(), "-o", "x.npy"]),
        "truncated",
    );
    let archive = example(dir.path(), [16, 16, 16, 1]);
    let a = archive.to_str().unwrap();
    let nodir = dir.path().join("no/such/dir/out.npy");
    assert_clean_failure(
        &strata(&["decode", a, "-o", nodir.to_str().unwrap()]),
        "out.npy",
    );
    let badext = dir.path().join("out.xyz");
    assert_clean_failure(
        &strata(&["decode", a, "-o", badext.to_str().unwrap()]),
        "out.xyz",
    );
    assert!(!badext.exists());
    assert_clean_failure(
        &strata(&["decode", a, "-o", "x.npy", "--scales", "4"]),
        "--scales",
    );
    assert_clean_failure(
        &strata(&["decode", a, "-o", "x.npy", "--scales", "0"]),
        "--scales",
    );
}

/// `decode --gpu` against `decode` on an archive from the real encoder:
/// within 1e-4 of the value range. Without a GPU adapter this fails, unless
/// STRATA_SKIP_GPU=1.
#[test]
fn decode_gpu_equals_decode_on_an_encoder_archive() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    let o = strata(&["phantom", &p("ph.nii"), "--size", "27"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = strata(&[
        "encode",
        &p("ph.nii"),
        "-o",
        &p("ph.strata"),
        "--model",
        "siren",
        "--width",
        "16",
        "--max-steps",
        "30",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = strata(&["decode", &p("ph.strata"), "-o", &p("cpu.raw")]);
    assert!(o.status.success(), "{}", stderr(&o));
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        std::env::set_var("XDG_RUNTIME_DIR", std::env::temp_dir());
    }
    let o = strata(&["decode", &p("ph.strata"), "-o", &p("gpu.raw"), "--gpu"]);
    if !o.status.success() && std::env::var("STRATA_SKIP_GPU").as_deref() == Ok("1") {
        eprintln!("STRATA_SKIP_GPU=1: skipping ({})", stderr(&o).trim());
        return;
    }
    assert!(
        o.status.success(),
        "{} (set STRATA_SKIP_GPU=1 to skip the GPU tests explicitly)",
        stderr(&o)
    );
    let read = |n: &str| -> Vec<f32> {
        std::fs::read(p(n))
            .unwrap()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    };
    let (cpu, gpu) = (read("cpu.raw"), read("gpu.raw"));
    assert_eq!(cpu.len(), 27 * 27 * 27);
    assert_eq!(cpu.len(), gpu.len());
    let lo = cpu.iter().copied().fold(f32::INFINITY, f32::min);
    let hi = cpu.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let worst = cpu
        .iter()
        .zip(&gpu)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    let rel = worst / (hi - lo).max(f32::MIN_POSITIVE);
    eprintln!("decode --gpu vs decode: worst {worst:e} = {rel:.2e} of the range");
    assert!(rel <= 1e-4, "{rel:e} of the range");
    // A bad --gpu run is a clean one-line error too.
    let o = strata(&["decode", &p("missing.strata"), "-o", &p("x.raw"), "--gpu"]);
    assert_clean_failure(&o, "missing.strata");
}
