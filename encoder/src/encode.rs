//! The encoder's driver, coarsest scale first and closed loop: each finer
//! scale fits the residual against what the reference decoder reconstructs
//! from the coarser sections exactly as written, so encoder and decoders
//! never drift apart.

use std::collections::HashMap;

use anyhow::{bail, Result};
use strata_format::grid::loop_filter::{Shape, MAX_CLASSES};
use strata_format::grid::{GridSection, LoopFilter, MAX_LOOP_FILTERS};
use strata_format::synth::SplitMix;
use strata_format::{
    block_count, Architecture, ArchiveWriter, Codec, LayerParams, Reconstruction, ScaleRef,
    ScaleSection, Tensor, Volume, VolumeInfo, MAX_WIDTH,
};

use crate::blocks::BlockGrid;
use crate::cluster;
use crate::grid::{self, GridOptions, RateGoal};
use crate::metrics;
use crate::pyramid::{self, Downsampling, Grid};
use crate::quantize::{self, TensorBits};
use crate::rate;
use crate::train::{self, Fitted, TrainOptions};

/// Under `--psnr`, what quantization may cost a coarser scale (dB at its
/// level, against unquantized values): the finer scales fit what is left,
/// but each dB lost here costs them bytes.
const COARSE_QUANTIZATION_LOSS: f64 = 0.05;
/// Under `--time`, grid scales share the time as voxels^this: the coarse
/// scales are the base every finer one corrects, and a share by voxels left
/// MNI152's coarsest scale 1.7 s of 120 (14–18 dB).
const GRID_TIME_EXPONENT: f64 = 0.75;
/// Under a byte goal the finest scale's loop filter may take at most this
/// share of its bytes, set aside before the latents are fitted: the
/// largest filter (either shape, 1, 2, 4 … classes) that fits. (Engine at CR 500, the
/// finest scale's filter with 4 / 16 / 32 classes: +1.2 / +1.6 / +1.8 dB
/// for 0.2 / 0.8 / 1.5% of its bytes.)
const LOOP_FILTER_SHARE: f64 = 0.02;

/// Under `--psnr`, grid scales aim this much above the PSNR asked for: the
/// last steps' λ moves and the binary16 synthesis weights cost a little.
const PSNR_MARGIN_DB: f64 = 0.15;

/// Under `--psnr` with loop filters, the finest scale is fitted again (at
/// most this many times) while it lands more than this many dB above the
/// goal, aiming at the error that overshoot leaves room for (then halving
/// the gap once a refit falls short: the filters' gain varies with the error).
const PSNR_FILTER_RETRIES: usize = 3;
const PSNR_OVERSHOOT_DB: f64 = 0.5;

/// Under `--psnr`, how many times the finest scale is trained again with
/// 1.4× wider networks when its codebooks alone cannot reach the goal.
const PSNR_WIDENINGS: usize = 2;

/// Everything `strata encode` can set.
#[derive(Clone, Debug)]
pub struct EncodeOptions {
    pub scales: u8,
    /// Block edges x, y, z; `None` picks one from the volume's size.
    pub block: Option<[u16; 3]>,
    /// Width of each of the hidden layers.
    pub width: u16,
    pub hidden_layers: usize,
    pub latent_dim: u16,
    pub omega0: f32,
    /// Blocks sharing one MLP, coarsest scale first; `None`: 1/2/4 for a
    /// static volume, 8/16/32 for a time series (the last repeats).
    pub blocks_per_mlp: Option<Vec<usize>>,
    /// Training epochs per scale, coarsest first (the last repeats); an
    /// epoch is as many samples per MLP as its blocks have voxels.
    pub epochs: Vec<f32>,
    /// Finer-scale blocks whose mean squared residual (normalized units) is
    /// at most this are empty.
    pub empty_threshold: f32,
    pub train: TrainOptions,
    /// Codebook quantization of the trained parameters; `None` stores f32.
    pub quantization: Option<Quantization>,
    /// Rate control: an archive this many times smaller than the volume as
    /// float32. Chooses the width (overriding `width`) and each scale's
    /// codebook size (overriding `quantization`); see [`crate::rate`].
    pub target_ratio: Option<f64>,
    /// Quality control: the smallest codebooks per scale that reach this
    /// PSNR (dB, over the original's range) at the finest scale, training
    /// that scale wider when they cannot. Overrides `quantization`.
    pub target_psnr: Option<f64>,
    /// Codebook fine-tuning with indices frozen (ECNR): after quantization,
    /// train this fraction of a scale's epochs more from the quantized
    /// values and move each codebook entry to the mean of its values; kept
    /// only where it raises the scale's PSNR. 0 = off.
    pub tune_codebooks: f32,
    pub seed: u64,
    /// What models each scale.
    pub model: ModelKind,
    /// How grid scales are trained (`model` = grid).
    pub grid: GridOptions,
    /// Grid scales: stop training after about this long in all.
    pub time_limit: Option<std::time::Duration>,
}

