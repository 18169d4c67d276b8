//! `strata bench-decode`: voxels per second of the CPU reference decoder on
//! a synthetic archive of the default architecture (SIREN blocks, or with
//! `--model grid` latent grids of the default grid architecture), or on any
//! archive (`--archive`), next to this machine's measured FMA peak (the
//! baseline, measured in the same run); with `--gpu` also of the GPU decoder
//! (strata-decoder on wgpu) on the same archive. Time is split between
//! reading the sections (entropy decoding of grid latents, zstd of SIREN
//! codebooks) and synthesis.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use strata_format::grid::latent_dims;
use strata_format::synth::{random_grid_scale, SplitMix};
use strata_format::{
    decode, Archive, ArchiveWriter, Codec, DataType, Limits, ScaleRef, VolumeInfo,
};

use strata::grid::{default_levels, GridOptions};

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Model {
    Siren,
    Grid,
}

#[derive(clap::Args)]
pub struct Args {
    /// Volume dimensions x y z t (synthetic archive).
    #[arg(long, num_args = 4, default_values_t = [256u32, 256, 128, 1])]
    dims: Vec<u32>,
    #[arg(long, default_value_t = 3)]
    scales: u8,
    /// The synthetic archive's model kind.
    #[arg(long, value_enum, default_value_t = Model::Siren)]
    model: Model,
    #[arg(long, default_value_t = 16)]
    block: u16,
    /// Fraction of finer-scale blocks that are occupied (1 = worst case; SIREN).
    #[arg(long, default_value_t = 1.0)]
    occupancy: f32,
    /// Laplace scale of the synthetic grid latents (trained ones are mostly
    /// 0 and ±1: 0.3 gives ~0.7 bits per latent).
    #[arg(long, default_value_t = 0.3)]
    spread: f32,
    /// Time this archive instead of a synthetic one.
    #[arg(long)]
    archive: Option<PathBuf>,
    /// Timed repetitions (the median is reported).
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Append a row to this CSV file.
    #[arg(long, default_value = "bench-out/decode.csv")]
    csv: PathBuf,
    /// Also time the GPU decoder (adds a row with decoder = gpu: ADAPTER).
    #[arg(long)]
    gpu: bool,
}

/// `read_s` / `synthesis_s`: on CPU rows reading the sections (entropy
/// decoding included) and synthesis; on GPU rows the latents' entropy
/// decoding and everything else (reading, uploads, GPU work).
const CSV_HEADER: &str = "dims,block,scales,occupancy,threads,median_s,voxels_per_s,evals_per_s,gfma_per_s,peak_gfma_per_s,fraction_of_peak,decoder,model,read_s,synthesis_s,archive";

/// A random grid archive of the encoder's default grid architecture, its
/// latents drawn mostly small as trained ones are.
fn grid_example(dims: [u32; 4], scales: u8, spread: f32, seed: u64) -> Result<Vec<u8>> {
    let info = VolumeInfo {
        dims,
        scales,
        block: [16; 3],
        value_min: 0.0,
        value_max: 255.0,
        dtype: DataType::U8,
        spacing: [1.0; 4],
    };
    let opts = GridOptions::default();
    let mut rng = SplitMix(seed);
    let mut w = ArchiveWriter::new(info.clone(), Codec::Zstd(3));
    for level in 0..scales {
        let arch = strata_format::GridArchitecture {
            levels: default_levels(info.header().level_dims(level)),
            synthesis: opts.synthesis.clone(),
            context_hidden: opts.context_hidden,
        };
        w.add_scale(&random_grid_scale(&info, level, &arch, spread, &mut rng))?;
    }
    w.add_metadata(
        r#"{"name": "random latent grids", "description": "synthetic benchmark archive"}"#,
    )?;
    Ok(w.finish()?)
}

/// Multiply-adds of the synthesis, and what the archive holds, in words.
struct Work {
    macs: u64,
    evals: u64,
    describe: String,
    model: &'static str,
}

