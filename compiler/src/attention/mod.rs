//! Kernel planning for fused attention (DESIGN.md, "The path of a pattern", steps 4–5).
//!
//! [`plan_attention`] takes one fused attention node ([`FusedAttentionDesc`]),
//! classifies every (query block, key block) tile of every head's mask, builds
//! the block tables ([`BlockTables`]), emits the forward kernel (and with
//! [`AttentionPlanOptions::backward`] the three backward kernels), validates them with
//! naga, and lays the work out in dispatches that respect the device limits:
//! grids wider than `max_workgroups_per_dimension` are folded into two dimensions,
//! and tensors larger than `max_storage_binding` are bound and dispatched one
//! chunk of (batch, head) pairs at a time.

mod bodies;
mod chunks;
mod error;
mod kernels;
mod shape;
mod stats;
mod subgroup;
mod tables;

use std::ops::Range;

use weft_ir::graph::{HeadMask, RopeParams};
use weft_ir::{ConcreteMask, Mask, Pattern, Schedule};

use crate::device::DeviceLimits;
use crate::kernel::{Binding, BufferDecl, BufferRole, ElemType, Kernel, KernelPlan};
use crate::mask::{MAX_MAGNITUDE, MaskError, check_sizes, mask_functions};
use crate::shader::validate_wgsl;

pub use chunks::{Chunk, fold_grid};
pub use error::AttentionError;
pub use kernels::{BindingSpec, KernelSource, delta_kernel, dkdv_kernel, dq_kernel, forward_kernel};
pub use shape::{AttentionShape, EMPTY_ROW_LSE};
pub use stats::{PlanStats, TableStats};
pub use tables::{BlockTable, BlockTables, TileRef, pack};

/// One fused attention node: `softmax(scale * q k^T, masked) v` for every
/// (batch, head), with `q, k, v, o: f32 [batch, n_heads, seq_len, head_dim]`.
#[derive(Clone, Debug, PartialEq)]
pub struct FusedAttentionDesc {
    pub name: String,
    pub batch: usize,
    pub n_heads: usize,
    pub seq_len: usize,
    pub head_dim: usize,
    /// Masks by head range; the ranges tile `0..n_heads`. Head `h` uses
    /// `mask.for_head(h)?.canonical(seq_len)`.
    pub heads: Vec<(Range<usize>, Mask)>,
    pub scale: f32,
    /// RoPE on load: q and k are rotated as the kernels read them, and the
    /// backward turns dq and dk back by the transposed rotation before storing.
    pub rope: Option<RopeParams>,
}

impl FusedAttentionDesc {
    /// The fused attention of `pattern` (which must have been resolved at
    /// `seq_len`: a `Pattern` does not record it), with the usual scale
    /// `1 / sqrt(head_dim)`.
    pub fn from_pattern(pattern: &Pattern, seq_len: usize, batch: usize, head_dim: usize) -> Self {
        FusedAttentionDesc {
            name: pattern.name.clone(),
            batch,
            n_heads: pattern.n_heads(),
            seq_len,
            head_dim,
            heads: pattern.groups.iter().map(|g| (g.heads.clone(), g.mask.clone())).collect(),
            scale: 1.0 / (head_dim as f32).sqrt(),
            rope: None,
        }
    }

    /// The fused attention of a graph node (`FusedAttention` or one of its
    /// gradients) with these attributes and a `q` of shape `q_shape`
    /// (`[batch, n_heads, seq_len, head_dim]`); `None` for another rank.
    pub fn from_node(
        name: impl Into<String>,
        heads: &[HeadMask],
        scale: f64,
        rope: Option<RopeParams>,
        q_shape: &[usize],
    ) -> Option<Self> {
        let &[batch, n_heads, seq_len, head_dim] = q_shape else { return None };
        Some(FusedAttentionDesc {
            name: name.into(),
            batch,
            n_heads,
            seq_len,
            head_dim,
            heads: heads.iter().map(|h| (h.heads.clone(), h.mask.clone())).collect(),
            scale: scale as f32,
            rope,
        })
    }

    /// The fused attention of pattern `pattern_index` of `schedule`, at the
    /// schedule's sequence length and head dimension.
    pub fn from_schedule(schedule: &Schedule, pattern_index: usize, batch: usize) -> Option<Self> {
        let pattern = schedule.patterns.get(pattern_index)?;
        Some(Self::from_pattern(pattern, schedule.dims.seq_len, batch, schedule.dims.head_dim))
    }

