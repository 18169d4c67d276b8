//! Rate control for `--ratio`: a target archive size becomes a network
//! width and, per scale, a codebook size.
//!
//! Before training, the size of each scale is predicted from the original's
//! Laplacian pyramid (which blocks will be occupied, so how many MLPs) and
//! the parameter count of a width. Before each scale is trained, with its
//! real occupancy known, the widest network whose prediction (this scale
//! and the finer ones, at 9-bit codebooks) fits what is left is chosen —
//! each scale section has its own architecture. After it is trained, the
//! largest codebooks (4–12 bits, per tensor) whose *actual* coded section
//! keeps the archive within this scale's budget are kept, so a
//! misprediction is corrected scale by scale and the last scale lands the
//! total.

use anyhow::Result;
use strata_format::Architecture;

use crate::blocks::BlockGrid;
use crate::pyramid::{self, Grid};
use crate::quantize::TensorBits;

/// Codebook index widths the per-scale search tries, largest first.
pub const BITS: std::ops::RangeInclusive<u8> = 4..=12;
/// The width search's codebook size (ECNR's).
const PLAN_BITS: u8 = 9;
/// Coded index bits per stored bit: the range coder's gain on k-means
/// indices (0.88–0.90 on MNI152 and engine archives), less the ~5% by which
/// the first --ratio runs still came out small.
const INDEX_CODING: f64 = 0.85;
/// Section prelude, stream and tensor headers.
const SECTION_FRAMING: f64 = 600.0;

/// A scale as the plan sees it.
#[derive(Clone, Copy, Debug)]
pub struct PlannedScale {
    pub occupied: usize,
    pub mlps: usize,
}

/// Occupied blocks and MLPs per level, from the original's pyramid. A
/// finer-level block counts as occupied when its residual against the
/// upsampled coarser level is above the emptiness threshold, or when the
/// level's values vary across it at all: the encoder's residual also holds
/// the coarser scales' fitting error, which the original's pyramid has not,
/// and only blocks of one constant value (background) reliably stay empty.
pub fn plan_scales(
    levels: &[Grid],
    block: [usize; 3],
    per_mlp: &[usize],
    empty_threshold: f32,
) -> Vec<PlannedScale> {
    levels
        .iter()
        .enumerate()
        .map(|(l, truth)| {
            let values = BlockGrid::cut(truth, block);
            let occupied = if l == 0 {
                values.blocks.len()
            } else {
                let coarse = &levels[l - 1];
                let residual = pyramid::residual(truth, &coarse.data, coarse.dims);
                let residual = BlockGrid::cut(&residual, block);
                values
                    .blocks
                    .iter()
                    .zip(&residual.blocks)
                    .filter(|(v, r)| v.max > v.min || r.energy > empty_threshold)
                    .count()
            };
            let b = per_mlp[l.min(per_mlp.len() - 1)].max(1);
            PlannedScale {
                occupied,
                mlps: occupied.div_ceil(b),
            }
        })
        .collect()
}

/// Predicted bytes of one scale section whose prunable tensors (see
/// [`crate::prune::prunable`]) keep `1 - sparsity` of their values.
pub fn predict_scale(s: &PlannedScale, arch: &Architecture, bits: u8, sparsity: f64) -> f64 {
    let shapes = arch.layer_shapes();
    let last = shapes.len() - 1;
    let coded = |count: usize| {
        // A tensor's codebook holds at most one entry per 8 values (quantize::tensor), binary16 each,
        // so its indices are only as wide as that codebook needs.
        let k = (1usize << bits).min(count.div_ceil(8)).max(2);
        let width = usize::BITS - (k - 1).leading_zeros();
        count as f64 * width as f64 / 8.0 * INDEX_CODING + k as f64 * 2.0
    };
    // A pruned tensor: its kept values, and a mask the range coder codes
    // at about the binary entropy of the sparsity per value.
    let pruned = |count: usize| {
        let p = sparsity.clamp(1e-6, 1.0 - 1e-6);
        let entropy = -(p * p.log2() + (1.0 - p) * (1.0 - p).log2());
        coded((count as f64 * (1.0 - sparsity)).round() as usize) + count as f64 * entropy / 8.0
    };
    let tensor = |count: usize, prunable: bool| {
        if prunable && sparsity > 0.0 {
            pruned(count)
        } else {
            coded(count)
        }
    };
    let layers: f64 = shapes
        .iter()
        .enumerate()
        .map(|(l, (i, o))| tensor(s.mlps * i * o, l < last) + tensor(s.mlps * o, l > 0 && l < last))
        .sum();
    let latents = coded(s.occupied * arch.latent_dim as usize);
    SECTION_FRAMING + layers + latents + s.occupied as f64 * 8.0 + s.occupied as f64 / 4.0
}

