//! The `grid` model kind of a scale section (Cool-chic / C3 carried to 3D):
//! a few integer latent grids at 1, 1/2, 1/4 … of the scale's resolution,
//! each interpolated to the scale's grid, and a tiny synthesis MLP per voxel
//! over the stacked channels. The latents are entropy-coded under a
//! fixed-point context model ([`entropy`]). Layout: `docs/FORMAT.md`,
//! "Grid section".

pub mod entropy;
pub mod lifting;
pub mod loop_filter;
mod synthesis;

pub use synthesis::{
    add_synthesis, channel, combine_rows, interpolation_taps, level_rows, synthesize_voxel,
    AxisTaps,
};

use crate::bytes::{ByteReader, PutLe};
use crate::error::FormatError;
use crate::header::Header;
use crate::Limits;
use entropy::{Coder, ContextNet, LaplaceTable, ParentLevel, CONTEXT_INPUTS};
pub use lifting::Lifting;
pub use loop_filter::LoopFilter;
#[cfg(feature = "parallel")]
use rayon::prelude::*;

/// Model-kind byte of a grid section (SIREN blocks are 1).
pub const MODEL_GRID: u8 = 2;
pub const MAX_LATENT_LEVELS: u8 = 12;
pub const MAX_SYNTHESIS_LAYERS: u8 = 4;
pub const MAX_SYNTHESIS_WIDTH: u16 = 64;
pub const MAX_CONTEXT_HIDDEN: u8 = 32;
/// Loop filters a section may chain: a second one, of its own classes,
/// takes some of what the first leaves.
pub const MAX_LOOP_FILTERS: usize = 2;

/// The shape of a grid scale's model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GridArchitecture {
    /// Latent levels; level l has ⌈n / 2^l⌉ samples along each axis of the
    /// scale's grid (time included).
    pub levels: u8,
    /// Hidden widths of the synthesis MLP (ReLU), inputs = `levels`, one
    /// linear output.
    pub synthesis: Vec<u16>,
    /// Hidden width of the context network (0: linear only).
    pub context_hidden: u8,
}

impl GridArchitecture {
    /// (inputs, outputs) of each synthesis layer.
    pub fn synthesis_shapes(&self) -> Vec<(usize, usize)> {
        let mut widths = vec![self.levels as usize];
        widths.extend(self.synthesis.iter().map(|&w| w as usize));
        widths.push(1);
        widths.windows(2).map(|w| (w[0], w[1])).collect()
    }

    /// Synthesis parameters: per layer its weights (inputs × outputs,
    /// outputs fastest) then its biases.
    pub fn synthesis_params(&self) -> usize {
        self.synthesis_shapes().iter().map(|(i, o)| i * o + o).sum()
    }

    /// Context parameters: W1 (inputs × hidden), b1, W2 (hidden × 2), the
    /// linear skip (inputs × 2), b2 (2).
    pub fn context_params(&self) -> usize {
        let (n, h) = (CONTEXT_INPUTS, self.context_hidden as usize);
        n * h + h + h * 2 + n * 2 + 2
    }

    /// Multiply-adds per voxel of the synthesis, interpolation included.
    pub fn macs_per_voxel(&self) -> usize {
        self.synthesis_shapes()
            .iter()
            .map(|(i, o)| i * o)
            .sum::<usize>()
            + 8 * self.levels as usize
    }

    pub fn check(&self) -> Result<(), FormatError> {
        let bad = |m: String| Err(FormatError::Invalid(m));
        if self.levels == 0 || self.levels > MAX_LATENT_LEVELS {
            return bad(format!(
                "{} latent levels, allowed 1..={MAX_LATENT_LEVELS}",
                self.levels
            ));
        }
        if self.synthesis.len() > MAX_SYNTHESIS_LAYERS as usize
            || self
                .synthesis
                .iter()
                .any(|&w| w == 0 || w > MAX_SYNTHESIS_WIDTH)
        {
            return bad(format!(
                "synthesis widths {:?}: at most {MAX_SYNTHESIS_LAYERS} layers of 1..={MAX_SYNTHESIS_WIDTH}",
                self.synthesis
            ));
        }
        if self.context_hidden > MAX_CONTEXT_HIDDEN {
            return bad(format!(
                "context width {} above {MAX_CONTEXT_HIDDEN}",
                self.context_hidden
            ));
        }
        Ok(())
    }
}