/// The model kind of the scales an encode writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelKind {
    /// ECNR's SIREN blocks.
    Siren,
    /// Entropy-coded latent grids and a synthesis MLP.
    Grid,
}

impl ModelKind {
    /// What [`Progress::scale_started`]'s `mlps` and `blocks` count, in words.
    pub fn scale_parts(self, mlps: usize, blocks: usize) -> String {
        match self {
            ModelKind::Siren => format!("{blocks} blocks, {mlps} MLPs"),
            ModelKind::Grid => format!("{mlps} latent levels, {blocks} latents"),
        }
    }
}

/// λ of a grid encode without `--ratio`: a sensible rate–distortion point.
pub const DEFAULT_GRID_LAMBDA: f64 = 2e-4;

/// Codebook sizes, as bits per index (see [`crate::quantize`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quantization {
    pub weight_bits: u8,
    pub bias_bits: u8,
    pub latent_bits: u8,
}

impl Quantization {
    /// The same index width for weights, biases and latents.
    pub fn all(bits: u8) -> Quantization {
        Quantization {
            weight_bits: bits,
            bias_bits: bits,
            latent_bits: bits,
        }
    }
}

impl Default for Quantization {
    /// ECNR's static-volume setting: 9 bits.
    fn default() -> Self {
        Quantization::all(9)
    }
}

impl Default for EncodeOptions {
    fn default() -> Self {
        EncodeOptions {
            scales: 3,
            block: None,
            width: 24,
            hidden_layers: 3,
            latent_dim: 8,
            omega0: 30.0,
            blocks_per_mlp: None,
            epochs: vec![200.0, 150.0, 125.0],
            empty_threshold: 1e-4,
            train: TrainOptions::default(),
            quantization: None,
            target_ratio: None,
            target_psnr: None,
            tune_codebooks: 0.0,
            seed: 1,
            model: ModelKind::Grid,
            grid: GridOptions::default(),
            time_limit: None,
        }
    }
}

/// Told about progress: scale started, training steps, scale finished.
/// Grid scales report their latent levels and latents as `mlps` and `blocks`.
pub trait Progress {
    fn scale_started(&mut self, level: u8, scales: u8, steps: usize, mlps: usize, blocks: usize);
    fn step(&mut self, step: usize, loss: f32);
    fn scale_finished(&mut self, level: u8, psnr: f64);
}

/// Progress that goes nowhere, for quiet runs and training groups that do not report.
impl Progress for () {
    fn scale_started(&mut self, _: u8, _: u8, _: usize, _: usize, _: usize) {}
    fn step(&mut self, _: usize, _: f32) {}
    fn scale_finished(&mut self, _: u8, _: f64) {}
}

/// What happened, per scale.
#[derive(Clone, Debug, Default)]
pub struct EncodeReport {
    pub block: [u16; 3],
    /// Per scale, coarsest first: (grid dims, occupied blocks, MLPs, PSNR of
    /// the reconstruction at that level in dB).
    pub scales: Vec<([usize; 4], usize, usize, f64)>,
    /// What the encoder reconstructs, in original units: exactly what the
    /// reference decoder gives for the archive.
    pub reconstruction: Option<Volume>,
    /// Hidden-layer width per scale (rate control chooses them).
    pub widths: Vec<u16>,
    /// Codebook index bits per scale and tensor (`None`: f32).
    pub bits: Vec<Option<TensorBits>>,
    /// Grid scales: λ per scale as training left it.
    pub lambdas: Vec<f64>,
}

/// Default block edge: 16 for volumes of a million voxels or more, 8 below;
/// never more than an axis is long.
pub fn default_block(dims: [usize; 4]) -> [u16; 3] {
    let voxels = dims[0] * dims[1] * dims[2];
    let edge = if voxels >= 1 << 20 { 16 } else { 8 };
    [0, 1, 2].map(|a| edge.min(dims[a]) as u16)
}

/// Refuses volumes with NaN or infinite samples, naming how many and where.
fn check_finite(v: &Volume) -> Result<()> {
    let mut bad = v.data.iter().enumerate().filter(|(_, x)| !x.is_finite());
    if let Some((first, value)) = bad.next() {
        let count = 1 + bad.count();
        let [x, y, z] = [
            first % v.dims[0],
            (first / v.dims[0]) % v.dims[1],
            (first / (v.dims[0] * v.dims[1])) % v.dims[2],
        ];
        let t = first / v.frame_len();
        bail!(
            "the volume has {count} non-finite samples (NaN or ±Inf); the first is {value} at x={x}, y={y}, z={z}, t={t}"
        );
    }
    Ok(())
}