/// The plan for scale `level`, made when it is about to be trained: its
/// actual occupancy and MLP count are known, the finer scales' are the
/// prediction scaled by how far this scale's occupancy strayed from its own
/// (a coarse fit that leaves more residual than the original's pyramid also
/// leaves more at the finer scales). Returns the widest network (4..=128)
/// for which this scale and the finer ones are predicted to fit in what is
/// left of `target_bytes`, and the bytes the archive may have reached after
/// this scale. `None` when even width 4 does not fit.
pub fn plan_scale(
    planned: &[PlannedScale],
    level: usize,
    actual: PlannedScale,
    template: &Architecture,
    written: u64,
    target_bytes: u64,
    sparsity: f64,
) -> Option<(u16, u64)> {
    let arch_of = |w: u16| Architecture {
        hidden: vec![w; template.hidden.len()],
        ..template.clone()
    };
    let stray = actual.occupied.max(1) as f64 / planned[level].occupied.max(1) as f64;
    let sizes = |w: u16| {
        let this = predict_scale(&actual, &arch_of(w), PLAN_BITS, sparsity);
        let rest: f64 = planned[level + 1..]
            .iter()
            .map(|s| stray.min(50.0) * predict_scale(s, &arch_of(w), PLAN_BITS, sparsity))
            .sum();
        (this, rest)
    };
    let room = target_bytes.checked_sub(written)? as f64;
    let width = (4..=128u16).rev().find(|&w| {
        let (this, rest) = sizes(w);
        this + rest <= room
    })?;
    let (this, rest) = sizes(width);
    Some((width, written + (room * this / (this + rest)) as u64))
}

/// Codebook widths per tensor for a section that must fit in `room` bytes.
/// First the widest width for all tensors that fits (bisection: a section
/// grows with its codebooks), then tensors raised one bit at a time,
/// smallest first (cheapest), for as long as the section still fits — so
/// the budget that one width per section would overshoot or leave unused
/// is filled. `counts` are the values per tensor in [`TensorBits`] slot
/// order; `len` codes a section with the given widths and returns its
/// bytes. When nothing fits, the narrowest widths and their length.
pub fn fit_bits(
    counts: &[usize],
    room: u64,
    mut len: impl FnMut(&TensorBits) -> u64,
) -> (TensorBits, u64) {
    let layers = (counts.len() - 1) / 2;
    let (mut lo, mut hi) = (*BITS.start(), *BITS.end());
    let mut best = (
        TensorBits::uniform(lo, layers),
        len(&TensorBits::uniform(lo, layers)),
    );
    if best.1 > room {
        return best;
    }
    // Invariant: width lo fits (best holds it), hi + 1 does not.
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        let bits = TensorBits::uniform(mid, layers);
        let n = len(&bits);
        if n <= room {
            lo = mid;
            best = (bits, n);
        } else {
            hi = mid - 1;
        }
    }
    let mut order: Vec<usize> = (0..counts.len()).collect();
    order.sort_by_key(|&s| counts[s]);
    for _ in 0..2 {
        let mut raised = false;
        for &slot in &order {
            let now = best.0.slots()[slot];
            // A tensor's codebook holds at most one entry per 8 values
            // (quantize::tensor): past that a wider index changes nothing.
            if now >= *BITS.end() || counts[slot].div_ceil(8) <= 1 << now {
                continue;
            }
            let mut bits = best.0.clone();
            bits.slots_mut()[slot] = now + 1;
            let n = len(&bits);
            if n <= room {
                best = (bits, n);
                raised = true;
            }
        }
        if !raised {
            break;
        }
    }
    best
}

