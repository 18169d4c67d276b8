//! The compute pipelines and one function per GPU stage, each the twin of a
//! CPU decoder function: `eval_blocks` ↔ `add_blocks`/`eval_block`,
//! `upsample_add` ↔ `upsample_add`, `write_texture` ↔ the grid's frame,
//! `sine` ↔ `sin_approx`, `add_synthesis` ↔ `strata_format::grid::add_synthesis`,
//! `loop_filter` ↔ `strata_format::grid::LoopFilter::apply`.
//! Block-evaluation and grid-synthesis pipelines are generated per MLP shape
//! and cached.

use std::collections::HashMap;

use strata_format::grid::loop_filter::MAX_CLASSES;
use strata_format::grid::LoopFilter;
use strata_format::GridSection;
use wgpu::util::DeviceExt;

use crate::error::DecodeError;
use crate::gpu::Gpu;
use crate::grid::Grid;
use crate::grid_model::GridScaleBuffers;
use crate::model::{u32_bytes, ScaleBuffers};
use crate::shaders::{self, MlpShape};

type SynthesisKey = (Vec<(usize, usize)>, Option<Vec<u32>>);

/// Grid size from which a synthesis shader is compiled for the section's
/// own parameters: lavapipe then runs it ~4× faster, worth the compile
/// (tens of ms) only on big grids.
const BAKE_FROM_VOXELS: usize = 1 << 20;

/// Baked pipelines kept (a decoder re-decoding the same archive reuses
/// them; different archives would otherwise pile up).
const BAKED_KEPT: usize = 16;

pub struct Pipelines {
    eval: HashMap<(MlpShape, bool), wgpu::ComputePipeline>,
    /// Keyed by layer shapes and, when baked, the parameters' bits.
    synthesis: HashMap<SynthesisKey, wgpu::ComputePipeline>,
    /// Grids of at least this many voxels get the parameters baked in.
    bake_from_voxels: usize,
    /// Explicit: a one-level synthesis does not read its coarser latents,
    /// and a derived layout would then lack their binding.
    synthesis_layout: wgpu::PipelineLayout,
    upsample: wgpu::ComputePipeline,
    loop_filter: wgpu::ComputePipeline,
    texture: wgpu::ComputePipeline,
    allow_staging: bool,
}

fn pipeline(gpu: &Gpu, label: &str, source: &str, entry: &str) -> wgpu::ComputePipeline {
    pipeline_with(gpu, label, source, entry, None)
}

fn pipeline_with(
    gpu: &Gpu,
    label: &str,
    source: &str,
    entry: &str,
    layout: Option<&wgpu::PipelineLayout>,
) -> wgpu::ComputePipeline {
    let module = gpu
        .device
        .create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(label),
            source: wgpu::ShaderSource::Wgsl(source.into()),
        });
    gpu.device
        .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(label),
            layout,
            module: &module,
            entry_point: Some(entry),
            compilation_options: Default::default(),
            cache: None,
        })
}

/// Bindings of grid_synthesis.wgsl: parameters and synthesis (uniform),
/// level 0's and the coarser latents (read), the grid (read-write).
fn synthesis_layout(gpu: &Gpu) -> wgpu::PipelineLayout {
    let buffer = |binding, ty| wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty,
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    };
    let storage = |read_only| wgpu::BufferBindingType::Storage { read_only };
    let bind = gpu
        .device
        .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("grid_synthesis"),
            entries: &[
                buffer(0, wgpu::BufferBindingType::Uniform),
                buffer(1, wgpu::BufferBindingType::Uniform),
                buffer(2, storage(true)),
                buffer(3, storage(true)),
                buffer(4, storage(false)),
            ],
        });
    gpu.device
        .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("grid_synthesis"),
            bind_group_layouts: &[Some(&bind)],
            immediate_size: 0,
        })
}

fn uniform(gpu: &Gpu, words: &[u32]) -> wgpu::Buffer {
    gpu.device
        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("stage parameters"),
            contents: &u32_bytes(words),
            usage: wgpu::BufferUsages::UNIFORM,
        })
}

fn u32_of(what: &str, v: usize) -> Result<u32, DecodeError> {
    u32::try_from(v).map_err(|_| DecodeError::TooLarge(format!("{what} ({v}) exceeds 2³²")))
}

