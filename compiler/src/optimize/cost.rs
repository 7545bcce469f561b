//! The cost model: bytes moved, FLOPs and kernel launches, folded into one
//! number by [`Cost::total`].
//!
//! Every kernel is charged its compulsory traffic (operands read once, result
//! written once) in the declared dtype. Attention kernels work in 64 x 64
//! tiles of (query, key) pairs and compute whole tiles, so a tile costs
//! `64²` pairs even where the sequence is shorter. Dense [`Op::Attention`]
//! computes every tile, writes and reads its `N x N` score and probability
//! tensors, and takes three launches (QKᵀ, masked softmax, PV);
//! [`Op::FusedAttention`] computes only the tiles its masks leave non-empty,
//! in one launch, and never materializes scores. A fused node therefore costs
//! less than the dense node it replaces on every component, so extraction never
//! prefers an `N x N` score tensor when a fused form exists. A reshape of a
//! contiguous tensor (every tensor here is) is a view and costs nothing.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ops::{Add, AddAssign};

use weft_ir::graph::{AttentionGrad, DType, Op, TensorType, ValidGraph};
use weft_ir::mask::{TileClass, classify_tile};
use weft_ir::{ConcreteMask, Mask};

/// FLOPs that cost as much as moving one byte: a GPU sustains an order of
/// magnitude more FLOP/s than bytes/s, so FLOPs weigh less.
pub const FLOPS_PER_BYTE: f64 = 8.0;

/// Bytes that cost as much as one kernel launch (dispatch and synchronization,
/// a few microseconds): 64 KiB.
pub const BYTES_PER_LAUNCH: f64 = 65_536.0;

/// The tile size at which fused attention skips empty tiles.
pub const BLOCK: usize = 64;

/// The (query, key) pairs of one tile.
const TILE_PAIRS: f64 = (BLOCK * BLOCK) as f64;

/// What a node or a graph costs.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Cost {
    pub bytes: f64,
    pub flops: f64,
    pub launches: usize,
}

impl Cost {
    /// One scalar, in bytes: `bytes + flops / FLOPS_PER_BYTE + launches * BYTES_PER_LAUNCH`.
    pub fn total(&self) -> f64 {
        self.bytes + self.flops / FLOPS_PER_BYTE + self.launches as f64 * BYTES_PER_LAUNCH
    }

    fn kernel(bytes: f64, flops: f64) -> Cost {
        Cost { bytes, flops, launches: 1 }
    }
}

impl Add for Cost {
    type Output = Cost;

    fn add(self, o: Cost) -> Cost {
        Cost {
            bytes: self.bytes + o.bytes,
            flops: self.flops + o.flops,
            launches: self.launches + o.launches,
        }
    }
}

impl AddAssign for Cost {
    fn add_assign(&mut self, o: Cost) {
        *self = *self + o;
    }
}

impl std::iter::Sum for Cost {
    fn sum<I: Iterator<Item = Cost>>(iter: I) -> Cost {
        iter.fold(Cost::default(), Add::add)
    }
}

impl std::fmt::Display for Cost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.0} bytes, {:.0} FLOPs, {} launches (total {:.0})",
            self.bytes,
            self.flops,
            self.launches,
            self.total()
        )
    }
}

/// Prices ops; caches the tile work of each mask so that extraction, which
/// prices every fused node several times, stays fast.
#[derive(Debug, Default)]
pub struct CostModel {
    /// `(canonical mask, N)` -> non-empty tiles.
    visited: RefCell<HashMap<(ConcreteMask, usize), u64>>,
}

impl CostModel {
    pub fn new() -> Self {
        CostModel::default()
    }

    /// The cost of the nodes of `graph` that its outputs depend on.
    pub fn graph_cost(&self, graph: &ValidGraph) -> Cost {
        let mut live = vec![false; graph.len()];
        for (_, id) in graph.outputs() {
            live[id.index()] = true;
        }
        // Node ids are topological, so one reverse sweep marks everything live.
        let ids: Vec<_> = graph.node_ids().collect();
        for &id in ids.iter().rev() {
            if live[id.index()] {
                for x in &graph.node(id).inputs {
                    live[x.index()] = true;
                }
            }
        }
        ids.into_iter()
            .filter(|id| live[id.index()])
            .map(|id| {
                let node = graph.node(id);
                let operands: Vec<&TensorType> = node.inputs.iter().map(|&x| &graph.node(x).ty).collect();
                self.op_cost(&node.op, &operands, &node.ty)
            })
            .sum()
    }

