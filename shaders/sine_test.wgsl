// Test entry point for sin_approx (sine.wgsl is prepended by the host):
// values[i] = sin_approx(values[i]).

@group(0) @binding(0) var<storage, read_write> values: array<f32>;

@compute @workgroup_size(64)
fn sine_test(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x < arrayLength(&values)) {
        values[gid.x] = sin_approx(values[gid.x]);
    }
}
