//! One scale's MLPs and blocks in GPU storage buffers, from the CPU
//! decoder's unpacking (`ScaleModel`: dense f32 weights, ω0 folded in,
//! `[out][in]`). Codebook de-quantization and mask expansion stay on the CPU:
//! they touch each parameter once, which is no work next to evaluating every
//! voxel, and the CPU twin then defines them for both paths.

use strata_format::decode::ScaleModel;
use wgpu::util::DeviceExt;

use crate::error::DecodeError;
use crate::gpu::Gpu;
use crate::shaders::MlpShape;

pub struct ScaleBuffers {
    pub shape: MlpShape,
    pub grid: [usize; 4],
    pub block: [usize; 3],
    pub n_blocks: usize,
    /// `[mlp][params]`: every layer's weights then biases.
    pub params: wgpu::Buffer,
    /// Two `vec4<u32>` per block: position, then (slot, mlp, 0, 0).
    pub blocks: wgpu::Buffer,
    /// Per occupied block: lo, hi, latent.
    pub block_data: wgpu::Buffer,
}

/// The MLPs' parameters laid out as the shader reads them.
pub fn pack_params(model: &ScaleModel) -> Vec<f32> {
    let first = &model.layers[0];
    let n_mlps = first.biases.len() / first.outputs.max(1);
    let mut out = Vec::new();
    for m in 0..n_mlps {
        for layer in &model.layers {
            out.extend_from_slice(layer.weights_of(m));
            out.extend_from_slice(layer.biases_of(m));
        }
    }
    out
}

/// The shape the shader is generated for.
pub fn shape_of(model: &ScaleModel) -> MlpShape {
    MlpShape {
        latent: model.latent_dim,
        layers: model.layers.iter().map(|l| (l.inputs, l.outputs)).collect(),
    }
}

impl ScaleBuffers {
    pub fn new(gpu: &Gpu, model: &ScaleModel) -> Result<ScaleBuffers, DecodeError> {
        let params = pack_params(model);
        let mut blocks = Vec::with_capacity(model.blocks.len() * 8);
        for b in &model.blocks {
            blocks.extend(b.pos.map(|p| p as u32));
            blocks.extend([b.slot as u32, b.mlp as u32, 0, 0]);
        }
        let mut data = Vec::with_capacity(model.blocks.len() * (2 + model.latent_dim));
        for (slot, range) in model.ranges.iter().enumerate() {
            data.extend_from_slice(range);
            data.extend_from_slice(model.latent_of(slot));
        }
        let level = model.level;
        for (what, len) in [
            ("parameters", params.len()),
            ("block list", blocks.len()),
            ("block ranges and latents", data.len()),
        ] {
            gpu.check_buffer(&format!("scale {level}'s {what}"), 4 * len as u64)?;
        }
        let storage = |label: &str, bytes: &[u8]| {
            // Bindings may not be empty: a scale without occupied blocks
            // still gets a 4-byte buffer (never read).
            let bytes = if bytes.is_empty() {
                &[0u8; 4][..]
            } else {
                bytes
            };
            gpu.device
                .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some(label),
                    contents: bytes,
                    usage: wgpu::BufferUsages::STORAGE,
                })
        };
        Ok(ScaleBuffers {
            shape: shape_of(model),
            grid: model.grid,
            block: model.block,
            n_blocks: model.blocks.len(),
            params: storage("mlp parameters", &to_bytes(&params)),
            blocks: storage("blocks", &u32_bytes(&blocks)),
            block_data: storage("block ranges and latents", &to_bytes(&data)),
        })
    }
}

pub fn to_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub fn u32_bytes(v: &[u32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}
