// fine += U(coarse): the pyramid's upsampling, trilinear in space and linear
// in time, added into the next finer grid. Grids are x-fastest with dims
// (x, y, z, t). Fine sample i of an axis sits at coarse position i/2: even
// samples copy a coarse sample, odd ones average two neighbours, clamped at
// the far edge. One invocation per fine voxel.
//
// CPU twin: strata_format::decode::upsample_add — the sums are taken in the
// same order (8 coarse rows in t, z, y order, then the two x taps, / 16), so
// the results agree to rounding.

struct Dims {
    coarse: vec4<u32>,
    fine: vec4<u32>,
    // x: workgroups along x of the dispatch (a 2D dispatch covers grids past
    // 65535 workgroups).
    dispatch: vec4<u32>,
}

@group(0) @binding(0) var<uniform> d: Dims;
@group(0) @binding(1) var<storage, read> coarse: array<f32>;
@group(0) @binding(2) var<storage, read_write> fine: array<f32>;

// Coarse taps (j0, j1) of fine index i along an axis of n coarse samples.
fn taps(i: u32, n: u32) -> vec2<u32> {
    let j0 = min(i / 2u, n - 1u);
    let j1 = select(j0, min(j0 + 1u, n - 1u), (i & 1u) == 1u);
    return vec2<u32>(j0, j1);
}

@compute @workgroup_size(256)
fn upsample_add(@builtin(global_invocation_id) gid: vec3<u32>) {
    let f = d.fine;
    let c = d.coarse;
    let i = gid.x + gid.y * d.dispatch.x * 256u;
    if (i >= f.x * f.y * f.z * f.w) {
        return;
    }
    let x = i % f.x;
    let y = (i / f.x) % f.y;
    let z = (i / (f.x * f.y)) % f.z;
    let t = i / (f.x * f.y * f.z);
    let tx = taps(x, c.x);
    let ty = taps(y, c.y);
    let tz = taps(z, c.z);
    let tt = taps(t, c.w);
    var r0 = 0.0;
    var r1 = 0.0;
    for (var a = 0u; a < 2u; a++) {
        for (var b = 0u; b < 2u; b++) {
            for (var e = 0u; e < 2u; e++) {
                let row = ((tt[a] * c.z + tz[b]) * c.y + ty[e]) * c.x;
                r0 += coarse[row + tx.x];
                r1 += coarse[row + tx.y];
            }
        }
    }
    fine[i] += (r0 + r1) * (1.0 / 16.0);
}
