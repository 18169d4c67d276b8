//! Training one scale's MLPs with burn: all MLPs of the scale at once as
//! batched tensors (weights `[m, in, out]`), SIREN layers, per-block latent
//! codes learned alongside, Adam with L2 weight decay, random voxel batches
//! per MLP each step, loss = sum over MLPs of each MLP's MSE.

use anyhow::Result;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::{Adam, AdamConfig, AdamState, Optimizer};
use burn::tensor::{Gradients, Int, Tensor, TensorData};
use strata_format::decode::{block_coord, sin_approx};
use strata_format::synth::SplitMix;
use strata_format::Architecture;

use crate::encode::Progress;
use crate::prune::{self, Exchange, GroupState};

/// With pruning, the rounds and their fine-tuning take this share of a
/// scale's steps, at the end, in equal parts.
const PRUNE_SHARE: f64 = 0.4;
/// Each pruning round's fine-tuning starts at this fraction of the previous
/// phase's learning rate.
const ROUND_LR: f64 = 0.5;

/// Where training runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    Cpu,
    /// burn's wgpu backend (Vulkan, Metal, DX12); needs the `gpu` feature.
    Gpu,
}

#[derive(Clone, Debug)]
pub struct TrainOptions {
    pub device: Device,
    /// Voxel samples per MLP per step.
    pub batch: usize,
    pub learning_rate: f64,
    /// The learning rate follows a cosine from `learning_rate` down to
    /// `learning_rate × final_lr` over a scale's steps; 1 keeps it constant.
    pub final_lr: f64,
    pub weight_decay: f32,
    /// Caps the steps of one scale (for quick runs and tests).
    pub max_steps: Option<usize>,
    /// CPU threads (groups of MLPs trained side by side); `None`: all cores.
    /// The result does not depend on it.
    pub threads: Option<usize>,
    /// Block-guided pruning: the sparsity of the prunable tensors after
    /// each round, ascending (ECNR's static setting: 0.2, 0.3); empty: no
    /// pruning. See [`crate::prune`].
    pub prune: Vec<f32>,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            device: Device::Cpu,
            batch: 1024,
            // 3e-3: +1.7 dB over 1e-3 on MNI152 at ratio 94 (2e-3: +1.1;
            // 5e-3 breaks down at the finer scales).
            learning_rate: 3e-3,
            final_lr: 0.05,
            weight_decay: 2e-5,
            max_steps: None,
            threads: None,
            prune: Vec::new(),
        }
    }
}

/// One block's training data: its in-grid voxels' values mapped to [-1, 1].
#[derive(Clone, Debug)]
pub struct BlockSamples {
    pub extent: [usize; 3],
    pub values: Vec<f32>,
}

/// One layer's pruning masks, weights' and biases' (`None`: not pruned).
pub type LayerMasks = (Option<Vec<bool>>, Option<Vec<bool>>);

/// Trained parameters, in the archive's layout: per layer weights
/// `[m][in][out]` and biases `[m][out]`; latents `[block][latent_dim]`.
/// Pruned values are exactly zero and cleared in the layer's masks.
pub struct Fitted {
    pub layers: Vec<(Vec<f32>, Vec<f32>)>,
    /// Per layer, the weights' and the biases' masks (`None`: not pruned).
    pub masks: Vec<LayerMasks>,
    pub latents: Vec<f32>,
}

fn device(d: Device) -> Result<burn::tensor::Device> {
    match d {
        Device::Cpu => Ok(burn::tensor::Device::flex()),
        #[cfg(feature = "gpu")]
        Device::Gpu => Ok(burn::tensor::Device::wgpu(Default::default())),
        #[cfg(not(feature = "gpu"))]
        Device::Gpu => {
            anyhow::bail!(
                "this strata was built without GPU training (--no-default-features); rebuild with the default features"
            )
        }
    }
}

/// A trainable tensor and its optimizer state.
struct Param<const D: usize> {
    value: Tensor<D>,
    state: Option<AdamState<D>>,
}

impl<const D: usize> Param<D> {
    fn new(value: Tensor<D>) -> Self {
        Param {
            value: value.require_grad(),
            state: None,
        }
    }

