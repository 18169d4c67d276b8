// `npm run timing -- ARCHIVE [CSV]`: the viewer's decode of one archive in
// headless Chromium (SwiftShader WebGPU), three times from the test server:
// the time to the last scale, each grid scale's entropy decoding in the
// Web Worker and the GPU work after it (latents in → scale on screen), the
// page's longest main-thread stall meanwhile; then once from the slow
// server (2 KB every 40 ms): bytes and time to the first picture. Prints
// the figures and appends them to CSV (default web/test-out/timing.csv).
import { appendFileSync, copyFileSync, existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { startServer } from "./server.mjs";
import { DIST, SHOTS, launch, openPage, waitEvent, shot } from "./harness.mjs";

const [archive, csv = join(SHOTS, "timing.csv")] = process.argv.slice(2);
if (!archive || !existsSync(archive)) {
    console.error("usage: npm run timing -- ARCHIVE.strata [CSV]");
    process.exit(2);
}
const dir = mkdtempSync(join(tmpdir(), "strata-timing-"));
const name = basename(archive);
copyFileSync(archive, join(dir, name));
const VIEW = "mode=slice&slice=z,0.5&cmap=bone";

const server = await startServer({ dist: DIST, files: dir });
const browser = await launch();
const rows = [];
const record = (figure, value, unit) => {
    rows.push([name, figure, value, unit]);
    console.log(`${figure} = ${value} ${unit}`);
};

// Ticks every 10 ms on the page: the longest gap is the longest stall.
const STALL_PROBE = () => {
    window.stall = { last: performance.now(), worst: 0 };
    setInterval(() => {
        const now = performance.now();
        window.stall.worst = Math.max(window.stall.worst, now - window.stall.last);
        window.stall.last = now;
    }, 10);
};

async function load(route) {
    const { page, logs } = await openPage(browser, `${server.origin}/#src=${route}/${name}&${VIEW}`);
    await page.evaluate(STALL_PROBE);
    const header = await waitEvent(page, "e.type === 'strata-header'", 120000);
    const scales = header.detail.scales;
    await waitEvent(page, `e.type === 'strata-scale' && e.detail.index === ${scales}`, 300000);
    const result = await page.evaluate(() => ({ events: window.events, stall: window.stall.worst }));
    return { page, logs, scales, ...result };
}

try {
    for (let run = 1; run <= 3; run++) {
        const { page, events, stall, scales } = await load("archive");
        const scale = events.filter((e) => e.type === "strata-scale");
        const latents = events.filter((e) => e.type === "strata-latents");
        const suffix = `_run${run}`;
        record(`full_decode_ms${suffix}`, scale.at(-1).detail.ms.toFixed(0), "ms");
        const entropy = latents.reduce((a, e) => a + e.detail.ms, 0);
        record(`entropy_ms_total${suffix}`, entropy.toFixed(0), "ms");
        for (const l of latents) {
            const shown = scale.find((s) => s.detail.index === l.detail.index);
            record(`scale${l.detail.index}_entropy_ms${suffix}`, l.detail.ms.toFixed(0), `ms (${l.detail.count} latents; ${l.detail.where})`);
            record(`scale${l.detail.index}_gpu_to_screen_ms${suffix}`, (shown.at - l.at).toFixed(0), "ms");
        }
        record(`longest_main_thread_stall_ms${suffix}`, stall.toFixed(0), "ms");
        if (run === 1) await shot(page, `timing-${name}`);
        await page.close();
        if (scales !== scale.length) throw new Error(`${scale.length} of ${scales} scales`);
    }
    const { page, events } = await load("slow");
    const first = events.find((e) => e.type === "strata-scale");
    record("slow_first_picture_bytes", first.detail.bytesLoaded, "bytes");
    record("slow_first_picture_ms", first.detail.ms.toFixed(0), "ms");
    record("slow_last_picture_ms", events.filter((e) => e.type === "strata-scale").at(-1).detail.ms.toFixed(0), "ms");
    record("archive_bytes", first.detail.bytesTotal, "bytes");
    await page.close();
} finally {
    await browser.close();
    await server.close();
}
if (!existsSync(csv)) writeFileSync(csv, "archive,figure,value,unit\n");
appendFileSync(csv, rows.map((r) => r.join(",")).join("\n") + "\n");
console.log(`csv ${csv}`);
