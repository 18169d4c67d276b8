//! The CPU reference decoder: the executable definition of what an archive
//! means. Coarsest scale first: evaluate every occupied block's MLP over its
//! voxels into the level's grid, upsample the reconstruction so far to the
//! next level and add that level's blocks; finally de-normalize.
//!
//! The per-stage functions ([`eval_block`], [`upsample_add`]) are public so
//! that GPU shaders can be tested against them.

mod kernel;
mod model;
mod sine;
mod upsample;

pub use kernel::{eval_block, Scratch};
pub use model::{block_coord, BlockRef, DenseLayer, ScaleModel};
pub use sine::sin_approx;
pub use upsample::{taps, upsample, upsample_add};

use crate::error::FormatError;
use crate::header::Header;
use crate::model::ScaleRef;
use crate::volume::Volume;
#[cfg(feature = "parallel")]
use rayon::prelude::*;

/// Adds every occupied block's values into `grid` (the level's dims),
/// cropping blocks that stick out past the grid's edge.
pub fn add_blocks(model: &ScaleModel, grid: &mut [f32]) {
    let [gx, gy, gz, gt] = model.grid;
    let [bx, by, bz] = model.block;
    assert_eq!(grid.len(), gx * gy * gz * gt);
    let slabs_per_t = gz.div_ceil(bz);
    // Blocks in one z-slab of one time step write disjoint rows of the grid:
    // slabs are the unit of parallel work.
    let mut by_slab: Vec<Vec<&BlockRef>> = vec![Vec::new(); slabs_per_t * gt];
    for b in &model.blocks {
        by_slab[b.pos[3] * slabs_per_t + b.pos[2]].push(b);
    }
    let slab_len = bz * gx * gy;
    let frame_len = gx * gy * gz;
    // Chunks of one slab each; the last slab of a time step may be thinner.
    let mut chunks: Vec<&mut [f32]> = Vec::with_capacity(by_slab.len());
    for frame in grid.chunks_mut(frame_len) {
        let mut rest = frame;
        while !rest.is_empty() {
            let n = slab_len.min(rest.len());
            let (head, tail) = rest.split_at_mut(n);
            chunks.push(head);
            rest = tail;
        }
    }
    let work = |(slab, blocks): (&mut [f32], &Vec<&BlockRef>),
                scratch: &mut (Scratch, Vec<f32>)| {
        let (s, values) = scratch;
        for b in blocks {
            let (x0, y0, z0) = (b.pos[0] * bx, b.pos[1] * by, b.pos[2] * bz);
            // Only the part of the block inside the grid is evaluated.
            let (nx, ny, nz) = (bx.min(gx - x0), by.min(gy - y0), bz.min(gz - z0));
            values.resize(nx * ny * nz, 0.0);
            eval_block(model, b, [nx, ny, nz], values, s);
            for z in 0..nz {
                for y in 0..ny {
                    let src = &values[(z * ny + y) * nx..][..nx];
                    let dst = &mut slab[(z * gy + y0 + y) * gx + x0..][..nx];
                    for (d, &v) in dst.iter_mut().zip(src) {
                        *d += v;
                    }
                }
            }
        }
    };
    #[cfg(feature = "parallel")]
    chunks
        .into_par_iter()
        .zip(by_slab.par_iter())
        .for_each_init(|| (Scratch::default(), Vec::new()), |s, item| work(item, s));
    #[cfg(not(feature = "parallel"))]
    {
        let mut s = (Scratch::default(), Vec::new());
        chunks
            .into_iter()
            .zip(by_slab.iter())
            .for_each(|item| work(item, &mut s));
    }
}

/// The reconstruction so far, in normalized units, at the finest level
/// decoded yet. Feed it scale sections coarsest first as they arrive.
#[derive(Clone)]
pub struct Reconstruction {
    header: Header,
    levels_done: u8,
    dims: [usize; 4],
    data: Vec<f32>,
}

impl Reconstruction {
    pub fn new(header: &Header) -> Reconstruction {
        Reconstruction {
            header: header.clone(),
            levels_done: 0,
            dims: [0; 4],
            data: Vec::new(),
        }
    }

    /// Levels added so far.
    pub fn levels(&self) -> u8 {
        self.levels_done
    }

    /// The reconstruction at the finest level added so far, in normalized
    /// units, and that level's dims (empty before the first level). The
    /// encoder predicts the next level from this, exactly as decoders will.
    pub fn current(&self) -> (&[f32], [usize; 4]) {
        (&self.data, self.dims)
    }

    /// Adds the next level: upsamples what is there and adds its blocks.
    pub fn add_scale<'a>(&mut self, section: impl Into<ScaleRef<'a>>) -> Result<(), FormatError> {
        let section: ScaleRef = section.into();
        if section.level() != self.levels_done {
            return Err(FormatError::Invalid(format!(
                "scale level {} given where level {} was due",
                section.level(),
                self.levels_done
            )));
        }
        section.validate(&self.header)?;
        let dims = self.header.level_dims(self.levels_done);
        let mut grid = if self.levels_done == 0 {
            vec![0f32; dims.iter().product()]
        } else {
            upsample(&self.data, self.dims, dims)
        };
        match section {
            ScaleRef::Siren(s) => add_blocks(&ScaleModel::new(s, &self.header)?, &mut grid),
            ScaleRef::Grid(g) => {
                crate::grid::add_synthesis(g, dims, &mut grid);
                for filter in &g.loop_filters {
                    grid = filter.apply(dims, &grid);
                }
            }
        }
        self.dims = dims;
        self.data = grid;
        self.levels_done += 1;
        Ok(())
    }

    /// The reconstruction upsampled to full size and de-normalized. Needs at
    /// least one level.
    pub fn to_volume(&self) -> Result<Volume, FormatError> {
        if self.levels_done == 0 {
            return Err(FormatError::Invalid("no scale decoded yet".into()));
        }
        let mut dims = self.dims;
        let mut data = self.data.clone();
        for level in self.levels_done..self.header.scales {
            let next = self.header.level_dims(level);
            data = upsample(&data, dims, next);
            dims = next;
        }
        let (lo, span) = (
            self.header.value_min,
            self.header.value_max - self.header.value_min,
        );
        for v in &mut data {
            *v = (lo + *v as f64 * span) as f32;
        }
        let mut volume = Volume::new(dims, data)?;
        volume.dtype = self.header.dtype;
        volume.spacing = self.header.spacing;
        Ok(volume)
    }
}

/// Decodes the `max_scales` coarsest scales (all if `None`) into a
/// full-size volume in original units.
pub fn decode(
    header: &Header,
    scales: &[ScaleRef],
    max_scales: Option<u8>,
) -> Result<Volume, FormatError> {
    let n = max_scales.unwrap_or(header.scales).min(header.scales) as usize;
    if n == 0 {
        return Err(FormatError::Invalid("asked to decode zero scales".into()));
    }
    if scales.len() < n {
        return Err(FormatError::Invalid(format!(
            "{n} scales requested but only {} are usable",
            scales.len()
        )));
    }
    let mut rec = Reconstruction::new(header);
    for s in &scales[..n] {
        rec.add_scale(*s)?;
    }
    rec.to_volume()
}
