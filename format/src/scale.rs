//! A scale section: everything needed to rebuild one pyramid level — which
//! blocks are occupied, which MLP each uses, the per-block value ranges and
//! latent codes, and the MLPs' weights. Layout: `docs/FORMAT.md`, "Scale section".

use crate::bytes::{pack_bools, unpack_bools, ByteReader, PutLe};
use crate::error::FormatError;
use crate::header::Header;
use crate::stream::{read_stream, write_stream, Codec, Component, StreamSizes};
use crate::tensor::Tensor;
use crate::Limits;

/// Block-model kinds a scale section may hold. v1 knows one.
pub const MODEL_SIREN: u8 = 1;
/// Caps on the architecture, so weights can never be absurdly large.
pub const MAX_WIDTH: u16 = 1024;
pub const MAX_LATENT: u16 = 1024;
pub const MAX_HIDDEN_LAYERS: u8 = 16;

/// A SIREN: input = block-local (x, y, z) in [-1, 1]³ ⊕ the block's latent
/// code; each hidden layer h' = sin(ω0·(h·W + b)); one linear output.
#[derive(Clone, Debug, PartialEq)]
pub struct Architecture {
    pub latent_dim: u16,
    pub hidden: Vec<u16>,
    pub omega0: f32,
}

impl Architecture {
    pub fn input_width(&self) -> usize {
        3 + self.latent_dim as usize
    }

    /// (inputs, outputs) of each layer, hidden layers then the output layer.
    pub fn layer_shapes(&self) -> Vec<(usize, usize)> {
        let mut widths = vec![self.input_width()];
        widths.extend(self.hidden.iter().map(|&w| w as usize));
        widths.push(1);
        widths.windows(2).map(|w| (w[0], w[1])).collect()
    }

    /// Multiply-adds to evaluate one voxel naively.
    pub fn macs_per_voxel(&self) -> usize {
        self.layer_shapes().iter().map(|(i, o)| i * o).sum()
    }
}

/// One layer's parameters for all MLPs of a scale: `weights` holds
/// `n_mlps × inputs × outputs` values (outputs fastest), `biases`
/// `n_mlps × outputs`.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerParams {
    pub weights: Tensor,
    pub biases: Tensor,
}

/// The contents of one scale section, exactly as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct ScaleSection {
    /// Pyramid level, 0 = coarsest.
    pub level: u8,
    pub arch: Architecture,
    pub n_mlps: u32,
    /// One flag per block of this level: x fastest, then y, z, t.
    pub occupancy: Vec<bool>,
    /// MLP of each occupied block, in block order.
    pub assignment: Vec<u32>,
    /// (lo, hi) per occupied block: the MLP's output y ∈ [-1, 1] maps to
    /// lo + (y + 1)/2·(hi − lo).
    pub ranges: Tensor,
    /// `latent_dim` values per occupied block.
    pub latents: Tensor,
    /// One entry per layer of `arch.layer_shapes()`.
    pub layers: Vec<LayerParams>,
}

/// Number of blocks in a level's grid: per time step, x·y·z blocks.
pub fn block_count(header: &Header, level: u8) -> usize {
    let grid = header.level_dims(level);
    let [bx, by, bz] = header.block_counts(grid);
    bx * by * bz * grid[3]
}

impl ScaleSection {
    pub fn occupied_count(&self) -> usize {
        self.occupancy.iter().filter(|&&b| b).count()
    }

    /// Checks that all counts agree with each other and with `header`.
    pub fn validate(&self, header: &Header) -> Result<(), FormatError> {
        let bad = |m: String| Err(FormatError::Invalid(m));
        check_architecture(&self.arch)?;
        if self.level >= header.scales {
            return bad(format!(
                "level {} but only {} scales",
                self.level, header.scales
            ));
        }
        let blocks = block_count(header, self.level);
        if self.occupancy.len() != blocks {
            return bad(format!(
                "occupancy has {} flags, level {} has {blocks} blocks",
                self.occupancy.len(),
                self.level
            ));
        }
        let occupied = self.occupied_count();
        if self.assignment.len() != occupied {
            return bad(format!(
                "{} assignments for {occupied} occupied blocks",
                self.assignment.len()
            ));
        }
        if let Some(&m) = self.assignment.iter().find(|&&m| m >= self.n_mlps) {
            return bad(format!("block assigned to MLP {m} of {}", self.n_mlps));
        }
        if self.n_mlps as usize > occupied.max(1) {
            return bad(format!(
                "{} MLPs for {occupied} occupied blocks",
                self.n_mlps
            ));
        }
        let expect = |t: &Tensor, len: usize, what: &str| -> Result<(), FormatError> {
            t.validate(what)?;
            if t.len() != len {
                return Err(FormatError::Invalid(format!(
                    "{what} has {} values, expected {len}",
                    t.len()
                )));
            }
            Ok(())
        };
        expect(&self.ranges, occupied * 2, "block ranges")?;
        expect(
            &self.latents,
            occupied * self.arch.latent_dim as usize,
            "latent codes",
        )?;
        let shapes = self.arch.layer_shapes();
        if self.layers.len() != shapes.len() {
            return bad(format!(
                "{} layers stored, architecture has {}",
                self.layers.len(),
                shapes.len()
            ));
        }
        let m = self.n_mlps as usize;
        for (l, (layer, (i, o))) in self.layers.iter().zip(shapes).enumerate() {
            expect(&layer.weights, m * i * o, &format!("layer {l} weights"))?;
            expect(&layer.biases, m * o, &format!("layer {l} biases"))?;
        }
        Ok(())
    }

