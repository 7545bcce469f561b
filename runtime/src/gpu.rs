//! Adapter and device selection.

use weft_compiler::MatmulConfig;

use crate::error::RuntimeError;

/// The device limits the compiler plans against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GpuLimits {
    /// Largest byte range one storage binding may cover.
    pub max_storage_binding: u64,
    /// Largest buffer.
    pub max_buffer: u64,
    pub max_workgroups_per_dim: u32,
    pub max_invocations_per_workgroup: u32,
    /// Largest workgroup size along x (the kernels' only dimension).
    pub max_workgroup_size_x: u32,
    pub max_workgroup_storage: u32,
    pub max_storage_buffers_per_stage: u32,
    /// Alignment of `Binding::range` offsets.
    pub storage_offset_alignment: u32,
    /// The smallest subgroup the device runs, when it has subgroup operations.
    pub subgroup_min_size: Option<u32>,
    /// A CPU adapter (lavapipe, WARP, SwiftShader): kernels that suit SIMD
    /// lanes over GPU threads are the better default there.
    pub cpu: bool,
}

impl GpuLimits {
    /// Options for the op-by-op code generator that fit this device.
    pub fn simple_plan_options(&self) -> weft_compiler::SimplePlanOptions {
        weft_compiler::SimplePlanOptions {
            max_storage_binding: self.max_storage_binding,
            max_buffer_size: self.max_buffer,
            max_storage_buffers_per_stage: self.max_storage_buffers_per_stage,
            max_workgroups_per_dimension: self.max_workgroups_per_dim,
            matmul: self.default_matmul(),
            subgroup_min_size: self.subgroup_min_size,
            ..weft_compiler::SimplePlanOptions::default()
        }
    }

    /// The matmul shape to use before any measurement: on CPU adapters with
    /// subgroups of 8 or more, the subgroup kernel (3-4x faster on lavapipe,
    /// BENCHMARKS.md); elsewhere the register kernel that suits GPUs.
    pub fn default_matmul(&self) -> MatmulConfig {
        match self.subgroup_min_size {
            Some(size) if self.cpu && size >= 8 => MatmulConfig::CPU_DEFAULT,
            _ => MatmulConfig::default(),
        }
    }
}

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
    limits: GpuLimits,
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
        let limits = GpuLimits {
            max_storage_binding: adapter_limits.max_storage_buffer_binding_size,
            max_buffer: adapter_limits.max_buffer_size,
            max_workgroups_per_dim: adapter_limits.max_compute_workgroups_per_dimension,
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

    pub fn limits(&self) -> GpuLimits {
        self.limits
    }
}