/// For `--psnr`: the narrowest codebook width (one for all tensors) whose
/// reconstruction reaches `goal` dB, by bisection (PSNR grows with the
/// width). `psnr(bits)` measures it. When even the widest falls short, the
/// widest and its PSNR.
pub fn fewest_bits(goal: f64, mut psnr: impl FnMut(u8) -> Result<f64>) -> Result<(u8, f64)> {
    let (mut lo, mut hi) = (*BITS.start(), *BITS.end());
    let mut best = (hi, psnr(hi)?);
    if best.1 < goal {
        return Ok(best);
    }
    // Invariant: width hi reaches the goal (best holds it), lo - 1 does not.
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let p = psnr(mid)?;
        if p >= goal {
            hi = mid;
            best = (mid, p);
        } else {
            lo = mid + 1;
        }
    }
    Ok(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arch(w: u16) -> Architecture {
        Architecture {
            latent_dim: 8,
            hidden: vec![w; 3],
            omega0: 30.0,
        }
    }

    #[test]
    fn a_smaller_target_gets_a_narrower_network_and_budgets_add_up() {
        let scales = vec![
            PlannedScale {
                occupied: 64,
                mlps: 64,
            },
            PlannedScale {
                occupied: 400,
                mlps: 200,
            },
            PlannedScale {
                occupied: 2000,
                mlps: 500,
            },
        ];
        let (wide, big_budget) =
            plan_scale(&scales, 0, scales[0], &arch(24), 200, 2_000_000, 0.0).unwrap();
        let (narrow, budget) =
            plan_scale(&scales, 0, scales[0], &arch(24), 200, 500_000, 0.0).unwrap();
        assert!(narrow < wide, "{narrow} vs {wide}");
        assert!(budget < big_budget && budget > 200);
        // The last scale gets all that is left.
        let (_, last) =
            plan_scale(&scales, 2, scales[2], &arch(24), 300_000, 500_000, 0.0).unwrap();
        assert_eq!(last, 500_000);
        // More occupied blocks than planned: a narrower network for the rest.
        let busy = PlannedScale {
            occupied: 800,
            mlps: 400,
        };
        let (w_busy, _) = plan_scale(&scales, 1, busy, &arch(24), 50_000, 500_000, 0.0).unwrap();
        let (w_plan, _) =
            plan_scale(&scales, 1, scales[1], &arch(24), 50_000, 500_000, 0.0).unwrap();
        assert!(w_busy < w_plan);
        // Predicted size grows with width and with bits.
        let s = scales[2];
        assert!(predict_scale(&s, &arch(32), 9, 0.0) > predict_scale(&s, &arch(16), 9, 0.0));
        assert!(predict_scale(&s, &arch(16), 10, 0.0) > predict_scale(&s, &arch(16), 9, 0.0));
        // Pruning 30% saves more index bytes than its masks cost.
        let dense = predict_scale(&s, &arch(32), 9, 0.0);
        let pruned = predict_scale(&s, &arch(32), 9, 0.3);
        assert!(
            pruned < 0.9 * dense && pruned > 0.7 * dense,
            "{pruned} vs {dense}"
        );
        // Unreachable: nothing fits in 1 kB, or in what is already spent.
        assert!(plan_scale(&scales, 0, scales[0], &arch(24), 200, 1000, 0.0).is_none());
        assert!(plan_scale(&scales, 2, scales[2], &arch(24), 600_000, 500_000, 0.0).is_none());
    }

    #[test]
    fn bits_fill_the_room_tensor_by_tensor() {
        // A section of 1 latent tensor and 2 layers; its length is the sum
        // of values × bits / 8.
        let counts = [8_000, 400_000, 4_000, 40_000, 40];
        let len = |b: &TensorBits| -> u64 {
            counts
                .iter()
                .zip(b.slots())
                .map(|(&c, &w)| (c * w as usize / 8) as u64)
                .sum()
        };
        let all9 = len(&TensorBits::uniform(9, 2));
        let all10 = len(&TensorBits::uniform(10, 2));
        let room = (all9 + all10) / 2;
        let (bits, n) = fit_bits(&counts, room, len);
        assert_eq!(n, len(&bits));
        assert!(n <= room);
        // The large weight tensor stays at 9, the smaller ones are raised
        // as far as their codebooks can grow (8,000 values: 1,000 entries).
        assert_eq!(bits.weights(0), 9);
        assert_eq!(bits.latents(), 10);
        assert!(bits.weights(1) >= 10);
        // 4,000 values have at most 500 entries: 9 bits already hold them.
        assert_eq!(bits.biases(0), 9);
        assert!(n > all9);
        // Plenty of room: the widest; none: the narrowest, and its length.
        let (wide, _) = fit_bits(&counts, u64::MAX, len);
        assert_eq!(wide, TensorBits::uniform(*BITS.end(), 2));
        let (narrow, n) = fit_bits(&counts, 10, len);
        assert_eq!(narrow, TensorBits::uniform(*BITS.start(), 2));
        assert!(n > 10);
    }

    #[test]
    fn fewest_bits_reaches_the_goal_with_the_narrowest_codebooks() {
        // 6 dB per bit, from 20 dB at 4 bits.
        let psnr = |b: u8| Ok(20.0 + 6.0 * (b - 4) as f64);
        assert_eq!(fewest_bits(37.0, psnr).unwrap(), (7, 38.0));
        assert_eq!(fewest_bits(38.0, psnr).unwrap(), (7, 38.0));
        assert_eq!(fewest_bits(10.0, psnr).unwrap(), (4, 20.0));
        // Out of reach: the widest, and what it gives.
        assert_eq!(fewest_bits(99.0, psnr).unwrap(), (12, 68.0));
    }
}
