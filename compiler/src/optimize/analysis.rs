//! The e-class analysis: what every class is. A tensor class knows its type
//! (inferred by `weft_ir`'s own shape rules, so the e-graph and the graph agree),
//! an integer or size class its value, a mask class a representative mask and
//! the facts rules ask about (translation invariance, dependence on `h`).

use std::ops::Range;

use egg::{Analysis, DidMerge, EGraph, Id, Symbol};
use weft_ir::expr::{SizeExpr, SizeKind, SizeOp};
use weft_ir::graph::{
    AttentionGrad, DType, Graph, HeadMask, HeadRange, Op, RopeFreqs, RopeParams, TensorType, UnaryOp,
};
use weft_ir::{Mask, MaskExpr};

use super::lang::Weft;
use super::terms::{HEAD_VAR, normalize_size};

/// The e-graph the optimizer works on.
pub type WeftGraph = EGraph<Weft, WeftAnalysis>;

/// What an e-class holds.
#[derive(Clone, Debug, PartialEq)]
pub enum Data {
    Tensor(TensorType),
    /// An integer (a literal) or a size in the head index `h`.
    Size(SizeExpr),
    Float(f64),
    Name(Symbol),
    /// A `(list ...)` of integers: a shape or a permutation.
    List(Vec<i64>),
    /// `all` (`None`) or `(heads axis start end)`.
    Heads(Option<HeadRange>),
    Mask(MaskInfo),
    Entry(HeadEntry),
    HeadMasks(Vec<HeadEntry>),
    /// A node whose operands do not fit it. Converting a valid graph never
    /// makes one and rules check shapes before they build, so extraction
    /// reports it rather than building a graph from it.
    Invalid(String),
}

/// A mask class: one representative (the smallest term seen) and facts that hold
/// for every member.
#[derive(Clone, Debug, PartialEq)]
pub struct MaskInfo {
    pub mask: Mask,
    /// Mask nodes in the representative; the smallest representative is kept.
    pub size: usize,
    /// Built from `full`, `causal`, `window` with `& | !` only: it depends on
    /// `q - k` alone, so it reads the same in every group of a sequence.
    pub translation_invariant: bool,
    /// Whether the mask differs from head to head.
    pub depends_on_h: bool,
}

/// One `(entry start end mask)` of a fused attention node.
#[derive(Clone, Debug, PartialEq)]
pub struct HeadEntry {
    pub heads: Range<usize>,
    pub mask: MaskInfo,
}

impl Data {
    pub fn tensor(&self) -> Option<&TensorType> {
        match self {
            Data::Tensor(t) => Some(t),
            _ => None,
        }
    }

    /// The value of a constant integer class.
    pub fn int(&self) -> Option<i64> {
        match self {
            Data::Size(s) => s.as_lit(),
            _ => None,
        }
    }

    pub fn size(&self) -> Option<&SizeExpr> {
        match self {
            Data::Size(s) => Some(s),
            _ => None,
        }
    }

    pub fn float(&self) -> Option<f64> {
        match self {
            Data::Float(f) => Some(*f),
            _ => None,
        }
    }

    pub fn list(&self) -> Option<&[i64]> {
        match self {
            Data::List(v) => Some(v),
            _ => None,
        }
    }

    pub fn heads(&self) -> Option<Option<HeadRange>> {
        match self {
            Data::Heads(h) => Some(*h),
            _ => None,
        }
    }

    pub fn mask(&self) -> Option<&MaskInfo> {
        match self {
            Data::Mask(m) => Some(m),
            _ => None,
        }
    }

    pub fn head_masks(&self) -> Option<&[HeadEntry]> {
        match self {
            Data::HeadMasks(v) => Some(v),
            _ => None,
        }
    }

    /// A short description for error messages.
    fn describe(&self) -> String {
        match self {
            Data::Tensor(t) => format!("a tensor {t}"),
            Data::Size(s) => format!("the size `{s}`"),
            Data::Float(f) => format!("the number {f:?}"),
            Data::Name(s) => format!("the name `{s}`"),
            Data::List(v) => format!("the list {v:?}"),
            Data::Heads(None) => "all heads".into(),
            Data::Heads(Some(h)) => format!("the head range {h}"),
            Data::Mask(m) => format!("the mask `{}`", m.mask),
            Data::Entry(e) => format!("the entry {}..{}", e.heads.start, e.heads.end),
            Data::HeadMasks(v) => format!("a list of {} head masks", v.len()),
            Data::Invalid(why) => format!("an invalid node ({why})"),
        }
    }
}

