//! `strata bench-decode`: voxels per second of the CPU reference decoder on
//! a synthetic archive of the default architecture, next to this machine's
//! measured FMA peak (the baseline, measured in the same run); with `--gpu`
//! also of the GPU decoder (strata-decoder on wgpu) on the same archive.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use strata_format::{decode, Archive, Limits};

#[derive(clap::Args)]
pub struct Args {
    /// Volume dimensions x y z t.
    #[arg(long, num_args = 4, default_values_t = [256u32, 256, 128, 1])]
    dims: Vec<u32>,
    #[arg(long, default_value_t = 3)]
    scales: u8,
    #[arg(long, default_value_t = 16)]
    block: u16,
    /// Fraction of finer-scale blocks that are occupied (1 = worst case).
    #[arg(long, default_value_t = 1.0)]
    occupancy: f32,
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

const CSV_HEADER: &str = "dims,block,scales,occupancy,threads,median_s,voxels_per_s,evals_per_s,gfma_per_s,peak_gfma_per_s,fraction_of_peak,decoder";

pub fn run(args: Args) -> Result<()> {
    let dims = [args.dims[0], args.dims[1], args.dims[2], args.dims[3]];
    let bytes = super::example::build(dims, args.scales, args.block, args.occupancy, 7)?;
    let limits = Limits::default();
    let archive = Archive::read(&bytes, &limits)?;
    // The example archive holds SIREN scales only.
    let scales: Vec<&strata_format::ScaleSection> = archive
        .usable_scales()
        .into_iter()
        .filter_map(|s| match s {
            strata_format::ScaleRef::Siren(s) => Some(s),
            strata_format::ScaleRef::Grid(_) => None,
        })
        .collect();
    let header = &archive.header;
    let arch = &scales[0].arch;
    // MLP evaluations: every voxel of every occupied block, edges included.
    let block_voxels: u64 = header.block.iter().map(|&b| b as u64).product();
    let evals: u64 = scales
        .iter()
        .map(|s| s.occupied_count() as u64 * block_voxels)
        .sum();
    // Multiply-adds the kernel runs per evaluation: every layer after the
    // first (the first is folded into per-axis tables).
    let shapes = arch.layer_shapes();
    let fmas_per_eval: u64 = shapes[1..].iter().map(|(i, o)| (i * o) as u64).sum();
    let sines_per_eval: u64 = arch.hidden.iter().map(|&w| w as u64).sum();

    let mut times = Vec::new();
    let mut cpu_volume = None;
    for _ in 0..args.reps.max(1) + 1 {
        let t = Instant::now();
        let a = Archive::read(&bytes, &limits)?;
        let v = decode(&a.header, &a.usable_scales(), None)?;
        std::hint::black_box(&v.data);
        times.push(t.elapsed().as_secs_f64());
        cpu_volume = Some(v);
    }
    let median = median_after_warmup(&mut times);
    let voxels = header.voxel_count() as f64;
    let fma_rate = evals as f64 * fmas_per_eval as f64 / median;

    let threads = rayon::current_num_threads();
    let (peak, isa) = fma_peak(threads);
    println!(
        "archive      {} bytes, dims {:?}, block {:?}, {} scales, arch {}→{:?}→1, ω0 {}",
        bytes.len(),
        dims,
        header.block,
        header.scales,
        arch.input_width(),
        arch.hidden,
        arch.omega0
    );
    println!("work         {evals} MLP evaluations ({:.2} per output voxel), {fmas_per_eval} FMAs + {sines_per_eval} sines each",
        evals as f64 / voxels);
    println!(
        "decode       median {:.3} s over {} runs (min {:.3}, max {:.3}), {threads} threads",
        median,
        times.len(),
        times[0],
        times[times.len() - 1]
    );
    println!(
        "speed        {:.1} M output voxels/s, {:.1} M MLP evaluations/s",
        voxels / median / 1e6,
        evals as f64 / median / 1e6
    );
    println!(
        "FMA rate     {:.1} GFMA/s in the MLP layers",
        fma_rate / 1e9
    );
    println!(
        "FMA peak     {:.1} GFMA/s measured ({isa}, {threads} threads) → decoder at {:.1}% of peak",
        peak / 1e9,
        100.0 * fma_rate / peak
    );

    // The columns that describe the archive, shared by the CPU and GPU rows.
    let case = format!(
        "{}x{}x{}x{},{},{},{}",
        dims[0], dims[1], dims[2], dims[3], args.block, args.scales, args.occupancy
    );
    super::append_csv(
        &args.csv,
        CSV_HEADER,
        &format!(
            "{case},{threads},{median:.4},{:.0},{:.0},{:.2},{:.2},{:.4},cpu",
            voxels / median,
            evals as f64 / median,
            fma_rate / 1e9,
            peak / 1e9,
            fma_rate / peak
        ),
    )?;
    if args.gpu {
        let cpu = cpu_volume.expect("at least one run");
        let gpu = strata_decoder::Gpu::new_blocking()?;
        let adapter = format!("{} ({:?})", gpu.info.name, gpu.info.backend);
        let mut dec = strata_decoder::Decoder::new(gpu)?;
        let mut times = Vec::new();
        for _ in 0..args.reps.max(1) + 1 {
            dec.reset();
            let t = Instant::now();
            dec.push(&bytes)?;
            dec.wait()?;
            times.push(t.elapsed().as_secs_f64());
        }
        let gpu_median = median_after_warmup(&mut times);
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
        let fma_rate = evals as f64 * fmas_per_eval as f64 / gpu_median;
        println!("GPU          {adapter}");
        println!(
            "GPU decode   median {gpu_median:.3} s over {} runs (read into the GPU grid; readback to the CPU {readback:.3} s more)",
            times.len()
        );
        println!(
            "GPU speed    {:.1} M output voxels/s, {:.1} M MLP evaluations/s, {:.2} GFMA/s ({:.2}× the CPU decoder)",
            voxels / gpu_median / 1e6,
            evals as f64 / gpu_median / 1e6,
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
                "{case},,{gpu_median:.4},{:.0},{:.0},{:.2},,,gpu: {}",
                voxels / gpu_median,
                evals as f64 / gpu_median,
                fma_rate / 1e9,
                adapter.replace(',', ";")
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
