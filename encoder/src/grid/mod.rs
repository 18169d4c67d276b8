//! The `grid` model kind's encoder: for one pyramid scale, integer latent
//! grids, a synthesis MLP and a context network trained together on
//! MSE + λ·bits per voxel (Cool-chic / C3's recipe in 3D), by hand-written
//! forward and backward passes ([`synthesis`], [`rate`]) and Adam.
//! Quantization proxy: uniform noise, then straight-through rounding.

mod init;
mod lanes;
pub mod loop_filter;
pub mod rate;
pub mod slab;
pub mod synthesis;

use std::time::{Duration, Instant};

use anyhow::Result;
use strata_format::grid::entropy::{chunks, is_coded_at, Coder, CONTEXT_INPUTS, WEIGHT_FRAC};
use strata_format::grid::{latent_dims, GridArchitecture, GridSection, Lifting, MAX_LATENT_LEVELS};
use strata_format::synth::SplitMix;

use crate::encode::Progress;
pub use init::Transform;
use init::{Analysis, Rdo};
use rate::{ContextLayout, ContextModel};
use slab::Slab;

/// The context network's parameters learn from one latent chunk in this
/// many per step (see `rate::step`).
const CONTEXT_PARAM_EVERY: usize = 4;

/// λ steering under `--ratio`: every this many steps, ln λ moves by
/// STEER_GAIN·e + STEER_DAMPING·(e − e_before), e = ln(estimate / goal), at
/// most ±0.3 — more on short schedules, so that the moves can span
/// e^±STEER_SPAN in all (λ carried from a coarser scale can be 100× off).
/// The damping term stops the swings a plain integrator gives: the size
/// answers λ tens of steps late (seen on engine at half size: λ swung
/// from 7e-6 to 1e-2 and back, the size ending 35% under the goal).
const STEER_EVERY: usize = 5;
/// Steering starts after a fifth of the steps: before, the context model
/// is still learning and the bits fall whatever λ does, and an integrator
/// that answers them drove λ up ×10⁴ and the model into the ground (MNI152
/// at a quarter size, CR 113 asked: 17.9 dB at CR 160; from a fifth on and
/// with λ bounded: 28.6 dB at CR 117).
const STEER_FROM: usize = 5;
/// Under `--ratio` λ stays in this range: past 1e-2 (an MSE slope of ~19
/// dB) the latents collapse to zero and do not come back in the steps left.
/// Under `--psnr` it may go higher: a scale whose residual is already under
/// the goal should spend next to nothing.
const LAMBDA_RANGE: (f64, f64) = (1e-9, 0.5);
const STEER_GAIN: f64 = 0.7;
const STEER_DAMPING: f64 = 1.5;
/// During the noise phase the rounded latents are measured under a context
/// model trained on noisy ones, which it will shed once it trains on
/// integers: the section then shrinks by ~15–20% (engine at half size).
const NOISE_PHASE_SLACK: f64 = 1.15;
/// Under `--psnr`, the MSE steered on decays by this factor per step.
const MSE_SMOOTHING: f64 = 0.9;
const STEER_SPAN: f64 = 6.0;
/// Under a byte goal the first step Δ is the one whose latents' order-0
/// entropy is this multiple of the latents' budget (the context model codes
/// them in fewer bits: MNI152 at half size, CR 37.5, 0.89 of order-0); the
/// calibration then corrects it on the context model's own bits.
const INIT_BITS_FACTOR: f64 = 1.12;

/// The context model's own training on whole passes over the latents
/// (sampled under `--time`, [`CONTEXT_PASS_LATENTS`]): this many first,
/// this many after each change of step, and this many after the
/// synthesis's training when the latents stayed put.
/// (MNI152 at half size, no training, CR 50 / 200: 30 and 12 passes gave
/// 44.61 @ 51.1 / 30.43 @ 204.7 dB, 90 and 36 give 45.35 @ 49.7 / 31.16 @
/// 201.4: the fit was short of converging.)
const CONTEXT_FIRST_PASSES: usize = 90;
const CONTEXT_PASSES: usize = 36;
const CONTEXT_LR: f32 = 3e-2;
/// The step's correction under a byte goal: at most this many new steps,
/// stopping once the bits are within e^±tolerance of the budget (else the
/// step of the last few measured nearest it is kept).
const CALIBRATION_ROUNDS: usize = 8;
const CALIBRATION_TOLERANCE: f64 = 0.03;
/// Of the measured steps, the last this many compete for nearest the budget.
const CALIBRATION_RECENT: usize = 3;

/// How a grid scale is trained.
#[derive(Clone, Debug)]
pub struct GridOptions {
    /// Latent levels; `None`: as many as halve the scale down to ~4 samples
    /// along its longest axis, at most 7.
    pub levels: Option<u8>,
    pub synthesis: Vec<u16>,
    pub context_hidden: u8,
    /// Adam steps per scale, in whole-scale steps (slab steps are counted
    /// by their share); under a time limit only the schedule's first guess.
    /// `None`: [`default_steps`] (`encode` gives every scale the whole
    /// pyramid's; a scale trained alone takes its own voxels'). 0: no
    /// synthesis training — the analysis and the fitted context model alone.
    pub steps: Option<usize>,
    /// Adam's learning rate, cosine-annealed. From the pass-through start a
    /// small one: at 1e-2 a short schedule broke it and did not recover
    /// (MNI152 half size, CR 50: 20 steps 28.4 dB, 60 steps 39.37; at 3e-3
    /// 39.36 and 39.62; no steps at all 39.01).
    pub lr: f32,
    /// Fraction of the steps trained with the noise proxy; the rest round
    /// with a straight-through gradient.
    pub noise_fraction: f32,
    /// The latents' learning rate as a multiple of `lr`; 0 keeps them at
    /// their analysis (see [`LATENT_LR`]).
    pub latent_lr: f32,
    /// Share of the scale's z slices each step trains on (a random slab,
    /// see [`slab`]; 1 = full steps); `None`: slabs of about
    /// [`SLAB_VOXELS`] voxels.
    pub sample: Option<f32>,
    /// The latent levels' transform: 5/3 lifting (the default) or the
    /// interpolating pyramid.
    pub transform: Transform,
    /// Fit a loop filter to each scale's reconstruction
    /// ([`loop_filter`]); fitted after the training, which does not see it.
    pub loop_filter: bool,
}

