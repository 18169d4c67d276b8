//! The encoder on small synthetic volumes (seconds each).

use strata::cluster::{balanced_assignment, cluster, kmeans, within_cluster_distance};
use strata::pyramid::{self, Downsampling, Grid};
use strata::train::TrainOptions;
use strata::{encode, EncodeOptions, ModelKind};
use strata_format::synth::SplitMix;
use strata_format::{decode, level_dims, Archive, DataType, Limits, Volume};

fn volume(dims: [usize; 4], f: impl Fn(f32, f32, f32, f32) -> f32) -> Volume {
    let mut data = Vec::new();
    for t in 0..dims[3] {
        for z in 0..dims[2] {
            for y in 0..dims[1] {
                for x in 0..dims[0] {
                    let n = |i: usize, d: usize| i as f32 / d.max(2) as f32;
                    data.push(f(n(x, dims[0]), n(y, dims[1]), n(z, dims[2]), t as f32));
                }
            }
        }
    }
    let mut v = Volume::new(dims, data).unwrap();
    v.dtype = DataType::I16;
    v
}

/// What the reference decoder gives for archive `bytes`.
fn decoded(bytes: &[u8]) -> Volume {
    let a = Archive::read(bytes, &Limits::default()).unwrap();
    decode(&a.header, &a.usable_scales(), None).unwrap()
}

/// A smooth n³ volume the quick encodes fit well.
fn smooth(n: usize) -> Volume {
    volume([n, n, n, 1], |x, y, z, _| {
        (2.0 * x).sin() * (3.0 * y).cos() + z
    })
}

fn quick(steps: usize) -> EncodeOptions {
    EncodeOptions {
        model: ModelKind::Siren,
        width: 16,
        train: TrainOptions {
            batch: 256,
            max_steps: Some(steps),
            ..TrainOptions::default()
        },
        ..EncodeOptions::default()
    }
}

#[test]
fn pyramid_levels_have_the_archive_dims_and_keep_constants() {
    for dims in [[33usize, 20, 9, 3], [7, 7, 7, 1], [64, 1, 5, 2]] {
        let n: usize = dims.iter().product();
        let levels = pyramid::build(Grid::new(dims, vec![0.25; n]), 4, Downsampling::LowPass);
        for (l, g) in levels.iter().enumerate() {
            assert_eq!(g.dims, level_dims(dims.map(|d| d as u32), 4, l as u8));
            assert!(g.data.iter().all(|&v| (v - 0.25).abs() < 1e-6));
        }
    }
}

#[test]
fn encoder_reconstruction_equals_the_cpu_decode_of_its_archive() {
    // 4D, odd dims, a block that does not divide them.
    let v = volume([19, 14, 11, 3], |x, y, z, t| {
        (3.0 * x + y).sin() * 100.0 + z * 40.0 + t * 5.0
    });
    let mut opts = quick(40);
    opts.block = Some([6, 5, 4]);
    let (bytes, report) = encode(&v, "t", &opts, &mut ()).unwrap();
    let a = Archive::read(&bytes, &Limits::default()).unwrap();
    assert!(a.first_error().is_none());
    let decoded = decode(&a.header, &a.usable_scales(), None).unwrap();
    assert_eq!(decoded.dims, v.dims);
    assert_eq!(decoded.dtype, DataType::I16);
    assert_eq!(Some(decoded), report.reconstruction);
}

#[test]
fn smooth_volume_reaches_a_psnr_floor() {
    let v = smooth(24);
    let mut opts = quick(400);
    opts.block = Some([8, 8, 8]);
    let (_, report) = encode(&v, "smooth", &opts, &mut ()).unwrap();
    let rec = report.reconstruction.unwrap();
    let q = strata::metrics::quality(&v.data, &rec.data);
    assert!(q.psnr > 35.0, "PSNR {:.2} dB", q.psnr);
}

