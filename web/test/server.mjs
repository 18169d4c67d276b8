// The browser tests' HTTP server (127.0.0.1, a free port): the built viewer
// (web/dist) at /, test files at /files/NAME, and the archive variants the
// tests need:
//   /archive/NAME        whole file, with Range support (206 / 416)
//   /gated/NAME?gate=G   the bytes up to `gates[G].at`, then nothing until
//                        the test calls `release(G)`
//   /slow/NAME           `chunk` bytes every `interval` ms
//   /truncated/NAME?at=N only the first N bytes (a short but complete response)
//   /corrupt/NAME?at=N   byte N flipped
// Every request is logged in `requests` (path + Range header).
import { createServer } from "node:http";
import { readFileSync, existsSync } from "node:fs";
import { join, extname, basename } from "node:path";

const TYPES = { ".html": "text/html", ".js": "text/javascript", ".wasm": "application/wasm", ".map": "application/json" };

export async function startServer({ dist, files, cors = false, chunk = 2048, interval = 40 }) {
    const requests = [];
    const gates = new Map();
    const server = createServer(async (req, res) => {
        const url = new URL(req.url, "http://x");
        requests.push({ path: url.pathname, range: req.headers.range ?? null });
        if (cors) res.setHeader("Access-Control-Allow-Origin", "*");
        res.setHeader("Cache-Control", "no-store");
        const [, route, ...rest] = url.pathname.split("/");
        const name = basename(decodeURIComponent(rest.join("/")));
        const file = join(files, name);
        const archiveRoutes = ["archive", "gated", "slow", "truncated", "corrupt", "files"];
        if (archiveRoutes.includes(route)) {
            if (!existsSync(file)) return end(res, 404);
            let bytes = readFileSync(file);
            const type = TYPES[extname(name)] ?? "application/octet-stream";
            if (route === "truncated") bytes = bytes.subarray(0, Number(url.searchParams.get("at")));
            if (route === "corrupt") {
                bytes = Buffer.from(bytes);
                bytes[Number(url.searchParams.get("at"))] ^= 0x5a;
            }
            if (route === "archive" && req.headers.range) return sendRange(req, res, bytes, type);
            res.writeHead(200, { "Content-Type": type, "Content-Length": bytes.length, "Accept-Ranges": "bytes" });
            if (route === "gated") {
                const gate = gates.get(url.searchParams.get("gate"));
                res.write(bytes.subarray(0, gate.at));
                await gate.opened;
                return res.end(bytes.subarray(gate.at));
            }
            if (route === "slow") {
                for (let i = 0; i < bytes.length && !res.destroyed; i += chunk) {
                    res.write(bytes.subarray(i, i + chunk));
                    await new Promise((r) => setTimeout(r, interval));
                }
                return res.end();
            }
            return res.end(bytes);
        }
        const path = join(dist, url.pathname === "/" ? "index.html" : basename(url.pathname));
        if (!existsSync(path)) return end(res, 404);
        res.writeHead(200, { "Content-Type": TYPES[extname(path)] ?? "application/octet-stream" });
        res.end(readFileSync(path));
    });
    await new Promise((r) => server.listen(0, "127.0.0.1", r));
    const origin = `http://127.0.0.1:${server.address().port}`;
    return {
        origin,
        requests,
        /** A gate that holds `/gated/...?gate=id` after `at` bytes. */
        gate(id, at) {
            let open;
            gates.set(id, { at, opened: new Promise((r) => (open = r)), open });
        },
        release(id) {
            gates.get(id).open();
        },
        close: () => new Promise((r) => { server.closeAllConnections(); server.close(r); }),
    };
}

function end(res, status) {
    res.writeHead(status, { "Content-Type": "text/plain" });
    res.end(String(status));
}

function sendRange(req, res, bytes, type) {
    const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range);
    const start = m ? Number(m[1]) : NaN;
    const last = m && m[2] ? Math.min(Number(m[2]), bytes.length - 1) : bytes.length - 1;
    if (!m || start >= bytes.length || last < start) {
        res.writeHead(416, { "Content-Range": `bytes */${bytes.length}` });
        return res.end();
    }
    res.writeHead(206, {
        "Content-Type": type,
        "Content-Length": last - start + 1,
        "Content-Range": `bytes ${start}-${last}/${bytes.length}`,
        "Accept-Ranges": "bytes",
    });
    res.end(bytes.subarray(start, last + 1));
}
