// dst = the loop filter of src (a grid scale's, once its synthesis is
// added): per voxel, the filter of its class (activity class × value bands
// + value band) over the diamond
// |dx|+|dy|+|dz| ≤ 2 or 3, point-symmetric, coordinates clamped into the
// grid; clamped to [0, 1] where asked. Grids are x-fastest with dims
// (x, y, z, t); time steps are filtered apart. One invocation per voxel.
//
// CPU twin: strata_format::grid::LoopFilter::apply — the activity's terms
// and the filter's products are summed in the same order.

struct Params {
    dims: vec4<u32>,
    // x: workgroups along x of the dispatch; y: activity classes; z: clamp
    // (0/1); w: pairs of the shape (12 or 31).
    misc: vec4<u32>,
    // x: value bands.
    bands: vec4<u32>,
}

@group(0) @binding(0) var<uniform> p: Params;
// THRESHOLD_SLOTS thresholds (activity classes − 1 of activity, then value
// bands − 1 of value; the rest unused), then per class its pairs + 2
// weights: the offset, the centre's, each pair's.
@group(0) @binding(1) var<storage, read> filters: array<f32>;
@group(0) @binding(2) var<storage, read> src: array<f32>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;

const THRESHOLD_SLOTS: u32 = 31u;

// One of each pair, in the order of loop_filter::PAIRS: radius ≤ 2 first.
var<private> PAIRS: array<vec3<i32>, 31> = array<vec3<i32>, 31>(
    vec3<i32>(1, 0, 0), vec3<i32>(0, 1, 0), vec3<i32>(0, 0, 1),
    vec3<i32>(2, 0, 0), vec3<i32>(0, 2, 0), vec3<i32>(0, 0, 2),
    vec3<i32>(1, 1, 0), vec3<i32>(1, -1, 0), vec3<i32>(1, 0, 1),
    vec3<i32>(1, 0, -1), vec3<i32>(0, 1, 1), vec3<i32>(0, 1, -1),
    vec3<i32>(3, 0, 0), vec3<i32>(0, 3, 0), vec3<i32>(0, 0, 3),
    vec3<i32>(1, -2, 0), vec3<i32>(1, 2, 0), vec3<i32>(2, -1, 0),
    vec3<i32>(2, 1, 0), vec3<i32>(0, 1, -2), vec3<i32>(0, 1, 2),
    vec3<i32>(0, 2, -1), vec3<i32>(0, 2, 1), vec3<i32>(1, 0, -2),
    vec3<i32>(1, 0, 2), vec3<i32>(2, 0, -1), vec3<i32>(2, 0, 1),
    vec3<i32>(1, -1, -1), vec3<i32>(1, -1, 1), vec3<i32>(1, 1, -1),
    vec3<i32>(1, 1, 1),
);

fn at(v: vec3<i32>, t: u32) -> f32 {
    let hi = vec3<i32>(p.dims.xyz) - vec3<i32>(1);
    let c = vec3<u32>(clamp(v, vec3<i32>(0), hi));
    return src[((t * p.dims.z + c.z) * p.dims.y + c.y) * p.dims.x + c.x];
}

@compute @workgroup_size(256)
fn loop_filter(@builtin(global_invocation_id) gid: vec3<u32>) {
    let d = p.dims;
    let i = gid.x + gid.y * p.misc.x * 256u;
    if (i >= d.x * d.y * d.z * d.w) {
        return;
    }
    let v = vec3<i32>(i32(i % d.x), i32((i / d.x) % d.y), i32((i / (d.x * d.y)) % d.z));
    let t = i / (d.x * d.y * d.z);
    var a = 0.0;
    a += abs(at(v + vec3<i32>(1, 0, 0), t) - at(v - vec3<i32>(1, 0, 0), t));
    a += abs(at(v + vec3<i32>(0, 1, 0), t) - at(v - vec3<i32>(0, 1, 0), t));
    a += abs(at(v + vec3<i32>(0, 0, 1), t) - at(v - vec3<i32>(0, 0, 1), t));
    // The class: how many (ascending) activity thresholds are ≤ a, times
    // the bands, plus how many value thresholds are ≤ the voxel's value.
    let bands = p.bands.x;
    let centre = at(v, t);
    var ka = 0u;
    for (var j = 0u; j + 1u < p.misc.y; j++) {
        if (filters[j] <= a) {
            ka += 1u;
        }
    }
    var kv = 0u;
    for (var j = 0u; j + 1u < bands; j++) {
        if (filters[p.misc.y - 1u + j] <= centre) {
            kv += 1u;
        }
    }
    let k = ka * bands + kv;
    let pairs = p.misc.w;
    let w = THRESHOLD_SLOTS + k * (pairs + 2u);
    var sum = filters[w];
    sum += filters[w + 1u] * centre;
    for (var q = 0u; q < pairs; q++) {
        let o = PAIRS[q];
        sum += filters[w + 2u + q] * (at(v + o, t) + at(v - o, t));
    }
    if (p.misc.z == 1u) {
        sum = clamp(sum, 0.0, 1.0);
    }
    dst[i] = sum;
}
