//! A scale's block models unpacked for evaluation: dense f32 weights with ω0
//! folded into the sine layers, transposed so each output's weights are
//! contiguous. Built once per scale from a [`ScaleSection`].

use crate::error::FormatError;
use crate::header::Header;
use crate::scale::ScaleSection;

/// One MLP layer of all MLPs: `weights[m][out][in]` (note: transposed from
/// the archive's `[m][in][out]`), `biases[m][out]`; sine layers pre-scaled by ω0.
#[derive(Clone, Debug)]
pub struct DenseLayer {
    pub inputs: usize,
    pub outputs: usize,
    pub weights: Vec<f32>,
    pub biases: Vec<f32>,
}

impl DenseLayer {
    pub fn weights_of(&self, mlp: usize) -> &[f32] {
        let n = self.inputs * self.outputs;
        &self.weights[mlp * n..(mlp + 1) * n]
    }

    pub fn biases_of(&self, mlp: usize) -> &[f32] {
        &self.biases[mlp * self.outputs..(mlp + 1) * self.outputs]
    }
}

/// An occupied block and what it needs to be evaluated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockRef {
    /// Block position (x, y, z, t) in block units.
    pub pos: [usize; 4],
    /// Index among the occupied blocks (for latents and ranges).
    pub slot: usize,
    pub mlp: usize,
}

/// Everything needed to evaluate one scale.
#[derive(Clone, Debug)]
pub struct ScaleModel {
    pub level: u8,
    /// Grid dims x, y, z, t of this level.
    pub grid: [usize; 4],
    pub block: [usize; 3],
    pub latent_dim: usize,
    pub layers: Vec<DenseLayer>,
    pub blocks: Vec<BlockRef>,
    /// (lo, hi) per occupied block.
    pub ranges: Vec<[f32; 2]>,
    pub latents: Vec<f32>,
}

impl ScaleModel {
    pub fn new(section: &ScaleSection, header: &Header) -> Result<ScaleModel, FormatError> {
        section.validate(header)?;
        let grid = header.level_dims(section.level);
        let counts = header.block_counts(grid);
        let omega0 = section.arch.omega0;
        let shapes = section.arch.layer_shapes();
        let last = shapes.len() - 1;
        let m = section.n_mlps as usize;
        let layers = section
            .layers
            .iter()
            .zip(&shapes)
            .enumerate()
            .map(|(l, (p, &(inputs, outputs)))| {
                let scale = if l == last { 1.0 } else { omega0 };
                let w = p.weights.dense();
                let mut weights = vec![0f32; w.len()];
                for k in 0..m {
                    let base = k * inputs * outputs;
                    for i in 0..inputs {
                        for o in 0..outputs {
                            weights[base + o * inputs + i] = w[base + i * outputs + o] * scale;
                        }
                    }
                }
                let biases = p.biases.dense().into_iter().map(|b| b * scale).collect();
                DenseLayer {
                    inputs,
                    outputs,
                    weights,
                    biases,
                }
            })
            .collect();
        let mut blocks = Vec::with_capacity(section.assignment.len());
        let occupied = section.occupancy.iter().enumerate().filter(|(_, &o)| o);
        for (slot, (b, _)) in occupied.enumerate() {
            let x = b % counts[0];
            let y = (b / counts[0]) % counts[1];
            let z = (b / (counts[0] * counts[1])) % counts[2];
            let t = b / (counts[0] * counts[1] * counts[2]);
            blocks.push(BlockRef {
                pos: [x, y, z, t],
                slot,
                mlp: section.assignment[slot] as usize,
            });
        }
        let ranges = section
            .ranges
            .dense()
            .chunks_exact(2)
            .map(|c| [c[0], c[1]])
            .collect();
        Ok(ScaleModel {
            level: section.level,
            grid,
            block: header.block.map(|b| b as usize),
            latent_dim: section.arch.latent_dim as usize,
            layers,
            blocks,
            ranges,
            latents: section.latents.dense(),
        })
    }

    pub fn latent_of(&self, slot: usize) -> &[f32] {
        &self.latents[slot * self.latent_dim..(slot + 1) * self.latent_dim]
    }

    /// Widest layer, for sizing scratch buffers.
    pub fn max_width(&self) -> usize {
        self.layers
            .iter()
            .map(|l| l.outputs.max(l.inputs))
            .max()
            .unwrap_or(1)
    }
}

/// Block-local coordinate of voxel `k` of a block edge of `n` voxels:
/// evenly spaced over [-1, 1] (0 for a one-voxel edge).
pub fn block_coord(k: usize, n: usize) -> f32 {
    if n <= 1 {
        0.0
    } else {
        -1.0 + 2.0 * k as f32 / (n - 1) as f32
    }
}
