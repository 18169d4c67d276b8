//! The progressive GPU decoder: bytes in (any slices, as they arrive), the
//! streaming reader's events drive it, and each scale section, once whole
//! and checked, is decoded on the GPU at once — upsample the reconstruction
//! so far into the new level's grid, add the level's blocks (SIREN) or its
//! synthesis (grid) — the CPU `Reconstruction` step for step.
//!
//! What a viewer gets: after each scale, one 3D r32float texture per time
//! step at the dims of the finest level decoded so far, in normalized units
//! ([0, 1] over the header's value range). Textures are written on demand
//! (`texture(t)`): a 4D viewer pays only for the time steps it shows. The
//! level's dims rather than the full size: the coarse preview costs 1/8 (or
//! 1/64) of the memory and the viewer's sampler does the trilinear
//! upsampling; `read_volume` (native) gives the full-size volume in original
//! units, upsampled on the GPU.

use std::collections::VecDeque;

use strata_format::decode::ScaleModel;
use strata_format::{
    Event, FormatError, GridSection, Header, Limits, RawSection, ScaleSection, Section,
    StreamReader,
};

use crate::error::DecodeError;
use crate::gpu::Gpu;
use crate::grid::Grid;
use crate::model::ScaleBuffers;
use crate::pipelines::Pipelines;

/// Reported after each decoded scale.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Pyramid level just added (0 = coarsest).
    pub level: u8,
    /// Scales in the archive.
    pub scales: u8,
    /// Dims x, y, z, t of the level: those of its textures.
    pub dims: [usize; 4],
    /// Archive bytes received so far.
    pub bytes: u64,
}

pub struct Decoder {
    gpu: Gpu,
    pipelines: Pipelines,
    reader: StreamReader,
    limits: Limits,
    header: Option<Header>,
    grid: Option<Grid>,
    levels: u8,
    max_levels: u8,
    received: u64,
    textures: Vec<Option<wgpu::Texture>>,
    /// Scales decoded by the current `push`, kept when a later section of
    /// the same push fails (see `take_unreported`).
    unreported: Vec<Progress>,
    /// Sections read but not yet decoded, in archive order.
    queue: VecDeque<RawSection>,
    /// With `set_latent_offload(true)`: the grid section whose latents the
    /// caller is decoding elsewhere (the front of the archive's order).
    awaiting: Option<RawSection>,
    offload: bool,
    /// A read error met after sections still to be decoded: reported once
    /// they are.
    stream_error: Option<FormatError>,
}

/// A grid section whose latents are to be entropy-decoded off this thread:
/// `decode_latents(&job.header, job.section.index, &job.section.bytes)`
/// gives what `supply_latents` takes.
#[derive(Clone, Debug)]
pub struct LatentJob<'a> {
    /// The archive's header, encoded (`Header::to_bytes`).
    pub header: Vec<u8>,
    /// The section's bytes, checksum verified.
    pub section: &'a RawSection,
}

/// Entropy-decodes a grid section's latents (all levels, finest first,
/// concatenated): the costly half of decoding it, which the browser runs
/// in a Web Worker. `header` is `Header::to_bytes` of the archive's header.
pub fn decode_latents(
    header: &[u8],
    index: usize,
    section: &[u8],
) -> Result<Vec<i32>, DecodeError> {
    let limits = Limits::default();
    let header = Header::parse(header, &limits)?;
    let entry = header
        .sections
        .get(index)
        .ok_or_else(|| DecodeError::Usage(format!("no section {index} in the header")))?
        .clone();
    let raw = RawSection {
        index,
        entry,
        bytes: section.to_vec(),
    };
    match raw.decode(&header, &limits)? {
        Section::Grid(g, _) => Ok(g.flat_latents()),
        _ => Err(DecodeError::Usage(format!(
            "section {index} is not a grid scale"
        ))),
    }
}

impl Decoder {
    /// A decoder on `gpu`; compiles the fixed shaders.
    pub fn new(gpu: Gpu) -> Result<Decoder, DecodeError> {
        let pipelines = Pipelines::new(&gpu)?;
        Ok(Decoder {
            gpu,
            pipelines,
            reader: StreamReader::new(Limits::default()),
            limits: Limits::default(),
            header: None,
            grid: None,
            levels: 0,
            max_levels: u8::MAX,
            received: 0,
            textures: Vec::new(),
            unreported: Vec::new(),
            queue: VecDeque::new(),
            awaiting: None,
            offload: false,
            stream_error: None,
        })
    }