    /// Serializes the section (validate first; the writer does).
    pub fn to_bytes(&self, header: &Header, codec: Codec) -> Vec<u8> {
        let grid = header.level_dims(self.level);
        let mut out = Vec::new();
        out.put_u8(MODEL_SIREN);
        out.put_u8(self.level);
        out.put_u16(0);
        for d in grid {
            out.put_u32(d as u32);
        }
        out.put_u32(self.n_mlps);
        out.put_u32(self.occupied_count() as u32);
        out.put_u16(self.arch.latent_dim);
        out.put_u8(self.arch.hidden.len() as u8);
        out.put_u8(0);
        out.put_f32(self.arch.omega0);
        for &w in &self.arch.hidden {
            out.put_u16(w);
        }
        write_stream(
            &mut out,
            Component::Occupancy,
            codec,
            &pack_bools(&self.occupancy),
            Some(1),
        );
        let width = assignment_width(self.n_mlps);
        let raw: Vec<u8> = self
            .assignment
            .iter()
            .flat_map(|&m| m.to_le_bytes()[..width].to_vec())
            .collect();
        // 1- and 2-byte indices are symbols of their width; 4-byte are not modelled.
        let symbol = (width <= 2).then_some(8 * width as u8);
        write_stream(&mut out, Component::Assignment, codec, &raw, symbol);
        self.ranges.write(&mut out, codec);
        self.latents.write(&mut out, codec);
        for layer in &self.layers {
            layer.weights.write(&mut out, codec);
            layer.biases.write(&mut out, codec);
        }
        out
    }

