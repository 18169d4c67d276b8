//! Strata's side: a configuration is a set of `strata encode` options given
//! as one string (`--strata "--width 16 --block 8"`); it is encoded with the
//! `strata` library, the archive decoded with the reference decoder, and the
//! result measured like `strata eval` does.

use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Parser;
use strata::train::{Device, TrainOptions};
use strata::{EncodeOptions, Progress, Quantization};
use strata_format::{Archive, Limits, Volume};

use crate::codec::ratio;
use crate::Row;

/// The `strata encode` options a configuration may set (same names and
/// defaults as the command line).
#[derive(Parser, Debug, Clone)]
#[command(name = "--strata", no_binary_name = true)]
pub struct StrataConfig {
    #[arg(long, default_value_t = 3)]
    scales: u8,
    /// One edge for a cube, or three (x y z).
    #[arg(long, num_args = 1..=3)]
    block: Vec<u16>,
    #[arg(long, default_value_t = 24)]
    width: u16,
    #[arg(long, default_value_t = 3)]
    layers: usize,
    #[arg(long, default_value_t = 8)]
    latent: u16,
    #[arg(long, num_args = 1..)]
    blocks_per_mlp: Vec<usize>,
    #[arg(long, num_args = 1.., default_values_t = [200.0f32, 150.0, 125.0])]
    epochs: Vec<f32>,
    #[arg(long)]
    max_steps: Option<usize>,
    #[arg(long, default_value_t = 1024)]
    batch: usize,
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    #[arg(long, default_value_t = 0.05)]
    final_lr: f64,
    #[arg(long, default_value_t = 1e-4)]
    empty_threshold: f32,
    /// Codebooks of 2^BITS values for weights, biases and latents; default: f32.
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=16))]
    bits: Option<u8>,
    #[arg(long, value_enum, default_value = "cpu")]
    device: DeviceArg,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// A target ratio for the encoder's rate control, once it has one.
    #[arg(long)]
    ratio: Option<f64>,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum DeviceArg {
    Cpu,
    Gpu,
}

/// One Strata configuration: its label (the arguments as given) and the
/// options it stands for.
#[derive(Clone, Debug)]
pub struct Config {
    pub label: String,
    pub options: EncodeOptions,
}

/// The configurations run when none is given: the default architecture and
/// a narrower and a wider one, quantized to 9 bits like ECNR, for three
/// different ratios.
pub const DEFAULT_CONFIGS: [&str; 3] = ["--width 16 --bits 9", "--bits 9", "--width 32 --bits 9"];

impl Config {
    /// Parses `strata encode`-style arguments, e.g. "--width 16 --block 8".
    pub fn parse(args: &str) -> Result<Config> {
        let c = StrataConfig::try_parse_from(args.split_whitespace())
            .with_context(|| format!("--strata \"{args}\""))?;
        if c.ratio.is_some() {
            bail!("--strata \"{args}\": the encoder has no rate control (--ratio) yet");
        }
        let block = match c.block.as_slice() {
            [] => None,
            [e] => Some([*e; 3]),
            [x, y, z] => Some([*x, *y, *z]),
            _ => bail!("--strata \"{args}\": --block takes one edge or three (x y z)"),
        };
        let label = args.split_whitespace().collect::<Vec<_>>().join(" ");
        Ok(Config {
            label: if label.is_empty() {
                "defaults".into()
            } else {
                label
            },
            options: EncodeOptions {
                scales: c.scales,
                block,
                width: c.width,
                hidden_layers: c.layers,
                latent_dim: c.latent,
                blocks_per_mlp: (!c.blocks_per_mlp.is_empty()).then_some(c.blocks_per_mlp),
                epochs: c.epochs,
                empty_threshold: c.empty_threshold,
                train: TrainOptions {
                    device: match c.device {
                        DeviceArg::Cpu => Device::Cpu,
                        DeviceArg::Gpu => Device::Gpu,
                    },
                    batch: c.batch,
                    learning_rate: c.lr,
                    final_lr: c.final_lr,
                    max_steps: c.max_steps,
                    ..TrainOptions::default()
                },
                quantization: c.bits.map(|b| Quantization {
                    weight_bits: b,
                    bias_bits: b,
                    latent_bits: b,
                }),
                seed: c.seed,
                ..EncodeOptions::default()
            },
        })
    }
}

/// Progress on stderr: one line per scale, and one per tenth of its steps.
struct Lines {
    label: String,
    steps: usize,
    started: Instant,
}

impl Progress for Lines {
    fn scale_started(&mut self, level: u8, scales: u8, steps: usize, mlps: usize, blocks: usize) {
        self.steps = steps;
        self.started = Instant::now();
        eprintln!(
            "  strata [{}] scale {}/{scales}: {blocks} blocks, {mlps} MLPs, {steps} steps",
            self.label,
            level + 1
        );
    }

    fn step(&mut self, step: usize, loss: f32) {
        let tenth = (self.steps / 10).max(1);
        if step > 0 && step.is_multiple_of(tenth) {
            eprintln!(
                "    step {step}/{} loss {loss:.2e} ({:.0} s)",
                self.steps,
                self.started.elapsed().as_secs_f64()
            );
        }
    }

    fn scale_finished(&mut self, level: u8, psnr: f64) {
        eprintln!(
            "  strata [{}] scale {}: {psnr:.2} dB at this level ({:.1} s)",
            self.label,
            level + 1,
            self.started.elapsed().as_secs_f64()
        );
    }
}

/// Encodes `volume` with `config`, decodes the archive with the reference
/// decoder and measures it.
pub fn run(volume: &Volume, name: &str, config: &Config) -> Result<Row> {
    let mut progress = Lines {
        label: config.label.clone(),
        steps: 0,
        started: Instant::now(),
    };
    let t = Instant::now();
    let (bytes, _) = strata::encode(volume, name, &config.options, &mut progress)
        .with_context(|| format!("strata [{}]", config.label))?;
    let encode_seconds = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let archive = Archive::read(&bytes, &Limits::default())?;
    if let Some(e) = archive.first_error() {
        bail!("strata [{}] wrote an unreadable archive: {e}", config.label);
    }
    let decoded = strata_format::decode(&archive.header, &archive.usable_scales(), None)?;
    let decode_seconds = t.elapsed().as_secs_f64();
    if decoded.dims != volume.dims {
        bail!(
            "strata decoded dims {:?}, expected {:?}",
            decoded.dims,
            volume.dims
        );
    }
    let q = strata::metrics::quality(&volume.data, &decoded.data);
    Ok(Row {
        codec: "strata".into(),
        config: config.label.clone(),
        ratio: ratio(volume.data.len(), bytes.len()),
        psnr: q.psnr,
        max_abs_error: q.max_abs_error,
        encode_seconds,
        decode_seconds,
    })
}
