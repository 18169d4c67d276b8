//! The encoder's options as command-line arguments (clap), shared by
//! `strata encode` and the benchmark's `--strata "ARGS"` configurations so
//! both take the same flags with the same defaults.

use anyhow::{bail, Result};

use crate::grid::{GridOptions, Transform};
use crate::train::{Device, TrainOptions};
use crate::{EncodeOptions, ModelKind, Quantization};

#[derive(clap::Args, Clone, Debug)]
pub struct EncodeArgs {
    /// Pyramid scales.
    #[arg(long, default_value_t = 3)]
    scales: u8,
    /// Block edges: one number for a cube, or three (x y z). Default: from the volume's size.
    #[arg(long, num_args = 1..=3, value_name = "EDGE")]
    block: Vec<u16>,
    /// Width of the hidden layers.
    #[arg(long, default_value_t = 24)]
    pub width: u16,
    /// Hidden (sine) layers per MLP.
    #[arg(long, default_value_t = 3)]
    layers: usize,
    /// Latent code length per block.
    #[arg(long, default_value_t = 8)]
    latent: u16,
    /// Blocks per MLP, coarsest scale first (default 1 2 4; 8 16 32 for time series).
    #[arg(long, num_args = 1.., value_name = "N")]
    blocks_per_mlp: Vec<usize>,
    /// A quick preview: 30/20/15 epochs (about 1/6 of the default
    /// training) and 9-bit codebooks unless --bits, --ratio or --psnr says otherwise.
    #[arg(long, conflicts_with = "epochs")]
    pub fast: bool,
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
    #[arg(long, default_value_t = 3e-3)]
    lr: f64,
    /// Learning rate at the end of each scale, as a fraction of --lr (cosine decay; 1 = constant).
    #[arg(long, default_value_t = 0.05)]
    final_lr: f64,
    /// Finer-scale blocks with mean squared residual at most this (normalized units) are empty.
    #[arg(long, default_value_t = 1e-4)]
    empty_threshold: f32,
    /// Quantize weights, biases and latents to codebooks of 2^BITS values (ECNR: 9); default: f32.
    #[arg(long, value_name = "BITS", value_parser = clap::value_parser!(u8).range(1..=16))]
    pub bits: Option<u8>,
    /// The latent codes' codebook bits, when they should differ from --bits.
    #[arg(long, value_name = "BITS", requires = "bits", value_parser = clap::value_parser!(u8).range(1..=16))]
    latent_bits: Option<u8>,
    /// Rate control: an archive R times smaller than the volume as float32
    /// (within ±10%); chooses the width and each scale's codebook bits.
    #[arg(long, value_name = "R", conflicts_with_all = ["width", "bits"])]
    pub ratio: Option<f64>,
    /// Quality control: the smallest codebooks per scale that reach P dB
    /// (PSNR over the value range) on the input; the finest scale is
    /// trained again up to twice, 1.4× wider each time, when they cannot.
    #[arg(long, value_name = "P", conflicts_with_all = ["ratio", "bits"])]
    pub psnr: Option<f64>,
    /// Block-guided pruning: the sparsity of the prunable weights and
    /// biases after each round, ascending (ECNR's static setting: 0.2 0.3).
    #[arg(long, num_args = 1.., value_name = "S")]
    prune: Vec<f32>,
    /// Codebook fine-tuning with indices frozen: after quantization, this
    /// fraction of a scale's epochs more from the quantized values, each
    /// codebook entry moved to the mean of its values; kept where it helps.
    #[arg(long, value_name = "F", default_value_t = 0.0)]
    tune_codebooks: f32,
    /// Where to train.
    #[arg(long, value_enum, default_value = "cpu")]
    device: DeviceArg,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The model of each scale: latent grids under a learned entropy model,
    /// or ECNR's SIREN blocks (the options above are SIREN's).
    #[arg(long, value_enum, default_value = "grid")]
    pub model: ModelArg,
    /// Grid model: training steps per scale, counted in whole-scale steps
    /// (each slab step counts its share); `--time` overrides it. Default:
    /// none with loop filters (they take back what training adds); without
    /// them 1000, fewer on large volumes (see `grid::default_steps`).
    #[arg(long)]
    grid_steps: Option<usize>,
    /// Grid model: latent levels per scale (default: from the scale's size, at most 7).
    #[arg(long)]
    grid_levels: Option<u8>,
    /// Grid model: hidden widths of the synthesis MLP (none: the levels'
    /// weighted sum, the default; e.g. `12 12` for two hidden layers).
    #[arg(long, num_args = 0..)]
    grid_synthesis: Vec<u16>,
    /// Grid model: hidden width of the context network (0: linear).
    #[arg(long, default_value_t = 4)]
    grid_context: u8,
    /// Grid model: Adam learning rate (see `GridOptions::lr`).
    #[arg(long, default_value_t = 3e-3)]
    grid_lr: f32,
    /// Grid model: share of a scale's z slices each training step visits (a
    /// random slab; 1: whole-scale steps). Default: slabs of about 0.5 M voxels.
    #[arg(long)]
    grid_sample: Option<f32>,
    /// Grid model: what the latent levels hold — a 5/3 wavelet's details
    /// (lifting) or what the coarser levels leave at their samples
    /// (interpolating, the archives before it).
    #[arg(long, value_enum, default_value = "lifting")]
    grid_transform: TransformArg,
    /// Grid model: whether each scale ends with a loop filter (least-squares
    /// filters per activity class over the scale's reconstruction).
    #[arg(long, value_enum, default_value = "on")]
    grid_loop_filter: Switch,
    /// Grid model: stop training after about this many seconds in all.
    #[arg(long, value_name = "SECONDS")]
    time: Option<f64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Switch {
    On,
    Off,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TransformArg {
    Lifting,
    Interpolating,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ModelArg {
    Grid,
    Siren,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
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

impl EncodeArgs {
    /// The options these arguments stand for.
    pub fn options(&self) -> Result<EncodeOptions> {
        let args = self.clone();
        let block = match args.block.as_slice() {
            [] => None,
            [e] => Some([*e; 3]),
            [x, y, z] => Some([*x, *y, *z]),
            _ => bail!("--block takes one edge or three (x y z)"),
        };
        Ok(EncodeOptions {
            scales: args.scales,
            block,
            width: args.width,
            hidden_layers: args.layers,
            latent_dim: args.latent,
            blocks_per_mlp: (!args.blocks_per_mlp.is_empty()).then_some(args.blocks_per_mlp),
            epochs: if args.fast {
                vec![30.0, 20.0, 15.0]
            } else {
                args.epochs
            },
            empty_threshold: args.empty_threshold,
            train: TrainOptions {
                device: args.device.into(),
                batch: args.batch,
                learning_rate: args.lr,
                final_lr: args.final_lr,
                max_steps: args.max_steps,
                prune: args.prune,
                ..TrainOptions::default()
            },
            quantization: args
                .bits
                .or((args.fast && args.ratio.is_none() && args.psnr.is_none()).then_some(9))
                .map(Quantization::all)
                .map(|q| Quantization {
                    latent_bits: args.latent_bits.unwrap_or(q.latent_bits),
                    ..q
                }),
            target_ratio: args.ratio,
            target_psnr: args.psnr,
            tune_codebooks: args.tune_codebooks,
            seed: args.seed,
            model: match args.model {
                ModelArg::Grid => ModelKind::Grid,
                ModelArg::Siren => ModelKind::Siren,
            },
            grid: GridOptions {
                levels: args.grid_levels,
                synthesis: args.grid_synthesis,
                context_hidden: args.grid_context,
                steps: args.grid_steps,
                lr: args.grid_lr,
                sample: args.grid_sample.map(|s| s.clamp(1e-3, 1.0)),
                transform: match args.grid_transform {
                    TransformArg::Lifting => Transform::Lifting,
                    TransformArg::Interpolating => Transform::Interpolating,
                },
                loop_filter: args.grid_loop_filter == Switch::On,
                ..GridOptions::default()
            },
            time_limit: match args.time {
                None => None,
                Some(t) if t.is_finite() && t > 0.0 => Some(std::time::Duration::from_secs_f64(t)),
                Some(t) => bail!("--time takes a positive number of seconds, got {t}"),
            },
            ..EncodeOptions::default()
        })
    }
}
