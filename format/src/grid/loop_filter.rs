//! A grid scale's loop filter (VVC's adaptive loop filter, carried to 3D):
//! once the scale's synthesis is added, every voxel of the level's
//! reconstruction becomes a point-symmetric filter of its 25- or 63-voxel
//! diamond neighbourhood, with one of up to [`MAX_CLASSES`] filters chosen
//! by the voxel's local activity and value band. The encoder fits the
//! filters by least squares; they undo some of the quantization's blur and
//! ringing at sharp edges (engine at CR 200: +0.6 dB for ~500 bytes). A
//! section may chain two ([`super::MAX_LOOP_FILTERS`]). Since the next
//! scale predicts from the filtered level, it is "in the loop". Layout:
//! `docs/FORMAT.md` §8.5, "Loop filters".

use crate::bytes::{ByteReader, PutLe};
use crate::error::FormatError;
use crate::range_coder::{FixedDecoder, FixedEncoder, FIXED_ONE};
#[cfg(feature = "parallel")]
use rayon::prelude::*;

pub const MAX_CLASSES: usize = 32;
/// One of each point-symmetric pair of the diamond |dx|+|dy|+|dz| ≤ 3 off
/// its centre: first the 12 of radius ≤ 2 (the 6 axis neighbours at 1, the
/// 6 at 2, the 12 diagonal), then the 19 at radius 3.
pub const PAIRS: [[i32; 3]; 31] = [
    [1, 0, 0],
    [0, 1, 0],
    [0, 0, 1],
    [2, 0, 0],
    [0, 2, 0],
    [0, 0, 2],
    [1, 1, 0],
    [1, -1, 0],
    [1, 0, 1],
    [1, 0, -1],
    [0, 1, 1],
    [0, 1, -1],
    [3, 0, 0],
    [0, 3, 0],
    [0, 0, 3],
    [1, -2, 0],
    [1, 2, 0],
    [2, -1, 0],
    [2, 1, 0],
    [0, 1, -2],
    [0, 1, 2],
    [0, 2, -1],
    [0, 2, 1],
    [1, 0, -2],
    [1, 0, 2],
    [2, 0, -1],
    [2, 0, 1],
    [1, -1, -1],
    [1, -1, 1],
    [1, 1, -1],
    [1, 1, 1],
];
/// Coefficients per class of the largest shape: the offset, the centre's,
/// one per pair.
pub const MAX_COEFFICIENTS: usize = PAIRS.len() + 2;
/// Coefficients are stored in Q14 (value / 2^14).
pub const COEFFICIENT_FRAC: u32 = 14;
/// Coded coefficients (banded layout): a zigzagged residual's quotient by
/// 2^r is coded in unary up to this many ones, past them the whole residual
/// in [`ESCAPE_BITS`] bits.
const UNARY_CAP: u32 = 20;
const ESCAPE_BITS: u32 = 17;
/// The largest Rice parameter r.
const MAX_RICE: u8 = 16;

/// The filter's support: a diamond of radius 2 (25 voxels) or 3 (63).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    Diamond2,
    Diamond3,
}

impl Shape {
    pub const ALL: [Shape; 2] = [Shape::Diamond2, Shape::Diamond3];

    pub fn radius(self) -> u8 {
        match self {
            Shape::Diamond2 => 2,
            Shape::Diamond3 => 3,
        }
    }

    /// The first this many of [`PAIRS`].
    pub fn pairs(self) -> usize {
        match self {
            Shape::Diamond2 => 12,
            Shape::Diamond3 => PAIRS.len(),
        }
    }

    /// Coefficients per class: the offset, the centre's, each pair's.
    pub fn coefficients(self) -> usize {
        self.pairs() + 2
    }
}

