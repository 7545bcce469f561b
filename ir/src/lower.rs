//! Lowering a pattern to its reference graph: the plain tensor operations a
//! PyTorch user would write for it.
//!
//! For LongLoRA's roll form this is the code of its non-flash path: roll the
//! shifted heads of q, k and v by -G/2 along the sequence, reshape the sequence
//! into groups of G (folded into the head axis), run causal attention inside
//! each group, reshape back and roll the output by +G/2. Any other mask lowers
//! to dense attention under that mask. The optimizer's job (issue 3) is to fuse
//! this back into one block-sparse kernel.

use crate::expr::SizeExpr;
use crate::graph::{DType, Graph, GraphError, HeadRange, NodeId, Op, TensorType, ValidGraph};
use crate::mask::{Mask, MaskExpr};
use crate::pattern::Pattern;

/// Shapes of the reference graph's inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LowerOptions {
    pub batch: usize,
    pub seq_len: usize,
    /// Last dimension of q and k.
    pub head_dim: usize,
    /// Last dimension of v and of the output.
    pub value_dim: usize,
}

impl LowerOptions {
    pub fn new(batch: usize, seq_len: usize, head_dim: usize) -> Self {
        LowerOptions { batch, seq_len, head_dim, value_dim: head_dim }
    }
}

/// Axes of the `[batch, heads, seq, dim]` layout.
const HEAD_AXIS: usize = 1;
const SEQ_AXIS: usize = 2;

/// The reference graph of `pattern`: inputs `q`, `k`, `v`, output `o`.
pub fn lower_pattern(pattern: &Pattern, opts: &LowerOptions) -> Result<ValidGraph, GraphError> {
    let n_heads = pattern.n_heads();
    let mut g = Graph::new(&pattern.name);
    let qk_type = |dim| TensorType { dtype: DType::F32, shape: vec![opts.batch, n_heads, opts.seq_len, dim] };
    let q = g.input("q", qk_type(opts.head_dim));
    let k = g.input("k", qk_type(opts.head_dim));
    let v = g.input("v", qk_type(opts.value_dim));
    let scale = 1.0 / (opts.head_dim as f64).sqrt();
    let mut lower = Lowering { g, scale, seq_len: opts.seq_len };

    let out = match shared_core(pattern) {
        // Every head range is the same mask up to a constant roll: roll the
        // ranges in place, as LongLoRA does, and lower the core once for all heads.
        Some((core, shifts)) => {
            let shifted = |l: &mut Lowering, x: NodeId, sign: i64| -> Result<NodeId, GraphError> {
                let mut x = x;
                for &(start, end, offset) in &shifts {
                    let heads = Some(HeadRange { axis: HEAD_AXIS, start, end });
                    x = l.g.add(Op::Roll { axis: SEQ_AXIS, shift: sign * offset, heads }, &[x])?;
                }
                Ok(x)
            };
            let (q, k, v) =
                (shifted(&mut lower, q, -1)?, shifted(&mut lower, k, -1)?, shifted(&mut lower, v, -1)?);
            let out = lower.core(&core, 0, q, k, v)?;
            shifted(&mut lower, out, 1)?
        }
        // Otherwise each head range is lowered on its own slice of the heads.
        None => {
            let mut outs = Vec::with_capacity(pattern.groups.len());
            for group in &pattern.groups {
                let (start, end) = (group.heads.start, group.heads.end);
                let slice = |l: &mut Lowering, x| {
                    if start == 0 && end == n_heads {
                        Ok(x)
                    } else {
                        l.g.add(Op::Slice { axis: HEAD_AXIS, start, end }, &[x])
                    }
                };
                let (qs, ks, vs) = (slice(&mut lower, q)?, slice(&mut lower, k)?, slice(&mut lower, v)?);
                outs.push(lower.mask(group.mask.expr(), start, qs, ks, vs)?);
            }
            if outs.len() == 1 { outs[0] } else { lower.g.add(Op::Concat { axis: HEAD_AXIS }, &outs)? }
        }
    };
    lower.g.set_output("o", out);
    lower.g.validate()
}