    /// One Adam step; pruned values (cleared in `mask`) stay exactly zero.
    fn step(&mut self, adam: &Adam, lr: f64, grads: &mut Gradients, mask: Option<&Tensor<D>>) {
        if let Some(g) = self.value.grad_remove(grads) {
            // Update outside the autodiff graph, then make a fresh leaf.
            let (v, s) = adam.step(lr, self.value.clone().inner(), g, self.state.take());
            let v = match mask {
                Some(m) => v * m.clone(),
                None => v,
            };
            self.value = v.autodiff().require_grad();
            self.state = s;
        }
    }

    fn to_vec(&self) -> Vec<f32> {
        self.value
            .clone()
            .inner()
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32 tensor")
    }
}

/// A training problem: which blocks each MLP owns, and how long to train.
struct Job<'a> {
    /// Index of the group's first MLP among all of the scale's.
    first_mlp: usize,
    blocks: &'a [BlockSamples],
    /// Blocks of each MLP (indices into `blocks`).
    members: Vec<Vec<usize>>,
    block_size: [usize; 3],
    arch: &'a Architecture,
    steps: usize,
    opts: &'a TrainOptions,
    start: Option<&'a Fitted>,
    /// This group's number, and where the groups meet to prune.
    group: usize,
    exchange: &'a Exchange,
}

/// Fits `assignment.len()` blocks with `m` MLPs (`assignment[b]` = MLP of
/// block b), from SIREN's initialization or, to fine-tune, from `start`
/// (whose pruned values stay zero). The MLPs are independent, so they are split into one group per
/// thread, each trained in its own burn graph (burn's CPU backend runs an
/// op on one thread). Every MLP draws from its own random stream, so the
/// result is the same whatever the number of threads.
#[allow(clippy::too_many_arguments)]
pub fn fit(
    blocks: &[BlockSamples],
    assignment: &[usize],
    m: usize,
    block_size: [usize; 3],
    arch: &Architecture,
    epochs: f32,
    opts: &TrainOptions,
    seed: u64,
    progress: &mut dyn Progress,
    level: u8,
    scales: u8,
    start: Option<&Fitted>,
) -> Result<Fitted> {
    let n = opts.batch.max(1);
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); m];
    for (b, &a) in assignment.iter().enumerate() {
        members[a].push(b);
    }
    let voxels_per_mlp = members
        .iter()
        .map(|bs| bs.iter().map(|&b| blocks[b].values.len()).sum::<usize>())
        .max()
        .unwrap_or(1);
    let mut steps = ((epochs as f64 * voxels_per_mlp as f64) / n as f64).ceil() as usize;
    if let Some(cap) = opts.max_steps {
        steps = steps.min(cap);
    }
    let steps = steps.max(1);
    progress.scale_started(level, scales, steps, m, blocks.len());

    // One group per thread on the CPU; the GPU takes everything at once.
    let groups = match opts.device {
        Device::Cpu => opts
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .min(m)
            .max(1),
        Device::Gpu => 1,
    };
    let bounds: Vec<usize> = (0..=groups).map(|g| g * m / groups).collect();
    let exchange = Exchange::new(groups);
    let job = |g: usize| Job {
        group: g,
        exchange: &exchange,
        first_mlp: bounds[g],
        blocks,
        members: members[bounds[g]..bounds[g + 1]].to_vec(),
        block_size,
        arch,
        steps,
        opts,
        start,
    };
    let results: Vec<Result<Fitted>> = std::thread::scope(|scope| {
        let others: Vec<_> = (1..groups)
            .map(|g| {
                let job = job(g);
                scope.spawn(move || fit_group(&job, seed, &mut ()))
            })
            .collect();
        // Group 0 runs here and reports progress for all.
        let first = fit_group(&job(0), seed, progress);
        std::iter::once(first)
            .chain(
                others
                    .into_iter()
                    .map(|h| h.join().expect("training thread panicked")),
            )
            .collect()
    });
    // Stitch groups back together: weights in MLP order, latents in block order.
    let shapes = arch.layer_shapes();
    let latent_dim = arch.latent_dim as usize;
    let mut layers: Vec<(Vec<f32>, Vec<f32>)> = shapes
        .iter()
        .map(|&(i, o)| (Vec::with_capacity(m * i * o), Vec::with_capacity(m * o)))
        .collect();
    let mut masks: Vec<LayerMasks> = vec![(None, None); shapes.len()];
    let mut latents = vec![0f32; blocks.len() * latent_dim];
    for (g, result) in results.into_iter().enumerate() {
        let fitted = result?;
        for (dst, src) in layers.iter_mut().zip(fitted.layers) {
            dst.0.extend(src.0);
            dst.1.extend(src.1);
        }
        for (dst, src) in masks.iter_mut().zip(fitted.masks) {
            for (d, s) in [(&mut dst.0, src.0), (&mut dst.1, src.1)] {
                if let Some(s) = s {
                    d.get_or_insert_with(Vec::new).extend(s);
                }
            }
        }
        let own = members[bounds[g]..bounds[g + 1]].iter().flatten();
        for (slot, &b) in own.enumerate() {
            latents[b * latent_dim..(b + 1) * latent_dim]
                .copy_from_slice(&fitted.latents[slot * latent_dim..(slot + 1) * latent_dim]);
        }
    }
    Ok(Fitted {
        layers,
        masks,
        latents,
    })
}

