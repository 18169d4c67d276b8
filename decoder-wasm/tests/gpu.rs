//! Every GPU stage against its CPU twin in `strata_format::decode` (and
//! `strata_format::grid`), and the whole progressive GPU decode, SIREN and
//! grid scales mixed, against `strata_format::decode`, on Mesa's
//! lavapipe in CI (any wgpu adapter works). Without an adapter these tests
//! FAIL, unless STRATA_SKIP_GPU=1 says to skip them.

use strata_decoder::shaders::synthesis_can_bake;
use strata_decoder::{
    decode_latents, sine, DecodeError, Decoder, Gpu, Grid, Pipelines, ScaleBuffers,
};
use strata_format::decode::{add_blocks, sin_approx, upsample_add, ScaleModel};
use strata_format::grid::add_synthesis;
use strata_format::grid::loop_filter::Shape;
use strata_format::grid::LoopFilter;
use strata_format::synth::{
    default_architecture, random_grid_scale, random_scale, random_scales, with_random_lifting,
    with_random_loop_filter, SplitMix,
};
use strata_format::{
    decode, Architecture, ArchiveWriter, Codec, DataType, GridArchitecture, GridSection, Header,
    Reconstruction, VolumeInfo,
};

/// The test tolerance: 1e-5 of the value range.
const TOL: f64 = 1e-5;

fn gpu() -> Option<Gpu> {
    Gpu::for_tests()
}

fn info(dims: [u32; 4], scales: u8, block: [u16; 3]) -> VolumeInfo {
    VolumeInfo {
        dims,
        scales,
        block,
        value_min: -100.0,
        value_max: 1500.0,
        dtype: DataType::I16,
        spacing: [1.0; 4],
    }
}

/// max |a − b| / (range of `reference`), and the range.
fn rel_error(gpu: &[f32], reference: &[f32]) -> (f64, f64) {
    assert_eq!(gpu.len(), reference.len());
    let (lo, hi) = reference
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| {
            (l.min(v), h.max(v))
        });
    let range = ((hi - lo) as f64).max(1e-12);
    let worst = gpu
        .iter()
        .zip(reference)
        .map(|(&a, &b)| (a as f64 - b as f64).abs())
        .fold(0f64, f64::max);
    (worst / range, range)
}

fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = SplitMix(seed);
    (0..n).map(|_| rng.symmetric(1.0)).collect()
}

#[test]
fn adapter_is_found_and_every_shader_compiles() {
    let Some(gpu) = gpu() else { return };
    eprintln!(
        "adapter: {} ({:?}, {:?})",
        gpu.info.name, gpu.info.device_type, gpu.info.backend
    );
    let mut p = Pipelines::new(&gpu).expect("fixed shaders compile");
    let header = info([20, 20, 20, 1], 1, [8, 8, 8]).header();
    // Block evaluation is generated per architecture: the default, a narrow
    // and uneven one, and one with no latent code; staged and not.
    for (staged, arch) in [
        (true, default_architecture()),
        (
            true,
            Architecture {
                latent_dim: 3,
                hidden: vec![16, 7],
                omega0: 30.0,
            },
        ),
        (
            false,
            Architecture {
                latent_dim: 0,
                hidden: vec![5],
                omega0: 20.0,
            },
        ),
    ] {
        if !staged {
            p = p.without_staging();
        }
        let s = random_scale(
            &info([20, 20, 20, 1], 1, [8, 8, 8]),
            0,
            &arch,
            1.0,
            1,
            &mut SplitMix(1),
        );
        let model = ScaleModel::new(&s, &header).unwrap();
        let buffers = ScaleBuffers::new(&gpu, &model).unwrap();
        let grid = Grid::zeros(&gpu, model.grid).unwrap();
        p.eval_blocks(&gpu, &buffers, &grid)
            .unwrap_or_else(|e| panic!("{arch:?}: {e}"));
    }
    sine(&gpu, &[0.5]).expect("the sine test shader compiles");
    gpu.check().unwrap();
}

