//! The fixed header and the section table that open every archive.
//! Byte layout: see `docs/FORMAT.md`, "Header" and "Section table".

use crate::bytes::{ByteReader, PutLe};
use crate::error::FormatError;
use crate::volume::DataType;
use crate::Limits;

/// `\x89STRATA\n`: the high byte catches 7-bit transfers, the newline catches
/// text-mode line-ending translation (the PNG trick).
pub const MAGIC: [u8; 8] = *b"\x89STRATA\n";
pub const VERSION: u16 = 1;
/// Bytes of the fixed header before the section table.
pub const FIXED_HEADER_LEN: usize = 80;
/// Bytes of one section table entry.
pub const ENTRY_LEN: usize = 24;
/// Hard cap on table entries, so the table itself can never be huge.
pub const MAX_SECTIONS: u32 = 4096;
/// Hard cap on the number of pyramid scales.
pub const MAX_SCALES: u8 = 16;
/// Hard cap on each block edge, in voxels.
pub const MAX_BLOCK_EDGE: u16 = 1024;

/// What a section holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SectionKind {
    /// One pyramid scale's block models.
    Scale,
    /// UTF-8 JSON: name, units, description, default transfer function.
    Metadata,
    /// A seam-removing post-filter (reserved: v1 decoders skip it).
    PostFilter,
    /// A kind this reader does not know; codes >= 0x80 are optional and skipped.
    Unknown(u8),
}

impl SectionKind {
    pub fn code(self) -> u8 {
        match self {
            SectionKind::Scale => 1,
            SectionKind::Metadata => 2,
            SectionKind::PostFilter => 3,
            SectionKind::Unknown(c) => c,
        }
    }

    pub fn from_code(code: u8) -> SectionKind {
        match code {
            1 => SectionKind::Scale,
            2 => SectionKind::Metadata,
            3 => SectionKind::PostFilter,
            c => SectionKind::Unknown(c),
        }
    }

    /// Name used in messages and in `strata info --json`.
    pub fn name(self) -> String {
        match self {
            SectionKind::Scale => "scale".into(),
            SectionKind::Metadata => "metadata".into(),
            SectionKind::PostFilter => "post-filter".into(),
            SectionKind::Unknown(c) => format!("unknown-{c}"),
        }
    }
}

/// One row of the section table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SectionEntry {
    pub kind: SectionKind,
    /// Pyramid level for scale sections, 0 = coarsest; 0 for other kinds.
    pub level: u8,
    /// CRC-32 (IEEE) of the section's bytes.
    pub checksum: u32,
    /// Absolute byte offset of the section in the archive.
    pub offset: u64,
    pub length: u64,
}

/// Everything the fixed header and the section table say.
#[derive(Clone, Debug, PartialEq)]
pub struct Header {
    /// Volume dimensions x, y, z, t (t = 1 for a 3D volume).
    pub dims: [u32; 4],
    /// Number of pyramid scales (1..=16).
    pub scales: u8,
    /// Block edge lengths x, y, z, the same at every scale.
    pub block: [u16; 3],
    /// Decoded values are in [0, 1]-normalized units; original = min + v·(max − min).
    pub value_min: f64,
    pub value_max: f64,
    pub dtype: DataType,
    pub spacing: [f32; 4],
    pub sections: Vec<SectionEntry>,
}

impl Header {
    /// Bytes of header + table + header checksum.
    pub fn encoded_len(&self) -> usize {
        encoded_len(self.sections.len())
    }

    /// Grid dims of pyramid level `level` (0 = coarsest): every axis of the
    /// finest grid halved, rounding up, once per level below the finest.
    pub fn level_dims(&self, level: u8) -> [usize; 4] {
        level_dims(self.dims, self.scales, level)
    }

    /// Number of blocks along x, y, z of a grid with `grid` dims.
    pub fn block_counts(&self, grid: [usize; 4]) -> [usize; 3] {
        [0, 1, 2].map(|a| grid[a].div_ceil(self.block[a] as usize))
    }

    /// x·y·z·t, saturating at `u64::MAX` (which no limit admits).
    pub fn voxel_count(&self) -> u64 {
        self.dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
            .unwrap_or(u64::MAX)
    }

