//! `strata encode IN -o OUT.strata`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use strata::train::{Device, TrainOptions};
use strata::{EncodeOptions, Progress};

#[derive(clap::Args)]
pub struct Args {
    /// Input volume: .nii, .nii.gz, .npy, or raw with a .json sidecar.
    input: PathBuf,
    /// The archive to write.
    #[arg(short, long)]
    output: PathBuf,
    /// Pyramid scales.
    #[arg(long, default_value_t = 3)]
    scales: u8,
    /// Block edges: one number for a cube, or three (x y z). Default: from the volume's size.
    #[arg(long, num_args = 1..=3, value_name = "EDGE")]
    block: Vec<u16>,
    /// Width of the hidden layers.
    #[arg(long, default_value_t = 24)]
    width: u16,
    /// Hidden (sine) layers per MLP.
    #[arg(long, default_value_t = 3)]
    layers: usize,
    /// Latent code length per block.
    #[arg(long, default_value_t = 8)]
    latent: u16,
    /// Blocks per MLP, coarsest scale first (default 1 2 4; 8 16 32 for time series).
    #[arg(long, num_args = 1.., value_name = "N")]
    blocks_per_mlp: Vec<usize>,
    /// Training epochs per scale, coarsest first (the last value repeats).
    #[arg(long, num_args = 1.., default_values_t = [200.0f32, 150.0, 125.0])]
    epochs: Vec<f32>,
    /// At most this many training steps per scale.
    #[arg(long)]
    max_steps: Option<usize>,
    /// Voxel samples per MLP per training step.
    #[arg(long, default_value_t = 1024)]
    batch: usize,
    /// Learning rate at the start of each scale.
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Learning rate at the end of each scale, as a fraction of --lr (cosine decay; 1 = constant).
    #[arg(long, default_value_t = 0.05)]
    final_lr: f64,
    /// Finer-scale blocks with mean squared residual at most this (normalized units) are empty.
    #[arg(long, default_value_t = 1e-4)]
    empty_threshold: f32,
    /// Quantize weights, biases and latents to codebooks of 2^BITS values (ECNR: 9); default: f32.
    #[arg(long, value_name = "BITS", value_parser = clap::value_parser!(u8).range(1..=16))]
    bits: Option<u8>,
    /// Rate control: an archive R times smaller than the volume as float32
    /// (within ±10%); chooses the width and each scale's codebook bits.
    #[arg(long, value_name = "R", conflicts_with_all = ["width", "bits"])]
    ratio: Option<f64>,
    /// Where to train.
    #[arg(long, value_enum, default_value = "cpu")]
    device: DeviceArg,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// No progress bars.
    #[arg(long)]
    quiet: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum DeviceArg {
    Cpu,
    Gpu,
}

impl From<DeviceArg> for Device {
    fn from(d: DeviceArg) -> Device {
        match d {
            DeviceArg::Cpu => Device::Cpu,
            DeviceArg::Gpu => Device::Gpu,
        }
    }
}

/// Progress bars per scale: loss, PSNR so far, ETA.
struct Bars {
    quiet: bool,
    started: Instant,
    bar: Option<ProgressBar>,
    psnr: Vec<String>,
}

impl Progress for Bars {
    fn scale_started(&mut self, level: u8, scales: u8, steps: usize, mlps: usize, blocks: usize) {
        if self.quiet {
            return;
        }
        let bar = ProgressBar::new(steps as u64).with_style(
            ProgressStyle::with_template(
                "scale {prefix} [{bar:30}] {pos}/{len} steps {msg} ETA {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(format!(
            "{}/{scales} ({blocks} blocks, {mlps} MLPs)",
            level + 1
        ));
        self.bar = Some(bar);
        self.started = Instant::now();
    }

    fn step(&mut self, step: usize, loss: f32) {
        if let Some(bar) = &self.bar {
            bar.set_position(step as u64);
            // Loss is in block-normalized units ([-1, 1] per block).
            bar.set_message(format!("loss {loss:.2e}{}", self.so_far()));
        }
    }

    fn scale_finished(&mut self, level: u8, psnr: f64) {
        self.psnr.push(format!("{psnr:.2}"));
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        if !self.quiet {
            eprintln!(
                "scale {}: PSNR at this level {psnr:.2} dB ({:.1} s)",
                level + 1,
                self.started.elapsed().as_secs_f64()
            );
        }
    }
}

impl Bars {
    fn so_far(&self) -> String {
        if self.psnr.is_empty() {
            String::new()
        } else {
            format!(", PSNR so far {} dB", self.psnr.join(" → "))
        }
    }
}

pub fn run(args: Args) -> Result<()> {
    let volume = strata_io::read_volume(&args.input)?;
    let block = match args.block.as_slice() {
        [] => None,
        [e] => Some([*e; 3]),
        [x, y, z] => Some([*x, *y, *z]),
        _ => anyhow::bail!("--block takes one edge or three (x y z)"),
    };
    let opts = EncodeOptions {
        scales: args.scales,
        block,
        width: args.width,
        hidden_layers: args.layers,
        latent_dim: args.latent,
        blocks_per_mlp: (!args.blocks_per_mlp.is_empty()).then_some(args.blocks_per_mlp),
        epochs: args.epochs,
        empty_threshold: args.empty_threshold,
        train: TrainOptions {
            device: args.device.into(),
            batch: args.batch,
            learning_rate: args.lr,
            final_lr: args.final_lr,
            max_steps: args.max_steps,
            ..TrainOptions::default()
        },
        quantization: args.bits.map(|b| strata::Quantization {
            weight_bits: b,
            bias_bits: b,
            latent_bits: b,
        }),
        target_ratio: args.ratio,
        seed: args.seed,
        ..EncodeOptions::default()
    };
    let name = args
        .input
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let start = Instant::now();
    let mut bars = Bars {
        quiet: args.quiet,
        started: Instant::now(),
        bar: None,
        psnr: Vec::new(),
    };
    let (bytes, report) = strata::encode(&volume, &name, &opts, &mut bars)?;
    strata_io::write_file_atomically(&args.output, &bytes)
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    if !args.quiet {
        let f32_bytes = volume.data.len() as f64 * 4.0;
        eprintln!(
            "wrote {} ({} bytes, ratio {:.1} vs float32) in {:.1} s; block {:?}, widths {:?}, bits per scale {}",
            args.output.display(),
            bytes.len(),
            f32_bytes / bytes.len() as f64,
            start.elapsed().as_secs_f64(),
            report.block,
            report.widths,
            report
                .bits
                .iter()
                .map(|b| b.map_or("f32".to_string(), |b| b.to_string()))
                .collect::<Vec<_>>()
                .join("/")
        );
    }
    Ok(())
}
