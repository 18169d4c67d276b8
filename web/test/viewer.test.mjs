// Browser tests of the viewer: Debian's headless Chromium, WebGPU on
// SwiftShader, an archive written by the encoder, served by test/server.mjs.
// Screenshots are saved in web/test-out/ to be looked at.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { startServer } from "./server.mjs";
import { DIST, SHOTS, makeFixtures, launch, openPage, waitEvent, shot, compare } from "./harness.mjs";

let fx, server, other, browser;
const figures = [];

before(async () => {
    fx = makeFixtures();
    server = await startServer({ dist: DIST, files: fx.dir });
    other = await startServer({ dist: DIST, files: fx.dir }); // another origin, without CORS
    browser = await launch();
});

after(async () => {
    await browser?.close();
    await server?.close();
    await other?.close();
    if (figures.length) {
        writeFileSync(join(SHOTS, "figures.csv"), "figure,value,unit\n" + figures.map((f) => f.join(",")).join("\n") + "\n");
        for (const [name, value, unit] of figures) console.log(`figure: ${name} = ${value} ${unit}`);
    }
});

const VIEW = "mode=composite&cam=30,20,4.2,0,0&cmap=bone&opacity=0,0;0.1,0;0.6,0.1;1,0.5";
const scaleEvents = (page) => page.evaluate(() => window.events.filter((e) => e.type === "strata-scale").map((e) => e.detail));
const section = (level) => fx.info.sections.find((s) => s.kind === "scale" && s.scale === level);

test("streams coarse to fine, and the last picture matches the CPU decode", async () => {
    const endOfFirst = section(0).offset + section(0).length;
    server.gate("g1", endOfFirst);
    const { page, logs } = await openPage(browser, `${server.origin}/#src=gated/phantom.strata%3Fgate%3Dg1&${VIEW}`);
    try {
        const header = await waitEvent(page, "e.type === 'strata-header'");
        assert.deepEqual(header.detail.dims, [64, 64, 64, 1]);
        assert.equal(header.detail.scales, 3);
        assert.equal(header.detail.bytes, fx.bytes);

        const first = await waitEvent(page, "e.type === 'strata-scale'");
        assert.equal(first.detail.index, 1);
        const coarse = await shot(page, "stream-scale1");
        server.release("g1");
        await waitEvent(page, "e.type === 'strata-scale' && e.detail.index === 3");
        const fine = await shot(page, "stream-scale3");

        const events = await scaleEvents(page);
        assert.deepEqual(events.map((e) => [e.index, e.of]), [[1, 3], [2, 3], [3, 3]], "scales arrive coarse to fine");
        assert.ok(events.every((e, i) => i === 0 || e.bytesLoaded >= events[i - 1].bytesLoaded));
        assert.equal(events[2].bytesLoaded, fx.bytes);

        const c = await compare(page, coarse, fine);
        console.log("coarse vs fine:", c);
        assert.ok(c.distinct > 0.05, `the first picture shows a volume (${c.distinct})`);
        assert.ok((await compare(page, fine)).distinct > 0.05, "the last picture shows a volume");
        assert.ok(c.mean > 0.5, `the finer scales change the picture (mean difference ${c.mean})`);

        // The CPU reference decode, drawn by the same renderer.
        const raw = readFileSync(join(fx.dir, "phantom.raw"));
        await page.evaluate(async ({ b64, range }) => {
            const bytes = Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0));
            const v = document.querySelector("strata-viewer");
            await v.showVolume({ data: new Float32Array(bytes.buffer), dims: [64, 64, 64, 1], range });
        }, { b64: raw.toString("base64"), range: fx.info.value_range });
        const cpu = await shot(page, "cpu-decode");
        const frame = await page.evaluate(async () => {
            const v = document.querySelector("strata-viewer");
            return { filterable: v.renderer.filterable, ms: await v.measureFrameTime(3) };
        });
        console.log("frame", frame);
        const d = await compare(page, fine, cpu);
        console.log("GPU decode vs CPU decode:", d);
        figures.push(["gpu_vs_cpu_mean_abs_levels", d.mean.toFixed(4), "of 255"], ["gpu_vs_cpu_max_levels", d.max, "of 255"]);
        // GPU and CPU decodes differ by < 1e-5 of the range (the decoder's
        // own tests); through a 256-entry transfer function that moves a
        // pixel by at most a level or two, and only where early ray
        // termination or a rounding boundary flips.
        assert.ok(d.mean < 0.05 && d.off < 0.001, `last picture vs CPU decode: ${JSON.stringify(d)}`);
    } finally {
        if (process.env.STRATA_DEBUG) console.log(logs.join("\n"));
        await page.close();
    }
});
