//! Running a kernel plan: buffers, a pipeline cache, dispatch and readback.

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU64;
use std::ops::Range;
use std::time::{Duration, Instant};

use weft_compiler::{Access, BufferRole, ElemType, Kernel, KernelPlan};

use crate::error::RuntimeError;
use crate::fused::FusedPlan;
use crate::gpu::Gpu;
use crate::host::{HostInput, HostOutput, HostSlice, HostValues};

/// Whether wgpu adds its runtime checks (buffer bounds, loop bounding,
/// integer division guards) to a kernel's shader module.
///
/// [`Checked`](ShaderChecks::Checked) is wgpu's default and what every plan
/// gets from [`Executor::prepare`]. [`Unchecked`](ShaderChecks::Unchecked) is
/// only offered for [`FusedPlan`]s (see [`Executor::prepare`]), whose
/// kernels are safe without the checks by construction. Which one is faster
/// depends on the adapter: measure (`weft tune`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ShaderChecks {
    #[default]
    Checked,
    Unchecked,
}

impl ShaderChecks {
    /// `checked` or `unchecked`, as written in the tuning cache and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            ShaderChecks::Checked => "checked",
            ShaderChecks::Unchecked => "unchecked",
        }
    }

    /// The inverse of [`ShaderChecks::as_str`].
    pub fn parse(text: &str) -> Option<ShaderChecks> {
        match text {
            "checked" => Some(ShaderChecks::Checked),
            "unchecked" => Some(ShaderChecks::Unchecked),
            _ => None,
        }
    }
}

impl std::fmt::Display for ShaderChecks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An upload at least this large is flushed to the device at once, so that
/// wgpu's staging copies of a model's weights never pile up.
const FLUSH_BYTES: usize = 16 << 20;

/// Runs plans on one device, keeping compiled pipelines across runs.
pub struct Executor {
    gpu: Gpu,
    /// Compiled pipelines; steps refer to them by index.
    pipelines: Vec<wgpu::ComputePipeline>,
    /// The index of each pipeline by everything that went into it: the whole
    /// kernel source, not a hash of it, so that no kernel can ever run
    /// another's pipeline (or one compiled with other checks).
    pipeline_index: HashMap<PipelineKey, usize>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct PipelineKey {
    wgsl: String,
    entry_point: String,
    workgroup_size: [u32; 3],
    checks: ShaderChecks,
}

/// `wgsl` from its first line that is not a `//` comment.
fn shader_without_header(wgsl: &str) -> &str {
    let mut rest = wgsl;
    while rest.starts_with("//") {
        rest = rest.split_once('\n').map_or("", |(_, tail)| tail);
    }
    rest
}

/// `len` elements from element `from_start` of buffer `from` to element
/// `to_start` of buffer `to` ([`Executor::copy_elements`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElementCopy {
    pub from: String,
    pub from_start: u64,
    pub to: String,
    pub to_start: u64,
    pub len: u64,
}

/// A plan with its buffers allocated and pipelines compiled, ready to run repeatedly.
pub struct Prepared {
    buffers: BTreeMap<String, wgpu::Buffer>,
    /// (kernel name, pipeline index, bind group, workgroup counts), in dispatch order.
    steps: Vec<(String, usize, wgpu::BindGroup, [u32; 3])>,
    /// Bytes, shape and element type of each input.
    inputs: BTreeMap<String, (u64, Vec<usize>, ElemType)>,
    /// Bytes and element type of each output.
    outputs: BTreeMap<String, (u64, ElemType)>,
    /// Bytes of each state buffer (kept across runs, read and restored by name).
    states: BTreeMap<String, u64>,
    total_bytes: u64,
}

impl Prepared {
    /// Device memory held by the plan's buffers.
    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }

    /// The names of the plan's inputs.
    pub fn input_names(&self) -> Vec<&str> {
        self.inputs.keys().map(String::as_str).collect()
    }

    /// The bytes of an f32 input, output or state buffer called `name`.
    fn f32_bytes(&self, name: &str) -> Result<u64, RuntimeError> {
        let input = self.inputs.get(name).map(|(bytes, _, elem)| (*bytes, *elem));
        let output = self.outputs.get(name).copied();
        let state = self.states.get(name).map(|&bytes| (bytes, ElemType::F32));
        match input.or(output).or(state) {
            Some((bytes, ElemType::F32)) => Ok(bytes),
            _ => Err(RuntimeError::UnknownHostBuffer { name: name.to_string() }),
        }
    }

    /// The names of the plan's kernels, in dispatch order.
    pub fn kernel_names(&self) -> Vec<&str> {
        self.steps.iter().map(|(name, ..)| name.as_str()).collect()
    }
}