#[test]
fn quantized_archive_is_smaller_decodes_as_encoded_and_keeps_quality() {
    let v = smooth(24);
    let mut opts = quick(400);
    // Small blocks: enough MLPs for codebooks to be short next to the
    // tensors they code, as on real volumes.
    opts.block = Some([4, 4, 4]);
    let (plain, plain_report) = encode(&v, "smooth", &opts, &mut ()).unwrap();
    opts.quantization = Some(strata::Quantization::default());
    let (bytes, report) = encode(&v, "smooth", &opts, &mut ()).unwrap();
    let a = Archive::read(&bytes, &Limits::default()).unwrap();
    let decoded = decode(&a.header, &a.usable_scales(), None).unwrap();
    assert_eq!(Some(decoded), report.reconstruction);
    // Every weight tensor is a codebook of at most 2^9 values.
    for s in a.usable_scales().iter().filter_map(|s| s.as_siren()) {
        for l in &s.layers {
            match &l.weights.values {
                strata_format::TensorValues::Codebook { bits, codebook, .. } => {
                    assert!(*bits <= 9 && codebook.len() <= 512)
                }
                other => panic!("weights stored as {other:?}"),
            }
        }
    }
    assert!(
        bytes.len() * 2 < plain.len(),
        "{} bytes quantized vs {} plain",
        bytes.len(),
        plain.len()
    );
    let psnr = |r: &strata::EncodeReport| {
        strata::metrics::quality(&v.data, &r.reconstruction.as_ref().unwrap().data).psnr
    };
    let (p, q) = (psnr(&plain_report), psnr(&report));
    assert!(q > p - 1.0, "quantized {q:.2} dB vs plain {p:.2} dB");
}

#[test]
fn balanced_clusters_are_balanced_and_better_than_random() {
    let mut rng = SplitMix(3);
    // Points around 6 centres.
    let points: Vec<Vec<f32>> = (0..103)
        .map(|i| {
            let c = (i % 6) as f32 * 3.0;
            (0..8).map(|_| c + rng.symmetric(0.5)).collect()
        })
        .collect();
    for per in [2usize, 4, 5, 17] {
        let assign = cluster(&points, per, &mut SplitMix(1));
        let k = points.len().div_ceil(per);
        let mut sizes = vec![0usize; k];
        for &a in &assign {
            sizes[a] += 1;
        }
        let (lo, hi) = (points.len() / k, points.len().div_ceil(k));
        assert!(
            sizes.iter().all(|&s| s >= lo && s <= hi),
            "per {per}: {sizes:?}"
        );
        // A random balanced assignment: same sizes, shuffled.
        let mut random: Vec<usize> = (0..points.len()).map(|i| i % k).collect();
        for i in (1..random.len()).rev() {
            random.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
        }
        assert!(
            within_cluster_distance(&points, &assign)
                < 0.8 * within_cluster_distance(&points, &random),
            "per {per}"
        );
    }
    // Algorithm 1 directly: sizes exact even with skewed centroids.
    let centroids = kmeans(&points, 7, 5, &mut SplitMix(2));
    let a = balanced_assignment(&points, &centroids);
    let mut sizes = vec![0; 7];
    for x in a {
        sizes[x] += 1;
    }
    assert!(sizes.iter().all(|&s| s == 14 || s == 15), "{sizes:?}");
}

#[test]
fn nan_input_is_refused_with_count_and_position() {
    let mut v = volume([9, 8, 7, 1], |x, _, _, _| x);
    let (a, b) = (v.index(3, 2, 1, 0), v.index(5, 5, 5, 0));
    v.data[a] = f32::NAN;
    v.data[b] = f32::INFINITY;
    let err = encode(&v, "nan", &quick(5), &mut ())
        .unwrap_err()
        .to_string();
    assert!(err.contains("2 non-finite"), "{err}");
    assert!(err.contains("x=3, y=2, z=1, t=0"), "{err}");
}

