//! The operations a graph node can perform.

use std::fmt;
use std::ops::Range;

use super::rope::{RopeFreqs, RopeParams};
use super::types::Dims;
use super::unary::UnaryOp;
use crate::mask::Mask;

/// The index range `[start, end)` of axis `axis` that a head-restricted roll touches.
///
/// S²-Attn shifts only half of the heads; this names which ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HeadRange {
    pub axis: usize,
    pub start: usize,
    pub end: usize,
}

impl HeadRange {
    pub fn new(axis: usize, start: usize, end: usize) -> Self {
        HeadRange { axis, start, end }
    }

    pub fn contains(&self, index: usize) -> bool {
        (self.start..self.end).contains(&index)
    }
}

/// Displays as `1[2..4]`: axis 1, indices 2 and 3.
impl fmt::Display for HeadRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}..{}]", self.axis, self.start, self.end)
    }
}

/// Which gradient a [`Op::FusedAttentionGrad`] node gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AttentionGrad {
    Dq,
    Dk,
    Dv,
}

impl AttentionGrad {
    pub const ALL: [AttentionGrad; 3] = [AttentionGrad::Dq, AttentionGrad::Dk, AttentionGrad::Dv];

    /// `dq`, `dk` or `dv`: the name in the text format.
    pub fn name(self) -> &'static str {
        match self {
            AttentionGrad::Dq => "dq",
            AttentionGrad::Dk => "dk",
            AttentionGrad::Dv => "dv",
        }
    }

    pub fn from_name(name: &str) -> Option<AttentionGrad> {
        AttentionGrad::ALL.into_iter().find(|g| g.name() == name)
    }

    /// The operand (0 = q, 1 = k, 2 = v) whose gradient this is.
    pub fn operand(self) -> usize {
        match self {
            AttentionGrad::Dq => 0,
            AttentionGrad::Dk => 1,
            AttentionGrad::Dv => 2,
        }
    }
}

/// The mask of one range of heads of a [`Op::FusedAttention`] node.
///
/// Head `h` of the range (its index on axis 1 of the node's operands) uses
/// `mask.for_head(h)`, so a mask in `h` varies across the range.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HeadMask {
    pub heads: Range<usize>,
    pub mask: Mask,
}

impl HeadMask {
    pub fn new(heads: Range<usize>, mask: Mask) -> Self {
        HeadMask { heads, mask }
    }
}

/// Displays as `0..2: "causal & groups(16)"`.
impl fmt::Display for HeadMask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{}: \"{}\"", self.heads.start, self.heads.end, self.mask)
    }
}

