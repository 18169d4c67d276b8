//! The latents' entropy model, in integer arithmetic only, so that every
//! decoder (native x86 or ARM, wasm32) computes the encoder's probabilities
//! bit for bit: a context network with fixed-point weights predicts a mean
//! (in 1/16) and a scale index for each latent from already-decoded values;
//! a discretized Laplace of that mean and scale is coded as binary decisions
//! (zero? sign? magnitude in unary, then an Exp-Golomb escape) by the range
//! coder with 15-bit probabilities: the table's own (coder 0), or under coder
//! 1 the table's as the start of probabilities that adapt within a chunk
//! ([`BitModels`]). `docs/FORMAT.md`, "Grid section".

use super::GridArchitecture;
use crate::range_coder::{FixedDecoder, FixedEncoder, FIXED_BITS, FIXED_ONE};

/// Scale indices: b = 2^(s/8) / 16, s in 0..SCALE_STEPS (b from 1/16 to ~15).
pub const SCALE_STEPS: usize = 64;
/// Fraction bits of the context network's weights and hidden values.
pub const WEIGHT_FRAC: u32 = 12;
/// Context inputs are latents clamped to this magnitude.
pub const CONTEXT_CLAMP: i32 = 64;
/// Magnitudes coded in unary before the Exp-Golomb escape.
pub const UNARY_MAX: u32 = 24;
/// Largest latent magnitude a stream may hold.
pub const MAX_LATENT_ABS: i32 = 1 << 15;
/// Latents of a level are coded in independent chunks of this many z slices
/// (per time step), so they can be decoded in parallel; contexts never look
/// across a chunk's first slice.
pub const CHUNK_SLICES: usize = 16;

/// Causal neighbours (dx, dy, dz) within a level, in raster order (x fastest).
pub const NEIGHBOURS: [[i32; 3]; 12] = [
    [-1, 0, 0],
    [-2, 0, 0],
    [0, -1, 0],
    [0, -2, 0],
    [-1, -1, 0],
    [1, -1, 0],
    [0, 0, -1],
    [0, 0, -2],
    [-1, 0, -1],
    [1, 0, -1],
    [0, -1, -1],
    [0, 1, -1],
];
/// Inputs of the context network: the neighbours, the co-located latent of
/// the next coarser level (0 at the coarsest), the parities of x, y, z and t
/// (0 at the coarsest: they tell which of a wavelet's detail bands the
/// latent is in, whose spreads differ) and the latent level's index.
/// Last, two activity inputs in eighths of an octave ([`log2_eighths`]):
/// of 1 + Σ |neighbour|, and of 1 + Σ |parent| over the 2×2×2 coarser
/// latents from the co-located one up (the spread of a latent follows its
/// surroundings' magnitude, which a few ReLUs cannot compute from signed
/// values).
pub const CONTEXT_INPUTS: usize = NEIGHBOURS.len() + 1 + 4 + 1 + 2;
/// Where the parity inputs start.
pub const PARITY_INPUT: usize = NEIGHBOURS.len() + 1;
/// The input that holds the latent level's index.
pub const LEVEL_INPUT: usize = PARITY_INPUT + 4;
/// The neighbours' activity, then the parents'.
pub const ACTIVITY_INPUT: usize = LEVEL_INPUT + 1;

/// The coarser level's samples that interpolate level position `v` along an
/// axis of `n` coarser samples: ⌊v/2⌋ and the next one, where it exists.
#[inline]
pub fn parents(v: usize, n: usize) -> std::ops::Range<usize> {
    let q = (v / 2).min(n - 1);
    q..(q + 2).min(n)
}

/// 8·log2(v) for v ≥ 1, to the eighth below: the octave, then the three
/// bits after the leading one as its fraction.
#[inline]
pub fn log2_eighths(v: u32) -> i32 {
    let v = v.max(1);
    let n = 31 - v.leading_zeros();
    (8 * n + ((((v as u64) << 3) >> n) & 7) as u32) as i32
}

/// Whether the latent at level position `p` is coded. A level below the
/// coarsest holds no latent where every coordinate is even: the next coarser
/// level has a sample there, which the interpolation passes through exactly,
/// so such a latent is 0 by definition (the pyramid is critically sampled).
#[inline]
pub fn is_coded(has_parent: bool, [x, y, z, t]: [usize; 4]) -> bool {
    !has_parent || (x | y | z | t) & 1 == 1
}

/// [`is_coded`] for the latent at index `i` of a level of `dims` (x fastest).
#[inline]
pub fn is_coded_at(has_parent: bool, [dx, dy, dz, _]: [usize; 4], i: usize) -> bool {
    let p = [
        i % dx,
        (i / dx) % dy,
        (i / (dx * dy)) % dz,
        i / (dx * dy * dz),
    ];
    is_coded(has_parent, p)
}

/// round(2^(-2^-(i+1)) · 2^30): the factors of a binary fraction's power.
const EXP2_FRACTION: [u64; 16] = [
    759250125, 902905651, 984625594, 1028218693, 1050733751, 1062175491, 1067942999, 1070838486,
    1072289173, 1073015252, 1073378477, 1073560135, 1073650976, 1073696399, 1073719111, 1073730468,
];
/// round(log2(e) · 2^30).
const LOG2E_Q30: u64 = 1549082005;

