//! Matching a target compression ratio: bisection of an error bound (in log
//! space) until the ratio lands within a relative tolerance of the target.
//! The ratio is assumed to grow with the bound, as it does for SZ3 and ZFP.

use anyhow::{bail, Result};

/// Where the search ended.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Matched {
    pub bound: f64,
    pub ratio: f64,
    /// Whether `ratio` is within the tolerance of the target; when not, the
    /// closest ratio seen (the codec's ratio moved in steps, or the target
    /// lies outside what the bounds reach).
    pub hit: bool,
    pub evaluations: usize,
}

/// Finds a bound in `[lo, hi]` whose `ratio_at(bound)` is within
/// `tolerance` (relative, e.g. 0.02) of `target`.
pub fn match_ratio(
    target: f64,
    mut lo: f64,
    mut hi: f64,
    tolerance: f64,
    mut ratio_at: impl FnMut(f64) -> Result<f64>,
) -> Result<Matched> {
    if !(target > 0.0 && lo > 0.0 && hi > lo && tolerance > 0.0) {
        bail!("cannot match ratio {target} with bounds [{lo}, {hi}] and tolerance {tolerance}");
    }
    let mut evaluations = 0;
    let mut best: Option<Matched> = None;
    let mut eval = |bound: f64, best: &mut Option<Matched>| -> Result<f64> {
        let ratio = ratio_at(bound)?;
        evaluations += 1;
        let miss = (ratio / target).ln().abs();
        let m = Matched {
            bound,
            ratio,
            hit: miss <= (1.0 + tolerance).ln(),
            evaluations,
        };
        if best.is_none_or(|b| miss < (b.ratio / target).ln().abs()) {
            *best = Some(m);
        }
        Ok(ratio)
    };
    let r_lo = eval(lo, &mut best)?;
    let r_hi = eval(hi, &mut best)?;
    if r_lo < target && target < r_hi {
        // Stop when the bracket is this narrow: a stepwise codec's ratio
        // will not move any more.
        while hi / lo > 1.0 + 1e-4 && !best.is_some_and(|b| b.hit) {
            let mid = (lo * hi).sqrt();
            if eval(mid, &mut best)? < target {
                lo = mid;
            } else {
                hi = mid;
            }
        }
    }
    let mut m = best.expect("evaluated at least twice");
    m.evaluations = evaluations;
    Ok(m)
}