/// Encodes `volume` into archive bytes.
pub fn encode(
    volume: &Volume,
    name: &str,
    opts: &EncodeOptions,
    progress: &mut dyn Progress,
) -> Result<(Vec<u8>, EncodeReport)> {
    check_finite(volume)?;
    if opts.model == ModelKind::Grid {
        return encode_grid(volume, name, opts, progress);
    }
    if opts.scales == 0 || opts.scales > strata_format::MAX_SCALES {
        bail!(
            "--scales must be between 1 and {}",
            strata_format::MAX_SCALES
        );
    }
    if opts.width == 0 || opts.hidden_layers == 0 {
        bail!("--width and the number of hidden layers must be at least 1");
    }
    let (normalized, lo, hi) = normalize(volume);
    let block = opts.block.unwrap_or_else(|| default_block(volume.dims));
    if block
        .iter()
        .any(|&b| b == 0 || b > strata_format::MAX_BLOCK_EDGE)
    {
        bail!(
            "block edges must be between 1 and {}",
            strata_format::MAX_BLOCK_EDGE
        );
    }
    let time_series = volume.dims[3] > 1;
    let per_mlp = opts.blocks_per_mlp.clone().unwrap_or(if time_series {
        vec![8, 16, 32]
    } else {
        vec![1, 2, 4]
    });
    let info = VolumeInfo {
        dims: volume.dims.map(|d| d as u32),
        scales: opts.scales,
        block,
        value_min: lo as f64,
        value_max: hi as f64,
        dtype: volume.dtype,
        spacing: volume.spacing,
    };
    let header = info.header();
    let template = Architecture {
        latent_dim: opts.latent_dim,
        hidden: vec![opts.width; opts.hidden_layers],
        omega0: opts.omega0,
    };
    let levels = pyramid::build(
        Grid::new(volume.dims, normalized),
        opts.scales,
        Downsampling::LowPass,
    );
    let bsize = block.map(|b| b as usize);
    let meta = serde_json::json!({ "name": name }).to_string();
    let codec = Codec::Best(crate::ZSTD_LEVEL);
    // Rate control: the target size, and each scale as the plan predicts it.
    let sparsity = opts.train.prune.last().copied().unwrap_or(0.0) as f64;
    if !(opts.tune_codebooks.is_finite() && opts.tune_codebooks >= 0.0) {
        bail!(
            "--tune-codebooks must be a fraction ≥ 0, got {}",
            opts.tune_codebooks
        );
    }
    let prune = &opts.train.prune;
    if prune.iter().any(|s| !(0.0..1.0).contains(s)) || prune.windows(2).any(|w| w[1] < w[0]) {
        bail!("--prune takes ascending sparsities in [0, 1), e.g. 0.2 0.3; got {prune:?}");
    }
    check_psnr_goal(opts)?;
    let plan = match opts.target_ratio {
        None => None,
        Some(ratio) => {
            if !(ratio.is_finite() && ratio >= 1.0) {
                bail!("--ratio must be a number ≥ 1, got {ratio}");
            }
            let target = (volume.data.len() as f64 * 4.0 / ratio) as u64;
            // What the metadata section will take at the end.
            let target = target.saturating_sub(meta.len() as u64);
            let scales = rate::plan_scales(&levels, bsize, &per_mlp, opts.empty_threshold);
            let header_bytes = strata_format::header_len(opts.scales as usize + 1) as u64;
            // Fail before any training when the plan cannot fit at all.
            if rate::plan_scale(
                &scales,
                0,
                scales[0],
                &template,
                header_bytes,
                target,
                sparsity,
            )
            .is_none()
            {
                bail!(
                    "ratio {ratio} is out of reach with blocks of {block:?}: even 4-wide networks are too large; try a larger --block"
                );
            }
            Some((scales, target, ratio))
        }
    };
    let mut writer = ArchiveWriter::new(info, codec);
    let mut written = strata_format::header_len(opts.scales as usize + 1) as u64;
    let mut rec = Reconstruction::new(&header);
    let mut rng = SplitMix(opts.seed);
    let mut report = EncodeReport {
        block,
        ..Default::default()
    };
    for (level, truth) in levels.iter().enumerate() {
        let level = level as u8;
        // The target: this level minus the prediction from coarser levels.
        let target = if level == 0 {
            truth.clone()
        } else {
            let (prev, dims) = rec.current();
            pyramid::residual(truth, prev, dims)
        };
        let grid = BlockGrid::cut(&target, bsize);
        debug_assert_eq!(grid.blocks.len(), block_count(&header, level));
        let occupancy: Vec<bool> = grid
            .blocks
            .iter()
            .map(|b| level == 0 || b.energy > opts.empty_threshold)
            .collect();
        let occupied: Vec<&crate::blocks::Block> = grid
            .blocks
            .iter()
            .zip(&occupancy)
            .filter(|(_, &o)| o)
            .map(|(b, _)| b)
            .collect();
        let b = per_mlp[(level as usize).min(per_mlp.len() - 1)];
        let normalized: Vec<Vec<f32>> = occupied.iter().map(|b| b.normalized()).collect();
        let features: Vec<Vec<f32>> = normalized
            .iter()
            .zip(&occupied)
            .map(|(n, b)| cluster::features(n, b.extent))
            .collect();
        let assignment = cluster::cluster(&features, b, &mut rng);
        let n_mlps = assignment.iter().max().map_or(0, |m| m + 1);
        // This scale's network width, and under rate control its budget.
        let (arch, budget) = match &plan {
            None => (template.clone(), None),
            Some((planned, target, ratio)) => {
                let actual = rate::PlannedScale {
                    occupied: occupied.len(),
                    mlps: n_mlps,
                };
                let (width, budget) =
                    rate::plan_scale(
                        planned,
                        level as usize,
                        actual,
                        &template,
                        written,
                        *target,
                        sparsity,
                    )
                        .ok_or_else(|| {
                            anyhow::anyhow!(
                                "ratio {ratio} is out of reach with blocks of {block:?}: even 4-wide networks are too large at scale {level}; try a larger --block"
                            )
                        })?;
                let arch = Architecture {
                    hidden: vec![width; opts.hidden_layers],
                    ..template.clone()
                };
                (arch, Some(budget))
            }
        };
        let epochs = opts.epochs[(level as usize).min(opts.epochs.len() - 1)];
        let mut arch = arch;
        let section = if occupied.is_empty() {
            report.bits.push(None);
            let s = empty_section(level, &arch, grid.blocks.len());
            if budget.is_some() {
                written += s.to_bytes(&header, codec).len() as u64;
            }
            s
        } else {
            let samples: Vec<train::BlockSamples> = occupied
                .iter()
                .zip(normalized)
                .map(|(b, values)| train::BlockSamples {
                    extent: b.extent,
                    values,
                })
                .collect();
            let finest = level + 1 == opts.scales;
            let mut widenings = 0;
            loop {
                let fitted = train::fit(
                    &samples,
                    &assignment,
                    n_mlps,
                    bsize,
                    &arch,
                    epochs,
                    &opts.train,
                    opts.seed.wrapping_add(level as u64),
                    progress,
                    level,
                    opts.scales,
                    None,
                )?;
                let mut sections = SectionBuilder {
                    level,
                    arch: &arch,
                    n_mlps,
                    occupancy: &occupancy,
                    assignment: &assignment,
                    ranges: Tensor::f32(occupied.iter().flat_map(|b| [b.min, b.max]).collect()),
                    fitted: &fitted,
                    quantized: HashMap::new(),
                };
                let layers = arch.layer_shapes().len();
                // Under rate control, the coded length of the section chosen.
                let mut coded_len = None;
                let bits = match (budget, opts.target_psnr) {
                    // The widest codebooks that keep the archive within budget.
                    (Some(budget), _) => {
                        let room = budget.saturating_sub(written);
                        let (bits, len) = rate::fit_bits(&sections.counts(), room, |b| {
                            sections.build(Some(b)).to_bytes(&header, codec).len() as u64
                        });
                        written += len;
                        coded_len = Some(len);
                        Some(bits)
                    }
                    // The narrowest codebooks that reach the PSNR asked for at
                    // the finest scale, or that cost the coarser scales at
                    // most COARSE_QUANTIZATION_LOSS over unquantized values.
                    (None, Some(goal)) => {
                        let mut psnr_of = |bits: Option<TensorBits>| {
                            psnr_with(&rec, &sections.build(bits.as_ref()), &truth.data)
                        };
                        let goal = if finest {
                            goal
                        } else {
                            psnr_of(None)? - COARSE_QUANTIZATION_LOSS
                        };
                        let (bits, psnr) = rate::fewest_bits(goal, |b| {
                            psnr_of(Some(TensorBits::uniform(b, layers)))
                        })?;
                        // Short of the goal even at the widest codebooks:
                        // train the finest scale again with wider networks.
                        let now = arch.hidden[0];
                        let wider = ((now as f32 * 1.4).ceil() as u16).min(MAX_WIDTH);
                        if finest && psnr < goal && widenings < PSNR_WIDENINGS && wider > now {
                            widenings += 1;
                            arch.hidden.iter_mut().for_each(|w| *w = wider);
                            continue;
                        }
                        Some(TensorBits::uniform(bits, layers))
                    }
                    (None, None) => opts
                        .quantization
                        .map(|q| TensorBits::from_quantization(q, layers)),
                };
                let mut section = sections.build(bits.as_ref());
                if opts.tune_codebooks > 0.0 && bits.is_some() {
                    let tuning = CodebookTuning {
                        samples: &samples,
                        assignment: &assignment,
                        block: bsize,
                        epochs: epochs * opts.tune_codebooks,
                        train: &opts.train,
                        seed: opts.seed.wrapping_add(level as u64),
                        scales: opts.scales,
                    };
                    let (tuned, gain) = tuning.tune(&section, &rec, &truth.data, progress)?;
                    if gain > 0.0 {
                        if let Some(len) = coded_len {
                            // Same indices and codebook sizes: only the
                            // codebook entries' bytes may differ a little.
                            written += tuned.to_bytes(&header, codec).len() as u64;
                            written -= len;
                        }
                        section = tuned;
                    }
                }
                report.bits.push(bits);
                break section;
            }
        };
        report.widths.push(arch.hidden[0]);
        writer.add_scale(&section)?;
        rec.add_scale(&section)?;
        let psnr = level_psnr(&rec, &truth.data);
        progress.scale_finished(level, psnr);
        report
            .scales
            .push((truth.dims, occupied.len(), n_mlps, psnr));
    }
    report.reconstruction = Some(rec.to_volume()?);
    writer.add_metadata(&meta)?;
    Ok((writer.finish()?, report))
}

