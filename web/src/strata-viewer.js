// <strata-viewer src="scan.strata"> — the embeddable viewer. It streams an
// archive into the wasm decoder (WebGPU), draws each scale as soon as it is
// decoded (coarsest first), and offers composite / MIP / isosurface / slice
// views with a transfer-function editor, orbit-zoom-pan by mouse and touch,
// and a time slider for 4D archives.
//
// Events (CustomEvent on the element):
//   strata-header  { dims: [x, y, z, t], scales, bytes }
//   strata-scale   { index, of, bytesLoaded, bytesTotal, ms }   index 1 = coarsest
//   strata-error   { message }
//   strata-view    { view }   after the user changes the view (for links)
//   strata-latents { index, latents, ms, where }   after each grid scale's
//                  latents are entropy-decoded (Int32Array, every latent
//                  level finest first; `where` "worker" or "page"): for
//                  checking and timing

import init, { StrataDecoder } from "../pkg/strata_decoder.js";
import { VolumeRenderer, uploadVolume, MODES } from "./renderer.js";
import { bakeTransfer, COLORMAPS, TransferEditor } from "./transfer.js";
import { defaultView, parseViewParams, viewParams, archiveUrl } from "./viewstate.js";
import { streamedChunks, rangeChunks, bufferChunks, readableChunks } from "./source.js";
import { visibleHeight } from "./camera.js";
import { LatentDecoder } from "./latents.js";
import { STYLE, TEMPLATE } from "./ui.js";

export { defaultView, parseViewParams, viewParams, archiveUrl, COLORMAPS, MODES };

let wasmReady = null;
function loadWasm() {
    wasmReady ??= init({ module_or_path: new URL("strata_decoder_bg.wasm", import.meta.url) });
    return wasmReady;
}

