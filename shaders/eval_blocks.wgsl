// Evaluates every occupied block's SIREN of one scale at the block's voxels
// (cropped at the grid's far edges) and adds the values into the scale's
// grid — which holds zeros at the coarsest level and U(coarser levels)
// otherwise. Blocks are disjoint, so the adds never race.
//
// One workgroup per block (a 2D dispatch past 65535 blocks). The block's MLP
// parameters are staged in workgroup memory when they fit (STAGED), the
// first layer's bias plus the latent code's contribution — the same at every
// voxel — is computed once per block, then each invocation runs the network
// for every 64th voxel.
//
// The host prepends sine.wgsl and a generated part for the scale's
// architecture (see decoder-wasm/src/shaders.rs): constants
//   LATENT, IN0 (3 + LATENT), H0 (first hidden width), PARAMS (floats per
//   MLP), WG_PARAMS (workgroup array length), STAGED (bool)
// and `fn mlp(c: vec3<f32>) -> f32`, the network after the first layer's
// pre-activation with every layer's loop bounds constant, so the compiler
// can unroll them.
//
// Parameter layout of one MLP (PARAMS floats, ω0 folded into sine layers,
// weights [out][in]): W0, b0, W1, b1, ..., W_out, b_out.
//
// CPU twin: strata_format::decode::eval_block (per block) and add_blocks
// (the scatter into the grid); the sums run in the same order with fused
// multiply-adds, like the CPU kernel on FMA hardware.

struct Params {
    // Grid dims x, y, z, t of this level.
    grid: vec4<u32>,
    // Block edges x, y, z; w: the number of occupied blocks.
    block: vec4<u32>,
    // x: workgroups along x of the dispatch.
    dispatch: vec4<u32>,
}

@group(0) @binding(0) var<uniform> u: Params;
// [mlp][PARAMS]
@group(0) @binding(1) var<storage, read> mlp_params: array<f32>;
// Two per block: (x, y, z, t) in block units, then (slot, mlp, 0, 0).
@group(0) @binding(2) var<storage, read> blocks: array<vec4<u32>>;
// Per occupied block (slot): lo, hi, latent[LATENT].
@group(0) @binding(3) var<storage, read> block_data: array<f32>;
@group(0) @binding(4) var<storage, read_write> grid: array<f32>;

const WG: u32 = 64u;

var<workgroup> staged: array<f32, WG_PARAMS>;
var<workgroup> first_bias: array<f32, H0>;
var<private> mlp_base: u32;

// Parameter i of the block's MLP.
fn P(i: u32) -> f32 {
    if (STAGED) {
        return staged[i];
    }
    return mlp_params[mlp_base + i];
}

// Block-local coordinate of voxel k of a block edge of n voxels: evenly
// spaced over [-1, 1] (0 for a one-voxel edge). CPU twin: block_coord.
fn block_coord(k: u32, n: u32) -> f32 {
    if (n <= 1u) {
        return 0.0;
    }
    return -1.0 + 2.0 * f32(k) / f32(n - 1u);
}

@compute @workgroup_size(64)
fn eval_blocks(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let b = wid.x + wid.y * u.dispatch.x;
    if (b >= u.block.w) {
        return;
    }
    let pos = blocks[2u * b];
    let ids = blocks[2u * b + 1u];
    let slot = ids.x;
    mlp_base = ids.y * PARAMS;
    if (STAGED) {
        for (var i = lid; i < PARAMS; i += WG) {
            staged[i] = mlp_params[mlp_base + i];
        }
        workgroupBarrier();
    }
    let d = slot * (2u + LATENT);
    for (var o = lid; o < H0; o += WG) {
        var acc = P(H0 * IN0 + o);
        for (var l = 0u; l < LATENT; l++) {
            acc = fma(P(o * IN0 + 3u + l), block_data[d + 2u + l], acc);
        }
        first_bias[o] = acc;
    }
    workgroupBarrier();

    let lo = block_data[d];
    let hi = block_data[d + 1u];
    let half_span = (hi - lo) * 0.5;
    let mid = (hi + lo) * 0.5;
    let edge = u.block.xyz;
    let origin = pos.xyz * edge;
    let extent = min(edge, u.grid.xyz - origin);
    let n = extent.x * extent.y * extent.z;
    let frame = pos.w * u.grid.x * u.grid.y * u.grid.z;
    for (var v = lid; v < n; v += WG) {
        let x = v % extent.x;
        let y = (v / extent.x) % extent.y;
        let z = v / (extent.x * extent.y);
        let c = vec3<f32>(block_coord(x, edge.x), block_coord(y, edge.y), block_coord(z, edge.z));
        let value = fma(half_span, mlp(c), mid);
        let g = frame + ((origin.z + z) * u.grid.y + origin.y + y) * u.grid.x + origin.x + x;
        grid[g] += value;
    }
}
