//! The GPU decoder for `.strata` archives, on wgpu: WGSL compute shaders
//! (`shaders/` at the repository root) evaluate each scale's block MLPs and
//! the pyramid's upsampling; the same code runs natively (Vulkan, Metal,
//! DX12) and in the browser (wasm32, WebGPU, with the `wasm-bindgen` API in
//! [`wasm`]).
//!
//! Every GPU stage has a CPU twin in `strata_format::decode` that the tests
//! hold it against; see `docs/ARCHITECTURE.md`.
//!
//! ```text
//! let mut dec = Decoder::new(Gpu::new_blocking()?)?;
//! for chunk in chunks { for p in dec.push(chunk)? { /* scale p.level is in */ } }
//! dec.finish()?;
//! let volume = dec.read_volume()?;   // native; in the browser use dec.texture(t)
//! ```

mod decoder;
mod error;
mod gpu;
mod grid;
mod grid_model;
mod model;
mod pipelines;
pub mod shaders;

#[cfg(target_arch = "wasm32")]
pub mod wasm;

pub use decoder::{decode_latents, Decoder, LatentJob, Progress};
pub use error::DecodeError;
pub use gpu::Gpu;
pub use grid::Grid;
pub use grid_model::GridScaleBuffers;
pub use model::{pack_params, shape_of, ScaleBuffers};
#[cfg(not(target_arch = "wasm32"))]
pub use pipelines::sine;
pub use pipelines::Pipelines;
pub use wgpu;