#[test]
fn awkward_volumes_encode_and_decode() {
    let cases: Vec<(Volume, Option<[u16; 3]>)> = vec![
        // Smaller than a block.
        (volume([5, 3, 2, 1], |x, y, _, _| x + y), Some([8, 8, 8])),
        // Constant.
        (volume([12, 10, 9, 1], |_, _, _, _| 7.0), None),
        // Prime dims, 4D with t = 2, and t = 1 through the 4D path.
        (
            volume([13, 11, 7, 2], |x, y, z, t| x * y + z - t),
            Some([4, 4, 4]),
        ),
        (volume([17, 1, 3, 1], |x, _, z, _| x - z), Some([4, 4, 4])),
    ];
    for (i, (v, block)) in cases.into_iter().enumerate() {
        let mut opts = quick(20);
        opts.block = block;
        let (bytes, report) =
            encode(&v, "odd", &opts, &mut ()).unwrap_or_else(|e| panic!("case {i}: {e}"));
        let a = Archive::read(&bytes, &Limits::default()).unwrap();
        let d = decode(&a.header, &a.usable_scales(), None).unwrap();
        assert_eq!(d.dims, v.dims, "case {i}");
        assert!(d.data.iter().all(|x| x.is_finite()), "case {i}");
        assert_eq!(Some(d), report.reconstruction, "case {i}");
    }
    // The constant volume comes back exactly.
    let v = volume([12, 10, 9, 1], |_, _, _, _| 7.0);
    let (_, report) = encode(&v, "c", &quick(5), &mut ()).unwrap();
    assert!(report
        .reconstruction
        .unwrap()
        .data
        .iter()
        .all(|&x| x == 7.0));
}

#[test]
fn deterministic_for_a_seed_whatever_the_thread_count() {
    let v = volume([20, 18, 16, 1], |x, y, z, _| (4.0 * x).sin() + y * z);
    let run = |threads| {
        let mut opts = quick(30);
        opts.block = Some([5, 6, 4]);
        opts.train.threads = Some(threads);
        encode(&v, "d", &opts, &mut ()).unwrap().0
    };
    let one = run(1);
    assert_eq!(one, run(1));
    assert_eq!(one, run(3));
}

#[test]
fn ratio_control_lands_within_ten_percent_and_decodes_as_encoded() {
    let v = smooth(32);
    let mut opts = quick(60);
    opts.block = Some([8, 8, 8]);
    for ratio in [8.0, 12.0] {
        opts.target_ratio = Some(ratio);
        let (bytes, report) = encode(&v, "smooth", &opts, &mut ()).unwrap();
        let achieved = v.data.len() as f64 * 4.0 / bytes.len() as f64;
        eprintln!(
            "--ratio {ratio}: {achieved:.2}, widths {:?}, bits {:?}",
            report.widths, report.bits
        );
        assert!(
            (achieved / ratio - 1.0).abs() <= 0.1,
            "asked {ratio}, got {achieved:.2}"
        );
        assert_eq!(Some(decoded(&bytes)), report.reconstruction);
    }
    // A ratio no network reaches is a clear error, not a panic.
    opts.target_ratio = Some(1e6);
    let e = encode(&v, "smooth", &opts, &mut ())
        .unwrap_err()
        .to_string();
    assert!(e.contains("out of reach"), "{e}");
}

#[test]
fn psnr_control_reaches_the_goal_with_fewer_bits_for_an_easier_one() {
    let v = smooth(32);
    let mut opts = quick(80);
    opts.block = Some([8, 8, 8]);
    let psnr_of = |bytes: &[u8]| {
        let decoded = decoded(bytes);
        let q = strata::metrics::quality(&v.data, &decoded.data);
        (q.psnr, decoded)
    };
    // What the widest codebooks reach after this little training (a small
    // volume's tensors are short, so their codebooks, capped at one entry
    // per 8 values, cost dB even at 12 bits).
    opts.quantization = Some(strata::Quantization::all(12));
    let (widest, _) = encode(&v, "smooth", &opts, &mut ()).unwrap();
    let (best, _) = psnr_of(&widest);
    let mut finest_bits = Vec::new();
    for goal in [best - 8.0, best - 0.3] {
        opts.target_psnr = Some(goal);
        let (bytes, report) = encode(&v, "smooth", &opts, &mut ()).unwrap();
        let (psnr, decoded) = psnr_of(&bytes);
        eprintln!(
            "--psnr {goal:.2}: {psnr:.2} dB, {} bytes, bits {:?}",
            bytes.len(),
            report.bits
        );
        assert!(psnr >= goal, "asked {goal:.2} dB, got {psnr:.2}");
        assert_eq!(Some(decoded), report.reconstruction);
        finest_bits.push(report.bits.last().unwrap().clone().unwrap().slots()[1]);
    }
    assert!(
        finest_bits[0] < finest_bits[1],
        "an easier goal should take narrower codebooks: {finest_bits:?}"
    );
    // Nonsense goals are refused with a message.
    opts.target_psnr = Some(f64::NAN);
    let e = encode(&v, "smooth", &opts, &mut ())
        .unwrap_err()
        .to_string();
    assert!(e.contains("--psnr"), "{e}");
}