#[test]
fn sine_matches_its_cpu_twin() {
    let Some(gpu) = gpu() else { return };
    let mut xs: Vec<f32> = (0..200_000)
        .map(|i| -10_000.0 + i as f32 * 0.1000037)
        .collect();
    xs.extend((0..20_000).map(|i| -50.0 + i as f32 * 0.005));
    let got = sine(&gpu, &xs).unwrap();
    let worst = got
        .iter()
        .zip(&xs)
        .map(|(&g, &x)| (g - sin_approx(x)).abs())
        .fold(0f32, f32::max);
    eprintln!(
        "sine: worst |GPU − CPU| = {worst:e} over {} arguments",
        xs.len()
    );
    assert!(worst <= 1e-6, "worst {worst}");
}

/// GPU block evaluation into a zero grid vs `add_blocks`.
/// `(dims, scales, level, block, occupancy)`: which scale of which volume.
type Case = ([u32; 4], u8, u8, [u16; 3], f32);

fn check_eval(gpu: &Gpu, case: Case, arch: &Architecture, staged: bool) -> f64 {
    let (dims, scales, level, block, occupancy) = case;
    let vi = info(dims, scales, block);
    let header = vi.header();
    let s = random_scale(
        &vi,
        level,
        arch,
        occupancy,
        3,
        &mut SplitMix(level as u64 + 11),
    );
    let model = ScaleModel::new(&s, &header).unwrap();
    let mut cpu = vec![0f32; model.grid.iter().product()];
    add_blocks(&model, &mut cpu);
    let mut p = Pipelines::new(gpu).unwrap();
    if !staged {
        p = p.without_staging();
    }
    let buffers = ScaleBuffers::new(gpu, &model).unwrap();
    let grid = Grid::zeros(gpu, model.grid).unwrap();
    p.eval_blocks(gpu, &buffers, &grid).unwrap();
    let got = grid.read(gpu).unwrap();
    if model.blocks.is_empty() {
        assert!(
            got.iter().all(|&v| v == 0.0),
            "a scale without blocks adds nothing"
        );
        return 0.0;
    }
    let (err, range) = rel_error(&got, &cpu);
    eprintln!(
        "eval {:?} level {level} block {block:?} occupancy {occupancy} ({} blocks, staged {staged}): worst {err:.2e} of range {range:.3}",
        model.grid, model.blocks.len()
    );
    assert!(
        err <= TOL,
        "GPU block evaluation off by {err:e} of the range"
    );
    err
}

#[test]
fn block_evaluation_matches_its_cpu_twin() {
    let Some(gpu) = gpu() else { return };
    let def = default_architecture();
    let mut worst = 0f64;
    // Odd dims: edge blocks cropped on every axis; several time steps.
    worst = worst.max(check_eval(
        &gpu,
        ([37, 21, 19, 3], 1, 0, [8, 8, 8], 1.0),
        &def,
        true,
    ));
    // Anisotropic blocks, a finer level with empty blocks.
    worst = worst.max(check_eval(
        &gpu,
        ([45, 30, 17, 2], 2, 1, [8, 6, 5], 0.4),
        &def,
        true,
    ));
    // One-voxel block edges (coordinate 0) and the unstaged path.
    worst = worst.max(check_eval(
        &gpu,
        ([9, 13, 5, 1], 1, 0, [4, 1, 5], 1.0),
        &def,
        false,
    ));
    // Another architecture.
    let arch = Architecture {
        latent_dim: 4,
        hidden: vec![32, 16, 8],
        omega0: 30.0,
    };
    worst = worst.max(check_eval(
        &gpu,
        ([33, 17, 40, 1], 2, 1, [16, 16, 16], 0.7),
        &arch,
        true,
    ));
    // Every finer block empty.
    // A wide network: loops instead of straight-line code.
    let wide = Architecture {
        latent_dim: 8,
        hidden: vec![64, 64],
        omega0: 30.0,
    };
    worst = worst.max(check_eval(
        &gpu,
        ([20, 11, 9, 2], 1, 0, [8, 8, 8], 1.0),
        &wide,
        true,
    ));
    check_eval(&gpu, ([32, 32, 32, 1], 2, 1, [8, 8, 8], 0.0), &def, true);
    eprintln!("block evaluation: worst case {worst:.2e} of the value range");
}

