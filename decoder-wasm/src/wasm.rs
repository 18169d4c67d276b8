//! The browser API (wasm32 + WebGPU), through `wasm-bindgen`:
//!
//! ```js
//! import init, { StrataDecoder } from "./pkg/strata_decoder.js";
//! await init({ module_or_path: "./pkg/strata_decoder_bg.wasm" });
//! const dec = await StrataDecoder.create();
//! dec.onScale(({ level, scales, dims, bytes }) => redraw(dec.texture(0)));
//! for await (const chunk of response.body) dec.push(chunk);
//! dec.finish();
//! ```
//!
//! wgpu 30 cannot wrap a `GPUDevice` created in JavaScript (it can only hand
//! out the JS handles of its own objects), so the decoder opens the device
//! itself and exposes it: `dec.device()` is the `GPUDevice` the viewer must
//! render with, and `dec.texture(t)` is a `GPUTexture` of that device (3D,
//! r32float, usage TEXTURE_BINDING | STORAGE_BINDING | COPY_SRC, normalized
//! values; de-normalize with `dec.valueRange()`).
//!
//! Grid scales' latents can be entropy-decoded off the page's thread:
//! `dec.offloadLatents(true)`, then after each `push` (and each
//! `supplyLatents`), while `job = dec.pendingLatents()`, post `job` to a
//! worker that calls `decodeGridLatents(job.header, job.index, job.section)`
//! and hand the result to `dec.supplyLatents(latents)`.
//!
//! Every error is a thrown JS `Error` with the decoder's message; the Rust
//! code returns errors rather than panicking, so no wasm trap.

use js_sys::{Array, Function, Object, Reflect};
use wasm_bindgen::prelude::*;

use strata_format::{Header, FIXED_HEADER_LEN};

use crate::{Decoder, Gpu, Progress};

#[wasm_bindgen]
pub struct StrataDecoder {
    inner: Decoder,
    on_scale: Option<Function>,
}

