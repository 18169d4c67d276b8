// npm run build's second half: bundles the viewer (web/src) with the
// wasm-bindgen glue (web/pkg, from scripts/build-wasm) into
// web/dist/strata-viewer.js, and copies the wasm and the demo page beside it.
import { build } from "esbuild";
import { copyFileSync, mkdirSync, existsSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const web = dirname(fileURLToPath(import.meta.url));
const dist = join(web, "dist");
const wasm = join(web, "pkg", "strata_decoder_bg.wasm");
if (!existsSync(wasm)) {
    console.error("build: web/pkg is missing: run scripts/build-wasm first (npm run build does both)");
    process.exit(1);
}
mkdirSync(dist, { recursive: true });
await build({
    // The viewer, and the Web Worker it starts to entropy-decode grid scales.
    entryPoints: [join(web, "src", "strata-viewer.js"), join(web, "src", "latent-worker.js")],
    outdir: dist,
    bundle: true,
    format: "esm",
    target: "es2022",
    minify: true,
    sourcemap: true,
    loader: { ".wgsl": "text" },
    logLevel: "warning",
});
copyFileSync(wasm, join(dist, "strata_decoder_bg.wasm"));
copyFileSync(join(web, "index.html"), join(dist, "index.html"));
for (const f of ["strata-viewer.js", "latent-worker.js", "strata_decoder_bg.wasm", "index.html"]) {
    console.log(`build: web/dist/${f} ${statSync(join(dist, f)).size} bytes`);
}