    /// Leaves the entropy decoding of grid sections to the caller: `push`
    /// stops at each one (`latent_job`) until `supply_latents` brings its
    /// latents, so a browser can decode them in a Web Worker.
    pub fn set_latent_offload(&mut self, on: bool) {
        self.offload = on;
    }

    /// Decode only the `n` coarsest scales; later ones are read and ignored.
    pub fn with_max_scales(mut self, n: u8) -> Decoder {
        self.max_levels = n;
        self
    }

    /// Forgets the archive, keeping the device and compiled shaders, to
    /// decode another one.
    pub fn reset(&mut self) {
        self.reader = StreamReader::new(self.limits.clone());
        self.header = None;
        self.grid = None;
        self.levels = 0;
        self.received = 0;
        self.textures.clear();
        self.unreported.clear();
        self.queue.clear();
        self.awaiting = None;
        self.stream_error = None;
    }

    /// Waits until the GPU has finished all submitted work (timing).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn wait(&self) -> Result<(), DecodeError> {
        self.gpu
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| DecodeError::Gpu(e.to_string()))?;
        self.gpu.check()
    }

    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// The archive's header, once its bytes have arrived.
    pub fn header(&self) -> Option<&Header> {
        self.header.as_ref()
    }

    /// Scales decoded so far.
    pub fn levels(&self) -> u8 {
        self.levels
    }

    /// Dims of the finest level decoded so far.
    pub fn dims(&self) -> Option<[usize; 4]> {
        self.grid.as_ref().map(|g| g.dims)
    }

    /// Takes the next bytes of the archive and decodes every scale they
    /// complete; returns one `Progress` per scale decoded. After an error
    /// the decoder keeps what it decoded before (its textures stay valid)
    /// and repeats the error. With latent offload it stops at a grid
    /// section until `supply_latents`.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<Progress>, DecodeError> {
        self.received += bytes.len() as u64;
        self.reader.feed(bytes);
        self.unreported.clear();
        if self.stream_error.is_none() {
            loop {
                match self.reader.poll() {
                    Ok(Event::NeedMore | Event::End) => break,
                    Ok(Event::Header(h)) => self.header = Some(h),
                    Ok(Event::Section(raw)) => self.queue.push_back(raw),
                    // The sections read before the damage are decoded first.
                    Err(e) => {
                        self.stream_error = Some(e);
                        break;
                    }
                }
            }
        }
        self.drain()?;
        Ok(std::mem::take(&mut self.unreported))
    }

    /// The grid section waiting for its latents (latent offload only).
    pub fn latent_job(&self) -> Option<LatentJob<'_>> {
        let section = self.awaiting.as_ref()?;
        Some(LatentJob {
            header: self.header.as_ref()?.to_bytes(),
            section,
        })
    }

    /// The latents of the section `latent_job` gave, decoded elsewhere by
    /// `decode_latents`: decodes that scale, then what queued behind it.
    pub fn supply_latents(&mut self, latents: &[i32]) -> Result<Vec<Progress>, DecodeError> {
        self.unreported.clear();
        let raw = self
            .awaiting
            .take()
            .ok_or_else(|| DecodeError::Usage("no grid section is waiting for latents".into()))?;
        let header = self
            .header
            .as_ref()
            .expect("the reader gives the header first");
        let section = raw.decode_grid_with_latents(header, &self.limits, latents)?;
        self.add_section(section)?;
        self.drain()?;
        Ok(std::mem::take(&mut self.unreported))
    }

    /// Decodes the queued sections in order, up to one whose latents are
    /// offloaded; then reports a read error met behind them.
    fn drain(&mut self) -> Result<(), DecodeError> {
        while self.awaiting.is_none() {
            let Some(raw) = self.queue.pop_front() else {
                break;
            };
            if self.offload && raw.is_grid() && raw.entry.level < self.max_levels {
                self.awaiting = Some(raw);
                break;
            }
            let header = self
                .header
                .as_ref()
                .expect("the reader gives the header first");
            let section = raw.decode(header, &self.limits)?;
            self.add_section(section)?;
        }
        if self.awaiting.is_none() && self.queue.is_empty() {
            if let Some(e) = &self.stream_error {
                return Err(e.clone().into());
            }
        }
        Ok(())
    }

    fn add_section(&mut self, section: Section) -> Result<(), DecodeError> {
        let p = match section {
            Section::Scale(s, _) if s.level < self.max_levels => self.add_scale(&s)?,
            Section::Grid(g, _) if g.level < self.max_levels => self.add_grid_scale(&g)?,
            _ => return Ok(()),
        };
        self.unreported.push(p);
        Ok(())
    }

    /// After a `push` that failed: the scales it decoded before the error
    /// (they are on the GPU and valid), so a viewer can still show them.
    pub fn take_unreported(&mut self) -> Vec<Progress> {
        std::mem::take(&mut self.unreported)
    }

    /// Call at the end of the input: an error naming what is missing unless
    /// the whole archive arrived.
    pub fn finish(&self) -> Result<(), DecodeError> {
        if let Some(raw) = &self.awaiting {
            return Err(DecodeError::Usage(format!(
                "section {} (grid scale {}) is still waiting for its latents",
                raw.index, raw.entry.level
            )));
        }
        Ok(self.reader.finish()?)
    }

    /// Decodes one scale section (the next level due) on the GPU.
    pub fn add_scale(&mut self, section: &ScaleSection) -> Result<Progress, DecodeError> {
        let header = self
            .header
            .as_ref()
            .ok_or_else(|| DecodeError::Usage("a scale given before the header".into()))?;
        if section.level != self.levels {
            return Err(DecodeError::Usage(format!(
                "scale level {} given where level {} was due",
                section.level, self.levels
            )));
        }
        let model = ScaleModel::new(section, header)?;
        let buffers = ScaleBuffers::new(&self.gpu, &model)?;
        let grid = Grid::zeros(&self.gpu, model.grid)?;
        if let Some(coarse) = &self.grid {
            self.pipelines.upsample_add(&self.gpu, coarse, &grid)?;
        }
        self.pipelines.eval_blocks(&self.gpu, &buffers, &grid)?;
        let progress = Progress {
            level: self.levels,
            scales: header.scales,
            dims: grid.dims,
            bytes: self.received,
        };
        self.textures = (0..grid.dims[3]).map(|_| None).collect();
        self.grid = Some(grid);
        self.levels += 1;
        Ok(progress)
    }

    /// Decodes one grid scale section (the next level due) on the GPU: the
    /// upsample-add from the coarser levels as for SIREN scales, then the
    /// synthesis, then the loop filter if it has one. Its latents were
    /// entropy-decoded by the parser (on the CPU; in wasm in the browser).
    pub fn add_grid_scale(&mut self, section: &GridSection) -> Result<Progress, DecodeError> {
        let header = self
            .header
            .as_ref()
            .ok_or_else(|| DecodeError::Usage("a scale given before the header".into()))?;
        if section.level != self.levels {
            return Err(DecodeError::Usage(format!(
                "scale level {} given where level {} was due",
                section.level, self.levels
            )));
        }
        section.validate(header)?;
        let dims = header.level_dims(section.level);
        let grid = Grid::zeros(&self.gpu, dims)?;
        if let Some(coarse) = &self.grid {
            self.pipelines.upsample_add(&self.gpu, coarse, &grid)?;
        }
        self.pipelines.add_synthesis(&self.gpu, section, &grid)?;
        let mut grid = grid;
        for filter in &section.loop_filters {
            let filtered = Grid::zeros(&self.gpu, dims)?;
            self.pipelines
                .loop_filter(&self.gpu, filter, &grid, &filtered)?;
            grid = filtered;
        }
        let progress = Progress {
            level: self.levels,
            scales: header.scales,
            dims: grid.dims,
            bytes: self.received,
        };
        self.textures = (0..grid.dims[3]).map(|_| None).collect();
        self.grid = Some(grid);
        self.levels += 1;
        Ok(progress)
    }

    /// Time step `t` of the finest level decoded so far as a 3D r32float
    /// texture (normalized units), written on first request after each scale.
    pub fn texture(&mut self, t: usize) -> Result<&wgpu::Texture, DecodeError> {
        let grid = self
            .grid
            .as_ref()
            .ok_or_else(|| DecodeError::Usage("no scale decoded yet".into()))?;
        if t >= grid.dims[3] {
            return Err(DecodeError::Usage(format!(
                "time step {t} asked of a volume with {} time steps",
                grid.dims[3]
            )));
        }
        if self.textures[t].is_none() {
            let max = self.gpu.limits().max_texture_dimension_3d as usize;
            let [x, y, z, _] = grid.dims;
            if x.max(y).max(z) > max {
                return Err(DecodeError::TooLarge(format!(
                    "a {x}×{y}×{z} level exceeds this GPU's 3D texture limit of {max} per side"
                )));
            }
            let texture = self.gpu.device.create_texture(&wgpu::TextureDescriptor {
                label: Some("strata level"),
                size: wgpu::Extent3d {
                    width: x as u32,
                    height: y as u32,
                    depth_or_array_layers: z as u32,
                },
                mip_level_count: 1,
                sample_count: 1,
                dimension: wgpu::TextureDimension::D3,
                format: wgpu::TextureFormat::R32Float,
                usage: wgpu::TextureUsages::STORAGE_BINDING
                    | wgpu::TextureUsages::TEXTURE_BINDING
                    | wgpu::TextureUsages::COPY_SRC,
                view_formats: &[],
            });
            self.gpu.check()?;
            self.pipelines.write_texture(&self.gpu, grid, t, &texture)?;
            self.textures[t] = Some(texture);
        }
        Ok(self.textures[t].as_ref().expect("written just above"))
    }

    /// The finest level decoded so far, normalized, and its dims.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn read_level(&self) -> Result<(Vec<f32>, [usize; 4]), DecodeError> {
        let grid = self
            .grid
            .as_ref()
            .ok_or_else(|| DecodeError::Usage("no scale decoded yet".into()))?;
        Ok((grid.read(&self.gpu)?, grid.dims))
    }

    /// The reconstruction so far upsampled to full size (on the GPU) and
    /// de-normalized: what `strata_format::Reconstruction::to_volume` gives.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn read_volume(&self) -> Result<strata_format::Volume, DecodeError> {
        let header = self
            .header
            .as_ref()
            .ok_or_else(|| DecodeError::Usage("no header yet".into()))?;
        let mut grid = self
            .grid
            .as_ref()
            .ok_or_else(|| DecodeError::Usage("no scale decoded yet".into()))?;
        let mut owned;
        for level in self.levels..header.scales {
            let next = Grid::zeros(&self.gpu, header.level_dims(level))?;
            self.pipelines.upsample_add(&self.gpu, grid, &next)?;
            owned = next;
            grid = &owned;
        }
        let mut data = grid.read(&self.gpu)?;
        let (lo, span) = (header.value_min, header.value_max - header.value_min);
        for v in &mut data {
            *v = (lo + *v as f64 * span) as f32;
        }
        let mut volume = strata_format::Volume::new(grid.dims, data)?;
        volume.dtype = header.dtype;
        volume.spacing = header.spacing;
        Ok(volume)
    }

    /// Time step `t`'s texture read back (tests: the texture equals the
    /// grid's frame).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn read_texture(&mut self, t: usize) -> Result<Vec<f32>, DecodeError> {
        let [x, y, z, _] = self.dims().unwrap_or_default();
        let texture = self.texture(t)?.clone();
        let row = (4 * x as u32).next_multiple_of(wgpu::COPY_BYTES_PER_ROW_ALIGNMENT);
        let size = row as u64 * (y * z) as u64;
        let buffer = self.gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("texture readback"),
            size,
            usage: wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc = self.gpu.device.create_command_encoder(&Default::default());
        enc.copy_texture_to_buffer(
            texture.as_image_copy(),
            wgpu::TexelCopyBufferInfo {
                buffer: &buffer,
                layout: wgpu::TexelCopyBufferLayout {
                    offset: 0,
                    bytes_per_row: Some(row),
                    rows_per_image: Some(y as u32),
                },
            },
            texture.size(),
        );
        self.gpu.queue.submit([enc.finish()]);
        let bytes = crate::grid::read_buffer(&self.gpu, &buffer, size)?;
        let mut out = Vec::with_capacity(x * y * z);
        for r in bytes.chunks_exact(row as usize) {
            out.extend(
                r[..4 * x]
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            );
        }
        Ok(out)
    }
}