fn js_err(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

fn progress_object(p: &Progress) -> Result<JsValue, JsValue> {
    let o = Object::new();
    Reflect::set(&o, &"level".into(), &p.level.into())?;
    Reflect::set(&o, &"scales".into(), &p.scales.into())?;
    let dims: Array = p.dims.iter().map(|&d| JsValue::from(d as u32)).collect();
    Reflect::set(&o, &"dims".into(), &dims)?;
    Reflect::set(&o, &"bytes".into(), &(p.bytes as f64).into())?;
    Ok(o.into())
}

#[wasm_bindgen]
impl StrataDecoder {
    /// Opens a WebGPU device (with the adapter's limits) and compiles the
    /// shaders. Rejects with a clear message where WebGPU is unavailable.
    pub async fn create() -> Result<StrataDecoder, JsError> {
        let gpu = Gpu::new().await.map_err(js_err)?;
        let inner = Decoder::new(gpu).map_err(js_err)?;
        Ok(StrataDecoder {
            inner,
            on_scale: None,
        })
    }

    /// `callback({level, scales, dims, bytes})` after each decoded scale.
    #[wasm_bindgen(js_name = onScale)]
    pub fn on_scale(&mut self, callback: Function) {
        self.on_scale = Some(callback);
    }

    /// Feeds the next bytes of the archive; decodes every scale they
    /// complete and returns how many. When a section fails, the scales
    /// decoded before it are still reported to `onScale`, then it throws.
    pub fn push(&mut self, bytes: &[u8]) -> Result<u32, JsError> {
        let result = self.inner.push(bytes);
        self.reported(result)
    }

    /// Reports a `push`'s (or `supplyLatents`') scales to `onScale`; after
    /// a failure, those decoded before it, then the error.
    fn reported(
        &mut self,
        result: Result<Vec<Progress>, crate::DecodeError>,
    ) -> Result<u32, JsError> {
        match result {
            Ok(done) => {
                self.report(&done)?;
                Ok(done.len() as u32)
            }
            Err(e) => {
                let done = self.inner.take_unreported();
                self.report(&done)?;
                Err(js_err(e))
            }
        }
    }

    fn report(&self, done: &[Progress]) -> Result<(), JsError> {
        if let Some(cb) = &self.on_scale {
            for p in done {
                let arg = progress_object(p).map_err(|e| js_err(format!("{e:?}")))?;
                cb.call1(&JsValue::NULL, &arg)
                    .map_err(|e| js_err(format!("the onScale callback threw: {}", describe(&e))))?;
            }
        }
        Ok(())
    }

    /// Leave the entropy decoding of grid scales to the caller (a Web
    /// Worker): `push` then stops at each grid section, `pendingLatents()`
    /// describes it, and `supplyLatents(decodeGridLatents(…))` goes on.
    #[wasm_bindgen(js_name = offloadLatents)]
    pub fn offload_latents(&mut self, on: bool) {
        self.inner.set_latent_offload(on);
    }

    /// The grid section waiting for its latents, `{index, level, header,
    /// section}` (the last two Uint8Arrays, for `decodeGridLatents`), or
    /// undefined.
    #[wasm_bindgen(js_name = pendingLatents)]
    pub fn pending_latents(&self) -> Result<JsValue, JsError> {
        let Some(job) = self.inner.latent_job() else {
            return Ok(JsValue::UNDEFINED);
        };
        let o = Object::new();
        let set = |k: &str, v: JsValue| Reflect::set(&o, &k.into(), &v).map(|_| ());
        set("index", (job.section.index as u32).into())
            .and_then(|_| set("level", job.section.entry.level.into()))
            .and_then(|_| set("header", js_sys::Uint8Array::from(&job.header[..]).into()))
            .and_then(|_| {
                set(
                    "section",
                    js_sys::Uint8Array::from(&job.section.bytes[..]).into(),
                )
            })
            .map_err(|e| js_err(describe(&e)))?;
        Ok(o.into())
    }

    /// The latents of the pending grid section (from `decodeGridLatents`):
    /// decodes that scale and what queued behind it, as `push` does.
    #[wasm_bindgen(js_name = supplyLatents)]
    pub fn supply_latents(&mut self, latents: &[i32]) -> Result<u32, JsError> {
        let result = self.inner.supply_latents(latents);
        self.reported(result)
    }

    /// Forgets the archive (its textures included), keeping the device, to
    /// decode another one.
    pub fn reset(&mut self) {
        self.inner.reset();
    }

    /// Throws unless the whole archive has arrived (naming what is missing).
    pub fn finish(&self) -> Result<(), JsError> {
        self.inner.finish().map_err(js_err)
    }

    /// The `GPUDevice` the textures belong to.
    pub fn device(&self) -> Result<JsValue, JsError> {
        let d = self
            .inner
            .gpu()
            .device
            .as_webgpu()
            .ok_or_else(|| js_err("the decoder is not on the WebGPU backend"))?;
        Ok(AsRef::<JsValue>::as_ref(d).clone())
    }

    /// Time step `t` of the finest level decoded so far as a 3D r32float
    /// `GPUTexture` (written on first request after each scale).
    pub fn texture(&mut self, t: u32) -> Result<JsValue, JsError> {
        let tex = self.inner.texture(t as usize).map_err(js_err)?;
        let js = tex
            .as_webgpu()
            .ok_or_else(|| js_err("the decoder is not on the WebGPU backend"))?;
        Ok(AsRef::<JsValue>::as_ref(js).clone())
    }

    /// Scales decoded so far.
    pub fn levels(&self) -> u8 {
        self.inner.levels()
    }

    /// Scales in the archive (0 before the header has arrived).
    pub fn scales(&self) -> u8 {
        self.inner.header().map_or(0, |h| h.scales)
    }

    /// Full-size dims [x, y, z, t] (empty before the header).
    #[wasm_bindgen(js_name = volumeDims)]
    pub fn volume_dims(&self) -> Vec<u32> {
        self.inner.header().map_or(Vec::new(), |h| h.dims.to_vec())
    }

    /// Dims [x, y, z, t] of the current textures (empty before a scale).
    #[wasm_bindgen(js_name = levelDims)]
    pub fn level_dims(&self) -> Vec<u32> {
        self.inner
            .dims()
            .map_or(Vec::new(), |d| d.iter().map(|&v| v as u32).collect())
    }

    /// Voxel spacing [x, y, z, t] from the header (empty before it).
    pub fn spacing(&self) -> Vec<f32> {
        self.inner
            .header()
            .map_or(Vec::new(), |h| h.spacing.to_vec())
    }

    /// Length of the whole archive: header, table and every section (0
    /// before the header).
    #[wasm_bindgen(js_name = archiveBytes)]
    pub fn archive_bytes(&self) -> f64 {
        self.inner.header().map_or(0.0, |h| {
            let sections: u64 = h.sections.iter().map(|s| s.length).sum();
            (h.encoded_len() as u64 + sections) as f64
        })
    }

    /// The section table, `[{kind, level, offset, length}]` (empty before
    /// the header): what a Range reader requests, in order.
    pub fn sections(&self) -> Result<Array, JsError> {
        let out = Array::new();
        for s in self.inner.header().map_or(&[][..], |h| &h.sections[..]) {
            let o = Object::new();
            let set = |k: &str, v: JsValue| Reflect::set(&o, &k.into(), &v).map(|_| ());
            set("kind", s.kind.name().into())
                .and_then(|_| set("level", s.level.into()))
                .and_then(|_| set("offset", (s.offset as f64).into()))
                .and_then(|_| set("length", (s.length as f64).into()))
                .map_err(|e| js_err(describe(&e)))?;
            out.push(&o);
        }
        Ok(out)
    }

    /// Bytes of header + section table, from the archive's first 80 bytes
    /// (checks magic and version): what a Range reader requests first.
    #[wasm_bindgen(js_name = headerLength)]
    pub fn header_length(first: &[u8]) -> Result<u32, JsError> {
        if first.len() < FIXED_HEADER_LEN {
            return Err(js_err(format!(
                "not a .strata archive: {} bytes, a header has {FIXED_HEADER_LEN}",
                first.len()
            )));
        }
        let n = Header::peek_section_count(&first[..FIXED_HEADER_LEN]).map_err(js_err)?;
        Ok(strata_format::header_len(n) as u32)
    }

    /// [min, max]: texture value v means min + v·(max − min).
    #[wasm_bindgen(js_name = valueRange)]
    pub fn value_range(&self) -> Vec<f64> {
        self.inner
            .header()
            .map_or(Vec::new(), |h| vec![h.value_min, h.value_max])
    }
}

/// Entropy-decodes a grid section's latents, every level concatenated
/// finest first: the CPU-heavy half of a grid scale, needing no GPU, so a
/// Web Worker can run it (`header` and `section` from `pendingLatents()`).
#[wasm_bindgen(js_name = decodeGridLatents)]
pub fn decode_grid_latents(header: &[u8], index: u32, section: &[u8]) -> Result<Vec<i32>, JsError> {
    crate::decode_latents(header, index as usize, section).map_err(js_err)
}

fn describe(e: &JsValue) -> String {
    e.dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| e.as_string())
        .unwrap_or_else(|| format!("{e:?}"))
}