struct Lowering {
    g: Graph,
    scale: f64,
    seq_len: usize,
}

impl Lowering {
    /// Lowers one mask on a head slice whose first head is `head_offset`.
    fn mask(
        &mut self,
        mask: &MaskExpr<SizeExpr>,
        head_offset: usize,
        q: NodeId,
        k: NodeId,
        v: NodeId,
    ) -> Result<NodeId, GraphError> {
        if let MaskExpr::Roll { offset, inner } = mask
            && let Some(o) = offset.as_lit()
        {
            let roll =
                |l: &mut Lowering, x, shift| l.g.add(Op::Roll { axis: SEQ_AXIS, shift, heads: None }, &[x]);
            let (q, k, v) = (roll(self, q, -o)?, roll(self, k, -o)?, roll(self, v, -o)?);
            let out = self.core(inner, head_offset, q, k, v)?;
            return roll(self, out, o);
        }
        self.core(mask, head_offset, q, k, v)
    }

    /// Lowers a mask without an outer roll: grouped attention by reshaping when
    /// the mask is `causal & groups(G)` and G divides N, dense attention otherwise.
    fn core(
        &mut self,
        mask: &MaskExpr<SizeExpr>,
        head_offset: usize,
        q: NodeId,
        k: NodeId,
        v: NodeId,
    ) -> Result<NodeId, GraphError> {
        let n = self.seq_len;
        if let Some(group) = mask.causal_groups_size().and_then(SizeExpr::as_lit)
            && group > 0
            && (group as usize) < n
            && n.is_multiple_of(group as usize)
        {
            let group = group as usize;
            // [B, H, N, D] -> [B, H * N/G, G, D]: each group becomes a head of its own.
            let fold = |l: &mut Lowering, x: NodeId| {
                let s = l.g.node(x).ty.shape.clone();
                l.g.add(Op::Reshape { shape: vec![s[0], s[1] * (n / group), group, s[3]] }, &[x])
            };
            let out_shape = {
                let s = &self.g.node(v).ty.shape;
                vec![s[0], s[1], n, s[3]]
            };
            let (qg, kg, vg) = (fold(self, q)?, fold(self, k)?, fold(self, v)?);
            let causal = Mask::causal();
            let attn = self
                .g
                .add(Op::Attention { mask: causal, head_offset: 0, scale: self.scale }, &[qg, kg, vg])?;
            return self.g.add(Op::Reshape { shape: out_shape }, &[attn]);
        }
        // A pattern's masks are resolved, so only `h` can remain.
        let mask = Mask::new(mask.clone()).map_err(|e| GraphError::Type {
            node: None,
            op: "attention",
            operands: Vec::new(),
            reason: e.to_string(),
        })?;
        self.g.add(Op::Attention { mask, head_offset, scale: self.scale }, &[q, k, v])
    }
}

/// A head range rolled by `offset` along the sequence: `(start, end, offset)`.
type RolledHeads = (usize, usize, i64);

/// When every head range's mask is one `core` mask under a constant roll (or no
/// roll), returns the core and the rolled ranges.
fn shared_core(pattern: &Pattern) -> Option<(MaskExpr<SizeExpr>, Vec<RolledHeads>)> {
    let mut core: Option<&MaskExpr<SizeExpr>> = None;
    let mut shifts = Vec::new();
    for group in &pattern.groups {
        let (offset, inner) = match group.mask.expr() {
            MaskExpr::Roll { offset, inner } => (offset.as_lit()?, &**inner),
            other => (0, other),
        };
        match core {
            None => core = Some(inner),
            Some(c) if c == inner => {}
            Some(_) => return None,
        }
        if offset != 0 {
            shifts.push((group.heads.start, group.heads.end, offset));
        }
    }
    // A pattern without any roll gains nothing from this form.
    if shifts.is_empty() && pattern.groups.len() > 1 {
        return None;
    }
    core.cloned().map(|c| (c, shifts))
}