/// One node's operation. Shape rules live in `infer.rs`, semantics in the interpreter.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// A tensor fed at run time, looked up by name.
    Input {
        name: String,
    },
    /// A weight, looked up by name like an input; `trainable` tells the optimizer.
    Parameter {
        name: String,
        trainable: bool,
    },
    /// Batched matrix product over the last two axes; leading axes must be equal.
    MatMul {
        transpose_a: bool,
        transpose_b: bool,
    },
    /// Elementwise sum of two tensors of identical type.
    Add,
    /// Elementwise product of two tensors of identical type.
    Mul,
    Scale {
        factor: f64,
    },
    /// An elementwise unary op from the table in `unary.rs` (exp, log, silu, sigmoid).
    Unary(UnaryOp),
    /// Row-major reinterpretation; the element count must match.
    Reshape {
        shape: Vec<usize>,
    },
    /// Output axis `i` is input axis `perm[i]`.
    Permute {
        perm: Vec<usize>,
    },
    /// `torch.roll`: `out[i] = in[(i - shift) mod n]` along `axis`. With `heads`,
    /// only indices in the range of `heads.axis` are rolled; the rest is copied.
    Roll {
        axis: usize,
        shift: i64,
        heads: Option<HeadRange>,
    },
    /// Indices `[start, end)` of `axis`.
    Slice {
        axis: usize,
        start: usize,
        end: usize,
    },
    /// Joins one or more tensors along `axis`.
    Concat {
        axis: usize,
    },
    Softmax {
        axis: usize,
    },
    /// The softmax's vector-Jacobian product: `(y, dy)` with `y = softmax(x, axis)`
    /// gives `dx = y * (dy - sum(y * dy, axis))`.
    SoftmaxGrad {
        axis: usize,
    },
    /// Attention's probabilities from its raw scores `s = q kᵀ` (`[B, H, Nq, Nk]`):
    /// a softmax of `scale * s` over the keys head `head_offset + i`'s mask allows,
    /// zeros elsewhere, and a row of zeros where the mask allows no key. What the
    /// gradient of [`Op::Attention`] is spelled with.
    MaskedSoftmax {
        mask: Mask,
        head_offset: usize,
        scale: f64,
    },
    /// Inserts a new axis `axis` of length `size`, repeating the tensor along it.
    /// The gradient of a reduction.
    Broadcast {
        axis: usize,
        size: usize,
    },
    /// Zeros around the tensor along `axis`: `before` in front, `after` behind.
    /// The gradient of a slice.
    Pad {
        axis: usize,
        before: usize,
        after: usize,
    },
    ReduceSum {
        axis: usize,
    },
    ReduceMax {
        axis: usize,
    },
    ReduceMean {
        axis: usize,
    },
    /// `(x [..., D], weight [D])`: `x / sqrt(mean(x^2) + eps) * weight` over the last axis.
    RmsNorm {
        eps: f64,
    },
    /// The gradient of [`Op::RmsNorm`] with respect to `x`: `(x, weight, dy)`
    /// gives `r * (dy * weight) - x * r^3 * mean(dy * weight * x)` over the last
    /// axis, with `r = 1 / sqrt(mean(x^2) + eps)`.
    RmsNormGrad {
        eps: f64,
    },
    /// The gradient of [`Op::RmsNorm`] with respect to its weight: `(x, dy)`
    /// gives `[D]`, the sum over every row of `dy * x * r`.
    RmsNormWeightGrad {
        eps: f64,
    },
    /// Rotary embedding of `[B, H, N, D]` in the Hugging Face LLaMA `rotate_half`
    /// layout; pair `i` at position `p` turns by `(p / position_scale) *
    /// freq_i`, `freq_i` being `theta^(-2i/D)` as `freqs` adjusts it
    /// ([`RopeParams::angle`]). A negative `position_scale` turns the other
    /// way: that is the transpose, and so the gradient, of the embedding with
    /// `-position_scale`.
    Rope {
        theta: f64,
        position_scale: f64,
        freqs: RopeFreqs,
    },
    /// RoPE by a given table: `(x [B, H, T, D], table [B, T, 2, D])` turns
    /// row `b`'s index `t` by `table[b, t]`, the cosines then the signed sines
    /// of one position laid out as [`RopeParams::table`] lays them out. A
    /// decoder rotates each new token at its own position, and computes those
    /// rows on the host in f64, as the rope kernels' tables are.
    RopeTable,
    /// One decode step's attention against a KV cache, the mask applied in
    /// absolute positions: `(q [B, H, 1, D], k_new [B, G, 1, D], v_new [B, G,
    /// 1, Dv], k_cache [B, G, C, D], v_cache [B, G, C, Dv], slots [B, G, C],
    /// positions [B])` (the last two integer) gives `[B, H, 1, Dv]`. Query head
    /// `h` of row `b` is at position `p = positions[b]` and reads KV head
    /// `h / (H / G)`: its new key, at `p`, and every cache slot `c` whose
    /// position `s = slots[b, g, c]` lies in `0..p` (a slot outside, e.g. -1,
    /// holds nothing). Each key is weighed where head `h`'s mask (the ranges of
    /// `heads` tile `0..H`) allows `(p, s)` in a sequence of `p + 1` positions.
    CachedAttention {
        heads: Vec<HeadMask>,
        scale: f64,
    },
    /// Rows of a table picked by integer ids: `(ids [...], table [V, C])` gives
    /// `[..., C]`. An id outside `0..V` is a run-time error.
    Embedding,
    /// The gradient of [`Op::Embedding`] with respect to its table: `(ids [...],
    /// dy [..., C])` gives `[vocab, C]`, each id's rows of `dy` summed into its row.
    EmbeddingGrad {
        vocab: usize,
    },
    /// Mean cross-entropy of `logits [..., V]` against integer `targets [...]`,
    /// a scalar `[]`: `logsumexp(row) - row[target]` averaged over the rows whose
    /// target is not negative. A negative target (Hugging Face's -100) marks a
    /// row to ignore; with every row ignored the loss is 0.
    CrossEntropy,
    /// The gradient of [`Op::CrossEntropy`] with respect to the logits:
    /// `(logits, targets, dloss [])` gives `dloss * (softmax(row) - onehot(target)) / count`,
    /// recomputing the softmax so that no probability tensor is kept from the forward pass.
    CrossEntropyGrad,
    /// Dense attention restricted by a mask: `q, k [B, H, N, D]`, `v [B, H, N, Dv]`.
    /// Head `i` uses `mask.for_head(head_offset + i)`, so one pattern can be split
    /// across several attention nodes.
    Attention {
        mask: Mask,
        head_offset: usize,
        scale: f64,
    },
    /// Block-sparse attention, one kernel for every head: `q, k [B, H, N, D]`,
    /// `v [B, H, N, Dv]` give `[B, H, N, Dv]`. The ranges of `heads` are sorted
    /// and tile `0..H`; head `h` uses its range's `mask.for_head(h)`. This is
    /// what the optimizer fuses roll, reshape and attention chains into.
    /// With `rope`, q and k are rotated as they are loaded: the node computes
    /// `attention(rope(q), rope(k), v)`.
    FusedAttention {
        heads: Vec<HeadMask>,
        scale: f64,
        rope: Option<RopeParams>,
    },
    /// One gradient of [`Op::FusedAttention`]: `(q, k, v, do)` gives `dq`, `dk`
    /// or `dv`. The nodes of one attention share their operands and are planned
    /// together, as one FlashAttention-2 backward pass with no N×N buffer: it
    /// reads the output and log-sum-exp of the graph's `FusedAttention` node
    /// of the same operands, or recomputes them where there is none. With
    /// `rope`, the gradient is the one of the rotating forward: `dq` and `dk`
    /// are turned back by the transposed rotation, so they live in the space of
    /// the unrotated q and k.
    FusedAttentionGrad {
        heads: Vec<HeadMask>,
        scale: f64,
        grad: AttentionGrad,
        rope: Option<RopeParams>,
    },
}