/// Dims of latent level `l` of a scale grid of `dims`: each axis ⌈n/2^l⌉.
pub fn latent_dims(dims: [usize; 4], l: u8) -> [usize; 4] {
    dims.map(|n| n.div_ceil(1 << l))
}

/// The first latent of a level that is not coded ([`entropy::is_coded`]) but
/// not 0 either.
fn uncoded_nonzero(values: &[i32], dims: [usize; 4], has_parent: bool) -> Option<usize> {
    values
        .iter()
        .enumerate()
        .position(|(i, &v)| v != 0 && !entropy::is_coded_at(has_parent, dims, i))
}

/// The contents of a grid scale section, exactly as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct GridSection {
    /// Pyramid level, 0 = coarsest.
    pub level: u8,
    pub arch: GridArchitecture,
    /// Synthesis parameters, each exactly representable as binary16.
    pub synthesis: Vec<f32>,
    /// Context parameters in Q12 fixed point.
    pub context: Vec<i16>,
    /// Latents per level, finest (level 0) first, x fastest.
    pub latents: Vec<Vec<i32>>,
    /// `None`: the latent levels are an interpolating pyramid (transform
    /// 0); else each level below the coarsest holds 5/3 wavelet details,
    /// with these band gains (transform 1, [`lifting`]).
    pub lifting: Option<Lifting>,
    /// How the latents' decisions get their probabilities.
    pub coder: Coder,
    /// Filter the level's reconstruction once the synthesis is added, in
    /// order (at most [`MAX_LOOP_FILTERS`]).
    pub loop_filters: Vec<LoopFilter>,
}

/// Coded bytes of a grid section by what they describe.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GridBreakdown {
    /// Prelude, architecture, level flags and chunk lengths.
    pub framing: u64,
    /// Synthesis parameters, band gains and the loop filter.
    pub synthesis: u64,
    pub context: u64,
    /// Coded latents per level, finest first.
    pub latents: Vec<u64>,
}

impl GridSection {
    /// Checks every count against the architecture and `header`.
    pub fn validate(&self, header: &Header) -> Result<(), FormatError> {
        let bad = |m: String| Err(FormatError::Invalid(m));
        self.arch.check()?;
        if self.level >= header.scales {
            return bad(format!(
                "level {} but only {} scales",
                self.level, header.scales
            ));
        }
        if self.synthesis.len() != self.arch.synthesis_params() {
            return bad(format!(
                "{} synthesis parameters, architecture has {}",
                self.synthesis.len(),
                self.arch.synthesis_params()
            ));
        }
        if let Some(v) = self
            .synthesis
            .iter()
            .find(|v| half::f16::from_f32(**v).to_f32() != **v)
        {
            return bad(format!("synthesis parameter {v} is not a binary16 value"));
        }
        if self.context.len() != self.arch.context_params() {
            return bad(format!(
                "{} context parameters, architecture has {}",
                self.context.len(),
                self.arch.context_params()
            ));
        }
        if let Some(lifting) = &self.lifting {
            if lifting.gains.len() != self.arch.levels as usize - 1 {
                return bad(format!(
                    "{} levels of band gains, the lifting needs {}",
                    lifting.gains.len(),
                    self.arch.levels - 1
                ));
            }
            if let Some(g) = lifting
                .gains
                .iter()
                .flatten()
                .find(|g| !g.is_finite() || half::f16::from_f32(**g).to_f32() != **g)
            {
                return bad(format!("band gain {g} is not a finite binary16 value"));
            }
        }
        if self.loop_filters.len() > MAX_LOOP_FILTERS {
            return bad(format!(
                "{} loop filters, at most {MAX_LOOP_FILTERS}",
                self.loop_filters.len()
            ));
        }
        for filter in &self.loop_filters {
            filter.check()?;
        }
        let dims = header.level_dims(self.level);
        if self.latents.len() != self.arch.levels as usize {
            return bad(format!(
                "{} latent levels stored, architecture has {}",
                self.latents.len(),
                self.arch.levels
            ));
        }
        for (l, values) in self.latents.iter().enumerate() {
            let n: usize = latent_dims(dims, l as u8).iter().product();
            if values.len() != n {
                return bad(format!(
                    "latent level {l} has {} values, expected {n}",
                    values.len()
                ));
            }
            if values.iter().any(|v| v.abs() > entropy::MAX_LATENT_ABS) {
                return bad(format!(
                    "latent level {l} holds values beyond ±{}",
                    entropy::MAX_LATENT_ABS
                ));
            }
            let has_parent = l + 1 < self.latents.len();
            if let Some(i) = uncoded_nonzero(values, latent_dims(dims, l as u8), has_parent) {
                return bad(format!(
                    "latent level {l} holds {} at index {i}, where the coarser level's sample is (must be 0)",
                    values[i]
                ));
            }
        }
        Ok(())
    }

