//! Evaluating one block's SIREN at every voxel of the block: the hot loop of
//! the CPU decoder. Voxels go through the network 16 at a time, laid out so
//! the inner loops are plain array arithmetic the compiler turns into SIMD;
//! on x86-64 the same code is compiled again with AVX2+FMA and AVX-512 and
//! picked at run time.

use super::model::{block_coord, BlockRef, ScaleModel};
use super::sine::sin;

/// Voxels evaluated together; one AVX-512 register of f32.
pub(crate) const LANES: usize = 16;
/// Outputs computed together in a layer, for independent FMA chains.
const OUT_TILE: usize = 4;

/// Multiply-add: fused where the CPU has FMA, plain otherwise (calling
/// `mul_add` without hardware FMA would be a slow libm call).
pub(crate) trait Madd {
    fn madd(a: f32, b: f32, c: f32) -> f32;
}

pub(crate) struct Fused;
pub(crate) struct Separate;

impl Madd for Fused {
    #[inline(always)]
    fn madd(a: f32, b: f32, c: f32) -> f32 {
        a.mul_add(b, c)
    }
}

impl Madd for Separate {
    #[inline(always)]
    fn madd(a: f32, b: f32, c: f32) -> f32 {
        a * b + c
    }
}

/// Reusable buffers for [`eval_block`], one per thread.
#[derive(Default)]
pub struct Scratch {
    /// First-layer contributions of each x, y, z coordinate: `[axis][index][out]`.
    coord_terms: [Vec<f32>; 3],
    /// First-layer bias plus the latent code's contribution.
    first_bias: Vec<f32>,
    act: Vec<f32>,
    next: Vec<f32>,
}

/// Evaluates `block`'s MLP at every voxel of the block and writes the
/// block's value (its range applied) into `out`, `bx·by·bz` values, x
/// fastest. Voxels past the grid edge are computed too; the caller crops.
pub fn eval_block(model: &ScaleModel, block: &BlockRef, out: &mut [f32], scratch: &mut Scratch) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports the features the function is compiled for.
            return unsafe { eval_avx512(model, block, out, scratch) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: as above.
            return unsafe { eval_avx2(model, block, out, scratch) };
        }
    }
    eval_generic::<Separate>(model, block, out, scratch)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn eval_avx512(
    model: &ScaleModel,
    block: &BlockRef,
    out: &mut [f32],
    scratch: &mut Scratch,
) {
    eval_generic::<Fused>(model, block, out, scratch)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn eval_avx2(model: &ScaleModel, block: &BlockRef, out: &mut [f32], scratch: &mut Scratch) {
    eval_generic::<Fused>(model, block, out, scratch)
}

#[inline(always)]
fn eval_generic<M: Madd>(model: &ScaleModel, block: &BlockRef, out: &mut [f32], s: &mut Scratch) {
    let [bx, by, bz] = model.block;
    let n = bx * by * bz;
    debug_assert_eq!(out.len(), n);
    let first = &model.layers[0];
    let w0 = first.weights_of(block.mlp);
    let b0 = first.biases_of(block.mlp);
    let h0 = first.outputs;

    // The latent part of the first layer is the same at every voxel, and the
    // coordinate part separates by axis: precompute both.
    let latent = model.latent_of(block.slot);
    s.first_bias.clear();
    s.first_bias.extend((0..h0).map(|o| {
        let row = &w0[o * first.inputs..(o + 1) * first.inputs];
        latent
            .iter()
            .zip(&row[3..])
            .fold(b0[o], |acc, (&l, &w)| M::madd(w, l, acc))
    }));
    for (axis, &len) in [bx, by, bz].iter().enumerate() {
        let t = &mut s.coord_terms[axis];
        t.clear();
        for k in 0..len {
            let c = block_coord(k, len);
            t.extend((0..h0).map(|o| w0[o * first.inputs + axis] * c));
        }
    }

    let width = model.max_width();
    s.act.resize(width * LANES, 0.0);
    s.next.resize(width * LANES, 0.0);
    let [lo, hi] = model.ranges[block.slot];
    let (half_span, mid) = ((hi - lo) * 0.5, (hi + lo) * 0.5);

    for tile in (0..n).step_by(LANES) {
        // Layer 0 from the precomputed terms.
        for v in 0..LANES {
            let i = (tile + v).min(n - 1);
            let (x, y, z) = (i % bx, (i / bx) % by, i / (bx * by));
            let tx = &s.coord_terms[0][x * h0..(x + 1) * h0];
            let ty = &s.coord_terms[1][y * h0..(y + 1) * h0];
            let tz = &s.coord_terms[2][z * h0..(z + 1) * h0];
            for o in 0..h0 {
                s.act[o * LANES + v] = s.first_bias[o] + tx[o] + ty[o] + tz[o];
            }
        }
        for a in &mut s.act[..h0 * LANES] {
            *a = sin::<M>(*a);
        }
        // Hidden sine layers.
        let last = model.layers.len() - 1;
        for layer in &model.layers[1..last] {
            let w = layer.weights_of(block.mlp);
            let b = layer.biases_of(block.mlp);
            dense_layer::<M>(w, b, layer.inputs, layer.outputs, &s.act, &mut s.next);
            for a in &mut s.next[..layer.outputs * LANES] {
                *a = sin::<M>(*a);
            }
            std::mem::swap(&mut s.act, &mut s.next);
        }
        // Linear output and the block's value range.
        let out_layer = &model.layers[last];
        let w = out_layer.weights_of(block.mlp);
        let mut y = [out_layer.biases_of(block.mlp)[0]; LANES];
        for (i, &wi) in w.iter().enumerate() {
            let a = &s.act[i * LANES..(i + 1) * LANES];
            for v in 0..LANES {
                y[v] = M::madd(wi, a[v], y[v]);
            }
        }
        let count = LANES.min(n - tile);
        for v in 0..count {
            out[tile + v] = M::madd(half_span, y[v], mid);
        }
    }
}

/// `next[o][v] = b[o] + Σ_i w[o][i]·act[i][v]` for a tile of LANES voxels.
#[inline(always)]
fn dense_layer<M: Madd>(
    w: &[f32],
    b: &[f32],
    inputs: usize,
    outputs: usize,
    act: &[f32],
    next: &mut [f32],
) {
    let mut o = 0;
    while o + OUT_TILE <= outputs {
        let mut acc = [[0f32; LANES]; OUT_TILE];
        for (j, row) in acc.iter_mut().enumerate() {
            *row = [b[o + j]; LANES];
        }
        for i in 0..inputs {
            let a: &[f32; LANES] = act[i * LANES..(i + 1) * LANES].try_into().unwrap();
            for (j, row) in acc.iter_mut().enumerate() {
                let wij = w[(o + j) * inputs + i];
                for v in 0..LANES {
                    row[v] = M::madd(wij, a[v], row[v]);
                }
            }
        }
        for (j, row) in acc.iter().enumerate() {
            next[(o + j) * LANES..(o + j + 1) * LANES].copy_from_slice(row);
        }
        o += OUT_TILE;
    }
    for o in o..outputs {
        let mut row = [b[o]; LANES];
        for i in 0..inputs {
            let wi = w[o * inputs + i];
            for v in 0..LANES {
                row[v] = M::madd(wi, act[i * LANES + v], row[v]);
            }
        }
        next[o * LANES..(o + 1) * LANES].copy_from_slice(&row);
    }
}