/// Kernels that differ only in their leading comment lines (the compiler
/// heads each module with `// name: what it computes`) share a pipeline:
/// the layers of a model emit the same shaders, and compiling each again
/// cost a deep model minutes and gigabytes on lavapipe.
fn pipeline_key(kernel: &Kernel, checks: ShaderChecks) -> PipelineKey {
    PipelineKey {
        wgsl: shader_without_header(&kernel.wgsl).to_string(),
        entry_point: kernel.entry_point.clone(),
        workgroup_size: kernel.workgroup_size,
        checks,
    }
}

impl Executor {
    pub fn new(gpu: Gpu) -> Self {
        Executor { gpu, pipelines: Vec::new(), pipeline_index: HashMap::new() }
    }

    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// Number of distinct pipelines compiled so far.
    pub fn cached_pipelines(&self) -> usize {
        self.pipelines.len()
    }

    /// Compiles (or reuses) the plan's pipelines and allocates its buffers.
    /// A compiler plan keeps wgpu's runtime checks; a [`FusedPlan`] runs with
    /// its own [`ShaderChecks`], the one way to run kernels unchecked.
    pub fn prepare<'p>(&mut self, plan: impl Into<Runnable<'p>>) -> Result<Prepared, RuntimeError> {
        match plan.into() {
            Runnable::Plan(plan) => self.prepare_with(plan, ShaderChecks::Checked),
            Runnable::Fused(fused) => self.prepare_with(fused.plan(), fused.checks()),
        }
    }

    /// Prepares `plan` with `checks`. `ShaderChecks::Unchecked` is passed only
    /// by [`Executor::prepare`] for plans [`FusedPlan`] guarantees.
    fn prepare_with(&mut self, plan: &KernelPlan, checks: ShaderChecks) -> Result<Prepared, RuntimeError> {
        let limits = self.gpu.limits();
        let mut keys = Vec::with_capacity(plan.kernels.len());
        for kernel in &plan.kernels {
            if kernel.workgroups.iter().any(|&w| w > limits.max_workgroups_per_dimension) {
                return Err(RuntimeError::DispatchTooLarge {
                    kernel: kernel.name.clone(),
                    workgroups: kernel.workgroups,
                    limit: limits.max_workgroups_per_dimension,
                });
            }
            keys.push(self.pipeline(kernel, checks)?);
        }
        let device = &self.gpu.device;
        let mut buffers = BTreeMap::new();
        let mut inputs = BTreeMap::new();
        let mut outputs = BTreeMap::new();
        let mut states = BTreeMap::new();
        let mut total_bytes = 0;
        for (name, decl) in &plan.buffers {
            // wgpu rejects empty bindings; copies need 4-byte multiples.
            let bytes = decl.bytes.max(4).next_multiple_of(4);
            if bytes > limits.max_buffer_size {
                return Err(RuntimeError::BufferTooLarge {
                    name: name.clone(),
                    bytes,
                    limit: limits.max_buffer_size,
                });
            }
            let uniform = plan
                .kernels
                .iter()
                .flat_map(|k| &k.bindings)
                .any(|b| &b.buffer == name && b.access == Access::Uniform);
            let mut usage = wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC;
            usage |= if uniform { wgpu::BufferUsages::UNIFORM } else { wgpu::BufferUsages::STORAGE };
            let buffer = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(name),
                size: bytes,
                usage,
                mapped_at_creation: false,
            });
            match &decl.role {
                BufferRole::Const(data) => self.gpu.queue.write_buffer(&buffer, 0, data),
                BufferRole::Input => {
                    inputs.insert(name.clone(), (decl.bytes, decl.shape.clone(), decl.elem));
                }
                BufferRole::Output => {
                    outputs.insert(name.clone(), (decl.bytes, decl.elem));
                }
                // wgpu zeroes new buffers: moments and accumulators start at 0.
                BufferRole::State => {
                    states.insert(name.clone(), decl.bytes);
                }
                BufferRole::Scratch => {}
            }
            total_bytes += bytes;
            buffers.insert(name.clone(), buffer);
        }

        let mut steps = Vec::with_capacity(plan.kernels.len());
        for (kernel, key) in plan.kernels.iter().zip(keys) {
            let pipeline = &self.pipelines[key];
            let mut entries = Vec::with_capacity(kernel.bindings.len());
            for b in &kernel.bindings {
                let buffer = buffers.get(&b.buffer).ok_or_else(|| RuntimeError::UnknownBuffer {
                    kernel: kernel.name.clone(),
                    buffer: b.buffer.clone(),
                })?;
                let (offset, size) = b.range.unwrap_or((0, buffer.size()));
                if offset % u64::from(limits.storage_offset_alignment.max(1)) != 0 {
                    return Err(RuntimeError::BindingMisaligned {
                        kernel: kernel.name.clone(),
                        buffer: b.buffer.clone(),
                        offset,
                        alignment: limits.storage_offset_alignment,
                    });
                }
                if b.access != Access::Uniform && size > limits.max_storage_binding {
                    return Err(RuntimeError::BindingTooLarge {
                        kernel: kernel.name.clone(),
                        buffer: b.buffer.clone(),
                        bytes: size,
                        limit: limits.max_storage_binding,
                    });
                }
                entries.push(wgpu::BindGroupEntry {
                    binding: b.index,
                    resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer,
                        offset,
                        size: NonZeroU64::new(size),
                    }),
                });
            }
            let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
            let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(&kernel.name),
                layout: &pipeline.get_bind_group_layout(0),
                entries: &entries,
            });
            if let Some(e) = pollster::block_on(scope.pop()) {
                return Err(RuntimeError::Pipeline { kernel: kernel.name.clone(), message: e.to_string() });
            }
            steps.push((kernel.name.clone(), key, bind_group, kernel.workgroups));
        }
        Ok(Prepared { buffers, steps, inputs, outputs, states, total_bytes })
    }

    /// Compiles a kernel's pipeline unless an identical kernel was compiled
    /// before with the same checks.
    fn pipeline(&mut self, kernel: &Kernel, checks: ShaderChecks) -> Result<usize, RuntimeError> {
        let key = pipeline_key(kernel, checks);
        if let Some(&index) = self.pipeline_index.get(&key) {
            return Ok(index);
        }
        let device = &self.gpu.device;
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let descriptor = wgpu::ShaderModuleDescriptor {
            label: Some(&kernel.name),
            source: wgpu::ShaderSource::Wgsl(kernel.wgsl.as_str().into()),
        };
        let module = match checks {
            ShaderChecks::Checked => device.create_shader_module(descriptor),
            // SAFETY: `Unchecked` reaches here only from `prepare` of a `Runnable::Fused`, so
            // `kernel` belongs to a `FusedPlan`: a plan that
            // `weft_compiler::plan_attention` made from a validated description
            // inside `FusedPlan::new` and that nobody can modify since (its
            // fields are private and it hands out shared references only). Its
            // kernels are therefore the compiler's fused attention kernels,
            // validated by naga, with the bindings and buffer sizes the planner
            // declared, and they meet what `ShaderRuntimeChecks::unchecked()`
            // asks of the caller:
            // - bounds: every storage index is `(base + row) * D4 + d` or
            //   `base + row` with `d < D4`, `row < N` (loads clamp it with
            //   `min(.., N - 1)`, stores test `< N`, visited rows are
            //   `first + j` with `j < min(B, N - first)`), `base = bh * N` and
            //   `bh < bh_count` (workgroups past `blocks * bh_count` return
            //   first), so they stay inside the `bh_count * N` rows the planner
            //   binds for the chunk; block-table reads follow the row pointers
            //   the planner packed into the same constant buffer (`head < H`,
            //   block rows `< NQB` / `NKB`); the RoPE table, bound whole as
            //   `max(N, 2) * RS` vec4s, is read at `row * RS + c` with
            //   `row < N` as above or `row = 1`, and `c < 2 * D4 = RS`;
            // - loops: the tile loop runs from one packed row pointer to the
            //   next and the row loops to `count <= B`: all terminate;
            // - integer division: divisors are the positive constants
            //   `NQB`, `NKB`, `H`, `N` and mask sizes that `FusedAttentionDesc::
            //   head_masks` checked to be non-zero and within ±2^30 for every
            //   head, so no division by zero and no `i32::MIN / -1`;
            // - no ray queries, task or mesh shaders.
            ShaderChecks::Unchecked => unsafe {
                device.create_shader_module_trusted(descriptor, wgpu::ShaderRuntimeChecks::unchecked())
            },
        };
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(&kernel.name),
            layout: None,
            module: &module,
            entry_point: Some(&kernel.entry_point),
            compilation_options: wgpu::PipelineCompilationOptions::default(),
            cache: None,
        });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(RuntimeError::Pipeline { kernel: kernel.name.clone(), message: e.to_string() });
        }
        let index = self.pipelines.len();
        self.pipelines.push(pipeline);
        self.pipeline_index.insert(key, index);
        Ok(index)
    }

    /// Uploads the plan's inputs, `Vec<f32>`s or [`HostValues`] of each
    /// buffer's element type (`I64` narrowed into `i32` buffers); every input
    /// must be given, with its exact size.
    pub fn upload<V: HostInput>(
        &self,
        prepared: &Prepared,
        inputs: &HashMap<String, V>,
    ) -> Result<(), RuntimeError> {
        self.upload_from(prepared, inputs.keys(), |name| inputs.get(name).map(HostInput::as_slice))
    }

    /// Uploads only the given inputs (each checked for name, size and type):
    /// what changes between runs (token ids), while the rest (weights) stays.
    pub fn upload_some<V: HostInput>(
        &self,
        prepared: &Prepared,
        inputs: &HashMap<String, V>,
    ) -> Result<(), RuntimeError> {
        let expected = || prepared.inputs.keys().cloned().collect::<Vec<_>>().join(", ");
        for (name, values) in inputs {
            if !prepared.inputs.contains_key(name) {
                return Err(RuntimeError::UnexpectedInput { name: name.clone(), expected: expected() });
            }
            self.write_input(prepared, name, values.as_slice())?;
        }
        Ok(())
    }

    /// Reads an input, output or state buffer back by name, as f32 values:
    /// the weights and optimizer state a checkpoint saves.
    pub fn read_f32(&self, prepared: &Prepared, name: &str) -> Result<Vec<f32>, RuntimeError> {
        let bytes = prepared.f32_bytes(name)?;
        self.read(name, &prepared.buffers[name], bytes)
    }

    /// Overwrites an input or state buffer by name with f32 values of its
    /// exact size: restoring weights and optimizer state from a checkpoint.
    pub fn write_f32(&self, prepared: &Prepared, name: &str, values: &[f32]) -> Result<(), RuntimeError> {
        let bytes = prepared.f32_bytes(name)?;
        if values.len() as u64 * 4 != bytes {
            return Err(RuntimeError::InputSize {
                name: name.to_string(),
                expected: (bytes / 4) as usize,
                found: values.len(),
                shape: vec![(bytes / 4) as usize],
            });
        }
        self.gpu.queue.write_buffer(&prepared.buffers[name], 0, bytemuck::cast_slice(values));
        Ok(())
    }

    /// Writes `values` into input `name` from element `start` on: the few
    /// entries of a large input that change between runs (a decode cache's
    /// slot positions). Values must have the buffer's element type.
    pub fn write_at(
        &self,
        prepared: &Prepared,
        name: &str,
        start: u64,
        values: HostSlice,
    ) -> Result<(), RuntimeError> {
        let Some((bytes, _, elem)) = prepared.inputs.get(name) else {
            return Err(RuntimeError::UnknownHostBuffer { name: name.to_string() });
        };
        if elem.is_packed() {
            return Err(RuntimeError::InputType { name: name.to_string(), expected: *elem, found: "a part" });
        }
        let (len, end) = (bytes / 4, start + values.len() as u64);
        if end > len {
            return Err(RuntimeError::OutOfBuffer { name: name.to_string(), start, end, len });
        }
        let data = values.bytes(name, *elem)?;
        self.gpu.queue.write_buffer(&prepared.buffers[name], start * 4, &data);
        Ok(())
    }

    /// Copies runs of 4-byte elements between the plan's buffers on the
    /// device, in one submission: a decode step's new keys and values into
    /// their cache slots, with no trip through the host.
    pub fn copy_elements(&self, prepared: &Prepared, copies: &[ElementCopy]) -> Result<(), RuntimeError> {
        let buffer = |name: &str| {
            prepared
                .buffers
                .get(name)
                .ok_or_else(|| RuntimeError::UnknownHostBuffer { name: name.to_string() })
        };
        let mut encoder =
            self.gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("copies") });
        for c in copies {
            let (from, to) = (buffer(&c.from)?, buffer(&c.to)?);
            for (name, b, start) in [(&c.from, from, c.from_start), (&c.to, to, c.to_start)] {
                let len = b.size() / 4;
                if start + c.len > len {
                    return Err(RuntimeError::OutOfBuffer {
                        name: name.clone(),
                        start,
                        end: start + c.len,
                        len,
                    });
                }
            }
            encoder.copy_buffer_to_buffer(from, c.from_start * 4, to, c.to_start * 4, c.len * 4);
        }
        self.gpu.queue.submit([encoder.finish()]);
        Ok(())
    }

    /// Checks the given names, then writes every input `get` returns.
    fn upload_from<'a>(
        &self,
        prepared: &Prepared,
        given: impl Iterator<Item = &'a String>,
        get: impl Fn(&str) -> Option<HostSlice<'a>>,
    ) -> Result<(), RuntimeError> {
        let expected = || prepared.inputs.keys().cloned().collect::<Vec<_>>().join(", ");
        for name in given {
            if !prepared.inputs.contains_key(name) {
                return Err(RuntimeError::UnexpectedInput { name: name.clone(), expected: expected() });
            }
        }
        for name in prepared.inputs.keys() {
            let data = get(name)
                .ok_or_else(|| RuntimeError::MissingInput { name: name.clone(), expected: expected() })?;
            self.write_input(prepared, name, data)?;
        }
        Ok(())
    }

    /// Writes input `name` (which the plan has) after checking its size and type.
    fn write_input(&self, prepared: &Prepared, name: &str, data: HostSlice) -> Result<(), RuntimeError> {
        let Some((bytes, shape, elem)) = prepared.inputs.get(name) else {
            return Err(RuntimeError::UnknownHostBuffer { name: name.to_string() });
        };
        // A packed buffer holds two values per word.
        let want = if elem.is_packed() { shape.iter().product() } else { (*bytes / 4) as usize };
        if data.len() != want {
            return Err(RuntimeError::InputSize {
                name: name.to_string(),
                expected: want,
                found: data.len(),
                shape: shape.clone(),
            });
        }
        let data = data.bytes(name, *elem)?;
        self.gpu.queue.write_buffer(&prepared.buffers[name], 0, &data);
        if data.len() >= FLUSH_BYTES {
            // wgpu copies each write into a staging buffer that lives until
            // a submission completes: without this, uploading a model's
            // weights would hold a second copy of all of them.
            self.gpu.queue.submit([]);
            self.gpu
                .device
                .poll(wgpu::PollType::wait_indefinitely())
                .map_err(|e| RuntimeError::Device { message: format!("uploading `{name}`: {e}") })?;
        }
        Ok(())
    }

    /// Dispatches every kernel in order and waits for the device; returns the wall time.
    pub fn execute(&self, prepared: &Prepared) -> Result<Duration, RuntimeError> {
        self.execute_range(prepared, 0..prepared.steps.len())
    }

    /// Dispatches the kernels `range` of the plan (in plan order) and waits:
    /// one part of a plan that runs in parts, such as a training step's
    /// micro-batch and its optimizer update.
    pub fn execute_range(&self, prepared: &Prepared, range: Range<usize>) -> Result<Duration, RuntimeError> {
        let device = &self.gpu.device;
        let start = Instant::now();
        let steps = prepared
            .steps
            .get(range.clone())
            .ok_or(RuntimeError::NoSuchKernels { range, kernels: prepared.steps.len() })?;
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let mut encoder =
            device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("weft plan") });
        for (name, key, bind_group, [x, y, z]) in steps {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(name),
                timestamp_writes: None,
            });
            pass.set_pipeline(&self.pipelines[*key]);
            pass.set_bind_group(0, bind_group, &[]);
            pass.dispatch_workgroups(*x, *y, *z);
        }
        self.gpu.queue.submit([encoder.finish()]);
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(RuntimeError::Device { message: e.to_string() });
        }
        device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| RuntimeError::Device { message: e.to_string() })?;
        Ok(start.elapsed())
    }

    /// Dispatches every kernel in order, each in its own submission, waiting for
    /// the device after each: the wall time of every kernel, in dispatch order
    /// (see [`Prepared::kernel_names`]). Slower than [`Executor::execute`] by
    /// the submissions; for measuring where the time goes.
    pub fn execute_each(&self, prepared: &Prepared) -> Result<Vec<Duration>, RuntimeError> {
        let device = &self.gpu.device;
        let mut times = Vec::with_capacity(prepared.steps.len());
        for (name, key, bind_group, [x, y, z]) in &prepared.steps {
            let start = Instant::now();
            let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
            let mut encoder =
                device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(name) });
            {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some(name),
                    timestamp_writes: None,
                });
                pass.set_pipeline(&self.pipelines[*key]);
                pass.set_bind_group(0, bind_group, &[]);
                pass.dispatch_workgroups(*x, *y, *z);
            }
            self.gpu.queue.submit([encoder.finish()]);
            if let Some(e) = pollster::block_on(scope.pop()) {
                return Err(RuntimeError::Device { message: e.to_string() });
            }
            device
                .poll(wgpu::PollType::wait_indefinitely())
                .map_err(|e| RuntimeError::Device { message: e.to_string() })?;
            times.push(start.elapsed());
        }
        Ok(times)
    }

    /// Reads every output buffer back: as `Vec<f32>` (an integer output is
    /// then an error) or as [`HostValues`] of each buffer's type.
    pub fn download<T: HostOutput>(&self, prepared: &Prepared) -> Result<HashMap<String, T>, RuntimeError> {
        let mut out = HashMap::with_capacity(prepared.outputs.len());
        for (name, &(bytes, elem)) in &prepared.outputs {
            let buffer = &prepared.buffers[name];
            let values = match elem {
                ElemType::F32 => HostValues::F32(self.read(name, buffer, bytes)?),
                ElemType::I32 => HostValues::I32(self.read(name, buffer, bytes)?),
                // Plans store only read-only leaves packed, never an output.
                found @ (ElemType::Bf16 | ElemType::F16) => {
                    return Err(RuntimeError::OutputType { name: name.clone(), found });
                }
            };
            out.insert(name.clone(), T::from_values(name, values)?);
        }
        Ok(out)
    }

    /// The first `bytes` bytes of `buffer`, as 4-byte values.
    fn read<T: bytemuck::Pod>(
        &self,
        name: &str,
        buffer: &wgpu::Buffer,
        bytes: u64,
    ) -> Result<Vec<T>, RuntimeError> {
        let device = &self.gpu.device;
        let size = bytes.max(4).next_multiple_of(4);
        let staging = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("weft readback"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder =
            device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("readback") });
        encoder.copy_buffer_to_buffer(buffer, 0, &staging, 0, size);
        self.gpu.queue.submit([encoder.finish()]);
        let (tx, rx) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        let fail = |message: String| RuntimeError::Readback { buffer: name.to_string(), message };
        device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| fail(e.to_string()))?;
        rx.recv().map_err(|e| fail(e.to_string()))?.map_err(|e| fail(e.to_string()))?;
        let values = {
            let view = staging.get_mapped_range(..).map_err(|e| fail(e.to_string()))?;
            bytemuck::cast_slice::<u8, T>(&view[..bytes as usize]).to_vec()
        };
        staging.unmap();
        Ok(values)
    }

    /// Prepares, uploads, executes and downloads in one call; the outputs
    /// are f32 (for integer outputs, download [`HostValues`] yourself).
    pub fn run<'p, V: HostInput>(
        &mut self,
        plan: impl Into<Runnable<'p>>,
        inputs: &HashMap<String, V>,
    ) -> Result<HashMap<String, Vec<f32>>, RuntimeError> {
        let prepared = self.prepare(plan)?;
        self.upload(&prepared, inputs)?;
        self.execute(&prepared)?;
        self.download(&prepared)
    }
}

/// A plan the executor runs: the compiler's (with wgpu's runtime checks) or
/// a sealed fused attention plan (with its own [`ShaderChecks`]).
#[derive(Clone, Copy, Debug)]
pub enum Runnable<'p> {
    Plan(&'p KernelPlan),
    Fused(&'p FusedPlan),
}

impl<'p> From<&'p KernelPlan> for Runnable<'p> {
    fn from(plan: &'p KernelPlan) -> Self {
        Runnable::Plan(plan)
    }
}

impl<'p> From<&'p FusedPlan> for Runnable<'p> {
    fn from(plan: &'p FusedPlan) -> Self {
        Runnable::Fused(plan)
    }
}
