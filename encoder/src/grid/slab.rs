//! Windowed training steps. A step may train on a slab of the scale instead
//! of all of it: the voxel rows with z in a window (every y, every t), and
//! at every latent level the entropy-coding chunks under that window. Its
//! cost is then the slab's share of a full step, so a fixed time buys many
//! more (noisier) steps; full-volume steps at 8.7 M voxels leave only ~80
//! of them for the finest scale of a 15-minute encode.

use strata_format::grid::entropy::{chunks, CHUNK_SLICES};

/// What one step visits.
pub struct Slab {
    /// Voxel rows, as (y, z, t) row indices; `None`: all of them.
    pub rows: Option<Vec<u32>>,
    /// Per level, per chunk (`entropy::chunks` order): visited or not.
    pub chunks: Vec<Vec<bool>>,
    /// Per level, the visited latents' share of the level's latents.
    pub share: Vec<f64>,
}

impl Slab {
    /// The whole scale.
    pub fn full(ldims: &[[usize; 4]]) -> Slab {
        Slab {
            rows: None,
            chunks: ldims.iter().map(|&d| vec![true; chunks(d).len()]).collect(),
            share: vec![1.0; ldims.len()],
        }
    }

    /// The slab of voxel slices `z0..z1` of a scale of `dims`. At each level
    /// the visited chunks cover the latents the synthesis reads there and
    /// the parents the finer level's visited chunks are coded against, so
    /// every value a step reads or trains is inside the slab's chunks.
    pub fn new(dims: [usize; 4], ldims: &[[usize; 4]], z0: usize, z1: usize) -> Slab {
        let [_, ny, nz, nt] = dims;
        let (z0, z1) = (z0.min(nz - 1), z1.clamp(z0 + 1, nz));
        let rows = (0..nt)
            .flat_map(|t| {
                (z0..z1).flat_map(move |z| (0..ny).map(move |y| ((t * nz + z) * ny + y) as u32))
            })
            .collect();
        let mut visited = Vec::with_capacity(ldims.len());
        let mut share = Vec::with_capacity(ldims.len());
        // Latent slices (inclusive) the finer level's chunks need as parents.
        let mut parents: Option<(usize, usize)> = None;
        for (l, &d) in ldims.iter().enumerate() {
            let dz = d[2];
            // The synthesis reads slices j0 = z >> l and j0 + 1.
            let mut lo = z0 >> l;
            let mut hi = (((z1 - 1) >> l) + 1).min(dz - 1);
            if let Some((plo, phi)) = parents {
                lo = lo.min(plo);
                hi = hi.max(phi);
            }
            let (c0, c1) = (
                lo / CHUNK_SLICES * CHUNK_SLICES,
                ((hi / CHUNK_SLICES + 1) * CHUNK_SLICES).min(dz),
            );
            let cs = chunks(d);
            let v: Vec<bool> = cs.iter().map(|c| c.z0 >= c0 && c.z0 < c1).collect();
            let n: usize = cs
                .iter()
                .zip(&v)
                .filter(|(_, &v)| v)
                .map(|(c, _)| c.len(d))
                .sum();
            share.push(n as f64 / d.iter().product::<usize>() as f64);
            visited.push(v);
            parents = Some((c0 / 2, (c1 - 1) / 2));
        }
        Slab {
            rows: Some(rows),
            chunks: visited,
            share,
        }
    }

    /// A slab of about `fraction` of the scale's z slices at a position
    /// drawn from `u` ∈ [0, 1); the whole scale when that is all of it.
    /// Windows may overhang either end (and are cut there), so that every
    /// slice is visited equally often.
    pub fn random(dims: [usize; 4], ldims: &[[usize; 4]], fraction: f32, u: f32) -> Slab {
        let nz = dims[2];
        let w = ((fraction as f64 * nz as f64).round() as usize).max(1);
        if w >= nz {
            return Slab::full(ldims);
        }
        let positions = nz + w - 1;
        let start =
            ((u as f64 * positions as f64) as usize).min(positions - 1) as isize - (w as isize - 1);
        let z0 = start.max(0) as usize;
        let z1 = ((start + w as isize) as usize).min(nz);
        Slab::new(dims, ldims, z0, z1)
    }

    /// The latent index ranges of level `l`'s visited chunks, with each
    /// chunk's index.
    pub fn runs(
        &self,
        l: usize,
        dims: [usize; 4],
    ) -> impl Iterator<Item = (usize, std::ops::Range<usize>)> + '_ {
        chunks(dims)
            .into_iter()
            .enumerate()
            .filter(move |(ci, _)| self.chunks[l][*ci])
            .map(move |(ci, c)| (ci, c.offset(dims)..c.offset(dims) + c.len(dims)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_format::grid::latent_dims;

    #[test]
    fn slabs_cover_what_their_steps_read() {
        for dims in [[9, 7, 100, 1], [5, 4, 37, 3], [6, 6, 2, 1]] {
            let ldims: Vec<[usize; 4]> = (0..5).map(|l| latent_dims(dims, l)).collect();
            for (z0, z1) in [(0, 1), (10.min(dims[2] - 1), 30), (dims[2] - 1, dims[2])] {
                let s = Slab::new(dims, &ldims, z0, z1);
                let rows = s.rows.as_ref().unwrap();
                assert_eq!(rows.len(), (z1.min(dims[2]) - z0) * dims[1] * dims[3]);
                for (l, &d) in ldims.iter().enumerate() {
                    let visited: Vec<usize> = s.runs(l, d).map(|(ci, _)| ci).collect();
                    let cs = chunks(d);
                    let covers = |z: usize| {
                        visited
                            .iter()
                            .any(|&ci| cs[ci].z0 <= z && z < cs[ci].z0 + cs[ci].nz)
                    };
                    // What the synthesis reads.
                    for z in z0..z1.min(dims[2]) {
                        assert!(
                            covers(z >> l) && covers(((z >> l) + 1).min(d[2] - 1)),
                            "{dims:?} l{l} z{z}"
                        );
                    }
                    // The parents of the finer level's visited chunks.
                    if l > 0 {
                        let f = ldims[l - 1];
                        let fc = chunks(f);
                        for (ci, c) in fc.iter().enumerate() {
                            if s.chunks[l - 1][ci] {
                                for z in c.z0..c.z0 + c.nz {
                                    assert!(
                                        covers((z / 2).min(d[2] - 1)),
                                        "{dims:?} l{l} parent of z{z}"
                                    );
                                }
                            }
                        }
                    }
                    assert!(s.share[l] > 0.0 && s.share[l] <= 1.0);
                }
            }
        }
    }

    #[test]
    fn random_slabs_visit_every_slice_and_full_when_asked() {
        let dims = [4, 3, 50, 1];
        let ldims: Vec<[usize; 4]> = (0..3).map(|l| latent_dims(dims, l)).collect();
        assert!(Slab::random(dims, &ldims, 1.0, 0.5).rows.is_none());
        let mut seen = vec![0; 50];
        for i in 0..200 {
            let s = Slab::random(dims, &ldims, 0.2, i as f32 / 200.0);
            let rows = s.rows.unwrap();
            assert!(rows.len() <= 10 * 3 && !rows.is_empty());
            for r in rows {
                seen[(r as usize / 3) % 50] += 1;
            }
        }
        assert!(seen.iter().all(|&n| n > 0), "{seen:?}");
    }
}
