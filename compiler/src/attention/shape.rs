//! What the fused attention kernels are specialized on ([`AttentionShape`]).
//!
//! Four kernels, all reading the block tables of [`super::BlockTables`]:
//! - `forward`: per query block, online softmax over the key blocks of the
//!   forward table; writes `O` and the row log-sum-exp `L`.
//! - `delta` (backward preprocess): `delta = rowsum(dO * O)`, stored next to `L`.
//! - `dkdv`: per key block, over the query blocks of the transposed table,
//!   recomputing `P = exp(S - L)`; writes `dK` and `dV`.
//! - `dq`: per query block, over the forward table; writes `dQ`.
//!
//! The shape suits CPU-like adapters (lavapipe), where an invocation is a SIMD
//! lane and workgroup memory and barriers are emulated: every invocation owns
//! `rows_per_invocation` rows of the block and keeps their accumulators in
//! registers, all loads are `vec4`, and no kernel uses workgroup memory, a
//! barrier or an atomic. A workgroup is one (block, batch × head) pair; the
//! grid is linearized over `num_workgroups` so the planner can fold it into two
//! dimensions. Tensors are bound per chunk of (batch, head) pairs: `params.bh0`
//! is the chunk's first pair, `params.bh_count` its size.

use super::AttentionKernel;

/// Everything the attention kernels are specialized on.
#[derive(Clone, Debug, PartialEq)]
pub struct AttentionShape {
    /// The fused node's name, for comments.
    pub name: String,
    pub seq_len: usize,
    pub n_heads: usize,
    /// A multiple of 4 (rows are read as `vec4<f32>`).
    pub head_dim: usize,
    pub block_q: usize,
    pub block_k: usize,
    /// Rows of the block each invocation owns; divides `block_q` and `block_k`.
    pub rows_per_invocation: usize,
    /// Workgroup size of the row-wise `delta` kernel.
    pub delta_workgroup: usize,
    pub scale: f32,
    /// RoPE on load, from the `[N, 2, D]` table the planner binds as `rope`.
    pub rope: bool,
    /// How visited rows are loaded: by every lane, or once per subgroup.
    pub kernel: AttentionKernel,
}

impl AttentionShape {
    pub fn q_blocks(&self) -> usize {
        self.seq_len.div_ceil(self.block_q)
    }

    pub fn k_blocks(&self) -> usize {
        self.seq_len.div_ceil(self.block_k)
    }

    /// Invocations per workgroup of the forward and dQ kernels.
    pub fn forward_workgroup(&self) -> usize {
        self.block_q / self.rows_per_invocation
    }

    /// Invocations per workgroup of the dK/dV kernel.
    pub fn dkdv_workgroup(&self) -> usize {
        self.block_k / self.rows_per_invocation
    }
}

/// The log-sum-exp written for a query whose mask allows no key: finite, and so
/// large that `exp(s - L)` is 0 for every score, which makes its gradients 0.
pub const EMPTY_ROW_LSE: f32 = 3.0e38;