/// The volume normalized to [0, 1] and its (min, max).
fn normalize(volume: &Volume) -> (Vec<f32>, f32, f32) {
    let (lo, hi) = volume.finite_range().expect("checked finite and non-empty");
    let span = (hi - lo) as f64;
    let scale = if span > 0.0 { 1.0 / span } else { 0.0 };
    let normalized = volume
        .data
        .iter()
        .map(|&v| ((v - lo) as f64 * scale) as f32)
        .collect();
    (normalized, lo, hi)
}

/// The pyramid loop for grid scales: each scale's target (the coarsest
/// itself, then residuals against the decoder's reconstruction so far) is
/// fitted by `grid::fit_scale`, written, and decoded back (closed loop).
/// `--psnr`: a positive number of dB, and not together with `--ratio`.
fn check_psnr_goal(opts: &EncodeOptions) -> Result<()> {
    if let Some(p) = opts.target_psnr {
        if !p.is_finite() || p <= 0.0 {
            bail!("--psnr must be a positive number of dB, got {p}");
        }
        if opts.target_ratio.is_some() {
            bail!("--psnr and --ratio cannot be asked for together");
        }
    }
    Ok(())
}

fn encode_grid(
    volume: &Volume,
    name: &str,
    opts: &EncodeOptions,
    progress: &mut dyn Progress,
) -> Result<(Vec<u8>, EncodeReport)> {
    if opts.scales == 0 || opts.scales > strata_format::MAX_SCALES {
        bail!(
            "--scales must be between 1 and {}",
            strata_format::MAX_SCALES
        );
    }
    // Grid training is hand-written CPU code; burn's GPU backend trains
    // only SIREN blocks. Saying so beats silently ignoring the flag.
    if opts.train.device == train::Device::Gpu {
        bail!("--device gpu trains the SIREN model only (--model siren); the grid model trains on the CPU");
    }
    // --time counts everything from here: the pyramid, the budgets' plan
    // and each scale's analysis and calibration, not the training alone.
    let started = std::time::Instant::now();
    let (normalized, lo, hi) = normalize(volume);
    let info = VolumeInfo {
        dims: volume.dims.map(|d| d as u32),
        scales: opts.scales,
        // Grid scales have no blocks; the header's block field is unused.
        block: [0, 1, 2].map(|a| volume.dims[a].min(16) as u16),
        value_min: lo as f64,
        value_max: hi as f64,
        dtype: volume.dtype,
        spacing: volume.spacing,
    };
    let header = info.header();
    // Lifted scales continue the latent levels' wavelet across sections
    // (subsampled instead: MNI152 at half size, no training, CR 50 / 200:
    // 45.81 / 33.12 dB → 43.07 / 31.46; engine at half size 47.91 / 34.78
    // → 46.22 / 32.66).
    let downsampling = match opts.grid.transform {
        grid::Transform::Lifting => Downsampling::Lifting,
        grid::Transform::Interpolating => Downsampling::Subsample,
    };
    let levels = pyramid::build(
        Grid::new(volume.dims, normalized),
        opts.scales,
        downsampling,
    );
    let meta = serde_json::json!({ "name": name }).to_string();
    let header_bytes = strata_format::header_len(opts.scales as usize + 1) as u64;
    check_psnr_goal(opts)?;
    // Under --psnr every scale aims at the final MSE (normalized units):
    // the finest scale's residual error is the reconstruction's.
    let mse = opts
        .target_psnr
        .map(|p| 10f64.powf(-(p + PSNR_MARGIN_DB) / 10.0));
    let target = match opts.target_ratio {
        None => None,
        Some(ratio) => {
            if !(ratio.is_finite() && ratio >= 1.0) {
                bail!("--ratio must be a number ≥ 1, got {ratio}");
            }
            let bytes = volume.data.len() as f64 * 4.0 / ratio;
            Some((bytes - meta.len() as f64 - header_bytes as f64).max(64.0))
        }
    };
    let total_voxels: usize = levels.iter().map(|g| g.data.len()).sum();
    // Each scale's share of a byte goal: what its octave's step spends.
    let budgets = target.map(|bytes| {
        let open_loop: Vec<Grid> = levels
            .iter()
            .enumerate()
            .map(|(k, g)| match k {
                0 => g.clone(),
                _ => pyramid::residual(g, &levels[k - 1].data, levels[k - 1].dims),
            })
            .collect();
        let targets: Vec<(&[f32], [usize; 4])> = open_loop
            .iter()
            .map(|g| (g.data.as_slice(), g.dims))
            .collect();
        grid::plan_budgets(&targets, &opts.grid, bytes)
    });
    let mut writer = ArchiveWriter::new(info, Codec::Best(crate::ZSTD_LEVEL));
    let mut rec = Reconstruction::new(&header);
    let mut written = 0f64;
    // Under --psnr, λ starts at the slope MSE(bits) has there: about
    // 2·ln 2·MSE per bit per voxel (6 dB per bit).
    let mut lambda = mse.map_or(DEFAULT_GRID_LAMBDA, |m| 2.0 * std::f64::consts::LN_2 * m);
    let mut report = EncodeReport {
        block: header.block,
        ..Default::default()
    };
    for (level, truth) in levels.iter().enumerate() {
        let level = level as u8;
        let finest = level + 1 == opts.scales;
        let target_grid = if level == 0 {
            truth.clone()
        } else {
            let (prev, dims) = rec.current();
            pyramid::residual(truth, prev, dims)
        };
        // The finest scale takes what the coarser ones left, less what its
        // loop filter may take (a coarser scale's is in `written`).
        let bytes = target.zip(budgets.as_ref()).map(|(t, b)| {
            if finest {
                (t - written).max(64.0)
            } else {
                b[level as usize].min(0.5 * t)
            }
        });
        let filter_bytes = match bytes {
            _ if !opts.grid.loop_filter => 0,
            Some(b) if finest => Shape::ALL
                .into_iter()
                .flat_map(|s| (0..=MAX_CLASSES.ilog2()).map(move |k| (s, 1 << k)))
                .map(|(s, k)| LoopFilter::stored_len(s, k, 1))
                .filter(|&n| n as f64 <= b * LOOP_FILTER_SHARE)
                .max()
                .unwrap_or(0),
            _ => usize::MAX,
        };
        let bytes = bytes.map(|b| if finest { b - filter_bytes as f64 } else { b });
        let time = opts.time_limit.map(|limit| {
            let left = limit.saturating_sub(started.elapsed());
            let weight = |n: usize| (n as f64).powf(GRID_TIME_EXPONENT);
            let rest: f64 = levels[level as usize..]
                .iter()
                .map(|g| weight(g.data.len()))
                .sum();
            left.mul_f64(weight(truth.data.len()) / rest)
        });
        let mut grid_opts = match bytes {
            Some(b) => grid::fit_architecture(&opts.grid, truth.dims, b),
            None => opts.grid.clone(),
        };
        // Every scale gets the schedule the whole pyramid's size calls for;
        // under loop filters none: they take back what training the linear
        // synthesis adds (MNI152 --ratio 200: 42.60 dB untrained, 42.58
        // after 150 steps in five times the time).
        grid_opts.steps.get_or_insert(if opts.grid.loop_filter {
            0
        } else {
            grid::default_steps(total_voxels)
        });
        // The scale's fit: the section and λ as its training left them,
        // with its loop filter fitted to what the level decodes to
        // unfiltered.
        let mut fit_level = |mse: Option<f64>| -> Result<(GridSection, f64)> {
            let fitted = grid::fit_scale(
                &target_grid.data,
                truth.dims,
                level,
                opts.scales,
                &grid_opts,
                RateGoal {
                    lambda,
                    bytes,
                    mse,
                    time,
                },
                opts.seed.wrapping_add(level as u64),
                progress,
            )?;
            let mut section = fitted.section;
            if opts.grid.loop_filter {
                let mut unfiltered = rec.clone();
                unfiltered.add_scale(&section)?;
                // Every scale may chain two filters where the second pays
                // for its bytes; on the finest it adds ~0.1 s to MNI152's
                // --ratio 200 decode (1.07 s in all) for ~0.02 dB.
                section.loop_filters = grid::loop_filter::fit_chain(
                    unfiltered.current().0,
                    &truth.data,
                    truth.dims,
                    fitted.lambda,
                    filter_bytes,
                    finest,
                    MAX_LOOP_FILTERS,
                );
            }
            Ok((section, fitted.lambda))
        };
        let (mut section, mut fitted_lambda) = fit_level(mse)?;
        // Under --psnr the step is picked for the goal before the loop
        // filter adds its dB: the finest scale aims at a larger error while
        // it lands well above the goal (the modified phantom at --psnr 45:
        // 48.3 dB at first).
        let filtered = finest && opts.grid.loop_filter;
        if let (Some(goal), Some(aim), true) = (opts.target_psnr, mse, filtered) {
            let goal = goal + PSNR_MARGIN_DB;
            let mut got = psnr_with(&rec, &section, &truth.data)?;
            // The analysis errors aimed at that reached the goal (the last
            // kept) and that missed it: the next aim is the secant's until
            // one misses, then halfway (in dB) between them.
            let (mut reached, mut missed): (f64, Option<f64>) = (aim, None);
            for _ in 0..PSNR_FILTER_RETRIES {
                if got < goal + PSNR_OVERSHOOT_DB {
                    break;
                }
                let next = match missed {
                    Some(m) => (reached * m).sqrt(),
                    None => reached * 10f64.powf((got - goal) / 10.0),
                };
                let (s, l) = fit_level(Some(next))?;
                let g = psnr_with(&rec, &s, &truth.data)?;
                if g < goal - PSNR_MARGIN_DB {
                    missed = Some(next);
                    continue;
                }
                reached = next;
                (section, fitted_lambda, got) = (s, l, g);
            }
        }
        lambda = fitted_lambda;
        writer.add_scale(&section)?;
        let coded = section.to_bytes(&header).len() as f64;
        written += coded;
        if std::env::var_os("STRATA_DEBUG_RATE").is_some() {
            eprintln!(
                "grid scale {level}: budget {bytes:?} coded {coded} λ {lambda:.3e} arch {:?}/{}",
                section.arch.synthesis, section.arch.context_hidden
            );
        }
        rec.add_scale(&section)?;
        let psnr = level_psnr(&rec, &truth.data);
        progress.scale_finished(level, psnr);
        report.scales.push((truth.dims, 0, 0, psnr));
        report
            .widths
            .push(section.arch.synthesis.first().copied().unwrap_or(0));
        report.bits.push(None);
        report.lambdas.push(lambda);
    }
    report.reconstruction = Some(rec.to_volume()?);
    writer.add_metadata(&meta)?;
    Ok((writer.finish()?, report))
}

