// Volume rendering of one 3D texture (normalized values) in four modes:
// composite ray marching through a transfer function, maximum-intensity
// projection, isosurface (first hit, gradient shading), and an axis-aligned
// slice. One full-screen triangle; each fragment casts one ray.
//
// `sample_volume` is spliced in by renderer.js: a hardware trilinear sample
// where the device has `float32-filterable`, eight loads otherwise.

struct View {
    inv_view_proj: mat4x4<f32>,
    eye: vec4<f32>,
    // Half extents of the volume's box in world units (xyz).
    box_half: vec4<f32>,
    // xyz: world length of one voxel of the full-size volume (the opacity
    // reference, so a coarse preview looks as dense as the final picture);
    // w: world step length of this texture's ray march.
    steps: vec4<f32>,
    // x: mode (0 composite, 1 MIP, 2 isosurface, 3 slice), y: iso value,
    // z: slice axis (0 x, 1 y, 2 z), w: slice position in [0, 1].
    params: vec4<f32>,
    // Slice mode: NDC → plane coordinates, uv = ndc · xy + zw.
    slice_map: vec4<f32>,
    background: vec4<f32>,
};

@group(0) @binding(0) var<uniform> view: View;
@group(0) @binding(1) var volume: texture_3d<f32>;
@group(0) @binding(2) var volume_sampler: sampler;
@group(0) @binding(3) var transfer: texture_2d<f32>;
@group(0) @binding(4) var transfer_sampler: sampler;

struct VertexOut {
    @builtin(position) position: vec4<f32>,
    @location(0) ndc: vec2<f32>,
};

@vertex
fn vs_main(@builtin(vertex_index) i: u32) -> VertexOut {
    // One triangle covering the screen.
    let xy = vec2<f32>(f32((i << 1u) & 2u), f32(i & 2u)) * 2.0 - 1.0;
    var out: VertexOut;
    out.position = vec4<f32>(xy, 0.0, 1.0);
    out.ndc = xy;
    return out;
}

//SAMPLE_VOLUME//

fn colormap(v: f32) -> vec4<f32> {
    return textureSampleLevel(transfer, transfer_sampler, vec2<f32>(clamp(v, 0.0, 1.0), 0.5), 0.0);
}

// Texture coordinates of a world point inside the box.
fn to_texture(p: vec3<f32>) -> vec3<f32> {
    return p / (2.0 * view.box_half.xyz) + 0.5;
}

// Ray–box intersection: (t_near, t_far), empty when t_near > t_far.
fn hit_box(origin: vec3<f32>, dir: vec3<f32>) -> vec2<f32> {
    let inv = 1.0 / dir;
    let a = (-view.box_half.xyz - origin) * inv;
    let b = (view.box_half.xyz - origin) * inv;
    let lo = min(a, b);
    let hi = max(a, b);
    let t0 = max(max(lo.x, lo.y), max(lo.z, 0.0));
    let t1 = min(min(hi.x, hi.y), hi.z);
    return vec2<f32>(t0, t1);
}

fn gradient(p: vec3<f32>) -> vec3<f32> {
    let h = 1.0 / vec3<f32>(textureDimensions(volume));
    return vec3<f32>(
        sample_volume(p + vec3<f32>(h.x, 0.0, 0.0)) - sample_volume(p - vec3<f32>(h.x, 0.0, 0.0)),
        sample_volume(p + vec3<f32>(0.0, h.y, 0.0)) - sample_volume(p - vec3<f32>(0.0, h.y, 0.0)),
        sample_volume(p + vec3<f32>(0.0, 0.0, h.z)) - sample_volume(p - vec3<f32>(0.0, 0.0, h.z)),
    ) / (2.0 * h);
}

fn slice(ndc: vec2<f32>) -> vec4<f32> {
    let uv = ndc * view.slice_map.xy + view.slice_map.zw;
    if any(uv < vec2<f32>(0.0)) || any(uv > vec2<f32>(1.0)) {
        return view.background;
    }
    let s = view.params.w;
    var p: vec3<f32>;
    switch u32(view.params.z) {
        case 0u: { p = vec3<f32>(s, uv.x, uv.y); }
        case 1u: { p = vec3<f32>(uv.x, s, uv.y); }
        default: { p = vec3<f32>(uv.x, uv.y, s); }
    }
    return vec4<f32>(colormap(sample_volume(p)).rgb, 1.0);
}

@fragment
fn fs_main(in: VertexOut) -> @location(0) vec4<f32> {
    let mode = u32(view.params.x);
    if mode == 3u {
        return slice(in.ndc);
    }
    let near = view.inv_view_proj * vec4<f32>(in.ndc, 0.0, 1.0);
    let far = view.inv_view_proj * vec4<f32>(in.ndc, 1.0, 1.0);
    let origin = near.xyz / near.w;
    let dir = normalize(far.xyz / far.w - origin);
    let span = hit_box(origin, dir);
    if span.x >= span.y {
        return view.background;
    }
    let step = view.steps.w;
    let n = u32(ceil((span.y - span.x) / step));
    // Opacity correction: the transfer function's alpha is per voxel of the
    // full-size volume, whatever this texture's step.
    let reference = min(view.steps.x, min(view.steps.y, view.steps.z));
    let exponent = step / reference;

    var color = vec3<f32>(0.0);
    var alpha = 0.0;
    var peak = -1e30;
    // A per-pixel offset of the first sample turns the wood-grain rings of
    // a fixed sampling grid into fine noise (deterministic: same pixel, same offset).
    let jitter = fract(sin(dot(in.position.xy, vec2<f32>(12.9898, 78.233))) * 43758.5453);
    for (var i = 0u; i < n; i++) {
        let t = span.x + (f32(i) + jitter) * step;
        let p = to_texture(origin + t * dir);
        let v = sample_volume(p);
        if mode == 0u {
            let c = colormap(v);
            let a = 1.0 - pow(1.0 - clamp(c.a, 0.0, 1.0), exponent);
            color += (1.0 - alpha) * a * c.rgb;
            alpha += (1.0 - alpha) * a;
            if alpha > 0.99 {
                break;
            }
        } else if mode == 1u {
            peak = max(peak, v);
        } else {
            let iso = view.params.y;
            if v >= iso {
                // Bisect between the last sample below and this one.
                var lo = max(t - step, span.x);
                var hi = t;
                for (var k = 0; k < 5; k++) {
                    let mid = 0.5 * (lo + hi);
                    if sample_volume(to_texture(origin + mid * dir)) >= iso {
                        hi = mid;
                    } else {
                        lo = mid;
                    }
                }
                let q = to_texture(origin + hi * dir);
                let g = gradient(q);
                let len = length(g);
                var normal = -dir;
                if len > 1e-6 {
                    normal = -g / len;
                }
                // Head light: lit from the eye, both faces.
                let l = -dir;
                let diffuse = abs(dot(normal, l));
                let specular = pow(diffuse, 40.0);
                let base = colormap(iso).rgb;
                let shaded = base * (0.25 + 0.75 * diffuse) + vec3<f32>(0.35 * specular);
                return vec4<f32>(shaded, 1.0);
            }
        }
    }
    if mode == 1u {
        return vec4<f32>(colormap(peak).rgb, 1.0);
    }
    if mode == 2u {
        return view.background;
    }
    return vec4<f32>(color + (1.0 - alpha) * view.background.rgb, 1.0);
}