fn dims_u32(dims: [usize; 4]) -> Result<[u32; 4], DecodeError> {
    let mut out = [0u32; 4];
    for (o, &d) in out.iter_mut().zip(&dims) {
        *o = u32_of("grid dimension", d)?;
    }
    Ok(out)
}

impl Pipelines {
    /// Compiles the fixed shaders; errors if any fails to compile.
    pub fn new(gpu: &Gpu) -> Result<Pipelines, DecodeError> {
        let p = Pipelines {
            eval: HashMap::new(),
            synthesis: HashMap::new(),
            synthesis_layout: synthesis_layout(gpu),
            bake_from_voxels: BAKE_FROM_VOXELS,
            upsample: pipeline(gpu, "upsample_add", shaders::UPSAMPLE_ADD, "upsample_add"),
            loop_filter: pipeline(gpu, "loop_filter", shaders::LOOP_FILTER, "loop_filter"),
            texture: pipeline(
                gpu,
                "write_texture",
                shaders::WRITE_TEXTURE,
                "write_texture",
            ),
            allow_staging: true,
        };
        gpu.check()?;
        Ok(p)
    }

    /// Read MLP parameters straight from the storage buffer even where they
    /// would fit in workgroup memory (the path for wide networks; tests).
    pub fn without_staging(mut self) -> Pipelines {
        self.allow_staging = false;
        self
    }

    /// Bake synthesis parameters into the shader for grids of at least
    /// `voxels` (0: always; `usize::MAX`: never) — tests of both paths.
    pub fn baking_synthesis_from(mut self, voxels: usize) -> Pipelines {
        self.bake_from_voxels = voxels;
        self
    }

    /// The block-evaluation pipeline for `shape`, compiled on first use.
    fn eval_pipeline(
        &mut self,
        gpu: &Gpu,
        shape: &MlpShape,
    ) -> Result<&wgpu::ComputePipeline, DecodeError> {
        let limit = gpu.limits().max_compute_workgroup_storage_size as usize;
        let first = shape.layers[0].1;
        let staged = self.allow_staging && 4 * (shape.params() + first) <= limit;
        if 4 * (first + 1) > limit {
            return Err(DecodeError::TooLarge(format!(
                "first hidden layer of {first} exceeds this GPU's workgroup memory ({limit} bytes)"
            )));
        }
        let key = (shape.clone(), staged);
        if !self.eval.contains_key(&key) {
            let src = shaders::eval_blocks_source(shape, staged);
            let p = pipeline(gpu, "eval_blocks", &src, "eval_blocks");
            gpu.check()?;
            self.eval.insert(key.clone(), p);
        }
        Ok(&self.eval[&key])
    }