/// The filters of one scale.
#[derive(Clone, Debug, PartialEq)]
pub struct LoopFilter {
    pub shape: Shape,
    /// Activity thresholds, ascending: a voxel's activity class is how
    /// many are ≤ its activity ([`activity`]). One fewer than the activity
    /// classes.
    pub thresholds: Vec<f32>,
    /// Value thresholds, ascending: a voxel's value band is how many are ≤
    /// its value; its class is activity class × bands + band. One fewer
    /// than the bands (empty: one band, section flag 1). Activity alone
    /// mixes the flat background with flat material (engine at CR 100, the
    /// finest scale's filter, least squares: 32 activity classes +0.44 dB,
    /// 8 activity × 4 value +0.52 dB).
    pub value_thresholds: Vec<f32>,
    /// Per class, in Q14, `shape.coefficients()` of them: the offset, the
    /// centre's weight, then each pair's (in [`PAIRS`] order).
    pub coefficients: Vec<Vec<i16>>,
    /// Clamp the filtered values to [0, 1], the header's value range (only
    /// true of the finest scale, whose values are the volume's).
    pub clamp: bool,
}

/// Index of `v + offset` in a grid of `dims` at time step `t`, each spatial
/// coordinate clamped into the grid (the edge voxel repeats).
#[inline]
fn clamped(dims: [usize; 4], v: [usize; 3], t: usize, offset: [i32; 3]) -> usize {
    let c = |a: usize| (v[a] as i64 + offset[a] as i64).clamp(0, dims[a] as i64 - 1) as usize;
    ((t * dims[2] + c(2)) * dims[1] + c(1)) * dims[0] + c(0)
}

/// A voxel's activity: the sum over the axes of |f(+1) − f(−1)|, taken in
/// x, y, z order (the GPU twin sums in the same order).
#[inline]
pub fn activity(data: &[f32], dims: [usize; 4], v: [usize; 3], t: usize) -> f32 {
    let mut a = 0f32;
    for axis in 0..3 {
        let mut o = [0i32; 3];
        o[axis] = 1;
        let plus = data[clamped(dims, v, t, o)];
        o[axis] = -1;
        let minus = data[clamped(dims, v, t, o)];
        a += (plus - minus).abs();
    }
    a
}

/// The filter's inputs at a voxel for the first `pairs` pairs: 1 (for the
/// offset), the centre's value, each pair's sum — what the coefficients
/// multiply, in order; the rest 0.
#[inline]
pub fn taps(
    data: &[f32],
    dims: [usize; 4],
    v: [usize; 3],
    t: usize,
    pairs: usize,
) -> [f32; MAX_COEFFICIENTS] {
    let mut x = [0f32; MAX_COEFFICIENTS];
    x[0] = 1.0;
    x[1] = data[clamped(dims, v, t, [0; 3])];
    for (k, p) in PAIRS[..pairs].iter().enumerate() {
        let minus = [-p[0], -p[1], -p[2]];
        x[k + 2] = data[clamped(dims, v, t, *p)] + data[clamped(dims, v, t, minus)];
    }
    x
}