fn work_of(archive: &Archive) -> Work {
    let header = &archive.header;
    let block_voxels: u64 = header.block.iter().map(|&b| b as u64).product();
    let (mut macs, mut evals, mut parts, mut kinds) = (0u64, 0u64, Vec::new(), (false, false));
    for s in archive.usable_scales() {
        match s {
            ScaleRef::Siren(s) => {
                // Every layer after the first (folded into per-axis tables).
                let shapes = s.arch.layer_shapes();
                let per_eval: u64 = shapes[1..].iter().map(|(i, o)| (i * o) as u64).sum();
                let e = s.occupied_count() as u64 * block_voxels;
                macs += e * per_eval;
                evals += e;
                parts.push(format!(
                    "SIREN {}→{:?}→1",
                    s.arch.input_width(),
                    s.arch.hidden
                ));
                kinds.0 = true;
            }
            ScaleRef::Grid(g) => {
                let dims = header.level_dims(g.level);
                let voxels: u64 = dims.iter().map(|&d| d as u64).product();
                macs += voxels * g.arch.macs_per_voxel() as u64;
                evals += voxels;
                let latents: usize = (0..g.arch.levels)
                    .map(|l| latent_dims(dims, l).iter().product::<usize>())
                    .sum();
                parts.push(format!(
                    "grid {} levels ({latents} latents), {}→{:?}→1, context {}",
                    g.arch.levels, g.arch.levels, g.arch.synthesis, g.arch.context_hidden
                ));
                kinds.1 = true;
            }
        }
    }
    Work {
        macs,
        evals,
        describe: parts.join("; "),
        model: match kinds {
            (true, true) => "mixed",
            (false, true) => "grid",
            _ => "siren",
        },
    }
}

