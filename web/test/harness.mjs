// What the browser tests share: the encoder-written fixtures, headless
// Chromium with WebGPU on SwiftShader (Debian's /usr/bin/chromium, flags
// from shared/BROWSER.md), and pixel statistics of screenshots.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const DIST = join(ROOT, "web", "dist");
/** Screenshots land here, to be looked at (git-ignored). */
export const SHOTS = process.env.STRATA_SHOTS ?? join(ROOT, "web", "test-out");

export const CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-quic",
    "--enable-unsafe-webgpu", "--enable-features=Vulkan", "--use-vulkan=swiftshader", "--use-angle=swiftshader",
];

/** The `strata` binary: $STRATA_BIN, else the debug build (built if missing). */
export function strataBinary() {
    if (process.env.STRATA_BIN) return process.env.STRATA_BIN;
    const target = process.env.CARGO_TARGET_DIR ?? join(ROOT, "target");
    const bin = join(target, "debug", "strata");
    // The test profile (opt-level 2, as cargo test builds it): burn unoptimized encodes 20× slower.
    if (!existsSync(bin)) execFileSync("cargo", ["build", "-p", "strata", "--profile", "test"], { cwd: ROOT, stdio: "inherit" });
    return bin;
}

/** The model kinds the browser tests run on: `strata encode` options for each, and the file-name suffix. */
export const KINDS = {
    siren: { suffix: "", encode: ["--model", "siren", "--bits", "8"] },
    // Few steps: a test fixture, not a quality figure (that is bench rd's).
    grid: { suffix: "-grid", encode: ["--model", "grid", "--grid-steps", "150"] },
};

/**
 * Encoder-written archives, for each of KINDS: the 64³ Shepp–Logan phantom
 * (three scales; `phantom${suffix}.strata`), its CPU reference decode (raw
 * float32) and its section table from `strata info --json`; and a 4D one
 * (`blob4d${suffix}.strata`).
 */
export function makeFixtures() {
    if (!existsSync(join(DIST, "index.html"))) {
        throw new Error("web/dist is not built: run `npm run build` (scripts/test does) before the browser tests");
    }
    const dir = mkdtempSync(join(tmpdir(), "strata-web-"));
    const bin = strataBinary();
    const run = (...args) => execFileSync(bin, args, { cwd: dir, stdio: ["ignore", "pipe", "inherit"] }).toString();
    run("phantom", "--size", "64", "phantom.nii.gz");
    // A 4D volume: a Gaussian blob circling over three time steps (32³ × 3).
    const n = 32;
    const blob = new Float32Array(n * n * n * 3);
    for (let t = 0; t < 3; t++) {
        const [cx, cy] = [0.5 * Math.cos(2.1 * t), 0.5 * Math.sin(2.1 * t)];
        for (let z = 0; z < n; z++) for (let y = 0; y < n; y++) for (let x = 0; x < n; x++) {
            const [u, v, w] = [x, y, z].map((c) => (2 * c) / (n - 1) - 1);
            blob[x + n * (y + n * (z + n * t))] = Math.exp(-((u - cx) ** 2 + (v - cy) ** 2 + w ** 2) / 0.08);
        }
    }
    writeFileSync(join(dir, "blob4d.raw"), Buffer.from(blob.buffer));
    writeFileSync(join(dir, "blob4d.json"), JSON.stringify({ dims: [n, n, n, 3], dtype: "float32", endian: "little", file: "blob4d.raw" }));
    const archives = {};
    for (const [kind, { suffix, encode }] of Object.entries(KINDS)) {
        const name = `phantom${suffix}.strata`;
        run("encode", "phantom.nii.gz", "-o", name, ...encode, "--quiet");
        run("decode", name, "-o", `phantom${suffix}.raw`);
        run("encode", "blob4d.raw", "-o", `blob4d${suffix}.strata`, ...encode, "--quiet");
        const info = JSON.parse(run("info", name, "--json"));
        archives[kind] = { kind, suffix, name, info, bytes: readFileSync(join(dir, name)).length };
    }
    mkdirSync(SHOTS, { recursive: true });
    return { dir, bin, archives, ...archives.siren };
}

export async function launch() {
    return chromium.launch({
        executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
        headless: true,
        // playwright gives the browser a fresh user-data dir of its own.
        args: CHROMIUM_ARGS,
    });
}

