//! The compiler's output: kernels and the buffers they bind, described without
//! reference to any device, so that one plan can run on any adapter.

use std::collections::BTreeMap;

/// How a kernel uses a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// `var<storage, read>`.
    Read,
    /// `var<storage, read_write>`.
    ReadWrite,
    /// `var<uniform>`.
    Uniform,
}

/// Binding `index` of `@group(0)` is the plan buffer called `buffer`, or the
/// byte range `range` of it (for buffers larger than one storage binding may be).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Binding {
    pub index: u32,
    pub buffer: String,
    pub access: Access,
    /// `(offset, size)` in bytes; `None` binds the whole buffer. Offsets are
    /// multiples of 256, the largest storage-offset alignment WebGPU allows.
    pub range: Option<(u64, u64)>,
}

/// One compute dispatch: validated WGSL plus how to bind and launch it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Kernel {
    /// Human-readable, unique within a plan (e.g. `attn_fwd_s2attn_roll`).
    pub name: String,
    /// WGSL source; it has passed naga validation.
    pub wgsl: String,
    pub entry_point: String,
    pub workgroup_size: [u32; 3],
    /// Workgroup counts; each is at most the device limit the plan was made for
    /// (65,535 on every WebGPU device), larger grids are folded by the kernel.
    pub workgroups: [u32; 3],
    pub bindings: Vec<Binding>,
    /// Estimated work of this dispatch, for reports: useful FLOPs (2 per
    /// multiply-add) and bytes of global memory read and written. The fused
    /// attention planner counts visited tiles exactly; the graph planner
    /// takes the cost model's price of the node (see `optimize::cost`).
    pub flops: u64,
    pub bytes: u64,
}

/// What a buffer holds across the plan.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum BufferRole {
    /// Uploaded by the caller before the plan runs (q, k, v, do).
    Input,
    /// Read back by the caller after the plan runs (o, dq, dk, dv).
    Output,
    /// Written and read by kernels only (lse, delta, intermediates).
    Scratch,
    /// Contents fixed by the compiler (block tables, uniforms), uploaded once.
    Const(Vec<u8>),
    /// Kept across runs of the plan and never shared: zero when allocated,
    /// then written by kernels (optimizer moments, gradient accumulators)
    /// and read or restored by the host only explicitly (checkpoints).
    State,
}

/// The element type a buffer holds on the device, as kernels read it and as
/// the host uploads or downloads it.
///
/// Not [`weft_ir::graph::DType`]: that is a tensor's type in the graph, and
/// the device stores fewer types than graphs name. An `i64` leaf (token ids,
/// targets) lives in an `i32` buffer, narrowed on upload. `Bf16` and `F16`
/// are a storage choice for read-only f32 leaves (a model's frozen weights,
/// as its checkpoint stores them): two values per 32-bit word, low half
/// first, widened to f32 by the kernels' accessors, so the arithmetic is the
/// same as from an f32 buffer holding the widened values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ElemType {
    #[default]
    F32,
    I32,
    Bf16,
    F16,
}

impl ElemType {
    /// The WGSL scalar type kernels compute with: `f32` or `i32`.
    pub fn wgsl(self) -> &'static str {
        match self {
            ElemType::F32 | ElemType::Bf16 | ElemType::F16 => "f32",
            ElemType::I32 => "i32",
        }
    }

    /// The lowercase name plans and errors print.
    pub fn name(self) -> &'static str {
        match self {
            ElemType::F32 => "f32",
            ElemType::I32 => "i32",
            ElemType::Bf16 => "bf16",
            ElemType::F16 => "f16",
        }
    }

    /// Two values per 32-bit word (`Bf16`, `F16`).
    pub fn is_packed(self) -> bool {
        matches!(self, ElemType::Bf16 | ElemType::F16)
    }

    /// Bytes a buffer of `elems` values takes: a whole number of 32-bit words.
    pub fn buffer_bytes(self, elems: u64) -> u64 {
        if self.is_packed() { elems.div_ceil(2) * 4 } else { elems * 4 }
    }
}

impl std::fmt::Display for ElemType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A buffer of the plan; `bytes` is its size, a multiple of 4.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BufferDecl {
    pub name: String,
    pub bytes: u64,
    pub role: BufferRole,
    /// The tensor shape stored (row-major), for inputs and outputs.
    pub shape: Vec<usize>,
    /// The type of the stored elements; what the executor checks uploads
    /// against. `Const` buffers are raw bytes the compiler wrote (the fused
    /// planner's 32-bit words), for which it is only informative.
    pub elem: ElemType,
}

/// Kernels to run in order over a set of named buffers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelPlan {
    pub buffers: BTreeMap<String, BufferDecl>,
    pub kernels: Vec<Kernel>,
}

impl KernelPlan {
    /// The largest single buffer, in bytes: what must fit one storage binding.
    pub fn largest_buffer(&self) -> u64 {
        self.buffers.values().map(|b| b.bytes).max().unwrap_or(0)
    }

    /// The sum of all buffer sizes, in bytes: the plan's device memory.
    pub fn total_bytes(&self) -> u64 {
        self.buffers.values().map(|b| b.bytes).sum()
    }
}