/// 2^(−x / 2^16) in Q30, integer operations only.
pub fn exp2_neg(x: u64) -> u64 {
    let whole = x >> 16;
    if whole >= 31 {
        return 0;
    }
    let mut r: u64 = 1 << 30;
    for (i, &c) in EXP2_FRACTION.iter().enumerate() {
        if (x >> (15 - i)) & 1 == 1 {
            r = (r * c + (1 << 29)) >> 30;
        }
    }
    r >> whole
}

/// The three binary probabilities (of the 0 branch, in 1/2^15) of one
/// (fractional mean, scale) pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LaplaceBits {
    /// P(d = 0).
    pub zero: u16,
    /// P(d > 0 | d ≠ 0).
    pub positive: u16,
    /// P(|d| = k | |d| ≥ k): the geometric tail's stop probability 1 − e^(−1/b).
    pub stop: u16,
}

/// Probabilities for every scale index and every mean offset φ = μ − round(μ)
/// in sixteenths (−8..=7), built once with integer arithmetic.
#[derive(Clone, Debug)]
pub struct LaplaceTable {
    entries: Vec<LaplaceBits>,
}

fn prob15(num: u64, den: u64) -> u16 {
    let p = (num * FIXED_ONE as u64 + den / 2)
        .checked_div(den)
        .unwrap_or(FIXED_ONE as u64 / 2);
    p.clamp(1, FIXED_ONE as u64 - 1) as u16
}

impl LaplaceTable {
    pub fn new() -> LaplaceTable {
        let mut entries = Vec::with_capacity(SCALE_STEPS * 16);
        for s in 0..SCALE_STEPS as u64 {
            // log2(e)/b in Q16, with 1/b = 16 · 2^(−s/8).
            let inv_b = exp2_neg(s * 8192);
            let k = (LOG2E_Q30 * inv_b) >> 40;
            // e^(−t/b) for t in sixteenths, Q30.
            let e = |t16: u64| exp2_neg((k * t16) >> 4);
            for phi in -8i64..8 {
                let ep = e((8 - phi) as u64); // P(d > 0) = ½·ep
                let en = e((8 + phi) as u64); // P(d < 0) = ½·en
                let one = 1u64 << 31; // 2 in Q30: probabilities ×2
                let zero = one.saturating_sub(ep + en);
                let q = e(16);
                entries.push(LaplaceBits {
                    zero: prob15(zero, one),
                    positive: prob15(ep, ep + en),
                    stop: prob15((1u64 << 30) - q, 1 << 30),
                });
            }
        }
        LaplaceTable { entries }
    }

    /// `mean16`: the mean in sixteenths; `scale`: already clamped to the table.
    /// Returns round(μ) and the probabilities around it.
    pub fn lookup(&self, mean16: i32, scale: usize) -> (i32, LaplaceBits) {
        let (m, entry) = Self::entry(mean16, scale);
        (m, self.entries[entry])
    }

    /// round(μ) and the index of the entry of (`mean16`, `scale`): scale
    /// index × 16 + φ + 8.
    #[inline]
    pub fn entry(mean16: i32, scale: usize) -> (i32, usize) {
        let m = (mean16 + 8) >> 4;
        let phi = mean16 - 16 * m;
        (m, scale * 16 + (phi + 8) as usize)
    }
}

/// How a section's latent decisions get their probabilities (the section's
/// coder field).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coder {
    /// The table's probabilities as they are (coder 0).
    Fixed,
    /// The table's probabilities as the start of adaptive ones (coder 1):
    /// a discretized Laplace ties P(0) and the tail to one scale, which the
    /// latents do not follow (engine, CR 200: 9.6% fewer bytes adapted,
    /// most of it from keeping the fractional mean φ in the contexts).
    Adaptive,
    /// Adaptive, each decision's models also split by the latent's band and
    /// its neighbours' activity octave ([`side_class`]; coder 2). (Engine,
    /// CR 200, simulated: 1.7% fewer bytes than coder 1.)
    Contextual,
    /// Coder 2's models, each the mean of a slow estimate (down to 1/512)
    /// and a fast one (1/16 at the slowest), split by 8 activity octaves
    /// (40 side classes) and 8 magnitude classes — coder 3: a model follows
    /// a chunk's local changes and still settles (engine, CR 100, simulated:
    /// two rates 0.65% fewer bytes than coder 2, the finer classes 0.55%
    /// more off that).
    TwoRate,
}

impl Coder {
    /// Side classes: 5 bands × this coder's activity octaves (1 unsided).
    pub fn side_classes(self) -> usize {
        5 * self.octaves()
    }

    /// Activity octaves a side class tells apart (0: unsided).
    fn octaves(self) -> usize {
        match self {
            Coder::Fixed | Coder::Adaptive => 0,
            Coder::Contextual => 4,
            Coder::TwoRate => 8,
        }
    }

    /// Magnitude decisions `|d| > k` share a model per scale index for
    /// k = 1, 2, … up to this many classes, the last for every larger k.
    fn stop_classes(self) -> usize {
        match self {
            Coder::TwoRate => 8,
            _ => 4,
        }
    }
}

/// A latent's side class under [`Coder::Contextual`] and [`Coder::TwoRate`]
/// (0 under the others): its band, the number of odd coordinates (0–4),
/// plus 5 × its neighbours' activity octave, ⌊c[ACTIVITY] / 8⌋ capped at
/// the coder's last (3 or 7).
#[inline]
pub fn side_class(coder: Coder, c: &[i32; CONTEXT_INPUTS]) -> usize {
    let octaves = coder.octaves();
    if octaves == 0 {
        return 0;
    }
    let band: i32 = c[PARITY_INPUT..PARITY_INPUT + 4].iter().sum();
    band as usize + 5 * ((c[ACTIVITY_INPUT] >> 3) as usize).min(octaves - 1)
}