    /// The cost of one op on operands of types `xs` giving `out`.
    pub fn op_cost(&self, op: &Op, xs: &[&TensorType], out: &TensorType) -> Cost {
        let moved = xs.iter().map(|t| bytes(t)).sum::<f64>() + bytes(out);
        let n_out = elements(out);
        match op {
            Op::Input { .. } | Op::Parameter { .. } | Op::Reshape { .. } => Cost::default(),
            Op::Add | Op::Mul | Op::Scale { .. } => Cost::kernel(moved, n_out),
            // A transcendental function: a few FLOPs per element.
            Op::Unary(_) => Cost::kernel(moved, 4.0 * n_out),
            Op::Permute { .. } | Op::Roll { .. } | Op::Slice { .. } | Op::Concat { .. } => {
                Cost::kernel(moved, 0.0)
            }
            Op::Softmax { .. } | Op::MaskedSoftmax { .. } => Cost::kernel(moved, 5.0 * n_out),
            Op::SoftmaxGrad { .. } => Cost::kernel(moved, 3.0 * n_out),
            Op::Broadcast { .. } | Op::Pad { .. } | Op::Embedding | Op::EmbeddingGrad { .. } => {
                Cost::kernel(moved, 0.0)
            }
            Op::CrossEntropy | Op::CrossEntropyGrad => {
                Cost::kernel(moved, 5.0 * xs.first().map_or(0.0, |x| elements(x)))
            }
            Op::ReduceSum { .. } | Op::ReduceMax { .. } | Op::ReduceMean { .. } => {
                Cost::kernel(moved, xs.first().map_or(0.0, |x| elements(x)))
            }
            Op::RmsNorm { .. } => Cost::kernel(moved, 4.0 * n_out),
            Op::RmsNormGrad { .. } | Op::RmsNormWeightGrad { .. } => {
                Cost::kernel(moved, 6.0 * xs.first().map_or(0.0, |x| elements(x)))
            }
            Op::Rope { .. } | Op::RopeTable => Cost::kernel(moved, 6.0 * n_out),
            // Every query head against every slot of its KV head's cache: QKᵀ and PV.
            Op::CachedAttention { .. } => {
                let (Some(q), Some(k_cache)) = (xs.first(), xs.get(3)) else {
                    return Cost::kernel(moved, 0.0);
                };
                let per_kv =
                    q.shape.get(1).copied().unwrap_or(1) / k_cache.shape.get(1).copied().unwrap_or(1).max(1);
                Cost::kernel(moved, 4.0 * elements(k_cache) * per_kv as f64)
            }
            Op::MatMul { transpose_a, .. } => {
                let contracted = xs.first().map_or(0, |a| {
                    let r = a.rank();
                    if *transpose_a { a.shape[r.saturating_sub(2)] } else { a.shape[r.saturating_sub(1)] }
                });
                Cost::kernel(moved, 2.0 * n_out * contracted as f64)
            }
            Op::Attention { .. } => {
                let Some(dims) = AttentionDims::of(xs) else { return Cost::kernel(moved, 0.0) };
                let heads = (dims.b * dims.h) as f64;
                let tiles = heads * (dims.n.div_ceil(BLOCK) as f64).powi(2);
                let scores = 4.0 * heads * (dims.n * dims.n) as f64 * dims.dtype_bytes;
                Cost { bytes: moved + scores, flops: tiles * TILE_PAIRS * dims.flops_per_pair(), launches: 3 }
            }
            // Counted once per gradient node; the planner shares one backward
            // pass among the siblings, so this overstates it, uniformly.
            Op::FusedAttentionGrad { heads, rope, .. } | Op::FusedAttention { heads, rope, .. } => {
                // RoPE on load: the rotations of q, k (and dq, dk on the way out)
                // that separate rope kernels would do, without their launches and
                // their round trip of q and k through memory. The kernels redo
                // them per tile, but that ALU work hides under the tile's
                // products, so it is charged once; folding is always cheaper.
                let rotated_out = match op {
                    Op::FusedAttentionGrad { grad, .. } if *grad != AttentionGrad::Dv => n_out,
                    _ => 0.0,
                };
                let rope_flops = match rope {
                    Some(_) => 6.0 * (xs.iter().take(2).map(|t| elements(t)).sum::<f64>() + rotated_out),
                    None => 0.0,
                };
                let Some(dims) = AttentionDims::of(xs) else {
                    return Cost::kernel(moved, rope_flops);
                };
                let per_batch: u64 = (0..dims.h)
                    .map(|head| {
                        let mask = heads.iter().find(|e| e.heads.contains(&head)).map(|e| &e.mask);
                        self.head_tiles(mask, head, dims.n)
                    })
                    .sum();
                let tiles = dims.b as f64 * per_batch as f64;
                Cost::kernel(moved, tiles * TILE_PAIRS * dims.flops_per_pair() + rope_flops)
            }
        }
    }