impl Default for GridOptions {
    fn default() -> Self {
        GridOptions {
            levels: None,
            // Linear: over lifted latents a 12×12 MLP costs its bytes and
            // gives them back in training at no ratio measured (no training,
            // MNI152 at half size, CR 200 / 500: 33.28 / 28.74 dB with it,
            // 33.71 / 28.95 without; 60 steps add ≤ 0.03 dB to either).
            synthesis: Vec::new(),
            context_hidden: 4,
            steps: None,
            lr: 3e-3,
            noise_fraction: 0.0,
            latent_lr: LATENT_LR,
            sample: None,
            transform: Transform::Lifting,
            loop_filter: true,
        }
    }
}

/// Voxel visits (whole-scale steps × voxels, all scales together) of a
/// default schedule: about 4 minutes on this project's 2-core machine.
const DEFAULT_VOXEL_STEPS: f64 = 1.5e9;

/// Whole-scale steps per scale when none are asked for, for a pyramid of
/// `voxels` in all: 1000 on small volumes, fewer on large ones (MNI152's
/// 9.9 M voxels: 150), so that a plain encode takes minutes, not an hour.
pub fn default_steps(voxels: usize) -> usize {
    ((DEFAULT_VOXEL_STEPS / voxels.max(1) as f64) as usize).clamp(100, 1000)
}

/// Voxels a windowed step visits when `GridOptions::sample` is not given.
pub const SLAB_VOXELS: f64 = 5.0e5;

/// Latent levels a scale grid of `dims` gets under `opts`.
fn scale_levels(opts: &GridOptions, dims: [usize; 4]) -> u8 {
    opts.levels
        .unwrap_or_else(|| default_levels(dims))
        .clamp(1, MAX_LATENT_LEVELS)
}

/// Latent levels for a scale grid of `dims`.
pub fn default_levels(dims: [usize; 4]) -> u8 {
    let longest = dims[..3].iter().copied().max().unwrap_or(1);
    let mut l = 1u8;
    while l < 7 && longest.div_ceil(1 << l) >= 4 {
        l += 1;
    }
    l.min(MAX_LATENT_LEVELS)
}

/// Most of a scale's budget its networks' parameters may take; past it the
/// synthesis (then the context network) shrinks.
const MAX_SIDE_SHARE: f64 = 0.2;

/// `opts` with networks small enough for a scale of `dims` whose section
/// should take about `bytes`: halve the synthesis widths, then drop layers,
/// then make the context network linear, until the parameters take at most
/// a fifth of the budget (or nothing is left to shrink).
pub fn fit_architecture(opts: &GridOptions, dims: [usize; 4], bytes: f64) -> GridOptions {
    let mut o = opts.clone();
    let levels = scale_levels(&o, dims);
    let side = |o: &GridOptions| {
        side_bytes(&GridArchitecture {
            levels,
            synthesis: o.synthesis.clone(),
            context_hidden: o.context_hidden,
        })
    };
    while side(&o) > MAX_SIDE_SHARE * bytes {
        if o.synthesis.iter().any(|&w| w > 4) {
            o.synthesis.iter_mut().for_each(|w| *w = (*w / 2).max(4));
        } else if o.synthesis.len() > 1 {
            o.synthesis.pop();
        } else if o.context_hidden > 0 {
            o.context_hidden = 0;
        } else if !o.synthesis.is_empty() {
            o.synthesis.clear();
        } else {
            break;
        }
    }
    o
}

/// Byte budgets for the scales of a pyramid (coarsest first) that should
/// take `bytes` in all: every scale is coded at the step its octave calls
/// for — the finest at Δ, each coarser one at the step a latent level of
/// its octave has ([`init::octave_step`]) — and Δ is the step at which their
/// coefficients take the budget. `targets`: each scale's open-loop target
/// (the coarsest itself, then each scale minus the coarser one upsampled).
pub fn plan_budgets(targets: &[(&[f32], [usize; 4])], opts: &GridOptions, bytes: f64) -> Vec<f64> {
    let n = targets.len();
    let analyses: Vec<Analysis> = targets
        .iter()
        .map(|&(_, dims)| Analysis::new(opts.transform, dims, scale_levels(opts, dims)))
        .collect();
    let coefficients: Vec<Vec<Vec<f32>>> = targets
        .iter()
        .zip(&analyses)
        .map(|(&(target, _), analysis)| analysis.analyse(target, None))
        .collect();
    let side: Vec<f64> = targets
        .iter()
        .map(|&(_, dims)| {
            side_bytes(&GridArchitecture {
                levels: scale_levels(opts, dims),
                synthesis: opts.synthesis.clone(),
                context_hidden: opts.context_hidden,
            })
        })
        .collect();
    let latent_bytes = (bytes - side.iter().sum::<f64>()).max(bytes * 0.2);
    let bits_at = |delta: f32| -> Vec<f64> {
        coefficients
            .iter()
            .enumerate()
            .map(|(k, c)| {
                analyses[k].entropy_bits(c, init::octave_step(opts.transform, delta, n - 1 - k))
            })
            .collect()
    };
    let delta = init::step_spending(8.0 * latent_bytes * INIT_BITS_FACTOR, |d| {
        bits_at(d).iter().sum()
    });
    bits_at(delta)
        .iter()
        .zip(&side)
        .map(|(bits, side)| bits / (8.0 * INIT_BITS_FACTOR) + side)
        .collect()
}

