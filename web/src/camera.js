// The orbit camera: yaw and pitch (degrees) around a target that pans in
// the view plane, at a distance from it, with a fixed vertical field of
// view. World = the volume's box (x right, y away at yaw 0, z up).

export const FOV_DEGREES = 30;
const NEAR = 0.01;
const FAR = 100;

const rad = (d) => (d * Math.PI) / 180;
const add = (a, b) => a.map((v, i) => v + b[i]);
const scale = (a, s) => a.map((v) => v * s);

/** Eye position and the unit forward, right and up vectors. */
export function orbitBasis({ yaw, pitch, distance, pan }) {
    const [cy, sy, cp, sp] = [Math.cos(rad(yaw)), Math.sin(rad(yaw)), Math.cos(rad(pitch)), Math.sin(rad(pitch))];
    const back = [cp * sy, -cp * cy, sp]; // from the target toward the eye
    const forward = scale(back, -1);
    const right = [cy, sy, 0];
    const up = [-sp * sy, sp * cy, cp]; // back × right
    const target = add(scale(right, pan[0]), scale(up, pan[1]));
    return { eye: add(target, scale(back, distance)), forward, right, up };
}

/**
 * The clip → world matrix (column-major, as WGSL reads it) of a perspective
 * camera: NDC (x, y, z) with z ∈ [0, 1] from near to far plane. Built in
 * homogeneous form (w = 1 / depth), so no matrix inverse is needed.
 */
export function orbitMatrices(camera, aspect) {
    const { eye, forward, right, up } = orbitBasis(camera);
    const b = Math.tan(rad(FOV_DEGREES) / 2);
    const a = b * aspect;
    const dw = 1 / FAR - 1 / NEAR;
    const invViewProj = [
        ...scale(right, a), 0,
        ...scale(up, b), 0,
        ...scale(eye, dw), dw,
        ...add(scale(eye, 1 / NEAR), forward), 1 / NEAR,
    ];
    return { invViewProj, eye };
}

/** World height visible at the target: what a slice view fits in. */
export function visibleHeight(distance) {
    return 2 * distance * Math.tan(rad(FOV_DEGREES) / 2);
}

/**
 * Slice mode: NDC → plane coordinates in [0, 1]², `uv = ndc · m.xy + m.zw`,
 * for the plane across `axis` of a box with half extents `half`; the
 * camera's distance zooms and its pan moves the plane.
 */
export function sliceMap(axis, half, camera, aspect) {
    const [u, v] = { x: [1, 2], y: [0, 2], z: [0, 1] }[axis];
    const w = 2 * half[u];
    const h = 2 * half[v];
    const vis = visibleHeight(camera.distance) / 2;
    return [(aspect * vis) / w, vis / h, 0.5 - camera.pan[0] / w, 0.5 - camera.pan[1] / h];
}
