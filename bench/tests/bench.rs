//! The benchmark's pieces on small synthetic volumes: the codecs keep their
//! error bounds, the matching hits its ratio, the driver writes its CSV and
//! plot, and the Strata path encodes, decodes and measures.

use bench::codec::{measure, ErrorBounded};
use bench::matching::match_ratio;
use bench::rd::{self, run_matched, Options};
use bench::sperr::Sperr;
use bench::strata::Config;
use bench::sz3::Sz3;
use bench::tthresh::Tthresh;
use bench::zfp::Zfp;
use strata_format::Volume;

/// A smooth field with a sphere and a little deterministic noise, in [0, 200].
fn synthetic(dims: [usize; 4]) -> Volume {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut data = Vec::with_capacity(dims.iter().product());
    for t in 0..dims[3] {
        for z in 0..dims[2] {
            for y in 0..dims[1] {
                for x in 0..dims[0] {
                    let (fx, fy, fz) = (x as f32 * 0.31, y as f32 * 0.23, z as f32 * 0.17);
                    let r2 = [x, y, z]
                        .iter()
                        .zip(dims)
                        .map(|(&c, d)| (c as f32 - d as f32 / 2.0).powi(2))
                        .sum::<f32>();
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let noise = (state >> 40) as f32 / (1u64 << 24) as f32;
                    let sphere = if r2 < 36.0 { 60.0 } else { 0.0 };
                    data.push(
                        100.0
                            + 30.0 * (fx.sin() * fy.cos() + (fz + t as f32).sin())
                            + sphere
                            + 5.0 * noise,
                    );
                }
            }
        }
    }
    Volume::new(dims, data).expect("consistent dims")
}

fn max_error(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| (x as f64 - y as f64).abs())
        .fold(0.0, f64::max)
}

fn round_trip_within_bound(codec: &dyn ErrorBounded) {
    for dims in [[24, 20, 18, 1], [48, 40, 1, 1], [16, 12, 10, 3]] {
        let v = synthetic(dims);
        for bound in [0.05, 0.5, 4.0] {
            let bytes = codec.compress(&v.data, v.dims, bound).unwrap();
            let back = codec.decompress(&bytes, v.dims).unwrap();
            assert_eq!(back.len(), v.data.len());
            let err = max_error(&v.data, &back);
            // The bound, plus float32 rounding of values up to ~200.
            assert!(
                err <= bound + 1e-4,
                "{} {dims:?} bound {bound}: max error {err}",
                codec.name()
            );
            let row = measure(codec, &v, bound).unwrap();
            assert_eq!(row.max_abs_error, err);
            assert!(row.ratio > 1.0 && row.psnr.is_finite(), "{row:?}");
        }
    }
}

#[test]
fn sz3_round_trip_keeps_the_error_bound() {
    round_trip_within_bound(&Sz3);
}

#[test]
fn zfp_round_trip_keeps_the_error_bound() {
    round_trip_within_bound(&Zfp);
}

#[test]
fn sperr_round_trip_keeps_the_error_bound() {
    round_trip_within_bound(&Sperr);
}

fn rmse(a: &[f32], b: &[f32]) -> f64 {
    let sse: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (x as f64 - y as f64).powi(2))
        .sum();
    (sse / a.len() as f64).sqrt()
}

#[test]
fn tthresh_round_trip_follows_its_rmse_target() {
    // TTHRESH's bound is an RMSE target, not a point-wise bound, and only a
    // target: measured here, 3D and 4D land within 10% of tight targets
    // (0.05, 0.5) but overshoot a loose one (4 → 6.7–8.5), and a 2D image
    // (a 48×40×1 tensor; TTHRESH is built for 3D and up) misses even tight
    // ones (0.05 → 1.0). What the matching needs holds for all: the error
    // and the ratio grow with the bound.
    for dims in [[24, 20, 18, 1], [48, 40, 1, 1], [16, 12, 10, 3]] {
        let v = synthetic(dims);
        let (mut last_error, mut last_ratio) = (0.0, 0.0);
        for bound in [0.05, 0.5, 4.0] {
            let bytes = Tthresh.compress(&v.data, v.dims, bound).unwrap();
            let back = Tthresh.decompress(&bytes, v.dims).unwrap();
            assert_eq!(back.len(), v.data.len());
            let e = rmse(&v.data, &back);
            let planar = dims[2] == 1;
            assert!(
                e > last_error && (planar || bound > 1.0 || e <= bound * 1.1),
                "{dims:?} RMSE target {bound}: RMSE {e}"
            );
            let row = measure(&Tthresh, &v, bound).unwrap();
            assert!(row.ratio > last_ratio && row.psnr.is_finite(), "{row:?}");
            (last_error, last_ratio) = (e, row.ratio);
        }
    }
}

