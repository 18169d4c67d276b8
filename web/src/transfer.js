// Transfer functions: a colormap preset (color over the normalized value)
// and a piecewise-linear opacity curve, baked into a 256-entry RGBA table;
// and the editor that draws both and lets the mouse (or a finger) move,
// add and remove the curve's points.

const hex = (h) => [1, 3, 5].map((i) => parseInt(h.slice(i, i + 2), 16) / 255);

export const COLORMAPS = {
    grayscale: [[0, [0, 0, 0]], [1, [1, 1, 1]]],
    viridis: [[0, hex("#440154")], [0.25, hex("#3b528b")], [0.5, hex("#21918c")], [0.75, hex("#5ec962")], [1, hex("#fde725")]],
    inferno: [[0, hex("#000004")], [0.25, hex("#57106e")], [0.5, hex("#bc3754")], [0.75, hex("#f98e09")], [1, hex("#fcffa4")]],
    hot: [[0, [0, 0, 0]], [0.375, [1, 0, 0]], [0.75, [1, 1, 0]], [1, [1, 1, 1]]],
    bone: [[0, [0, 0, 0]], [0.375, [0.32, 0.32, 0.45]], [0.75, [0.65, 0.78, 0.78]], [1, [1, 1, 1]]],
    coolwarm: [[0, [0.23, 0.3, 0.75]], [0.5, [0.87, 0.87, 0.87]], [1, [0.71, 0.016, 0.15]]],
};

export const DEFAULT_OPACITY = [[0, 0], [0.15, 0], [0.5, 0.04], [1, 0.25]];

/** Piecewise-linear interpolation of sorted `[x, value]` stops at `x`. */
function interpolate(stops, x) {
    if (x <= stops[0][0]) return stops[0][1];
    for (let i = 1; i < stops.length; i++) {
        const [x1, v1] = stops[i];
        if (x <= x1) {
            const [x0, v0] = stops[i - 1];
            const f = x1 > x0 ? (x - x0) / (x1 - x0) : 1;
            return Array.isArray(v0) ? v0.map((c, k) => c + f * (v1[k] - c)) : v0 + f * (v1 - v0);
        }
    }
    return stops[stops.length - 1][1];
}

export const colorAt = (preset, x) => interpolate(COLORMAPS[preset], x);
export const opacityAt = (points, x) => interpolate(points, x);

/** 256 RGBA bytes: entry i is the value i / 255. */
export function bakeTransfer({ colormap, opacity }) {
    const lut = new Uint8Array(256 * 4);
    for (let i = 0; i < 256; i++) {
        const x = i / 255;
        const [r, g, b] = colorAt(colormap, x);
        const a = opacityAt(opacity, x);
        lut.set([r, g, b, a].map((c) => Math.round(Math.min(1, Math.max(0, c)) * 255)), i * 4);
    }
    return lut;
}

/**
 * The opacity-curve editor on a canvas: the colormap as the background,
 * the curve and its points on top. Drag a point to move it (the end points
 * move only up and down), press elsewhere to add one, double-click a point
 * to remove it. `onChange(points)` after every edit.
 */
export class TransferEditor {
    constructor(canvas, onChange) {
        this.canvas = canvas;
        this.onChange = onChange;
        this.transfer = { colormap: "grayscale", opacity: DEFAULT_OPACITY.map((p) => [...p]) };
        this.dragging = -1;
        canvas.style.touchAction = "none";
        canvas.addEventListener("pointerdown", (e) => this.down(e));
        canvas.addEventListener("pointermove", (e) => this.move(e));
        canvas.addEventListener("pointerup", () => (this.dragging = -1));
        canvas.addEventListener("pointercancel", () => (this.dragging = -1));
        canvas.addEventListener("dblclick", (e) => this.remove(e));
    }

    set(transfer) {
        this.transfer = { colormap: transfer.colormap, opacity: transfer.opacity.map((p) => [...p]) };
        this.draw();
    }

    /** Canvas pixel of a curve point, and back. */
    toPixel([x, a]) {
        const { width, height } = this.canvas;
        return [x * (width - 1), (1 - a) * (height - 1)];
    }
    fromEvent(e) {
        const r = this.canvas.getBoundingClientRect();
        const x = (e.clientX - r.left) / Math.max(1, r.width);
        const a = 1 - (e.clientY - r.top) / Math.max(1, r.height);
        return [Math.min(1, Math.max(0, x)), Math.min(1, Math.max(0, a))];
    }
    nearest(e) {
        const r = this.canvas.getBoundingClientRect();
        const sx = this.canvas.width / Math.max(1, r.width);
        const sy = this.canvas.height / Math.max(1, r.height);
        const px = (e.clientX - r.left) * sx;
        const py = (e.clientY - r.top) * sy;
        let best = -1;
        let bestDist = 10 * Math.max(sx, 1);
        this.transfer.opacity.forEach((p, i) => {
            const [x, y] = this.toPixel(p);
            const d = Math.hypot(x - px, y - py);
            if (d < bestDist) [best, bestDist] = [i, d];
        });
        return best;
    }

    down(e) {
        e.preventDefault();
        this.canvas.setPointerCapture?.(e.pointerId);
        let i = this.nearest(e);
        if (i < 0) {
            const [x, a] = this.fromEvent(e);
            const points = this.transfer.opacity;
            i = points.findIndex((p) => p[0] > x);
            if (i <= 0) return;
            points.splice(i, 0, [x, a]);
            this.changed();
        }
        this.dragging = i;
    }

    move(e) {
        if (this.dragging < 0) return;
        const points = this.transfer.opacity;
        const i = this.dragging;
        let [x, a] = this.fromEvent(e);
        // End points stay at 0 and 1; inner points stay between neighbours.
        if (i === 0) x = 0;
        else if (i === points.length - 1) x = 1;
        else x = Math.min(points[i + 1][0], Math.max(points[i - 1][0], x));
        points[i] = [x, a];
        this.changed();
    }

    remove(e) {
        const i = this.nearest(e);
        const points = this.transfer.opacity;
        if (i > 0 && i < points.length - 1) {
            points.splice(i, 1);
            this.changed();
        }
    }

    changed() {
        this.draw();
        this.onChange(this.transfer.opacity.map((p) => [...p]));
    }

    draw() {
        const ctx = this.canvas.getContext("2d");
        if (!ctx) return;
        const { width, height } = this.canvas;
        for (let x = 0; x < width; x++) {
            const [r, g, b] = colorAt(this.transfer.colormap, x / Math.max(1, width - 1));
            ctx.fillStyle = `rgb(${r * 255},${g * 255},${b * 255})`;
            ctx.fillRect(x, 0, 1, height);
        }
        ctx.strokeStyle = "#fff";
        ctx.lineWidth = 2;
        ctx.shadowColor = "#000";
        ctx.shadowBlur = 3;
        ctx.beginPath();
        this.transfer.opacity.forEach((p, i) => {
            const [x, y] = this.toPixel(p);
            if (i === 0) ctx.moveTo(x, y);
            else ctx.lineTo(x, y);
        });
        ctx.stroke();
        ctx.fillStyle = "#fff";
        for (const p of this.transfer.opacity) {
            const [x, y] = this.toPixel(p);
            ctx.beginPath();
            ctx.arc(x, y, 4, 0, 2 * Math.PI);
            ctx.fill();
        }
    }
}
