//! Reading archives: [`StreamReader`], a state machine fed arbitrary byte
//! slices (one byte at a time works) that hands out the header and then each
//! section as soon as it is complete and its checksum verified; and
//! [`Archive`], for a whole file or a set of range-fetched sections.

use crate::error::FormatError;
use crate::grid::{GridBreakdown, GridSection, MODEL_GRID};
use crate::header::{Header, SectionEntry, SectionKind, FIXED_HEADER_LEN};
use crate::model::ScaleRef;
use crate::scale::{ScaleSection, SectionBreakdown};
use crate::Limits;

/// A section whose bytes arrived whole and match the table's checksum.
#[derive(Clone, Debug, PartialEq)]
pub struct RawSection {
    /// Position in the section table.
    pub index: usize,
    pub entry: SectionEntry,
    pub bytes: Vec<u8>,
}

/// A section decoded into what it means.
#[derive(Clone, Debug, PartialEq)]
pub enum Section {
    Scale(Box<ScaleSection>, SectionBreakdown),
    /// A scale of the `grid` model kind.
    Grid(Box<GridSection>, GridBreakdown),
    /// Metadata JSON text.
    Metadata(String),
    /// Sections this version does not interpret (post-filter, unknown optional kinds).
    Opaque(RawSection),
}

/// What [`StreamReader::poll`] found.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// More bytes are needed before anything new can be reported.
    NeedMore,
    Header(Header),
    Section(RawSection),
    /// Every section in the table has been delivered.
    End,
}

#[derive(Clone, Debug, PartialEq)]
enum State {
    FixedHeader,
    Table { total: usize },
    Section { index: usize },
    Done,
    Failed(FormatError),
}

/// Incremental archive reader; never blocks and never needs the whole file.
///
/// ```text
/// let mut reader = StreamReader::new(Limits::default());
/// reader.feed(chunk);
/// loop { match reader.poll()? { Event::NeedMore => break, ev => handle(ev) } }
/// ```
pub struct StreamReader {
    limits: Limits,
    state: State,
    /// Bytes received but not yet consumed; `buf[start..]` is live.
    buf: Vec<u8>,
    start: usize,
    /// Absolute archive offset of `buf[start]`.
    offset: u64,
    header: Option<Header>,
}

impl StreamReader {
    pub fn new(limits: Limits) -> StreamReader {
        StreamReader {
            limits,
            state: State::FixedHeader,
            buf: Vec::new(),
            start: 0,
            offset: 0,
            header: None,
        }
    }

    /// Appends bytes; call [`poll`](Self::poll) until it says `NeedMore`.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start >= self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The header, once it has been reported.
    pub fn header(&self) -> Option<&Header> {
        self.header.as_ref()
    }

    /// Absolute offset of the next byte the reader needs.
    pub fn position(&self) -> u64 {
        self.offset
    }

    fn available(&self) -> usize {
        self.buf.len() - self.start
    }

    fn consume(&mut self, n: usize) -> Vec<u8> {
        let out = self.buf[self.start..self.start + n].to_vec();
        self.start += n;
        self.offset += n as u64;
        out
    }

    /// Advances as far as the bytes fed so far allow. After an error the
    /// reader stays failed and repeats it; what it delivered before is valid.
    pub fn poll(&mut self) -> Result<Event, FormatError> {
        let result = self.step();
        if let Err(e) = &result {
            self.state = State::Failed(e.clone());
        }
        result
    }

    fn step(&mut self) -> Result<Event, FormatError> {
        match self.state.clone() {
            State::Failed(e) => Err(e),
            State::Done => Ok(Event::End),
            State::FixedHeader => {
                let avail = &self.buf[self.start..];
                // Refuse a wrong magic as soon as its bytes are in.
                let n = avail.len().min(8);
                if avail[..n] != crate::header::MAGIC[..n] {
                    return Err(FormatError::BadMagic);
                }
                if avail.len() < FIXED_HEADER_LEN {
                    return Ok(Event::NeedMore);
                }
                let count = Header::peek_section_count(&avail[..FIXED_HEADER_LEN])?;
                self.state = State::Table {
                    total: crate::header::encoded_len(count),
                };
                self.step()
            }
            State::Table { total } => {
                if self.available() < total {
                    return Ok(Event::NeedMore);
                }
                let header =
                    Header::parse(&self.buf[self.start..self.start + total], &self.limits)?;
                self.consume(total);
                self.state = if header.sections.is_empty() {
                    State::Done
                } else {
                    State::Section { index: 0 }
                };
                self.header = Some(header.clone());
                Ok(Event::Header(header))
            }
            State::Section { index } => {
                let header = self.header.as_ref().expect("header parsed before sections");
                let entry = header.sections[index].clone();
                let len = entry.length as usize; // bounded by limits in Header::validate
                if self.available() < len {
                    return Ok(Event::NeedMore);
                }
                let bytes = &self.buf[self.start..self.start + len];
                verify_checksum(index, &entry, bytes)?;
                let last = index + 1 == header.sections.len();
                let bytes = self.consume(len);
                self.state = if last {
                    State::Done
                } else {
                    State::Section { index: index + 1 }
                };
                Ok(Event::Section(RawSection {
                    index,
                    entry,
                    bytes,
                }))
            }
        }
    }