/// Adaptation rate of a binary model that has seen `n` decisions, in
/// 1/2^16: 1/(n + 8) down to 1/`slowest` (engine, CR 200, against fixed
/// rates 1/32 and 1/64: 0.4% and 0.9% fewer bytes).
const fn adapt_rate(n: u16, slowest: i32) -> i32 {
    let d = n as i32 + ADAPT_FIRST;
    if d >= slowest {
        65536 / slowest
    } else {
        (65536 + d / 2) / d
    }
}
const ADAPT_FIRST: i32 = 8;
/// The slowest rate of a single-rate model (coders 1 and 2).
const ADAPT_SLOWEST: i32 = 256;
/// Under [`Coder::TwoRate`]: the slow estimate's slowest rate, and the fast
/// one's (1/16 in 1/2^16).
const TWO_RATE_SLOWEST: i32 = 512;
const FAST_RATE: i32 = 4096;

/// One binary decision's probability of a 0, in 1/2^22 (finer than the
/// coder's 15 bits, so that a rate of 1/256 still moves it next to 0 or 1),
/// and how many decisions it has seen (capped where its rate stops falling).
/// Under [`Coder::TwoRate`] it keeps a second, fast estimate and codes with
/// their mean; under the others the second equals the first.
#[derive(Clone, Copy, Debug)]
struct BitModel {
    p: u32,
    fast: u32,
    seen: u16,
}

/// Fraction bits of [`BitModel`]'s probability.
const MODEL_BITS: u32 = 22;

impl BitModel {
    fn new(p0: u16) -> BitModel {
        let p = (p0 as u32) << (MODEL_BITS - FIXED_BITS);
        BitModel {
            p,
            fast: p,
            seen: 0,
        }
    }

    /// P(0) as the coder takes it: 15 bits, within 1..2^15 − 1.
    #[inline]
    fn p0(&self) -> u16 {
        let mean = (self.p + self.fast) >> 1;
        (mean >> (MODEL_BITS - FIXED_BITS)).clamp(1, FIXED_ONE as u32 - 1) as u16
    }

    /// Moves P(0) towards the decision made: p += ((0 or 2^22) − p)·rate,
    /// shifted right by 16 (64-bit, arithmetic shift); with `two_rates` the
    /// fast estimate too, at a rate of at least [`FAST_RATE`].
    #[inline]
    fn update(&mut self, bit: bool, two_rates: bool) {
        let target = if bit { 0 } else { 1i64 << MODEL_BITS };
        let slowest = if two_rates {
            TWO_RATE_SLOWEST
        } else {
            ADAPT_SLOWEST
        };
        let rate = adapt_rate(self.seen, slowest) as i64;
        let p = self.p as i64;
        self.p = (p + (((target - p) * rate) >> 16)) as u32;
        self.fast = if two_rates {
            let f = self.fast as i64;
            (f + (((target - f) * rate.max(FAST_RATE as i64)) >> 16)) as u32
        } else {
            self.p
        };
        if (self.seen as i32) < slowest - ADAPT_FIRST {
            self.seen += 1;
        }
    }
}

/// A chunk's probabilities: per table entry (scale index, φ) one model of
/// `d ≠ 0` and one of `d < 0`; per (scale index, magnitude class) one of
/// `|d| > k`. Each starts at the table's value; under [`Coder::Fixed`]
/// none moves. Every chunk starts afresh, so chunks decode in parallel.
/// Under [`Coder::Contextual`] and [`Coder::TwoRate`] there is one such
/// set per side class.
pub struct BitModels {
    adaptive: bool,
    two_rates: bool,
    stop_classes: usize,
    zero: Vec<BitModel>,
    sign: Vec<BitModel>,
    stop: Vec<BitModel>,
}

impl BitModels {
    pub fn new(table: &LaplaceTable, coder: Coder) -> BitModels {
        let e = &table.entries;
        let sides = coder.side_classes().max(1);
        let stop_classes = coder.stop_classes();
        let stops = SCALE_STEPS * stop_classes;
        BitModels {
            adaptive: coder != Coder::Fixed,
            two_rates: coder == Coder::TwoRate,
            stop_classes,
            zero: (0..sides * e.len())
                .map(|i| BitModel::new(e[i % e.len()].zero))
                .collect(),
            sign: (0..sides * e.len())
                .map(|i| BitModel::new(e[i % e.len()].positive))
                .collect(),
            stop: (0..sides * stops)
                .map(|i| BitModel::new(e[i % stops / stop_classes * 16].stop))
                .collect(),
        }
    }

    #[inline]
    fn learn(&self, model: &mut BitModel, bit: bool) {
        if self.adaptive {
            model.update(bit, self.two_rates);
        }
    }
}

impl Default for LaplaceTable {
    fn default() -> Self {
        LaplaceTable::new()
    }
}

/// The context inputs padded to a multiple of 8 lanes.
const PADDED_INPUTS: usize = CONTEXT_INPUTS.next_multiple_of(8);

