//! The Strata encoder: volume → pyramid → blocks → clusters → trained MLPs →
//! scale sections → archive. One module per step; `encode` drives them.

pub mod blocks;
pub mod cluster;
pub mod encode;
pub mod metrics;
pub mod pyramid;
pub mod quantize;
pub mod train;

pub use encode::{encode, EncodeOptions, EncodeReport, Progress, Quantization};