    /// Serializes the section (validate first; the writer does).
    pub fn to_bytes(&self, header: &Header) -> Vec<u8> {
        let dims = header.level_dims(self.level);
        let mut out = Vec::new();
        out.put_u8(MODEL_GRID);
        out.put_u8(self.level);
        out.put_u8(match self.coder {
            Coder::Fixed => 0,
            Coder::Adaptive => 1,
            Coder::Contextual => 2,
            Coder::TwoRate => 3,
        });
        out.put_u8(self.filter_flag());
        for d in dims {
            out.put_u32(d as u32);
        }
        out.put_u8(self.arch.levels);
        out.put_u8(self.arch.synthesis.len() as u8);
        out.put_u8(self.arch.context_hidden);
        out.put_u8(self.lifting.is_some() as u8);
        for &w in &self.arch.synthesis {
            out.put_u16(w);
        }
        for &v in &self.synthesis {
            out.put_u16(half::f16::from_f32(v).to_bits());
        }
        for &v in &self.context {
            out.put_u16(v as u16);
        }
        for &g in self.lifting.iter().flat_map(|l| l.gains.iter().flatten()) {
            out.put_u16(half::f16::from_f32(g).to_bits());
        }
        let banded = self.filter_flag() > 1;
        for filter in &self.loop_filters {
            filter.write(&mut out, banded);
        }
        // Coarsest level first: each level's contexts read its parent.
        for coded in self.coded_levels(dims).into_iter().rev() {
            let Some(coded) = coded else {
                out.put_u8(0);
                continue;
            };
            out.put_u8(1);
            for c in &coded {
                out.put_u32(c.len() as u32);
            }
            for c in &coded {
                out.extend_from_slice(c);
            }
        }
        out
    }

    /// The section's loop filter flag: 0 without filters, 2 for one, 3 for
    /// two, in the banded layout (coded coefficients; flag 1, the plain
    /// layout, is read but no longer written).
    fn filter_flag(&self) -> u8 {
        match self.loop_filters.len() {
            0 => 0,
            1 => 2,
            _ => 3,
        }
    }

    /// Bytes the coded latents take (chunks only, without their lengths),
    /// for a scale grid of `dims`: what an encoder steering the size
    /// measures.
    pub fn latent_bytes(&self, dims: [usize; 4]) -> u64 {
        self.coded_levels(dims)
            .iter()
            .flatten()
            .flatten()
            .map(|c| c.len() as u64)
            .sum()
    }

    /// Each latent level's coded chunks, finest first (`None`: all zero).
    fn coded_levels(&self, dims: [usize; 4]) -> Vec<Option<Vec<Vec<u8>>>> {
        let net = ContextNet::new(&self.arch, &self.context);
        let table = LaplaceTable::new();
        (0..self.arch.levels as usize)
            .map(|l| {
                let values = &self.latents[l];
                if values.iter().all(|&v| v == 0) {
                    return None;
                }
                let ldims = latent_dims(dims, l as u8);
                let parent = self
                    .latents
                    .get(l + 1)
                    .map(|p| ParentLevel::new(latent_dims(dims, l as u8 + 1), p));
                let chunks = entropy::chunks(ldims);
                let code = |c: &entropy::Chunk| {
                    let run = &values[c.offset(ldims)..][..c.len(ldims)];
                    entropy::encode_chunk(
                        &net,
                        &table,
                        self.coder,
                        run,
                        [ldims[0], ldims[1]],
                        parent.as_ref(),
                        *c,
                        l,
                    )
                };
                #[cfg(feature = "parallel")]
                return Some(chunks.par_iter().map(code).collect());
                #[cfg(not(feature = "parallel"))]
                Some(chunks.iter().map(code).collect())
            })
            .collect()
    }

