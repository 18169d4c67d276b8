// Browser tests of the viewer: Debian's headless Chromium, WebGPU on
// SwiftShader, an archive written by the encoder, served by test/server.mjs.
// Screenshots are saved in web/test-out/ to be looked at.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { startServer } from "./server.mjs";
import { DIST, SHOTS, KINDS, makeFixtures, launch, openPage, waitEvent, shot, compare } from "./harness.mjs";

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

// The archive tests run on each model kind (SIREN blocks, latent grids):
// the same streaming, damage and link behaviour is expected of both.
for (const kind of Object.keys(KINDS)) {
const A = () => fx.archives[kind];
const section = (level) => A().info.sections.find((s) => s.kind === "scale" && s.scale === level);
const tag = (name) => `${name}${KINDS[kind].suffix}`;
test(`${kind}: streams coarse to fine, and the last picture matches the CPU decode`, async () => {
    const endOfFirst = section(0).offset + section(0).length;
    server.gate(tag("g1"), endOfFirst);
    const { page, logs } = await openPage(browser, `${server.origin}/#src=gated/${A().name}%3Fgate%3D${tag("g1")}&${VIEW}`);
    try {
        const header = await waitEvent(page, "e.type === 'strata-header'");
        assert.deepEqual(header.detail.dims, [64, 64, 64, 1]);
        assert.equal(header.detail.scales, 3);
        assert.equal(header.detail.bytes, A().bytes);

        const first = await waitEvent(page, "e.type === 'strata-scale'");
        assert.equal(first.detail.index, 1);
        const coarse = await shot(page, tag("stream-scale1"));
        server.release(tag("g1"));
        await waitEvent(page, "e.type === 'strata-scale' && e.detail.index === 3");
        const fine = await shot(page, tag("stream-scale3"));

        const events = await scaleEvents(page);
        assert.deepEqual(events.map((e) => [e.index, e.of]), [[1, 3], [2, 3], [3, 3]], "scales arrive coarse to fine");
        assert.ok(events.every((e, i) => i === 0 || e.bytesLoaded >= events[i - 1].bytesLoaded));
        assert.equal(events[2].bytesLoaded, A().bytes);

        const c = await compare(page, coarse, fine);
        console.log("coarse vs fine:", c);
        assert.ok(c.distinct > 0.05, `the first picture shows a volume (${c.distinct})`);
        assert.ok((await compare(page, fine)).distinct > 0.05, "the last picture shows a volume");
        assert.ok(c.mean > 0.5, `the finer scales change the picture (mean difference ${c.mean})`);

        // The CPU reference decode, drawn by the same renderer.
        const raw = readFileSync(join(fx.dir, `phantom${KINDS[kind].suffix}.raw`));
        await page.evaluate(async ({ b64, range }) => {
            const bytes = Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0));
            const v = document.querySelector("strata-viewer");
            await v.showVolume({ data: new Float32Array(bytes.buffer), dims: [64, 64, 64, 1], range });
        }, { b64: raw.toString("base64"), range: A().info.value_range });
        const cpu = await shot(page, tag("cpu-decode"));
        const frame = await page.evaluate(async () => {
            const v = document.querySelector("strata-viewer");
            return { filterable: v.renderer.filterable, ms: await v.measureFrameTime(3) };
        });
        console.log("frame", frame);
        const d = await compare(page, fine, cpu);
        console.log("GPU decode vs CPU decode:", d);
        figures.push([tag("gpu_vs_cpu_mean_abs_levels"), d.mean.toFixed(4), "of 255"], [tag("gpu_vs_cpu_max_levels"), d.max, "of 255"]);
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

test(`${kind}: a slow server: the first picture comes before the download ends`, async () => {
    const { page } = await openPage(browser, `${server.origin}/#src=slow/${A().name}&${VIEW}`);
    try {
        const first = await waitEvent(page, "e.type === 'strata-scale'");
        const coarse = await shot(page, tag("slow-first-picture"));
        const { bytesLoaded, bytesTotal, ms } = first.detail;
        figures.push([tag("first_picture_bytes"), bytesLoaded, "bytes"], [tag("first_picture_ms"), ms.toFixed(0), "ms"],
            [tag("archive_bytes"), bytesTotal, "bytes"]);
        assert.ok(bytesLoaded < bytesTotal / 2, `first picture after ${bytesLoaded} of ${bytesTotal} bytes`);
        assert.ok((await compare(page, coarse)).distinct > 0.05, "the first picture is not blank");
        const status = await page.evaluate(() => document.querySelector("strata-viewer").shadowRoot.getElementById("status").textContent);
        assert.match(status, /scale \d of 3/);
        const last = await waitEvent(page, "e.type === 'strata-scale' && e.detail.index === 3");
        assert.ok(last.at > first.at);
        figures.push([tag("slow_download_ms"), last.detail.ms.toFixed(0), "ms"]);
    } finally {
        await page.close();
    }
});

test(`${kind}: a truncated archive: the scales that arrived stay on screen, and the error names what is missing`, async () => {
    const cut = section(2).offset + Math.floor(section(2).length / 2);
    const { page } = await openPage(browser, `${server.origin}/#src=truncated/${A().name}%3Fat%3D${cut}&${VIEW}`);
    try {
        const error = await waitEvent(page, "e.type === 'strata-error'");
        const events = await scaleEvents(page);
        assert.deepEqual(events.map((e) => e.index), [1, 2], "the two complete scales were shown");
        assert.match(error.detail.message, /truncat|missing|ended|incomplete/i);
        console.log("truncated:", error.detail.message);
        const picture = await shot(page, tag("truncated"));
        assert.ok((await compare(page, picture)).distinct > 0.05, "scale 2 is still shown");
        const banner = await page.evaluate(() => document.querySelector("strata-viewer").shadowRoot.getElementById("message").textContent);
        assert.equal(banner, error.detail.message);
    } finally {
        await page.close();
    }
});

test(`${kind}: a corrupt archive: an error naming the damaged section, no hang`, async () => {
    const at = section(1).offset + Math.floor(section(1).length / 2);
    const { page } = await openPage(browser, `${server.origin}/#src=corrupt/${A().name}%3Fat%3D${at}&${VIEW}`);
    try {
        const error = await waitEvent(page, "e.type === 'strata-error'", 30000);
        console.log("corrupt:", error.detail.message);
        assert.match(error.detail.message, /section 1|checksum|CRC/i);
        const events = await scaleEvents(page);
        assert.deepEqual(events.map((e) => e.index), [1], "only the scale before the damage");
    } finally {
        await page.close();
    }
});

test(`${kind}: a link with a saved view restores camera, mode and transfer function`, async () => {
    const saved = "mode=iso&cam=120,35,3.6,0.1,-0.05&cmap=hot&opacity=0,0;0.3,0.2;1,0.9&iso=0.3&slice=y,0.25&t=0";
    const { page } = await openPage(browser, `${server.origin}/#src=archive/${A().name}&${saved}`);
    try {
        await waitEvent(page, "e.type === 'strata-scale' && e.detail.index === 3");
        const state = await page.evaluate(() => {
            const v = document.querySelector("strata-viewer");
            const $ = (id) => v.shadowRoot.getElementById(id).value;
            return { view: v.viewState, link: v.link(), controls: { mode: $("mode"), cmap: $("cmap"), iso: $("iso") } };
        });
        assert.equal(state.view.mode, "iso");
        assert.deepEqual(state.view.camera, { yaw: 120, pitch: 35, distance: 3.6, pan: [0.1, -0.05] });
        assert.equal(state.view.transfer.colormap, "hot");
        assert.deepEqual(state.view.transfer.opacity, [[0, 0], [0.3, 0.2], [1, 0.9]]);
        assert.equal(state.view.iso, 0.3);
        assert.deepEqual(state.view.slice, { axis: "y", position: 0.25 });
        assert.deepEqual(state.controls, { mode: "iso", cmap: "hot", iso: "0.3" });
        // The element's own link reopens the same view.
        const params = new URLSearchParams(new URL(state.link).hash.slice(1));
        assert.equal(params.get("src"), `archive/${A().name}`);
        assert.equal(params.get("cam"), "120,35,3.6,0.1,-0.05");
        assert.equal(params.get("opacity"), "0,0;0.3,0.2;1,0.9");
        const iso = await shot(page, tag("link-iso"));
        assert.ok((await compare(page, iso)).distinct > 0.05);

        // A user edit lands in the address bar (for copying).
        await page.evaluate(() => {
            const m = document.querySelector("strata-viewer").shadowRoot.getElementById("mode");
            m.value = "mip";
            m.dispatchEvent(new Event("change"));
        });
        await page.waitForFunction(() => location.hash.includes("mode=mip"), null, { timeout: 5000 });
        const mip = await shot(page, tag("link-mip"));
        assert.ok((await compare(page, iso, mip)).mean > 0.5, "MIP differs from the isosurface");
    } finally {
        await page.close();
    }
});

test(`${kind}: Range mode requests the header, then each section, and shows the same picture`, async () => {
    const before = server.requests.length;
    const { page } = await openPage(browser, `${server.origin}/#src=archive/${A().name}&range=1&${VIEW}`);
    try {
        await waitEvent(page, "e.type === 'strata-scale' && e.detail.index === 3");
        const ranges = server.requests.slice(before).filter((r) => r.path === `/archive/${A().name}`).map((r) => r.range);
        const sections = A().info.sections.map((s) => `bytes=${s.offset}-${s.offset + s.length - 1}`);
        assert.deepEqual(ranges, ["bytes=0-79", `bytes=80-${A().info.header_bytes - 1}`, ...sections]);
        const ranged = await shot(page, tag("range-final"));
        const streamed = readFileSync(join(SHOTS, `${tag("stream-scale3")}.png`));
        const d = await compare(page, ranged, streamed);
        assert.ok(d.mean < 0.05, `Range vs streamed: ${JSON.stringify(d)}`);
    } finally {
        await page.close();
    }
});

test(`${kind}: a 4D archive: the time slider shows each time step`, async () => {
    const { page } = await openPage(browser, `${server.origin}/#src=archive/blob4d${KINDS[kind].suffix}.strata&mode=mip&cmap=inferno&cam=0,60,4.2,0,0`);
    try {
        const header = await waitEvent(page, "e.type === 'strata-header'");
        assert.deepEqual(header.detail.dims, [32, 32, 32, 3]);
        await waitEvent(page, "e.type === 'strata-scale' && e.detail.index === 3");
        const shots = [];
        for (const t of [0, 1, 2]) {
            await page.evaluate(async (t) => {
                const v = document.querySelector("strata-viewer");
                const slider = v.shadowRoot.getElementById("time");
                slider.value = String(t);
                slider.dispatchEvent(new Event("input"));
                await v.presented();
            }, t);
            shots.push(await shot(page, tag(`blob4d-t${t}`)));
        }
        const ui = await page.evaluate(() => {
            const r = document.querySelector("strata-viewer").shadowRoot;
            return { hidden: r.getElementById("time-group").hidden, label: r.getElementById("time-label").textContent };
        });
        assert.deepEqual(ui, { hidden: false, label: "t 3/3" });
        for (const [a, b] of [[0, 1], [1, 2], [0, 2]]) {
            const d = await compare(page, shots[a], shots[b]);
            assert.ok(d.distinct > 0.01 && d.mean > 0.5, `t=${a} and t=${b} differ: ${JSON.stringify(d)}`);
        }
        await page.waitForFunction(() => location.hash.includes("t=2"), null, { timeout: 5000 });
    } finally {
        await page.close();
    }
});

}

test("grid: the page decodes exactly the latents the native decoder does, in a Web Worker", async () => {
    const grid = fx.archives.grid;
    const { page, logs } = await openPage(browser, `${server.origin}/#src=archive/${grid.name}&${VIEW}`);
    try {
        await waitEvent(page, `e.type === 'strata-scale' && e.detail.index === ${grid.info.scales}`);
        const got = await page.evaluate(() => window.events.filter((e) => e.type === "strata-latents").map((e) => e.detail));
        const native = grid.info.sections.filter((s) => s.kind === "scale").map((s) => ({ index: s.scale + 1, count: s.latent_count, crc32: s.latents_crc32 }));
        assert.equal(native.length, grid.info.scales);
        assert.ok(native.every((n) => n.count > 0 && Number.isInteger(n.crc32)), JSON.stringify(native));
        assert.deepEqual(got.map(({ index, count, crc32 }) => ({ index, count, crc32 })), native, "wasm latents = native latents");
        assert.ok(got.every((g) => g.where === "worker"), `decoded in the worker: ${JSON.stringify(got)}`);
        for (const g of got) figures.push([`grid_entropy_ms_scale${g.index}`, g.ms.toFixed(1), "ms"]);
    } finally {
        if (process.env.STRATA_DEBUG) console.log(logs.join("\n"));
        await page.close();
    }
});

test("a link with a script in its parameters runs nothing", async () => {
    const evil = new URLSearchParams({
        src: "javascript:window.pwned=1",
        mode: '<img src=x onerror="window.pwned=2">',
        cmap: "</style><script>window.pwned=3</script>",
        opacity: "0,0;1,alert(1)",
    });
    const { page } = await openPage(browser, `${server.origin}/#${evil}`);
    let dialog = false;
    page.on("dialog", (d) => {
        dialog = true;
        d.dismiss();
    });
    try {
        const error = await waitEvent(page, "e.type === 'strata-error'", 15000);
        assert.match(error.detail.message, /refused the archive address: javascript:/);
        await page.waitForTimeout(300);
        const result = await page.evaluate(() => ({
            pwned: window.pwned ?? null,
            images: document.querySelectorAll("img").length + document.querySelector("strata-viewer").shadowRoot.querySelectorAll("img, script").length,
            scripts: document.querySelectorAll("script").length,
            mode: document.querySelector("strata-viewer").viewState.mode,
            notice: document.getElementById("notice").textContent,
        }));
        assert.equal(result.pwned, null);
        assert.equal(dialog, false);
        assert.equal(result.images, 0);
        assert.equal(result.scripts, 1, "only the page's own script");
        assert.equal(result.mode, "composite", "the bad mode was refused");
        assert.match(result.notice, /javascript:/);
    } finally {
        await page.close();
    }
});

test("an archive on another origin without CORS: a clear error", async () => {
    const { page } = await openPage(browser, `${server.origin}/#src=${encodeURIComponent(`${other.origin}/archive/phantom.strata`)}`);
    try {
        const error = await waitEvent(page, "e.type === 'strata-error'", 15000);
        console.log("cross-origin:", error.detail.message);
        assert.match(error.detail.message, /CORS/);
        assert.match(error.detail.message, new RegExp(other.origin.replace(/[.:/]/g, "\\$&")));
    } finally {
        await page.close();
    }
});

test("frame time at 512×512, each mode", async () => {
    const { page } = await openPage(browser, `${server.origin}/#src=archive/phantom.strata&${VIEW}`);
    try {
        await waitEvent(page, "e.type === 'strata-scale' && e.detail.index === 3");
        for (const mode of ["composite", "mip", "iso", "slice"]) {
            const ms = await page.evaluate(async (mode) => {
                const v = document.querySelector("strata-viewer");
                v.viewState = { ...v.viewState, mode };
                return v.measureFrameTime(3);
            }, mode);
            figures.push([`frame_ms_512_${mode}`, ms.toFixed(1), "ms"]);
            await shot(page, `mode-${mode}`);
        }
        const size = await page.evaluate(() => {
            const c = document.querySelector("strata-viewer").shadowRoot.getElementById("canvas");
            return [c.width, c.height];
        });
        assert.deepEqual(size, [512, 512]);
    } finally {
        await page.close();
    }
});

test("without WebGPU: a message, not a blank canvas", async () => {
    const page = await browser.newPage({ viewport: { width: 512, height: 600 } });
    try {
        await page.addInitScript(() => Object.defineProperty(Navigator.prototype, "gpu", { get: () => undefined }));
        await page.goto(`${server.origin}/#src=archive/phantom.strata`);
        await page.waitForFunction(() => document.querySelector("strata-viewer")?.shadowRoot.getElementById("message").textContent, null, { timeout: 15000 });
        const text = await page.evaluate(() => document.querySelector("strata-viewer").shadowRoot.getElementById("message").textContent);
        assert.match(text, /WebGPU is not available/);
        await page.screenshot({ path: join(SHOTS, "no-webgpu.png") });
    } finally {
        await page.close();
    }
});

test("`strata view` serves the viewer and the archive", async () => {
    const child = spawn(fx.bin, ["view", join(fx.dir, "phantom.strata"), "--port", "0", "--web", DIST], { stdio: ["ignore", "pipe", "pipe"] });
    try {
        const url = await new Promise((resolve, reject) => {
            let out = "";
            child.stdout.on("data", (d) => {
                out += d;
                const m = /(http:\/\/127\.0\.0\.1:\d+\/\S*)/.exec(out);
                if (m) resolve(m[1]);
            });
            child.on("exit", (code) => reject(new Error(`strata view exited with ${code}`)));
            setTimeout(() => reject(new Error(`strata view printed no URL: ${out}`)), 30000);
        });
        const { page } = await openPage(browser, `${url}&${VIEW}`);
        try {
            const last = await waitEvent(page, "e.type === 'strata-scale' && e.detail.index === 3");
            assert.equal(last.detail.bytesLoaded, fx.bytes);
            const served = await shot(page, "strata-view");
            const d = await compare(page, served, readFileSync(join(SHOTS, "stream-scale3.png")));
            assert.ok(d.mean < 0.05, `strata view vs the test server: ${JSON.stringify(d)}`);
        } finally {
            await page.close();
        }
    } finally {
        child.kill();
    }
});

test("mouse: drag orbits, wheel zooms, shift-drag pans, the opacity editor adds points", async () => {
    const { page } = await openPage(browser, `${server.origin}/#src=archive/phantom.strata&${VIEW}`);
    try {
        await waitEvent(page, "e.type === 'strata-scale' && e.detail.index === 3");
        const state = () => page.evaluate(() => document.querySelector("strata-viewer").viewState);
        const before = await state();
        await page.mouse.move(256, 256);
        await page.mouse.down();
        await page.mouse.move(306, 236, { steps: 5 });
        await page.mouse.up();
        const orbited = await state();
        assert.notEqual(orbited.camera.yaw, before.camera.yaw);
        assert.notEqual(orbited.camera.pitch, before.camera.pitch);
        await page.mouse.wheel(0, 300);
        await page.waitForTimeout(100);
        const zoomed = await state();
        assert.ok(zoomed.camera.distance > orbited.camera.distance, "wheel down moves away");
        await page.keyboard.down("Shift");
        await page.mouse.move(256, 256);
        await page.mouse.down();
        await page.mouse.move(286, 256, { steps: 3 });
        await page.mouse.up();
        await page.keyboard.up("Shift");
        const panned = await state();
        assert.ok(panned.camera.pan[0] < 0, `dragging right moves the volume right (${panned.camera.pan})`);
        // The editor is 256×64 at the bottom-left; a press between points adds one.
        const box = await page.locator("strata-viewer").evaluate((v) => {
            const r = v.shadowRoot.getElementById("tf").getBoundingClientRect();
            return { x: r.x, y: r.y, w: r.width, h: r.height };
        });
        await page.mouse.click(box.x + 0.8 * box.w, box.y + 0.1 * box.h);
        const edited = await state();
        assert.equal(edited.transfer.opacity.length, before.transfer.opacity.length + 1);
        await page.waitForFunction(() => location.hash.includes("opacity=") && location.hash.split("opacity=")[1].split("&")[0].split("%3B").length === 5, null, { timeout: 5000 });
        await shot(page, "edited");
    } finally {
        await page.close();
    }
});