/// `sums[x] += w[class[x]] · (plus[x] + minus[x])` over a run of voxels, a
/// product then a sum (never fused), as the definition has it: with AVX2
/// eight voxels at a time, their weights gathered (MNI152's finest scale,
/// two filters of 31 pairs: ~3× faster than one voxel at a time).
#[inline]
fn add_pair_terms(sums: &mut [f32], class: &[u32], w: &[f32], plus: &[f32], minus: &[f32]) {
    let n = sums.len();
    assert!(class.len() == n && plus.len() == n && minus.len() == n);
    // (Every class indexes `w`: `class_of` is below the classes.)
    debug_assert!(class.iter().all(|&k| (k as usize) < w.len()));
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 is there (checked just above); every index is in
        // bounds (the lengths and classes asserted above).
        unsafe { add_pair_terms_avx2(sums, class, w, plus, minus) };
        return;
    }
    for (((s, &k), &p), &m) in sums.iter_mut().zip(class).zip(plus).zip(minus) {
        *s += w[k as usize] * (p + m);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn add_pair_terms_avx2(
    sums: &mut [f32],
    class: &[u32],
    w: &[f32],
    plus: &[f32],
    minus: &[f32],
) {
    use std::arch::x86_64::*;
    let n = sums.len();
    let mut x = 0;
    while x + 8 <= n {
        let k = _mm256_loadu_si256(class.as_ptr().add(x) as *const __m256i);
        let wk = _mm256_i32gather_ps::<4>(w.as_ptr(), k);
        let p = _mm256_loadu_ps(plus.as_ptr().add(x));
        let m = _mm256_loadu_ps(minus.as_ptr().add(x));
        let s = _mm256_loadu_ps(sums.as_ptr().add(x));
        let s = _mm256_add_ps(s, _mm256_mul_ps(wk, _mm256_add_ps(p, m)));
        _mm256_storeu_ps(sums.as_mut_ptr().add(x), s);
        x += 8;
    }
    for x in x..n {
        sums[x] += w[class[x] as usize] * (plus[x] + minus[x]);
    }
}

impl LoopFilter {
    pub fn classes(&self) -> usize {
        self.coefficients.len()
    }

    /// Value bands: one more than the value thresholds.
    pub fn bands(&self) -> usize {
        self.value_thresholds.len() + 1
    }

    /// The class of a voxel of activity `a` and value `v` (counted, not
    /// searched: the thresholds are few and ascending, and a count has no
    /// branches to mispredict).
    #[inline]
    pub fn class_of(&self, a: f32, v: f32) -> usize {
        let below = |t: &[f32], x: f32| t.iter().map(|&th| (th <= x) as usize).sum::<usize>();
        below(&self.thresholds, a) * self.bands() + below(&self.value_thresholds, v)
    }

    /// Class `k`'s coefficients as f32.
    pub fn weights(&self, k: usize) -> Vec<f32> {
        let scale = 1.0 / (1u32 << COEFFICIENT_FRAC) as f32;
        self.coefficients[k]
            .iter()
            .map(|&c| c as f32 * scale)
            .collect()
    }

    /// The filtered grid. Sums run in coefficient order, from the offset.
    pub fn apply(&self, dims: [usize; 4], data: &[f32]) -> Vec<f32> {
        let weights: Vec<Vec<f32>> = (0..self.classes()).map(|k| self.weights(k)).collect();
        // Per coefficient, every class's: what a run of voxels gathers from.
        let by_coefficient: Vec<Vec<f32>> = (0..self.shape.coefficients())
            .map(|j| weights.iter().map(|w| w[j]).collect())
            .collect();
        let pairs = self.shape.pairs();
        let radius = self.shape.radius() as usize;
        let dx = dims[0];
        // Every voxel's class indexes the weights (the gather relies on it).
        assert_eq!(
            (self.thresholds.len() + 1) * self.bands(),
            self.classes(),
            "loop filter classes do not match its thresholds"
        );
        let finish = |sum: f32| if self.clamp { sum.clamp(0.0, 1.0) } else { sum };
        let row = |(r, out): (usize, &mut [f32])| {
            let (y, z, t) = (
                r % dims[1],
                (r / dims[1]) % dims[2],
                r / (dims[1] * dims[2]),
            );
            // The row's voxels away from its ends, a term at a time over the
            // run: each voxel's sum in the same order as below, but the
            // voxels' sums independent of each other (one voxel's 33
            // dependent adds were the filter's time). A neighbour row off
            // the grid is the clamped one, as `taps` reads it.
            let row_at = |dy: i32, dz: i32| {
                let cy = (y as i64 + dy as i64).clamp(0, dims[1] as i64 - 1) as usize;
                let cz = (z as i64 + dz as i64).clamp(0, dims[2] as i64 - 1) as usize;
                ((t * dims[2] + cz) * dims[1] + cy) * dx
            };
            let run = if dx > 2 * radius {
                radius..dx - radius
            } else {
                0..0
            };
            if !run.is_empty() {
                let len = run.len();
                let at = |dx: i32, dy: i32, dz: i32| {
                    &data[(row_at(dy, dz) + run.start).wrapping_add_signed(dx as isize)..][..len]
                };
                let centre = at(0, 0, 0);
                let (x0, x1) = (at(1, 0, 0), at(-1, 0, 0));
                let (y0, y1) = (at(0, 1, 0), at(0, -1, 0));
                let (z0, z1) = (at(0, 0, 1), at(0, 0, -1));
                let class: Vec<u32> = (0..len)
                    .map(|x| {
                        let mut a = (x0[x] - x1[x]).abs();
                        a += (y0[x] - y1[x]).abs();
                        a += (z0[x] - z1[x]).abs();
                        self.class_of(a, centre[x]) as u32
                    })
                    .collect();
                let mut sums = vec![0f32; len];
                for ((s, &k), &c) in sums.iter_mut().zip(&class).zip(centre) {
                    *s = by_coefficient[0][k as usize];
                    *s += by_coefficient[1][k as usize] * c;
                }
                for (w, p) in by_coefficient[2..].iter().zip(&PAIRS[..pairs]) {
                    // The "+" voxel first, as in `taps`.
                    let plus = at(p[0], p[1], p[2]);
                    let minus = at(-p[0], -p[1], -p[2]);
                    add_pair_terms(&mut sums, &class, w, plus, minus);
                }
                for (o, s) in out[run.clone()].iter_mut().zip(sums) {
                    *o = finish(s);
                }
            }
            // The row's ends: `taps` and `activity`, their rows looked up
            // once, x clamped.
            let ends: Vec<usize> = (0..dx).filter(|x| !run.contains(x)).collect();
            if ends.is_empty() {
                return;
            }
            let rows: Vec<[usize; 2]> = PAIRS[..pairs]
                .iter()
                .map(|p| [row_at(p[1], p[2]), row_at(-p[1], -p[2])])
                .collect();
            let (here, last) = (row_at(0, 0), dx as i64 - 1);
            let cx = |x: usize, o: i32| (x as i64 + o as i64).clamp(0, last) as usize;
            let (y0, y1) = (row_at(1, 0), row_at(-1, 0));
            let (z0, z1) = (row_at(0, 1), row_at(0, -1));
            for x in ends {
                let mut a = (data[here + cx(x, 1)] - data[here + cx(x, -1)]).abs();
                a += (data[y0 + x] - data[y1 + x]).abs();
                a += (data[z0 + x] - data[z1 + x]).abs();
                let centre = data[here + x];
                let w = &weights[self.class_of(a, centre)];
                let mut sum = w[0];
                sum += w[1] * centre;
                for ((wk, p), [plus, minus]) in w[2..].iter().zip(&PAIRS[..pairs]).zip(&rows) {
                    sum += wk * (data[plus + cx(x, p[0])] + data[minus + cx(x, -p[0])]);
                }
                out[x] = finish(sum);
            }
        };
        let mut out = vec![0f32; data.len()];
        if dims[0] == 0 {
            return out;
        }
        #[cfg(feature = "parallel")]
        out.par_chunks_mut(dims[0]).enumerate().for_each(row);
        #[cfg(not(feature = "parallel"))]
        out.chunks_mut(dims[0]).enumerate().for_each(row);
        out
    }

    pub fn check(&self) -> Result<(), FormatError> {
        let bad = |m: String| Err(FormatError::Invalid(m));
        let k = self.classes();
        if k == 0 || k > MAX_CLASSES {
            return bad(format!(
                "{k} loop filter classes, allowed 1..={MAX_CLASSES}"
            ));
        }
        let bands = self.bands();
        if !k.is_multiple_of(bands) {
            return bad(format!(
                "{k} loop filter classes are not a multiple of its {bands} value bands"
            ));
        }
        if self.thresholds.len() != k / bands - 1 {
            return bad(format!(
                "{} loop filter thresholds for {} activity classes",
                self.thresholds.len(),
                k / bands
            ));
        }
        for t in [&self.thresholds, &self.value_thresholds] {
            if t.iter().any(|t| !t.is_finite()) || t.windows(2).any(|w| w[0] > w[1]) {
                return bad(format!(
                    "loop filter thresholds {t:?} are not finite and ascending"
                ));
            }
        }
        let n = self.shape.coefficients();
        if let Some(c) = self.coefficients.iter().find(|c| c.len() != n) {
            return bad(format!(
                "{} loop filter coefficients in a class, the shape has {n}",
                c.len()
            ));
        }
        Ok(())
    }

    /// Bytes of a filter of `classes` activity classes × `bands` value bands
    /// with its coefficients stored plainly, 2 bytes each (and a byte of
    /// bands): what one may take before it is fitted (coded, engine's take
    /// ~70% of it; [`Self::coded_len`]).
    pub fn stored_len(shape: Shape, classes: usize, bands: usize) -> usize {
        4 + 4 * (classes - 1 + bands - 1) + 2 * shape.coefficients() * classes * bands
    }

    /// Bytes of this filter as written in the banded layout (its
    /// coefficients coded: most are small, and neighbouring classes'
    /// alike).
    pub fn coded_len(&self) -> usize {
        let mut out = Vec::new();
        self.write(&mut out, true);
        out.len()
    }

    /// Coefficient `j` of class `k` as the coded layout predicts it: class
    /// k − bands's (the next lower activity class of the same band), for the
    /// lowest activity class the band below's, for class 0 the identity's.
    fn predicted(k: usize, j: usize, bands: usize, coefficients: &[Vec<i16>]) -> i32 {
        match k {
            0 => (j == 1) as i32 * (1 << COEFFICIENT_FRAC),
            k if k >= bands => coefficients[k - bands][j] as i32,
            k => coefficients[k - 1][j] as i32,
        }
    }

    /// The coefficients' residuals from their predictions, zigzagged.
    fn residuals(&self) -> Vec<u32> {
        let bands = self.bands();
        let mut out = Vec::with_capacity(self.classes() * self.shape.coefficients());
        for (k, c) in self.coefficients.iter().enumerate() {
            for (j, &v) in c.iter().enumerate() {
                let e = v as i32 - Self::predicted(k, j, bands, &self.coefficients);
                out.push(((e << 1) ^ (e >> 31)) as u32);
            }
        }
        out
    }

    /// The residuals Rice-coded with parameter `r` (bits at ½).
    fn rice_coded(residuals: &[u32], r: u8) -> Vec<u8> {
        let mut enc = FixedEncoder::new();
        let half = FIXED_ONE / 2;
        for &u in residuals {
            let q = u >> r;
            if q >= UNARY_CAP {
                (0..UNARY_CAP).for_each(|_| enc.bit(half, true));
                (0..ESCAPE_BITS)
                    .rev()
                    .for_each(|b| enc.bit(half, (u >> b) & 1 == 1));
                continue;
            }
            (0..q).for_each(|_| enc.bit(half, true));
            enc.bit(half, false);
            (0..r).rev().for_each(|b| enc.bit(half, (u >> b) & 1 == 1));
        }
        enc.finish()
    }

    /// Whether the filter has value bands (it needs the banded layout).
    pub fn banded(&self) -> bool {
        !self.value_thresholds.is_empty()
    }

    /// Writes the filter in the banded layout (a byte of value bands after
    /// the clamp, the value thresholds after the activity ones) or, for a
    /// filter of one band, optionally the plain one.
    pub(crate) fn write(&self, out: &mut Vec<u8>, banded: bool) {
        debug_assert!(banded || !self.banded());
        out.put_u8(self.classes() as u8);
        out.put_u8(self.shape.radius());
        out.put_u8(self.clamp as u8);
        if banded {
            out.put_u8(self.bands() as u8);
        }
        for &t in self.thresholds.iter().chain(&self.value_thresholds) {
            out.put_u32(t.to_bits());
        }
        if !banded {
            for &c in self.coefficients.iter().flatten() {
                out.put_u16(c as u16);
            }
            return;
        }
        // Banded: u8 r, u16 length, the Rice-coded residuals (the r that
        // codes them shortest).
        let residuals = self.residuals();
        let (r, coded) = (0..=MAX_RICE)
            .map(|r| (r, Self::rice_coded(&residuals, r)))
            .min_by_key(|(_, c)| c.len())
            .expect("a Rice parameter");
        out.put_u8(r);
        out.put_u16(coded.len() as u16);
        out.extend_from_slice(&coded);
    }

    /// Reads a filter stored in the plain or the banded layout.
    pub(crate) fn read(r: &mut ByteReader, banded: bool) -> Result<LoopFilter, FormatError> {
        let classes = r.u8("loop filter classes")? as usize;
        if classes == 0 || classes > MAX_CLASSES {
            return Err(FormatError::Invalid(format!(
                "{classes} loop filter classes, allowed 1..={MAX_CLASSES}"
            )));
        }
        let radius = r.u8("loop filter radius")?;
        let Some(shape) = Shape::ALL.into_iter().find(|s| s.radius() == radius) else {
            return Err(FormatError::Invalid(format!(
                "loop filter radius {radius}, expected 2 or 3"
            )));
        };
        let clamp = match r.u8("loop filter clamp")? {
            0 => false,
            1 => true,
            c => {
                return Err(FormatError::Invalid(format!(
                    "loop filter clamp {c}, expected 0 or 1"
                )))
            }
        };
        let bands = match banded {
            true => r.u8("loop filter value bands")? as usize,
            false => 1,
        };
        if bands == 0 || !classes.is_multiple_of(bands) {
            return Err(FormatError::Invalid(format!(
                "{bands} loop filter value bands for {classes} classes"
            )));
        }
        let mut read_thresholds = |n: usize| -> Result<Vec<f32>, FormatError> {
            (0..n)
                .map(|_| Ok(f32::from_bits(r.u32("loop filter threshold")?)))
                .collect()
        };
        let thresholds = read_thresholds(classes / bands - 1)?;
        let value_thresholds = read_thresholds(bands - 1)?;
        let mut coefficients: Vec<Vec<i16>> = Vec::with_capacity(classes);
        if banded {
            let rice = r.u8("loop filter Rice parameter")?;
            if rice > MAX_RICE {
                return Err(FormatError::Invalid(format!(
                    "loop filter Rice parameter {rice}, at most {MAX_RICE}"
                )));
            }
            let len = r.u16("loop filter coded length")? as usize;
            let coded = r.take(len, "loop filter coefficients")?;
            let bad = |e: String| FormatError::Invalid(format!("loop filter coefficients: {e}"));
            let mut dec = FixedDecoder::new(coded).map_err(bad)?;
            let half = FIXED_ONE / 2;
            let bits = |n: u32, dec: &mut FixedDecoder| -> Result<u32, FormatError> {
                (0..n).try_fold(0u32, |v, _| {
                    Ok((v << 1) | dec.bit(half).map_err(bad)? as u32)
                })
            };
            for k in 0..classes {
                let mut c = vec![0i16; shape.coefficients()];
                for (j, v) in c.iter_mut().enumerate() {
                    let mut q = 0;
                    while q < UNARY_CAP && dec.bit(half).map_err(bad)? {
                        q += 1;
                    }
                    let u = if q == UNARY_CAP {
                        bits(ESCAPE_BITS, &mut dec)?
                    } else {
                        (q << rice) | bits(rice as u32, &mut dec)?
                    };
                    let e = (u >> 1) as i32 ^ -((u & 1) as i32);
                    let value = Self::predicted(k, j, bands, &coefficients) + e;
                    *v = i16::try_from(value)
                        .map_err(|_| bad(format!("coefficient {value} beyond 16 bits")))?;
                }
                coefficients.push(c);
            }
        } else {
            for _ in 0..classes {
                let mut c = vec![0i16; shape.coefficients()];
                for v in &mut c {
                    *v = r.u16("loop filter coefficient")? as i16;
                }
                coefficients.push(c);
            }
        }
        let filter = LoopFilter {
            shape,
            thresholds,
            value_thresholds,
            coefficients,
            clamp,
        };
        filter.check()?;
        Ok(filter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(shape: Shape, classes: usize) -> LoopFilter {
        let mut c = vec![0i16; shape.coefficients()];
        c[1] = 1 << COEFFICIENT_FRAC;
        LoopFilter {
            shape,
            thresholds: (1..classes).map(|k| k as f32 * 0.1).collect(),
            value_thresholds: Vec::new(),
            coefficients: vec![c; classes],
            clamp: false,
        }
    }

    #[test]
    fn the_identity_filter_changes_nothing_and_clamping_bounds() {
        let dims = [5, 4, 3, 2];
        let data: Vec<f32> = (0..120).map(|i| (i as f32 * 0.37).sin() * 1.5).collect();
        for shape in Shape::ALL {
            let f = identity(shape, 3);
            assert_eq!(f.apply(dims, &data), data);
            let clamped = LoopFilter { clamp: true, ..f }.apply(dims, &data);
            assert!(clamped
                .iter()
                .zip(&data)
                .all(|(c, d)| *c == d.clamp(0.0, 1.0)));
        }
    }

    #[test]
    fn a_filter_averages_its_diamond_and_picks_its_class_by_activity() {
        // Class 0 (flat places) averages the diamond; class 1 keeps them.
        let dims = [8, 8, 8, 1];
        let mut data = vec![0.5f32; 512];
        data[clamped(dims, [4, 4, 4], 0, [0; 3])] = 1.0;
        for (shape, voxels) in [(Shape::Diamond2, 25), (Shape::Diamond3, 63)] {
            let n = shape.coefficients();
            let mut avg = vec![(1i16 << COEFFICIENT_FRAC) / voxels; n];
            avg[0] = 0;
            let mut keep = vec![0i16; n];
            keep[1] = 1 << COEFFICIENT_FRAC;
            let f = LoopFilter {
                shape,
                thresholds: vec![0.25],
                value_thresholds: Vec::new(),
                coefficients: vec![avg, keep],
                clamp: false,
            };
            let out = f.apply(dims, &data);
            let at = |v: [usize; 3]| out[clamped(dims, v, 0, [0; 3])];
            // The spike's own activity is 0 (its neighbours are equal); its
            // neighbours see |1 − 0.5| = 0.5 and keep their value.
            let w = ((1 << COEFFICIENT_FRAC) / voxels) as f32 / 16384.0;
            let rest = (voxels - 1) as f32;
            assert!((at([4, 4, 4]) - (w * 1.0 + rest * w * 0.5)).abs() < 1e-6);
            assert_eq!(at([5, 4, 4]), 0.5);
            assert!((at([0, 0, 0]) - voxels as f32 * w * 0.5).abs() < 1e-6);
            // (4, 4, 1) is 3 from the spike: inside the diamond of radius 3.
            let far = at([4, 4, 1]) - voxels as f32 * w * 0.5;
            assert_eq!(far.abs() > 1e-3, shape == Shape::Diamond3, "{shape:?}");
        }
    }

    #[test]
    fn the_inner_voxels_fast_path_is_the_clamped_definition() {
        // Dims past twice the radius on every axis, 4D, random values and
        // filters: every voxel as `activity` and `taps` define it.
        let dims = [13, 11, 9, 2];
        let n: usize = dims.iter().product();
        let data: Vec<f32> = (0..n)
            .map(|i| ((i * 7919) % 1000) as f32 / 1000.0)
            .collect();
        for shape in Shape::ALL {
            let coefficients = (0..6)
                .map(|k| {
                    (0..shape.coefficients())
                        .map(|j| ((j * 37 + k * 11) % 200) as i16 - 100)
                        .collect()
                })
                .collect();
            let f = LoopFilter {
                shape,
                thresholds: vec![0.3, 0.9],
                value_thresholds: vec![0.5],
                coefficients,
                clamp: false,
            };
            let out = f.apply(dims, &data);
            let mut i = 0;
            for t in 0..dims[3] {
                for z in 0..dims[2] {
                    for y in 0..dims[1] {
                        for x in 0..dims[0] {
                            let v = [x, y, z];
                            let x = taps(&data, dims, v, t, shape.pairs());
                            let w = f.weights(f.class_of(activity(&data, dims, v, t), x[1]));
                            let mut sum = 0f32;
                            for (wk, xk) in w.iter().zip(x) {
                                sum += wk * xk;
                            }
                            assert_eq!(out[i].to_bits(), sum.to_bits(), "{shape:?} {v:?} {t}");
                            i += 1;
                        }
                    }
                }
            }
        }
    }

    /// Coded coefficients: extremes (the escape) and filters near the
    /// identity come back exactly, the latter in well under the plain
    /// layout's bytes; damaged codes are errors or other filters, never
    /// panics.
    #[test]
    fn coded_coefficients_round_trip_and_survive_damage() {
        let mut rng = crate::synth::SplitMix(31);
        let mut f = identity(Shape::Diamond3, 8);
        f.thresholds = vec![0.1, 0.2, 0.3];
        f.value_thresholds = vec![0.5];
        for c in f.coefficients.iter_mut() {
            for v in c.iter_mut().skip(2) {
                *v = (rng.symmetric(300.0)) as i16;
            }
        }
        let near = f.clone();
        let mut bytes = Vec::new();
        near.write(&mut bytes, true);
        assert_eq!(
            LoopFilter::read(&mut ByteReader::new(&bytes), true).unwrap(),
            near
        );
        let plain = LoopFilter::stored_len(Shape::Diamond3, 4, 2);
        assert!(
            bytes.len() < plain * 3 / 4,
            "{} vs {plain} bytes",
            bytes.len()
        );
        f.coefficients[0][0] = i16::MIN;
        f.coefficients[1][0] = i16::MAX;
        f.coefficients[2][3] = i16::MIN;
        f.coefficients[7][1] = -1;
        let mut extremes = Vec::new();
        f.write(&mut extremes, true);
        assert_eq!(
            LoopFilter::read(&mut ByteReader::new(&extremes), true).unwrap(),
            f
        );
        let coded_at = bytes.len() - near.coded_len() + 3 + 4 * 4 + 4;
        for i in 0..200 {
            let mut b = bytes.clone();
            let at = coded_at
                + (rng.unit() * (b.len() - coded_at) as f32) as usize % (b.len() - coded_at);
            b[at] ^= 1 << (i % 8);
            let _ = LoopFilter::read(&mut ByteReader::new(&b), true);
        }
        // A Rice parameter out of range.
        let mut b = bytes.clone();
        b[3 + 1 + 4 * 4] = 17;
        assert!(LoopFilter::read(&mut ByteReader::new(&b), true).is_err());
    }

    #[test]
    fn filters_round_trip_and_bad_ones_are_refused() {
        for (shape, bands) in Shape::ALL.into_iter().flat_map(|s| [(s, 1), (s, 2)]) {
            let mut f = identity(shape, 4);
            if bands == 2 {
                // 2 activity classes × 2 value bands.
                f.thresholds = vec![0.2];
                f.value_thresholds = vec![0.6];
            }
            f.coefficients[2][5] = -1234;
            f.clamp = true;
            let banded = f.banded();
            assert_eq!(banded, bands == 2);
            let mut bytes = Vec::new();
            f.write(&mut bytes, banded);
            if banded {
                assert_eq!(bytes.len(), f.coded_len());
            } else {
                assert_eq!(bytes.len() + 1, LoopFilter::stored_len(shape, 4, 1));
            }
            assert_eq!(
                LoopFilter::read(&mut ByteReader::new(&bytes), banded).unwrap(),
                f
            );
            for cut in 0..bytes.len() {
                assert!(LoopFilter::read(&mut ByteReader::new(&bytes[..cut]), banded).is_err());
            }
            let mut damage = vec![(0, 0), (0, 33), (1, 1), (1, 4), (2, 2)];
            if banded {
                // No bands, or 3 (not dividing 4 classes).
                damage.extend([(3, 0), (3, 3)]);
            }
            for (at, value) in damage {
                let mut b = bytes.clone();
                b[at] = value;
                assert!(LoopFilter::read(&mut ByteReader::new(&b), banded).is_err());
            }
            // One band in the banded layout reads as the plain filter.
            if !banded {
                let mut b = Vec::new();
                f.write(&mut b, true);
                assert_eq!(LoopFilter::read(&mut ByteReader::new(&b), true).unwrap(), f);
            }
        }
        // Thresholds out of order, and a class of the wrong length.
        let mut g = identity(Shape::Diamond2, 3);
        g.thresholds = vec![0.5, 0.1];
        assert!(g.check().is_err());
        g.thresholds = vec![0.1, f32::NAN];
        assert!(g.check().is_err());
        let mut g = identity(Shape::Diamond2, 2);
        g.coefficients[1].push(0);
        assert!(g.check().is_err());
    }
}
