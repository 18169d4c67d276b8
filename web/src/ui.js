// The viewer's shadow DOM: the canvas, a toolbar, the transfer-function
// editor, a status line, a loading indicator and a message banner. Static
// markup only: every text that depends on the archive or the link is set
// with textContent, never as HTML.

import { COLORMAPS } from "./transfer.js";

const options = (names) => names.map((n) => `<option value="${n}">${n}</option>`).join("");

export const STYLE = `
:host { display: block; position: relative; width: 100%; height: 480px; background: #121317;
        color: #e6e6e6; font: 12px/1.3 system-ui, sans-serif; overflow: hidden; user-select: none; }
#canvas { position: absolute; inset: 0; width: 100%; height: 100%; display: block; cursor: grab; }
.bar { position: absolute; left: 6px; top: 6px; right: 6px; display: flex; flex-wrap: wrap; gap: 6px; align-items: center; }
.bar > span, .bar > select, .bar > button { background: rgba(20, 22, 28, 0.8); border: 1px solid #444; border-radius: 4px;
        color: inherit; font: inherit; padding: 2px 6px; }
.bar span { display: inline-flex; gap: 4px; align-items: center; }
.bar span[hidden], canvas[hidden], [hidden] { display: none !important; }
input[type=range] { width: 90px; }
#tf { position: absolute; left: 6px; bottom: 26px; width: 256px; height: 64px; border: 1px solid #666; border-radius: 3px; cursor: crosshair; }
#status { position: absolute; left: 6px; right: 6px; bottom: 4px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis;
          text-shadow: 0 0 3px #000; }
#message { position: absolute; left: 10%; right: 10%; top: 40px; padding: 8px 10px; background: rgba(120, 20, 20, 0.9);
           border-radius: 4px; white-space: pre-wrap; }
#spinner { position: absolute; right: 10px; bottom: 8px; width: 14px; height: 14px; border: 2px solid #888;
           border-top-color: transparent; border-radius: 50%; animation: spin 0.9s linear infinite; }
:host([nocontrols]) .bar, :host([nocontrols]) #tf, :host([nocontrols]) #status, :host([nocontrols]) #spinner { display: none !important; }
@keyframes spin { to { transform: rotate(360deg); } }
`;

export const TEMPLATE = `
<canvas id="canvas"></canvas>
<div class="bar" part="toolbar">
  <select id="mode" title="rendering mode">
    <option value="composite">composite</option><option value="mip">MIP</option>
    <option value="iso">isosurface</option><option value="slice">slice</option>
  </select>
  <select id="cmap" title="colormap">${options(Object.keys(COLORMAPS))}</select>
  <span id="iso-group">iso <input id="iso" type="range" min="0" max="1" step="0.005"></span>
  <span id="slice-group"><select id="axis"><option>x</option><option>y</option><option>z</option></select>
    <input id="slice" type="range" min="0" max="1" step="0.002" title="slice position"></span>
  <span id="time-group"><button id="play" title="play">▶</button>
    <input id="time" type="range" min="0" max="0" step="1" value="0"><span id="time-label"></span></span>
  <button id="reset" title="reset the camera">reset view</button>
</div>
<canvas id="tf" width="256" height="64" title="opacity: drag points, click to add, double-click to remove"></canvas>
<div id="message" role="alert" hidden></div>
<div id="spinner" hidden></div>
<div id="status" part="status">no archive</div>
`;
