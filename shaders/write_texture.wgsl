// Copies time step t of a grid (storage buffer, x-fastest, normalized units)
// into a 3D r32float storage texture of the grid's x, y, z dims: what a
// viewer samples. (A buffer-to-texture copy would need rows padded to 256
// bytes; a compute pass writes any dims.)
//
// CPU twin: the grid's frame t itself (the identity on that slice).

struct Frame {
    dims: vec4<u32>,
    // x: the time step.
    t: vec4<u32>,
}

@group(0) @binding(0) var<uniform> f: Frame;
@group(0) @binding(1) var<storage, read> grid: array<f32>;
@group(0) @binding(2) var tex: texture_storage_3d<r32float, write>;

@compute @workgroup_size(8, 8, 4)
fn write_texture(@builtin(global_invocation_id) g: vec3<u32>) {
    if (any(g >= f.dims.xyz)) {
        return;
    }
    let i = ((f.t.x * f.dims.z + g.z) * f.dims.y + g.y) * f.dims.x + g.x;
    textureStore(tex, g, vec4<f32>(grid[i], 0.0, 0.0, 1.0));
}