/// Uniform values in [-a, a) as a tensor whose first axis is the MLP; each
/// MLP's slice comes from its own generator.
fn uniform<const D: usize>(
    shape: [usize; D],
    a: f64,
    rngs: &mut [SplitMix],
    dev: &burn::tensor::Device,
) -> Tensor<D> {
    let per: usize = shape[1..].iter().product();
    let data: Vec<f32> = rngs
        .iter_mut()
        .flat_map(|rng| {
            (0..per)
                .map(|_| rng.symmetric(a as f32))
                .collect::<Vec<_>>()
        })
        .collect();
    Tensor::from_data(TensorData::new(data, shape), dev)
}

/// sin(ω0·y). burn's CPU backend evaluates sin and cos one libm call at a
/// time, over half of a training step; on the CPU the sine is computed here
/// with the decoder's vectorized polynomial instead, and enters the graph
/// as its tangent line y·c + (s − y·c), with s = sin(ω0·y) and
/// c = ω0·cos(ω0·y) held constant: the value is s and the gradient is c,
/// exactly as for sin itself.
fn sine(y: Tensor<3>, omega0: f32, device: Device) -> Tensor<3> {
    if device != Device::Cpu {
        return y.mul_scalar(omega0).sin();
    }
    let inner = y.clone().inner();
    let (dims, dev) = (inner.dims(), inner.device());
    let values: Vec<f32> = inner.clone().try_into_vec_as::<f32>().expect("f32 tensor");
    let mut s = Vec::with_capacity(values.len());
    let mut c = Vec::with_capacity(values.len());
    for &v in &values {
        let x = omega0 * v;
        s.push(sin_approx(x));
        c.push(omega0 * sin_approx(x + std::f32::consts::FRAC_PI_2));
    }
    let s = Tensor::<3>::from_data(TensorData::new(s, dims), &dev);
    let c = Tensor::<3>::from_data(TensorData::new(c, dims), &dev);
    let offset = s - inner * c.clone();
    y * c.autodiff() + offset.autodiff()
}

/// Where the training phases start: step 0, then each pruning round, the
/// rounds spread evenly over the last `PRUNE_SHARE` of the steps.
fn phases(steps: usize, rounds: usize) -> Vec<usize> {
    let mut starts = vec![0];
    for r in 1..=rounds {
        let left = PRUNE_SHARE * (rounds - r + 1) as f64 / rounds as f64;
        // Every round happens, however few the steps.
        let start = (steps as f64 * (1.0 - left)).round() as usize;
        starts.push(start.min(steps.saturating_sub(1)));
    }
    starts
}