/// The first [`CONTEXT_INPUTS`] of `f`, then zeros.
fn padded(f: impl Fn(usize) -> i16) -> [i16; PADDED_INPUTS] {
    std::array::from_fn(|i| if i < CONTEXT_INPUTS { f(i) } else { 0 })
}

/// Σ a·b over the padded inputs, i16 × i16 products summed in i32 (exact
/// for the context network's operands, see [`ContextNet::predict`]).
#[inline]
fn dot16(a: &[i16; PADDED_INPUTS], b: &[i16; PADDED_INPUTS]) -> i32 {
    // SSE2 is part of x86_64: pairwise multiply-adds, 8 lanes at a time.
    #[cfg(target_arch = "x86_64")]
    // SAFETY: unaligned loads of 8 i16 within arrays of a multiple of 8.
    unsafe {
        use std::arch::x86_64::*;
        let mut acc = _mm_setzero_si128();
        for k in (0..PADDED_INPUTS).step_by(8) {
            let x = _mm_loadu_si128(a.as_ptr().add(k) as *const __m128i);
            let y = _mm_loadu_si128(b.as_ptr().add(k) as *const __m128i);
            acc = _mm_add_epi32(acc, _mm_madd_epi16(x, y));
        }
        let s = _mm_add_epi32(acc, _mm_shuffle_epi32(acc, 0b01_00_11_10));
        _mm_cvtsi128_si32(_mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01)))
    }
    #[cfg(not(target_arch = "x86_64"))]
    a.iter().zip(b).map(|(&x, &y)| x as i32 * y as i32).sum()
}

/// The context network in fixed point: weights as stored (Q12, i16).
/// Layout per [`GridArchitecture::context_params`]; held here transposed, a
/// row of input weights per hidden unit and per output's skip.
#[derive(Clone, Debug)]
pub struct ContextNet {
    /// Per hidden unit, its input weights (W1's column), zero-padded.
    w1: Vec<[i16; PADDED_INPUTS]>,
    b1: Vec<i32>,
    /// Per hidden unit, its two output weights.
    w2: Vec<[i64; 2]>,
    /// Per output, its skip weights (S's column).
    skip: [[i16; PADDED_INPUTS]; 2],
    b2: [i64; 2],
}

impl ContextNet {
    pub fn new(arch: &GridArchitecture, params: &[i16]) -> ContextNet {
        assert_eq!(params.len(), arch.context_params());
        let (n, h) = (CONTEXT_INPUTS, arch.context_hidden as usize);
        let (w1, rest) = params.split_at(n * h);
        let (b1, rest) = rest.split_at(h);
        let (w2, rest) = rest.split_at(h * 2);
        let (skip, b2) = rest.split_at(n * 2);
        ContextNet {
            w1: (0..h).map(|j| padded(|i| w1[i * h + j])).collect(),
            b1: b1.iter().map(|&b| b as i32).collect(),
            w2: (0..h)
                .map(|j| [w2[j * 2] as i64, w2[j * 2 + 1] as i64])
                .collect(),
            skip: std::array::from_fn(|k| padded(|i| skip[i * 2 + k])),
            b2: [b2[0] as i64, b2[1] as i64],
        }
    }

    /// (mean in sixteenths, scale index) for one latent's context.
    ///
    /// The sums over the inputs are exact in i16 × i16 → i32 (what SIMD
    /// multiply-adds do): every input is below 2^7 in magnitude (the
    /// latents clamped to ±64, the activities' `lg8` of at most 769, the
    /// level, the parities) and every weight at most 2^15, so 20 products
    /// and a bias stay under 2^28. The second layer needs i64.
    pub fn predict(&self, ctx: &[i32; CONTEXT_INPUTS]) -> (i32, usize) {
        let c: [i16; PADDED_INPUTS] = padded(|i| ctx[i] as i16);
        let dot = |w: &[i16; PADDED_INPUTS]| dot16(w, &c);
        let mut out = [0i64; 2];
        for ((w1, &b1), w2) in self.w1.iter().zip(&self.b1).zip(&self.w2) {
            // Hidden layer: relu(W1ᵀc + b1), Q12.
            let hj = (b1 + dot(w1)).max(0) as i64;
            out[0] += w2[0] * hj;
            out[1] += w2[1] * hj;
        }
        // Linear skip and output bias, Q12 raised to Q24.
        for (k, o) in out.iter_mut().enumerate() {
            let lin = self.b2[k] + dot(&self.skip[k]) as i64;
            *o += lin << WEIGHT_FRAC;
        }
        let mean16 = ((out[0] + (1 << 19)) >> 20)
            .clamp(-(MAX_LATENT_ABS as i64) * 16, MAX_LATENT_ABS as i64 * 16);
        // The second output is the scale in octaves (Q24): the index is 8× it.
        let scale = ((out[1] + (1 << 20)) >> 21).clamp(0, SCALE_STEPS as i64 - 1);
        (mean16 as i32, scale as usize)
    }
}

/// The next coarser level as a finer level's contexts read it (§8.5's
/// `c[12]` and `c[19]`), computed once per level rather than per latent: at
/// each of its samples the latent clamped to ±[`CONTEXT_CLAMP`], and the
/// activity `lg8(1 + Σ |p|)` over the samples a finer latent there
/// interpolates from (this one and the next along each axis, where they
/// exist).
pub struct ParentLevel {
    pub dims: [usize; 4],
    value: Vec<i32>,
    activity: Vec<i32>,
}