/// A trained scale's section at any codebook widths; each tensor is
/// quantized once per width however often the search asks for it.
struct SectionBuilder<'a> {
    level: u8,
    arch: &'a Architecture,
    n_mlps: usize,
    occupancy: &'a [bool],
    assignment: &'a [usize],
    ranges: Tensor,
    fitted: &'a Fitted,
    quantized: HashMap<(usize, u8), Tensor>,
}

impl SectionBuilder<'_> {
    /// A tensor's values and pruning mask, in [`TensorBits`] slot order.
    fn values(fitted: &Fitted, slot: usize) -> (&[f32], Option<&[bool]>) {
        match slot {
            0 => (&fitted.latents, None),
            s if s % 2 == 1 => {
                let l = (s - 1) / 2;
                (&fitted.layers[l].0, fitted.masks[l].0.as_deref())
            }
            s => {
                let l = (s - 2) / 2;
                (&fitted.layers[l].1, fitted.masks[l].1.as_deref())
            }
        }
    }

    /// Values kept (not pruned) per tensor, in slot order.
    fn counts(&self) -> Vec<usize> {
        (0..1 + 2 * self.fitted.layers.len())
            .map(|s| match SectionBuilder::values(self.fitted, s) {
                (_, Some(mask)) => mask.iter().filter(|&&k| k).count(),
                (values, None) => values.len(),
            })
            .collect()
    }

    fn tensor(&mut self, slot: usize, bits: Option<u8>) -> Tensor {
        let fitted = self.fitted;
        let (values, mask) = SectionBuilder::values(fitted, slot);
        match bits {
            None => quantize::tensor(values, mask, None),
            Some(b) => self
                .quantized
                .entry((slot, b))
                .or_insert_with(|| quantize::tensor(values, mask, Some(b)))
                .clone(),
        }
    }

    fn build(&mut self, bits: Option<&TensorBits>) -> ScaleSection {
        let width = |slot: usize| bits.map(|b| b.slots()[slot]);
        let layers = (0..self.fitted.layers.len())
            .map(|l| LayerParams {
                weights: self.tensor(1 + 2 * l, width(1 + 2 * l)),
                biases: self.tensor(2 + 2 * l, width(2 + 2 * l)),
            })
            .collect();
        ScaleSection {
            level: self.level,
            arch: self.arch.clone(),
            n_mlps: self.n_mlps as u32,
            occupancy: self.occupancy.to_vec(),
            assignment: self.assignment.iter().map(|&a| a as u32).collect(),
            ranges: self.ranges.clone(),
            latents: self.tensor(0, width(0)),
            layers,
        }
    }
}

