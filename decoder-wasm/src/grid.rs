//! A level's grid: a storage buffer of f32, x fastest, dims (x, y, z, t), in
//! normalized units — the GPU side of the CPU decoder's `Vec<f32>` grids.

use wgpu::util::DeviceExt;

use crate::error::DecodeError;
use crate::gpu::Gpu;
use crate::model::to_bytes;

pub struct Grid {
    pub dims: [usize; 4],
    pub buffer: wgpu::Buffer,
}

const USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

fn bytes_of(gpu: &Gpu, dims: [usize; 4]) -> Result<u64, DecodeError> {
    let n = dims
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d as u64))
        .and_then(|n| n.checked_mul(4))
        .ok_or_else(|| DecodeError::TooLarge(format!("grid {dims:?} is too large")))?;
    gpu.check_buffer(
        &format!("a {}×{}×{}×{} grid", dims[0], dims[1], dims[2], dims[3]),
        n,
    )?;
    Ok(n)
}

impl Grid {
    /// A grid of zeros (wgpu zero-initializes new buffers).
    pub fn zeros(gpu: &Gpu, dims: [usize; 4]) -> Result<Grid, DecodeError> {
        let size = bytes_of(gpu, dims)?.max(4);
        let buffer = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("grid"),
            size,
            usage: USAGE,
            mapped_at_creation: false,
        });
        Ok(Grid { dims, buffer })
    }

    /// A grid holding `data` (for tests of single stages).
    pub fn from_data(gpu: &Gpu, dims: [usize; 4], data: &[f32]) -> Result<Grid, DecodeError> {
        bytes_of(gpu, dims)?;
        if data.len() != dims.iter().product::<usize>() {
            return Err(DecodeError::Usage(format!(
                "{} values given for a grid of {dims:?}",
                data.len()
            )));
        }
        let buffer = gpu
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("grid"),
                contents: &to_bytes(data),
                usage: USAGE,
            });
        Ok(Grid { dims, buffer })
    }

    pub fn len(&self) -> usize {
        self.dims.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Copies the grid back to the CPU (waits for the GPU).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn read(&self, gpu: &Gpu) -> Result<Vec<f32>, DecodeError> {
        read_buffer(gpu, &self.buffer, 4 * self.len() as u64).map(|b| {
            b.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        })
    }
}

/// The first `size` bytes of `src` (which needs COPY_SRC), through a staging
/// buffer; blocks until the GPU is done.
#[cfg(not(target_arch = "wasm32"))]
pub fn read_buffer(gpu: &Gpu, src: &wgpu::Buffer, size: u64) -> Result<Vec<u8>, DecodeError> {
    if size == 0 {
        return Ok(Vec::new());
    }
    let staging = gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("readback"),
        size,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut enc = gpu.device.create_command_encoder(&Default::default());
    enc.copy_buffer_to_buffer(src, 0, &staging, 0, size);
    gpu.queue.submit([enc.finish()]);
    let (tx, rx) = std::sync::mpsc::channel();
    staging.map_async(wgpu::MapMode::Read, .., move |r| {
        let _ = tx.send(r);
    });
    gpu.device
        .poll(wgpu::PollType::wait_indefinitely())
        .map_err(|e| DecodeError::Gpu(e.to_string()))?;
    gpu.check()?;
    rx.recv()
        .map_err(|_| DecodeError::Gpu("buffer mapping was dropped".into()))?
        .map_err(|e| DecodeError::Gpu(format!("cannot map the readback buffer: {e}")))?;
    let view = staging
        .get_mapped_range(..)
        .map_err(|e| DecodeError::Gpu(format!("cannot read the readback buffer: {e}")))?;
    let out = view.to_vec();
    drop(view);
    staging.unmap();
    Ok(out)
}
