//! `strata bench-train`: voxel-samples per second through forward +
//! backward + Adam update for the default architecture.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use strata::train::{self, BlockSamples, Device, TrainOptions};
use strata_format::synth::{default_architecture, SplitMix};

#[derive(clap::Args)]
pub struct Args {
    /// MLPs trained at once.
    #[arg(long, default_value_t = 64)]
    mlps: usize,
    /// Samples per MLP per step.
    #[arg(long, default_value_t = 4096)]
    batch: usize,
    /// Timed steps (after 5 warm-up steps).
    #[arg(long, default_value_t = 40)]
    steps: usize,
    #[arg(long, value_enum, default_value = "cpu")]
    device: strata::args::DeviceArg,
    /// Append a row to this CSV file.
    #[arg(long, default_value = "bench-out/train.csv")]
    csv: PathBuf,
}

pub fn run(args: Args) -> Result<()> {
    let arch = default_architecture();
    let size = [16usize; 3];
    let mut rng = SplitMix(9);
    let blocks: Vec<BlockSamples> = (0..args.mlps)
        .map(|_| BlockSamples {
            extent: size,
            values: (0..4096).map(|_| rng.symmetric(1.0)).collect(),
        })
        .collect();
    let assignment: Vec<usize> = (0..args.mlps).collect();
    // Time a short run and a long one; the difference is `steps` steps,
    // free of set-up and warm-up costs.
    let time = |steps: usize| -> Result<(f64, TrainOptions)> {
        let opts = TrainOptions {
            device: args.device.into(),
            batch: args.batch,
            max_steps: Some(steps),
            ..TrainOptions::default()
        };
        let start = Instant::now();
        // Enough epochs that max_steps is what stops it.
        train::fit(
            &blocks,
            &assignment,
            args.mlps,
            size,
            &arch,
            1e6,
            &opts,
            1,
            &mut (),
            0,
            1,
            None,
        )?;
        Ok((start.elapsed().as_secs_f64(), opts))
    };
    let (short, _) = time(5)?;
    let (long, opts) = time(5 + args.steps)?;
    let secs = (long - short).max(1e-9);
    let samples = (args.steps * args.mlps * args.batch) as f64;
    let rate = samples / secs;
    let total = short + long;
    let (s0, s1) = (0usize, args.steps);
    let device = match opts.device {
        Device::Cpu => "cpu (burn-flex)",
        Device::Gpu => "gpu (burn-wgpu)",
    };
    println!(
        "train        {} MLPs × {} samples/step, arch {}→{:?}→1, {device}",
        args.mlps,
        args.batch,
        arch.input_width(),
        arch.hidden
    );
    println!("speed        {:.3} M voxel-samples/s (forward + backward + Adam), {:.1} ms/step; total {total:.1} s", rate / 1e6, 1e3 * secs / (s1 - s0).max(1) as f64);
    super::append_csv(
        &args.csv,
        "device,mlps,batch,steps,samples_per_s,ms_per_step",
        &format!(
            "{device},{},{},{},{rate:.0},{:.2}",
            args.mlps,
            args.batch,
            s1 - s0,
            1e3 * secs / (s1 - s0).max(1) as f64
        ),
    )?;
    println!("csv          {}", args.csv.display());
    Ok(())
}
