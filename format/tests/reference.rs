//! The fast decoder against a slow, independent one written here in f64
//! straight from docs/FORMAT.md, on random archives with odd shapes.

use strata_format::synth::random_scales;
use strata_format::{
    decode, Architecture, Archive, ArchiveWriter, Codec, DataType, Header, Limits, ScaleSection,
    VolumeInfo,
};

fn coord(k: usize, n: usize) -> f64 {
    if n == 1 {
        0.0
    } else {
        -1.0 + 2.0 * k as f64 / (n as f64 - 1.0)
    }
}

/// One scale's block values on its grid, naively.
fn scale_grid(h: &Header, s: &ScaleSection) -> Vec<f64> {
    let g = h.level_dims(s.level);
    let b = h.block.map(|v| v as usize);
    let nb = h.block_counts(g);
    let mut grid = vec![0.0; g.iter().product()];
    let ranges = s.ranges.dense();
    let latents = s.latents.dense();
    let ld = s.arch.latent_dim as usize;
    let shapes = s.arch.layer_shapes();
    let layers: Vec<(Vec<f32>, Vec<f32>)> = s
        .layers
        .iter()
        .map(|l| (l.weights.dense(), l.biases.dense()))
        .collect();
    let mut slot = 0;
    for (bi, _) in s.occupancy.iter().enumerate().filter(|(_, &o)| o) {
        let (bx, by, bz, bt) = (
            bi % nb[0],
            (bi / nb[0]) % nb[1],
            (bi / nb[0] / nb[1]) % nb[2],
            bi / nb[0] / nb[1] / nb[2],
        );
        let m = s.assignment[slot] as usize;
        for z in 0..b[2] {
            for y in 0..b[1] {
                for x in 0..b[0] {
                    let (gx, gy, gz) = (bx * b[0] + x, by * b[1] + y, bz * b[2] + z);
                    if gx >= g[0] || gy >= g[1] || gz >= g[2] {
                        continue;
                    }
                    let mut h: Vec<f64> = vec![coord(x, b[0]), coord(y, b[1]), coord(z, b[2])];
                    h.extend(
                        latents[slot * ld..(slot + 1) * ld]
                            .iter()
                            .map(|&v| v as f64),
                    );
                    for (l, &(ni, no)) in shapes.iter().enumerate() {
                        let (w, bias) = (&layers[l].0[m * ni * no..], &layers[l].1[m * no..]);
                        h = (0..no)
                            .map(|o| {
                                let acc = bias[o] as f64
                                    + (0..ni).map(|i| h[i] * w[i * no + o] as f64).sum::<f64>();
                                if l + 1 < shapes.len() {
                                    (s.arch.omega0 as f64 * acc).sin()
                                } else {
                                    acc
                                }
                            })
                            .collect();
                    }
                    let (lo, hi) = (ranges[2 * slot] as f64, ranges[2 * slot + 1] as f64);
                    grid[((bt * g[2] + gz) * g[1] + gy) * g[0] + gx] =
                        lo + (h[0] + 1.0) / 2.0 * (hi - lo);
                }
            }
        }
        slot += 1;
    }
    grid
}

fn upsample(c: &[f64], cd: [usize; 4], fd: [usize; 4]) -> Vec<f64> {
    let taps = |i: usize, n: usize| {
        if i.is_multiple_of(2) {
            vec![(i / 2, 1.0)]
        } else {
            vec![(i / 2, 0.5), ((i / 2 + 1).min(n - 1), 0.5)]
        }
    };
    let mut out = vec![0.0; fd.iter().product()];
    for t in 0..fd[3] {
        for z in 0..fd[2] {
            for y in 0..fd[1] {
                for x in 0..fd[0] {
                    let mut v = 0.0;
                    for (tt, wt) in taps(t, cd[3]) {
                        for (zz, wz) in taps(z, cd[2]) {
                            for (yy, wy) in taps(y, cd[1]) {
                                for (xx, wx) in taps(x, cd[0]) {
                                    v += wt
                                        * wz
                                        * wy
                                        * wx
                                        * c[((tt * cd[2] + zz) * cd[1] + yy) * cd[0] + xx];
                                }
                            }
                        }
                    }
                    out[((t * fd[2] + z) * fd[1] + y) * fd[0] + x] = v;
                }
            }
        }
    }
    out
}

fn naive_decode(h: &Header, scales: &[&ScaleSection]) -> Vec<f64> {
    let mut rec = scale_grid(h, scales[0]);
    let mut dims = h.level_dims(0);
    for s in &scales[1..] {
        let next = h.level_dims(s.level);
        rec = upsample(&rec, dims, next);
        for (r, v) in rec.iter_mut().zip(scale_grid(h, s)) {
            *r += v;
        }
        dims = next;
    }
    rec.iter()
        .map(|v| h.value_min + v * (h.value_max - h.value_min))
        .collect()
}

#[test]
fn fast_decoder_matches_naive() {
    let cases = [
        (
            [23u32, 17, 11, 1],
            3u8,
            [8u16, 8, 8],
            vec![24u16, 24, 24],
            8u16,
        ),
        ([13, 9, 7, 3], 2, [5, 4, 3], vec![5, 7, 3], 3),
        ([30, 20, 10, 2], 3, [16, 16, 16], vec![9], 0),
        ([6, 6, 6, 1], 1, [6, 6, 6], vec![32, 17], 16),
    ];
    for (k, (dims, scales, block, hidden, latent)) in cases.into_iter().enumerate() {
        let info = VolumeInfo {
            dims,
            scales,
            block,
            value_min: -3.0,
            value_max: 5.0,
            dtype: DataType::F32,
            spacing: [1.0; 4],
        };
        let arch = Architecture {
            latent_dim: latent,
            hidden,
            omega0: 30.0,
        };
        let sections = random_scales(&info, &arch, 0.7, 11 + k as u64);
        let mut w = ArchiveWriter::new(info.clone(), Codec::Zstd(1));
        for s in &sections {
            w.add_scale(s).unwrap();
        }
        let a = Archive::read(&w.finish().unwrap(), &Limits::default()).unwrap();
        let scales = a.usable_scales();
        let fast = decode(&a.header, &scales, None).unwrap();
        let sirens: Vec<&strata_format::ScaleSection> = scales
            .iter()
            .map(|s| match s {
                strata_format::ScaleRef::Siren(s) => *s,
                strata_format::ScaleRef::Grid(_) => unreachable!("SIREN archive"),
            })
            .collect();
        let slow = naive_decode(&a.header, &sirens);
        let worst = fast
            .data
            .iter()
            .zip(&slow)
            .map(|(&f, &s)| (f as f64 - s).abs())
            .fold(0.0, f64::max);
        assert!(worst < 8.0 * 1e-5, "case {k}: worst {worst}");
        assert!(
            slow.iter().any(|v| v.abs() > 1e-3),
            "case {k}: trivial volume"
        );
    }
}
