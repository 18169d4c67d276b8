// WebGPU volume renderer: one 3D r32float texture (values normalized to
// [0, 1]) drawn into a canvas by raymarch.wgsl, in composite, MIP,
// isosurface or slice mode. The renderer owns no volume: the decoder's
// texture (or one uploaded by `uploadVolume`) is handed to `setVolume`.

import shaderSource from "./raymarch.wgsl";
import { orbitMatrices, sliceMap } from "./camera.js";

export const MODES = ["composite", "mip", "iso", "slice"];

const SAMPLE_FILTERED = `
fn sample_volume(p: vec3<f32>) -> f32 {
    return textureSampleLevel(volume, volume_sampler, p, 0.0).r;
}`;

// Without float32-filterable an r32float texture can only be loaded: trilinear
// interpolation by hand, with the same edge clamping as the sampler.
const SAMPLE_LOADED = `
fn sample_volume(p: vec3<f32>) -> f32 {
    let size = vec3<i32>(textureDimensions(volume));
    let x = clamp(p * vec3<f32>(size) - 0.5, vec3<f32>(0.0), vec3<f32>(size - 1));
    let i0 = vec3<i32>(floor(x));
    let i1 = min(i0 + 1, size - 1);
    let f = x - floor(x);
    let c00 = mix(textureLoad(volume, vec3<i32>(i0.x, i0.y, i0.z), 0).r, textureLoad(volume, vec3<i32>(i1.x, i0.y, i0.z), 0).r, f.x);
    let c10 = mix(textureLoad(volume, vec3<i32>(i0.x, i1.y, i0.z), 0).r, textureLoad(volume, vec3<i32>(i1.x, i1.y, i0.z), 0).r, f.x);
    let c01 = mix(textureLoad(volume, vec3<i32>(i0.x, i0.y, i1.z), 0).r, textureLoad(volume, vec3<i32>(i1.x, i0.y, i1.z), 0).r, f.x);
    let c11 = mix(textureLoad(volume, vec3<i32>(i0.x, i1.y, i1.z), 0).r, textureLoad(volume, vec3<i32>(i1.x, i1.y, i1.z), 0).r, f.x);
    return mix(mix(c00, c10, f.y), mix(c01, c11, f.y), f.z);
}`;

const UNIFORM_BYTES = 16 * 4 + 6 * 16;

export class VolumeRenderer {
    /** @param {GPUDevice} device @param {HTMLCanvasElement} canvas */
    constructor(device, canvas) {
        this.device = device;
        this.canvas = canvas;
        this.context = canvas.getContext("webgpu");
        if (!this.context) throw new Error("this canvas has no WebGPU context");
        this.format = navigator.gpu.getPreferredCanvasFormat();
        this.context.configure({ device, format: this.format, alphaMode: "opaque" });
        this.filterable = device.features.has("float32-filterable");

        const code = shaderSource.replace("//SAMPLE_VOLUME//", this.filterable ? SAMPLE_FILTERED : SAMPLE_LOADED);
        const module = device.createShaderModule({ label: "strata raymarch", code });
        this.pipeline = device.createRenderPipeline({
            label: "strata raymarch",
            layout: "auto",
            vertex: { module, entryPoint: "vs_main" },
            fragment: { module, entryPoint: "fs_main", targets: [{ format: this.format }] },
            primitive: { topology: "triangle-list" },
        });
        this.uniforms = device.createBuffer({
            size: UNIFORM_BYTES,
            usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
        });
        const linear = { magFilter: "linear", minFilter: "linear", addressModeU: "clamp-to-edge", addressModeV: "clamp-to-edge", addressModeW: "clamp-to-edge" };
        this.volumeSampler = device.createSampler(this.filterable ? linear : {});
        this.transferSampler = device.createSampler(linear);
        this.transfer = device.createTexture({
            size: [256, 1],
            format: "rgba8unorm",
            usage: GPUTextureUsage.TEXTURE_BINDING | GPUTextureUsage.COPY_DST,
        });
        this.volume = null;
        this.bindGroup = null;
    }