    /// Parses a section whose checksum has been verified, decoding its
    /// latents. Every count is checked against `header` and `limits` before
    /// anything is allocated.
    pub fn parse(
        payload: &[u8],
        header: &Header,
        expected_level: u8,
        limits: &Limits,
    ) -> Result<(GridSection, GridBreakdown), FormatError> {
        Self::parse_inner(payload, header, expected_level, limits, None)
    }

    /// Parses a section whose latents were entropy-decoded elsewhere from
    /// the same bytes (the browser's Web Worker): `latents` are every level
    /// concatenated, finest first. The framing is still walked and checked;
    /// only the entropy decoding is skipped.
    pub fn parse_with_latents(
        payload: &[u8],
        header: &Header,
        expected_level: u8,
        limits: &Limits,
        latents: &[i32],
    ) -> Result<(GridSection, GridBreakdown), FormatError> {
        Self::parse_inner(payload, header, expected_level, limits, Some(latents))
    }

    /// The latents concatenated, finest level first: what
    /// [`parse_with_latents`](Self::parse_with_latents) takes.
    pub fn flat_latents(&self) -> Vec<i32> {
        self.latents.concat()
    }

    /// CRC-32 of the latents as little-endian i32, finest level first: a
    /// fingerprint to check that two decoders (native, wasm) read the same.
    pub fn latents_crc32(&self) -> u32 {
        let mut h = crc32fast::Hasher::new();
        for level in &self.latents {
            for v in level {
                h.update(&v.to_le_bytes());
            }
        }
        h.finalize()
    }

    /// Each latent level as the synthesis interpolates it (dims: the
    /// scale's grid): the latents themselves, or for a lifted section each
    /// level below the coarsest through [`lifting::channel`].
    pub fn channels(&self, dims: [usize; 4]) -> Vec<Vec<f32>> {
        let coarsest = self.latents.len().saturating_sub(1);
        let one = |(l, values): (usize, &Vec<i32>)| match &self.lifting {
            Some(lifting) if l < coarsest => {
                lifting::channel(values, latent_dims(dims, l as u8), lifting.gains[l])
            }
            _ => values.iter().map(|&v| v as f32).collect(),
        };
        #[cfg(feature = "parallel")]
        return self.latents.par_iter().enumerate().map(one).collect();
        #[cfg(not(feature = "parallel"))]
        self.latents.iter().enumerate().map(one).collect()
    }