/// How many operands an op takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arity {
    Exactly(usize),
    AtLeast(usize),
}

impl Arity {
    pub fn accepts(self, n: usize) -> bool {
        match self {
            Arity::Exactly(k) => n == k,
            Arity::AtLeast(k) => n >= k,
        }
    }
}

impl fmt::Display for Arity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (prefix, n) = match *self {
            Arity::Exactly(n) => ("", n),
            Arity::AtLeast(n) => ("at least ", n),
        };
        write!(f, "{prefix}{n} operand{}", if n == 1 { "" } else { "s" })
    }
}

impl Op {
    /// The op's name in the text format and in error messages.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Input { .. } => "input",
            Op::Parameter { .. } => "param",
            Op::MatMul { .. } => "matmul",
            Op::Add => "add",
            Op::Mul => "mul",
            Op::Scale { .. } => "scale",
            Op::Unary(op) => op.name(),
            Op::Reshape { .. } => "reshape",
            Op::Permute { .. } => "permute",
            Op::Roll { .. } => "roll",
            Op::Slice { .. } => "slice",
            Op::Concat { .. } => "concat",
            Op::Softmax { .. } => "softmax",
            Op::SoftmaxGrad { .. } => "softmax-grad",
            Op::MaskedSoftmax { .. } => "masked-softmax",
            Op::Broadcast { .. } => "broadcast",
            Op::Pad { .. } => "pad",
            Op::ReduceSum { .. } => "reduce-sum",
            Op::ReduceMax { .. } => "reduce-max",
            Op::ReduceMean { .. } => "reduce-mean",
            Op::RmsNorm { .. } => "rms-norm",
            Op::RmsNormGrad { .. } => "rms-norm-grad",
            Op::RmsNormWeightGrad { .. } => "rms-norm-weight-grad",
            Op::Rope { .. } => "rope",
            Op::RopeTable => "rope-table",
            Op::CachedAttention { .. } => "cached-attention",
            Op::Embedding => "embedding",
            Op::EmbeddingGrad { .. } => "embedding-grad",
            Op::CrossEntropy => "cross-entropy",
            Op::CrossEntropyGrad => "cross-entropy-grad",
            Op::Attention { .. } => "attention",
            Op::FusedAttention { .. } => "fused-attention",
            Op::FusedAttentionGrad { .. } => "fused-attention-grad",
        }
    }

    pub fn arity(&self) -> Arity {
        match self {
            Op::Input { .. } | Op::Parameter { .. } => Arity::Exactly(0),
            Op::MatMul { .. }
            | Op::Add
            | Op::Mul
            | Op::RmsNorm { .. }
            | Op::RmsNormWeightGrad { .. }
            | Op::SoftmaxGrad { .. }
            | Op::Embedding
            | Op::EmbeddingGrad { .. }
            | Op::CrossEntropy
            | Op::RopeTable => Arity::Exactly(2),
            Op::Attention { .. }
            | Op::FusedAttention { .. }
            | Op::RmsNormGrad { .. }
            | Op::CrossEntropyGrad => Arity::Exactly(3),
            Op::FusedAttentionGrad { .. } => Arity::Exactly(4),
            Op::CachedAttention { .. } => Arity::Exactly(7),
            Op::Concat { .. } => Arity::AtLeast(1),
            Op::Scale { .. }
            | Op::Unary(_)
            | Op::Reshape { .. }
            | Op::Permute { .. }
            | Op::Roll { .. }
            | Op::Slice { .. }
            | Op::Softmax { .. }
            | Op::MaskedSoftmax { .. }
            | Op::Broadcast { .. }
            | Op::Pad { .. }
            | Op::ReduceSum { .. }
            | Op::ReduceMax { .. }
            | Op::ReduceMean { .. }
            | Op::Rope { .. } => Arity::Exactly(1),
        }
    }

    /// Whether the node is a graph leaf fed by name (an input or a parameter).
    pub fn leaf_name(&self) -> Option<&str> {
        match self {
            Op::Input { name } | Op::Parameter { name, .. } => Some(name),
            _ => None,
        }
    }
}

