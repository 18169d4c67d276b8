//! `strata bench-grid`: the grid model's training step, its two halves
//! timed apart — the synthesis (interpolation + MLP, forward and backward)
//! and the rate (context network and Laplace bits, forward and backward) —
//! on a scale of a given size.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use strata::grid::default_levels;
use strata::grid::rate::{self, ContextLayout};
use strata::grid::slab::Slab;
use strata::grid::synthesis::{self, Interpolation};
use strata_format::grid::{latent_dims, GridArchitecture};
use strata_format::synth::SplitMix;

#[derive(clap::Args)]
pub struct Args {
    /// Scale size x y z (MNI152's by default).
    #[arg(long, num_args = 3, default_values_t = [197usize, 233, 189])]
    dims: Vec<usize>,
    /// Latent levels (default: from the size).
    #[arg(long)]
    levels: Option<u8>,
    /// Hidden widths of the synthesis MLP.
    #[arg(long, num_args = 0.., default_values_t = [12u16, 12])]
    synthesis: Vec<u16>,
    /// Hidden width of the context network.
    #[arg(long, default_value_t = 4)]
    context: u8,
    /// Share of the z slices a step visits (a slab in the middle).
    #[arg(long, default_value_t = 1.0)]
    sample: f32,
    /// Timed steps of each half.
    #[arg(long, default_value_t = 3)]
    steps: usize,
    /// Append a row to this CSV file.
    #[arg(long, default_value = "bench-out/grid-step.csv")]
    csv: PathBuf,
}

pub fn run(args: Args) -> Result<()> {
    let dims = [args.dims[0], args.dims[1], args.dims[2], 1];
    let levels = args.levels.unwrap_or_else(|| default_levels(dims));
    let arch = GridArchitecture {
        levels,
        synthesis: args.synthesis.clone(),
        context_hidden: args.context,
    };
    arch.check()?;
    let shapes = arch.synthesis_shapes();
    let interp = Interpolation::new(dims, levels);
    let ldims: Vec<[usize; 4]> = (0..levels).map(|l| latent_dims(dims, l)).collect();
    let mut rng = SplitMix(5);
    // Latents and parameters of a trained model's magnitudes: small
    // integers, weights of order 1/√fan-in.
    let latents: Vec<Vec<f32>> = ldims
        .iter()
        .map(|d| {
            (0..d.iter().product::<usize>())
                .map(|_| (rng.symmetric(3.0)).round())
                .collect()
        })
        .collect();
    let synth: Vec<f32> = (0..arch.synthesis_params())
        .map(|_| rng.symmetric(0.3))
        .collect();
    let layout = ContextLayout {
        hidden: args.context as usize,
    };
    let mut context: Vec<f32> = (0..layout.len()).map(|_| rng.symmetric(0.1)).collect();
    let last = context.len() - 1;
    context[last] = 3.0;
    let voxels: usize = dims.iter().product();
    let target: Vec<f32> = (0..voxels).map(|_| rng.symmetric(0.5)).collect();
    // A slab in the middle of the scale, as a windowed training step has.
    let slab = if args.sample < 1.0 {
        let w = ((args.sample as f64 * dims[2] as f64).round() as usize).clamp(1, dims[2]);
        let z0 = (dims[2] - w) / 2;
        Slab::new(dims, &ldims, z0, z0 + w)
    } else {
        Slab::full(&ldims)
    };
    let latent_count: usize = latents.iter().map(Vec::len).sum();

    let steps = args.steps.max(1);
    let time = |f: &mut dyn FnMut()| {
        f();
        let start = Instant::now();
        for _ in 0..steps {
            f();
        }
        start.elapsed().as_secs_f64() / steps as f64
    };
    let sampled = slab.rows.as_deref();
    let visit = sampled.is_some().then_some(slab.chunks.as_slice());
    let t_synth = time(&mut || {
        std::hint::black_box(synthesis::step(
            &interp, &shapes, &synth, &latents, &target, sampled,
        ));
    });
    let t_rate = time(&mut || {
        std::hint::black_box(rate::step(layout, &context, &latents, &ldims, 4, 0, visit));
    });
    let visited = sampled.map_or(voxels, |r| r.len() * dims[0]);
    let visited_latents: f64 = latents
        .iter()
        .zip(&slab.share)
        .map(|(l, share)| l.len() as f64 * share)
        .sum();
    println!(
        "grid step    {}×{}×{} ({:.2} M voxels, {:.2} M latents in {levels} levels), synthesis {:?}, context {}, {} threads",
        dims[0],
        dims[1],
        dims[2],
        voxels as f64 / 1e6,
        latent_count as f64 / 1e6,
        args.synthesis,
        args.context,
        rayon::current_num_threads()
    );
    println!(
        "synthesis    {:.1} ms/step, {:.1} M voxels/s (a slab of {} of the slices)",
        1e3 * t_synth,
        visited as f64 / t_synth / 1e6,
        args.sample
    );
    println!(
        "rate         {:.1} ms/step, {:.1} M latents/s",
        1e3 * t_rate,
        visited_latents / t_rate / 1e6
    );
    super::append_csv(
        &args.csv,
        "dims,levels,synthesis,context,sample,threads,synthesis_ms,rate_ms",
        &format!(
            "{}x{}x{},{levels},{:?},{},{},{},{:.2},{:.2}",
            dims[0],
            dims[1],
            dims[2],
            args.synthesis,
            args.context,
            args.sample,
            rayon::current_num_threads(),
            1e3 * t_synth,
            1e3 * t_rate
        )
        .replace(", ", " "),
    )?;
    println!("csv          {}", args.csv.display());
    Ok(())
}
