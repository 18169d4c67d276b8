//! Entropy-coded byte streams, the unit a scale section is built from.
//! Each stream says its component, codec, and decoded and coded lengths, so
//! a reader checks sizes before it decodes and can report a byte breakdown.

use crate::bytes::{ByteReader, PutLe};
use crate::error::FormatError;

/// How a stream's bytes are coded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    Raw,
    /// Zstandard at the given level (the level only matters when writing).
    Zstd(i32),
}

impl Codec {
    fn code(self) -> u8 {
        match self {
            Codec::Raw => 0,
            Codec::Zstd(_) => 1,
        }
    }
}

/// What a stream holds, as written in its header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Component {
    Occupancy = 1,
    Assignment = 2,
    Mask = 3,
    Codebook = 4,
    Values = 5,
}

/// Coded bytes per component of one section, for `strata info`'s breakdown.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamSizes {
    pub occupancy: u64,
    pub assignment: u64,
    pub masks: u64,
    pub codebooks: u64,
    pub values: u64,
    /// Stream and tensor headers, architecture description.
    pub framing: u64,
}

impl StreamSizes {
    fn add(&mut self, c: Component, n: u64) {
        match c {
            Component::Occupancy => self.occupancy += n,
            Component::Assignment => self.assignment += n,
            Component::Mask => self.masks += n,
            Component::Codebook => self.codebooks += n,
            Component::Values => self.values += n,
        }
    }
}

/// Bytes of a stream header: component, codec, reserved u16, raw and coded length.
pub(crate) const STREAM_HEADER_LEN: usize = 12;

/// Appends one stream, falling back to raw when coding does not shrink it.
pub(crate) fn write_stream(out: &mut Vec<u8>, component: Component, codec: Codec, raw: &[u8]) {
    let coded = match codec {
        Codec::Raw => None,
        Codec::Zstd(level) => compress(raw, level).filter(|c| c.len() < raw.len()),
    };
    let (codec, bytes) = match &coded {
        Some(c) => (codec, c.as_slice()),
        None => (Codec::Raw, raw),
    };
    out.put_u8(component as u8);
    out.put_u8(codec.code());
    out.put_u16(0);
    out.put_u32(raw.len() as u32);
    out.put_u32(bytes.len() as u32);
    out.extend_from_slice(bytes);
}

#[cfg(feature = "zstd-write")]
fn compress(raw: &[u8], level: i32) -> Option<Vec<u8>> {
    zstd::bulk::compress(raw, level).ok()
}

#[cfg(not(feature = "zstd-write"))]
fn compress(_raw: &[u8], _level: i32) -> Option<Vec<u8>> {
    None
}

/// Reads one stream that must decode to exactly `expected_len` bytes.
/// `budget` is what is left of the section's decoded-bytes allowance.
pub(crate) fn read_stream(
    r: &mut ByteReader,
    component: Component,
    expected_len: usize,
    budget: &mut u64,
    sizes: &mut StreamSizes,
) -> Result<Vec<u8>, FormatError> {
    let start = r.position();
    let comp = r.u8("stream component")?;
    let codec = r.u8("stream codec")?;
    r.u16("reserved")?;
    let raw_len = r.u32("stream length")? as usize;
    let coded_len = r.u32("stream coded length")? as usize;
    let name = format!("{component:?}").to_lowercase();
    if comp != component as u8 {
        return Err(FormatError::Invalid(format!(
            "expected a {name} stream at offset {start}, found component {comp}"
        )));
    }
    if raw_len != expected_len {
        return Err(FormatError::Invalid(format!(
            "{name} stream at offset {start} holds {raw_len} bytes, expected {expected_len}"
        )));
    }
    if raw_len as u64 > *budget {
        return Err(FormatError::TooLarge {
            what: "decoded section bytes",
            count: raw_len as u64,
            limit: *budget,
        });
    }
    *budget -= raw_len as u64;
    let coded = r.take(coded_len, &format!("{name} stream"))?;
    sizes.add(component, coded_len as u64);
    sizes.framing += STREAM_HEADER_LEN as u64;
    match codec {
        0 => {
            if coded_len != raw_len {
                return Err(FormatError::Invalid(format!(
                    "raw {name} stream at offset {start}: coded length {coded_len} != length {raw_len}"
                )));
            }
            Ok(coded.to_vec())
        }
        1 => decompress(coded, raw_len)
            .map_err(|e| FormatError::Invalid(format!("{name} stream at offset {start}: {e}"))),
        c => Err(FormatError::Invalid(format!(
            "{name} stream at offset {start}: unknown codec {c}"
        ))),
    }
}

/// Decodes a zstd frame into exactly `len` bytes, never allocating more.
fn decompress(coded: &[u8], len: usize) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let mut decoder = ruzstd::decoding::StreamingDecoder::new(coded)
        .map_err(|e| format!("bad zstd frame: {e}"))?;
    let mut out = Vec::with_capacity(len);
    // Read one byte past `len` to detect a frame that decodes to more.
    (&mut decoder)
        .take(len as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("zstd decode failed: {e}"))?;
    if out.len() != len {
        return Err(format!(
            "zstd frame decodes to {} bytes, expected {len}",
            out.len()
        ));
    }
    Ok(out)
}
