//! Adapter and device selection.

use weft_compiler::{DeviceLimits, GraphPlanOptions};

use crate::error::RuntimeError;

/// What tells one adapter and driver from another, for per-adapter caches:
/// a driver update changes `driver_info`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdapterIdentity {
    /// e.g. `llvmpipe (LLVM 15.0.6, 256 bits)`.
    pub name: String,
    /// e.g. `llvmpipe`.
    pub driver: String,
    /// e.g. `Mesa 22.3.6 (LLVM 15.0.6)`.
    pub driver_info: String,
    /// e.g. `vulkan`.
    pub backend: String,
}

/// An open device on the adapter the user has.
pub struct Gpu {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    limits: DeviceLimits,
}

impl Gpu {
    /// Opens the default adapter (the high-performance one), or the adapter whose
    /// name contains `WGPU_ADAPTER_NAME` when that variable is set; the backends
    /// tried follow `WGPU_BACKEND`. The device gets the adapter's full limits:
    /// wgpu's defaults are far lower than what real devices (and lavapipe) offer.
    pub fn new() -> Result<Gpu, RuntimeError> {
        pollster::block_on(Self::open())
    }

    async fn open() -> Result<Gpu, RuntimeError> {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapter = match std::env::var("WGPU_ADAPTER_NAME") {
            Ok(wanted) if !wanted.is_empty() => {
                let adapters = instance.enumerate_adapters(wgpu::Backends::all()).await;
                let names: Vec<String> = adapters.iter().map(|a| a.get_info().name).collect();
                adapters
                    .into_iter()
                    .find(|a| a.get_info().name.to_lowercase().contains(&wanted.to_lowercase()))
                    .ok_or_else(|| RuntimeError::AdapterNotFound {
                        wanted,
                        available: if names.is_empty() { "none".into() } else { names.join(", ") },
                    })?
            }
            _ => instance
                .request_adapter(&wgpu::RequestAdapterOptions {
                    power_preference: wgpu::PowerPreference::HighPerformance,
                    ..Default::default()
                })
                .await
                .map_err(|e| RuntimeError::NoAdapter { detail: format!(" ({e})") })?,
        };
        let info = adapter.get_info();
        let adapter_limits = adapter.limits();
        // Subgroup operations where the adapter has them: the subgroup matmul uses them.
        let features = adapter.features() & wgpu::Features::SUBGROUP;
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("weft"),
                required_features: features,
                required_limits: adapter_limits.clone(),
                ..Default::default()
            })
            .await
            .map_err(|e| RuntimeError::RequestDevice {
                adapter: info.name.clone(),
                message: e.to_string(),
            })?;
        let limits = DeviceLimits {
            max_storage_binding: adapter_limits.max_storage_buffer_binding_size,
            max_buffer_size: adapter_limits.max_buffer_size,
            max_workgroups_per_dimension: adapter_limits.max_compute_workgroups_per_dimension,
            max_invocations_per_workgroup: adapter_limits.max_compute_invocations_per_workgroup,
            max_workgroup_size_x: adapter_limits.max_compute_workgroup_size_x,
            max_workgroup_storage: adapter_limits.max_compute_workgroup_storage_size,
            max_storage_buffers_per_stage: adapter_limits.max_storage_buffers_per_shader_stage,
            storage_offset_alignment: adapter_limits.min_storage_buffer_offset_alignment,
            subgroup_min_size: features.contains(wgpu::Features::SUBGROUP).then_some(info.subgroup_min_size),
            cpu: info.device_type == wgpu::DeviceType::Cpu,
        };
        Ok(Gpu { device, queue, info, limits })
    }

    /// The adapter's name, e.g. `llvmpipe (LLVM 15.0.6, 256 bits)`.
    pub fn adapter_name(&self) -> String {
        self.info.name.clone()
    }

    /// Name, backend, device type and driver, for logs and per-adapter caches.
    pub fn adapter_description(&self) -> String {
        let i = &self.info;
        format!("{} ({:?}, {:?}, driver {} {})", i.name, i.backend, i.device_type, i.driver, i.driver_info)
    }

    /// The adapter's name, driver and backend.
    pub fn identity(&self) -> AdapterIdentity {
        let i = &self.info;
        AdapterIdentity {
            name: i.name.clone(),
            driver: i.driver.clone(),
            driver_info: i.driver_info.clone(),
            backend: i.backend.to_str().to_string(),
        }
    }

    /// A caution about the adapter the user got, if one is due: on a machine
    /// without a Vulkan driver, wgpu falls back to Mesa's OpenGL rasteriser,
    /// which offers no subgroup operations to compute shaders, so the
    /// shared-load kernels cannot run (measured on lavapipe's host: a
    /// training step 2.5x slower than on its Vulkan driver).
    pub fn advice(&self) -> Option<String> {
        let explicit_gl = std::env::var("WGPU_BACKEND").is_ok_and(|b| b.to_lowercase().contains("gl"));
        (self.info.backend == wgpu::Backend::Gl && !explicit_gl).then(|| {
            format!(
                "running on OpenGL ({}), which wgpu chose because no Vulkan, Metal or DirectX 12 driver \
                 answered; its compute shaders have no subgroup operations and weft's kernels run several \
                 times slower there. Install a Vulkan driver (Debian/Ubuntu without a GPU: `apt-get install \
                 mesa-vulkan-drivers libvulkan1`), or set WGPU_BACKEND=gl to silence this",
                self.info.name
            )
        })
    }

    /// The device's limits, as the compiler plans against them.
    pub fn limits(&self) -> DeviceLimits {
        self.limits
    }

    /// Graph planning options for this device before any tuning: its limits
    /// and the kernel shapes that suit its kind.
    pub fn plan_options(&self) -> GraphPlanOptions {
        GraphPlanOptions::for_device(self.limits)
    }
}
