//! The `.strata` archive, version 1: its types, writer, streaming reader and
//! the CPU reference decoder. The byte layout is specified in `docs/FORMAT.md`.
//!
//! Data flows one way: [`ArchiveWriter`] turns [`ScaleSection`]s into bytes;
//! [`StreamReader`] (incremental) or [`Archive`] (in memory) turn bytes back
//! into sections; [`decode`] / [`Reconstruction`] turn sections into a [`Volume`].

mod bytes;
pub mod decode;
mod error;
pub mod grid;
mod header;
mod model;
mod range_coder;
mod reader;
mod scale;
mod stream;
pub mod synth;
mod tensor;
mod volume;
mod writer;

pub use decode::{decode, Reconstruction};
pub use error::FormatError;
pub use grid::{GridArchitecture, GridBreakdown, GridSection};
pub use header::{
    encoded_len as header_len, level_dims, Header, SectionEntry, SectionKind, FIXED_HEADER_LEN,
    MAGIC, MAX_BLOCK_EDGE, MAX_SCALES, MAX_SECTIONS, VERSION,
};
pub use model::ScaleRef;
pub use reader::{Archive, Event, RawSection, Section, StreamReader};
pub use scale::{
    block_count, Architecture, LayerParams, ScaleSection, SectionBreakdown, MAX_WIDTH,
};
pub use stream::{Codec, StreamSizes};
pub use tensor::{is_half, Tensor, TensorValues};
pub use volume::{voxel_count, DataType, Volume};
pub use writer::{ArchiveWriter, VolumeInfo};

/// Bounds a reader enforces before it allocates anything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest volume (x·y·z·t) accepted.
    pub max_voxels: u64,
    /// Largest single section, in archive bytes.
    pub max_section_bytes: u64,
    /// Largest decoded size of one section's streams and dense parameters.
    pub max_decoded_section_bytes: u64,
}

impl Default for Limits {
    /// 2³² voxels (16 GiB as f32), 1 GiB sections.
    fn default() -> Limits {
        Limits {
            max_voxels: 1 << 32,
            max_section_bytes: 1 << 30,
            max_decoded_section_bytes: 1 << 30,
        }
    }
}