/// The analysis; it records classes whose members disagree (a rule bug), which
/// [`super::optimize`] reports instead of extracting a wrong graph.
#[derive(Debug, Default)]
pub struct WeftAnalysis {
    pub conflicts: Vec<String>,
}

impl Analysis<Weft> for WeftAnalysis {
    type Data = Data;

    fn make(egraph: &mut WeftGraph, enode: &Weft, _id: Id) -> Data {
        let egraph: &WeftGraph = egraph;
        data_of(enode, |id| &egraph[id].data)
    }

    fn merge(&mut self, a: &mut Data, b: Data) -> DidMerge {
        let before = a.clone();
        match (&mut *a, &b) {
            (Data::Invalid(_), Data::Invalid(_)) | (_, Data::Invalid(_)) => {}
            (Data::Invalid(_), _) => *a = b.clone(),
            (Data::Mask(x), Data::Mask(y)) => {
                // Members are equal masks, so a fact of one holds for all.
                let translation_invariant = x.translation_invariant || y.translation_invariant;
                let depends_on_h = x.depends_on_h && y.depends_on_h;
                if y.size < x.size {
                    *x = y.clone();
                }
                x.translation_invariant = translation_invariant;
                x.depends_on_h = depends_on_h;
            }
            (Data::Size(x), Data::Size(y)) => match (x.as_lit(), y.as_lit()) {
                (Some(p), Some(q)) if p != q => self.conflict(&before, &b),
                (None, Some(_)) => *x = y.clone(),
                _ => {}
            },
            (Data::HeadMasks(x), Data::HeadMasks(y)) => {
                let ranges =
                    |v: &[HeadEntry]| (v.first().map(|e| e.heads.start), v.last().map(|e| e.heads.end));
                if ranges(x) != ranges(y) {
                    self.conflict(&before, &b);
                } else if y.len() < x.len() {
                    *x = y.clone();
                }
            }
            (Data::Entry(x), Data::Entry(y)) if x.heads == y.heads => {}
            (x, y) if *x == *y => {}
            _ => self.conflict(&before, &b),
        }
        DidMerge(*a != before, *a != b)
    }
}

impl WeftAnalysis {
    fn conflict(&mut self, a: &Data, b: &Data) {
        self.conflicts.push(format!("one e-class holds {} and {}", a.describe(), b.describe()));
    }
}

/// The data of `node` given its children's; shared by the analysis and by
/// extraction, which reads extracted terms the same way.
pub fn data_of<'a>(node: &Weft, child: impl Fn(Id) -> &'a Data) -> Data {
    match node_data(node, &child) {
        Ok(data) => data,
        Err(why) => Data::Invalid(why),
    }
}