#[test]
fn upsampling_matches_its_cpu_twin() {
    let Some(gpu) = gpu() else { return };
    let p = Pipelines::new(&gpu).unwrap();
    let mut worst = 0f64;
    for (i, fine) in [
        [37, 21, 19, 5],
        [36, 20, 18, 4],
        [1, 7, 3, 2],
        [64, 33, 1, 1],
        [5, 5, 5, 1],
    ]
    .into_iter()
    .enumerate()
    {
        let coarse: [usize; 4] = fine.map(|d: usize| d.div_ceil(2));
        let c = random(coarse.iter().product(), 2 * i as u64);
        let f = random(fine.iter().product(), 2 * i as u64 + 1);
        let mut cpu = f.clone();
        upsample_add(&c, coarse, &mut cpu, fine);
        let (gc, gf) = (
            Grid::from_data(&gpu, coarse, &c).unwrap(),
            Grid::from_data(&gpu, fine, &f).unwrap(),
        );
        p.upsample_add(&gpu, &gc, &gf).unwrap();
        let (err, _) = rel_error(&gf.read(&gpu).unwrap(), &cpu);
        eprintln!("upsample_add {coarse:?} → {fine:?}: worst {err:.2e} of range");
        assert!(err <= TOL, "{err}");
        worst = worst.max(err);
    }
    eprintln!("upsample_add: worst case {worst:.2e} of the value range");
    // Dims that are not parent and child are refused, not a panic.
    let a = Grid::zeros(&gpu, [4, 4, 4, 1]).unwrap();
    let b = Grid::zeros(&gpu, [4, 4, 4, 1]).unwrap();
    assert!(matches!(
        p.upsample_add(&gpu, &a, &b),
        Err(DecodeError::Usage(_))
    ));
}

fn grid_arch(levels: u8, synthesis: &[u16]) -> GridArchitecture {
    GridArchitecture {
        levels,
        synthesis: synthesis.to_vec(),
        context_hidden: 0,
    }
}

/// GPU grid synthesis into a random grid vs `add_synthesis` (of a 5/3-lifted
/// section when `lifted`); the worst relative error.
fn check_synthesis(
    gpu: &Gpu,
    p: &mut Pipelines,
    params: &str,
    dims: [u32; 4],
    arch: &GridArchitecture,
    lifted: bool,
) -> f64 {
    let vi = info(dims, 1, [8, 8, 8]);
    let seed = dims.iter().map(|&d| d as u64).sum::<u64>() + arch.levels as u64;
    let mut rng = SplitMix(seed);
    let mut section = random_grid_scale(&vi, 0, arch, 2.0, &mut rng);
    if lifted {
        section = with_random_lifting(section, &mut rng);
    }
    let dims = vi.header().level_dims(0);
    let base = random(dims.iter().product(), seed + 1);
    let mut cpu = base.clone();
    add_synthesis(&section, dims, &mut cpu);
    let grid = Grid::from_data(gpu, dims, &base).unwrap();
    p.add_synthesis(gpu, &section, &grid).unwrap();
    let (err, range) = rel_error(&grid.read(gpu).unwrap(), &cpu);
    eprintln!(
        "synthesis {dims:?}, {} levels, hidden {:?}, parameters {params}, lifted {lifted}: worst {err:.2e} of range {range:.3}",
        arch.levels, arch.synthesis
    );
    assert!(err <= TOL, "GPU grid synthesis off by {err:e} of the range");
    err
}