/// What one scale's training is steered towards.
#[derive(Clone, Copy, Debug)]
pub struct RateGoal {
    /// λ of the loss (per voxel, normalized units).
    pub lambda: f64,
    /// Steer λ so the section's estimated size lands at this many bytes.
    pub bytes: Option<f64>,
    /// Or so that the training MSE (normalized units) lands at this.
    pub mse: Option<f64>,
    /// Stop starting new steps after this long.
    pub time: Option<Duration>,
}

/// A trained grid scale: the section, and λ as training left it.
pub struct FittedGrid {
    pub section: GridSection,
    pub lambda: f64,
    pub steps: usize,
}

struct Adam {
    m: Vec<f32>,
    v: Vec<f32>,
    /// Per parameter, a multiple of the learning rate (all 1 when empty).
    lr_scales: Vec<f32>,
}

impl Adam {
    fn new(n: usize) -> Adam {
        Adam {
            m: vec![0.0; n],
            v: vec![0.0; n],
            lr_scales: Vec::new(),
        }
    }

    /// An Adam whose parameter `i` moves at `lr_scales[i]` times the rate.
    fn with_lr_scales(lr_scales: Vec<f32>) -> Adam {
        let n = lr_scales.len();
        Adam {
            m: vec![0.0; n],
            v: vec![0.0; n],
            lr_scales,
        }
    }

    fn update(&mut self, params: &mut [f32], grads: &[f32], lr: f32, t: i32) {
        self.update_range(params, 0..params.len(), grads, lr, t);
    }

    /// Updates `params[range]` with `grads` (one per element of the range),
    /// `t` being those elements' own step count.
    fn update_range(
        &mut self,
        params: &mut [f32],
        range: std::ops::Range<usize>,
        grads: &[f32],
        lr: f32,
        t: i32,
    ) {
        let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-8f32);
        let c1 = 1.0 - b1.powi(t);
        let c2 = 1.0 - b2.powi(t);
        let scales = self.lr_scales.get(range.clone());
        let (m, v) = (&mut self.m[range.clone()], &mut self.v[range.clone()]);
        for (k, ((p, &g), (m, v))) in params[range]
            .iter_mut()
            .zip(grads)
            .zip(m.iter_mut().zip(v.iter_mut()))
            .enumerate()
        {
            *m = b1 * *m + (1.0 - b1) * g;
            *v = b2 * *v + (1.0 - b2) * g * g;
            let lr = scales.map_or(lr, |s| lr * s[k]);
            *p -= lr * (*m / c1) / ((*v / c2).sqrt() + eps);
        }
    }
}

/// Bytes the section's parameters take (f16 synthesis, i16 context), and
/// its fixed framing: what the latents' bits come on top of.
fn side_bytes(arch: &GridArchitecture) -> f64 {
    (32 + 2 * arch.synthesis.len() + 2 * arch.synthesis_params() + 2 * arch.context_params()) as f64
        + arch.levels as f64 * 8.0
}