    fn parse_inner(
        payload: &[u8],
        header: &Header,
        expected_level: u8,
        limits: &Limits,
        given: Option<&[i32]>,
    ) -> Result<(GridSection, GridBreakdown), FormatError> {
        let mut r = ByteReader::new(payload);
        let model = r.u8("model kind")?;
        if model != MODEL_GRID {
            return Err(FormatError::Invalid(format!(
                "model kind {model} is not a grid"
            )));
        }
        let level = r.u8("level")?;
        if level != expected_level {
            return Err(FormatError::Invalid(format!(
                "section says level {level}, table says {expected_level}"
            )));
        }
        let coder = match r.u8("latent coder")? {
            0 => Coder::Fixed,
            1 => Coder::Adaptive,
            2 => Coder::Contextual,
            3 => Coder::TwoRate,
            c => {
                return Err(FormatError::Invalid(format!(
                    "latent coder {c}, expected 0 (fixed), 1 (adaptive), 2 (contextual) or 3 (two-rate)"
                )))
            }
        };
        let filter_flag = match r.u8("loop filter flag")? {
            f @ 0..=3 => f,
            f => {
                return Err(FormatError::Invalid(format!(
                    "loop filter flag {f}, expected 0 to 3"
                )))
            }
        };
        let dims = header.level_dims(level);
        for (axis, &d) in dims.iter().enumerate() {
            let stored = r.u32("grid dims")? as usize;
            if stored != d {
                return Err(FormatError::Invalid(format!(
                    "grid axis {axis} is {stored}, header implies {d}"
                )));
            }
        }
        let levels = r.u8("latent level count")?;
        let n_hidden = r.u8("synthesis layer count")?;
        let context_hidden = r.u8("context width")?;
        let transform = r.u8("latent transform")?;
        if transform > 1 {
            return Err(FormatError::Invalid(format!(
                "latent transform {transform}, expected 0 (interpolating) or 1 (5/3 lifting)"
            )));
        }
        if n_hidden > MAX_SYNTHESIS_LAYERS {
            return Err(FormatError::Invalid(format!(
                "{n_hidden} synthesis layers, allowed 0..={MAX_SYNTHESIS_LAYERS}"
            )));
        }
        let mut synthesis_widths = Vec::with_capacity(n_hidden as usize);
        for _ in 0..n_hidden {
            synthesis_widths.push(r.u16("synthesis width")?);
        }
        let arch = GridArchitecture {
            levels,
            synthesis: synthesis_widths,
            context_hidden,
        };
        arch.check()?;
        // The latents, as i32, are what this section decodes to.
        let latent_count: u64 = (0..levels)
            .map(|l| latent_dims(dims, l).iter().product::<usize>() as u64)
            .sum();
        if latent_count * 4 > limits.max_decoded_section_bytes {
            return Err(FormatError::TooLarge {
                what: "decoded section bytes",
                count: latent_count * 4,
                limit: limits.max_decoded_section_bytes,
            });
        }
        if let Some(given) = given {
            if given.len() as u64 != latent_count {
                return Err(FormatError::Invalid(format!(
                    "{} latents supplied for a section of {latent_count}",
                    given.len()
                )));
            }
        }
        let mut breakdown = GridBreakdown::default();
        let n = arch.synthesis_params();
        let raw = r.take(n * 2, "synthesis parameters")?;
        let synthesis = binary16s(raw);
        if let Some(v) = synthesis.iter().find(|v| !v.is_finite()) {
            return Err(FormatError::Invalid(format!(
                "synthesis parameter {v} is not finite"
            )));
        }
        breakdown.synthesis = raw.len() as u64;
        let n = arch.context_params();
        let raw = r.take(n * 2, "context parameters")?;
        let context: Vec<i16> = raw
            .chunks_exact(2)
            .map(|c| i16::from_le_bytes([c[0], c[1]]))
            .collect();
        breakdown.context = raw.len() as u64;
        let lifting = if transform == 1 {
            let n = arch.levels as usize - 1;
            let raw = r.take(n * 8, "band gains")?;
            let gains = binary16s(raw);
            if let Some(g) = gains.iter().find(|g| !g.is_finite()) {
                return Err(FormatError::Invalid(format!("band gain {g} is not finite")));
            }
            breakdown.synthesis += raw.len() as u64;
            Some(Lifting {
                gains: gains
                    .chunks_exact(4)
                    .map(|g| [g[0], g[1], g[2], g[3]])
                    .collect(),
            })
        } else {
            None
        };
        let before = r.position();
        let filters = match filter_flag {
            0 => 0,
            1 | 2 => 1,
            _ => 2,
        };
        let loop_filters = (0..filters)
            .map(|_| LoopFilter::read(&mut r, filter_flag > 1))
            .collect::<Result<Vec<_>, _>>()?;
        breakdown.synthesis += (r.position() - before) as u64;
        let net = ContextNet::new(&arch, &context);
        let table = LaplaceTable::new();
        let mut latents: Vec<Vec<i32>> = vec![Vec::new(); levels as usize];
        breakdown.latents = vec![0; levels as usize];
        for l in (0..levels as usize).rev() {
            let ldims = latent_dims(dims, l as u8);
            let count: usize = ldims.iter().product();
            // Level l's run in the supplied latents (finest first).
            let supplied = given.map(|g| {
                let start: usize = (0..l)
                    .map(|k| latent_dims(dims, k as u8).iter().product::<usize>())
                    .sum();
                &g[start..start + count]
            });
            let mut values = match supplied {
                Some(run) => run.to_vec(),
                None => vec![0i32; count],
            };
            let flag = r.u8("latent level flag")?;
            match flag {
                0 if values.iter().any(|&v| v != 0) => {
                    return Err(FormatError::Invalid(format!(
                        "latent level {l} is stored as all zero, but nonzero latents were supplied"
                    )))
                }
                0 => {}
                1 => {
                    let chunks = entropy::chunks(ldims);
                    let mut lengths = Vec::with_capacity(chunks.len());
                    for _ in &chunks {
                        lengths.push(r.u32("latent chunk length")? as usize);
                    }
                    let mut slices = Vec::with_capacity(chunks.len());
                    for &len in &lengths {
                        slices.push(r.take(len, "latent chunk")?);
                        breakdown.latents[l] += len as u64;
                    }
                    if supplied.is_some() {
                        latents[l] = values;
                        continue;
                    }
                    let parent = latents
                        .get(l + 1)
                        .map(|p| ParentLevel::new(latent_dims(dims, l as u8 + 1), p));
                    decode_level(
                        &net,
                        &table,
                        coder,
                        l,
                        ldims,
                        &mut values,
                        parent.as_ref(),
                        &chunks,
                        &slices,
                    )
                    .map_err(|m| {
                        FormatError::Invalid(format!(
                            "latent level {l}: {m} (near offset {})",
                            r.position()
                        ))
                    })?;
                }
                f => {
                    return Err(FormatError::Invalid(format!(
                        "latent level {l} has flag {f}, expected 0 or 1"
                    )))
                }
            }
            latents[l] = values;
        }
        if r.remaining() != 0 {
            return Err(FormatError::Invalid(format!(
                "{} unexpected bytes after the last latent level",
                r.remaining()
            )));
        }
        breakdown.framing = payload.len() as u64
            - breakdown.synthesis
            - breakdown.context
            - breakdown.latents.iter().sum::<u64>();
        Ok((
            GridSection {
                level,
                arch,
                synthesis,
                context,
                latents,
                lifting,
                coder,
                loop_filters,
            },
            breakdown,
        ))
    }
}