    /// `grid += every occupied block of the scale`: the twin of
    /// `strata_format::decode::add_blocks`. Submits; does not wait.
    pub fn eval_blocks(
        &mut self,
        gpu: &Gpu,
        scale: &ScaleBuffers,
        grid: &Grid,
    ) -> Result<(), DecodeError> {
        if grid.dims != scale.grid {
            return Err(DecodeError::Usage(format!(
                "scale of grid {:?} evaluated into a grid of {:?}",
                scale.grid, grid.dims
            )));
        }
        if scale.n_blocks == 0 || grid.is_empty() {
            return Ok(());
        }
        let (gx, gy) = gpu.dispatch_2d("block evaluation", scale.n_blocks as u64)?;
        let g = dims_u32(grid.dims)?;
        let b = scale.block.map(|e| e as u32);
        let params = uniform(
            gpu,
            &[
                g[0],
                g[1],
                g[2],
                g[3],
                b[0],
                b[1],
                b[2],
                u32_of("block count", scale.n_blocks)?,
                gx,
                0,
                0,
                0,
            ],
        );
        let pipeline = self.eval_pipeline(gpu, &scale.shape)?;
        let bind = gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("eval_blocks"),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &[
                entry(0, &params),
                entry(1, &scale.params),
                entry(2, &scale.blocks),
                entry(3, &scale.block_data),
                entry(4, &grid.buffer),
            ],
        });
        dispatch(gpu, pipeline, &bind, (gx, gy, 1));
        gpu.check()
    }

    /// `grid += synthesis(section)`: the twin of
    /// `strata_format::grid::add_synthesis`, `grid` being the scale's grid.
    /// Submits; does not wait.
    pub fn add_synthesis(
        &mut self,
        gpu: &Gpu,
        section: &GridSection,
        grid: &Grid,
    ) -> Result<(), DecodeError> {
        let buffers = GridScaleBuffers::new(gpu, section, grid.dims)?;
        self.add_synthesis_buffers(gpu, &buffers, grid)
    }

    /// [`Pipelines::add_synthesis`] from buffers already uploaded.
    pub fn add_synthesis_buffers(
        &mut self,
        gpu: &Gpu,
        scale: &GridScaleBuffers,
        grid: &Grid,
    ) -> Result<(), DecodeError> {
        if grid.dims != scale.grid {
            return Err(DecodeError::Usage(format!(
                "grid scale of {:?} synthesized into a grid of {:?}",
                scale.grid, grid.dims
            )));
        }
        if grid.is_empty() {
            return Ok(());
        }
        // One workgroup per 64 voxels of a row.
        let [x, y, z, t] = grid.dims.map(|d| d as u64);
        let (gx, gy) = gpu.dispatch_2d("grid synthesis", x.div_ceil(64) * y * z * t)?;
        let g = dims_u32(grid.dims)?;
        let mut words = vec![g[0], g[1], g[2], g[3], gx, 0, 0, 0];
        words.extend_from_slice(&scale.levels);
        let params = uniform(gpu, &words);
        let bake =
            grid.len() >= self.bake_from_voxels && shaders::synthesis_can_bake(&scale.shapes);
        let key = (
            scale.shapes.clone(),
            bake.then(|| scale.params.iter().map(|v| v.to_bits()).collect()),
        );
        if !self.synthesis.contains_key(&key) {
            let src =
                shaders::grid_synthesis_source(&scale.shapes, bake.then_some(&scale.params[..]));
            let p = pipeline_with(
                gpu,
                "grid_synthesis",
                &src,
                "grid_synthesis",
                Some(&self.synthesis_layout),
            );
            gpu.check()?;
            if self.synthesis.keys().filter(|k| k.1.is_some()).count() >= BAKED_KEPT {
                self.synthesis.retain(|k, _| k.1.is_none());
            }
            self.synthesis.insert(key.clone(), p);
        }
        let pipeline = &self.synthesis[&key];
        let bind = gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("grid_synthesis"),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &[
                entry(0, &params),
                entry(1, &scale.synthesis),
                entry(2, &scale.channels0),
                entry(3, &scale.coarse_channels),
                entry(4, &grid.buffer),
            ],
        });
        dispatch(gpu, pipeline, &bind, (gx, gy, 1));
        gpu.check()
    }

    /// `fine += U(coarse)`: the twin of `strata_format::decode::upsample_add`.
    pub fn upsample_add(&self, gpu: &Gpu, coarse: &Grid, fine: &Grid) -> Result<(), DecodeError> {
        if !(0..4).all(|a| fine.dims[a].div_ceil(2) == coarse.dims[a]) {
            return Err(DecodeError::Usage(format!(
                "{:?} is not the parent of {:?}",
                coarse.dims, fine.dims
            )));
        }
        if fine.is_empty() {
            return Ok(());
        }
        let groups = (fine.len() as u64).div_ceil(256);
        let (gx, gy) = gpu.dispatch_2d("upsampling", groups)?;
        let (c, f) = (dims_u32(coarse.dims)?, dims_u32(fine.dims)?);
        let params = uniform(
            gpu,
            &[c[0], c[1], c[2], c[3], f[0], f[1], f[2], f[3], gx, 0, 0, 0],
        );
        let bind = gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("upsample_add"),
            layout: &self.upsample.get_bind_group_layout(0),
            entries: &[
                entry(0, &params),
                entry(1, &coarse.buffer),
                entry(2, &fine.buffer),
            ],
        });
        dispatch(gpu, &self.upsample, &bind, (gx, gy, 1));
        gpu.check()
    }

    /// `dst = filter(src)`: the twin of `strata_format::grid::LoopFilter::apply`.
    pub fn loop_filter(
        &self,
        gpu: &Gpu,
        filter: &LoopFilter,
        src: &Grid,
        dst: &Grid,
    ) -> Result<(), DecodeError> {
        if src.dims != dst.dims {
            return Err(DecodeError::Usage(format!(
                "a {:?} grid filtered into a {:?} one",
                src.dims, dst.dims
            )));
        }
        filter.check()?;
        if src.is_empty() {
            return Ok(());
        }
        // The thresholds' slots (activity, then value; the shader's
        // THRESHOLD_SLOTS), then each class's weights (the shape's
        // coefficients).
        let mut values = vec![0f32; MAX_CLASSES - 1];
        let (a, v) = (filter.thresholds.len(), filter.value_thresholds.len());
        values[..a].copy_from_slice(&filter.thresholds);
        values[a..a + v].copy_from_slice(&filter.value_thresholds);
        for k in 0..filter.classes() {
            values.extend_from_slice(&filter.weights(k));
        }
        let filters = gpu
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("loop filter"),
                contents: &crate::model::to_bytes(&values),
                usage: wgpu::BufferUsages::STORAGE,
            });
        let groups = (src.len() as u64).div_ceil(256);
        let (gx, gy) = gpu.dispatch_2d("loop filter", groups)?;
        let d = dims_u32(src.dims)?;
        let params = uniform(
            gpu,
            &[
                d[0],
                d[1],
                d[2],
                d[3],
                gx,
                (filter.classes() / filter.bands()) as u32,
                filter.clamp as u32,
                filter.shape.pairs() as u32,
                filter.bands() as u32,
                0,
                0,
                0,
            ],
        );
        let bind = gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("loop_filter"),
            layout: &self.loop_filter.get_bind_group_layout(0),
            entries: &[
                entry(0, &params),
                entry(1, &filters),
                entry(2, &src.buffer),
                entry(3, &dst.buffer),
            ],
        });
        dispatch(gpu, &self.loop_filter, &bind, (gx, gy, 1));
        gpu.check()
    }

    /// Writes time step `t` of `grid` into `texture` (3D, r32float, the
    /// grid's x, y, z dims, STORAGE_BINDING).
    pub fn write_texture(
        &self,
        gpu: &Gpu,
        grid: &Grid,
        t: usize,
        texture: &wgpu::Texture,
    ) -> Result<(), DecodeError> {
        let g = dims_u32(grid.dims)?;
        if t >= grid.dims[3] {
            return Err(DecodeError::Usage(format!(
                "time step {t} asked of a volume with {} time steps",
                grid.dims[3]
            )));
        }
        let params = uniform(gpu, &[g[0], g[1], g[2], g[3], t as u32, 0, 0, 0]);
        let view = texture.create_view(&Default::default());
        let bind = gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("write_texture"),
            layout: &self.texture.get_bind_group_layout(0),
            entries: &[
                entry(0, &params),
                entry(1, &grid.buffer),
                wgpu::BindGroupEntry {
                    binding: 2,
                    resource: wgpu::BindingResource::TextureView(&view),
                },
            ],
        });
        dispatch(
            gpu,
            &self.texture,
            &bind,
            (g[0].div_ceil(8), g[1].div_ceil(8), g[2].div_ceil(4)),
        );
        gpu.check()
    }
}