/** A 512×512 page that records the viewer's events in window.events. */
export async function openPage(browser, url) {
    const page = await browser.newPage({ viewport: { width: 512, height: 600 }, deviceScaleFactor: 1 });
    const logs = [];
    page.on("console", (m) => logs.push(`${m.type()}: ${m.text()}`));
    page.on("pageerror", (e) => logs.push(`pageerror: ${e.message}`));
    await page.addInitScript(() => {
        window.events = [];
        for (const type of ["strata-header", "strata-scale", "strata-error"]) {
            document.addEventListener(type, (e) => window.events.push({ type, detail: e.detail, at: performance.now() }));
        }
        // Grid scales' latents: kept as a fingerprint (CRC-32 of the i32s,
        // little-endian, as `strata info --json` gives), not the array.
        const table = Array.from({ length: 256 }, (_, n) => {
            let c = n;
            for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
            return c >>> 0;
        });
        const crc32 = (bytes) => {
            let c = 0xffffffff;
            for (let i = 0; i < bytes.length; i++) c = table[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
            return (c ^ 0xffffffff) >>> 0;
        };
        document.addEventListener("strata-latents", (e) => {
            const { index, latents, ms, where } = e.detail;
            const bytes = new Uint8Array(latents.buffer, latents.byteOffset, latents.byteLength);
            window.events.push({ type: "strata-latents", detail: { index, count: latents.length, crc32: crc32(bytes), ms, where }, at: performance.now() });
        });
    });
    await page.goto(url);
    await page.addStyleTag({ content: "strata-viewer { flex: none !important; width: 512px !important; height: 512px !important; }" });
    return { page, logs };
}

/** Waits until window.events has an event matching `test` (given as a string of JS on `e`). */
export async function waitEvent(page, predicate, timeout = 60000) {
    const handle = await page.waitForFunction(
        (src) => window.events.find(new Function("e", `return ${src}`)),
        predicate,
        { timeout, polling: 50 },
    );
    return handle.jsonValue();
}

/** The viewer's canvas alone (controls hidden), as PNG; saved as SHOTS/name.png. */
export async function shot(page, name) {
    await page.evaluate(() => document.querySelector("strata-viewer").setAttribute("nocontrols", ""));
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
    const png = await page.locator("strata-viewer").screenshot();
    await page.evaluate(() => document.querySelector("strata-viewer").removeAttribute("nocontrols"));
    writeFileSync(join(SHOTS, `${name}.png`), png);
    return png;
}

/**
 * Statistics of one screenshot, or of two compared, decoded in the page:
 * `distinct` (pixels differing from the top-left background pixel by more
 * than 8 levels in a channel), and for pairs the mean absolute difference
 * per channel, the largest, and the fraction of pixels off by more than 2.
 */
export async function compare(page, a, b = null) {
    return page.evaluate(async ([a64, b64]) => {
        const decode = async (s) => {
            const bytes = Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
            const bmp = await createImageBitmap(new Blob([bytes], { type: "image/png" }));
            const c = new OffscreenCanvas(bmp.width, bmp.height);
            const ctx = c.getContext("2d");
            ctx.drawImage(bmp, 0, 0);
            return ctx.getImageData(0, 0, bmp.width, bmp.height).data;
        };
        const pa = await decode(a64);
        let distinct = 0;
        for (let i = 0; i < pa.length; i += 4) {
            if ([0, 1, 2].some((k) => Math.abs(pa[i + k] - pa[k]) > 8)) distinct++;
        }
        const out = { pixels: pa.length / 4, distinct: distinct / (pa.length / 4) };
        if (b64) {
            const pb = await decode(b64);
            let sum = 0, max = 0, off = 0;
            for (let i = 0; i < pa.length; i += 4) {
                let worst = 0;
                for (let k = 0; k < 3; k++) {
                    const d = Math.abs(pa[i + k] - pb[i + k]);
                    sum += d;
                    worst = Math.max(worst, d);
                }
                max = Math.max(max, worst);
                if (worst > 2) off++;
            }
            Object.assign(out, { mean: sum / (3 * pa.length / 4), max, off: off / (pa.length / 4) });
        }
        return out;
    }, [Buffer.from(a).toString("base64"), b ? Buffer.from(b).toString("base64") : null]);
}