    /// Tiles a block-sparse kernel computes for head `head`: all of them when
    /// the mask cannot be read (validation rules that out).
    fn head_tiles(&self, mask: Option<&Mask>, head: usize, n: usize) -> u64 {
        let all = (n.div_ceil(BLOCK) as u64).pow(2);
        let Some(concrete) = mask.and_then(|m| m.for_head(head).ok()) else { return all };
        let key = (concrete.canonical(n as i64), n);
        if let Some(&tiles) = self.visited.borrow().get(&key) {
            return tiles;
        }
        let tiles = visited_tiles(&key.0, n);
        self.visited.borrow_mut().insert(key, tiles);
        tiles
    }
}

/// The tiles of `mask` at [`BLOCK`] that are not empty.
fn visited_tiles(mask: &ConcreteMask, n: usize) -> u64 {
    let mut tiles = 0;
    for q0 in (0..n).step_by(BLOCK) {
        for k0 in (0..n).step_by(BLOCK) {
            let (q, k) = (q0..(q0 + BLOCK).min(n), k0..(k0 + BLOCK).min(n));
            if classify_tile(mask, n, q, k) != TileClass::Empty {
                tiles += 1;
            }
        }
    }
    tiles
}

struct AttentionDims {
    b: usize,
    h: usize,
    n: usize,
    d: usize,
    dv: usize,
    dtype_bytes: f64,
}

impl AttentionDims {
    fn of(xs: &[&TensorType]) -> Option<AttentionDims> {
        match xs {
            [q, _, v] => match (&q.shape[..], &v.shape[..]) {
                (&[b, h, n, d], &[_, _, _, dv]) => {
                    Some(AttentionDims { b, h, n, d, dv, dtype_bytes: dtype_bytes(q.dtype) })
                }
                _ => None,
            },
            _ => None,
        }
    }

    /// QKᵀ (2D), PV (2Dv) and a few for scaling, masking and the softmax.
    fn flops_per_pair(&self) -> f64 {
        (2 * self.d + 2 * self.dv + 5) as f64
    }
}

fn dtype_bytes(dtype: DType) -> f64 {
    match dtype {
        DType::F16 => 2.0,
        DType::F32 | DType::I32 => 4.0,
        DType::I64 => 8.0,
    }
}

fn elements(t: &TensorType) -> f64 {
    t.shape.iter().map(|&d| d as f64).product()
}

fn bytes(t: &TensorType) -> f64 {
    elements(t) * dtype_bytes(t.dtype)
}

#[cfg(test)]
mod tests {
    use weft_ir::graph::HeadMask;

    use super::*;

    fn mask(src: &str) -> Mask {
        Mask::new(weft_ir::expr::parse_mask(src).unwrap()).unwrap()
    }

    #[test]
    fn fused_attention_is_cheaper_than_dense_on_every_component() {
        let t = TensorType::f32([2, 4, 256, 16]);
        let xs = [&t, &t, &t];
        let model = CostModel::new();
        for src in
            ["full", "causal", "causal & window(8)", "roll(8, causal & groups(64))", "causal & groups(1)"]
        {
            let dense =
                model.op_cost(&Op::Attention { mask: mask(src), head_offset: 0, scale: 1.0 }, &xs, &t);
            let heads = vec![HeadMask::new(0..4, mask(src))];
            let fused = model.op_cost(&Op::FusedAttention { heads, scale: 1.0, rope: None }, &xs, &t);
            assert!(
                fused.bytes < dense.bytes && fused.flops <= dense.flops && fused.launches < dense.launches
            );
            // Also for sequences shorter than a tile.
            let short = TensorType::f32([2, 4, 16, 16]);
            let xs = [&short; 3];
            let dense =
                model.op_cost(&Op::Attention { mask: mask(src), head_offset: 0, scale: 1.0 }, &xs, &short);
            let heads = vec![HeadMask::new(0..4, mask(src))];
            let fused = model.op_cost(&Op::FusedAttention { heads, scale: 1.0, rope: None }, &xs, &short);
            assert!(
                fused.bytes < dense.bytes && fused.flops <= dense.flops && fused.launches < dense.launches
            );
            assert!(fused.total() < dense.total(), "{src}: {fused} vs {dense}");
        }
    }