pub fn run(args: Args) -> Result<()> {
    let bytes = match &args.archive {
        Some(path) => {
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?
        }
        None => {
            let dims = [args.dims[0], args.dims[1], args.dims[2], args.dims[3]];
            match args.model {
                Model::Siren => {
                    super::example::build(dims, args.scales, args.block, args.occupancy, 7)?
                }
                Model::Grid => grid_example(dims, args.scales, args.spread, 7)?,
            }
        }
    };
    let limits = Limits::default();
    let archive = Archive::read(&bytes, &limits)?;
    if let Some(e) = archive.first_error() {
        anyhow::bail!("the archive does not decode whole: {e}");
    }
    let header = &archive.header;
    let work = work_of(&archive);

    // Reading (checksums, zstd, entropy decoding of latents), then synthesis.
    let (mut reads, mut synths, mut times) = (Vec::new(), Vec::new(), Vec::new());
    let mut cpu_volume = None;
    for _ in 0..args.reps.max(1) + 1 {
        let t = Instant::now();
        let a = Archive::read(&bytes, &limits)?;
        let read = t.elapsed().as_secs_f64();
        let v = decode(&a.header, &a.usable_scales(), None)?;
        std::hint::black_box(&v.data);
        let total = t.elapsed().as_secs_f64();
        reads.push(read);
        synths.push(total - read);
        times.push(total);
        cpu_volume = Some(v);
    }
    let median = median_after_warmup(&mut times);
    let read_median = median_after_warmup(&mut reads);
    let synth_median = median_after_warmup(&mut synths);
    let voxels = header.voxel_count() as f64;
    let fma_rate = work.macs as f64 / synth_median;

    let threads = rayon::current_num_threads();
    let (peak, isa) = fma_peak(threads);
    let d = header.dims;
    println!(
        "archive      {} bytes, dims {:?}, {} scales: {}",
        bytes.len(),
        d,
        header.scales,
        work.describe
    );
    println!(
        "work         {} synthesis evaluations ({:.2} per output voxel), {:.1} M multiply-adds",
        work.evals,
        work.evals as f64 / voxels,
        work.macs as f64 / 1e6
    );
    println!(
        "decode       median {:.3} s over {} runs (min {:.3}, max {:.3}), {threads} threads",
        median,
        times.len(),
        times[0],
        times[times.len() - 1]
    );
    println!(
        "split        reading the sections {read_median:.3} s ({:.0}%: entropy decoding of latents, zstd), synthesis {synth_median:.3} s",
        100.0 * read_median / median
    );
    println!(
        "speed        {:.1} M output voxels/s, {:.1} M evaluations/s",
        voxels / median / 1e6,
        work.evals as f64 / median / 1e6
    );
    println!(
        "FMA peak     {:.1} GFMA/s measured ({isa}, {threads} threads); synthesis at {:.1} GFMA/s, {:.1}% of peak",
        peak / 1e9,
        fma_rate / 1e9,
        100.0 * fma_rate / peak
    );

    // The columns that describe the archive, shared by the CPU and GPU rows.
    let case = format!(
        "{}x{}x{}x{},{},{},{}",
        d[0],
        d[1],
        d[2],
        d[3],
        header.block[0],
        header.scales,
        if args.archive.is_some() {
            String::new()
        } else {
            args.occupancy.to_string()
        }
    );
    let source = args
        .archive
        .as_ref()
        .map_or(String::new(), |p| p.display().to_string().replace(',', ";"));
    super::append_csv(
        &args.csv,
        CSV_HEADER,
        &format!(
            "{case},{threads},{median:.4},{:.0},{:.0},{:.2},{:.2},{:.4},cpu,{},{read_median:.4},{synth_median:.4},{source}",
            voxels / median,
            work.evals as f64 / median,
            fma_rate / 1e9,
            peak / 1e9,
            fma_rate / peak,
            work.model
        ),
    )?;
    if args.gpu {
        let cpu = cpu_volume.expect("at least one run");
        let gpu = strata_decoder::Gpu::new_blocking()?;
        let adapter = format!("{} ({:?})", gpu.info.name, gpu.info.backend);
        let mut dec = strata_decoder::Decoder::new(gpu)?;
        // The browser's order: sections read, each grid section's latents
        // entropy-decoded on the CPU (a worker there), then the GPU work.
        dec.set_latent_offload(true);
        let (mut times, mut entropy) = (Vec::new(), Vec::new());
        for _ in 0..args.reps.max(1) + 1 {
            dec.reset();
            let t = Instant::now();
            let mut spent = 0.0;
            dec.push(&bytes)?;
            while let Some(job) = dec.latent_job() {
                let e = Instant::now();
                let latents = strata_decoder::decode_latents(
                    &job.header,
                    job.section.index,
                    &job.section.bytes,
                )?;
                spent += e.elapsed().as_secs_f64();
                dec.supply_latents(&latents)?;
            }
            dec.wait()?;
            times.push(t.elapsed().as_secs_f64());
            entropy.push(spent);
        }
        let gpu_median = median_after_warmup(&mut times);
        let entropy_median = median_after_warmup(&mut entropy);
        let t = Instant::now();
        let v = dec.read_volume()?;
        let readback = t.elapsed().as_secs_f64();
        let range = (header.value_max - header.value_min).max(f64::MIN_POSITIVE);
        let worst = v
            .data
            .iter()
            .zip(&cpu.data)
            .map(|(&a, &b)| (a as f64 - b as f64).abs())
            .fold(0f64, f64::max);
        let gpu_work = gpu_median - entropy_median;
        let fma_rate = work.macs as f64 / gpu_work;
        println!("GPU          {adapter}");
        println!(
            "GPU decode   median {gpu_median:.3} s over {} runs (read into the GPU grid; readback to the CPU {readback:.3} s more)",
            times.len()
        );
        println!(
            "GPU split    entropy decoding of latents on the CPU ({threads} threads) {entropy_median:.3} s ({:.0}%), reading + GPU work {gpu_work:.3} s",
            100.0 * entropy_median / gpu_median
        );
        println!(
            "GPU speed    {:.1} M output voxels/s, {:.1} M evaluations/s, {:.2} GFMA/s of GPU work ({:.2}× the CPU decoder)",
            voxels / gpu_median / 1e6,
            work.evals as f64 / gpu_median / 1e6,
            fma_rate / 1e9,
            median / gpu_median
        );
        println!(
            "GPU vs CPU   worst |difference| {:.2e} of the value range",
            worst / range
        );
        super::append_csv(
            &args.csv,
            CSV_HEADER,
            &format!(
                "{case},,{gpu_median:.4},{:.0},{:.0},{:.2},,,gpu: {},{},{entropy_median:.4},{gpu_work:.4},{source}",
                voxels / gpu_median,
                work.evals as f64 / gpu_median,
                fma_rate / 1e9,
                adapter.replace(',', ";"),
                work.model
            ),
        )?;
    }
    println!("csv          {}", args.csv.display());
    Ok(())
}