    fn invalid(&self, message: impl Into<String>) -> AttentionError {
        AttentionError::InvalidDesc { name: self.name.clone(), message: message.into() }
    }

    fn mask_error(&self, e: MaskError) -> AttentionError {
        AttentionError::Mask { name: self.name.clone(), head: e.head, message: e.reason }
    }

    /// Checks sizes and head ranges.
    pub fn validate(&self) -> Result<(), AttentionError> {
        let max = MAX_MAGNITUDE as usize;
        if self.batch == 0 || self.n_heads == 0 || self.seq_len == 0 {
            return Err(self.invalid(format!(
                "batch ({}), heads ({}) and sequence length ({}) must be positive",
                self.batch, self.n_heads, self.seq_len
            )));
        }
        if self.seq_len > max || self.n_heads > max {
            return Err(self.invalid(format!("sequence length {} is beyond 2^30", self.seq_len)));
        }
        if self.head_dim == 0 || !self.head_dim.is_multiple_of(4) {
            return Err(self.invalid(format!(
                "head dimension {} is not a positive multiple of 4 (rows are read as vec4)",
                self.head_dim
            )));
        }
        if !self.scale.is_finite() {
            return Err(self.invalid(format!("scale {} is not finite", self.scale)));
        }
        if let Some(r) = self.rope {
            let theta_ok = r.theta.is_finite() && r.theta > 0.0;
            if !theta_ok || !r.position_scale.is_finite() || r.position_scale == 0.0 {
                return Err(self.invalid(format!("{r}: theta must be positive, position_scale nonzero")));
            }
        }
        let mut next = 0;
        for (range, _) in &self.heads {
            if range.start != next || range.end <= range.start {
                return Err(self.invalid(format!(
                    "head ranges must tile 0..{} in order; found {}..{} where {next}.. was expected",
                    self.n_heads, range.start, range.end
                )));
            }
            next = range.end;
        }
        if next != self.n_heads {
            return Err(self.invalid(format!("head ranges cover 0..{next}, not 0..{}", self.n_heads)));
        }
        Ok(())
    }

    /// Each head's canonical concrete mask, after checking that its sizes fit
    /// the kernels' 32-bit arithmetic.
    pub fn head_masks(&self) -> Result<Vec<ConcreteMask>, AttentionError> {
        self.validate()?;
        let n = self.seq_len as i64;
        let mut masks = Vec::with_capacity(self.n_heads);
        for (range, mask) in &self.heads {
            check_sizes(mask, range.clone(), self.seq_len).map_err(|e| self.mask_error(e))?;
            for head in range.clone() {
                let concrete = mask
                    .for_head(head)
                    .map_err(|e| self.mask_error(MaskError { head, reason: e.to_string() }))?;
                masks.push(concrete.canonical(n));
            }
        }
        Ok(masks)
    }
}

/// How the attention kernels load the rows a workgroup visits (the keys and
/// values of the forward and dQ kernels, the queries and output gradients of
/// dK/dV).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum AttentionKernel {
    /// Every invocation loads each visited row itself: runs on any device.
    #[default]
    Lanes,
    /// The lanes of a subgroup load each visited row between them and
    /// broadcast it (`subgroup.rs`). Where the device's subgroups, the
    /// workgroup size or RoPE's layout rule it out, the planner runs the lane
    /// kernels instead ([`AttentionPlanOptions::kernel_for`]).
    Subgroup,
}

impl AttentionKernel {
    pub const ALL: [AttentionKernel; 2] = [AttentionKernel::Lanes, AttentionKernel::Subgroup];

    /// `lanes` or `subgroup`: the name in tuning caches and tables.
    pub fn name(self) -> &'static str {
        match self {
            AttentionKernel::Lanes => "lanes",
            AttentionKernel::Subgroup => "subgroup",
        }
    }
}

impl std::fmt::Display for AttentionKernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.name())
    }
}

impl std::str::FromStr for AttentionKernel {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        AttentionKernel::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| format!("attention kernel `{s}` is neither `lanes` nor `subgroup`"))
    }
}

