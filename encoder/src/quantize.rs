//! Global quantization of a scale's parameters (ECNR, after Han et al.'s deep
//! compression): the values of one layer's weights — of all MLPs of the
//! scale together — share one codebook of at most 2^β values, found by
//! k-means in one dimension; biases and latent codes get codebooks of their
//! own. Pruned (masked-out) values stay exactly zero and are not quantized.

use strata_format::{Tensor, TensorValues};

/// A codebook and each value's index into it.
#[derive(Clone, Debug, PartialEq)]
pub struct Quantized {
    /// Sorted ascending, no duplicates.
    pub codebook: Vec<f32>,
    pub indices: Vec<u32>,
}

impl Quantized {
    /// Index width in bits: enough for the codebook, at least 1.
    pub fn bits(&self) -> u8 {
        let n = self.codebook.len().max(2);
        (usize::BITS - (n - 1).leading_zeros()) as u8
    }

    pub fn values(&self) -> impl Iterator<Item = f32> + '_ {
        self.indices.iter().map(|&i| self.codebook[i as usize])
    }
}

/// k-means of `values` into at most `k` clusters. Centroids start evenly
/// spaced between the minimum and the maximum — the initialization that
/// keeps the rare large weights, which matter most, represented — then
/// Lloyd iterations, exact in one dimension: on sorted values each
/// cluster is a run, found by bisection at the midpoints between centroids.
pub fn kmeans_1d(values: &[f32], k: usize) -> Quantized {
    if values.is_empty() {
        return Quantized {
            codebook: Vec::new(),
            indices: Vec::new(),
        };
    }
    let mut sorted: Vec<f32> = values.to_vec();
    sorted.sort_by(f32::total_cmp);
    let (lo, hi) = (sorted[0], sorted[sorted.len() - 1]);
    let k = k.max(1);
    // Prefix sums in f64, so a cluster's mean is two lookups.
    let mut prefix = Vec::with_capacity(sorted.len() + 1);
    prefix.push(0f64);
    for &v in &sorted {
        prefix.push(prefix.last().unwrap() + v as f64);
    }
    let mut centroids: Vec<f32> = if k == 1 || lo == hi {
        vec![lo + (hi - lo) / 2.0]
    } else {
        (0..k)
            .map(|j| lo + (hi - lo) * j as f32 / (k - 1) as f32)
            .collect()
    };
    for _ in 0..300 {
        let starts = run_starts(&sorted, &centroids);
        let mut next = Vec::with_capacity(centroids.len());
        for j in 0..centroids.len() {
            let (a, b) = (starts[j], starts[j + 1]);
            if b > a {
                next.push(((prefix[b] - prefix[a]) / (b - a) as f64) as f32);
            }
            // An empty cluster is dropped: its centroid attracts nothing.
        }
        next.dedup();
        if next == centroids {
            break;
        }
        centroids = next;
    }
    let indices = values
        .iter()
        .map(|&v| nearest(&centroids, v) as u32)
        .collect();
    Quantized {
        codebook: centroids,
        indices,
    }
}

/// For sorted `values` and ascending `centroids`, where each centroid's run
/// starts (plus the end): a value belongs to the nearest centroid.
fn run_starts(sorted: &[f32], centroids: &[f32]) -> Vec<usize> {
    let mut starts = Vec::with_capacity(centroids.len() + 1);
    starts.push(0);
    for w in centroids.windows(2) {
        let mid = w[0] + (w[1] - w[0]) / 2.0;
        starts.push(sorted.partition_point(|&v| v < mid));
    }
    starts.push(sorted.len());
    starts
}

/// Index of the centroid nearest to `v` (ties to the lower one).
pub fn nearest(centroids: &[f32], v: f32) -> usize {
    let i = centroids.partition_point(|&c| c < v);
    if i == 0 {
        0
    } else if i == centroids.len() || v - centroids[i - 1] <= centroids[i] - v {
        i - 1
    } else {
        i
    }
}

/// The values `mask` keeps (all without a mask), in order.
fn kept(values: &[f32], mask: Option<&[bool]>) -> Vec<f32> {
    match mask {
        Some(m) => values
            .iter()
            .zip(m)
            .filter(|(_, &keep)| keep)
            .map(|(&v, _)| v)
            .collect(),
        None => values.to_vec(),
    }
}

