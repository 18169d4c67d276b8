//! Cutting one level's target into blocks of one fixed size, per time step:
//! each block's voxels, its value range, and whether it is empty (a residual
//! too small to be worth a network).

use crate::pyramid::Grid;

/// One block of a level's target.
#[derive(Clone, Debug)]
pub struct Block {
    /// Index in the level's block order (x fastest, then y, z, t).
    pub index: usize,
    /// Voxels inside the grid along x, y, z (edge blocks are cut short).
    pub extent: [usize; 3],
    /// Target values of those voxels, x fastest.
    pub values: Vec<f32>,
    pub min: f32,
    pub max: f32,
    /// Mean of the squared values: the residual's energy.
    pub energy: f32,
}

impl Block {
    /// Values mapped to [-1, 1] by the block's own range (0 for a flat block),
    /// which is what the block's MLP learns.
    pub fn normalized(&self) -> Vec<f32> {
        let span = self.max - self.min;
        if span <= 0.0 {
            return vec![0.0; self.values.len()];
        }
        let s = 2.0 / span;
        self.values
            .iter()
            .map(|&v| (v - self.min) * s - 1.0)
            .collect()
    }
}

/// The blocks of one level: `counts` per axis per time step, `size` voxels each.
#[derive(Clone, Debug)]
pub struct BlockGrid {
    pub size: [usize; 3],
    pub counts: [usize; 4],
    pub blocks: Vec<Block>,
}

impl BlockGrid {
    /// Cuts `target` into blocks of `size`.
    pub fn cut(target: &Grid, size: [usize; 3]) -> BlockGrid {
        let [gx, gy, gz, gt] = target.dims;
        let counts = [
            gx.div_ceil(size[0]),
            gy.div_ceil(size[1]),
            gz.div_ceil(size[2]),
            gt,
        ];
        let mut blocks = Vec::with_capacity(counts.iter().product());
        for t in 0..gt {
            for bz in 0..counts[2] {
                for by in 0..counts[1] {
                    for bx in 0..counts[0] {
                        let origin = [bx * size[0], by * size[1], bz * size[2]];
                        let extent = [
                            size[0].min(gx - origin[0]),
                            size[1].min(gy - origin[1]),
                            size[2].min(gz - origin[2]),
                        ];
                        let mut values = Vec::with_capacity(extent.iter().product());
                        for z in 0..extent[2] {
                            for y in 0..extent[1] {
                                let start =
                                    target.index(origin[0], origin[1] + y, origin[2] + z, t);
                                values.extend_from_slice(&target.data[start..start + extent[0]]);
                            }
                        }
                        let (min, max) = values
                            .iter()
                            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                                (lo.min(v), hi.max(v))
                            });
                        let energy = (values.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>()
                            / values.len() as f64) as f32;
                        blocks.push(Block {
                            index: blocks.len(),
                            extent,
                            values,
                            min,
                            max,
                            energy,
                        });
                    }
                }
            }
        }
        BlockGrid {
            size,
            counts,
            blocks,
        }
    }
}