/// How to plan: tile sizes, invocation shape and device limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttentionPlanOptions {
    /// Query rows per tile (and per workgroup of the forward and dQ kernels).
    pub block_q: usize,
    /// Key rows per tile (and per workgroup of the dK/dV kernel).
    pub block_k: usize,
    /// The device's limits: the largest storage binding (tensors beyond it
    /// are worked through in chunks) and workgroups per grid dimension.
    pub limits: DeviceLimits,
    /// Emit the backward kernels too.
    pub backward: bool,
    /// Rows each invocation owns, held in registers; divides both block sizes.
    /// A workgroup has `block / rows_per_invocation` invocations. `0` picks
    /// [`AttentionPlanOptions::auto_rows`] for the head dimension.
    pub rows_per_invocation: usize,
    /// With `backward`: the forward pass already ran and kept `o` and `lse`,
    /// so they are inputs and the plan is the backward kernels alone. Without
    /// it the plan runs the forward first to recompute them.
    pub saved_forward: bool,
    /// How visited rows are loaded.
    pub kernel: AttentionKernel,
}

impl Default for AttentionPlanOptions {
    fn default() -> Self {
        AttentionPlanOptions {
            block_q: 32,
            block_k: 32,
            limits: DeviceLimits::default(),
            backward: false,
            rows_per_invocation: 0,
            saved_forward: false,
            kernel: AttentionKernel::Lanes,
        }
    }
}

/// The measured part of [`AttentionPlanOptions`]: tile sizes and rows per invocation,
/// for planners that supply the device limits themselves (the op-by-op
/// planner of whole models, [`crate::GraphPlanOptions`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionTiles {
    pub block_q: usize,
    pub block_k: usize,
    /// `0` is the planner's automatic choice ([`AttentionPlanOptions::auto_rows`]).
    pub rows_per_invocation: usize,
    /// The head dimension `rows_per_invocation` was measured at: rows trade
    /// registers against loads, so at another head dimension the automatic
    /// choice applies. `None`: at every head dimension.
    pub rows_head_dim: Option<usize>,
    pub kernel: AttentionKernel,
}

impl Default for AttentionTiles {
    /// The planner's defaults.
    fn default() -> Self {
        let d = AttentionPlanOptions::default();
        AttentionTiles {
            block_q: d.block_q,
            block_k: d.block_k,
            rows_per_invocation: d.rows_per_invocation,
            rows_head_dim: None,
            kernel: d.kernel,
        }
    }
}

impl AttentionTiles {
    /// The tiles to use on a device before anything was measured on it. On
    /// CPU adapters, the subgroup kernels with 4 rows per invocation at head
    /// dimension 64: on lavapipe they run causal forward + backward at
    /// N = 4096 2.3x faster than the lane kernels, and compile no slower
    /// (BENCHMARKS.md); other head dimensions keep the automatic rows, which
    /// bound the registers an invocation holds. Other devices keep the lane
    /// kernels until `weft tune` measures them.
    pub fn default_for(limits: &DeviceLimits) -> AttentionTiles {
        if limits.cpu {
            AttentionTiles {
                rows_per_invocation: 4,
                rows_head_dim: Some(64),
                kernel: AttentionKernel::Subgroup,
                ..AttentionTiles::default()
            }
        } else {
            AttentionTiles::default()
        }
    }

    /// `base` with these tiles, and these rows where `head_dim` is the one they were measured at.
    pub fn apply(&self, base: AttentionPlanOptions, head_dim: usize) -> AttentionPlanOptions {
        let rows = self.rows_at(head_dim);
        AttentionPlanOptions {
            block_q: self.block_q,
            block_k: self.block_k,
            rows_per_invocation: rows,
            kernel: self.kernel,
            ..base
        }
    }

    /// The rows per invocation to use at `head_dim`: the measured ones at the
    /// head dimension they were measured at, else `0`, the automatic choice.
    pub fn rows_at(&self, head_dim: usize) -> usize {
        match self.rows_head_dim {
            Some(measured) if measured != head_dim => 0,
            _ => self.rows_per_invocation,
        }
    }

    /// Why the planner would reject these tiles, if it would: block sizes must
    /// be positive, rows (`0`: automatic) must divide both blocks, and a
    /// workgroup (`block / rows` invocations) must fit every device.
    pub fn problem(&self) -> Option<String> {
        let (q, k, r) = (self.block_q, self.block_k, self.rows_per_invocation);
        if q == 0 || k == 0 {
            return Some(format!("block sizes {q}x{k} must be positive"));
        }
        if r != 0 && (!q.is_multiple_of(r) || !k.is_multiple_of(r)) {
            return Some(format!("{r} rows per invocation do not divide the blocks ({q} x {k})"));
        }
        let largest = q.max(k) / r.max(1);
        if largest > MAX_WORKGROUP_INVOCATIONS {
            return Some(format!(
                "a workgroup of {largest} invocations is more than the {MAX_WORKGROUP_INVOCATIONS} every device allows"
            ));
        }
        None
    }
}