fn node_data<'a>(node: &Weft, child: &impl Fn(Id) -> &'a Data) -> Result<Data, String> {
    let size = |id: Id| child(id).size().cloned().ok_or_else(|| expected("a size", child(id)));
    let mask = |id: Id| child(id).mask().cloned().ok_or_else(|| expected("a mask", child(id)));
    let uint = |id: Id| uint(child, id);
    Ok(match node {
        Weft::Num(v) => Data::Size(SizeExpr::lit(*v)),
        Weft::Float(f) => Data::Float(f.0),
        Weft::Name(s) => Data::Name(*s),
        Weft::HeadIndex => Data::Size(SizeExpr::var(HEAD_VAR)),
        Weft::SNeg(a) => Data::Size(normalize_size(&SizeExpr {
            kind: SizeKind::Neg(Box::new(size(*a)?)),
            span: Default::default(),
        })),
        Weft::SAdd([a, b]) => size_op(SizeOp::Add, size(*a)?, size(*b)?)?,
        Weft::SSub([a, b]) => size_op(SizeOp::Sub, size(*a)?, size(*b)?)?,
        Weft::SMul([a, b]) => size_op(SizeOp::Mul, size(*a)?, size(*b)?)?,
        Weft::SDiv([a, b]) => size_op(SizeOp::Div, size(*a)?, size(*b)?)?,
        Weft::SRem([a, b]) => size_op(SizeOp::Rem, size(*a)?, size(*b)?)?,
        Weft::List(ids) => Data::List(
            ids.iter()
                .map(|&id| child(id).int().ok_or_else(|| expected("an integer", child(id))))
                .collect::<Result<_, _>>()?,
        ),
        Weft::AllHeads => Data::Heads(None),
        Weft::Heads([axis, start, end]) => {
            Data::Heads(Some(HeadRange::new(uint(*axis)?, uint(*start)?, uint(*end)?)))
        }
        Weft::MFull => mask_data(MaskExpr::Full, 1, true)?,
        Weft::MCausal => mask_data(MaskExpr::Causal, 1, true)?,
        Weft::MWindow(w) => mask_data(MaskExpr::Window(size(*w)?), 1, true)?,
        Weft::MSink(s) => mask_data(MaskExpr::Sink(size(*s)?), 1, false)?,
        Weft::MGroups([g, o]) => {
            mask_data(MaskExpr::Groups { size: size(*g)?, offset: size(*o)? }, 1, false)?
        }
        Weft::MLocalStride([b, l, s, o]) => mask_data(
            MaskExpr::LocalStride {
                block: size(*b)?,
                local: size(*l)?,
                stride: size(*s)?,
                offset: size(*o)?,
            },
            1,
            false,
        )?,
        Weft::MRoll([n, o, m]) => {
            if uint(*n)? == 0 {
                return Err("a roll mask needs a sequence length >= 1".into());
            }
            let inner = mask(*m)?;
            mask_data(MaskExpr::roll(size(*o)?, inner.mask.expr().clone()), 1 + inner.size, false)?
        }
        Weft::MNot(a) => {
            let a = mask(*a)?;
            mask_data(a.mask.expr().clone().not(), 1 + a.size, a.translation_invariant)?
        }
        Weft::MAnd([a, b]) | Weft::MOr([a, b]) => {
            let (a, b) = (mask(*a)?, mask(*b)?);
            let (x, y) = (a.mask.expr().clone(), b.mask.expr().clone());
            let expr = if matches!(node, Weft::MAnd(_)) { x.and(y) } else { x.or(y) };
            mask_data(expr, 1 + a.size + b.size, a.translation_invariant && b.translation_invariant)?
        }
        Weft::Entry([start, end, m]) => {
            Data::Entry(HeadEntry { heads: uint(*start)?..uint(*end)?, mask: mask(*m)? })
        }
        Weft::HeadMasks(ids) => Data::HeadMasks(
            ids.iter()
                .map(|&id| match child(id) {
                    Data::Entry(e) => Ok(e.clone()),
                    other => Err(expected("an entry", other)),
                })
                .collect::<Result<_, _>>()?,
        ),
        Weft::Input([_, dtype, shape]) | Weft::Param([_, dtype, shape, _]) => {
            Data::Tensor(leaf_type(child(*dtype), child(*shape))?)
        }
        tensor => Data::Tensor(infer(tensor, child)?),
    })
}

fn expected(what: &str, found: &Data) -> String {
    format!("expected {what}, found {}", found.describe())
}

fn uint<'a>(child: &impl Fn(Id) -> &'a Data, id: Id) -> Result<usize, String> {
    let data = child(id);
    data.int().and_then(|v| usize::try_from(v).ok()).ok_or_else(|| expected("a non-negative integer", data))
}

fn size_op(op: SizeOp, a: SizeExpr, b: SizeExpr) -> Result<Data, String> {
    if let (Some(x), Some(y)) = (a.as_lit(), b.as_lit()) {
        return op
            .apply(x, y)
            .map(|v| Data::Size(SizeExpr::lit(v)))
            .ok_or_else(|| format!("size arithmetic on {x} and {y} divides by zero or overflows"));
    }
    let e = SizeExpr { kind: SizeKind::Bin(op, Box::new(a), Box::new(b)), span: Default::default() };
    Ok(Data::Size(normalize_size(&e)))
}

fn mask_data(expr: MaskExpr<SizeExpr>, size: usize, translation_invariant: bool) -> Result<Data, String> {
    let mask = Mask::new(expr).map_err(|e| e.to_string())?;
    let depends_on_h = mask.depends_on_head();
    Ok(Data::Mask(MaskInfo { mask, size, translation_invariant, depends_on_h }))
}

fn leaf_type(dtype: &Data, shape: &Data) -> Result<TensorType, String> {
    let dtype = match dtype {
        Data::Name(s) => DType::from_name(s.as_str()).ok_or_else(|| format!("unknown dtype `{s}`"))?,
        other => return Err(expected("a dtype", other)),
    };
    let shape = shape.list().ok_or_else(|| expected("a shape", shape))?;
    let shape = shape
        .iter()
        .map(|&d| usize::try_from(d).ok().filter(|&d| d > 0))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| format!("shape {shape:?} has a dimension < 1"))?;
    Ok(TensorType::new(dtype, shape))
}

