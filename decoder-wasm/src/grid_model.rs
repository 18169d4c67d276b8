//! One grid scale in GPU buffers: its channels (`GridSection::channels`: the
//! latents as f32, lifted sections' levels through the inverse 5/3 lifting,
//! computed on the CPU so that every decoder interpolates the same values),
//! its synthesis parameters as
//! stored (binary16 values in f32) in a uniform buffer (at most 12 levels
//! and 4 layers of 64: 53 KB, within WebGPU's guaranteed 64 KiB), and the
//! per-level dims and offsets. The latents' entropy decoding stays on the CPU (the
//! parser's); the interpolation and the MLP, the per-voxel work, run on the
//! GPU.

use strata_format::grid::{latent_dims, GridSection};
use wgpu::util::DeviceExt;

use crate::error::DecodeError;
use crate::gpu::Gpu;
use crate::model::to_bytes;

pub struct GridScaleBuffers {
    /// (inputs, outputs) of the synthesis layers: the generated shader's key.
    pub shapes: Vec<(usize, usize)>,
    /// Dims of the scale's grid.
    pub grid: [usize; 4],
    /// Synthesis parameters as stored (baked into the shader for big grids).
    pub params: Vec<f32>,
    /// The same, zero-padded to whole vec4s (uniform).
    pub synthesis: wgpu::Buffer,
    /// Level 0's channel (f32).
    pub channels0: wgpu::Buffer,
    /// Levels 1, 2, … concatenated (f32; 4 bytes when there are none).
    pub coarse_channels: wgpu::Buffer,
    /// Per level its dims, then per level its offset in `coarse_channels`,
    /// one `vec4<u32>` each (the shader's `level_dims`, `level_offset`).
    pub levels: Vec<u32>,
}

impl GridScaleBuffers {
    /// `section`'s buffers for a scale grid of `dims`; a count that does not
    /// fit the dims is a usage error, a buffer past the device's limits
    /// `TooLarge`.
    pub fn new(
        gpu: &Gpu,
        section: &GridSection,
        dims: [usize; 4],
    ) -> Result<GridScaleBuffers, DecodeError> {
        let arch = &section.arch;
        arch.check()?;
        let level = section.level;
        let shapes = arch.synthesis_shapes();
        if section.synthesis.len() != arch.synthesis_params()
            || section.latents.len() != arch.levels as usize
        {
            return Err(DecodeError::Usage(format!(
                "grid scale {level}: its parameters or latent levels do not match its architecture"
            )));
        }
        if section
            .lifting
            .as_ref()
            .is_some_and(|l| l.gains.len() + 1 != section.latents.len())
        {
            return Err(DecodeError::Usage(format!(
                "grid scale {level}: its band gains do not match its latent levels"
            )));
        }
        let mut levels = Vec::with_capacity(8 * section.latents.len());
        let mut offsets = Vec::with_capacity(4 * section.latents.len());
        // Where each level ≥ 1 starts among the coarser channels.
        let mut coarse_len = 0usize;
        for (l, values) in section.latents.iter().enumerate() {
            let ld = latent_dims(dims, l as u8);
            if values.len() != ld.iter().product::<usize>() {
                return Err(DecodeError::Usage(format!(
                    "grid scale {level}: latent level {l} holds {} values, not those of {ld:?}",
                    values.len()
                )));
            }
            for d in ld {
                levels.push(u32::try_from(d).map_err(|_| {
                    DecodeError::TooLarge(format!("grid dimension {d} exceeds 2³²"))
                })?);
            }
            offsets.extend([coarse_len as u32, 0, 0, 0]);
            if l > 0 {
                coarse_len += values.len();
            }
        }
        levels.extend(offsets);
        let mut channels = section.channels(dims).into_iter();
        let channels0 = channels.next().unwrap_or_default();
        let coarse: Vec<f32> = channels.flatten().collect();
        let mut params = section.synthesis.clone();
        params.resize(params.len().next_multiple_of(4), 0.0);
        gpu.check_buffer(
            &format!("grid scale {level}'s finest latents"),
            4 * section.latents[0].len() as u64,
        )?;
        gpu.check_buffer(
            &format!("grid scale {level}'s coarser latents"),
            4 * coarse.len() as u64,
        )?;
        let max_uniform = gpu.limits().max_uniform_buffer_binding_size;
        if 4 * params.len() as u64 > max_uniform {
            return Err(DecodeError::TooLarge(format!(
                "grid scale {level}'s synthesis network ({} parameters) exceeds this GPU's uniform buffer limit of {max_uniform} bytes",
                section.synthesis.len()
            )));
        }
        let storage = |label: &str, bytes: &[u8], usage: wgpu::BufferUsages| {
            // Bindings may not be empty.
            let bytes = if bytes.is_empty() {
                &[0u8; 4][..]
            } else {
                bytes
            };
            gpu.device
                .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some(label),
                    contents: bytes,
                    usage,
                })
        };
        Ok(GridScaleBuffers {
            shapes,
            grid: dims,
            params: section.synthesis.clone(),
            synthesis: storage(
                "synthesis parameters",
                &to_bytes(&params),
                wgpu::BufferUsages::UNIFORM,
            ),
            channels0: storage(
                "finest channel",
                &to_bytes(&channels0),
                wgpu::BufferUsages::STORAGE,
            ),
            coarse_channels: storage(
                "coarser channels",
                &to_bytes(&coarse),
                wgpu::BufferUsages::STORAGE,
            ),
            levels,
        })
    }
}