/// The most invocations a workgroup may have on every WebGPU device.
pub const MAX_WORKGROUP_INVOCATIONS: usize = 256;

/// Workgroup size of the row-wise backward preprocess.
const DELTA_WORKGROUP: usize = 64;

/// Bytes between the `Params` of consecutive chunks: the largest uniform-offset
/// alignment WebGPU allows.
const PARAMS_STRIDE: u64 = 256;

/// The most values (rows per invocation x head dimension) an invocation of the
/// automatic shape holds per register set. Measured on lavapipe (LLVM 15):
/// compile time grows steeply with the registers an invocation holds (at
/// D = 64, 1 / 2 / 4 rows: about 0.9 / 2.2 / 12 s for the dK/dV kernel) while
/// run time falls with each row shared per load (1 / 2 / 4 rows: 33 / 18 /
/// 12 ms for a causal N=256 H=4 forward), so the automatic shape stops at 128.
pub const AUTO_ROW_VALUES: usize = 128;

impl AttentionPlanOptions {
    /// The rows per invocation `0` stands for: the largest of 4, 2, 1 with
    /// `rows * head_dim <= AUTO_ROW_VALUES` that divides both block sizes.
    pub fn auto_rows(&self, head_dim: usize) -> usize {
        [4, 2, 1]
            .into_iter()
            .find(|&r| {
                r * head_dim <= AUTO_ROW_VALUES
                    && self.block_q.is_multiple_of(r)
                    && self.block_k.is_multiple_of(r)
            })
            .unwrap_or(1)
    }

    /// These options with `rows_per_invocation` resolved for `head_dim`.
    pub fn resolved(&self, head_dim: usize) -> AttentionPlanOptions {
        let mut opts = self.clone();
        if opts.rows_per_invocation == 0 {
            opts.rows_per_invocation = self.auto_rows(head_dim);
        }
        opts
    }

    /// The kernel that runs for `desc` under these (resolved) options: the
    /// subgroup kernels where asked for and possible, else the lane kernels.
    pub fn kernel_for(&self, desc: &FusedAttentionDesc) -> AttentionKernel {
        let rows = self.rows_per_invocation.max(1);
        let workgroups = [self.block_q / rows, self.block_k / rows];
        let possible = subgroup::applies(desc.head_dim, desc.rope.is_some(), &workgroups, &self.limits);
        match self.kernel {
            AttentionKernel::Subgroup if possible => AttentionKernel::Subgroup,
            _ => AttentionKernel::Lanes,
        }
    }

    fn validate(&self, name: &str) -> Result<(), AttentionError> {
        let invalid = |message: String| AttentionError::InvalidOptions { name: name.to_string(), message };
        if self.rows_per_invocation == 0 {
            return Err(invalid("block sizes and rows per invocation must be positive".into()));
        }
        let tiles = AttentionTiles {
            block_q: self.block_q,
            block_k: self.block_k,
            rows_per_invocation: self.rows_per_invocation,
            rows_head_dim: None,
            kernel: self.kernel,
        };
        if let Some(problem) = tiles.problem() {
            return Err(invalid(problem));
        }
        if self.saved_forward && !self.backward {
            return Err(invalid("a saved forward pass is only of use to a backward plan".into()));
        }
        if self.limits.max_workgroups_per_dimension == 0 || self.limits.max_storage_binding < 256 {
            return Err(invalid("device limits must allow a workgroup and a 256-byte binding".into()));
        }
        Ok(())
    }
}

