// grid += synthesis(grid scale): at every voxel, each latent level linearly
// interpolated to the scale's grid (level l's sample j sits at voxel 2^l·j,
// clamped at the far edge; t as x, y, z), one channel per level, then the
// synthesis MLP over the channels; the output is added into the grid, which
// holds zeros at the coarsest level and U(coarser levels) otherwise. One
// invocation per voxel (a 2D dispatch past 65535 workgroups).
//
// The host prepends a generated part for the section's architecture (see
// decoder-wasm/src/shaders.rs): constants LEVELS and SYNTHESIS_VEC4S (the
// parameters' length in vec4s), and `fn synthesize(i, v) -> f32`: the
// channels of voxel i at (x, y, z, t) = v, level by level, then the MLP,
// straight-line code (its parameters baked in as literals on big grids) or,
// for wide networks, loops of constant bounds.
//
// Level 0 has the grid's dims: its channel is the latent itself (the CPU's
// weights are then exactly 1 and 0). Coarser levels: the 8 latent rows
// summed in t, z, y order (j0 before j1 on each axis), at the two x taps,
// then (1 − w_x)·c0 + w_x·c1. The CPU skips rows of weight 0; adding their
// +0 products changes no bit (the sums start at +0, weights are ≥ 0).
//
// CPU twin: strata_format::grid::add_synthesis (interpolation_taps,
// level_rows, combine_rows, channel, synthesize_voxel), the sums in the same
// order.

struct Params {
    // Dims x, y, z, t of the scale's grid.
    grid: vec4<u32>,
    // x: workgroups along x of the dispatch.
    dispatch: vec4<u32>,
    // Per level: its dims (x, y, z, t); level 0's are the grid's.
    level_dims: array<vec4<u32>, LEVELS>,
    // Per level ≥ 1: x, where its latents start in coarse_latents.
    level_offset: array<vec4<u32>, LEVELS>,
}

@group(0) @binding(0) var<uniform> u: Params;
// Per layer: weights (inputs × outputs, outputs fastest), then biases;
// zero-padded to whole vec4s.
@group(0) @binding(1) var<uniform> synthesis: array<vec4<f32>, SYNTHESIS_VEC4S>;
// Level 0's latents, x fastest.
@group(0) @binding(2) var<storage, read> latents0: array<i32>;
// Levels 1, 2, … one after the other (apart from level 0, so each buffer
// stays within the binding limit whenever the grid does).
@group(0) @binding(3) var<storage, read> coarse_latents: array<i32>;
@group(0) @binding(4) var<storage, read_write> grid: array<f32>;

const WG: u32 = 64u;

// Synthesis parameter i (the loops of wide networks; straight-line code
// names its parameters' places, or has them baked in as literals).
fn P(i: u32) -> f32 {
    return synthesis[i >> 2u][i & 3u];
}

struct Tap {
    j0: u32,
    j1: u32,
    // Weight of j1, a dyadic fraction (exact); j0 gets 1 − w1.
    w1: f32,
}

// Taps of voxel i along an axis whose level-l latent axis has m samples.
// CPU twin: interpolation_taps.
fn tap(i: u32, l: u32, m: u32) -> Tap {
    let j0 = min(i >> l, m - 1u);
    let j1 = min(j0 + 1u, m - 1u);
    // ldexp rather than a division: exact on every GPU.
    let w1 = ldexp(f32(i & ((1u << l) - 1u)), -i32(l));
    return Tap(j0, j1, w1);
}

fn tap_weight(t: Tap, k: u32) -> f32 {
    return select(1.0 - t.w1, t.w1, k == 1u);
}

fn tap_index(t: Tap, k: u32) -> u32 {
    return select(t.j0, t.j1, k == 1u);
}

// The channel of level l ≥ 1 at voxel (x, y, z, t).
fn channel(l: u32, v: vec4<u32>) -> f32 {
    let d = u.level_dims[l];
    let base = u.level_offset[l].x;
    let tx = tap(v.x, l, d.x);
    let ty = tap(v.y, l, d.y);
    let tz = tap(v.z, l, d.z);
    let tt = tap(v.w, l, d.w);
    var c0 = 0.0;
    var c1 = 0.0;
    for (var a = 0u; a < 2u; a++) {
        for (var b = 0u; b < 2u; b++) {
            for (var e = 0u; e < 2u; e++) {
                let w = tap_weight(tt, a) * tap_weight(tz, b) * tap_weight(ty, e);
                let row = base + ((tap_index(tt, a) * d.z + tap_index(tz, b)) * d.y + tap_index(ty, e)) * d.x;
                c0 += w * f32(coarse_latents[row + tx.j0]);
                c1 += w * f32(coarse_latents[row + tx.j1]);
            }
        }
    }
    return (1.0 - tx.w1) * c0 + tx.w1 * c1;
}

@compute @workgroup_size(64)
fn grid_synthesis(@builtin(global_invocation_id) gid: vec3<u32>) {
    let g = u.grid;
    let i = gid.x + gid.y * u.dispatch.x * WG;
    if (i >= g.x * g.y * g.z * g.w) {
        return;
    }
    let v = vec4<u32>(
        i % g.x,
        (i / g.x) % g.y,
        (i / (g.x * g.y)) % g.z,
        i / (g.x * g.y * g.z),
    );
    grid[i] += synthesize(i, v);
}
