//! Archives built from chosen weights decode to values computed here
//! independently, in f64, straight from the definition in docs/FORMAT.md.

use strata_format::decode::upsample;
use strata_format::{
    decode, Architecture, Archive, ArchiveWriter, Codec, DataType, LayerParams, Limits,
    ScaleSection, Tensor, VolumeInfo,
};

fn info(dims: [u32; 4], scales: u8, block: [u16; 3]) -> VolumeInfo {
    VolumeInfo {
        dims,
        scales,
        block,
        value_min: -10.0,
        value_max: 30.0,
        dtype: DataType::I16,
        spacing: [0.5, 0.5, 2.0, 1.0],
    }
}

fn roundtrip(info: &VolumeInfo, scales: &[ScaleSection]) -> strata_format::Volume {
    let mut w = ArchiveWriter::new(info.clone(), Codec::Zstd(3));
    for s in scales {
        w.add_scale(s).unwrap();
    }
    let bytes = w.finish().unwrap();
    let archive = Archive::read(&bytes, &Limits::default()).unwrap();
    assert!(archive.first_error().is_none());
    decode(&archive.header, &archive.usable_scales(), None).unwrap()
}

/// SIREN by the book, in f64: h ← sin(ω0(hW + b)) per hidden layer, then linear.
fn siren_f64(layers: &[(Vec<f64>, Vec<f64>)], omega0: f64, input: &[f64]) -> f64 {
    let mut h = input.to_vec();
    for (l, (w, b)) in layers.iter().enumerate() {
        let outs = b.len();
        let mut next = vec![0.0; outs];
        for (o, n) in next.iter_mut().enumerate() {
            let mut acc = b[o];
            for (i, &hi) in h.iter().enumerate() {
                acc += hi * w[i * outs + o];
            }
            *n = if l + 1 < layers.len() {
                (omega0 * acc).sin()
            } else {
                acc
            };
        }
        h = next;
    }
    h[0]
}

fn coord(k: usize, n: usize) -> f64 {
    if n == 1 {
        0.0
    } else {
        -1.0 + 2.0 * k as f64 / (n as f64 - 1.0)
    }
}

#[test]
fn one_block_siren_by_hand() {
    // Latent 2, hidden [3, 2]: layers 5→3 (sine), 3→2 (sine), 2→1 (linear).
    let arch = Architecture {
        latent_dim: 2,
        hidden: vec![3, 2],
        omega0: 3.0,
    };
    let w0: Vec<f32> = (0..15)
        .map(|i| ((i * 7 % 11) as f32 - 5.0) * 0.07)
        .collect();
    let b0 = vec![0.1, -0.2, 0.05];
    let w1: Vec<f32> = (0..6).map(|i| ((i * 5 % 7) as f32 - 3.0) * 0.11).collect();
    let b1 = vec![0.02, -0.3];
    let w2 = vec![0.8, -0.6];
    let b2 = vec![0.15];
    let latent = vec![0.3, -0.45];
    let (lo, hi) = (0.2f32, 0.7f32);
    let dims = [5u32, 4, 3, 1];
    let info = info(dims, 1, [5, 4, 3]);
    let section = ScaleSection {
        level: 0,
        arch: arch.clone(),
        n_mlps: 1,
        occupancy: vec![true],
        assignment: vec![0],
        ranges: Tensor::f32(vec![lo, hi]),
        latents: Tensor::f32(latent.clone()),
        layers: vec![
            LayerParams {
                weights: Tensor::f32(w0.clone()),
                biases: Tensor::f32(b0.clone()),
            },
            LayerParams {
                weights: Tensor::f32(w1.clone()),
                biases: Tensor::f32(b1.clone()),
            },
            LayerParams {
                weights: Tensor::f32(w2.clone()),
                biases: Tensor::f32(b2.clone()),
            },
        ],
    };
    let vol = roundtrip(&info, &[section]);
    assert_eq!(vol.dims, [5, 4, 3, 1]);
    assert_eq!(vol.dtype, DataType::I16);
    assert_eq!(vol.spacing, [0.5, 0.5, 2.0, 1.0]);
    let f64s = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
    let layers = vec![
        (f64s(&w0), f64s(&b0)),
        (f64s(&w1), f64s(&b1)),
        (f64s(&w2), f64s(&b2)),
    ];
    let mut worst = 0f64;
    for z in 0..3 {
        for y in 0..4 {
            for x in 0..5 {
                let input = [
                    coord(x, 5),
                    coord(y, 4),
                    coord(z, 3),
                    latent[0] as f64,
                    latent[1] as f64,
                ];
                let yv = siren_f64(&layers, 3.0, &input);
                let norm = lo as f64 + (yv + 1.0) / 2.0 * (hi - lo) as f64;
                let expect = -10.0 + norm * 40.0;
                let got = vol.data[vol.index(x, y, z, 0)] as f64;
                worst = worst.max((got - expect).abs());
            }
        }
    }
    assert!(worst < 40.0 * 2e-6, "worst abs error {worst}");
}