    /// Call when the input has ended: an error naming what is missing unless
    /// every section arrived.
    pub fn finish(&self) -> Result<(), FormatError> {
        match &self.state {
            State::Done => Ok(()),
            State::Failed(e) => Err(e.clone()),
            State::FixedHeader | State::Table { .. } => Err(FormatError::Truncated(format!(
                "stream ended after {} bytes, inside the header",
                self.offset as usize + self.available()
            ))),
            State::Section { index } => {
                let e = &self.header.as_ref().unwrap().sections[*index];
                Err(FormatError::Truncated(format!(
                    "section {index} ({}) at byte offset {} needs {} bytes, stream ended after {}",
                    e.kind.name(),
                    e.offset,
                    e.length,
                    self.available()
                )))
            }
        }
    }
}

fn verify_checksum(index: usize, entry: &SectionEntry, bytes: &[u8]) -> Result<(), FormatError> {
    let computed = crc32fast::hash(bytes);
    if computed != entry.checksum {
        return Err(FormatError::SectionChecksum {
            index,
            kind: entry.kind.name(),
            offset: entry.offset,
            stored: entry.checksum,
            computed,
        });
    }
    Ok(())
}

impl RawSection {
    /// A scale section of the `grid` model kind (whose latents are
    /// entropy-coded: the costly part of decoding it).
    pub fn is_grid(&self) -> bool {
        self.entry.kind == SectionKind::Scale && self.bytes.first() == Some(&MODEL_GRID)
    }

    fn wrap(&self, reason: String) -> FormatError {
        FormatError::BadSection {
            index: self.index,
            kind: self.entry.kind.name(),
            offset: self.entry.offset,
            reason,
        }
    }

    /// A grid section whose latents were decoded elsewhere from these bytes
    /// (see [`GridSection::parse_with_latents`]); errors as [`decode`](Self::decode)'s.
    pub fn decode_grid_with_latents(
        &self,
        header: &Header,
        limits: &Limits,
        latents: &[i32],
    ) -> Result<Section, FormatError> {
        if !self.is_grid() {
            return Err(self.wrap("not a grid scale section".into()));
        }
        let (s, b) =
            GridSection::parse_with_latents(&self.bytes, header, self.entry.level, limits, latents)
                .map_err(|e| self.wrap(e.to_string()))?;
        Ok(Section::Grid(Box::new(s), b))
    }

    /// Interprets the section's bytes. Errors name the section and its offset.
    pub fn decode(&self, header: &Header, limits: &Limits) -> Result<Section, FormatError> {
        let wrap = |reason: String| self.wrap(reason);
        match self.entry.kind {
            SectionKind::Scale if self.is_grid() => {
                let (s, b) = GridSection::parse(&self.bytes, header, self.entry.level, limits)
                    .map_err(|e| wrap(e.to_string()))?;
                Ok(Section::Grid(Box::new(s), b))
            }
            SectionKind::Scale => {
                let (s, b) = ScaleSection::parse(&self.bytes, header, self.entry.level, limits)
                    .map_err(|e| wrap(e.to_string()))?;
                Ok(Section::Scale(Box::new(s), b))
            }
            SectionKind::Metadata => String::from_utf8(self.bytes.clone())
                .map(Section::Metadata)
                .map_err(|_| wrap("metadata is not UTF-8 text".into())),
            _ => Ok(Section::Opaque(self.clone())),
        }
    }
}

/// An archive read from bytes in memory (a whole file, or a prefix of one).
#[derive(Clone, Debug)]
pub struct Archive {
    pub header: Header,
    /// One result per table entry: the decoded section, or why it is unusable
    /// (missing bytes, bad checksum, bad contents).
    pub sections: Vec<Result<Section, FormatError>>,
}

impl Archive {
    /// Parses the header, then checks and decodes every section on its own,
    /// so damage to one section does not hide the others. Fails only if the
    /// header itself is unusable.
    pub fn read(bytes: &[u8], limits: &Limits) -> Result<Archive, FormatError> {
        let header = Header::parse(bytes, limits)?;
        let sections = header
            .sections
            .iter()
            .enumerate()
            .map(|(index, entry)| {
                let end = entry.offset + entry.length;
                if end > bytes.len() as u64 {
                    return Err(FormatError::Truncated(format!(
                        "section {index} ({}) at byte offset {} needs {} bytes, only {} present",
                        entry.kind.name(),
                        entry.offset,
                        entry.length,
                        (bytes.len() as u64).saturating_sub(entry.offset)
                    )));
                }
                let b = &bytes[entry.offset as usize..end as usize];
                verify_checksum(index, entry, b)?;
                RawSection {
                    index,
                    entry: entry.clone(),
                    bytes: b.to_vec(),
                }
                .decode(&header, limits)
            })
            .collect();
        Ok(Archive { header, sections })
    }

    /// The scale sections that decoded, coarsest first, up to the first one
    /// that did not (a finer scale is useless without all coarser ones).
    pub fn usable_scales(&self) -> Vec<ScaleRef<'_>> {
        self.sections
            .iter()
            .map_while(|s| match s {
                Ok(Section::Scale(s, _)) => Some(ScaleRef::Siren(s)),
                Ok(Section::Grid(g, _)) => Some(ScaleRef::Grid(g)),
                _ => None,
            })
            .collect()
    }

    /// The first error among the sections, if any.
    pub fn first_error(&self) -> Option<&FormatError> {
        self.sections.iter().find_map(|s| s.as_ref().err())
    }

    pub fn metadata(&self) -> Option<&str> {
        self.sections.iter().find_map(|s| match s {
            Ok(Section::Metadata(m)) => Some(m.as_str()),
            _ => None,
        })
    }
}
