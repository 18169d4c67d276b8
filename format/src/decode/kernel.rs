//! Evaluating one block's SIREN at every voxel of the block: the hot loop of
//! the CPU decoder. Voxels go through the network 16 at a time, laid out so
//! the inner loops are fixed-size array arithmetic the compiler turns into
//! SIMD; on x86-64 the same code is compiled again for AVX2+FMA and AVX-512
//! and picked at run time.

use super::model::{block_coord, BlockRef, ScaleModel};
use super::sine::sin;

/// Voxels evaluated together; one AVX-512 register of f32.
pub(crate) const LANES: usize = 16;
/// Outputs computed together in a layer, for independent FMA chains.
const OUT_TILE: usize = 4;

type Lanes = [f32; LANES];

/// Multiply-add: fused where the CPU has FMA, plain otherwise (calling
/// `mul_add` without hardware FMA would be a slow libm call).
pub(crate) trait Madd {
    fn madd(a: f32, b: f32, c: f32) -> f32;
}

// Only the x86-64 FMA builds use it.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
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
    /// First-layer bias plus the latent code's contribution.
    first_bias: Vec<f32>,
    act: Vec<Lanes>,
    next: Vec<Lanes>,
}

/// Evaluates `block`'s MLP at the voxels of the block that lie inside the
/// grid and writes the block's value (its range applied) into `out`:
/// `extent = [nx, ny, nz]` voxels (the block size, or less at the grid's
/// far edges), x fastest. Coordinates are those of the full block, so an
/// edge block is the full block cropped.
pub fn eval_block(
    model: &ScaleModel,
    block: &BlockRef,
    extent: [usize; 3],
    out: &mut [f32],
    scratch: &mut Scratch,
) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports the features the function is compiled for.
            return unsafe { eval_avx512(model, block, extent, out, scratch) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: as above.
            return unsafe { eval_avx2(model, block, extent, out, scratch) };
        }
    }
    eval_generic::<Separate>(model, block, extent, out, scratch)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn eval_avx512(
    model: &ScaleModel,
    block: &BlockRef,
    extent: [usize; 3],
    out: &mut [f32],
    scratch: &mut Scratch,
) {
    eval_generic::<Fused>(model, block, extent, out, scratch)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn eval_avx2(
    model: &ScaleModel,
    block: &BlockRef,
    extent: [usize; 3],
    out: &mut [f32],
    scratch: &mut Scratch,
) {
    eval_generic::<Fused>(model, block, extent, out, scratch)
}

#[inline(always)]
fn eval_generic<M: Madd>(
    model: &ScaleModel,
    block: &BlockRef,
    extent: [usize; 3],
    out: &mut [f32],
    s: &mut Scratch,
) {
    let [bx, by, bz] = model.block;
    let [nx, ny, _] = extent;
    let n = extent.iter().product::<usize>();
    assert_eq!(out.len(), n);
    let first = &model.layers[0];
    let w0 = first.weights_of(block.mlp);
    let b0 = first.biases_of(block.mlp);
    let h0 = first.outputs;

    // The latent part of the first layer is the same at every voxel.
    let latent = model.latent_of(block.slot);
    s.first_bias.clear();
    s.first_bias.extend((0..h0).map(|o| {
        let row = &w0[o * first.inputs..(o + 1) * first.inputs];
        latent
            .iter()
            .zip(&row[3..])
            .fold(b0[o], |acc, (&l, &w)| M::madd(w, l, acc))
    }));

    let width = model.max_width();
    s.act.resize(width, [0.0; LANES]);
    s.next.resize(width, [0.0; LANES]);
    let [lo, hi] = model.ranges[block.slot];
    let (half_span, mid) = ((hi - lo) * 0.5, (hi + lo) * 0.5);
    let last = model.layers.len() - 1;
    let out_layer = &model.layers[last];
    let w_out = out_layer.weights_of(block.mlp);
    let b_out = out_layer.biases_of(block.mlp)[0];

    // Voxel (x, y, z) of the tile's first lane, advanced incrementally.
    let (mut x, mut y, mut z) = (0usize, 0usize, 0usize);
    for tile in (0..n).step_by(LANES) {
        let (mut cx, mut cy, mut cz) = ([0f32; LANES], [0f32; LANES], [0f32; LANES]);
        for v in 0..LANES.min(n - tile) {
            cx[v] = block_coord(x, bx);
            cy[v] = block_coord(y, by);
            cz[v] = block_coord(z, bz);
            x += 1;
            if x == nx {
                x = 0;
                y += 1;
                if y == ny {
                    y = 0;
                    z += 1;
                }
            }
        }
        // Layer 0: bias + latent term + the three coordinate terms.
        for (o, a) in s.act[..h0].iter_mut().enumerate() {
            let row = &w0[o * first.inputs..o * first.inputs + 3];
            let (wx, wy, wz, b) = (row[0], row[1], row[2], s.first_bias[o]);
            for v in 0..LANES {
                let p = M::madd(wz, cz[v], M::madd(wy, cy[v], M::madd(wx, cx[v], b)));
                a[v] = sin::<M>(p);
            }
        }
        // Hidden sine layers.
        for layer in &model.layers[1..last] {
            let w = layer.weights_of(block.mlp);
            let b = layer.biases_of(block.mlp);
            dense_sine_layer::<M>(w, b, &s.act[..layer.inputs], &mut s.next[..layer.outputs]);
            std::mem::swap(&mut s.act, &mut s.next);
        }
        // Linear output and the block's value range.
        let mut yv = [b_out; LANES];
        for (a, &wi) in s.act.iter().zip(w_out) {
            for v in 0..LANES {
                yv[v] = M::madd(wi, a[v], yv[v]);
            }
        }
        let count = LANES.min(n - tile);
        for (o, &yi) in out[tile..tile + count].iter_mut().zip(&yv) {
            *o = M::madd(half_span, yi, mid);
        }
    }
}

/// `next[o][v] = sin(b[o] + Σ_i w[o][i]·act[i][v])` for a tile of voxels;
/// `w` is `[outputs][inputs]`.
#[inline(always)]
fn dense_sine_layer<M: Madd>(w: &[f32], b: &[f32], act: &[Lanes], next: &mut [Lanes]) {
    let inputs = act.len();
    let outputs = next.len();
    let mut o = 0;
    // Four outputs at a time: four independent accumulator chains, named so
    // the compiler keeps them in registers.
    while o + OUT_TILE <= outputs {
        let row = |j: usize| &w[(o + j) * inputs..(o + j + 1) * inputs];
        let (r0, r1, r2, r3) = (row(0), row(1), row(2), row(3));
        let (mut s0, mut s1, mut s2, mut s3) = (
            [b[o]; LANES],
            [b[o + 1]; LANES],
            [b[o + 2]; LANES],
            [b[o + 3]; LANES],
        );
        for ((((a, &w0), &w1), &w2), &w3) in act.iter().zip(r0).zip(r1).zip(r2).zip(r3) {
            for v in 0..LANES {
                s0[v] = M::madd(w0, a[v], s0[v]);
                s1[v] = M::madd(w1, a[v], s1[v]);
                s2[v] = M::madd(w2, a[v], s2[v]);
                s3[v] = M::madd(w3, a[v], s3[v]);
            }
        }
        for (dst, sums) in next[o..o + OUT_TILE].iter_mut().zip([s0, s1, s2, s3]) {
            for v in 0..LANES {
                dst[v] = sin::<M>(sums[v]);
            }
        }
        o += OUT_TILE;
    }
    for o in o..outputs {
        let wr = &w[o * inputs..(o + 1) * inputs];
        let mut row = [b[o]; LANES];
        for (a, &wi) in act.iter().zip(wr) {
            for v in 0..LANES {
                row[v] = M::madd(wi, a[v], row[v]);
            }
        }
        for v in 0..LANES {
            next[o][v] = sin::<M>(row[v]);
        }
    }
}
