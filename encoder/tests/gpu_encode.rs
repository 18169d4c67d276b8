//! `strata encode --device gpu` (burn's wgpu backend; Mesa's lavapipe in
//! CI) against the CPU encode with the same options: both archives decode,
//! and the GPU one's PSNR is within 1 dB of the CPU one's. On a small real
//! volume, `scivis/nucleon.raw` (41³ u8) from shared/data, or the 41³
//! Shepp–Logan phantom where that is absent. Without a GPU adapter this
//! FAILS, unless STRATA_SKIP_GPU=1.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

fn strata(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(args)
        .output()
        .expect("run strata")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The volume to encode: nucleon from shared/data, else a phantom written to `dir`.
fn input(dir: &Path) -> PathBuf {
    let nucleon =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/scivis/nucleon.raw");
    if nucleon.is_file() {
        return nucleon;
    }
    eprintln!(
        "{} not found: encoding the 41³ phantom instead",
        nucleon.display()
    );
    let p = dir.join("phantom.nii");
    let o = strata(&["phantom", p.to_str().unwrap(), "--size", "41"]);
    assert!(o.status.success(), "{}", stderr(&o));
    p
}

/// `strata eval --json` of an archive: (PSNR in dB, compression ratio).
fn eval(original: &Path, archive: &Path) -> (f64, f64) {
    let o = strata(&[
        "eval",
        original.to_str().unwrap(),
        archive.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    (v["psnr"].as_f64().unwrap(), v["ratio"].as_f64().unwrap())
}

#[test]
fn gpu_encode_matches_the_cpu_encode_within_1_db() {
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        std::env::set_var("XDG_RUNTIME_DIR", std::env::temp_dir());
    }
    let dir = tempfile::tempdir().unwrap();
    let vol = input(dir.path());
    let vol_s = vol.to_str().unwrap();
    // Small enough for lavapipe on a 2-core CI machine.
    let opts = [
        "--model",
        "siren",
        "--width",
        "16",
        "--batch",
        "256",
        "--max-steps",
        "40",
        "--seed",
        "3",
        "--quiet",
    ];
    let encode = |device: &str| -> (Output, PathBuf, f64) {
        let out = dir.path().join(format!("{device}.strata"));
        let mut args = vec![
            "encode",
            vol_s,
            "-o",
            out.to_str().unwrap(),
            "--device",
            device,
        ];
        args.extend(opts);
        let start = Instant::now();
        let o = strata(&args);
        (o, out, start.elapsed().as_secs_f64())
    };

    let (o, cpu, cpu_s) = encode("cpu");
    assert!(o.status.success(), "{}", stderr(&o));
    let (o, gpu, gpu_s) = encode("gpu");
    if !o.status.success() && std::env::var("STRATA_SKIP_GPU").as_deref() == Ok("1") {
        eprintln!("STRATA_SKIP_GPU=1: skipping ({})", stderr(&o).trim());
        return;
    }
    assert!(
        o.status.success(),
        "{} (set STRATA_SKIP_GPU=1 to skip the GPU tests explicitly)",
        stderr(&o)
    );

    // The GPU archive decodes, to the input's size.
    let raw = dir.path().join("gpu.raw");
    let o = strata(&["decode", gpu.to_str().unwrap(), "-o", raw.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let voxels = std::fs::metadata(&raw).unwrap().len() / 4;
    assert!(voxels == 41 * 41 * 41, "{voxels} voxels decoded");

    let (cpu_db, cpu_cr) = eval(&vol, &cpu);
    let (gpu_db, gpu_cr) = eval(&vol, &gpu);
    eprintln!(
        "{}: CPU {cpu_db:.2} dB (CR {cpu_cr:.1}, {cpu_s:.1} s), GPU {gpu_db:.2} dB (CR {gpu_cr:.1}, {gpu_s:.1} s)",
        vol.file_name().unwrap().to_string_lossy()
    );
    assert!(
        cpu_db > 20.0,
        "the CPU encode itself is poor: {cpu_db:.2} dB"
    );
    assert!(
        (gpu_db - cpu_db).abs() <= 1.0,
        "GPU {gpu_db:.2} dB vs CPU {cpu_db:.2} dB"
    );
}
