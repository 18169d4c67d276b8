//! Entropy-coded byte streams, the unit a scale section is built from.
//! Each stream says its component, codec, and decoded and coded lengths, so
//! a reader checks sizes before it decodes and can report a byte breakdown.

use crate::bytes::{ByteReader, PutLe};
use crate::error::FormatError;
use crate::range_coder;

/// How a writer codes streams. On disk each stream names what it got:
/// 0 raw, 1 zstd, 2 the adaptive range coder over fixed-width symbols.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    Raw,
    /// Zstandard at the given level (the level only matters when writing).
    Zstd(i32),
    /// Per stream, the smallest of raw, zstd at this level and — for
    /// streams of fixed-width symbols (occupancy, masks, assignments,
    /// codebook indices) — the adaptive binary range coder.
    Best(i32),
}

const RAW: u8 = 0;
const ZSTD: u8 = 1;
const RANGE: u8 = 2;

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

/// Bytes of a stream header: component, codec, codec parameter u16, raw and coded length.
pub(crate) const STREAM_HEADER_LEN: usize = 12;

/// Appends one stream, coded as `codec` asks, falling back to raw when
/// coding does not shrink it. `symbol_bits`: the width of the fixed-width
/// symbols the stream packs LSB-first, if it does (what the range coder
/// models); written in the stream header's parameter field.
pub(crate) fn write_stream(
    out: &mut Vec<u8>,
    component: Component,
    codec: Codec,
    raw: &[u8],
    symbol_bits: Option<u8>,
) {
    let mut best: (u8, u16, Option<Vec<u8>>) = (RAW, 0, None);
    let len = |b: &(u8, u16, Option<Vec<u8>>)| b.2.as_ref().map_or(raw.len(), Vec::len);
    if let Codec::Zstd(level) | Codec::Best(level) = codec {
        if let Some(c) = compress(raw, level).filter(|c| c.len() < len(&best)) {
            best = (ZSTD, 0, Some(c));
        }
    }
    if let (Codec::Best(_), Some(bits)) = (codec, symbol_bits) {
        if let Some(c) = range_coder::encode_packed(raw, bits).filter(|c| c.len() < len(&best)) {
            best = (RANGE, bits as u16, Some(c));
        }
    }
    let bytes = best.2.as_deref().unwrap_or(raw);
    out.put_u8(component as u8);
    out.put_u8(best.0);
    out.put_u16(best.1);
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
    let param = r.u16("stream codec parameter")?;
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
        RAW => {
            if coded_len != raw_len {
                return Err(FormatError::Invalid(format!(
                    "raw {name} stream at offset {start}: coded length {coded_len} != length {raw_len}"
                )));
            }
            Ok(coded.to_vec())
        }
        ZSTD => decompress(coded, raw_len)
            .map_err(|e| FormatError::Invalid(format!("{name} stream at offset {start}: {e}"))),
        RANGE => u8::try_from(param)
            .map_err(|_| format!("symbol width {param}"))
            .and_then(|bits| range_coder::decode_packed(coded, bits, raw_len))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bytes::pack_bits;

    fn round_trip(codec: Codec, raw: &[u8], bits: Option<u8>) -> (u8, usize) {
        let mut out = Vec::new();
        write_stream(&mut out, Component::Values, codec, raw, bits);
        let mut r = ByteReader::new(&out);
        let mut budget = u64::MAX;
        let mut sizes = StreamSizes::default();
        let back = read_stream(
            &mut r,
            Component::Values,
            raw.len(),
            &mut budget,
            &mut sizes,
        )
        .unwrap();
        assert_eq!(back, raw);
        (out[1], out.len())
    }

    #[test]
    fn best_range_codes_peaked_indices_and_stays_exact() {
        // 9-bit indices concentrated near the middle, as k-means gives weights.
        let mut x = 1u64;
        let indices: Vec<u32> = (0..20_000)
            .map(|_| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                let u = ((x >> 33) % 1000) as f64 / 1000.0;
                (256.0 + 40.0 * (u - 0.5) * (1.0 + 3.0 * (u - 0.5).abs())) as u32
            })
            .collect();
        let raw = pack_bits(&indices, 9);
        let (zstd_codec, zstd_len) = round_trip(Codec::Zstd(19), &raw, Some(9));
        let (best_codec, best_len) = round_trip(Codec::Best(19), &raw, Some(9));
        assert_eq!(best_codec, RANGE);
        assert!(
            best_len < zstd_len,
            "{best_len} vs zstd ({zstd_codec}) {zstd_len}"
        );
        // Without a symbol width Best is zstd; raw stays raw.
        assert_eq!(round_trip(Codec::Best(19), &raw, None).1, zstd_len);
        assert_eq!(round_trip(Codec::Raw, &raw, Some(9)).0, RAW);
        // Uniform noise: nothing beats raw.
        let noise: Vec<u8> = (0..4000)
            .map(|_| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                (x >> 56) as u8
            })
            .collect();
        assert_eq!(round_trip(Codec::Best(19), &noise, Some(8)).0, RAW);
    }

    #[test]
    fn a_bad_symbol_width_is_an_error() {
        let mut out = Vec::new();
        write_stream(
            &mut out,
            Component::Values,
            Codec::Best(1),
            &[0u8; 64],
            Some(1),
        );
        assert_eq!(out[1], RANGE);
        out[2] = 17; // symbol width 17
        let mut budget = u64::MAX;
        let e = read_stream(
            &mut ByteReader::new(&out),
            Component::Values,
            64,
            &mut budget,
            &mut Default::default(),
        );
        assert!(e.unwrap_err().to_string().contains("symbol width 17"));
    }
}
