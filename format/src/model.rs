//! A scale section's model kind: SIREN blocks (ECNR) or latent grids. The
//! first byte of a scale section names it; everything that handles scales
//! (writer, reader, reconstruction) dispatches here and nowhere else.

use crate::error::FormatError;
use crate::grid::{GridSection, MODEL_GRID};
use crate::header::Header;
use crate::scale::{ScaleSection, MODEL_SIREN};
use crate::stream::Codec;

/// A scale section of either kind, borrowed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ScaleRef<'a> {
    Siren(&'a ScaleSection),
    Grid(&'a GridSection),
}

impl<'a> From<&'a ScaleSection> for ScaleRef<'a> {
    fn from(s: &'a ScaleSection) -> Self {
        ScaleRef::Siren(s)
    }
}

impl<'a> From<&'a GridSection> for ScaleRef<'a> {
    fn from(s: &'a GridSection) -> Self {
        ScaleRef::Grid(s)
    }
}

impl<'a> From<&'a Box<ScaleSection>> for ScaleRef<'a> {
    fn from(s: &'a Box<ScaleSection>) -> Self {
        ScaleRef::Siren(s)
    }
}

impl<'a> From<&'a Box<GridSection>> for ScaleRef<'a> {
    fn from(s: &'a Box<GridSection>) -> Self {
        ScaleRef::Grid(s)
    }
}

impl<'a> From<&&'a ScaleSection> for ScaleRef<'a> {
    fn from(s: &&'a ScaleSection) -> Self {
        ScaleRef::Siren(s)
    }
}

impl<'a> From<&ScaleRef<'a>> for ScaleRef<'a> {
    fn from(s: &ScaleRef<'a>) -> Self {
        *s
    }
}

impl<'a> ScaleRef<'a> {
    /// The SIREN section, if this scale is one.
    pub fn as_siren(&self) -> Option<&'a ScaleSection> {
        match self {
            ScaleRef::Siren(s) => Some(s),
            ScaleRef::Grid(_) => None,
        }
    }

    pub fn level(&self) -> u8 {
        match self {
            ScaleRef::Siren(s) => s.level,
            ScaleRef::Grid(g) => g.level,
        }
    }

    /// The model-kind byte.
    pub fn kind(&self) -> u8 {
        match self {
            ScaleRef::Siren(_) => MODEL_SIREN,
            ScaleRef::Grid(_) => MODEL_GRID,
        }
    }

    pub fn validate(&self, header: &Header) -> Result<(), FormatError> {
        match self {
            ScaleRef::Siren(s) => s.validate(header),
            ScaleRef::Grid(g) => g.validate(header),
        }
    }

    /// The section's bytes (`codec` applies to SIREN streams; grid latents
    /// have their own coder).
    pub fn to_bytes(&self, header: &Header, codec: Codec) -> Vec<u8> {
        match self {
            ScaleRef::Siren(s) => s.to_bytes(header, codec),
            ScaleRef::Grid(g) => g.to_bytes(header),
        }
    }
}