/// Plans one fused attention node: block tables, kernels, buffers and dispatches.
///
/// Buffers: `q`, `k`, `v` (inputs), `o`, `lse` (outputs), `blocks_fwd`,
/// `params` (constants); with `backward` also `do` (input), `delta` (scratch,
/// `(L, delta)` per row), `dq`, `dk`, `dv` (outputs) and `blocks_bwd`.
/// Kernels run in order: the forward, then `delta`, `dK/dV` and `dQ`, each once
/// per chunk of (batch, head) pairs. With [`AttentionPlanOptions::saved_forward`] there
/// is no forward kernel, and `o` and `lse` are inputs: the forward pass's own.
pub fn plan_attention(
    desc: &FusedAttentionDesc,
    opts: &AttentionPlanOptions,
) -> Result<(KernelPlan, PlanStats), AttentionError> {
    let opts = &opts.resolved(desc.head_dim);
    let (tables, sources) = emit(desc, opts)?;
    let (n, d) = (desc.seq_len, desc.head_dim);
    let bh_total = desc.batch * desc.n_heads;
    let chunks = chunks::chunks(&desc.name, bh_total, n, d, opts.limits.max_storage_binding)?;
    let mut plan = KernelPlan::default();
    declare_buffers(&mut plan, desc, opts, &tables, &chunks)?;

    let base_name = kernel_base_name(&desc.name);
    let dispatches = sources.len() * chunks.len();
    let stats = PlanStats::new(desc, opts, &tables, chunks.len(), dispatches);
    for source in &sources {
        let (flops, bytes) = stats.kernel_cost(source.kind);
        let per_chunk = |total: u64| total / chunks.len() as u64;
        for (i, chunk) in chunks.iter().enumerate() {
            let total = match source.kind {
                "bwd_delta" => (chunk.count * n).div_ceil(DELTA_WORKGROUP),
                "bwd_dkdv" => tables.k_blocks() * chunk.count,
                _ => tables.q_blocks() * chunk.count,
            };
            let workgroups =
                fold_grid(total as u64, opts.limits.max_workgroups_per_dimension).ok_or_else(|| {
                    AttentionError::TooLarge {
                        name: desc.name.clone(),
                        what: format!("the grid of kernel `{}`", source.kind),
                        needed: total as u64,
                        limit: u64::from(opts.limits.max_workgroups_per_dimension).pow(2),
                    }
                })?;
            let suffix = if chunks.len() > 1 { format!("_c{i}") } else { String::new() };
            plan.kernels.push(Kernel {
                name: format!("attn_{}_{base_name}{suffix}", source.kind),
                wgsl: source.wgsl.clone(),
                entry_point: "main".to_string(),
                workgroup_size: [source.workgroup_size, 1, 1],
                workgroups,
                bindings: bindings(source, chunk, i, chunks.len(), n, d),
                flops: per_chunk(flops),
                bytes: per_chunk(bytes),
            });
        }
    }
    Ok((plan, stats))
}

/// The distinct kernel modules of a plan (forward, then with `backward` the
/// delta, dK/dV and dQ kernels), validated, before they are laid out in
/// dispatches: what `weft inspect kernels` and the golden tests show.
pub fn attention_sources(
    desc: &FusedAttentionDesc,
    opts: &AttentionPlanOptions,
) -> Result<Vec<KernelSource>, AttentionError> {
    emit(desc, &opts.resolved(desc.head_dim)).map(|(_, sources)| sources)
}

/// Checks the node and the options, builds the block tables and emits and
/// validates every kernel module.
fn emit(
    desc: &FusedAttentionDesc,
    opts: &AttentionPlanOptions,
) -> Result<(BlockTables, Vec<KernelSource>), AttentionError> {
    let head_masks = desc.head_masks()?;
    opts.validate(&desc.name)?;
    let tables = BlockTables::build(&head_masks, desc.seq_len, opts.block_q, opts.block_k);
    let shape = AttentionShape {
        name: desc.name.clone(),
        seq_len: desc.seq_len,
        n_heads: desc.n_heads,
        head_dim: desc.head_dim,
        block_q: opts.block_q,
        block_k: opts.block_k,
        rows_per_invocation: opts.rows_per_invocation,
        delta_workgroup: DELTA_WORKGROUP,
        scale: desc.scale,
        rope: desc.rope.is_some(),
        kernel: opts.kernel_for(desc),
    };
    let masks = mask_functions(&desc.heads, desc.seq_len, "NI").map_err(|e| desc.mask_error(e))?;
    let mut sources = Vec::new();
    if !opts.saved_forward {
        sources.push(forward_kernel(&shape, &masks));
    }
    if opts.backward {
        sources.extend([delta_kernel(&shape), dkdv_kernel(&shape, &masks), dq_kernel(&shape, &masks)]);
    }
    let base_name = kernel_base_name(&desc.name);
    for source in &sources {
        let kernel = format!("attn_{}_{base_name}", source.kind);
        validate_wgsl(&kernel, &source.wgsl).map_err(|source| AttentionError::Shader {
            name: desc.name.clone(),
            kernel,
            source,
        })?;
    }
    Ok((tables, sources))
}

/// `s2attn-roll` -> `s2attn_roll`: a name usable in kernel names.
fn kernel_base_name(name: &str) -> String {
    let cleaned: String = name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    if cleaned.is_empty() { "attention".to_string() } else { cleaned }
}

