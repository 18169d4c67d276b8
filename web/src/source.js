// Where archive bytes come from, as async iterators of Uint8Array chunks in
// archive order: a streamed HTTP response, a Range reader that requests the
// header and then each section, an ArrayBuffer, or any ReadableStream.

/** A fetch that turns the browser's bare "Failed to fetch" into a reason. */
async function fetchOrExplain(url, init) {
    let response;
    try {
        response = await fetch(url, init);
    } catch (e) {
        if (e.name === "AbortError") throw e;
        const crossOrigin = typeof location !== "undefined" && url.origin !== location.origin;
        throw new Error(crossOrigin
            ? `could not fetch ${url.href}: it is on another origin (${url.origin}), and the server did not allow this page to read it (CORS: Access-Control-Allow-Origin), or did not answer`
            : `could not fetch ${url.href}: the server did not answer (${e.message})`);
    }
    if (!response.ok) {
        throw new Error(`could not fetch ${url.href}: HTTP ${response.status} ${response.statusText}`.trim());
    }
    return response;
}

export async function* readableChunks(stream) {
    const reader = stream.getReader();
    try {
        for (;;) {
            const { done, value } = await reader.read();
            if (done) return;
            yield value instanceof Uint8Array ? value : new Uint8Array(value);
        }
    } finally {
        reader.releaseLock();
    }
}

/** The whole response body, chunk by chunk as it arrives. `total` learns the length when the server says it. */
export async function* streamedChunks(url, { signal, total }) {
    const response = await fetchOrExplain(url, { signal });
    const length = Number(response.headers.get("content-length"));
    if (length > 0 && !response.headers.get("content-encoding")) total(length);
    if (!response.body) {
        yield new Uint8Array(await response.arrayBuffer());
        return;
    }
    yield* readableChunks(response.body);
}

async function range(url, start, end, signal) {
    const response = await fetchOrExplain(url, { signal, headers: { Range: `bytes=${start}-${end - 1}` } });
    if (response.status !== 206) return { full: response };
    return { bytes: new Uint8Array(await response.arrayBuffer()), response };
}

/**
 * Range mode: the fixed header, then header + section table, then each
 * section in table order, each its own request (so a viewer can stop after
 * the scales it needs). `headerLength(first80)` and `sections()` come from
 * the decoder, which has seen the bytes by the time they are asked for.
 * A server that ignores Range gets the whole body streamed instead.
 */
export async function* rangeChunks(url, { signal, total, headerLength, sections }) {
    const first = await range(url, 0, 80, signal);
    if (first.full) {
        if (first.full.body) yield* readableChunks(first.full.body);
        else yield new Uint8Array(await first.full.arrayBuffer());
        return;
    }
    const size = Number((first.response.headers.get("content-range") || "").split("/")[1]);
    if (size > 0) total(size);
    yield first.bytes;
    const length = headerLength(first.bytes);
    if (length > 80) yield (await range(url, 80, length, signal)).bytes;
    for (const s of sections()) {
        if (s.length === 0) continue;
        const part = await range(url, s.offset, s.offset + s.length, signal);
        if (part.full) throw new Error(`the server stopped answering Range requests at section ${s.kind} (offset ${s.offset})`);
        yield part.bytes;
        if (part.bytes.length < s.length) return; // truncated file: the decoder names what is missing
    }
}

/** An ArrayBuffer or typed array, in slices so a large one still shows progress. */
export async function* bufferChunks(buffer) {
    const bytes = buffer instanceof Uint8Array ? buffer : new Uint8Array(buffer.buffer ?? buffer, buffer.byteOffset ?? 0, buffer.byteLength);
    const step = 1 << 20;
    for (let i = 0; i < bytes.length; i += step) yield bytes.subarray(i, i + step);
}