#[test]
fn pruning_keeps_the_outer_layers_and_zeroes_the_rest_for_good() {
    let v = smooth(32);
    let mut opts = quick(60);
    opts.block = Some([8, 8, 8]);
    opts.train.prune = vec![0.2, 0.4];
    opts.quantization = Some(strata::Quantization::all(9));
    let (bytes, report) = encode(&v, "smooth", &opts, &mut ()).unwrap();
    let a = Archive::read(&bytes, &Limits::default()).unwrap();
    let scales: Vec<_> = a
        .usable_scales()
        .iter()
        .filter_map(|s| s.as_siren())
        .collect();
    assert_eq!(scales.len(), 3);
    for s in &scales {
        let last = s.layers.len() - 1;
        for (l, layer) in s.layers.iter().enumerate() {
            for (tensor, prunable) in [
                (&layer.weights, l < last),
                (&layer.biases, l > 0 && l < last),
            ] {
                if s.n_mlps == 0 {
                    continue;
                }
                match (&tensor.mask, prunable) {
                    (Some(mask), true) => {
                        // 40% of the tensor, rounded, and at most a few
                        // more where scores tie at the threshold.
                        let pruned = mask.iter().filter(|k| !**k).count();
                        let asked = (0.4 * mask.len() as f64).round() as usize;
                        assert!(
                            pruned >= asked && pruned <= asked + mask.len() / 20,
                            "layer {l}: {pruned} of {} pruned",
                            mask.len()
                        );
                        let dense = tensor.dense();
                        assert!(mask.iter().zip(&dense).all(|(k, x)| *k || *x == 0.0));
                    }
                    (None, false) => {}
                    (m, p) => panic!("layer {l}: mask {:?} on a tensor prunable={p}", m.is_some()),
                }
            }
        }
    }
    let decoded = decode(&a.header, &a.usable_scales(), None).unwrap();
    assert_eq!(Some(decoded), report.reconstruction);
    // The same masks whatever the number of training threads.
    opts.train.threads = Some(1);
    let (one_thread, _) = encode(&v, "smooth", &opts, &mut ()).unwrap();
    assert_eq!(one_thread, bytes);
}

#[test]
fn codebook_tuning_keeps_indices_and_does_not_lose_quality() {
    let v = smooth(32);
    let mut opts = quick(80);
    opts.block = Some([8, 8, 8]);
    opts.quantization = Some(strata::Quantization::all(5));
    let (plain, plain_report) = encode(&v, "smooth", &opts, &mut ()).unwrap();
    opts.tune_codebooks = 0.5;
    let (tuned, report) = encode(&v, "smooth", &opts, &mut ()).unwrap();
    let a = Archive::read(&plain, &Limits::default()).unwrap();
    let b = Archive::read(&tuned, &Limits::default()).unwrap();
    assert_eq!(Some(decoded(&tuned)), report.reconstruction);
    // The coarsest scale is trained the same way in both: same indices,
    // tuned codebooks, and no worse at its level.
    let (s, t) = (
        a.usable_scales()[0].as_siren().unwrap(),
        b.usable_scales()[0].as_siren().unwrap(),
    );
    let indices = |x: &strata_format::Tensor| match &x.values {
        strata_format::TensorValues::Codebook { indices, .. } => indices.clone(),
        _ => panic!("quantized"),
    };
    for (l, m) in s.layers.iter().zip(&t.layers) {
        assert_eq!(indices(&l.weights), indices(&m.weights));
    }
    let (before, after) = (plain_report.scales[0].3, report.scales[0].3);
    assert!(after >= before, "{after} dB tuned vs {before}");
    eprintln!("coarsest scale: {before:.2} → {after:.2} dB");
}
