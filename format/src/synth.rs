//! Archives with randomly initialized SIRENs, for tests and benchmarks that
//! need realistic sections before (or without) the encoder: the weights
//! follow the SIREN initialization, so activations look like a trained net's.

use crate::grid::{latent_dims, GridArchitecture, GridSection};
use crate::scale::{block_count, Architecture, LayerParams, ScaleSection};
use crate::tensor::Tensor;
use crate::writer::VolumeInfo;

/// A small deterministic generator (SplitMix64), so tests need no RNG crate.
#[derive(Clone, Debug)]
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Uniform in [-a, a).
    pub fn symmetric(&mut self, a: f32) -> f32 {
        (self.unit() * 2.0 - 1.0) * a
    }
}

/// The default architecture: latent 8, three hidden layers of 24, ω0 = 30.
pub fn default_architecture() -> Architecture {
    Architecture {
        latent_dim: 8,
        hidden: vec![24, 24, 24],
        omega0: 30.0,
    }
}

/// A scale section for `info` at `level` with SIREN-initialized weights;
/// each block is occupied with probability `occupancy` (level 0: always),
/// and `blocks_per_mlp` blocks share an MLP.
pub fn random_scale(
    info: &VolumeInfo,
    level: u8,
    arch: &Architecture,
    occupancy: f32,
    blocks_per_mlp: usize,
    rng: &mut SplitMix,
) -> ScaleSection {
    let header = info.header();
    let n = block_count(&header, level);
    let occupancy: Vec<bool> = (0..n)
        .map(|_| level == 0 || rng.unit() < occupancy)
        .collect();
    let occupied = occupancy.iter().filter(|&&b| b).count();
    let n_mlps = occupied.div_ceil(blocks_per_mlp.max(1)).max(1);
    let n_mlps = n_mlps.min(occupied.max(1));
    let assignment = (0..occupied).map(|i| (i % n_mlps) as u32).collect();
    // Residual scales have smaller amplitude than the coarsest.
    let amp = if level == 0 { 0.5 } else { 0.05 };
    let ranges = (0..occupied)
        .flat_map(|_| {
            let mid = if level == 0 { 0.5 } else { 0.0 } + rng.symmetric(amp * 0.2);
            let half = amp * (0.2 + rng.unit());
            [mid - half, mid + half]
        })
        .collect();
    let latents = (0..occupied * arch.latent_dim as usize)
        .map(|_| rng.symmetric(0.1))
        .collect();
    let shapes = arch.layer_shapes();
    let layers = shapes
        .iter()
        .enumerate()
        .map(|(l, &(i, o))| {
            let bound = if l == 0 {
                1.0 / i as f32
            } else {
                (6.0 / i as f32).sqrt() / arch.omega0
            };
            let w = (0..n_mlps * i * o).map(|_| rng.symmetric(bound)).collect();
            let b = (0..n_mlps * o).map(|_| rng.symmetric(bound)).collect();
            LayerParams {
                weights: Tensor::f32(w),
                biases: Tensor::f32(b),
            }
        })
        .collect();
    ScaleSection {
        level,
        arch: arch.clone(),
        n_mlps: n_mlps as u32,
        occupancy,
        assignment,
        ranges: Tensor::f32(ranges),
        latents: Tensor::f32(latents),
        layers,
    }
}

/// All scales of `info`, finer ones with the given block occupancy.
pub fn random_scales(
    info: &VolumeInfo,
    arch: &Architecture,
    occupancy: f32,
    seed: u64,
) -> Vec<ScaleSection> {
    let mut rng = SplitMix(seed);
    (0..info.scales)
        .map(|level| random_scale(info, level, arch, occupancy, 1 << level.min(2), &mut rng))
        .collect()
}

/// A grid scale section for `info` at `level`: latents drawn from a Laplace
/// of scale `spread` (mostly small integers, as trained ones are), random
/// synthesis weights (binary16) and a random fixed-point context network.
pub fn random_grid_scale(
    info: &VolumeInfo,
    level: u8,
    arch: &GridArchitecture,
    spread: f32,
    rng: &mut SplitMix,
) -> GridSection {
    let dims = info.header().level_dims(level);
    let latents = (0..arch.levels)
        .map(|l| {
            let ldims = latent_dims(dims, l);
            let has_parent = l + 1 < arch.levels;
            (0..ldims.iter().product())
                .map(|i| {
                    let u = rng.unit().max(1e-6);
                    let mag = -(u.ln()) * spread;
                    let sign = if rng.unit() < 0.5 { -1.0 } else { 1.0 };
                    // The format holds no latent where the coarser level's sample is.
                    if crate::grid::entropy::is_coded_at(has_parent, ldims, i) {
                        (sign * mag).round() as i32
                    } else {
                        0
                    }
                })
                .collect()
        })
        .collect();
    let synthesis = arch
        .synthesis_shapes()
        .iter()
        .flat_map(|&(i, o)| {
            let bound = (1.0 / i as f32).sqrt();
            (0..i * o + o)
                .map(|_| rng.symmetric(bound))
                .collect::<Vec<_>>()
        })
        .map(|w| half::f16::from_f32(w).to_f32())
        .collect();
    let context = (0..arch.context_params())
        .map(|_| (rng.symmetric(1.0) * 2048.0) as i16)
        .collect();
    GridSection {
        level,
        arch: arch.clone(),
        synthesis,
        context,
        latents,
        lifting: None,
        coder: crate::grid::entropy::Coder::Contextual,
        loop_filters: Vec::new(),
    }
}

/// `section` made a 5/3-lifted one (transform 1) with random band gains in
/// [0.5, 3) (binary16), its latents left as they are.
pub fn with_random_lifting(mut section: GridSection, rng: &mut SplitMix) -> GridSection {
    let gains = (1..section.arch.levels)
        .map(|_| std::array::from_fn(|_| half::f16::from_f32(0.5 + 2.5 * rng.unit()).to_f32()))
        .collect();
    section.lifting = Some(crate::grid::Lifting { gains });
    section
}

/// `section` with one more random loop filter of 1..=4 activity classes × 1..=3
/// value bands and either shape: taps near the identity (so the level stays
/// recognisable), ascending thresholds, clamped at random.
pub fn with_random_loop_filter(mut section: GridSection, rng: &mut SplitMix) -> GridSection {
    use crate::grid::loop_filter::{Shape, COEFFICIENT_FRAC};
    let classes = 1 + (rng.unit() * 4.0) as usize % 4;
    let bands = 1 + (rng.unit() * 3.0) as usize % 3;
    let shape = Shape::ALL[(rng.unit() * 2.0) as usize % 2];
    let mut ascending = |n: usize, lo: f32, span: f32| {
        let mut t: Vec<f32> = (0..n).map(|_| lo + span * rng.unit()).collect();
        t.sort_by(f32::total_cmp);
        t
    };
    let thresholds = ascending(classes - 1, 0.0, 0.2);
    let value_thresholds = ascending(bands - 1, 0.2, 0.6);
    let one = (1 << COEFFICIENT_FRAC) as f32;
    let coefficients = (0..classes * bands)
        .map(|_| {
            let mut c: Vec<i16> = (0..shape.coefficients())
                .map(|_| (rng.symmetric(0.02) * one) as i16)
                .collect();
            c[1] = ((0.6 + 0.3 * rng.unit()) * one) as i16;
            c
        })
        .collect();
    section.loop_filters.push(crate::grid::LoopFilter {
        shape,
        thresholds,
        value_thresholds,
        coefficients,
        clamp: rng.unit() < 0.5,
    });
    section
}