    /**
     * The texture to draw: `dims` its [x, y, z] size, `fullDims` the
     * volume's (a coarse level spans the same box), `spacing` voxel size.
     */
    setVolume(texture, dims, fullDims, spacing) {
        this.volume = { texture, dims, fullDims, spacing };
        this.bindGroup = this.device.createBindGroup({
            layout: this.pipeline.getBindGroupLayout(0),
            entries: [
                { binding: 0, resource: { buffer: this.uniforms } },
                { binding: 1, resource: texture.createView() },
                { binding: 2, resource: this.volumeSampler },
                { binding: 3, resource: this.transfer.createView() },
                { binding: 4, resource: this.transferSampler },
            ],
        });
    }

    /** `lut`: 256 RGBA bytes, index = normalized value · 255. */
    setTransferFunction(lut) {
        this.device.queue.writeTexture({ texture: this.transfer }, lut, { bytesPerRow: 256 * 4 }, [256, 1]);
    }

    /** Half extents of the volume's box: the longest side spans [-1, 1]. */
    boxHalf() {
        const { fullDims, spacing } = this.volume;
        const size = [0, 1, 2].map((a) => fullDims[a] * (spacing[a] > 0 ? spacing[a] : 1));
        const longest = Math.max(...size);
        return size.map((s) => s / longest);
    }

    /** Draws one frame of `view` (see viewstate.js); returns the command buffer's submit time. */
    render(view) {
        const { width, height } = this.canvas;
        const aspect = width / Math.max(1, height);
        const data = new Float32Array(UNIFORM_BYTES / 4);
        const bg = [0.07, 0.075, 0.09, 1];
        if (this.volume) {
            const half = this.boxHalf();
            const { invViewProj, eye } = orbitMatrices(view.camera, aspect);
            data.set(invViewProj, 0);
            data.set([...eye, 1], 16);
            data.set([...half, 0], 20);
            const full = [0, 1, 2].map((a) => (2 * half[a]) / this.volume.fullDims[a]);
            const texel = Math.min(...[0, 1, 2].map((a) => (2 * half[a]) / this.volume.dims[a]));
            // One step per voxel of the current texture (a coarse preview
            // marches fewer steps); opacity is corrected for it in the shader.
            data.set([...full, texel], 24);
            const axis = { x: 0, y: 1, z: 2 }[view.slice.axis];
            data.set([MODES.indexOf(view.mode), view.iso, axis, view.slice.position], 28);
            data.set(sliceMap(view.slice.axis, half, view.camera, aspect), 32);
        }
        data.set(bg, 36);
        this.device.queue.writeBuffer(this.uniforms, 0, data);

        const encoder = this.device.createCommandEncoder({ label: "strata frame" });
        const pass = encoder.beginRenderPass({
            colorAttachments: [{
                view: this.context.getCurrentTexture().createView(),
                clearValue: { r: bg[0], g: bg[1], b: bg[2], a: 1 },
                loadOp: "clear",
                storeOp: "store",
            }],
        });
        if (this.bindGroup) {
            pass.setPipeline(this.pipeline);
            pass.setBindGroup(0, this.bindGroup);
            pass.draw(3);
        }
        pass.end();
        this.device.queue.submit([encoder.finish()]);
    }

    /** Renders `frames` frames of `view` back to back; the mean GPU-complete time per frame, ms. */
    async measure(view, frames) {
        await this.device.queue.onSubmittedWorkDone();
        const start = performance.now();
        for (let i = 0; i < frames; i++) {
            this.render(view);
            await this.device.queue.onSubmittedWorkDone();
        }
        return (performance.now() - start) / frames;
    }
}

/**
 * Uploads a volume decoded elsewhere (the CPU reference decoder's output, or
 * any Float32Array in x-fastest order) as a texture like the decoder's:
 * r32float, values normalized over [min, max].
 */
export function uploadVolume(device, data, dims, [min, max]) {
    const [x, y, z] = dims;
    if (data.length < x * y * z) throw new Error(`a ${x}×${y}×${z} volume needs ${x * y * z} values, got ${data.length}`);
    const scale = max > min ? 1 / (max - min) : 0;
    const normalized = new Float32Array(x * y * z);
    for (let i = 0; i < normalized.length; i++) normalized[i] = (data[i] - min) * scale;
    const texture = device.createTexture({
        size: [x, y, z],
        dimension: "3d",
        format: "r32float",
        usage: GPUTextureUsage.TEXTURE_BINDING | GPUTextureUsage.COPY_DST,
    });
    device.queue.writeTexture({ texture }, normalized, { bytesPerRow: x * 4, rowsPerImage: y }, [x, y, z]);
    return texture;
}