#[test]
fn codecs_refuse_a_foreign_or_mismatched_stream() {
    let v = synthetic([16, 16, 16, 1]);
    let zfp = Zfp.compress(&v.data, v.dims, 0.1).unwrap();
    assert!(Zfp.decompress(&zfp, [16, 16, 8, 1]).is_err());
    assert!(Zfp.decompress(&[0u8; 3], v.dims).is_err());
    let sz3 = Sz3.compress(&v.data, v.dims, 0.1).unwrap();
    assert!(Sz3.decompress(&sz3, [16, 8, 32, 1]).is_err());
    assert!(Sz3.compress(&v.data, v.dims, 0.0).is_err());
    assert!(Zfp.compress(&v.data, v.dims, f64::NAN).is_err());
    let sperr = Sperr.compress(&v.data, v.dims, 0.1).unwrap();
    assert!(Sperr.decompress(&sperr, [16, 8, 32, 1]).is_err());
    assert!(Sperr.decompress(&[0u8; 3], v.dims).is_err());
    assert!(Sperr.compress(&v.data, v.dims, -1.0).is_err());
    let tthresh = Tthresh.compress(&v.data, v.dims, 0.1).unwrap();
    assert!(Tthresh.decompress(&tthresh, [16, 8, 32, 1]).is_err());
    assert!(Tthresh.decompress(&[0u8; 3], v.dims).is_err());
    assert!(Tthresh.decompress(&sz3, v.dims).is_err());
    assert!(Tthresh.compress(&v.data, v.dims, 0.0).is_err());
}

#[test]
fn matched_runs_hit_their_ratios() {
    // What `bench rd` does for each codec: match, then measure a real round
    // trip (which checks the decoded length). ZFP's ratio moves in steps and
    // is left out; SZ3 is here as the yardstick.
    let v = synthetic([40, 36, 32, 1]);
    let codecs: [&dyn ErrorBounded; 3] = [&Sz3, &Sperr, &Tthresh];
    for codec in codecs {
        let rows = run_matched(codec, &v, &[8.0, 20.0], 0.02).unwrap();
        assert_eq!(rows.len(), 2);
        for (row, target) in rows.iter().zip([8.0, 20.0]) {
            assert_eq!(row.codec, codec.name());
            assert!(
                (row.ratio / target - 1.0).abs() <= 0.02,
                "{} target {target}: {row:?}",
                codec.name()
            );
            // The field spans ~200 with noise of amplitude 5: these ratios
            // keep it well above 30 dB, and the higher ratio costs quality.
            assert!(row.psnr > 30.0 && row.psnr < 120.0, "{row:?}");
            assert!(row.decode_seconds > 0.0, "{row:?}");
        }
        assert!(rows[0].psnr > rows[1].psnr, "{rows:?}");
    }
}

#[test]
fn bisection_hits_a_requested_sz3_ratio() {
    let v = synthetic([40, 36, 32, 1]);
    for target in [8.0, 20.0] {
        let m = match_ratio(target, 1e-5, 100.0, 0.02, |b| {
            let bytes = Sz3.compress(&v.data, v.dims, b)?;
            Ok(bench::codec::ratio(v.data.len(), bytes.len()))
        })
        .unwrap();
        assert!(m.hit, "target {target}: {m:?}");
        assert!((m.ratio / target - 1.0).abs() <= 0.02, "{m:?}");
        // The bound found gives that ratio again.
        let row = measure(&Sz3, &v, m.bound).unwrap();
        assert!((row.ratio / m.ratio - 1.0).abs() < 1e-9);
    }
}

#[test]
fn bisection_on_a_stepwise_ratio_takes_the_closest_step() {
    // Ratio doubles at each power of two of the bound, like ZFP's accuracy mode.
    let steps = |b: f64| Ok(2f64.powf(b.log2().floor()) * 10.0);
    let m = match_ratio(30.0, 1e-3, 1e3, 0.02, steps).unwrap();
    assert!(!m.hit);
    assert_eq!(m.ratio, 40.0, "{m:?}");
    let m = match_ratio(41.0, 1e-3, 1e3, 0.05, steps).unwrap();
    assert!(m.hit && m.ratio == 40.0, "{m:?}");
    // Out of reach: the nearest end.
    let m = match_ratio(1e9, 1e-3, 1e3, 0.02, steps).unwrap();
    assert_eq!(m.ratio, 5120.0);
}