/// A one-line summary such as `roll(axis=2, shift=-8, heads=1[2..4])`, for DOT
/// labels and diagnostics (the s-expression format has its own printer).
impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.name();
        match self {
            Op::Input { name: n } => write!(f, "{name}({n:?})"),
            Op::Parameter { name: n, trainable } => {
                write!(f, "{name}({n:?}{})", if *trainable { ", trainable" } else { "" })
            }
            Op::MatMul { transpose_a, transpose_b } => {
                let flags: Vec<&str> = [(*transpose_a, "transpose_a"), (*transpose_b, "transpose_b")]
                    .into_iter()
                    .filter_map(|(on, s)| on.then_some(s))
                    .collect();
                if flags.is_empty() { f.write_str(name) } else { write!(f, "{name}({})", flags.join(", ")) }
            }
            Op::Add
            | Op::Mul
            | Op::Unary(_)
            | Op::Embedding
            | Op::CrossEntropy
            | Op::CrossEntropyGrad
            | Op::RopeTable => f.write_str(name),
            Op::EmbeddingGrad { vocab } => write!(f, "{name}(vocab={vocab})"),
            Op::Scale { factor } => write!(f, "{name}({factor:?})"),
            Op::Reshape { shape } => write!(f, "{name}(shape={})", Dims(shape)),
            Op::Permute { perm } => write!(f, "{name}(perm={})", Dims(perm)),
            Op::Roll { axis, shift, heads: None } => write!(f, "{name}(axis={axis}, shift={shift})"),
            Op::Roll { axis, shift, heads: Some(h) } => {
                write!(f, "{name}(axis={axis}, shift={shift}, heads={h})")
            }
            Op::Slice { axis, start, end } => write!(f, "{name}(axis={axis}, {start}..{end})"),
            Op::Concat { axis }
            | Op::Softmax { axis }
            | Op::SoftmaxGrad { axis }
            | Op::ReduceSum { axis }
            | Op::ReduceMax { axis }
            | Op::ReduceMean { axis } => write!(f, "{name}(axis={axis})"),
            Op::Broadcast { axis, size } => write!(f, "{name}(axis={axis}, size={size})"),
            Op::Pad { axis, before, after } => {
                write!(f, "{name}(axis={axis}, before={before}, after={after})")
            }
            Op::RmsNorm { eps } | Op::RmsNormGrad { eps } | Op::RmsNormWeightGrad { eps } => {
                write!(f, "{name}(eps={eps:?})")
            }
            Op::Rope { theta, position_scale, freqs } => {
                write!(f, "{name}(theta={theta:?}, position_scale={position_scale:?}{})", freqs.suffix())
            }
            Op::CachedAttention { heads, scale } => {
                let masks: Vec<String> = heads.iter().map(HeadMask::to_string).collect();
                write!(f, "{name}(masks=[{}], scale={scale:?})", masks.join(", "))
            }
            Op::Attention { mask, head_offset, scale } | Op::MaskedSoftmax { mask, head_offset, scale } => {
                write!(f, "{name}(mask=\"{mask}\", head_offset={head_offset}, scale={scale:?})")
            }
            Op::FusedAttention { heads, scale, rope } => {
                let masks: Vec<String> = heads.iter().map(HeadMask::to_string).collect();
                write!(f, "{name}(masks=[{}], scale={scale:?}{})", masks.join(", "), rope_suffix(rope))
            }
            Op::FusedAttentionGrad { heads, scale, grad, rope } => {
                let masks: Vec<String> = heads.iter().map(HeadMask::to_string).collect();
                let rope = rope_suffix(rope);
                write!(f, "{name}({}, masks=[{}], scale={scale:?}{rope})", grad.name(), masks.join(", "))
            }
        }
    }
}

/// `, rope(theta=…, position_scale=…)` when there is one.
fn rope_suffix(rope: &Option<RopeParams>) -> String {
    rope.map(|r| format!(", {r}")).unwrap_or_default()
}