/// The type of a tensor node, inferred by `weft_ir` on a scratch graph: one
/// source of truth for shapes.
fn infer<'a>(node: &Weft, child: &impl Fn(Id) -> &'a Data) -> Result<TensorType, String> {
    let (op, operands) = to_op(node, child)?;
    let mut g = Graph::new("infer");
    let mut ids = Vec::with_capacity(operands.len());
    for (i, &id) in operands.iter().enumerate() {
        let ty = child(id).tensor().ok_or_else(|| expected("a tensor operand", child(id)))?;
        ids.push(g.input(&format!("x{i}"), ty.clone()));
    }
    let out = g.add(op, &ids).map_err(|e| e.to_string())?;
    Ok(g.node(out).ty.clone())
}

/// The graph op of a tensor node and its tensor operands, in order.
pub fn to_op<'a>(node: &Weft, child: &impl Fn(Id) -> &'a Data) -> Result<(Op, Vec<Id>), String> {
    let int = |id: Id| child(id).int().ok_or_else(|| expected("an integer", child(id)));
    let uint = |id: Id| uint(child, id);
    let flag = |id: Id| int(id).map(|v| v != 0);
    let float = |id: Id| child(id).float().ok_or_else(|| expected("a number", child(id)));
    let ulist = |id: Id| {
        let list = child(id).list().ok_or_else(|| expected("a list", child(id)))?;
        list.iter()
            .map(|&v| usize::try_from(v).map_err(|_| format!("list {list:?} has a negative entry")))
            .collect::<Result<Vec<_>, _>>()
    };
    let name = |id: Id| match child(id) {
        Data::Name(s) => Ok(s.as_str().to_string()),
        other => Err(expected("a name", other)),
    };
    let mask = |id: Id| child(id).mask().map(|m| m.mask.clone()).ok_or_else(|| expected("a mask", child(id)));
    let rope_freqs = |id: Id| name(id)?.parse::<RopeFreqs>();
    Ok(match node {
        Weft::Input([n, _, _]) => (Op::Input { name: name(*n)? }, vec![]),
        Weft::Param([n, _, _, t]) => (Op::Parameter { name: name(*n)?, trainable: flag(*t)? }, vec![]),
        Weft::MatMul([ta, tb, a, b]) => {
            (Op::MatMul { transpose_a: flag(*ta)?, transpose_b: flag(*tb)? }, vec![*a, *b])
        }
        Weft::Add([a, b]) => (Op::Add, vec![*a, *b]),
        Weft::Mul([a, b]) => (Op::Mul, vec![*a, *b]),
        Weft::Scale([f, x]) => (Op::Scale { factor: float(*f)? }, vec![*x]),
        Weft::Unary([op, x]) => {
            let op = name(*op)?;
            let unary = UnaryOp::from_name(&op).ok_or_else(|| format!("`{op}` is not a unary op"))?;
            (Op::Unary(unary), vec![*x])
        }
        Weft::Embedding([ids, table]) => (Op::Embedding, vec![*ids, *table]),
        Weft::EmbeddingGrad([v, ids, dy]) => (Op::EmbeddingGrad { vocab: uint(*v)? }, vec![*ids, *dy]),
        Weft::CrossEntropy([logits, targets]) => (Op::CrossEntropy, vec![*logits, *targets]),
        Weft::CrossEntropyGrad([l, t, d]) => (Op::CrossEntropyGrad, vec![*l, *t, *d]),
        Weft::RmsNormGrad([eps, x, w, dy]) => (Op::RmsNormGrad { eps: float(*eps)? }, vec![*x, *w, *dy]),
        Weft::RmsNormWeightGrad([eps, x, dy]) => (Op::RmsNormWeightGrad { eps: float(*eps)? }, vec![*x, *dy]),
        Weft::Reshape([s, x]) => (Op::Reshape { shape: ulist(*s)? }, vec![*x]),
        Weft::Permute([p, x]) => (Op::Permute { perm: ulist(*p)? }, vec![*x]),
        Weft::Roll([axis, shift, heads, x]) => {
            let heads = child(*heads).heads().ok_or_else(|| expected("a head range", child(*heads)))?;
            (Op::Roll { axis: uint(*axis)?, shift: int(*shift)?, heads }, vec![*x])
        }
        Weft::Slice([axis, start, end, x]) => {
            (Op::Slice { axis: uint(*axis)?, start: uint(*start)?, end: uint(*end)? }, vec![*x])
        }
        Weft::Concat(ids) => match ids.split_first() {
            Some((axis, xs)) => (Op::Concat { axis: uint(*axis)? }, xs.to_vec()),
            None => return Err("concat needs an axis".into()),
        },
        Weft::Softmax([a, x]) => (Op::Softmax { axis: uint(*a)? }, vec![*x]),
        Weft::SoftmaxGrad([a, y, dy]) => (Op::SoftmaxGrad { axis: uint(*a)? }, vec![*y, *dy]),
        Weft::MaskedSoftmax([s, m, x]) => {
            (Op::MaskedSoftmax { mask: mask(*m)?, head_offset: 0, scale: float(*s)? }, vec![*x])
        }
        Weft::Broadcast([a, n, x]) => (Op::Broadcast { axis: uint(*a)?, size: uint(*n)? }, vec![*x]),
        Weft::Pad([a, before, after, x]) => {
            (Op::Pad { axis: uint(*a)?, before: uint(*before)?, after: uint(*after)? }, vec![*x])
        }
        Weft::ReduceSum([a, x]) => (Op::ReduceSum { axis: uint(*a)? }, vec![*x]),
        Weft::ReduceMax([a, x]) => (Op::ReduceMax { axis: uint(*a)? }, vec![*x]),
        Weft::ReduceMean([a, x]) => (Op::ReduceMean { axis: uint(*a)? }, vec![*x]),
        Weft::RmsNorm([eps, x, w]) => (Op::RmsNorm { eps: float(*eps)? }, vec![*x, *w]),
        Weft::Rope([theta, ps, freqs, x]) => {
            let (theta, position_scale, freqs) = (float(*theta)?, float(*ps)?, rope_freqs(*freqs)?);
            (Op::Rope { theta, position_scale, freqs }, vec![*x])
        }
        Weft::Attention([s, m, q, k, v]) => {
            (Op::Attention { mask: mask(*m)?, head_offset: 0, scale: float(*s)? }, vec![*q, *k, *v])
        }
        Weft::FusedAttentionGrad([which, s, ms, q, k, v, dout]) => {
            let heads = fused_heads(child, *ms)?;
            let grad = attention_grad(uint(*which)?)?;
            (Op::FusedAttentionGrad { heads, scale: float(*s)?, grad, rope: None }, vec![*q, *k, *v, *dout])
        }
        Weft::FusedAttention([s, ms, q, k, v]) => (
            Op::FusedAttention { heads: fused_heads(child, *ms)?, scale: float(*s)?, rope: None },
            vec![*q, *k, *v],
        ),
        Weft::FusedAttentionGradRope([which, s, theta, ps, freqs, ms, q, k, v, dout]) => {
            let (heads, grad) = (fused_heads(child, *ms)?, attention_grad(uint(*which)?)?);
            let rope = Some(RopeParams::new(float(*theta)?, float(*ps)?).with_freqs(rope_freqs(*freqs)?));
            (Op::FusedAttentionGrad { heads, scale: float(*s)?, grad, rope }, vec![*q, *k, *v, *dout])
        }
        Weft::FusedAttentionRope([s, theta, ps, freqs, ms, q, k, v]) => {
            let rope = Some(RopeParams::new(float(*theta)?, float(*ps)?).with_freqs(rope_freqs(*freqs)?));
            (
                Op::FusedAttention { heads: fused_heads(child, *ms)?, scale: float(*s)?, rope },
                vec![*q, *k, *v],
            )
        }
        other => return Err(format!("`{other}` is not a tensor op")),
    })
}

/// The head masks of a fused attention node from its `(head-masks ...)` child.
fn fused_heads<'a>(child: &impl Fn(Id) -> &'a Data, ms: Id) -> Result<Vec<HeadMask>, String> {
    let entries = child(ms).head_masks().ok_or_else(|| expected("head masks", child(ms)))?;
    Ok(entries.iter().map(|e| HeadMask::new(e.heads.clone(), e.mask.mask.clone())).collect())
}

/// Gradient index 0, 1 or 2 as dq, dk or dv.
fn attention_grad(index: usize) -> Result<AttentionGrad, String> {
    AttentionGrad::ALL.get(index).copied().ok_or_else(|| format!("gradient index {index} is not 0, 1 or 2"))
}
