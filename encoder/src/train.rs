//! Training one scale's MLPs with burn: all MLPs of the scale at once as
//! batched tensors (weights `[m, in, out]`), SIREN layers, per-block latent
//! codes learned alongside, Adam with L2 weight decay, random voxel batches
//! per MLP each step, loss = sum over MLPs of each MLP's MSE.

use anyhow::{bail, Result};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::{Adam, AdamConfig, AdamState, Optimizer};
use burn::tensor::{Distribution, Gradients, Int, Tensor, TensorData};
use strata_format::decode::block_coord;
use strata_format::synth::SplitMix;
use strata_format::Architecture;

use crate::encode::Progress;

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
    pub weight_decay: f32,
    /// Caps the steps of one scale (for quick runs and tests).
    pub max_steps: Option<usize>,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            device: Device::Cpu,
            batch: 1024,
            learning_rate: 1e-3,
            weight_decay: 2e-5,
            max_steps: None,
        }
    }
}

/// One block's training data: its in-grid voxels' values mapped to [-1, 1].
#[derive(Clone, Debug)]
pub struct BlockSamples {
    pub extent: [usize; 3],
    pub values: Vec<f32>,
}

/// Trained parameters, in the archive's layout: per layer weights
/// `[m][in][out]` and biases `[m][out]`; latents `[block][latent_dim]`.
pub struct Fitted {
    pub layers: Vec<(Vec<f32>, Vec<f32>)>,
    pub latents: Vec<f32>,
}

fn device(d: Device) -> Result<burn::tensor::Device> {
    match d {
        Device::Cpu => Ok(burn::tensor::Device::flex()),
        #[cfg(feature = "gpu")]
        Device::Gpu => Ok(burn::tensor::Device::wgpu(Default::default())),
        #[cfg(not(feature = "gpu"))]
        Device::Gpu => bail!("this strata was built without GPU training; rebuild with `--features gpu`"),
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

    fn step(&mut self, adam: &Adam, lr: f64, grads: &mut Gradients) {
        if let Some(g) = self.value.grad_remove(grads) {
            // Update outside the autodiff graph, then make a fresh leaf.
            let (v, s) = adam.step(lr, self.value.clone().inner(), g, self.state.take());
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

/// Fits `assignment.len()` blocks with `m` MLPs (`assignment[b]` = MLP of block b).
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
) -> Result<Fitted> {
    let base = device(opts.device)?;
    base.seed(seed);
    let dev = base.autodiff();
    let n = opts.batch.max(1);
    let latent_dim = arch.latent_dim as usize;
    let omega0 = arch.omega0;
    let shapes = arch.layer_shapes();

    // Blocks of each MLP, and how many voxels each MLP covers.
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

    // SIREN initialization.
    let mut weights = Vec::new();
    let mut biases = Vec::new();
    for (l, &(i, o)) in shapes.iter().enumerate() {
        let a = if l == 0 {
            1.0 / i as f64
        } else {
            (6.0 / i as f64).sqrt() / omega0 as f64
        };
        weights.push(Param::new(Tensor::<3>::random([m, i, o], Distribution::Uniform(-a, a), &dev)));
        let ab = 1.0 / (i as f64).sqrt();
        let ab = if l == 0 { ab } else { ab.min(a) };
        biases.push(Param::new(Tensor::<3>::random([m, 1, o], Distribution::Uniform(-ab, ab), &dev)));
    }
    let mut latents = if latent_dim > 0 {
        Some(Param::new(Tensor::<2>::random(
            [blocks.len(), latent_dim],
            Distribution::Normal(0.0, 0.01),
            &dev,
        )))
    } else {
        None
    };
    let adam = AdamConfig::new()
        .with_beta_1(0.9)
        .with_beta_2(0.999)
        .with_epsilon(1e-8)
        .with_weight_decay(Some(WeightDecayConfig::new(opts.weight_decay)))
        .build();

    progress.scale_started(level, scales, steps, m, blocks.len());
    let mut rng = SplitMix(seed ^ 0x5EED);
    let mut coords = vec![0f32; m * n * 3];
    let mut target = vec![0f32; m * n];
    let mut which = vec![0i64; m * n];
    for step in 0..steps {
        // A random batch of voxels per MLP, each from a random block of its own.
        for (k, own) in members.iter().enumerate() {
            for s in 0..n {
                let j = k * n + s;
                let b = own[(rng.next_u64() % own.len() as u64) as usize];
                let e = blocks[b].extent;
                let v = (rng.next_u64() % (e[0] * e[1] * e[2]) as u64) as usize;
                let (x, y, z) = (v % e[0], (v / e[0]) % e[1], v / (e[0] * e[1]));
                coords[3 * j] = block_coord(x, block_size[0]);
                coords[3 * j + 1] = block_coord(y, block_size[1]);
                coords[3 * j + 2] = block_coord(z, block_size[2]);
                target[j] = blocks[b].values[v];
                which[j] = b as i64;
            }
        }
        let c = Tensor::<3>::from_data(TensorData::new(coords.clone(), [m, n, 3]), &dev);
        let t = Tensor::<3>::from_data(TensorData::new(target.clone(), [m, n, 1]), &dev);
        let mut h = match &latents {
            Some(lat) => {
                let idx = Tensor::<1, Int>::from_data(TensorData::new(which.clone(), [m * n]), &dev);
                let z = lat.value.clone().select(0, idx).reshape([m, n, latent_dim]);
                Tensor::cat(vec![c, z], 2)
            }
            None => c,
        };
        let last = shapes.len() - 1;
        for l in 0..shapes.len() {
            let y = h.matmul(weights[l].value.clone()) + biases[l].value.clone();
            h = if l < last { y.mul_scalar(omega0).sin() } else { y };
        }
        // Sum of per-MLP MSEs: each MLP gets the gradient it would alone.
        let loss = (h - t).square().mean().mul_scalar(m as f32);
        let report = step % 25 == 0 || step + 1 == steps;
        let loss_value = report.then(|| loss.clone().inner().into_scalar::<f32>() / m as f32);
        let mut grads = loss.backward();
        for p in weights.iter_mut().chain(biases.iter_mut()) {
            p.step(&adam, opts.learning_rate, &mut grads);
        }
        if let Some(lat) = latents.as_mut() {
            lat.step(&adam, opts.learning_rate, &mut grads);
        }
        if let Some(l) = loss_value {
            if !l.is_finite() {
                bail!("training diverged at scale {level}, step {step} (loss {l})");
            }
            progress.step(step + 1, l);
        }
    }
    let layers = weights
        .iter()
        .zip(&biases)
        .map(|(w, b)| (w.to_vec(), b.to_vec()))
        .collect();
    Ok(Fitted {
        layers,
        latents: latents.map(|l| l.to_vec()).unwrap_or_default(),
    })
}