    #[test]
    fn fused_attention_pays_for_non_empty_tiles_only() {
        let t = TensorType::f32([1, 2, 256, 8]);
        let xs = [&t, &t, &t];
        let model = CostModel::new();
        let cost = |src: &str| {
            let heads = vec![HeadMask::new(0..2, mask(src))];
            model.op_cost(&Op::FusedAttention { heads, scale: 1.0, rope: None }, &xs, &t).flops
        };
        let per_pair = (2 * 8 + 2 * 8 + 5) as f64;
        // 4 x 4 tiles of 64: full visits 16, causal 10, a window of 8 the 4 diagonal and 3 next to them.
        assert_eq!(cost("full"), 2.0 * 16.0 * 4096.0 * per_pair);
        assert_eq!(cost("causal"), 2.0 * 10.0 * 4096.0 * per_pair);
        assert_eq!(cost("causal & window(8)"), 2.0 * 7.0 * 4096.0 * per_pair);
        // Masks per head: head 1 is full, head 0 causal.
        let heads = vec![HeadMask::new(0..1, mask("causal")), HeadMask::new(1..2, mask("full"))];
        let mixed = model.op_cost(&Op::FusedAttention { heads, scale: 1.0, rope: None }, &xs, &t).flops;
        assert_eq!(mixed, (10.0 + 16.0) * 4096.0 * per_pair);
        // A sequence shorter than a tile still costs the whole tile.
        let short = TensorType::f32([1, 2, 16, 8]);
        let heads = vec![HeadMask::new(0..2, mask("causal"))];
        let flops =
            model.op_cost(&Op::FusedAttention { heads, scale: 1.0, rope: None }, &[&short; 3], &short).flops;
        assert_eq!(flops, 2.0 * 4096.0 * per_pair);
    }

    #[test]
    fn rope_on_load_costs_less_than_rope_kernels() {
        let t = TensorType::f32([1, 4, 256, 16]);
        let model = CostModel::new();
        let heads = vec![HeadMask::new(0..4, mask("causal"))];
        let rope = Some(weft_ir::graph::RopeParams::new(10000.0, 1.0));
        let fused = |rope| {
            model.op_cost(&Op::FusedAttention { heads: heads.clone(), scale: 1.0, rope }, &[&t; 3], &t)
        };
        let kernel = model.op_cost(
            &Op::Rope { theta: 10000.0, position_scale: 1.0, freqs: weft_ir::graph::RopeFreqs::Default },
            &[&t],
            &t,
        );
        let (folded, plain) = (fused(rope), fused(None));
        assert!(folded.total() < (plain + kernel + kernel).total(), "{folded} vs {plain} + 2 x {kernel}");
        assert_eq!((folded.bytes, folded.launches), (plain.bytes, plain.launches));
        let grad = |grad, rope| {
            let op = Op::FusedAttentionGrad { heads: heads.clone(), scale: 1.0, grad, rope };
            model.op_cost(&op, &[&t; 4], &t)
        };
        for g in AttentionGrad::ALL {
            // dq and dk also save the transposed rope on their way out.
            let kernels = if g == AttentionGrad::Dv { 2.0 } else { 3.0 };
            let (folded, plain) = (grad(g, rope), grad(g, None));
            assert!(folded.total() < plain.total() + kernels * kernel.total(), "{g:?}");
        }
    }

    #[test]
    fn reshape_is_free_and_copies_cost_their_bytes() {
        let t = TensorType::f32([2, 4, 8, 8]);
        let model = CostModel::new();
        assert_eq!(model.op_cost(&Op::Reshape { shape: vec![2, 32, 8] }, &[&t], &t), Cost::default());
        let roll = model.op_cost(&Op::Roll { axis: 2, shift: 1, heads: None }, &[&t], &t);
        assert_eq!(roll, Cost { bytes: 2.0 * 512.0 * 4.0, flops: 0.0, launches: 1 });
        assert_eq!(roll.total(), 4096.0 + BYTES_PER_LAUNCH);
    }
}