    /// Parses a section whose checksum has been verified. Errors carry the
    /// offset within the section; the reader adds the section's own.
    pub fn parse(
        payload: &[u8],
        header: &Header,
        expected_level: u8,
        limits: &Limits,
    ) -> Result<(ScaleSection, SectionBreakdown), FormatError> {
        let mut r = ByteReader::new(payload);
        let at = |r: &ByteReader, e: FormatError| match e {
            FormatError::Invalid(m) => {
                FormatError::Invalid(format!("{m} (near offset {})", r.position()))
            }
            other => other,
        };
        let model = r.u8("model kind")?;
        if model != MODEL_SIREN {
            // Grid sections are dispatched before they get here.
            return Err(FormatError::Invalid(format!(
                "unknown block model kind {model}"
            )));
        }
        let level = r.u8("level")?;
        if level != expected_level {
            return Err(FormatError::Invalid(format!(
                "section says level {level}, table says {expected_level}"
            )));
        }
        r.u16("reserved")?;
        let grid = header.level_dims(level);
        for (axis, &d) in grid.iter().enumerate() {
            let stored = r.u32("grid dims")? as usize;
            if stored != d {
                return Err(FormatError::Invalid(format!(
                    "grid axis {axis} is {stored}, header implies {d}"
                )));
            }
        }
        let n_mlps = r.u32("MLP count")?;
        let occupied = r.u32("occupied block count")? as usize;
        let latent_dim = r.u16("latent width")?;
        let n_hidden = r.u8("hidden layer count")?;
        r.u8("reserved")?;
        let omega0 = r.f32("omega0")?;
        if n_hidden == 0 || n_hidden > MAX_HIDDEN_LAYERS {
            return Err(FormatError::Invalid(format!(
                "{n_hidden} hidden layers, allowed 1..={MAX_HIDDEN_LAYERS}"
            )));
        }
        let mut hidden = Vec::with_capacity(n_hidden as usize);
        for _ in 0..n_hidden {
            hidden.push(r.u16("hidden width")?);
        }
        let arch = Architecture {
            latent_dim,
            hidden,
            omega0,
        };
        check_architecture(&arch)?;
        let blocks = block_count(header, level);
        if occupied > blocks {
            return Err(FormatError::Invalid(format!(
                "{occupied} occupied blocks, level has {blocks}"
            )));
        }
        if n_mlps as usize > occupied.max(1) {
            return Err(FormatError::Invalid(format!(
                "{n_mlps} MLPs for {occupied} occupied blocks"
            )));
        }
        // Bound the dense parameter count before anything is decoded.
        let m = n_mlps as u64;
        let params: u64 = arch
            .layer_shapes()
            .iter()
            .map(|&(i, o)| m * (i as u64 * o as u64 + o as u64))
            .sum::<u64>()
            + occupied as u64 * (2 + latent_dim as u64);
        if params * 4 > limits.max_decoded_section_bytes {
            return Err(FormatError::TooLarge {
                what: "decoded section bytes",
                count: params * 4,
                limit: limits.max_decoded_section_bytes,
            });
        }
        let mut budget = limits.max_decoded_section_bytes;
        let mut sizes = StreamSizes::default();
        let raw = read_stream(
            &mut r,
            Component::Occupancy,
            blocks.div_ceil(8),
            &mut budget,
            &mut sizes,
        )
        .map_err(|e| at(&r, e))?;
        let occupancy = unpack_bools(&raw, blocks);
        let count = occupancy.iter().filter(|&&b| b).count();
        if count != occupied {
            return Err(FormatError::Invalid(format!(
                "occupancy marks {count} blocks, header of section says {occupied}"
            )));
        }
        let width = assignment_width(n_mlps);
        let raw = read_stream(
            &mut r,
            Component::Assignment,
            occupied * width,
            &mut budget,
            &mut sizes,
        )
        .map_err(|e| at(&r, e))?;
        let assignment: Vec<u32> = raw
            .chunks_exact(width)
            .map(|c| {
                let mut b = [0u8; 4];
                b[..width].copy_from_slice(c);
                u32::from_le_bytes(b)
            })
            .collect();
        if let Some(&a) = assignment.iter().find(|&&a| a >= n_mlps) {
            return Err(FormatError::Invalid(format!(
                "block assigned to MLP {a} of {n_mlps}"
            )));
        }
        // Prelude, architecture and the two stream headers so far: the
        // occupancy and assignment payloads are counted on their own.
        let mut breakdown = SectionBreakdown {
            framing: r.position() as u64 - sizes.occupancy - sizes.assignment,
            ..Default::default()
        };
        let mut read_tensor = |r: &mut ByteReader, len: usize, slot: &mut StreamSizes| {
            let t = Tensor::read(r, len, &mut budget, slot).map_err(|e| at(r, e))?;
            slot.framing += 8; // tensor descriptor
            Ok::<Tensor, FormatError>(t)
        };
        let ranges = read_tensor(&mut r, occupied * 2, &mut breakdown.ranges)?;
        let latents = read_tensor(
            &mut r,
            occupied * latent_dim as usize,
            &mut breakdown.latents,
        )?;
        let mut layers = Vec::new();
        for (i, o) in arch.layer_shapes() {
            let weights = read_tensor(&mut r, n_mlps as usize * i * o, &mut breakdown.weights)?;
            let biases = read_tensor(&mut r, n_mlps as usize * o, &mut breakdown.weights)?;
            layers.push(LayerParams { weights, biases });
        }
        if r.remaining() != 0 {
            return Err(FormatError::Invalid(format!(
                "{} unexpected bytes after the last stream",
                r.remaining()
            )));
        }
        breakdown.occupancy = sizes.occupancy;
        breakdown.assignment = sizes.assignment;
        let section = ScaleSection {
            level,
            arch,
            n_mlps,
            occupancy,
            assignment,
            ranges,
            latents,
            layers,
        };
        Ok((section, breakdown))
    }
}

/// Coded bytes of a scale section by what they describe.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SectionBreakdown {
    /// Section prelude and architecture.
    pub framing: u64,
    pub occupancy: u64,
    pub assignment: u64,
    /// Per-block value ranges.
    pub ranges: StreamSizes,
    pub latents: StreamSizes,
    /// All layers' weights and biases.
    pub weights: StreamSizes,
}

/// Bytes per stored MLP index: the fewest that can hold `n_mlps - 1`.
fn assignment_width(n_mlps: u32) -> usize {
    match n_mlps {
        0..=256 => 1,
        257..=65536 => 2,
        _ => 4,
    }
}

fn check_architecture(arch: &Architecture) -> Result<(), FormatError> {
    if arch.hidden.is_empty() || arch.hidden.len() > MAX_HIDDEN_LAYERS as usize {
        return Err(FormatError::Invalid(format!(
            "{} hidden layers, allowed 1..={MAX_HIDDEN_LAYERS}",
            arch.hidden.len()
        )));
    }
    if arch.hidden.iter().any(|&w| w == 0 || w > MAX_WIDTH) {
        return Err(FormatError::Invalid(format!(
            "hidden widths {:?} not in 1..={MAX_WIDTH}",
            arch.hidden
        )));
    }
    if arch.latent_dim > MAX_LATENT {
        return Err(FormatError::Invalid(format!(
            "latent width {} above {MAX_LATENT}",
            arch.latent_dim
        )));
    }
    if !arch.omega0.is_finite() {
        return Err(FormatError::Invalid(format!(
            "omega0 {} is not finite",
            arch.omega0
        )));
    }
    Ok(())
}
