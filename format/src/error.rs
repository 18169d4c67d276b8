//! Every way reading or decoding an archive can fail, each with enough
//! context (section, byte offset) to tell the user what is wrong.

use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq)]
pub enum FormatError {
    #[error("not a .strata archive (bad magic number)")]
    BadMagic,
    #[error("unsupported .strata version {0} (this reader knows version 1)")]
    UnsupportedVersion(u16),
    #[error("archive header is damaged: {0}")]
    BadHeader(String),
    #[error("archive header checksum mismatch (stored {stored:08x}, computed {computed:08x})")]
    HeaderChecksum { stored: u32, computed: u32 },
    #[error("section {index} ({kind}) at byte offset {offset}: checksum mismatch (stored {stored:08x}, computed {computed:08x})")]
    SectionChecksum {
        index: usize,
        kind: String,
        offset: u64,
        stored: u32,
        computed: u32,
    },
    #[error("section {index} ({kind}) at byte offset {offset}: {reason}")]
    BadSection {
        index: usize,
        kind: String,
        offset: u64,
        reason: String,
    },
    #[error("archive is truncated: {0}")]
    Truncated(String),
    #[error("{what} too large: {count} exceeds the limit of {limit}")]
    TooLarge {
        what: &'static str,
        count: u64,
        limit: u64,
    },
    #[error("{0}")]
    Invalid(String),
}
