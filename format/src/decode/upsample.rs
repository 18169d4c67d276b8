//! U: the pyramid's upsampling, trilinear in space and linear in time.
//! Fine sample i of an axis sits at coarse position i/2, so even samples copy
//! a coarse sample and odd ones average two neighbours (clamped at the edge,
//! matching the encoder's edge-replication padding).

#[cfg(feature = "parallel")]
use rayon::prelude::*;

/// Coarse taps of fine index `i`: (j0, j1); the weights are ½ and ½ (j0 = j1
/// for even i, so the same formula covers both).
#[inline]
pub fn taps(i: usize, coarse_len: usize) -> (usize, usize) {
    let j0 = (i / 2).min(coarse_len - 1);
    let j1 = if i % 2 == 1 {
        (j0 + 1).min(coarse_len - 1)
    } else {
        j0
    };
    (j0, j1)
}

/// Dims of the next finer level of `coarse` such that each axis halves back
/// to `coarse` with rounding up; `fine` must satisfy `ceil(fine/2) == coarse`.
pub fn is_parent(coarse: [usize; 4], fine: [usize; 4]) -> bool {
    (0..4).all(|a| fine[a].div_ceil(2) == coarse[a])
}

/// `fine += U(coarse)`. Grids are x-fastest; dims x, y, z, t.
pub fn upsample_add(coarse: &[f32], cdims: [usize; 4], fine: &mut [f32], fdims: [usize; 4]) {
    assert!(
        is_parent(cdims, fdims),
        "{cdims:?} is not the parent of {fdims:?}"
    );
    assert_eq!(coarse.len(), cdims.iter().product::<usize>());
    assert_eq!(fine.len(), fdims.iter().product::<usize>());
    let [fx, fy, fz, _] = fdims;
    let [cx, cy, cz, ct] = cdims;
    let slice = fx * fy;
    let fill = |(k, dst): (usize, &mut [f32])| {
        let (z, t) = (k % fz, k / fz);
        let (z0, z1) = taps(z, cz);
        let (t0, t1) = taps(t, ct);
        let mut row = vec![0f32; cx];
        for y in 0..fy {
            let (y0, y1) = taps(y, cy);
            // Blend the (up to) 8 coarse rows, each with weight 1/8 — taps
            // that coincide simply count twice.
            row.fill(0.0);
            for tt in [t0, t1] {
                for zz in [z0, z1] {
                    for yy in [y0, y1] {
                        let src = &coarse[((tt * cz + zz) * cy + yy) * cx..][..cx];
                        for (r, &c) in row.iter_mut().zip(src) {
                            *r += c;
                        }
                    }
                }
            }
            let out = &mut dst[y * fx..(y + 1) * fx];
            for (x, o) in out.iter_mut().enumerate() {
                let (x0, x1) = taps(x, cx);
                *o += (row[x0] + row[x1]) * (1.0 / 16.0);
            }
        }
    };
    #[cfg(feature = "parallel")]
    fine.par_chunks_mut(slice).enumerate().for_each(fill);
    #[cfg(not(feature = "parallel"))]
    fine.chunks_mut(slice).enumerate().for_each(fill);
}

/// U(coarse) as a new grid of `fdims`.
pub fn upsample(coarse: &[f32], cdims: [usize; 4], fdims: [usize; 4]) -> Vec<f32> {
    let mut fine = vec![0f32; fdims.iter().product()];
    upsample_add(coarse, cdims, &mut fine, fdims);
    fine
}
