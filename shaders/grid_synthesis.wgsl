// grid += synthesis(grid scale): at every voxel, each latent level linearly
// interpolated to the scale's grid (level l's sample j sits at voxel 2^l·j,
// clamped at the far edge; t as x, y, z), one channel per level, then the
// synthesis MLP over the channels; the output is added into the grid, which
// holds zeros at the coarsest level and U(coarser levels) otherwise. One
// workgroup per 64 voxels of a row (a 2D dispatch past 65535 workgroups),
// one invocation per voxel.
//
// The host prepends a generated part for the section's architecture (see
// decoder-wasm/src/shaders.rs): constants LEVELS and SYNTHESIS_VEC4S (the
// parameters' length in vec4s), and `fn synthesize(i, v) -> f32`: the
// channels of voxel i at (x, y, z, t) = v, level by level, then the MLP,
// straight-line code (its parameters baked in as literals on big grids) or,
// for wide networks, loops of constant bounds.
//
// The channels are the section's latents as f32, or for a lifted section
// each level below the coarsest through the inverse 5/3 lifting: the CPU
// computes them (GridSection::channels) and both synthesize from the same.
// Level 0 has the grid's dims: its channel is taken as it is (the CPU's
// weights are then exactly 1 and 0). Coarser levels, as the CPU does per
// row: the workgroup first sums the 8 channel rows of its voxel row in t, z,
// y order (j0 before j1 on each axis) at the latent samples its 64 voxels
// reach (≤ 33), into workgroup memory; each voxel then takes
// (1 − w_x)·c[j0] + w_x·c[j1]. The CPU skips rows of weight 0; adding their
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
    // Per level ≥ 1: x, where its channel starts in coarse_channels.
    level_offset: array<vec4<u32>, LEVELS>,
}

@group(0) @binding(0) var<uniform> u: Params;
// Per layer: weights (inputs × outputs, outputs fastest), then biases;
// zero-padded to whole vec4s.
@group(0) @binding(1) var<uniform> synthesis: array<vec4<f32>, SYNTHESIS_VEC4S>;
// Level 0's channel, x fastest.
@group(0) @binding(2) var<storage, read> channels0: array<f32>;
// Levels 1, 2, … one after the other (apart from level 0, so that neither
// buffer is much larger than the grid: the binding limit is the grid's).
@group(0) @binding(3) var<storage, read> coarse_channels: array<f32>;
@group(0) @binding(4) var<storage, read_write> grid: array<f32>;

const WG: u32 = 64u;
// Room per level for the latent samples a workgroup's 64 voxels reach (at
// most 33, at level 1).
const ROW: u32 = 34u;

// Per level ≥ 1: the combined latent row at samples lo, lo + 1, ….
var<workgroup> combined: array<f32, LEVELS * ROW>;
// x of the workgroup's first voxel.
var<private> tile_x0: u32;

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

// Level l's combined row (y, z, t) = v.yzw at sample j: the twin of
// level_rows and combine_rows.
fn combine(l: u32, v: vec4<u32>, j: u32) -> f32 {
    let d = u.level_dims[l];
    let base = u.level_offset[l].x + j;
    let ty = tap(v.y, l, d.y);
    let tz = tap(v.z, l, d.z);
    let tt = tap(v.w, l, d.w);
    var c = 0.0;
    for (var a = 0u; a < 2u; a++) {
        for (var b = 0u; b < 2u; b++) {
            for (var e = 0u; e < 2u; e++) {
                let w = tap_weight(tt, a) * tap_weight(tz, b) * tap_weight(ty, e);
                let row = ((tap_index(tt, a) * d.z + tap_index(tz, b)) * d.y + tap_index(ty, e)) * d.x;
                c += w * coarse_channels[base + row];
            }
        }
    }
    return c;
}

// The channel of level l ≥ 1 at voxel v (its row staged in `combined`).
// CPU twin: channel.
fn channel(l: u32, v: vec4<u32>) -> f32 {
    let tx = tap(v.x, l, u.level_dims[l].x);
    let row = l * ROW - (tile_x0 >> l);
    return (1.0 - tx.w1) * combined[row + tx.j0] + tx.w1 * combined[row + tx.j1];
}

@compute @workgroup_size(64)
fn grid_synthesis(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let g = u.grid;
    let tiles = (g.x + WG - 1u) / WG;
    let w = wid.x + wid.y * u.dispatch.x;
    let r = w / tiles;
    if (r >= g.y * g.z * g.w) {
        return;
    }
    tile_x0 = (w % tiles) * WG;
    let v = vec4<u32>(tile_x0 + lid, r % g.y, (r / g.y) % g.z, r / (g.y * g.z));
    let last = min(tile_x0 + WG, g.x) - 1u;
    for (var l = 1u; l < LEVELS; l++) {
        let lo = tile_x0 >> l;
        let hi = min((last >> l) + 1u, u.level_dims[l].x - 1u);
        if (lid <= hi - lo) {
            combined[l * ROW + lid] = combine(l, v, lo + lid);
        }
    }
    workgroupBarrier();
    if (v.x < g.x) {
        let i = r * g.x + v.x;
        grid[i] += synthesize(i, v);
    }
}