/// Trains one grid scale on `target` (the scale's grid, normalized units).
pub fn fit_scale(
    target: &[f32],
    dims: [usize; 4],
    level: u8,
    scales: u8,
    opts: &GridOptions,
    goal: RateGoal,
    seed: u64,
    progress: &mut dyn Progress,
) -> Result<FittedGrid> {
    // A time limit covers the analysis and calibration too.
    let entered = Instant::now();
    let levels = scale_levels(opts, dims);
    let arch = GridArchitecture {
        levels,
        synthesis: opts.synthesis.clone(),
        context_hidden: opts.context_hidden,
    };
    arch.check()?;
    let shapes = arch.synthesis_shapes();
    let layout = ContextLayout {
        hidden: arch.context_hidden as usize,
    };
    let analysis = Analysis::new(opts.transform, dims, levels);
    let interp = &analysis.interp;
    let ldims: Vec<[usize; 4]> = (0..levels).map(|l| latent_dims(dims, l)).collect();
    let voxels = target.len() as f64;
    let mut rng = SplitMix(seed ^ 0x9E37_79B9_7F4A_7C15);
    let mut uniform = move || (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32;

    let mut synth = Vec::with_capacity(arch.synthesis_params());
    for (k, &(i, o)) in shapes.iter().enumerate() {
        let bound = (1.0 / i as f32).sqrt();
        let gain = if k + 1 == shapes.len() { 0.1 } else { 1.0 };
        for _ in 0..i * o {
            synth.push((uniform() * 2.0 - 1.0) * bound * gain);
        }
        for _ in 0..o {
            synth.push(if k + 1 == shapes.len() { 0.0 } else { 0.01 });
        }
    }
    let mut context = vec![0f32; layout.len()];
    {
        let (n, h) = (CONTEXT_INPUTS, layout.hidden);
        for w in &mut context[..n * h] {
            *w = (uniform() * 2.0 - 1.0) * 0.1;
        }
        for b in &mut context[n * h..n * h + h] {
            *b = 0.1;
        }
        // A wide first guess of the scale: 3 octaves above 1/16, b = ½.
        let last = context.len() - 1;
        context[last] = 3.0;
    }
    // Latents kept at their analysis: the steps train the synthesis alone
    // (the context model is fitted to the latents before and after).
    let learn_latents = opts.latent_lr > 0.0;
    if learn_latents && opts.transform != Transform::Interpolating {
        anyhow::bail!("training the latents (latent_lr > 0) needs the interpolating transform");
    }
    // Start where a transform coder would (see [`init`]): under a byte
    // goal, at the step whose latents take the latents' share of it (then
    // calibrated below), λ the slope at that step; else at the step the
    // MSE or λ calls for.
    let mut lambda = goal.lambda;
    // Under a byte goal: the latents' budget in bits, and the open-loop
    // coefficients whose order-0 entropy guides the choice of step.
    let byte_goal = goal.bytes.map(|bytes| {
        (
            8.0 * (bytes - side_bytes(&arch)).max(bytes * 0.2),
            analysis.analyse(target, None),
        )
    });
    let mut delta = match (&byte_goal, goal.mse) {
        (Some((budget, coefficients)), _) => {
            analysis.step_for_bits(coefficients, budget * INIT_BITS_FACTOR)
        }
        // Under --psnr the step that leaves the error asked for (the
        // latents stay put, so λ alone would not reach it).
        (None, Some(mse)) if !learn_latents => analysis.step_for_mse(target, mse),
        (None, _) => init::step_for_lambda(goal.lambda),
    };
    let mut latents = analysis.analyse(target, Some(delta));
    // The latent coder, chosen under a byte goal by its first calibration.
    let mut coder: Option<Coder> = None;
    // The context model learns the latents' statistics first, on whole
    // passes; under a byte goal the step is then corrected by the bits it
    // gives them (the latents stay where the analysis put them, so the step
    // decides the size).
    // Under a time limit its passes are sampled (see `ContextFit`).
    let mut context_fit = ContextFit::new(layout, goal.time.map(|_| CONTEXT_PASS_LATENTS));
    let first_fit = Instant::now();
    context_fit.train(&mut context, &latents, &ldims, CONTEXT_FIRST_PASSES);
    // What the context's last fit will take, held back from the training.
    let last_fit = first_fit
        .elapsed()
        .mul_f64(CONTEXT_PASSES as f64 / CONTEXT_FIRST_PASSES as f64);
    if let Some((budget, coefficients)) = &byte_goal {
        // The latents are then rounded for rate and distortion, priced by
        // the context model fitted so far.
        let analyse = |delta: f32, context: &[f32]| {
            let rdo = Rdo {
                model: ContextModel::new(layout, context),
                kappa: RDO_KAPPA,
            };
            analysis.analyse_rd(target, delta, &rdo)
        };
        // The bits the latents take as coded: the adaptive coder spends
        // ~8–10% less than the context model's Laplace prices them (engine,
        // CR 200), which would leave the archive that much under its goal.
        let section_of = |latents: &[Vec<f32>], context: &[f32]| {
            to_section(level, arch.clone(), latents, &synth, context, None)
        };
        latents = analyse(delta, &context);
        context_fit.train(&mut context, &latents, &ldims, CONTEXT_PASSES);
        // The coder that codes these latents in fewer bytes stays the
        // section's: calibrating on one and storing the other would miss
        // the goal by their difference.
        let (chosen, bytes) = smaller_coder(section_of(&latents, &context), dims);
        coder = Some(chosen);
        let coded_bits = |latents: &[Vec<f32>], context: &[f32]| {
            let mut section = section_of(latents, context);
            section.coder = chosen;
            8.0 * section.latent_bytes(dims) as f64
        };
        let mut bits = 8.0 * bytes as f64;
        let budget = *budget;
        // (ln Δ, ln bits) measured last: the next step is the secant's.
        let mut last: Option<(f64, f64)> = None;
        // The context model keeps learning between rounds, so an old
        // measurement overstates its step's bits: only the last few count.
        let mut recent: Vec<(f64, f32)> = Vec::new();
        for round in 0..=CALIBRATION_ROUNDS {
            let off = bits / budget;
            recent.push((off.ln().abs(), delta));
            if std::env::var_os("STRATA_DEBUG_RATE").is_some() {
                eprintln!(
                    "grid calibration: Δ {delta:.4} {:.0} of {:.0} bytes",
                    bits / 8.0,
                    budget / 8.0
                );
            }
            // Under a time limit the calibration may take all of it: the
            // size asked for matters more than the synthesis's training,
            // which adds little (MNI152, --ratio 200 --time 120: CR 264
            // when the calibration had half of the scales' shares).
            let out_of_time = goal.time.is_some_and(|t| entered.elapsed() > t);
            if off.ln().abs() < CALIBRATION_TOLERANCE || round == CALIBRATION_ROUNDS || out_of_time
            {
                break;
            }
            // Slope of ln bits over ln Δ: between the last two measurements,
            // else the order-0 entropy's.
            let here = ((delta as f64).ln(), bits.ln());
            let slope = match last {
                Some(p) if (here.0 - p.0).abs() > 1e-3 => (here.1 - p.1) / (here.0 - p.0),
                _ => {
                    let e = |d: f32| analysis.entropy_bits(coefficients, d).max(1.0).ln();
                    (e(delta * 1.1) - e(delta)) / 1.1f64.ln()
                }
            }
            .min(-0.2);
            last = Some(here);
            let moved = (here.0 - off.ln() / slope).clamp(here.0 - 2.0, here.0 + 2.0);
            delta = (moved.exp() as f32).clamp(init::STEP_RANGE.0, init::STEP_RANGE.1);
            latents = analyse(delta, &context);
            context_fit.train(&mut context, &latents, &ldims, CONTEXT_PASSES);
            bits = coded_bits(&latents, &context);
        }
        let best = recent
            .iter()
            .rev()
            .take(CALIBRATION_RECENT)
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .map_or(delta, |m| m.1);
        if best != delta {
            delta = best;
            latents = analyse(delta, &context);
            context_fit.train(&mut context, &latents, &ldims, CONTEXT_PASSES);
        }
        lambda = init::lambda_for_step(delta).clamp(LAMBDA_RANGE.0, LAMBDA_RANGE.1);
    }
    // What the synthesis interpolates (fixed while the latents are), each
    // level in units of the finest step: its step folded into the channel,
    // so that one Adam rate suits every level's first-layer weights (a
    // coarse lifted level's channel runs to the hundreds: at its own scale
    // 60 steps broke MNI152's coarsest scale, 50.7 → 26.4 dB). The section
    // gets the factors back in its first layer ([`fold_input_scales`]).
    let input_scales: Vec<f32> = if learn_latents {
        vec![1.0; levels as usize]
    } else {
        analysis.factors().to_vec()
    };
    let mut proxy: Vec<Vec<f32>> = analysis
        .channels(&latents)
        .into_iter()
        .zip(&input_scales)
        .map(|(c, &s)| c.into_iter().map(|v| v * s).collect())
        .collect();
    let weights: Vec<f32> = analysis
        .factors()
        .iter()
        .zip(&input_scales)
        .map(|(f, s)| f / s)
        .collect();
    init::pass_through(&shapes, &mut synth, delta, &proxy, &weights);
    // Training must not lose what the pass-through gives (see below).
    let start_synth = synth.clone();
    if std::env::var_os("STRATA_DEBUG_RATE").is_some() {
        eprintln!("grid init: Δ {delta:.4} λ {lambda:.3e}");
    }
    let mut adam_latents: Vec<Adam> = latents.iter().map(|l| Adam::new(l.len())).collect();
    let mut adam_synth = Adam::new(synth.len());
    let mut adam_context = Adam::with_lr_scales(layout.lr_scales());

    let sample = opts
        .sample
        .unwrap_or((SLAB_VOXELS / voxels) as f32)
        .clamp(1e-3, 1.0);
    // `opts.steps` counts whole-scale steps: slabs take as many more.
    let whole = opts.steps.unwrap_or_else(|| default_steps(target.len()));
    let mut steps = (whole as f64 / sample as f64).ceil() as usize;
    let most_steps = if goal.time.is_some() {
        usize::MAX
    } else {
        steps
    };
    progress.scale_started(
        level,
        scales,
        steps,
        levels as usize,
        latents.iter().map(Vec::len).sum(),
    );
    let started = Instant::now();
    // The training's share of the time: what the analysis and calibration
    // left, less the context's last fit.
    let train_time = goal
        .time
        .map(|t| t.saturating_sub(entered.elapsed() + last_fit));
    let full = Slab::full(&ldims);
    // Adam's step count per latent chunk: windowed steps update only the
    // chunks they visit.
    let mut chunk_steps: Vec<Vec<i32>> = full.chunks.iter().map(|c| vec![0; c.len()]).collect();
    // Bits of each chunk's rounded latents as last measured: the steering's
    // estimate of the whole section (a slab alone varies too much).
    let mut known_bits: Option<Vec<Vec<f64>>> = None;
    let mut last_err: Option<f64> = None;
    let (mut mse_sum, mut mse_voxels) = (0f64, 0f64);
    let mut rounded: Vec<Vec<f32>> = latents.clone();
    let mut step = 0;
    while step < steps {
        let noise = (step as f32) < opts.noise_fraction * steps as f32;
        let windowed;
        let slab = if sample < 1.0 {
            windowed = Slab::random(dims, &ldims, sample, uniform());
            &windowed
        } else {
            &full
        };
        for l in (0..levels as usize).filter(|_| learn_latents) {
            for (_, run) in slab.runs(l, ldims[l]) {
                let (p, y) = (&mut proxy[l][run.clone()], &latents[l][run]);
                if noise {
                    for (q, &v) in p.iter_mut().zip(y) {
                        *q = v + uniform() - 0.5;
                    }
                } else {
                    for (q, &v) in p.iter_mut().zip(y) {
                        *q = v.round();
                    }
                }
            }
        }
        let visit = slab.rows.is_some().then_some(slab.chunks.as_slice());
        let s = synthesis::step(
            interp,
            &shapes,
            &synth,
            &proxy,
            target,
            slab.rows.as_deref(),
        );
        let r = learn_latents.then(|| {
            rate::step(
                layout,
                &context,
                &proxy,
                &ldims,
                CONTEXT_PARAM_EVERY,
                step,
                visit,
            )
        });
        // Each level's bits, scaled up from the chunks visited.
        let bits: f64 = r.as_ref().map_or(0.0, |r| {
            r.chunk_bits
                .iter()
                .zip(&slab.share)
                .map(|(c, share)| c.iter().sum::<f64>() / share)
                .sum()
        });
        let mse = s.sq_error / s.voxels.max(1) as f64;
        let bpv = bits / voxels;
        progress.step(step + 1, (mse + lambda * bpv) as f32);

        // Gradients of MSE + λ·bits/N (both estimated on the slab), then
        // one Adam step with a cosine learning rate.
        let d_scale = 1.0 / s.voxels.max(1) as f32;
        let t = (step + 1) as i32;
        let lr = opts.lr
            * (0.5 * (1.0 + (std::f32::consts::PI * step as f32 / steps as f32).cos())).max(0.02);
        let gs: Vec<f32> = s.params.iter().map(|g| g * d_scale).collect();
        adam_synth.update(&mut synth, &gs, lr, t);
        let Some(r) = r else {
            step += 1;
            fit_schedule(&mut steps, step, most_steps, started, train_time);
            continue;
        };
        let mut g = Vec::new();
        for l in 0..levels as usize {
            let r_scale = (lambda / (voxels * slab.share[l])) as f32;
            for (ci, run) in slab.runs(l, ldims[l]) {
                g.clear();
                g.extend(
                    s.latents[l][run.clone()]
                        .iter()
                        .zip(&r.latents[l][run.clone()])
                        .map(|(&a, &b)| a * d_scale + b * r_scale),
                );
                chunk_steps[l][ci] += 1;
                adam_latents[l].update_range(
                    &mut latents[l],
                    run,
                    &g,
                    lr * opts.latent_lr,
                    chunk_steps[l][ci],
                );
            }
        }
        clear_uncoded(&mut latents, &ldims);
        let r_scale = (lambda / (voxels * slab.share[0])) as f32;
        let gc: Vec<f32> = r.params.iter().map(|g| g * r_scale).collect();
        adam_context.update(&mut context, &gc, lr, t);
        clamp_context(&mut context);

        // Steering: move λ towards the size asked for, measured on the
        // rounded latents (what will be coded; the noisy proxy costs more),
        // or towards the MSE asked for (smoothed over steps: slabs differ).
        mse_sum = MSE_SMOOTHING * mse_sum + s.sq_error;
        mse_voxels = MSE_SMOOTHING * mse_voxels + s.voxels as f64;
        let (from, to) = (steps / STEER_FROM, steps * 19 / 20);
        let steer_now = step >= from && step < to && step % STEER_EVERY == 0;
        // ln(what we have / what we want), positive when λ should grow.
        let mut err = None;
        if let Some(bytes) = goal.bytes {
            if !noise {
                // This step's rate was measured on the rounded latents.
                if let Some(known) = known_bits.as_mut() {
                    remember(known, &r.chunk_bits, &slab.chunks);
                }
            }
            if steer_now {
                // The first estimate measures every chunk, later ones the slab's.
                let measure = if known_bits.is_none() { &full } else { slab };
                if noise || known_bits.is_none() {
                    for l in 0..levels as usize {
                        for (_, run) in measure.runs(l, ldims[l]) {
                            for (q, &v) in rounded[l][run.clone()].iter_mut().zip(&latents[l][run])
                            {
                                *q = v.round();
                            }
                        }
                    }
                    let visit = measure.rows.is_some().then_some(measure.chunks.as_slice());
                    let m = rate::step(layout, &context, &rounded, &ldims, usize::MAX, 0, visit);
                    match known_bits.as_mut() {
                        Some(known) => remember(known, &m.chunk_bits, &measure.chunks),
                        None => known_bits = Some(m.chunk_bits),
                    }
                }
                let known = known_bits.as_ref().expect("measured above");
                let bits: f64 = known.iter().flatten().sum();
                let estimate = bits / 8.0 + side_bytes(&arch);
                // Rounded latents measured under a context model trained on
                // noisy ones cost more than they will once it trains on them.
                let goal_now = if noise {
                    bytes * NOISE_PHASE_SLACK
                } else {
                    bytes
                };
                err = Some((estimate / goal_now).ln());
            }
        } else if let Some(mse_goal) = goal.mse {
            if steer_now && mse_voxels > 0.0 {
                err = Some((mse_goal / (mse_sum / mse_voxels)).ln());
            }
        }
        if let Some(err) = err {
            let trend = last_err.map_or(0.0, |e| err - e);
            last_err = Some(err);
            let moves = ((to - from) / STEER_EVERY).max(1) as f64;
            let most = (STEER_SPAN / moves).max(0.3);
            let moved = lambda
                * (STEER_GAIN * err + STEER_DAMPING * trend)
                    .clamp(-most, most)
                    .exp();
            let most_lambda = if goal.bytes.is_some() {
                LAMBDA_RANGE.1
            } else {
                1.0
            };
            lambda = moved.clamp(LAMBDA_RANGE.0, most_lambda);
        }
        step += 1;
        fit_schedule(&mut steps, step, most_steps, started, train_time);
    }
    if learn_latents {
        clear_uncoded(&mut latents, &ldims);
    } else {
        context_fit.train(&mut context, &latents, &ldims, CONTEXT_PASSES);
    }
    let lifting = (opts.transform == Transform::Lifting).then(|| Lifting {
        gains: analysis.gains.clone(),
    });
    // The trained synthesis is kept only if, in binary16 as stored, it
    // beats the pass-through it started from: on a small coarse scale 60
    // steps made it ~100× worse (MNI152's coarsest scale: MSE 4.5e-7 →
    // 5.0e-5), and on larger ones the binary16 rounding can undo the gain.
    if steps > 0 && !learn_latents {
        let stored_error = |p: &[f32]| {
            let h: Vec<f32> = p.iter().map(|&w| half::f16::from_f32(w).to_f32()).collect();
            synthesis::step(interp, &shapes, &h, &proxy, target, None).sq_error
        };
        if stored_error(&synth) > stored_error(&start_synth) {
            synth = start_synth;
        }
    }
    fold_input_scales(&mut synth, shapes[0].1, &input_scales);
    let mut section = to_section(level, arch, &latents, &synth, &context, lifting);
    section.coder = match coder {
        Some(c) => c,
        None => smaller_coder(section.clone(), dims).0,
    };
    Ok(FittedGrid {
        section,
        lambda,
        steps,
    })
}

/// The latent coder that codes `section`'s latents (scale grid `dims`) in
/// the fewest bytes, and those bytes: coder 2's 20× models learn slower, and
/// on a small or odd section coder 1 can win; coder 3's fast estimates
/// follow local changes but are noisier where a model settles. The earlier
/// on a tie.
fn smaller_coder(mut section: GridSection, dims: [usize; 4]) -> (Coder, u64) {
    [Coder::TwoRate, Coder::Contextual, Coder::Adaptive]
        .into_iter()
        .map(|coder| {
            section.coder = coder;
            (coder, section.latent_bytes(dims))
        })
        .min_by_key(|&(_, bytes)| bytes)
        .expect("three candidates")
}

/// Time cap: after a few steps, and again every 25, fit the schedule to the
/// time per step so far (up or down: the first steps' cost is not the
/// average's). Under --time the time decides, not the steps.
fn fit_schedule(
    steps: &mut usize,
    step: usize,
    most_steps: usize,
    started: Instant,
    time: Option<Duration>,
) {
    if let Some(limit) = time {
        if step == 3 || step.is_multiple_of(25) {
            let per = started.elapsed().as_secs_f64() / step as f64;
            let fit = (limit.as_secs_f64() / per) as usize;
            *steps = fit.clamp(step + 1, most_steps.max(step + 1));
        }
    }
}

/// The context network's training on passes over fixed latents.
struct ContextFit {
    layout: ContextLayout,
    adam: Adam,
    t: i32,
    /// Passes on about this many latents each, not all.
    pass_latents: Option<usize>,
}

/// Under `--time` a context pass visits about this many latents: whole
/// passes over MNI152's finest scale take most of its encode (88 s + 19 s
/// a calibration round; sampled 24 s + 8 s). The sampled fit is noisier:
/// MNI152 --ratio 200 42.57–42.60 dB against 42.60, engine --ratio 100
/// on the same curve, but engine --ratio 50 53.43 dB @ 49.0 against 53.44
/// @ 50.3 (~0.15 dB), so without a time limit the passes are whole.
const CONTEXT_PASS_LATENTS: usize = 1 << 21;

impl ContextFit {
    fn new(layout: ContextLayout, pass_latents: Option<usize>) -> ContextFit {
        ContextFit {
            layout,
            adam: Adam::with_lr_scales(layout.lr_scales()),
            t: 0,
            pass_latents,
        }
    }

    /// `passes` Adam steps on the bits of `latents`, whole passes or (if
    /// sampled) each on one in `m` of every level's chunks, in turn (so `m`
    /// passes see every chunk once), `m` chosen so that a pass visits about
    /// `pass_latents`.
    fn train(
        &mut self,
        context: &mut [f32],
        latents: &[Vec<f32>],
        ldims: &[[usize; 4]],
        passes: usize,
    ) {
        let count: usize = latents.iter().map(Vec::len).sum();
        let m = self
            .pass_latents
            .map_or(1, |n| count.div_ceil(n.max(1)).max(1));
        let counts: Vec<usize> = ldims.iter().map(|&d| chunks(d).len()).collect();
        for _ in 0..passes {
            self.t += 1;
            let turn = self.t as usize;
            let visit: Option<Vec<Vec<bool>>> = (m > 1).then(|| {
                counts
                    .iter()
                    .enumerate()
                    .map(|(l, &n)| (0..n).map(|ci| (ci + l + turn).is_multiple_of(m)).collect())
                    .collect()
            });
            let r = rate::step(self.layout, context, latents, ldims, 1, 0, visit.as_deref());
            // Visited latents are one in m of all, on average.
            let g: Vec<f32> = r
                .params
                .iter()
                .map(|g| g * m as f32 / count as f32)
                .collect();
            self.adam.update(context, &g, CONTEXT_LR, self.t);
            clamp_context(context);
        }
    }
}

/// Zeroes the latents the format does not code (`entropy::is_coded`), which
/// trained latents may have moved.
fn clear_uncoded(latents: &mut [Vec<f32>], ldims: &[[usize; 4]]) {
    let levels = latents.len();
    for (l, (level, &dims)) in latents.iter_mut().zip(ldims).enumerate() {
        let has_parent = l + 1 < levels;
        for (i, v) in level.iter_mut().enumerate() {
            if !is_coded_at(has_parent, dims, i) {
                *v = 0.0;
            }
        }
    }
}

/// Keeps the weights inside what Q12 in an i16 can hold.
fn clamp_context(context: &mut [f32]) {
    for w in context {
        *w = w.clamp(-7.99, 7.99);
    }
}

/// Records the bits of the chunks `visited` measured in `bits`.
fn remember(known: &mut [Vec<f64>], bits: &[Vec<f64>], visited: &[Vec<bool>]) {
    for ((k, b), v) in known.iter_mut().zip(bits).zip(visited) {
        for ((k, &b), &v) in k.iter_mut().zip(b).zip(v) {
            if v {
                *k = b;
            }
        }
    }
}

/// Multiplies the first synthesis layer's weights of input `l` (outputs
/// fastest, `outputs` of them) by `scales[l]`: trained on scaled channels,
/// they then take the section's own.
fn fold_input_scales(synth: &mut [f32], outputs: usize, scales: &[f32]) {
    for (row, &s) in synth.chunks_exact_mut(outputs).zip(scales) {
        row.iter_mut().for_each(|w| *w *= s);
    }
}

/// The trained values as stored: latents rounded, synthesis parameters to
/// binary16, context weights to Q12.
fn to_section(
    level: u8,
    arch: GridArchitecture,
    latents: &[Vec<f32>],
    synth: &[f32],
    context: &[f32],
    lifting: Option<Lifting>,
) -> GridSection {
    let lim = strata_format::grid::entropy::MAX_LATENT_ABS as f32;
    let one = (1i32 << WEIGHT_FRAC) as f32;
    let context_q: Vec<i16> = context
        .iter()
        .map(|&w| (w * one).round().clamp(i16::MIN as f32, i16::MAX as f32) as i16)
        .collect();
    GridSection {
        level,
        arch,
        synthesis: synth
            .iter()
            .map(|&w| half::f16::from_f32(w).to_f32())
            .collect(),
        context: context_q,
        latents: latents
            .iter()
            .map(|l| {
                l.iter()
                    .map(|&v| v.round().clamp(-lim, lim) as i32)
                    .collect()
            })
            .collect(),
        lifting,
        coder: Coder::Contextual,
        loop_filters: Vec::new(),
    }
}

/// Latents stay at their analysis by default: training them on MSE + λ·bits
/// in the schedules a 2-core machine affords lost quality at every rate
/// (MNI152 at half size, CR 37.5, 60 steps: noise then rounding 35.45 dB,
/// rounding only 40.84 dB, latents kept 41.04 dB; ×4 the networks' rate).
const LATENT_LR: f32 = 0.0;

/// κ of rate–distortion rounding ([`Rdo`]), in step² per bit. High-rate
/// theory's slope (2·ln 2/12 = 0.116) rounds far too much down: a coarse
/// level's error is coded again by the finer ones, and a zero makes its
/// neighbours' contexts cheaper to be zero too (engine at half size, CR
/// 200, no training: the 0.1 deadzone 35.74 dB; κ 0.2 → 35.09, 0.12 →
/// 35.52, 0.06 → 35.79, 0.045 → 35.80, 0.03 → 35.87, 0.02 → 35.78; at CR
/// 50 / 500 on engine and MNI152 at half size κ 0.03 adds 0.1–0.2 dB).
const RDO_KAPPA: f32 = 0.03;

#[cfg(test)]
mod tests {
    use super::*;

    /// Latents whose spread grows along x (so the context has something to
    /// learn), 0 where the format codes nothing.
    fn latents(dims: [usize; 4], levels: u8) -> (Vec<Vec<f32>>, Vec<[usize; 4]>) {
        let ldims: Vec<[usize; 4]> = (0..levels).map(|l| latent_dims(dims, l)).collect();
        let mut rng = SplitMix(3);
        let mut values: Vec<Vec<f32>> = ldims
            .iter()
            .map(|d| {
                (0..d.iter().product::<usize>())
                    .map(|i| {
                        let spread = 0.2 + 4.0 * (i % d[0]) as f32 / d[0] as f32;
                        // A Laplace sample: the difference of two exponentials.
                        let e = |u: f32| -(u.max(1e-6)).ln();
                        let u =
                            |r: &mut SplitMix| (r.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
                        (spread * (e(u(&mut rng)) - e(u(&mut rng)))).round()
                    })
                    .collect()
            })
            .collect();
        clear_uncoded(&mut values, &ldims);
        (values, ldims)
    }

    /// Sampled passes (here a third of the latents each, in turn) fit the
    /// context model about as well as whole ones, and both far better than
    /// its start.
    #[test]
    fn sampled_context_passes_fit_nearly_as_well_as_whole_ones() {
        let layout = ContextLayout { hidden: 4 };
        let (values, ldims) = latents([24, 20, 64, 1], 3);
        let count: usize = values.iter().map(Vec::len).sum();
        let mut start = vec![0f32; layout.len()];
        *start.last_mut().unwrap() = 3.0;
        let bits = |context: &[f32]| rate::step(layout, context, &values, &ldims, 1, 0, None).bits;
        let fitted = |pass_latents: Option<usize>| {
            let mut context = start.clone();
            ContextFit::new(layout, pass_latents).train(&mut context, &values, &ldims, 60);
            bits(&context)
        };
        let (before, whole, sampled) = (bits(&start), fitted(None), fitted(Some(count / 3)));
        assert!(
            whole < 0.8 * before,
            "whole passes: {before:.0} -> {whole:.0} bits"
        );
        assert!(
            sampled < 1.03 * whole,
            "sampled passes {sampled:.0} bits, whole ones {whole:.0}"
        );
    }
}