#[test]
fn loop_filter_matches_its_cpu_twin() {
    let Some(gpu) = gpu() else { return };
    let p = Pipelines::new(&gpu).unwrap();
    let vi = info([8, 8, 8, 1], 1, [8, 8, 8]);
    let arch = grid_arch(1, &[]);
    let mut worst = 0f64;
    // Odd dims, 4D, axes thinner than the diamond, more voxels than one
    // dispatch row of workgroups covers.
    let cases: [[usize; 4]; 6] = [
        [37, 21, 19, 1],
        [17, 9, 6, 3],
        [1, 13, 9, 1],
        [2, 1, 1, 5],
        [1, 1, 1, 1],
        [300, 250, 3, 1],
    ];
    for (i, dims) in cases.into_iter().enumerate() {
        let mut rng = SplitMix(500 + i as u64);
        let mut filter = None;
        // Random filters until one with several classes, the case's shape
        // and value bands in all cases but two (either clamp).
        let shape = Shape::ALL[i % 2];
        let banded = i % 3 != 1;
        while filter.as_ref().is_none_or(|f: &LoopFilter| {
            f.classes() < 2 + i % 3 || f.shape != shape || f.banded() != banded
        }) {
            let s = random_grid_scale(&vi, 0, &arch, 1.0, &mut rng);
            filter = with_random_loop_filter(s, &mut rng).loop_filters.pop();
        }
        let filter = filter.unwrap();
        let data = random(dims.iter().product(), 600 + i as u64);
        let cpu = filter.apply(dims, &data);
        let src = Grid::from_data(&gpu, dims, &data).unwrap();
        let dst = Grid::zeros(&gpu, dims).unwrap();
        p.loop_filter(&gpu, &filter, &src, &dst).unwrap();
        let (err, range) = rel_error(&dst.read(&gpu).unwrap(), &cpu);
        eprintln!(
            "loop filter {dims:?}, {:?}, {} classes ({} value bands), clamp {}: worst {err:.2e} of range {range:.3}",
            filter.shape,
            filter.classes(),
            filter.bands(),
            filter.clamp
        );
        assert!(err <= TOL, "GPU loop filter off by {err:e} of the range");
        worst = worst.max(err);
    }
    eprintln!("loop filter: worst case {worst:.2e} of the value range");
    let other = Grid::zeros(&gpu, [3, 3, 3, 1]).unwrap();
    let grid = Grid::zeros(&gpu, [3, 3, 2, 1]).unwrap();
    let s = random_grid_scale(&vi, 0, &arch, 1.0, &mut SplitMix(1));
    let f = with_random_loop_filter(s, &mut SplitMix(2))
        .loop_filters
        .remove(0);
    assert!(matches!(
        p.loop_filter(&gpu, &f, &grid, &other),
        Err(DecodeError::Usage(_))
    ));
}

#[test]
fn grid_synthesis_matches_its_cpu_twin() {
    let Some(gpu) = gpu() else { return };
    let mut p = Pipelines::new(&gpu)
        .unwrap()
        .baking_synthesis_from(usize::MAX);
    let mut worst = 0f64;
    // Odd dims, 4D, one-voxel axes (x among them), every level count the
    // encoder picks (1..=7) and the format's 12; linear, one hidden layer,
    // the default 12×12, a wide 32, the widest the format allows.
    // Rows past 64 voxels: several workgroups per row, the last partial.
    let cases: [([u32; 4], u8, &[u16]); 14] = [
        ([37, 21, 19, 1], 1, &[]),
        ([37, 21, 19, 3], 2, &[16]),
        ([45, 30, 17, 2], 3, &[12, 12]),
        ([1, 13, 9, 1], 4, &[12, 12]),
        ([23, 1, 1, 5], 5, &[8]),
        ([64, 33, 1, 1], 6, &[32]),
        ([29, 31, 27, 1], 7, &[12, 12]),
        ([40, 24, 20, 4], 7, &[32, 32]),
        ([1, 1, 1, 1], 3, &[12, 12]),
        ([17, 9, 6, 3], 4, &[]),
        ([9, 7, 5, 2], 12, &[12, 12]),
        ([11, 6, 5, 2], 12, &[64, 64, 64, 64]),
        ([130, 3, 2, 2], 7, &[12, 12]),
        ([65, 5, 3, 1], 3, &[16]),
    ];
    // Parameters from the uniform buffer (of lifted sections), and baked
    // into the shader (interpolating ones): the channels reach the GPU the
    // same way for both transforms.
    let mut baked = Pipelines::new(&gpu).unwrap().baking_synthesis_from(0);
    for (dims, levels, hidden) in cases {
        let arch = grid_arch(levels, hidden);
        worst = worst.max(check_synthesis(&gpu, &mut p, "uniform", dims, &arch, true));
        let how = if synthesis_can_bake(&arch.synthesis_shapes()) {
            "baked"
        } else {
            "uniform (too wide to bake)"
        };
        worst = worst.max(check_synthesis(&gpu, &mut baked, how, dims, &arch, false));
    }
    eprintln!("grid synthesis: worst case {worst:.2e} of the value range");
    // Latents that do not fit the grid are refused, not a panic.
    let vi = info([8, 8, 8, 1], 1, [8, 8, 8]);
    let section = random_grid_scale(&vi, 0, &grid_arch(2, &[4]), 1.0, &mut SplitMix(3));
    let grid = Grid::zeros(&gpu, [8, 8, 7, 1]).unwrap();
    assert!(matches!(
        p.add_synthesis(&gpu, &section, &grid),
        Err(DecodeError::Usage(_))
    ));
    gpu.check().unwrap();
}

