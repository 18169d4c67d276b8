// The view state — camera, mode, transfer function, iso value, slice, time
// step — and its form in a link: parameters of the page URL's hash, e.g.
//   #src=scan.strata&mode=iso&cam=30,20,4.2,0,0&cmap=bone&opacity=0,0;1,0.3&iso=0.4&slice=z,0.5&t=0
// Everything read from a link is untrusted: each parameter is parsed into
// numbers or one of a few known words, or refused with a message; nothing
// from it ever reaches the page as HTML.

import { MODES } from "./renderer.js";
import { COLORMAPS, DEFAULT_OPACITY } from "./transfer.js";

export function defaultView() {
    return {
        mode: "composite",
        camera: { yaw: 30, pitch: 20, distance: 4.2, pan: [0, 0] },
        transfer: { colormap: "grayscale", opacity: DEFAULT_OPACITY.map((p) => [...p]) },
        iso: 0.4,
        slice: { axis: "z", position: 0.5 },
        t: 0,
    };
}

const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));

/** Finite numbers separated by `sep`, exactly `count` of them (or any count ≥ 2 when count is 0). */
function numbers(text, sep, count) {
    const parts = text.split(sep);
    if ((count && parts.length !== count) || parts.length > 64) return null;
    const values = parts.map((p) => (/^-?\d*\.?\d+(e-?\d+)?$/i.test(p.trim()) ? Number(p) : NaN));
    return values.every(Number.isFinite) ? values : null;
}

/**
 * Reads a view from URL hash parameters over `base` (defaults for what is
 * missing). Returns `{ view, src, errors }`: `errors` lists each refused
 * parameter, `src` is the raw archive URL (check it with `archiveUrl`).
 */
export function parseViewParams(params, base = defaultView()) {
    const view = structuredClone(base);
    const errors = [];
    const refuse = (name) => errors.push(`ignored the link's "${name}" parameter: not a valid value`);
    for (const [name, value] of params) {
        switch (name) {
            case "src":
            case "range": // how to fetch src: the caller reads it
                break;
            case "mode":
                if (MODES.includes(value)) view.mode = value;
                else refuse(name);
                break;
            case "cam": {
                const v = numbers(value, ",", 5);
                if (v) {
                    view.camera = {
                        yaw: ((v[0] % 360) + 360) % 360,
                        pitch: clamp(v[1], -89, 89),
                        distance: clamp(v[2], 0.2, 50),
                        pan: [clamp(v[3], -10, 10), clamp(v[4], -10, 10)],
                    };
                } else refuse(name);
                break;
            }
            case "cmap":
                if (Object.hasOwn(COLORMAPS, value)) view.transfer.colormap = value;
                else refuse(name);
                break;
            case "opacity": {
                const pts = value.split(";").map((p) => numbers(p, ",", 2));
                const ok = pts.length >= 2 && pts.length <= 32 && pts.every((p) => p && p[0] >= 0 && p[0] <= 1)
                    && pts.every((p, i) => i === 0 || p[0] >= pts[i - 1][0]);
                if (ok) {
                    pts[0][0] = 0;
                    pts[pts.length - 1][0] = 1;
                    view.transfer.opacity = pts.map(([x, a]) => [x, clamp(a, 0, 1)]);
                } else refuse(name);
                break;
            }
            case "iso": {
                const v = numbers(value, ",", 1);
                if (v) view.iso = clamp(v[0], 0, 1);
                else refuse(name);
                break;
            }
            case "slice": {
                const [axis, pos] = value.split(",");
                const v = pos === undefined ? null : numbers(pos, ",", 1);
                if (["x", "y", "z"].includes(axis) && v) view.slice = { axis, position: clamp(v[0], 0, 1) };
                else refuse(name);
                break;
            }
            case "t": {
                const v = numbers(value, ",", 1);
                if (v && Number.isInteger(v[0]) && v[0] >= 0) view.t = v[0];
                else refuse(name);
                break;
            }
            default:
                errors.push(`ignored an unknown link parameter`);
        }
    }
    return { view, src: params.get("src"), errors };
}

const round = (v) => Number(v.toFixed(4));

/** The hash parameters of `view` (and `src` when given). */
export function viewParams(view, src) {
    const p = new URLSearchParams();
    if (src) p.set("src", src);
    p.set("mode", view.mode);
    const c = view.camera;
    p.set("cam", [c.yaw, c.pitch, c.distance, c.pan[0], c.pan[1]].map(round).join(","));
    p.set("cmap", view.transfer.colormap);
    p.set("opacity", view.transfer.opacity.map((q) => q.map(round).join(",")).join(";"));
    p.set("iso", String(round(view.iso)));
    p.set("slice", `${view.slice.axis},${round(view.slice.position)}`);
    p.set("t", String(view.t));
    return p;
}

/**
 * The archive URL of a link, resolved against the page: only http(s) (and
 * blob: for local files) — never `javascript:`, `data:` or anything else.
 */
export function archiveUrl(src, pageUrl) {
    let url;
    try {
        url = new URL(src, pageUrl);
    } catch {
        throw new Error("the archive address in the link is not a valid URL");
    }
    if (!["http:", "https:", "blob:"].includes(url.protocol)) {
        throw new Error(`refused the archive address: ${url.protocol} URLs are not archives (http and https only)`);
    }
    return url;
}