impl ParentLevel {
    /// `values`: the coarser level's latents, dims `dims`, x fastest.
    pub fn new(dims: [usize; 4], values: &[i32]) -> ParentLevel {
        let value: Vec<i32> = values
            .iter()
            .map(|&v| v.clamp(-CONTEXT_CLAMP, CONTEXT_CLAMP))
            .collect();
        // The box sum is a product of per-axis ranges, so it is separable:
        // along each axis, a sample plus the next one (where it exists).
        let mut sum: Vec<u32> = value.iter().map(|v| v.unsigned_abs()).collect();
        let mut stride = 1;
        for &n in &dims {
            for run in sum.chunks_mut(stride * n) {
                for a in 0..n.saturating_sub(1) {
                    for k in 0..stride {
                        run[a * stride + k] += run[(a + 1) * stride + k];
                    }
                }
            }
            stride *= n;
        }
        ParentLevel {
            dims,
            value,
            activity: sum.into_iter().map(|s| log2_eighths(1 + s)).collect(),
        }
    }

    /// The sample under finer-level position `v` (each coordinate halved,
    /// clamped to this level's dims).
    #[inline]
    fn under(&self, v: [usize; 4]) -> usize {
        let [px, py, pz, pt] = self.dims;
        (((v[3] / 2).min(pt - 1) * pz + (v[2] / 2).min(pz - 1)) * py + (v[1] / 2).min(py - 1)) * px
            + (v[0] / 2).min(px - 1)
    }
}

/// One chunk of a level: time step `t`, slices `z0 .. z0 + nz`. Its latents
/// are one contiguous run of the level's array.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chunk {
    pub t: usize,
    pub z0: usize,
    pub nz: usize,
}

impl Chunk {
    /// Where the chunk's run starts in the level's array.
    pub fn offset(&self, dims: [usize; 4]) -> usize {
        (self.t * dims[2] + self.z0) * dims[0] * dims[1]
    }

    pub fn len(&self, dims: [usize; 4]) -> usize {
        self.nz * dims[0] * dims[1]
    }
}

/// The chunks of a level in coding (and memory) order.
pub fn chunks(dims: [usize; 4]) -> Vec<Chunk> {
    let mut out = Vec::new();
    for t in 0..dims[3] {
        let mut z0 = 0;
        while z0 < dims[2] {
            let nz = CHUNK_SLICES.min(dims[2] - z0);
            out.push(Chunk { t, z0, nz });
            z0 += nz;
        }
    }
    out
}

/// The context of the latent at (x, y, zl) of a chunk (`values`: the chunk's
/// run, `dx × dy` per slice, decoded up to this latent), at level position
/// (x, y, chunk.z0 + zl, chunk.t) of latent level `level`. Neighbours outside
/// the chunk count as 0; the parent is the next coarser level, fully decoded.
#[inline]
pub fn context(
    values: &[i32],
    [dx, dy]: [usize; 2],
    parent: Option<&ParentLevel>,
    [x, y, zl]: [usize; 3],
    chunk: Chunk,
    level: usize,
) -> [i32; CONTEXT_INPUTS] {
    let mut c = [0i32; CONTEXT_INPUTS];
    // Away from the chunk's and the plane's edges every neighbour exists.
    if x >= 2 && x + 1 < dx && y >= 2 && y + 1 < dy && zl >= 2 {
        let here = ((zl * dy + y) * dx + x) as isize;
        for (k, o) in NEIGHBOURS.iter().enumerate() {
            let i =
                here + o[0] as isize + (o[1] as isize + o[2] as isize * dy as isize) * dx as isize;
            c[k] = values[i as usize].clamp(-CONTEXT_CLAMP, CONTEXT_CLAMP);
        }
    } else {
        for (k, o) in NEIGHBOURS.iter().enumerate() {
            let (nx, ny, nz) = (
                x as isize + o[0] as isize,
                y as isize + o[1] as isize,
                zl as isize + o[2] as isize,
            );
            if nx < 0 || ny < 0 || nz < 0 || nx >= dx as isize || ny >= dy as isize {
                continue;
            }
            let i = (nz as usize * dy + ny as usize) * dx + nx as usize;
            c[k] = values[i].clamp(-CONTEXT_CLAMP, CONTEXT_CLAMP);
        }
    }
    if let Some(p) = parent {
        let v = [x, y, chunk.z0 + zl, chunk.t];
        let i = p.under(v);
        c[NEIGHBOURS.len()] = p.value[i];
        c[ACTIVITY_INPUT + 1] = p.activity[i];
        for (k, a) in v.into_iter().enumerate() {
            c[PARITY_INPUT + k] = (a & 1) as i32;
        }
    }
    c[LEVEL_INPUT] = level as i32;
    let near: u32 = c[..NEIGHBOURS.len()].iter().map(|v| v.unsigned_abs()).sum();
    c[ACTIVITY_INPUT] = log2_eighths(1 + near);
    c
}