/// `sin_approx` on the GPU, element-wise (the sine's own test).
#[cfg(not(target_arch = "wasm32"))]
pub fn sine(gpu: &Gpu, values: &[f32]) -> Result<Vec<f32>, DecodeError> {
    let p = pipeline(gpu, "sine_test", &shaders::sine_test_source(), "sine_test");
    gpu.check()?;
    let grid = Grid::from_data(gpu, [values.len(), 1, 1, 1], values)?;
    let bind = gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("sine_test"),
        layout: &p.get_bind_group_layout(0),
        entries: &[entry(0, &grid.buffer)],
    });
    let groups = (values.len() as u32).div_ceil(64);
    dispatch(gpu, &p, &bind, (groups, 1, 1));
    grid.read(gpu)
}

fn entry(binding: u32, buffer: &wgpu::Buffer) -> wgpu::BindGroupEntry<'_> {
    wgpu::BindGroupEntry {
        binding,
        resource: buffer.as_entire_binding(),
    }
}

fn dispatch(
    gpu: &Gpu,
    pipeline: &wgpu::ComputePipeline,
    bind: &wgpu::BindGroup,
    groups: (u32, u32, u32),
) {
    let mut enc = gpu.device.create_command_encoder(&Default::default());
    {
        let mut pass = enc.begin_compute_pass(&Default::default());
        pass.set_pipeline(pipeline);
        pass.set_bind_group(0, bind, &[]);
        pass.dispatch_workgroups(groups.0, groups.1, groups.2);
    }
    gpu.queue.submit([enc.finish()]);
}