/// Drops the first (warm-up) time and returns the median of the rest.
fn median_after_warmup(times: &mut Vec<f64>) -> f64 {
    times.remove(0);
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// FMAs per second of all threads running independent FMA chains: the
/// machine's practical peak for f32 multiply-add.
fn fma_peak(threads: usize) -> (f64, &'static str) {
    const ITERS: usize = 50_000_000;
    let run = |f: fn(usize) -> f32, lanes: usize, isa: &'static str| {
        let mut best = 0f64;
        for _ in 0..3 {
            let t = Instant::now();
            std::thread::scope(|s| {
                for _ in 0..threads {
                    s.spawn(|| std::hint::black_box(f(ITERS)));
                }
            });
            let fmas = (threads * ITERS * CHAINS * lanes) as f64;
            best = best.max(fmas / t.elapsed().as_secs_f64());
        }
        (best, isa)
    };
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: feature checked just above.
            return run(|n| unsafe { x86::fma_chains_avx512(n) }, 16, "AVX-512 FMA");
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: feature checked just above.
            return run(|n| unsafe { x86::fma_chains_avx2(n) }, 8, "AVX2 FMA");
        }
    }
    run(fma_chains_scalar, 1, "scalar multiply-add")
}

/// Independent accumulators: enough to hide FMA latency on current cores.
const CHAINS: usize = 12;

fn fma_chains_scalar(iters: usize) -> f32 {
    let (a, b) = (
        std::hint::black_box(0.999_999f32),
        std::hint::black_box(1e-7f32),
    );
    let mut acc = [1f32; CHAINS];
    for _ in 0..iters {
        for v in acc.iter_mut() {
            *v = *v * a + b;
        }
    }
    acc.iter().sum()
}

/// Explicit intrinsics, so the measured peak does not depend on what the
/// auto-vectorizer makes of a loop.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::CHAINS;
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx512f")]
    pub unsafe fn fma_chains_avx512(iters: usize) -> f32 {
        let a = _mm512_set1_ps(std::hint::black_box(0.999_999));
        let b = _mm512_set1_ps(std::hint::black_box(1e-7));
        let mut acc = [_mm512_set1_ps(1.0); CHAINS];
        for _ in 0..iters {
            for v in acc.iter_mut() {
                *v = _mm512_fmadd_ps(*v, a, b);
            }
        }
        acc.iter().map(|&v| _mm512_reduce_add_ps(v)).sum()
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn fma_chains_avx2(iters: usize) -> f32 {
        let a = _mm256_set1_ps(std::hint::black_box(0.999_999));
        let b = _mm256_set1_ps(std::hint::black_box(1e-7));
        let mut acc = [_mm256_set1_ps(1.0); CHAINS];
        for _ in 0..iters {
            for v in acc.iter_mut() {
                *v = _mm256_fmadd_ps(*v, a, b);
            }
        }
        let mut out = [0f32; 8];
        for v in acc {
            let mut lanes = [0f32; 8];
            _mm256_storeu_ps(lanes.as_mut_ptr(), v);
            for (o, l) in out.iter_mut().zip(lanes) {
                *o += l;
            }
        }
        out.iter().sum()
    }
}