    /// Serializes header, table and header checksum.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        out.extend_from_slice(&MAGIC);
        out.put_u16(VERSION);
        out.put_u16(0); // flags, reserved
        for d in self.dims {
            out.put_u32(d);
        }
        out.put_u8(self.scales);
        out.put_u8(self.dtype.code());
        out.put_u16(0);
        for b in self.block {
            out.put_u16(b);
        }
        out.put_u16(0);
        out.put_f64(self.value_min);
        out.put_f64(self.value_max);
        for s in self.spacing {
            out.put_f32(s);
        }
        out.put_u32(self.sections.len() as u32);
        out.put_u32(0);
        debug_assert_eq!(out.len(), FIXED_HEADER_LEN);
        for e in &self.sections {
            out.put_u8(e.kind.code());
            out.put_u8(e.level);
            out.put_u16(0);
            out.put_u32(e.checksum);
            out.put_u64(e.offset);
            out.put_u64(e.length);
        }
        let crc = crc32fast::hash(&out);
        out.put_u32(crc);
        out
    }

    /// Reads how many table entries follow, from the first
    /// `FIXED_HEADER_LEN` bytes; checks magic, version and the entry cap so a
    /// streaming reader knows how much to buffer before parsing the rest.
    pub fn peek_section_count(fixed: &[u8]) -> Result<usize, FormatError> {
        let mut r = ByteReader::new(fixed);
        if r.take(8, "magic")? != MAGIC {
            return Err(FormatError::BadMagic);
        }
        let version = r.u16("version")?;
        if version != VERSION {
            return Err(FormatError::UnsupportedVersion(version));
        }
        // Flags are reserved: a later version sets them to make v1 readers refuse.
        let flags = r.u16("flags")?;
        if flags != 0 {
            return Err(FormatError::BadHeader(format!(
                "unknown header flags {flags:#06x}"
            )));
        }
        let mut r = ByteReader::new(&fixed[72..]);
        let count = r.u32("section count")?;
        if count > MAX_SECTIONS {
            return Err(FormatError::TooLarge {
                what: "section table",
                count: count as u64,
                limit: MAX_SECTIONS as u64,
            });
        }
        Ok(count as usize)
    }

    /// Parses and validates header + table from the start of `bytes`.
    /// Returns `Truncated` if `bytes` is too short to hold them.
    pub fn parse(bytes: &[u8], limits: &Limits) -> Result<Header, FormatError> {
        if bytes.len() < FIXED_HEADER_LEN {
            // Still refuse a wrong magic early, so a non-archive fails fast.
            let n = bytes.len().min(8);
            if bytes[..n] != MAGIC[..n] {
                return Err(FormatError::BadMagic);
            }
            return Err(FormatError::Truncated(format!(
                "header needs {FIXED_HEADER_LEN} bytes, have {}",
                bytes.len()
            )));
        }
        let count = Header::peek_section_count(&bytes[..FIXED_HEADER_LEN])?;
        let total = encoded_len(count);
        if bytes.len() < total {
            return Err(FormatError::Truncated(format!(
                "header and section table need {total} bytes, have {}",
                bytes.len()
            )));
        }
        let stored = u32::from_le_bytes(bytes[total - 4..total].try_into().unwrap());
        let computed = crc32fast::hash(&bytes[..total - 4]);
        if stored != computed {
            return Err(FormatError::HeaderChecksum { stored, computed });
        }

        let mut r = ByteReader::new(&bytes[..total - 4]);
        r.take(12, "magic, version, flags")?;
        let mut dims = [0u32; 4];
        for d in &mut dims {
            *d = r.u32("dims")?;
        }
        let scales = r.u8("scales")?;
        let dtype_code = r.u8("dtype")?;
        r.u16("reserved")?;
        let mut block = [0u16; 3];
        for b in &mut block {
            *b = r.u16("block size")?;
        }
        r.u16("reserved")?;
        let value_min = r.f64("value min")?;
        let value_max = r.f64("value max")?;
        let mut spacing = [0f32; 4];
        for s in &mut spacing {
            *s = r.f32("spacing")?;
        }
        r.u32("section count")?;
        r.u32("reserved")?;
        let mut sections = Vec::with_capacity(count);
        for _ in 0..count {
            let kind = SectionKind::from_code(r.u8("section kind")?);
            let level = r.u8("section level")?;
            r.u16("reserved")?;
            let checksum = r.u32("section checksum")?;
            let offset = r.u64("section offset")?;
            let length = r.u64("section length")?;
            sections.push(SectionEntry {
                kind,
                level,
                checksum,
                offset,
                length,
            });
        }
        let dtype = DataType::from_code(dtype_code).ok_or_else(|| {
            FormatError::BadHeader(format!("unknown data type code {dtype_code}"))
        })?;
        let header = Header {
            dims,
            scales,
            block,
            value_min,
            value_max,
            dtype,
            spacing,
            sections,
        };
        header.validate(limits)?;
        Ok(header)
    }

    /// Checks every field against the format's rules and `limits`; the writer
    /// calls this too, so an archive that would not read is never written.
    pub fn validate(&self, limits: &Limits) -> Result<(), FormatError> {
        let bad = |m: String| Err(FormatError::BadHeader(m));
        if self.sections.len() > MAX_SECTIONS as usize {
            return Err(FormatError::TooLarge {
                what: "section table",
                count: self.sections.len() as u64,
                limit: MAX_SECTIONS as u64,
            });
        }
        if self.dims.contains(&0) {
            return bad(format!("zero dimension in {:?}", self.dims));
        }
        let voxels = self.voxel_count();
        if voxels > limits.max_voxels {
            return Err(FormatError::TooLarge {
                what: "volume voxel count",
                count: voxels,
                limit: limits.max_voxels,
            });
        }
        if self.scales == 0 || self.scales > MAX_SCALES {
            return bad(format!(
                "scale count {} not in 1..={MAX_SCALES}",
                self.scales
            ));
        }
        if self.block.iter().any(|&b| b == 0 || b > MAX_BLOCK_EDGE) {
            return bad(format!(
                "block size {:?} not in 1..={MAX_BLOCK_EDGE}",
                self.block
            ));
        }
        if !(self.value_min.is_finite() && self.value_max.is_finite())
            || self.value_min > self.value_max
        {
            return bad(format!(
                "value range [{}, {}] is not a finite interval",
                self.value_min, self.value_max
            ));
        }
        if self.spacing.iter().any(|s| !s.is_finite()) {
            return bad(format!("spacing {:?} is not finite", self.spacing));
        }
        let mut expected_offset = self.encoded_len() as u64;
        let mut next_level = 0u8;
        for (i, e) in self.sections.iter().enumerate() {
            if e.offset != expected_offset {
                return bad(format!(
                    "section {i} starts at {} but the previous one ends at {expected_offset}",
                    e.offset
                ));
            }
            if e.length > limits.max_section_bytes {
                return Err(FormatError::TooLarge {
                    what: "section length",
                    count: e.length,
                    limit: limits.max_section_bytes,
                });
            }
            expected_offset = expected_offset
                .checked_add(e.length)
                .ok_or_else(|| FormatError::BadHeader("section offsets overflow".into()))?;
            match e.kind {
                SectionKind::Scale => {
                    if e.level != next_level || i != e.level as usize {
                        return bad(format!(
                            "section {i} is scale level {}, expected level {next_level} \
                             (scale sections come first, coarsest first)",
                            e.level
                        ));
                    }
                    next_level += 1;
                }
                SectionKind::Unknown(c) if c < 0x80 => {
                    return bad(format!("section {i} has unknown required kind {c}"));
                }
                _ => {
                    if next_level != self.scales {
                        return bad(format!(
                            "section {i} ({}) comes before all {} scale sections",
                            e.kind.name(),
                            self.scales
                        ));
                    }
                    if e.level != 0 {
                        return bad(format!(
                            "section {i} is not a scale but has level {}",
                            e.level
                        ));
                    }
                }
            }
        }
        if next_level != self.scales {
            return bad(format!(
                "table lists {next_level} scale sections, header says {}",
                self.scales
            ));
        }
        Ok(())
    }
}

/// Bytes of a header whose table has `sections` entries.
pub fn encoded_len(sections: usize) -> usize {
    FIXED_HEADER_LEN + ENTRY_LEN * sections + 4
}

/// Grid dims of pyramid level `level` (0 = coarsest) of `scales` levels.
pub fn level_dims(dims: [u32; 4], scales: u8, level: u8) -> [usize; 4] {
    let halvings = scales.saturating_sub(1).saturating_sub(level) as u32;
    dims.map(|d| {
        let mut d = d as usize;
        for _ in 0..halvings {
            d = d.div_ceil(2);
        }
        d
    })
}