/// Codes `value` around `m` with the models of table entry `entry` (and
/// its scale index's magnitude models).
fn encode_value(
    enc: &mut FixedEncoder,
    models: &mut BitModels,
    value: i32,
    m: i32,
    entry: usize,
    side: usize,
) {
    let stops = (side * SCALE_STEPS + entry / 16) * models.stop_classes;
    let entry = side * SCALE_STEPS * 16 + entry;
    let d = value - m;
    let mut zero = models.zero[entry];
    enc.bit(zero.p0(), d != 0);
    models.learn(&mut zero, d != 0);
    models.zero[entry] = zero;
    if d == 0 {
        return;
    }
    let mut sign = models.sign[entry];
    enc.bit(sign.p0(), d < 0);
    models.learn(&mut sign, d < 0);
    models.sign[entry] = sign;
    let mag = d.unsigned_abs();
    for k in 1..=UNARY_MAX {
        let more = mag > k;
        let class = stops + (k as usize - 1).min(models.stop_classes - 1);
        let mut stop = models.stop[class];
        enc.bit(stop.p0(), more);
        models.learn(&mut stop, more);
        models.stop[class] = stop;
        if !more {
            return;
        }
    }
    // Exp-Golomb (order 0) of mag − UNARY_MAX − 1, bits at probability ½.
    let v = mag - UNARY_MAX - 1 + 1;
    let n = 32 - v.leading_zeros();
    for _ in 1..n {
        enc.bit(FIXED_ONE / 2, true);
    }
    enc.bit(FIXED_ONE / 2, false);
    for b in (0..n - 1).rev() {
        enc.bit(FIXED_ONE / 2, (v >> b) & 1 == 1);
    }
}

fn decode_value(
    dec: &mut FixedDecoder,
    models: &mut BitModels,
    m: i32,
    entry: usize,
    side: usize,
) -> Result<i32, String> {
    let stops = (side * SCALE_STEPS + entry / 16) * models.stop_classes;
    let entry = side * SCALE_STEPS * 16 + entry;
    let mut zero = models.zero[entry];
    let nonzero = dec.bit(zero.p0())?;
    models.learn(&mut zero, nonzero);
    models.zero[entry] = zero;
    if !nonzero {
        return Ok(m);
    }
    let mut sign = models.sign[entry];
    let negative = dec.bit(sign.p0())?;
    models.learn(&mut sign, negative);
    models.sign[entry] = sign;
    let mut mag = 1u32;
    while mag <= UNARY_MAX {
        let class = stops + (mag as usize - 1).min(models.stop_classes - 1);
        let mut stop = models.stop[class];
        let more = dec.bit(stop.p0())?;
        models.learn(&mut stop, more);
        models.stop[class] = stop;
        if !more {
            break;
        }
        mag += 1;
    }
    if mag > UNARY_MAX {
        let mut n = 1;
        while dec.bit(FIXED_ONE / 2)? {
            n += 1;
            if n > 17 {
                return Err("latent escape code longer than 17 bits".into());
            }
        }
        let mut v = 1u32;
        for _ in 1..n {
            v = (v << 1) | dec.bit(FIXED_ONE / 2)? as u32;
        }
        mag = v - 1 + UNARY_MAX + 1;
    }
    let d = if negative { -(mag as i64) } else { mag as i64 };
    let value = m as i64 + d;
    if value.abs() > MAX_LATENT_ABS as i64 {
        return Err(format!("latent {value} beyond ±{MAX_LATENT_ABS}"));
    }
    Ok(value as i32)
}

/// Codes one chunk of latent level `level`: `values` is its run of the level
/// (`dx × dy × nz`); the latents [`is_coded`] skips must be 0.
#[allow(clippy::too_many_arguments)]
pub fn encode_chunk(
    net: &ContextNet,
    table: &LaplaceTable,
    coder: Coder,
    values: &[i32],
    plane: [usize; 2],
    parent: Option<&ParentLevel>,
    chunk: Chunk,
    level: usize,
) -> Vec<u8> {
    let [dx, dy] = plane;
    let mut enc = FixedEncoder::new();
    let mut models = BitModels::new(table, coder);
    for zl in 0..chunk.nz {
        for y in 0..dy {
            for x in 0..dx {
                if !is_coded(parent.is_some(), [x, y, chunk.z0 + zl, chunk.t]) {
                    continue;
                }
                let c = context(values, plane, parent, [x, y, zl], chunk, level);
                let (mean16, scale) = net.predict(&c);
                let (m, entry) = LaplaceTable::entry(mean16, scale);
                encode_value(
                    &mut enc,
                    &mut models,
                    values[(zl * dy + y) * dx + x],
                    m,
                    entry,
                    side_class(coder, &c),
                );
            }
        }
    }
    enc.finish()
}