/// Little-endian binary16 bit patterns as f32 (exact).
fn binary16s(raw: &[u8]) -> Vec<f32> {
    raw.chunks_exact(2)
        .map(|c| half::f16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32())
        .collect()
}

/// Decodes a level's chunks: each writes only its own run of `values`, so
/// they run in parallel.
#[allow(clippy::too_many_arguments)]
fn decode_level(
    net: &ContextNet,
    table: &LaplaceTable,
    coder: Coder,
    level: usize,
    dims: [usize; 4],
    values: &mut [i32],
    parent: Option<&ParentLevel>,
    chunks: &[entropy::Chunk],
    data: &[&[u8]],
) -> Result<(), String> {
    let mut runs: Vec<&mut [i32]> = Vec::with_capacity(chunks.len());
    let mut rest = values;
    for c in chunks {
        let (head, tail) = rest.split_at_mut(c.len(dims));
        runs.push(head);
        rest = tail;
    }
    let work = |((run, c), bytes): ((&mut [i32], &entropy::Chunk), &&[u8])| {
        entropy::decode_chunk(
            net,
            table,
            coder,
            run,
            [dims[0], dims[1]],
            parent,
            *c,
            level,
            bytes,
        )
    };
    #[cfg(feature = "parallel")]
    let results: Vec<Result<(), String>> = runs
        .into_par_iter()
        .zip(chunks.par_iter())
        .zip(data.par_iter())
        .map(work)
        .collect();
    #[cfg(not(feature = "parallel"))]
    let results: Vec<Result<(), String>> = runs
        .into_iter()
        .zip(chunks.iter())
        .zip(data.iter())
        .map(work)
        .collect();
    results.into_iter().collect()
}
