//! Assembles an archive: header and section table first (so a reader can
//! range-request any section), then scale sections coarsest first, then
//! optional sections.

use crate::error::FormatError;
use crate::header::{encoded_len, Header, SectionEntry, SectionKind};
use crate::model::ScaleRef;
use crate::stream::Codec;
use crate::volume::DataType;
use crate::Limits;

/// What the header says about the volume; the section table is filled in by
/// [`ArchiveWriter::finish`].
#[derive(Clone, Debug, PartialEq)]
pub struct VolumeInfo {
    pub dims: [u32; 4],
    pub scales: u8,
    pub block: [u16; 3],
    pub value_min: f64,
    pub value_max: f64,
    pub dtype: DataType,
    pub spacing: [f32; 4],
}

impl VolumeInfo {
    /// A header with no sections yet, for computing level dims and block counts.
    pub fn header(&self) -> Header {
        Header {
            dims: self.dims,
            scales: self.scales,
            block: self.block,
            value_min: self.value_min,
            value_max: self.value_max,
            dtype: self.dtype,
            spacing: self.spacing,
            sections: Vec::new(),
        }
    }
}

/// Collects sections in order and produces the archive bytes.
pub struct ArchiveWriter {
    header: Header,
    codec: Codec,
    sections: Vec<(SectionKind, u8, Vec<u8>)>,
}

impl ArchiveWriter {
    pub fn new(info: VolumeInfo, codec: Codec) -> ArchiveWriter {
        ArchiveWriter {
            header: info.header(),
            codec,
            sections: Vec::new(),
        }
    }

    /// The header as it stands (no section table yet).
    pub fn header(&self) -> &Header {
        &self.header
    }

    fn scales_written(&self) -> u8 {
        self.sections
            .iter()
            .filter(|(k, _, _)| *k == SectionKind::Scale)
            .count() as u8
    }

    /// Adds the next scale section; levels must come 0, 1, 2, ... in order.
    pub fn add_scale<'a>(&mut self, scale: impl Into<ScaleRef<'a>>) -> Result<(), FormatError> {
        let scale: ScaleRef = scale.into();
        let next = self.scales_written();
        if scale.level() != next || self.sections.len() != next as usize {
            return Err(FormatError::Invalid(format!(
                "scale level {} added where level {next} was due",
                scale.level()
            )));
        }
        scale.validate(&self.header)?;
        let bytes = scale.to_bytes(&self.header, self.codec);
        self.sections
            .push((SectionKind::Scale, scale.level(), bytes));
        Ok(())
    }

    /// Adds the metadata section (UTF-8 JSON text), after all scales.
    pub fn add_metadata(&mut self, json: &str) -> Result<(), FormatError> {
        self.add_optional(SectionKind::Metadata, json.as_bytes().to_vec())
    }

    /// Adds an optional section of any non-scale kind, after all scales.
    pub fn add_optional(&mut self, kind: SectionKind, bytes: Vec<u8>) -> Result<(), FormatError> {
        if kind == SectionKind::Scale {
            return Err(FormatError::Invalid(
                "use add_scale for scale sections".into(),
            ));
        }
        if self.scales_written() != self.header.scales {
            return Err(FormatError::Invalid(format!(
                "optional sections go after all {} scales",
                self.header.scales
            )));
        }
        self.sections.push((kind, 0, bytes));
        Ok(())
    }

    /// The finished archive. Fails if a scale is missing, or if the result
    /// would break the default [`Limits`] readers apply.
    pub fn finish(self) -> Result<Vec<u8>, FormatError> {
        let mut header = self.header;
        let mut offset = encoded_len(self.sections.len()) as u64;
        for (kind, level, bytes) in &self.sections {
            header.sections.push(SectionEntry {
                kind: *kind,
                level: *level,
                checksum: crc32fast::hash(bytes),
                offset,
                length: bytes.len() as u64,
            });
            offset += bytes.len() as u64;
        }
        header.validate(&Limits::default())?;
        let mut out = header.to_bytes();
        out.reserve(offset as usize - out.len());
        for (_, _, bytes) in &self.sections {
            out.extend_from_slice(bytes);
        }
        Ok(out)
    }
}