#[test]
fn strata_configs_parse_like_strata_encode() {
    let c = Config::parse("--width 16   --block 8 --max-steps 5 --bits 9").unwrap();
    assert_eq!(c.label, "--width 16 --block 8 --max-steps 5 --bits 9");
    assert_eq!(
        c.options.quantization,
        Some(strata::Quantization::default())
    );
    assert_eq!(c.options.width, 16);
    assert_eq!(c.options.block, Some([8, 8, 8]));
    assert_eq!(c.options.train.max_steps, Some(5));
    let d = Config::parse("").unwrap();
    assert_eq!(d.label, "defaults");
    assert_eq!(d.options.width, strata::EncodeOptions::default().width);
    assert_eq!(d.options.quantization, None);
    assert!(Config::parse("--bits 0").is_err());
    for c in bench::strata::DEFAULT_CONFIGS {
        Config::parse(c).unwrap();
    }
    assert!(Config::parse("--bogus 3").is_err());
    // --fast: short training and 9-bit codebooks; not with --epochs.
    let f = Config::parse("--fast").unwrap();
    assert_eq!(f.options.epochs, vec![30.0, 20.0, 15.0]);
    assert_eq!(
        f.options.quantization,
        Some(strata::Quantization::default())
    );
    assert!(Config::parse("--fast --epochs 5").is_err());
    // Rate control, as `strata encode` takes it (and not with --width).
    assert_eq!(
        Config::parse("--ratio 50").unwrap().options.target_ratio,
        Some(50.0)
    );
    assert!(Config::parse("--ratio 50 --width 16").is_err());
    let e = Config::parse("--block 1 2").unwrap_err();
    assert!(
        format!("{e:#}").contains("--strata \"--block 1 2\""),
        "{e:#}"
    );
}

#[test]
fn rd_writes_csv_and_plot_with_a_row_per_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("synth.npy");
    strata_io::write_volume(&path, &synthetic([24, 20, 16, 1])).unwrap();
    let out = dir.path().join("out");
    let o = rd::run(&Options {
        volume: path,
        strata: vec!["--model siren --scales 2 --block 8 --width 8 --max-steps 3 --bits 6".into()],
        no_strata: false,
        ratios: vec![6.0, 12.0],
        tolerance: 0.02,
        out: out.clone(),
    })
    .unwrap();
    assert_eq!(o.csv, out.join("rd-synth.csv"));
    // One Strata run, then each codec at Strata's ratio and the two extra ones.
    assert_eq!(o.rows.len(), 1 + 4 * 3, "{:#?}", o.rows);
    let strata = &o.rows[0];
    assert_eq!(strata.codec, "strata");
    assert!(strata.ratio > 1.0 && strata.psnr.is_finite(), "{strata:?}");
    // The Strata archive is kept, and is the one measured.
    let kept = std::fs::read(out.join("rd-synth-strata1.strata")).unwrap();
    let voxels = 24.0 * 20.0 * 16.0;
    assert!((voxels * 4.0 / kept.len() as f64 - strata.ratio).abs() < 1e-9);
    let text = std::fs::read_to_string(&o.csv).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "codec,config,ratio,psnr,max_abs_error,encode_seconds,decode_seconds"
    );
    assert_eq!(lines.len(), 1 + o.rows.len());
    for (line, row) in lines[1..].iter().zip(&o.rows) {
        assert!(line.starts_with(&format!("{},", row.codec)), "{line}");
    }
    for codec in bench::plot::CODECS {
        assert_eq!(
            lines
                .iter()
                .filter(|l| l.starts_with(&format!("{codec},")))
                .count(),
            3,
            "{text}"
        );
    }
    let png = std::fs::read(&o.png).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
}

#[test]
fn volume_names_drop_extensions() {
    use std::path::Path;
    assert_eq!(
        rd::volume_name(Path::new("a/mni152_t1.nii.gz")),
        "mni152_t1"
    );
    assert_eq!(rd::volume_name(Path::new("../scivis/engine.raw")), "engine");
    assert_eq!(rd::volume_name(Path::new("x.npy")), "x");
}