/// The learning rate at `step` of `steps`: in each phase (see [`phases`]) a
/// cosine from its peak down to `final_lr` of it; the first phase's peak
/// is the initial rate, each round's `ROUND_LR` of the one before. Small
/// steps late let each MLP settle into its minimum instead of rattling
/// around it; a round's fine-tuning starts gentler than the training.
fn learning_rate(opts: &TrainOptions, step: usize, starts: &[usize], steps: usize) -> f64 {
    let p = starts.partition_point(|&s| s <= step).max(1) - 1;
    let end = starts.get(p + 1).copied().unwrap_or(steps);
    let progress = (step - starts[p]) as f64 / (end - starts[p]).max(1) as f64;
    let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
    let peak = opts.learning_rate * ROUND_LR.powi(p as i32);
    peak * (opts.final_lr + (1.0 - opts.final_lr) * cosine)
}

/// Trains one group of MLPs; latents come back in the order of the group's
/// blocks (MLP by MLP, each MLP's blocks in order).
fn fit_group(job: &Job, seed: u64, progress: &mut dyn Progress) -> Result<Fitted> {
    let _attending = prune::Attendance(job.exchange);
    let base = device(job.opts.device)?;
    let dev = base.clone().autodiff();
    let m = job.members.len();
    let n = job.opts.batch.max(1);
    let arch = job.arch;
    let latent_dim = arch.latent_dim as usize;
    let omega0 = arch.omega0;
    let shapes = arch.layer_shapes();
    // One random stream per MLP, keyed by its index in the whole scale.
    let mut rngs: Vec<SplitMix> = (0..m)
        .map(|k| {
            SplitMix(seed ^ ((job.first_mlp + k) as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
        })
        .collect();

    // SIREN initialization, drawn on the host so it is reproducible (and
    // drawn also when starting from given values, so the random streams
    // that pick the batches are the same either way).
    let mut weights = Vec::new();
    let mut biases = Vec::new();
    for (l, &(i, o)) in shapes.iter().enumerate() {
        let a = if l == 0 {
            1.0 / i as f64
        } else {
            (6.0 / i as f64).sqrt() / omega0 as f64
        };
        weights.push(Param::new(uniform([m, i, o], a, &mut rngs, &dev)));
        let ab = 1.0 / (i as f64).sqrt();
        let ab = if l == 0 { ab } else { ab.min(a) };
        biases.push(Param::new(uniform([m, 1, o], ab, &mut rngs, &dev)));
    }
    // The group's blocks get consecutive latent slots.
    let own: Vec<usize> = job.members.iter().flatten().copied().collect();
    let mut slot_of = std::collections::HashMap::with_capacity(own.len());
    for (slot, &b) in own.iter().enumerate() {
        slot_of.insert(b, slot);
    }
    let mut latents = (latent_dim > 0).then(|| {
        // Each block's code from its MLP's stream.
        let data: Vec<f32> = job
            .members
            .iter()
            .zip(rngs.iter_mut())
            .flat_map(|(mine, rng)| {
                (0..mine.len() * latent_dim)
                    .map(|_| rng.symmetric(0.01))
                    .collect::<Vec<_>>()
            })
            .collect();
        Param::new(Tensor::<2>::from_data(
            TensorData::new(data, [own.len(), latent_dim]),
            &dev,
        ))
    });
    let mut weight_masks: Vec<Option<Tensor<3>>> = vec![None; shapes.len()];
    let mut bias_masks: Vec<Option<Tensor<3>>> = vec![None; shapes.len()];
    if let Some(start) = job.start {
        let first = job.first_mlp;
        let tensor = |values: &[f32], per: usize, shape: [usize; 3], on: &burn::tensor::Device| {
            let mine = values[first * per..(first + m) * per].to_vec();
            Tensor::<3>::from_data(TensorData::new(mine, shape), on)
        };
        let ones = |mask: &[bool]| -> Vec<f32> { mask.iter().map(|&k| k as u8 as f32).collect() };
        for (l, &(i, o)) in shapes.iter().enumerate() {
            let (w, b) = &start.layers[l];
            weights[l] = Param::new(tensor(w, i * o, [m, i, o], &dev));
            biases[l] = Param::new(tensor(b, o, [m, 1, o], &dev));
            let (wm, bm) = &start.masks[l];
            weight_masks[l] = wm
                .as_ref()
                .map(|k| tensor(&ones(k), i * o, [m, i, o], &base));
            bias_masks[l] = bm.as_ref().map(|k| tensor(&ones(k), o, [m, 1, o], &base));
        }
        if let Some(lat) = latents.as_mut() {
            let data: Vec<f32> = own
                .iter()
                .flat_map(|&b| start.latents[b * latent_dim..(b + 1) * latent_dim].to_vec())
                .collect();
            *lat = Param::new(Tensor::<2>::from_data(
                TensorData::new(data, [own.len(), latent_dim]),
                &dev,
            ));
        }
    }
    let adam = AdamConfig::new()
        .with_beta_1(0.9)
        .with_beta_2(0.999)
        .with_epsilon(1e-8)
        .with_weight_decay(Some(WeightDecayConfig::new(job.opts.weight_decay)))
        .build();

    // Pruning: the rounds' steps, the prunable tensors, their masks.
    let starts = phases(job.steps, job.opts.prune.len());
    let targets = prune::prunable(shapes.len());
    let mut kept: Vec<Vec<bool>> = targets
        .iter()
        .map(|&(l, bias)| {
            let (i, o) = shapes[l];
            vec![true; if bias { m * o } else { m * i * o }]
        })
        .collect();
    let mut mlp_losses = vec![0f32; m];
    let mut round = 0;
    // A group that fails keeps meeting the others at the pruning rounds
    // (they wait for it there) and reports its error at the end.
    let mut failed: Option<anyhow::Error> = None;

    let mut coords = vec![0f32; m * n * 3];
    let mut target = vec![0f32; m * n];
    let mut which = vec![0i64; m * n];
    let bs = job.block_size;
    for step in 0..job.steps {
        while round + 1 < starts.len() && step == starts[round + 1] {
            let state = GroupState {
                values: targets
                    .iter()
                    .map(|&(l, bias)| if bias { &biases[l] } else { &weights[l] }.to_vec())
                    .collect(),
                kept: kept.clone(),
                losses: mlp_losses.clone(),
            };
            let sparsity = job.opts.prune[round];
            let masks = job
                .exchange
                .round(job.group, round, state, sparsity)
                .map_err(|_| anyhow::anyhow!("another training thread failed"))?;
            for ((&(l, bias), mask), k) in targets.iter().zip(masks).zip(kept.iter_mut()) {
                let (i, o) = shapes[l];
                let shape = if bias { [m, 1, o] } else { [m, i, o] };
                let ones: Vec<f32> = mask.iter().map(|&keep| keep as u8 as f32).collect();
                let t = Tensor::<3>::from_data(TensorData::new(ones, shape), &base);
                let p = if bias {
                    &mut biases[l]
                } else {
                    &mut weights[l]
                };
                p.value = (p.value.clone().inner() * t.clone())
                    .autodiff()
                    .require_grad();
                if bias {
                    bias_masks[l] = Some(t);
                } else {
                    weight_masks[l] = Some(t);
                }
                *k = mask;
            }
            round += 1;
        }
        if failed.is_some() {
            continue;
        }
        // A random batch of voxels per MLP, each from a random block of its own.
        for (k, (mine, rng)) in job.members.iter().zip(rngs.iter_mut()).enumerate() {
            for s in 0..n {
                let j = k * n + s;
                let b = mine[(rng.next_u64() % mine.len() as u64) as usize];
                let block = &job.blocks[b];
                let e = block.extent;
                let v = (rng.next_u64() % (e[0] * e[1] * e[2]) as u64) as usize;
                let (x, y, z) = (v % e[0], (v / e[0]) % e[1], v / (e[0] * e[1]));
                coords[3 * j] = block_coord(x, bs[0]);
                coords[3 * j + 1] = block_coord(y, bs[1]);
                coords[3 * j + 2] = block_coord(z, bs[2]);
                target[j] = block.values[v];
                which[j] = slot_of[&b] as i64;
            }
        }
        let c = Tensor::<3>::from_data(TensorData::new(coords.clone(), [m, n, 3]), &dev);
        let t = Tensor::<3>::from_data(TensorData::new(target.clone(), [m, n, 1]), &dev);
        let mut h = match &latents {
            Some(lat) => {
                let idx =
                    Tensor::<1, Int>::from_data(TensorData::new(which.clone(), [m * n]), &dev);
                let z = lat.value.clone().select(0, idx).reshape([m, n, latent_dim]);
                Tensor::cat(vec![c, z], 2)
            }
            None => c,
        };
        let last = shapes.len() - 1;
        for l in 0..shapes.len() {
            let y = h.matmul(weights[l].value.clone()) + biases[l].value.clone();
            h = if l < last {
                sine(y, omega0, job.opts.device)
            } else {
                y
            };
        }
        let squared = (h - t).square();
        // Each MLP's loss just before a pruning round ranks its parameters.
        if round + 1 < starts.len() && step + 1 == starts[round + 1] {
            let sums = squared.clone().inner().sum_dim(1).into_data();
            mlp_losses = sums.try_to_vec::<f32>().expect("f32 tensor");
            mlp_losses.iter_mut().for_each(|l| *l /= n as f32);
        }
        // Sum of per-MLP MSEs: each MLP gets the gradient it would alone
        // (and exactly the same whatever the group size).
        let loss = squared.sum().mul_scalar(1.0 / n as f32);
        let report = step % 25 == 0 || step + 1 == job.steps;
        let loss_value = report.then(|| loss.clone().inner().into_scalar::<f32>() / m as f32);
        let mut grads = loss.backward();
        let lr = learning_rate(job.opts, step, &starts, job.steps);
        for (l, p) in weights.iter_mut().enumerate() {
            p.step(&adam, lr, &mut grads, weight_masks[l].as_ref());
        }
        for (l, p) in biases.iter_mut().enumerate() {
            p.step(&adam, lr, &mut grads, bias_masks[l].as_ref());
        }
        if let Some(lat) = latents.as_mut() {
            lat.step(&adam, lr, &mut grads, None);
        }
        if let Some(l) = loss_value {
            if !l.is_finite() {
                failed = Some(anyhow::anyhow!(
                    "training diverged at step {step} (loss {l})"
                ));
                continue;
            }
            progress.step(step + 1, l);
        }
    }
    if let Some(e) = failed {
        return Err(e);
    }
    let mut masks: Vec<LayerMasks> = vec![(None, None); shapes.len()];
    if !job.opts.prune.is_empty() {
        for (&(l, bias), k) in targets.iter().zip(kept) {
            if bias {
                masks[l].1 = Some(k);
            } else {
                masks[l].0 = Some(k);
            }
        }
    }
    Ok(Fitted {
        layers: weights
            .iter()
            .zip(&biases)
            .map(|(w, b)| (w.to_vec(), b.to_vec()))
            .collect(),
        masks,
        latents: latents.map(|l| l.to_vec()).unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learning_rate_decays_along_a_cosine_to_its_floor() {
        let opts = TrainOptions {
            learning_rate: 1e-3,
            final_lr: 0.05,
            ..TrainOptions::default()
        };
        let steps = 1000;
        let lrs: Vec<f64> = (0..=steps)
            .map(|s| learning_rate(&opts, s, &[0], steps))
            .collect();
        assert!((lrs[0] - 1e-3).abs() < 1e-12);
        assert!((lrs[steps] - 5e-5).abs() < 1e-12);
        assert!((lrs[steps / 2] - 0.525e-3).abs() < 1e-9);
        assert!(lrs.windows(2).all(|w| w[1] <= w[0]));
        let constant = TrainOptions {
            final_lr: 1.0,
            ..opts.clone()
        };
        assert!((0..steps).all(|s| learning_rate(&constant, s, &[0], steps) == 1e-3));
        // Two pruning rounds: phases at 60% and 80%, each restarting lower.
        let starts = phases(steps, 2);
        assert_eq!(starts, vec![0, 600, 800]);
        assert_eq!(phases(1, 2), vec![0, 0, 0]);
        assert_eq!(phases(2, 2), vec![0, 1, 1]);
        let lr = |s| learning_rate(&opts, s, &starts, steps);
        assert!((lr(599) - 5e-5).abs() < 1e-7);
        assert!((lr(600) - 0.5e-3).abs() < 1e-12);
        assert!((lr(800) - 0.25e-3).abs() < 1e-12);
        assert!((lr(999) - 0.25e-3 * 0.05).abs() < 1e-7);
    }
}