/// A stored tensor for `values`: masked where `mask` is given (cleared bits
/// are pruned, so zero), the kept values quantized to at most 2^`bits`
/// codebook entries (fewer for small tensors) — or kept as f32 when `bits`
/// is `None`.
pub fn tensor(values: &[f32], mask: Option<&[bool]>, bits: Option<u8>) -> Tensor {
    let kept = kept(values, mask);
    let values = match bits {
        None => TensorValues::F32(kept),
        Some(bits) => {
            // A codebook (f32 entries) is only worth it when it is small
            // next to what it codes: at most one entry per eight values.
            // Only small volumes' tensors are that short.
            let k = (1usize << bits).min(kept.len().div_ceil(8)).max(2);
            let q = kmeans_1d(&kept, k);
            // Entries rounded to binary16 (relative step 2^-11, far finer
            // than the codebook's own spacing) store in half the bytes; the
            // encoder's closed loop sees exactly these values.
            let codebook = q.codebook.iter().map(|&c| to_half(c)).collect();
            TensorValues::Codebook {
                bits: q.bits(),
                codebook,
                indices: q.indices,
            }
        }
    };
    Tensor {
        mask: mask.map(|m| m.to_vec()),
        values,
    }
}

/// `tensor` with each codebook entry moved to the mean of `tuned` over the
/// positions that use it (indices and mask frozen), rounded to binary16;
/// an entry no position uses keeps its value. Other tensors come back as
/// they are. `tuned` holds every position, masked ones included.
pub fn retune(tensor: &Tensor, tuned: &[f32]) -> Tensor {
    let TensorValues::Codebook {
        bits,
        codebook,
        indices,
    } = &tensor.values
    else {
        return tensor.clone();
    };
    let kept = kept(tuned, tensor.mask.as_deref());
    let mut sums = vec![(0f64, 0usize); codebook.len()];
    for (&i, &v) in indices.iter().zip(&kept) {
        let s = &mut sums[i as usize];
        s.0 += v as f64;
        s.1 += 1;
    }
    let codebook = codebook
        .iter()
        .zip(sums)
        .map(|(&c, (sum, n))| {
            if n == 0 {
                c
            } else {
                to_half((sum / n as f64) as f32)
            }
        })
        .collect();
    Tensor {
        mask: tensor.mask.clone(),
        values: TensorValues::Codebook {
            bits: *bits,
            codebook,
            indices: indices.clone(),
        },
    }
}

/// Codebook index widths of one scale section's tensors: its latents, and
/// each layer's weights and biases. Rate control gives tensors different
/// widths to fill a byte budget closely.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorBits {
    /// Latents first, then weights and biases of layer 0, of layer 1, …
    slots: Vec<u8>,
}

impl TensorBits {
    /// The same width for every tensor of a section with `layers` layers.
    pub fn uniform(bits: u8, layers: usize) -> TensorBits {
        TensorBits {
            slots: vec![bits; 1 + 2 * layers],
        }
    }

    /// Latents, weights and biases as `Quantization` says.
    pub fn from_quantization(q: crate::Quantization, layers: usize) -> TensorBits {
        let mut slots = vec![q.latent_bits];
        for _ in 0..layers {
            slots.extend([q.weight_bits, q.bias_bits]);
        }
        TensorBits { slots }
    }

    pub fn latents(&self) -> u8 {
        self.slots[0]
    }

    pub fn weights(&self, layer: usize) -> u8 {
        self.slots[1 + 2 * layer]
    }

    pub fn biases(&self, layer: usize) -> u8 {
        self.slots[2 + 2 * layer]
    }

    /// The widths in slot order: latents, then weights and biases per layer.
    pub fn slots(&self) -> &[u8] {
        &self.slots
    }

    pub fn slots_mut(&mut self) -> &mut [u8] {
        &mut self.slots
    }
}

/// "9" when all tensors share a width, else "8-9" (narrowest to widest).
impl std::fmt::Display for TensorBits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let lo = self.slots.iter().min().copied().unwrap_or(0);
        let hi = self.slots.iter().max().copied().unwrap_or(0);
        if lo == hi {
            write!(f, "{lo}")
        } else {
            write!(f, "{lo}-{hi}")
        }
    }
}