const kb = (n) => (n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MB` : `${(n / 1024).toFixed(1)} KB`);

export class StrataViewer extends HTMLElement {
    static observedAttributes = ["src"];

    constructor() {
        super();
        const root = this.attachShadow({ mode: "open" });
        root.innerHTML = `<style>${STYLE}</style>${TEMPLATE}`;
        this.$ = (id) => root.getElementById(id);
        this.canvas = this.$("canvas");
        this.view = defaultView();
        this.volume = null; // { source: "decoder" | "cpu", dims, fullDims, spacing, ... }
        this.loading = null;
        this.status = { scale: 0, scales: 0, loaded: 0, total: 0, frameMs: null, error: null };
        this.editor = new TransferEditor(this.$("tf"), (opacity) => {
            this.view.transfer.opacity = opacity;
            this.transferChanged();
            this.viewChanged();
        });
        this.bindControls();
        this.bindPointer();
        new ResizeObserver(() => this.resize()).observe(this.canvas);
        this.syncControls();
    }

    connectedCallback() {
        if (this.getAttribute("src") && !this.loading) this.open(this.getAttribute("src")).catch(() => {});
    }

    attributeChangedCallback(name, old, value) {
        if (name === "src" && value && value !== old && this.isConnected) this.open(value).catch(() => {});
    }

    /** The current view (camera, mode, transfer function, iso, slice, t): a copy. */
    get viewState() {
        return structuredClone(this.view);
    }
    set viewState(view) {
        this.view = structuredClone(view);
        this.syncControls();
        this.transferChanged();
        this.timeChanged();
    }

    /** A link to this view of the archive, on `page` (default: this page). */
    link(page = location.href) {
        const url = new URL(page);
        const params = viewParams(this.view, this.src ?? undefined);
        if (this.src && this.rangeMode) params.set("range", "1");
        url.hash = params.toString();
        return url.href;
    }

    /** Opens the GPU (once): wasm, decoder device, renderer. */
    async gpu() {
        if (this.renderer) return this.renderer;
        if (!navigator.gpu) {
            throw new Error("WebGPU is not available in this browser, so the volume cannot be shown. Use a browser with WebGPU enabled (Chrome or Edge 113+, Safari 26+, Firefox 141+), over https or on localhost.");
        }
        this.gpuReady ??= (async () => {
            await loadWasm();
            this.decoder = await StrataDecoder.create();
            // Grid scales' latents decode in a Web Worker, off this thread.
            this.decoder.offloadLatents(true);
            this.latents = new LatentDecoder(new URL("latent-worker.js", import.meta.url));
            const device = this.decoder.device();
            device.lost.then((info) => this.fail(`the GPU device was lost: ${info.message || info.reason}`));
            this.renderer = new VolumeRenderer(device, this.canvas);
            this.transferChanged();
            this.resize();
            return this.renderer;
        })();
        return this.gpuReady;
    }

    /**
     * Opens an archive: a URL (string or URL; streamed, or with
     * `{ range: true }` read by HTTP Range requests section by section), an
     * ArrayBuffer / typed array, or a ReadableStream of bytes. Resolves when
     * the archive is read; rejects (after a `strata-error`) on failure,
     * keeping the scales that arrived on screen.
     */
    async open(source, { range = this.hasAttribute("range") } = {}) {
        this.loading?.abort();
        const abort = new AbortController();
        this.loading = abort;
        const started = performance.now();
        this.status = { scale: 0, scales: 0, loaded: 0, total: 0, frameMs: this.status.frameMs, error: null };
        this.showMessage("");
        this.$("spinner").hidden = false;
        let url = null;
        try {
            if (typeof source === "string" || source instanceof URL) {
                url = archiveUrl(String(source), location.href);
                this.src = String(source);
                this.rangeMode = range;
            } else {
                this.src = null;
            }
            await this.gpu();
            this.decoder.reset();
            this.volume = null;
            const pending = [];
            this.decoder.onScale((p) => pending.push(p));
            const total = (n) => (this.status.total = n);
            let chunks;
            if (url && range) {
                chunks = rangeChunks(url, {
                    signal: abort.signal,
                    total,
                    headerLength: (b) => StrataDecoder.headerLength(b),
                    sections: () => this.decoder.sections(),
                });
            } else if (url) {
                chunks = streamedChunks(url, { signal: abort.signal, total });
            } else if (source instanceof ReadableStream) {
                chunks = readableChunks(source);
            } else if (source instanceof ArrayBuffer || ArrayBuffer.isView(source)) {
                total(source.byteLength);
                chunks = bufferChunks(source);
            } else {
                throw new Error("open() takes a URL, an ArrayBuffer or a ReadableStream");
            }
            let headerSeen = false;
            const showPending = async () => {
                for (const p of pending.splice(0)) {
                    this.showDecoded(p);
                    await this.presented();
                    this.emit("strata-scale", {
                        index: p.level + 1,
                        of: p.scales,
                        bytesLoaded: this.status.loaded,
                        bytesTotal: this.status.total,
                        ms: performance.now() - started,
                    });
                }
            };
            for await (const chunk of chunks) {
                if (abort.signal.aborted) return;
                // A failing section still leaves the scales before it to show.
                let failure = null;
                try {
                    this.decoder.push(chunk);
                } catch (e) {
                    failure = e;
                }
                this.status.loaded += chunk.length;
                if (!headerSeen && this.decoder.scales() > 0) {
                    headerSeen = true;
                    this.status.scales = this.decoder.scales();
                    this.status.total = this.decoder.archiveBytes();
                    const dims = Array.from(this.decoder.volumeDims());
                    this.emit("strata-header", { dims, scales: this.status.scales, bytes: this.status.total });
                    this.syncControls();
                }
                await showPending();
                // Each grid scale the chunk completed: latents from the
                // worker, then the GPU synthesis, then on screen.
                for (let job; !failure && (job = this.decoder.pendingLatents()); ) {
                    try {
                        const { latents, ms, where } = await this.latents.decode(job);
                        if (abort.signal.aborted) return;
                        this.emit("strata-latents", { index: job.level + 1, latents, ms, where });
                        this.decoder.supplyLatents(latents);
                    } catch (e) {
                        failure = e;
                    }
                    await showPending();
                }
                this.updateStatus();
                if (failure) throw failure;
            }
            if (abort.signal.aborted) return;
            this.decoder.finish();
            this.$("spinner").hidden = true;
            this.updateStatus();
        } catch (e) {
            if (abort.signal.aborted || e?.name === "AbortError") return;
            this.fail(e?.message ?? String(e));
            throw e;
        } finally {
            if (this.loading === abort) this.loading = null;
        }
    }

    /**
     * Shows a volume decoded elsewhere (e.g. by the CPU reference decoder)
     * with the same renderer: `data` in x-fastest order, original units,
     * `dims` [x, y, z, t], `range` [min, max] as in the archive's header.
     */
    async showVolume({ data, dims, range, spacing = [1, 1, 1, 1] }) {
        this.loading?.abort();
        await this.gpu();
        this.decoder.reset();
        this.src = null;
        const [x, y, z, t = 1] = dims;
        this.volume = { source: "cpu", data, dims: [x, y, z, t], fullDims: [x, y, z, t], spacing, range };
        this.status = { scale: 1, scales: 1, loaded: data.byteLength, total: data.byteLength, frameMs: this.status.frameMs, error: null };
        this.showMessage("");
        this.$("spinner").hidden = true;
        this.syncControls();
        this.timeChanged();
        await this.presented();
    }

    /** Mean time of `frames` frames of the current view, ms (waits for the GPU each frame). */
    async measureFrameTime(frames = 20) {
        await this.gpu();
        return this.renderer.measure(this.view, frames);
    }

    // --- decoding → textures -------------------------------------------

    showDecoded(p) {
        const full = Array.from(this.decoder.volumeDims());
        this.volume = {
            source: "decoder",
            dims: p.dims,
            fullDims: full,
            spacing: Array.from(this.decoder.spacing()),
        };
        this.status.scale = p.level + 1;
        this.status.scales = p.scales;
        this.$("spinner").hidden = p.level + 1 >= p.scales;
        this.syncControls();
        this.timeChanged();
    }

    /** Points the renderer at time step view.t of the current volume. */
    timeChanged() {
        const v = this.volume;
        if (!v || !this.renderer) return this.requestRender();
        const steps = v.dims[3] ?? 1;
        this.view.t = Math.min(this.view.t, steps - 1);
        let texture;
        if (v.source === "decoder") {
            texture = this.decoder.texture(this.view.t);
        } else {
            const n = v.dims[0] * v.dims[1] * v.dims[2];
            texture = uploadVolume(this.renderer.device, v.data.subarray(n * this.view.t, n * (this.view.t + 1)), v.dims, v.range);
            v.texture?.destroy();
            v.texture = texture;
        }
        this.renderer.setVolume(texture, v.dims, v.fullDims, v.spacing);
        this.$("time").value = String(this.view.t);
        this.$("time-label").textContent = `t ${this.view.t + 1}/${steps}`;
        this.requestRender();
    }

    transferChanged() {
        this.renderer?.setTransferFunction(bakeTransfer(this.view.transfer));
        this.editor.set(this.view.transfer);
        this.requestRender();
    }

    // --- drawing --------------------------------------------------------

    resize() {
        // While the user drags on a slow GPU (a software one draws a 512²
        // frame in about a second), draw at half resolution; full after.
        const dpr = (window.devicePixelRatio || 1) * (this.lowRes ? 0.5 : 1);
        const w = Math.max(1, Math.round(this.canvas.clientWidth * dpr));
        const h = Math.max(1, Math.round(this.canvas.clientHeight * dpr));
        if (this.canvas.width !== w || this.canvas.height !== h) {
            this.canvas.width = w;
            this.canvas.height = h;
        }
        this.requestRender();
    }

    requestRender() {
        if (this.frameRequested || !this.renderer) return;
        this.frameRequested = true;
        requestAnimationFrame(() => {
            this.frameRequested = false;
            this.drawNow();
        });
    }

    drawNow() {
        if (!this.renderer) return;
        const t0 = performance.now();
        this.renderer.render(this.view);
        this.frame = this.renderer.device.queue.onSubmittedWorkDone().then(() => {
            this.status.frameMs = performance.now() - t0;
            this.updateStatus();
        });
    }

    /** Resolves once the current view is drawn on the GPU and the page has had a frame to show it. */
    async presented() {
        this.drawNow();
        await this.frame;
        await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
    }

    updateStatus() {
        const s = this.status;
        const parts = [];
        if (s.scales) parts.push(`scale ${s.scale} of ${s.scales}`);
        if (s.loaded) parts.push(s.total ? `${kb(s.loaded)} of ${kb(s.total)}` : kb(s.loaded));
        if (s.frameMs != null && this.volume) parts.push(`frame ${s.frameMs.toFixed(1)} ms`);
        if (s.error) parts.push(`error: ${s.error}`);
        this.$("status").textContent = parts.join(" · ") || "no archive";
    }

    showMessage(text) {
        const m = this.$("message");
        m.textContent = text;
        m.hidden = !text;
    }

    fail(message) {
        this.status.error = message;
        this.$("spinner").hidden = true;
        this.showMessage(message);
        this.updateStatus();
        this.emit("strata-error", { message });
    }

    emit(type, detail) {
        this.dispatchEvent(new CustomEvent(type, { detail, bubbles: true, composed: true }));
    }

    /** Called on each pointer or wheel step: low resolution while it lasts, if frames are slow. */
    interacting() {
        if (!this.lowRes && this.status.frameMs > 50) {
            this.lowRes = true;
            this.resize();
        }
        clearTimeout(this.lowResTimer);
        this.lowResTimer = setTimeout(() => {
            if (!this.lowRes) return;
            this.lowRes = false;
            this.resize();
        }, 300);
    }

    viewChanged() {
        this.requestRender();
        clearTimeout(this.viewTimer);
        this.viewTimer = setTimeout(() => this.emit("strata-view", { view: this.viewState }), 150);
    }

    // --- controls -------------------------------------------------------

    bindControls() {
        const on = (id, type, fn) => this.$(id).addEventListener(type, fn);
        on("mode", "change", (e) => {
            this.view.mode = e.target.value;
            this.syncControls();
            this.viewChanged();
        });
        on("cmap", "change", (e) => {
            this.view.transfer.colormap = e.target.value;
            this.transferChanged();
            this.viewChanged();
        });
        on("iso", "input", (e) => {
            this.view.iso = Number(e.target.value);
            this.viewChanged();
        });
        on("axis", "change", (e) => {
            this.view.slice.axis = e.target.value;
            this.viewChanged();
        });
        on("slice", "input", (e) => {
            this.view.slice.position = Number(e.target.value);
            this.viewChanged();
        });
        on("time", "input", (e) => {
            this.view.t = Number(e.target.value);
            this.timeChanged();
            this.viewChanged();
        });
        on("play", "click", () => this.togglePlay());
        on("reset", "click", () => {
            const d = defaultView();
            this.view.camera = d.camera;
            this.viewChanged();
        });
    }

    togglePlay() {
        if (this.playTimer) {
            clearInterval(this.playTimer);
            this.playTimer = null;
        } else {
            this.playTimer = setInterval(() => {
                const steps = this.volume?.dims[3] ?? 1;
                this.view.t = (this.view.t + 1) % steps;
                this.timeChanged();
            }, 400);
        }
        this.$("play").textContent = this.playTimer ? "❚❚" : "▶";
    }

    /** Controls follow the view and the volume (time slider only for 4D). */
    syncControls() {
        const v = this.view;
        this.$("mode").value = v.mode;
        this.$("cmap").value = v.transfer.colormap;
        this.$("iso").value = String(v.iso);
        this.$("axis").value = v.slice.axis;
        this.$("slice").value = String(v.slice.position);
        this.$("iso-group").hidden = v.mode !== "iso";
        this.$("slice-group").hidden = v.mode !== "slice";
        const steps = this.volume?.dims[3] ?? (this.decoder && this.decoder.scales() ? this.decoder.volumeDims()[3] : 1);
        this.$("time-group").hidden = !(steps > 1);
        this.$("time").max = String(Math.max(0, steps - 1));
        this.$("tf").hidden = v.mode !== "composite";
    }

    bindPointer() {
        const c = this.canvas;
        const pointers = new Map();
        let last = null;
        c.style.touchAction = "none";
        c.addEventListener("contextmenu", (e) => e.preventDefault());
        c.addEventListener("pointerdown", (e) => {
            c.setPointerCapture?.(e.pointerId);
            pointers.set(e.pointerId, { x: e.clientX, y: e.clientY });
            last = null;
        });
        const up = (e) => {
            pointers.delete(e.pointerId);
            last = null;
        };
        c.addEventListener("pointerup", up);
        c.addEventListener("pointercancel", up);
        c.addEventListener("pointermove", (e) => {
            if (!pointers.has(e.pointerId)) return;
            const prev = pointers.get(e.pointerId);
            pointers.set(e.pointerId, { x: e.clientX, y: e.clientY });
            const cam = this.view.camera;
            const height = Math.max(1, c.clientHeight);
            if (pointers.size >= 2) {
                // Two fingers: pinch zooms, moving together pans.
                const [a, b] = [...pointers.values()];
                const now = { d: Math.hypot(a.x - b.x, a.y - b.y), x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 };
                if (last) {
                    cam.distance = Math.min(50, Math.max(0.2, cam.distance * (last.d / Math.max(1, now.d))));
                    this.pan((now.x - last.x) / height, (now.y - last.y) / height);
                }
                last = now;
            } else {
                const dx = e.clientX - prev.x;
                const dy = e.clientY - prev.y;
                const panning = this.view.mode === "slice" || e.buttons & 6 || e.shiftKey;
                if (panning) {
                    this.pan(dx / height, dy / height);
                } else {
                    cam.yaw = (((cam.yaw - (dx * 180) / height) % 360) + 360) % 360;
                    cam.pitch = Math.min(89, Math.max(-89, cam.pitch + (dy * 180) / height));
                }
            }
            this.interacting();
            this.viewChanged();
        });
        c.addEventListener("wheel", (e) => {
            e.preventDefault();
            const cam = this.view.camera;
            cam.distance = Math.min(50, Math.max(0.2, cam.distance * Math.exp(e.deltaY * 0.001)));
            this.interacting();
            this.viewChanged();
        }, { passive: false });
    }

    /** Pans by a fraction of the canvas height, so the volume follows the pointer. */
    pan(fx, fy) {
        const cam = this.view.camera;
        const visible = visibleHeight(cam.distance);
        cam.pan = [
            Math.min(10, Math.max(-10, cam.pan[0] - fx * visible * (this.view.mode === "slice" ? -1 : 1))),
            Math.min(10, Math.max(-10, cam.pan[1] + fy * visible * (this.view.mode === "slice" ? -1 : 1))),
        ];
    }
}

if (!customElements.get("strata-viewer")) customElements.define("strata-viewer", StrataViewer);