/// Decodes one chunk of latent level `level` into its run `values`
/// (`dx × dy × nz`).
#[allow(clippy::too_many_arguments)]
pub fn decode_chunk(
    net: &ContextNet,
    table: &LaplaceTable,
    coder: Coder,
    values: &mut [i32],
    plane: [usize; 2],
    parent: Option<&ParentLevel>,
    chunk: Chunk,
    level: usize,
    data: &[u8],
) -> Result<(), String> {
    let [dx, dy] = plane;
    let mut dec = FixedDecoder::new(data)?;
    let mut models = BitModels::new(table, coder);
    for zl in 0..chunk.nz {
        for y in 0..dy {
            for x in 0..dx {
                if !is_coded(parent.is_some(), [x, y, chunk.z0 + zl, chunk.t]) {
                    values[(zl * dy + y) * dx + x] = 0;
                    continue;
                }
                let c = context(values, plane, parent, [x, y, zl], chunk, level);
                let (mean16, scale) = net.predict(&c);
                let (m, entry) = LaplaceTable::entry(mean16, scale);
                values[(zl * dy + y) * dx + x] =
                    decode_value(&mut dec, &mut models, m, entry, side_class(coder, &c))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::GridArchitecture;
    use crate::synth::SplitMix;

    /// §8.5's context network as written, in i64 over the stored layout.
    fn predict_by_definition(h: usize, p: &[i16], c: &[i32; CONTEXT_INPUTS]) -> (i32, usize) {
        let n = CONTEXT_INPUTS;
        let (w1, rest) = p.split_at(n * h);
        let (b1, rest) = rest.split_at(h);
        let (w2, rest) = rest.split_at(h * 2);
        let (skip, b2) = rest.split_at(n * 2);
        let mut o = [0i64; 2];
        for j in 0..h {
            let a = b1[j] as i64
                + (0..n)
                    .map(|i| w1[i * h + j] as i64 * c[i] as i64)
                    .sum::<i64>();
            for (k, ok) in o.iter_mut().enumerate() {
                *ok += w2[j * 2 + k] as i64 * a.max(0);
            }
        }
        for (k, ok) in o.iter_mut().enumerate() {
            let lin = b2[k] as i64
                + (0..n)
                    .map(|i| skip[i * 2 + k] as i64 * c[i] as i64)
                    .sum::<i64>();
            *ok += lin << WEIGHT_FRAC;
        }
        let m = ((o[0] + (1 << 19)) >> 20)
            .clamp(-(MAX_LATENT_ABS as i64) * 16, MAX_LATENT_ABS as i64 * 16);
        let s = ((o[1] + (1 << 20)) >> 21).clamp(0, SCALE_STEPS as i64 - 1);
        (m as i32, s as usize)
    }

    /// The fast network (transposed, i16 multiply-adds) equals the
    /// definition, extreme weights and the largest inputs included.
    #[test]
    fn context_net_matches_its_definition() {
        let mut rng = SplitMix(21);
        for (case, h) in [0u8, 1, 4, 8, 32].into_iter().enumerate() {
            let arch = GridArchitecture {
                levels: 5,
                synthesis: Vec::new(),
                context_hidden: h,
            };
            let params: Vec<i16> = (0..arch.context_params())
                .map(|i| match (case + i) % 7 {
                    0 => i16::MIN,
                    1 => i16::MAX,
                    _ => (rng.next_u64() >> 48) as i16 / 4,
                })
                .collect();
            let net = ContextNet::new(&arch, &params);
            for k in 0..2000 {
                let c: [i32; CONTEXT_INPUTS] = std::array::from_fn(|i| {
                    let r = rng.next_u64();
                    match i {
                        _ if k % 3 == 0 && i <= NEIGHBOURS.len() => {
                            if r & 1 == 0 {
                                -CONTEXT_CLAMP
                            } else {
                                CONTEXT_CLAMP
                            }
                        }
                        _ if i <= NEIGHBOURS.len() => (r % 129) as i32 - CONTEXT_CLAMP,
                        PARITY_INPUT..LEVEL_INPUT => (r & 1) as i32,
                        LEVEL_INPUT => (r % 12) as i32,
                        _ => log2_eighths(1 + (r % 800) as u32),
                    }
                });
                assert_eq!(
                    net.predict(&c),
                    predict_by_definition(h as usize, &params, &c),
                    "hidden {h}, context {c:?}"
                );
            }
        }
    }

    /// The precomputed parent context equals the per-latent definition:
    /// the co-located latent and the sum over the interpolating samples.
    #[test]
    fn parent_level_matches_its_definition() {
        let mut rng = SplitMix(4);
        for dims in [[5usize, 4, 3, 1], [1, 6, 2, 1], [3, 3, 3, 2], [7, 1, 1, 1]] {
            let n: usize = dims.iter().product();
            let values: Vec<i32> = (0..n)
                .map(|_| (rng.next_u64() % 301) as i32 - 150)
                .collect();
            let parent = ParentLevel::new(dims, &values);
            let fine = dims.map(|d| 2 * d + 1);
            for t in 0..fine[3] {
                for z in 0..fine[2] {
                    for y in 0..fine[1] {
                        for x in 0..fine[0] {
                            let at = |q: [usize; 4]| {
                                ((q[3] * dims[2] + q[2]) * dims[1] + q[1]) * dims[0] + q[0]
                            };
                            let i = parent.under([x, y, z, t]);
                            let q = [x, y, z, t].map(|v| v / 2);
                            let q = std::array::from_fn(|a| q[a].min(dims[a] - 1));
                            assert_eq!(
                                parent.value[i],
                                values[at(q)].clamp(-CONTEXT_CLAMP, CONTEXT_CLAMP)
                            );
                            let mut sum = 0u32;
                            for qt in parents(t, dims[3]) {
                                for qz in parents(z, dims[2]) {
                                    for qy in parents(y, dims[1]) {
                                        for qx in parents(x, dims[0]) {
                                            sum += values[at([qx, qy, qz, qt])]
                                                .clamp(-CONTEXT_CLAMP, CONTEXT_CLAMP)
                                                .unsigned_abs();
                                        }
                                    }
                                }
                            }
                            assert_eq!(
                                parent.activity[i],
                                log2_eighths(1 + sum),
                                "{dims:?} {x} {y} {z} {t}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn exp2_matches_float_closely() {
        for x in [0u64, 1, 100, 32768, 65536, 100_000, 1 << 20, 30 << 16] {
            let want = (2f64).powf(-(x as f64) / 65536.0) * (1u64 << 30) as f64;
            let got = exp2_neg(x) as f64;
            assert!(
                (got - want).abs() <= 1e-6 * want + 2.0,
                "{x}: {got} vs {want}"
            );
        }
        assert_eq!(exp2_neg(31 << 16), 0);
    }

    #[test]
    fn table_is_a_laplace() {
        let t = LaplaceTable::new();
        // Narrow: nearly certain zero; wide: zero about 1/(2b)·… small.
        let (_, narrow) = t.lookup(0, 0);
        assert!(narrow.zero > 32000, "{narrow:?}");
        let (_, wide) = t.lookup(0, SCALE_STEPS - 1);
        assert!(wide.zero < 2000, "{wide:?}");
        assert_eq!(wide.positive, 16384);
        // A mean just above an integer favours the positive side.
        let (m, up) = t.lookup(5, 20);
        assert_eq!(m, 0);
        assert!(up.positive > 16384);
        let (m, _) = t.lookup(-9, 20);
        assert_eq!(m, -1);
    }

    #[test]
    fn values_round_trip_through_the_coder() {
        let t = LaplaceTable::new();
        let values: Vec<i32> = (-40..=40).chain([0, 0, 0, 1000, -30000, 32768]).collect();
        for coder in [
            Coder::Fixed,
            Coder::Adaptive,
            Coder::Contextual,
            Coder::TwoRate,
        ] {
            // Side classes as the coder has them (the sided ones' all 20).
            let side = |i: usize| i % coder.side_classes().max(1);
            let mut enc = FixedEncoder::new();
            let mut models = BitModels::new(&t, coder);
            for (i, &v) in values.iter().enumerate() {
                let (m, e) = LaplaceTable::entry((i as i32 % 33) - 16, i % SCALE_STEPS);
                encode_value(&mut enc, &mut models, v, m, e, side(i));
            }
            let bytes = enc.finish();
            let mut dec = FixedDecoder::new(&bytes).unwrap();
            let mut models = BitModels::new(&t, coder);
            for (i, &v) in values.iter().enumerate() {
                let (m, e) = LaplaceTable::entry((i as i32 % 33) - 16, i % SCALE_STEPS);
                assert_eq!(
                    decode_value(&mut dec, &mut models, m, e, side(i)).unwrap(),
                    v,
                    "{coder:?}"
                );
            }
        }
    }

    /// Latents that do not follow the table's Laplace (here: ±1 half the
    /// time, never larger, where the table expects a wide spread) cost less
    /// once the probabilities adapt; values the table fits cost about the same.
    #[test]
    fn adapted_probabilities_learn_what_the_table_does_not_know() {
        let t = LaplaceTable::new();
        let mut rng = crate::synth::SplitMix(4);
        let skewed: Vec<i32> = (0..4000)
            .map(|_| match rng.next_u64() % 4 {
                0 => 1,
                1 => -1,
                _ => 0,
            })
            .collect();
        let size = |coder, values: &[i32], scale| {
            let mut enc = FixedEncoder::new();
            let mut models = BitModels::new(&t, coder);
            for &v in values {
                let (m, e) = LaplaceTable::entry(0, scale);
                encode_value(&mut enc, &mut models, v, m, e, 0);
            }
            enc.finish().len() as f64
        };
        let (fixed, adapted) = (
            size(Coder::Fixed, &skewed, 40),
            size(Coder::Adaptive, &skewed, 40),
        );
        // 1.5 bits a latent is this source's entropy: 750 bytes.
        assert!(adapted < 0.8 * fixed, "{adapted} vs {fixed} bytes");
        assert!(adapted < 800.0, "{adapted} bytes");
        // A source the table's scale index 8 (b = 1/8) fits: P(0) ≈ 98%.
        let fitting: Vec<i32> = (0..4000).map(|i| (i % 50 == 0) as i32).collect();
        let (fixed, adapted) = (
            size(Coder::Fixed, &fitting, 8),
            size(Coder::Adaptive, &fitting, 8),
        );
        assert!(adapted < 1.1 * fixed, "{adapted} vs {fixed} bytes");
    }

    /// The adaptation stays a probability, moves towards what it sees and
    /// slows down to its floor rate, with one estimate or two.
    #[test]
    fn a_bit_model_adapts_within_bounds() {
        for (two, slowest) in [(false, ADAPT_SLOWEST), (true, TWO_RATE_SLOWEST)] {
            let mut m = BitModel::new(16384);
            for _ in 0..10_000 {
                m.update(false, two);
            }
            // Within 3·2^-15 of certain: a 0 then costs under 10⁻⁴ bit.
            assert!(m.p0() >= FIXED_ONE - 3, "{}", m.p0());
            for _ in 0..10_000 {
                m.update(true, two);
            }
            assert_eq!(m.p0(), 1);
            // The probabilities never leave [0, 1]: 2^22 · the rate's floor.
            assert!(m.p < 1 << 8 && m.fast < 1 << 8, "{} {}", m.p, m.fast);
            assert_eq!(adapt_rate(0, slowest), 8192);
            assert_eq!(adapt_rate(m.seen, slowest), 65536 / slowest);
            // One estimate: the second follows the first; two: the fast one
            // turns first.
            let mut m = BitModel::new(16384);
            m.update(false, two);
            for _ in 0..40 {
                m.update(true, two);
            }
            assert_eq!(m.fast == m.p, !two, "{} {}", m.p, m.fast);
            if two {
                assert!(m.fast < m.p);
            }
        }
    }
}