/// `x` rounded to the nearest binary16 value, or `x` where that overflows.
fn to_half(x: f32) -> f32 {
    let h = half::f16::from_f32(x).to_f32();
    if h.is_finite() {
        h
    } else {
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_format::synth::SplitMix;

    fn mse(a: &[f32], b: impl Iterator<Item = f32>) -> f64 {
        a.iter()
            .zip(b)
            .map(|(&x, y)| ((x - y) as f64).powi(2))
            .sum::<f64>()
            / a.len() as f64
    }

    #[test]
    fn few_distinct_values_are_kept_exactly() {
        let v = [0.5, -1.0, 0.5, 2.0, -1.0, 2.0, 2.0];
        let q = kmeans_1d(&v, 8);
        assert_eq!(q.codebook, vec![-1.0, 0.5, 2.0]);
        assert_eq!(q.values().collect::<Vec<_>>(), v);
        assert_eq!(q.bits(), 2);
    }

    #[test]
    fn lloyd_beats_a_uniform_grid_and_halves_error_per_bit() {
        // Peaked weights: most near zero, a few large — where an even grid
        // wastes its levels on the tails.
        let mut rng = SplitMix(7);
        let v: Vec<f32> = (0..20_000).map(|_| rng.symmetric(1.0).powi(3)).collect();
        let (lo, hi) = v
            .iter()
            .fold((f32::MAX, f32::MIN), |(a, b), &x| (a.min(x), b.max(x)));
        let grid: Vec<f32> = (0..64).map(|j| lo + (hi - lo) * j as f32 / 63.0).collect();
        let uniform = mse(&v, v.iter().map(|&x| grid[nearest(&grid, x)]));
        let q6 = kmeans_1d(&v, 64);
        let e6 = mse(&v, q6.values());
        // High-resolution theory (Panter–Dite) puts the best quantizer of
        // u³ at ~0.71 of the even grid's error; Lloyd must get near it.
        assert!(e6 < uniform * 0.8, "k-means {e6} vs uniform grid {uniform}");
        let e7 = mse(&v, kmeans_1d(&v, 128).values());
        // One more bit: error ~4× smaller (≥3× allowed for the tails).
        assert!(e7 < e6 / 3.0, "6 bits {e6}, 7 bits {e7}");
        assert!(q6.codebook.windows(2).all(|w| w[0] < w[1]));
        assert!(q6.codebook.len() <= 64 && q6.bits() <= 6);
    }

    #[test]
    fn masked_values_stay_zero_and_are_not_stored() {
        // 24 kept values from 3 distinct ones: a 3-entry codebook is exact
        // up to its entries' rounding to binary16.
        let values: Vec<f32> = (0..48)
            .map(|i| [0.3, -0.2, 0.9, 0.0, -0.7, 0.5][i % 6])
            .collect();
        let mask: Vec<bool> = (0..48).map(|i| i % 2 == 0).collect();
        let t = tensor(&values, Some(&mask), Some(4));
        t.validate("test").unwrap();
        assert_eq!(t.values.len(), 24);
        let expected: Vec<f32> = values
            .iter()
            .zip(&mask)
            .map(|(&v, &keep)| if keep { to_half(v) } else { 0.0 })
            .collect();
        assert_eq!(t.dense(), expected);
        let kept = expected.iter().zip(&values).zip(&mask).filter(|(_, &k)| k);
        assert!(kept
            .into_iter()
            .all(|((e, v), _)| (e - v).abs() <= 1e-3 * v.abs()));
        let plain = tensor(&values, None, None);
        assert_eq!(plain.dense(), values);
    }

    #[test]
    fn nearest_picks_the_closer_centroid() {
        let c = [-1.0, 0.0, 2.0];
        assert_eq!(nearest(&c, -5.0), 0);
        assert_eq!(nearest(&c, -0.6), 0);
        assert_eq!(nearest(&c, -0.4), 1);
        assert_eq!(nearest(&c, 1.0), 1);
        assert_eq!(nearest(&c, 1.1), 2);
        assert_eq!(nearest(&c, 9.0), 2);
    }

    #[test]
    fn retuning_moves_entries_to_their_values_mean_and_keeps_the_rest() {
        let values = [0.1, 0.12, 0.5, 0.52, 0.9, 0.0];
        let mask = [true, true, true, true, true, false];
        let t = tensor(&values, Some(&mask), Some(1));
        let TensorValues::Codebook { indices, .. } = &t.values else {
            panic!("quantized")
        };
        let before = indices.clone();
        // Fine-tuned values: the low pair moved up, the masked one moved
        // (it must not count).
        let tuned = [0.2, 0.22, 0.5, 0.52, 0.9, 5.0];
        let r = retune(&t, &tuned);
        let TensorValues::Codebook {
            codebook, indices, ..
        } = &r.values
        else {
            panic!("still quantized")
        };
        assert_eq!(indices, &before);
        assert_eq!(r.mask, t.mask);
        let low = codebook[before[0] as usize];
        assert!((low - 0.21).abs() < 1e-3, "{codebook:?}");
        assert_eq!(r.dense()[5], 0.0);
        // Unquantized tensors are left alone.
        let plain = tensor(&values, None, None);
        assert_eq!(retune(&plain, &tuned), plain);
    }
}