/// A constant MLP: all weights zero, so the output is its bias.
fn constant_scale(level: u8, occupancy: Vec<bool>, value: f32) -> ScaleSection {
    let arch = Architecture {
        latent_dim: 1,
        hidden: vec![4],
        omega0: 30.0,
    };
    let occupied = occupancy.iter().filter(|&&b| b).count();
    ScaleSection {
        level,
        arch,
        n_mlps: 1,
        occupancy,
        assignment: vec![0; occupied],
        // y = 0 ⇒ value = (lo + hi) / 2
        ranges: Tensor::f32([value - 1.0, value + 1.0].repeat(occupied)),
        latents: Tensor::f32(vec![0.7; occupied]),
        layers: vec![
            LayerParams {
                weights: Tensor::f32(vec![0.0; 4 * 4]),
                biases: Tensor::f32(vec![0.0; 4]),
            },
            LayerParams {
                weights: Tensor::f32(vec![0.0; 4]),
                biases: Tensor::f32(vec![0.0]),
            },
        ],
    }
}

#[test]
fn two_scales_constant_coarse() {
    // 9×6×5×3 (4D, odd dims): coarse level is 5×3×3×2.
    let info = info([9, 6, 5, 3], 2, [4, 4, 4]);
    let h = info.header();
    assert_eq!(h.level_dims(0), [5, 3, 3, 2]);
    let coarse_blocks = strata_format::block_count(&h, 0);
    let fine_blocks = strata_format::block_count(&h, 1);
    assert_eq!(coarse_blocks, 2 * 2); // 2×1×1 blocks, 2 time steps
    assert_eq!(fine_blocks, 3 * 2 * 2 * 3);
    let coarse = constant_scale(0, vec![true; coarse_blocks], 0.25);
    // Fine level: only block (1, 0, 1) of time step 2 is occupied, value 0.5.
    let mut occ = vec![false; fine_blocks];
    let target = ((2 * 2 + 1) * 2) * 3 + 1;
    occ[target] = true;
    let fine = constant_scale(1, occ, 0.5);
    let vol = roundtrip(&info, &[coarse, fine]);
    assert_eq!(vol.dims, [9, 6, 5, 3]);
    for t in 0..3 {
        for z in 0..5 {
            for y in 0..6 {
                for x in 0..9 {
                    let inside = t == 2 && (4..8).contains(&x) && y < 4 && (4..5).contains(&z);
                    let norm = 0.25 + if inside { 0.5 } else { 0.0 };
                    let expect = -10.0 + norm * 40.0;
                    let got = vol.data[vol.index(x, y, z, t)];
                    assert!(
                        (got - expect).abs() < 1e-4,
                        "({x},{y},{z},{t}): {got} vs {expect}"
                    );
                }
            }
        }
    }
}

#[test]
fn upsample_matches_definition() {
    let cd = [3usize, 2, 2, 2];
    let fd = [6usize, 3, 4, 3];
    let coarse: Vec<f32> = (0..cd.iter().product::<usize>())
        .map(|i| (i * i % 13) as f32)
        .collect();
    let fine = upsample(&coarse, cd, fd);
    let at = |x: usize, y: usize, z: usize, t: usize| {
        coarse[((t * cd[2] + z) * cd[1] + y) * cd[0] + x] as f64
    };
    let taps = |i: usize, n: usize| -> Vec<(usize, f64)> {
        if i.is_multiple_of(2) {
            vec![(i / 2, 1.0)]
        } else {
            vec![(i / 2, 0.5), ((i / 2 + 1).min(n - 1), 0.5)]
        }
    };
    for t in 0..fd[3] {
        for z in 0..fd[2] {
            for y in 0..fd[1] {
                for x in 0..fd[0] {
                    let mut e = 0.0;
                    for (tt, wt) in taps(t, cd[3]) {
                        for (zz, wz) in taps(z, cd[2]) {
                            for (yy, wy) in taps(y, cd[1]) {
                                for (xx, wx) in taps(x, cd[0]) {
                                    e += wt * wz * wy * wx * at(xx, yy, zz, tt);
                                }
                            }
                        }
                    }
                    let got = fine[((t * fd[2] + z) * fd[1] + y) * fd[0] + x] as f64;
                    assert!((got - e).abs() < 1e-5, "({x},{y},{z},{t}) {got} vs {e}");
                }
            }
        }
    }
}

#[test]
fn fewer_scales_upsample_to_full_size() {
    let info = info([8, 8, 8, 1], 3, [4, 4, 4]);
    let h = info.header();
    let scales: Vec<_> = (0..3)
        .map(|l| constant_scale(l, vec![l == 0; strata_format::block_count(&h, l)], 0.5))
        .collect();
    let mut w = ArchiveWriter::new(info.clone(), Codec::Raw);
    for s in &scales {
        w.add_scale(s).unwrap();
    }
    let archive = Archive::read(&w.finish().unwrap(), &Limits::default()).unwrap();
    let vol = decode(&archive.header, &archive.usable_scales(), Some(1)).unwrap();
    assert_eq!(vol.dims, [8, 8, 8, 1]);
    assert!(vol.data.iter().all(|&v| (v - 10.0).abs() < 1e-4));
}
