//! Balanced clustering of blocks, so similar blocks share one MLP and every
//! MLP gets about the same number: k-means on a small summary of each block,
//! then ECNR's size-uniformizing reassignment (its Algorithm 1).

use strata_format::synth::SplitMix;

/// Summary of a block for clustering: its normalized values averaged down to
/// a 4×4×4 grid (64 numbers), so blocks of any size compare cheaply.
pub fn features(normalized: &[f32], extent: [usize; 3]) -> Vec<f32> {
    const G: usize = 4;
    let mut sum = vec![0f32; G * G * G];
    let mut count = vec![0u32; G * G * G];
    for z in 0..extent[2] {
        for y in 0..extent[1] {
            for x in 0..extent[0] {
                let cell = ((z * G / extent[2]) * G + y * G / extent[1]) * G + x * G / extent[0];
                sum[cell] += normalized[(z * extent[1] + y) * extent[0] + x];
                count[cell] += 1;
            }
        }
    }
    sum.iter()
        .zip(&count)
        .map(|(&s, &c)| if c > 0 { s / c as f32 } else { 0.0 })
        .collect()
}

fn dist2(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// Plain k-means (k-means++ seeding, Lloyd iterations); returns centroids.
pub fn kmeans(
    points: &[Vec<f32>],
    k: usize,
    iterations: usize,
    rng: &mut SplitMix,
) -> Vec<Vec<f32>> {
    let n = points.len();
    assert!(k >= 1 && k <= n);
    let mut centroids = vec![points[(rng.next_u64() % n as u64) as usize].clone()];
    let mut nearest: Vec<f32> = points.iter().map(|p| dist2(p, &centroids[0])).collect();
    while centroids.len() < k {
        let total: f64 = nearest.iter().map(|&d| d as f64).sum();
        let pick = if total > 0.0 {
            let mut r = rng.unit() as f64 * total;
            nearest
                .iter()
                .position(|&d| {
                    r -= d as f64;
                    r <= 0.0
                })
                .unwrap_or(n - 1)
        } else {
            (rng.next_u64() % n as u64) as usize
        };
        centroids.push(points[pick].clone());
        let c = centroids.last().unwrap();
        for (d, p) in nearest.iter_mut().zip(points) {
            *d = d.min(dist2(p, c));
        }
    }
    let dim = points[0].len();
    for _ in 0..iterations {
        let assign: Vec<usize> = points
            .iter()
            .map(|p| nearest_centroid(p, &centroids))
            .collect();
        let mut sums = vec![vec![0f32; dim]; k];
        let mut counts = vec![0usize; k];
        for (p, &a) in points.iter().zip(&assign) {
            counts[a] += 1;
            for (s, v) in sums[a].iter_mut().zip(p) {
                *s += v;
            }
        }
        for ((c, s), &cnt) in centroids.iter_mut().zip(sums).zip(&counts) {
            if cnt > 0 {
                *c = s.into_iter().map(|v| v / cnt as f32).collect();
            }
        }
    }
    centroids
}

fn nearest_centroid(p: &[f32], centroids: &[Vec<f32>]) -> usize {
    centroids
        .iter()
        .enumerate()
        .map(|(i, c)| (i, dist2(p, c)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map_or(0, |(i, _)| i)
}

/// ECNR's Algorithm 1: points ordered by how much it matters where they go
/// (largest max − min centroid distance first) each take the nearest
/// cluster that still has room. Room is ⌈n/k⌉ for the first n mod k
/// clusters to fill and ⌊n/k⌋ for the rest, so sizes are exactly balanced.
pub fn balanced_assignment(points: &[Vec<f32>], centroids: &[Vec<f32>]) -> Vec<usize> {
    let n = points.len();
    let k = centroids.len();
    let (small, big) = (n / k, n.div_ceil(k));
    let mut big_left = if small == big { 0 } else { n % k };
    let dists: Vec<Vec<f32>> = points
        .iter()
        .map(|p| centroids.iter().map(|c| dist2(p, c)).collect())
        .collect();
    let mut order: Vec<usize> = (0..n).collect();
    let spread = |d: &[f32]| {
        let (lo, hi) = d
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            });
        hi - lo
    };
    order.sort_by(|&a, &b| {
        spread(&dists[b])
            .total_cmp(&spread(&dists[a]))
            .then(a.cmp(&b))
    });
    let mut sizes = vec![0usize; k];
    let mut assign = vec![0usize; n];
    for &p in &order {
        let room = |c: usize| sizes[c] < small || (sizes[c] < big && big_left > 0);
        let best = (0..k)
            .filter(|&c| room(c))
            .min_by(|&a, &b| dists[p][a].total_cmp(&dists[p][b]))
            .expect("total capacity equals the number of points");
        sizes[best] += 1;
        if sizes[best] == big && big > small {
            big_left -= 1;
        }
        assign[p] = best;
    }
    assign
}

/// Groups `points` into ⌈n / per_cluster⌉ balanced clusters.
pub fn cluster(points: &[Vec<f32>], per_cluster: usize, rng: &mut SplitMix) -> Vec<usize> {
    let n = points.len();
    if n == 0 {
        return Vec::new();
    }
    let k = n.div_ceil(per_cluster.max(1));
    if k == n {
        return (0..n).collect();
    }
    let centroids = kmeans(points, k, 15, rng);
    balanced_assignment(points, &centroids)
}

/// Sum over clusters of squared distances to the cluster mean.
pub fn within_cluster_distance(points: &[Vec<f32>], assign: &[usize]) -> f64 {
    let k = assign.iter().max().map_or(0, |m| m + 1);
    let dim = points.first().map_or(0, |p| p.len());
    let mut sums = vec![vec![0f64; dim]; k];
    let mut counts = vec![0usize; k];
    for (p, &a) in points.iter().zip(assign) {
        counts[a] += 1;
        for (s, &v) in sums[a].iter_mut().zip(p) {
            *s += v as f64;
        }
    }
    points
        .iter()
        .zip(assign)
        .map(|(p, &a)| {
            p.iter()
                .zip(&sums[a])
                .map(|(&v, &s)| (v as f64 - s / counts[a] as f64).powi(2))
                .sum::<f64>()
        })
        .sum()
}