fn words_to_bytes(words: &[u32]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

fn declare_buffers(
    plan: &mut KernelPlan,
    desc: &FusedAttentionDesc,
    opts: &AttentionPlanOptions,
    tables: &BlockTables,
    chunks: &[Chunk],
) -> Result<(), AttentionError> {
    let (b, h, n, d) = (desc.batch, desc.n_heads, desc.seq_len, desc.head_dim);
    let mut add = |name: &str, shape: Vec<usize>, bytes: u64, role: BufferRole| {
        plan.buffers.insert(
            name.to_string(),
            BufferDecl { name: name.to_string(), bytes, role, shape, elem: ElemType::F32 },
        );
    };
    let tensor = (b * h * n * d * 4) as u64;
    let rows = (b * h * n * 4) as u64;
    for name in ["q", "k", "v"] {
        add(name, vec![b, h, n, d], tensor, BufferRole::Input);
    }
    // A saved forward pass hands its output and log-sum-exp to the backward.
    let forward_role = if opts.saved_forward { BufferRole::Input } else { BufferRole::Output };
    add("o", vec![b, h, n, d], tensor, forward_role.clone());
    add("lse", vec![b, h, n], rows, forward_role);

    let mut params = vec![0u8; PARAMS_STRIDE as usize * (chunks.len() - 1) + 16];
    for (i, chunk) in chunks.iter().enumerate() {
        let at = i * PARAMS_STRIDE as usize;
        params[at..at + 4].copy_from_slice(&(chunk.bh0 as u32).to_le_bytes());
        params[at + 4..at + 8].copy_from_slice(&(chunk.count as u32).to_le_bytes());
    }
    add("params", Vec::new(), params.len() as u64, BufferRole::Const(params));

    let mut table = |name: &str, words: Vec<u32>| -> Result<(), AttentionError> {
        let bytes = words_to_bytes(&words);
        if bytes.len() as u64 > opts.limits.max_storage_binding {
            return Err(AttentionError::TooLarge {
                name: desc.name.clone(),
                what: format!("block table `{name}`"),
                needed: bytes.len() as u64,
                limit: opts.limits.max_storage_binding,
            });
        }
        add(name, vec![words.len()], bytes.len() as u64, BufferRole::Const(bytes));
        Ok(())
    };
    table("blocks_fwd", tables.forward_words())?;
    if opts.backward {
        table("blocks_bwd", tables.backward_words())?;
        add("do", vec![b, h, n, d], tensor, BufferRole::Input);
        add("delta", vec![b, h, n, 2], 2 * rows, BufferRole::Scratch);
        for name in ["dq", "dk", "dv"] {
            add(name, vec![b, h, n, d], tensor, BufferRole::Output);
        }
    }
    if let Some(rope) = desc.rope {
        let bytes = rope_table(rope, n, d);
        if bytes.len() as u64 > opts.limits.max_storage_binding {
            return Err(AttentionError::TooLarge {
                name: desc.name.clone(),
                what: "the RoPE table".to_string(),
                needed: bytes.len() as u64,
                limit: opts.limits.max_storage_binding,
            });
        }
        add("rope", vec![n.max(2), 2, d], bytes.len() as u64, BufferRole::Const(bytes));
    }
    Ok(())
}

/// The RoPE table `[N, 2, D]` ([`RopeParams::table`]). Row 1 is the
/// kernels' step from one position to the next, so there are at least 2 rows.
fn rope_table(rope: RopeParams, n: usize, d: usize) -> Vec<u8> {
    rope.table(n.max(2), d).iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// The bindings of `source` for chunk `index` of `n_chunks`.
fn bindings(
    source: &KernelSource,
    chunk: &Chunk,
    index: usize,
    n_chunks: usize,
    n: usize,
    d: usize,
) -> Vec<Binding> {
    source
        .bindings
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let per_pair = match spec.buffer {
                "params" | "blocks_fwd" | "blocks_bwd" | "rope" => None,
                "lse" => Some(n as u64 * 4),
                "delta" => Some(n as u64 * 8),
                _ => Some((n * d * 4) as u64),
            };
            let range = if n_chunks == 1 {
                None
            } else if spec.buffer == "params" {
                Some((index as u64 * PARAMS_STRIDE, 16))
            } else {
                per_pair.map(|bytes| (chunk.bh0 as u64 * bytes, chunk.count as u64 * bytes))
            };
            Binding { index: i as u32, buffer: spec.buffer.to_string(), access: spec.access, range }
        })
        .collect()
}
