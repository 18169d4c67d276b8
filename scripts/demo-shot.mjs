// The demo's first picture, as a newcomer sees it: opens a viewer URL (what
// `strata view` / scripts/demo prints) in headless Debian Chromium with
// WebGPU on SwiftShader (the browser tests' flags), waits for the last
// scale, and saves a screenshot of the page.
//
//   node scripts/demo-shot.mjs URL [OUT.png] [WIDTHxHEIGHT]
//
// Needs `npm ci` (playwright-core) and /usr/bin/chromium (scripts/setup).
import { CHROMIUM_ARGS } from "../web/test/harness.mjs";
import { chromium } from "playwright-core";

const [url, out = "demo-shot.png", size = "960x720"] = process.argv.slice(2);
if (!url) {
    console.error("usage: node scripts/demo-shot.mjs URL [OUT.png] [WIDTHxHEIGHT]");
    process.exit(2);
}
const [width, height] = size.split("x").map(Number);

const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: CHROMIUM_ARGS,
});
try {
    const page = await browser.newPage({ viewport: { width, height }, deviceScaleFactor: 1 });
    page.on("pageerror", (e) => console.error(`pageerror: ${e.message}`));
    await page.addInitScript(() => {
        window.scales = [];
        window.failures = [];
        document.addEventListener("strata-scale", (e) => window.scales.push(e.detail));
        document.addEventListener("strata-error", (e) => window.failures.push(e.detail.message));
    });
    const start = Date.now();
    await page.goto(url);
    await page.waitForFunction(
        () => window.failures.length > 0 || window.scales.some((s) => s.index === s.of),
        null,
        { timeout: 120000, polling: 100 },
    );
    const failures = await page.evaluate(() => window.failures);
    if (failures.length) throw new Error(`the viewer failed: ${failures.join("; ")}`);
    // Let the last scale's frame reach the canvas.
    await page.evaluate(async () => {
        const v = document.querySelector("strata-viewer");
        if (v.presented) await v.presented();
        await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
    });
    await page.screenshot({ path: out });
    const scales = await page.evaluate(() => window.scales);
    const last = scales[scales.length - 1];
    console.log(`demo-shot: ${out}: scale ${last.index} of ${last.of}, ${last.bytesLoaded} bytes, ${Date.now() - start} ms`);
} finally {
    await browser.close();
}
