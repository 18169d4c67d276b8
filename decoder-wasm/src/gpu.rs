//! The GPU context: adapter, device and queue, opened with the adapter's own
//! limits (big volumes need more than WebGPU's defaults), and a sink for the
//! errors wgpu reports asynchronously, so they become `DecodeError`s rather
//! than wgpu's default panic.

use std::sync::{Arc, Mutex};

use crate::error::DecodeError;

pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    errors: Arc<Mutex<Vec<String>>>,
}

impl Gpu {
    /// Opens the best adapter (high performance first). Natively the
    /// backend can be chosen with `WGPU_BACKEND` (e.g. `vulkan`).
    pub async fn new() -> Result<Gpu, DecodeError> {
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                ..Default::default()
            })
            .await
            .map_err(|e| DecodeError::NoAdapter(e.to_string()))?;
        Gpu::from_adapter(&adapter).await
    }

    /// Opens a device on `adapter` with all the limits it offers.
    pub async fn from_adapter(adapter: &wgpu::Adapter) -> Result<Gpu, DecodeError> {
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("strata decoder"),
                // Lets a viewer sample the r32float textures with a linear filter.
                required_features: adapter.features() & wgpu::Features::FLOAT32_FILTERABLE,
                required_limits: adapter.limits(),
                ..Default::default()
            })
            .await
            .map_err(|e| DecodeError::Device(e.to_string()))?;
        let errors = Arc::new(Mutex::new(Vec::new()));
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut v) = sink.lock() {
                v.push(e.to_string());
            }
        }));
        Ok(Gpu {
            device,
            queue,
            info: adapter.get_info(),
            errors,
        })
    }

    /// `Gpu::new` for native callers.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new_blocking() -> Result<Gpu, DecodeError> {
        pollster::block_on(Gpu::new())
    }

    /// For tests: the GPU, or `None` (with a note) when there is no adapter
    /// and `STRATA_SKIP_GPU=1` says to skip; without that variable a missing
    /// adapter panics with the reason, so CI cannot pass without a GPU path.
    /// Sets `XDG_RUNTIME_DIR` if unset (Mesa warns without it).
    #[cfg(not(target_arch = "wasm32"))]
    #[doc(hidden)]
    pub fn for_tests() -> Option<Gpu> {
        if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
            std::env::set_var("XDG_RUNTIME_DIR", std::env::temp_dir());
        }
        match Gpu::new_blocking() {
            Ok(g) => Some(g),
            Err(e) if std::env::var("STRATA_SKIP_GPU").as_deref() == Ok("1") => {
                eprintln!("STRATA_SKIP_GPU=1: skipping a GPU test ({e})");
                None
            }
            Err(e) => panic!("{e}\n(set STRATA_SKIP_GPU=1 to skip the GPU tests explicitly)"),
        }
    }

    pub fn limits(&self) -> wgpu::Limits {
        self.device.limits()
    }

    /// The first error the device reported since the last check, if any.
    pub fn check(&self) -> Result<(), DecodeError> {
        let mut errors = self
            .errors
            .lock()
            .map_err(|_| DecodeError::Gpu("error sink poisoned by an earlier failure".into()))?;
        let first = errors.drain(..).next();
        match first {
            Some(e) => Err(DecodeError::Gpu(e)),
            None => Ok(()),
        }
    }

    /// Refuses a storage buffer of `bytes` that this device cannot bind.
    pub fn check_buffer(&self, what: &str, bytes: u64) -> Result<(), DecodeError> {
        let l = self.limits();
        let max = (l.max_storage_buffer_binding_size).min(l.max_buffer_size);
        if bytes > max {
            return Err(DecodeError::TooLarge(format!(
                "{what} needs a {bytes}-byte GPU buffer, more than this GPU's limit of {max} bytes ({})",
                self.info.name
            )));
        }
        Ok(())
    }

    /// Workgroups `(x, y)` covering `n` in a 2D dispatch, refused past the
    /// device's per-dimension limit.
    pub fn dispatch_2d(&self, what: &str, n: u64) -> Result<(u32, u32), DecodeError> {
        let max = self.limits().max_compute_workgroups_per_dimension as u64;
        let x = n.clamp(1, max);
        let y = n.div_ceil(x);
        if y > max {
            return Err(DecodeError::TooLarge(format!(
                "{what} needs {n} workgroups, more than this GPU can dispatch ({max}²)"
            )));
        }
        Ok((x as u32, y as u32))
    }
}
