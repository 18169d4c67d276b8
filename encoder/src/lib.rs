//! The Strata encoder: volume → pyramid → blocks → clusters → trained MLPs →
//! scale sections → archive. One module per step; `encode` drives them.

/// zstd level of written archives: the encoder's time is in training, so
/// the slow, small end of zstd costs nothing that shows.
pub const ZSTD_LEVEL: i32 = 19;

pub mod args;
pub mod blocks;
pub mod cluster;
pub mod encode;
pub mod grid;
pub mod metrics;
pub mod prune;
pub mod pyramid;
pub mod quantize;
pub mod rate;
pub mod train;

pub use encode::{encode, EncodeOptions, EncodeReport, ModelKind, Progress, Quantization};
