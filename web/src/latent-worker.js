// The Web Worker that entropy-decodes grid scales' latents (the CPU-heavy
// half of a grid scale) with the same wasm module as the page, so the page
// stays responsive while a large scale decodes. Message in:
// { id, header, index, section } (from StrataDecoder.pendingLatents());
// out: { id, latents: Int32Array (transferred), ms } or { id, error }.
import init, { decodeGridLatents } from "../pkg/strata_decoder.js";

const ready = init({ module_or_path: new URL("strata_decoder_bg.wasm", import.meta.url) });

self.onmessage = async ({ data: { id, header, index, section } }) => {
    try {
        await ready;
        const started = performance.now();
        const latents = decodeGridLatents(header, index, section);
        self.postMessage({ id, latents, ms: performance.now() - started }, [latents.buffer]);
    } catch (e) {
        self.postMessage({ id, error: e?.message ?? String(e) });
    }
};