fn archive(vi: &VolumeInfo, arch: &Architecture, occupancy: f32, seed: u64) -> Vec<u8> {
    let mut w = ArchiveWriter::new(vi.clone(), Codec::Zstd(3));
    for s in random_scales(vi, arch, occupancy, seed) {
        w.add_scale(&s).unwrap();
    }
    w.add_metadata(r#"{"name": "test"}"#).unwrap();
    w.finish().unwrap()
}

/// Feeds `bytes` in chunks; after each scale the GPU level must equal the
/// CPU reconstruction, its textures the level's frames; at the end the
/// full-size volume must equal `decode`. Returns the worst relative error.
fn check_progressive(gpu: Gpu, bytes: &[u8], chunk: usize) -> f64 {
    let a = strata_format::Archive::read(bytes, &Default::default()).unwrap();
    let scales = a.usable_scales();
    let header: &Header = &a.header;
    let mut rec = Reconstruction::new(header);
    let mut dec = Decoder::new(gpu).unwrap();
    let mut seen = 0u8;
    let mut worst = 0f64;
    for c in bytes.chunks(chunk) {
        let done = dec.push(c).unwrap();
        for p in &done {
            assert_eq!(p.level, seen);
            assert_eq!(p.scales, header.scales);
            rec.add_scale(scales[seen as usize]).unwrap();
            seen += 1;
        }
        // Several scales may complete in one push: the GPU holds the last.
        let Some(p) = done.last() else { continue };
        let (cpu, dims) = rec.current();
        let (got, gdims) = dec.read_level().unwrap();
        assert_eq!((dims, gdims), (p.dims, p.dims));
        let (err, _) = rel_error(&got, cpu);
        eprintln!("  level {} {:?}: worst {err:.2e} of range", p.level, p.dims);
        assert!(err <= TOL, "level {}: {err:e}", p.level);
        worst = worst.max(err);
        let frame = dims[0] * dims[1] * dims[2];
        for t in [0, dims[3] - 1] {
            let tex = dec.read_texture(t).unwrap();
            assert_eq!(
                tex,
                got[t * frame..(t + 1) * frame],
                "texture of time step {t}"
            );
        }
    }
    dec.finish().unwrap();
    assert_eq!(seen, header.scales, "one progress report per scale");
    let cpu = decode(header, &scales, None).unwrap();
    let got = dec.read_volume().unwrap();
    assert_eq!(got.dims, cpu.dims);
    assert_eq!(got.dtype, cpu.dtype);
    let (err, range) = rel_error(&got.data, &cpu.data);
    eprintln!(
        "  full volume {:?}: worst {err:.2e} of range {range:.1}",
        got.dims
    );
    assert!(err <= TOL, "{err:e}");
    worst.max(err)
}

#[test]
fn progressive_decode_matches_the_cpu_decoder() {
    let Some(gpu) = gpu() else { return };
    let def = default_architecture();
    let cases: [(VolumeInfo, f32, usize); 3] = [
        (info([45, 33, 27, 1], 3, [8, 8, 8]), 0.5, 777),
        (info([30, 22, 17, 4], 2, [8, 8, 8]), 0.6, 4096),
        (info([64, 64, 48, 1], 3, [16, 16, 16]), 1.0, 1 << 20),
    ];
    let mut worst = 0f64;
    let mut gpu = Some(gpu);
    for (i, (vi, occ, chunk)) in cases.into_iter().enumerate() {
        eprintln!(
            "archive {:?}, {} scales, occupancy {occ}:",
            vi.dims, vi.scales
        );
        let bytes = archive(&vi, &def, occ, 100 + i as u64);
        let g = gpu.take().unwrap_or_else(|| Gpu::new_blocking().unwrap());
        worst = worst.max(check_progressive(g, &bytes, chunk));
    }
    eprintln!("progressive decode: worst case {worst:.2e} of the value range");
}

/// An archive whose scales are SIREN where `kinds` says `'s'` and grid
/// where it says `'g'`.
fn mixed_archive(vi: &VolumeInfo, kinds: &str, seed: u64) -> Vec<u8> {
    let mut rng = SplitMix(seed);
    let mut w = ArchiveWriter::new(vi.clone(), Codec::Zstd(3));
    for (level, kind) in kinds.chars().enumerate() {
        let level = level as u8;
        if kind == 's' {
            let s = random_scale(vi, level, &default_architecture(), 0.6, 2, &mut rng);
            w.add_scale(&s).unwrap();
        } else {
            let arch = GridArchitecture {
                levels: 1 + level % 4,
                synthesis: vec![12, 12],
                context_hidden: 4,
            };
            let mut g: GridSection = random_grid_scale(vi, level, &arch, 1.5, &mut rng);
            // Both transforms in one archive, and loop filters.
            if level % 2 == 1 {
                g = with_random_lifting(g, &mut rng);
            }
            if level % 3 != 1 {
                g = with_random_loop_filter(g, &mut rng);
            }
            w.add_scale(&g).unwrap();
        }
    }
    w.add_metadata(r#"{"name": "mixed"}"#).unwrap();
    w.finish().unwrap()
}

#[test]
fn progressive_decode_of_mixed_siren_and_grid_archives() {
    let Some(gpu) = gpu() else { return };
    let cases: [(VolumeInfo, &str, usize); 3] = [
        (info([45, 33, 27, 1], 3, [8, 8, 8]), "gsg", 777),
        (info([30, 22, 17, 4], 3, [8, 8, 8]), "sgg", 4096),
        (info([37, 1, 21, 1], 2, [8, 1, 8]), "gg", 1 << 20),
    ];
    let mut worst = 0f64;
    let mut gpu = Some(gpu);
    for (i, (vi, kinds, chunk)) in cases.into_iter().enumerate() {
        eprintln!("archive {:?}, scales {kinds}:", vi.dims);
        let bytes = mixed_archive(&vi, kinds, 200 + i as u64);
        let g = gpu.take().unwrap_or_else(|| Gpu::new_blocking().unwrap());
        worst = worst.max(check_progressive(g, &bytes, chunk));
    }
    eprintln!("mixed progressive decode: worst case {worst:.2e} of the value range");
}

/// Supplies every pending grid section's latents, decoded as the browser's
/// worker does; returns the levels reported.
fn supply_pending(dec: &mut Decoder) -> Result<Vec<u8>, DecodeError> {
    let mut levels = Vec::new();
    while let Some(job) = dec.latent_job() {
        let latents = decode_latents(&job.header, job.section.index, &job.section.bytes)?;
        levels.extend(dec.supply_latents(&latents)?.iter().map(|p| p.level));
    }
    Ok(levels)
}

#[test]
fn latents_decoded_off_the_decoder_give_the_same_volume() {
    // The browser's path: grid sections wait for latents from a worker.
    let Some(gpu) = gpu() else { return };
    let vi = info([45, 33, 27, 1], 3, [8, 8, 8]);
    let bytes = mixed_archive(&vi, "gsg", 31);
    let a = strata_format::Archive::read(&bytes, &Default::default()).unwrap();
    let mut inline = Decoder::new(gpu).unwrap();
    inline.push(&bytes).unwrap();
    let expected = inline.read_volume().unwrap();

    let mut dec = Decoder::new(Gpu::new_blocking().unwrap()).unwrap();
    dec.set_latent_offload(true);
    let mut levels = Vec::new();
    for c in bytes.chunks(999) {
        levels.extend(dec.push(c).unwrap().iter().map(|p| p.level));
        levels.extend(supply_pending(&mut dec).unwrap());
    }
    dec.finish().unwrap();
    assert_eq!(levels, [0, 1, 2]);
    assert_eq!(
        dec.read_volume().unwrap().data,
        expected.data,
        "bit for bit"
    );

    // All at once, damage in the last section: nothing decodes before the
    // grid scale's latents come; then the two scales, then the error.
    let mut dec = Decoder::new(Gpu::new_blocking().unwrap()).unwrap();
    dec.set_latent_offload(true);
    let mut bad = bytes.clone();
    bad[a.header.sections[2].offset as usize + 5] ^= 0x21;
    assert!(dec.push(&bad).unwrap().is_empty());
    let e = dec.finish().unwrap_err().to_string();
    assert!(e.contains("waiting for its latents"), "{e}");
    let e = supply_pending(&mut dec).unwrap_err().to_string();
    assert!(e.contains("section 2"), "{e}");
    let reported: Vec<u8> = dec.take_unreported().iter().map(|p| p.level).collect();
    assert_eq!(reported, [0, 1]);
    assert_eq!(dec.levels(), 2);
    assert!(dec.push(&[]).is_err(), "the error repeats");
    // Wrong latents are refused, naming the section.
    let mut dec = Decoder::new(Gpu::new_blocking().unwrap()).unwrap();
    dec.set_latent_offload(true);
    dec.push(&bytes).unwrap();
    let e = dec.supply_latents(&[1, 2, 3]).unwrap_err().to_string();
    assert!(e.contains("section 0") && e.contains("supplied"), "{e}");
}

#[test]
fn partial_decode_and_damage_give_what_arrived() {
    let Some(gpu) = gpu() else { return };
    let vi = info([40, 24, 20, 2], 3, [8, 8, 8]);
    let bytes = archive(&vi, &default_architecture(), 0.5, 5);
    let a = strata_format::Archive::read(&bytes, &Default::default()).unwrap();
    // --scales 1: the coarsest level upsampled to full size.
    let mut dec = Decoder::new(gpu).unwrap().with_max_scales(1);
    assert_eq!(dec.push(&bytes).unwrap().len(), 1);
    let cpu = decode(&a.header, &a.usable_scales(), Some(1)).unwrap();
    let got = dec.read_volume().unwrap();
    let (err, _) = rel_error(&got.data, &cpu.data);
    eprintln!("one of three scales, upsampled on the GPU: worst {err:.2e} of range");
    assert!(err <= TOL);

    // A stream cut inside the last section: the coarser scales decode, and
    // finish() names what is missing.
    let gpu = Gpu::new_blocking().unwrap();
    let mut dec = Decoder::new(gpu).unwrap();
    let cut = a.header.sections[2].offset as usize + 10;
    assert_eq!(dec.push(&bytes[..cut]).unwrap().len(), 2);
    let e = dec.finish().unwrap_err().to_string();
    assert!(e.contains("section 2"), "{e}");
    assert_eq!(dec.levels(), 2);
    dec.texture(0).unwrap();
    // Level 1 of a 2-step volume has one time step (t halves too).
    assert!(matches!(dec.texture(1), Err(DecodeError::Usage(_))));

    // A damaged byte in scale 1: scale 0 decoded, then a clear error that
    // repeats, never a panic.
    let gpu = Gpu::new_blocking().unwrap();
    let mut dec = Decoder::new(gpu).unwrap();
    let mut bad = bytes.clone();
    bad[a.header.sections[1].offset as usize + 3] ^= 0x40;
    let e = dec.push(&bad).unwrap_err().to_string();
    assert!(e.contains("section 1"), "{e}");
    assert_eq!(dec.levels(), 1);
    // The scale decoded before the damage is still reported, once.
    let unreported = dec.take_unreported();
    assert_eq!(unreported.iter().map(|p| p.level).collect::<Vec<_>>(), [0]);
    assert!(dec.take_unreported().is_empty());
    assert!(dec.push(&[]).is_err());

    // Not an archive at all.
    let gpu = Gpu::new_blocking().unwrap();
    let mut dec = Decoder::new(gpu).unwrap();
    assert!(dec.push(b"PNG not strata").is_err());
    assert!(matches!(dec.texture(0), Err(DecodeError::Usage(_))));
}

#[test]
fn grids_past_the_device_limits_are_refused() {
    let Some(gpu) = gpu() else { return };
    let max = gpu.limits().max_storage_buffer_binding_size;
    let x = (max / 4 + 1) as usize;
    match Grid::zeros(&gpu, [x, 1, 1, 1]) {
        Err(DecodeError::TooLarge(m)) => {
            eprintln!("refused: {m}");
            assert!(m.contains("limit"), "{m}");
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a grid past the limit was accepted"),
    }
    gpu.check().unwrap();
}