/// PSNR of the reconstruction so far against its level's `truth`, in
/// normalized units (the range is 1 by construction).
fn level_psnr(rec: &Reconstruction, truth: &[f32]) -> f64 {
    metrics::psnr(1.0, metrics::quality(truth, rec.current().0).rmse)
}

/// The PSNR `level_psnr` would give once `section` is added to `rec`.
fn psnr_with<'a>(
    rec: &Reconstruction,
    section: impl Into<ScaleRef<'a>>,
    truth: &[f32],
) -> Result<f64> {
    let mut r = rec.clone();
    r.add_scale(section)?;
    Ok(level_psnr(&r, truth))
}

/// Codebook fine-tuning of one quantized scale section (see
/// `EncodeOptions::tune_codebooks`).
struct CodebookTuning<'a> {
    samples: &'a [train::BlockSamples],
    assignment: &'a [usize],
    block: [usize; 3],
    epochs: f32,
    train: &'a TrainOptions,
    seed: u64,
    scales: u8,
}

/// Fine-tuning starts gentler than training: this fraction of its peak
/// learning rate.
const TUNING_LR: f64 = 0.1;

impl CodebookTuning<'_> {
    /// The section with tuned codebooks (indices, masks, sizes unchanged)
    /// and what it gains in PSNR at this level over `section`, in dB.
    fn tune(
        &self,
        section: &ScaleSection,
        rec: &Reconstruction,
        truth: &[f32],
        progress: &mut dyn Progress,
    ) -> Result<(ScaleSection, f64)> {
        let start = Fitted {
            layers: section
                .layers
                .iter()
                .map(|l| (l.weights.dense(), l.biases.dense()))
                .collect(),
            masks: section
                .layers
                .iter()
                .map(|l| (l.weights.mask.clone(), l.biases.mask.clone()))
                .collect(),
            latents: section.latents.dense(),
        };
        let opts = TrainOptions {
            learning_rate: self.train.learning_rate * TUNING_LR,
            prune: Vec::new(),
            ..self.train.clone()
        };
        let tuned = train::fit(
            self.samples,
            self.assignment,
            section.n_mlps as usize,
            self.block,
            &section.arch,
            self.epochs,
            &opts,
            self.seed ^ 0x7475_6e65,
            progress,
            section.level,
            self.scales,
            Some(&start),
        )?;
        let mut out = section.clone();
        out.latents = quantize::retune(&section.latents, &tuned.latents);
        for (layer, (w, b)) in out.layers.iter_mut().zip(&tuned.layers) {
            layer.weights = quantize::retune(&layer.weights, w);
            layer.biases = quantize::retune(&layer.biases, b);
        }
        let gain = psnr_with(rec, &out, truth)? - psnr_with(rec, section, truth)?;
        Ok((out, gain))
    }
}

/// A finer scale with nothing worth fitting: all blocks empty.
fn empty_section(level: u8, arch: &Architecture, blocks: usize) -> ScaleSection {
    ScaleSection {
        level,
        arch: arch.clone(),
        n_mlps: 0,
        occupancy: vec![false; blocks],
        assignment: Vec::new(),
        ranges: Tensor::f32(Vec::new()),
        latents: Tensor::f32(Vec::new()),
        layers: arch
            .layer_shapes()
            .iter()
            .map(|_| LayerParams {
                weights: Tensor::f32(Vec::new()),
                biases: Tensor::f32(Vec::new()),
            })
            .collect(),
    }
}
