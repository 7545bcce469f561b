//! A validated graph into the e-graph, one class per node.

use egg::{Id, Symbol};
use weft_ir::graph::{HeadMask, NodeId, Op, RopeFreqs, TensorType, ValidGraph};

use super::analysis::{WeftAnalysis, WeftGraph};
use super::lang::{Float, Weft};
use super::terms::{add_mask, normalize_mask, shift_heads};

/// Why a node could not enter the e-graph.
#[derive(Debug)]
pub struct ConvertError {
    pub node: NodeId,
    pub op: &'static str,
    pub reason: String,
}

/// The e-graph of `graph` and the class of each node, indexed by [`NodeId::index`].
pub fn to_egraph(graph: &ValidGraph) -> Result<(WeftGraph, Vec<Id>), ConvertError> {
    let mut egraph = WeftGraph::new(WeftAnalysis::default());
    let mut classes: Vec<Id> = Vec::with_capacity(graph.len());
    for id in graph.node_ids() {
        let node = graph.node(id);
        let error = |reason: String| ConvertError { node: id, op: node.op.name(), reason };
        let operands: Vec<Id> = node
            .inputs
            .iter()
            .map(|x| {
                classes
                    .get(x.index())
                    .copied()
                    .ok_or_else(|| error(format!("operand {x} is not converted yet")))
            })
            .collect::<Result<_, _>>()?;
        let class =
            add_node(&mut egraph, &node.op, &operands, &node.ty, graph, &node.inputs).map_err(error)?;
        classes.push(class);
    }
    Ok((egraph, classes))
}

fn add_node(
    eg: &mut WeftGraph,
    op: &Op,
    xs: &[Id],
    ty: &TensorType,
    graph: &ValidGraph,
    inputs: &[NodeId],
) -> Result<Id, String> {
    let num = |eg: &mut WeftGraph, v: usize| -> Result<Id, String> {
        let v = i64::try_from(v).map_err(|_| format!("{v} does not fit an i64"))?;
        Ok(eg.add(Weft::Num(v)))
    };
    let list = |eg: &mut WeftGraph, vs: &[usize]| -> Result<Id, String> {
        let ids = vs.iter().map(|&v| num(eg, v)).collect::<Result<Vec<_>, _>>()?;
        Ok(eg.add(Weft::List(ids.into_boxed_slice())))
    };
    let float = |eg: &mut WeftGraph, v: f64| eg.add(Weft::Float(Float(v)));
    // RoPE's frequencies as a name leaf (`default`, `llama3:…`): one token
    // that rules bind and compare like any attribute.
    let rope_freqs =
        |eg: &mut WeftGraph, freqs: &RopeFreqs| eg.add(Weft::Name(Symbol::from(freqs.to_string().as_str())));
    let unary = |xs: &[Id]| xs.first().copied().ok_or_else(|| "missing operand".to_string());
    let pair = |xs: &[Id]| match xs {
        &[a, b] => Ok([a, b]),
        _ => Err(format!("expected 2 operands, found {}", xs.len())),
    };
    let triple = |xs: &[Id]| match xs {
        &[a, b, c] => Ok([a, b, c]),
        _ => Err(format!("expected 3 operands, found {}", xs.len())),
    };
    // The sequence length of attention's operands (or masked softmax's scores),
    // which rolled masks are read at.
    let seq_len = || -> Result<i64, String> {
        let q = inputs.first().ok_or("attention without operands")?;
        let n = graph.node(*q).ty.shape.get(2).copied().ok_or("attention operand of rank < 3")?;
        i64::try_from(n).map_err(|_| format!("sequence length {n} does not fit an i64"))
    };
    let node = match op {
        // A decoding step has nothing for the rules to rewrite; it compiles unoptimized.
        Op::RopeTable | Op::CachedAttention { .. } => {
            return Err(format!("`{}` has no e-graph form: compile decoding graphs unoptimized", op.name()));
        }
        Op::Input { name } | Op::Parameter { name, .. } => {
            let name = eg.add(Weft::Name(Symbol::from(name.as_str())));
            let dtype = eg.add(Weft::Name(Symbol::from(ty.dtype.name())));
            let shape = list(eg, &ty.shape)?;
            match op {
                Op::Parameter { trainable, .. } => {
                    let t = eg.add(Weft::Num(i64::from(*trainable)));
                    Weft::Param([name, dtype, shape, t])
                }
                _ => Weft::Input([name, dtype, shape]),
            }
        }
        Op::MatMul { transpose_a, transpose_b } => {
            let [a, b] = pair(xs)?;
            let (ta, tb) =
                (eg.add(Weft::Num(i64::from(*transpose_a))), eg.add(Weft::Num(i64::from(*transpose_b))));
            Weft::MatMul([ta, tb, a, b])
        }
        Op::Add => Weft::Add(pair(xs)?),
        Op::Mul => Weft::Mul(pair(xs)?),
        Op::Scale { factor } => Weft::Scale([float(eg, *factor), unary(xs)?]),
        Op::Unary(op) => Weft::Unary([eg.add(Weft::Name(Symbol::from(op.name()))), unary(xs)?]),
        Op::Embedding => Weft::Embedding(pair(xs)?),
        Op::EmbeddingGrad { vocab } => {
            let [ids, dy] = pair(xs)?;
            Weft::EmbeddingGrad([num(eg, *vocab)?, ids, dy])
        }
        Op::CrossEntropy => Weft::CrossEntropy(pair(xs)?),
        Op::CrossEntropyGrad => Weft::CrossEntropyGrad(triple(xs)?),
        Op::RmsNormGrad { eps } => {
            let [x, w, dy] = triple(xs)?;
            Weft::RmsNormGrad([float(eg, *eps), x, w, dy])
        }
        Op::RmsNormWeightGrad { eps } => {
            let [x, dy] = pair(xs)?;
            Weft::RmsNormWeightGrad([float(eg, *eps), x, dy])
        }
        Op::Reshape { shape } => Weft::Reshape([list(eg, shape)?, unary(xs)?]),
        Op::Permute { perm } => Weft::Permute([list(eg, perm)?, unary(xs)?]),
        Op::Roll { axis, shift, heads } => {
            let heads = match heads {
                None => eg.add(Weft::AllHeads),
                Some(h) => {
                    let ids = [num(eg, h.axis)?, num(eg, h.start)?, num(eg, h.end)?];
                    eg.add(Weft::Heads(ids))
                }
            };
            Weft::Roll([num(eg, *axis)?, eg.add(Weft::Num(*shift)), heads, unary(xs)?])
        }
        Op::Slice { axis, start, end } => {
            Weft::Slice([num(eg, *axis)?, num(eg, *start)?, num(eg, *end)?, unary(xs)?])
        }
        Op::Concat { axis } => {
            let mut ids = vec![num(eg, *axis)?];
            ids.extend_from_slice(xs);
            Weft::Concat(ids.into_boxed_slice())
        }
        Op::Softmax { axis } => Weft::Softmax([num(eg, *axis)?, unary(xs)?]),
        Op::SoftmaxGrad { axis } => {
            let [y, dy] = pair(xs)?;
            Weft::SoftmaxGrad([num(eg, *axis)?, y, dy])
        }
        Op::MaskedSoftmax { mask, head_offset, scale } => {
            let offset =
                i64::try_from(*head_offset).map_err(|_| format!("head offset {head_offset} too large"))?;
            let mask = shift_heads(mask.expr(), offset);
            let m = add_mask(&mut |n| eg.add(n), &mask, seq_len()?)?;
            Weft::MaskedSoftmax([float(eg, *scale), m, unary(xs)?])
        }
        Op::Broadcast { axis, size } => Weft::Broadcast([num(eg, *axis)?, num(eg, *size)?, unary(xs)?]),
        Op::Pad { axis, before, after } => {
            Weft::Pad([num(eg, *axis)?, num(eg, *before)?, num(eg, *after)?, unary(xs)?])
        }
        Op::ReduceSum { axis } => Weft::ReduceSum([num(eg, *axis)?, unary(xs)?]),
        Op::ReduceMax { axis } => Weft::ReduceMax([num(eg, *axis)?, unary(xs)?]),
        Op::ReduceMean { axis } => Weft::ReduceMean([num(eg, *axis)?, unary(xs)?]),
        Op::RmsNorm { eps } => {
            let [x, w] = pair(xs)?;
            Weft::RmsNorm([float(eg, *eps), x, w])
        }
        Op::Rope { theta, position_scale, freqs } => {
            Weft::Rope([float(eg, *theta), float(eg, *position_scale), rope_freqs(eg, freqs), unary(xs)?])
        }
        Op::Attention { mask, head_offset, scale } => {
            // Head i reads the mask at head_offset + i; in the e-graph it reads it at i.
            let offset =
                i64::try_from(*head_offset).map_err(|_| format!("head offset {head_offset} too large"))?;
            let mask = shift_heads(mask.expr(), offset);
            let m = add_mask(&mut |n| eg.add(n), &mask, seq_len()?)?;
            let [q, k, v] = triple(xs)?;
            Weft::Attention([float(eg, *scale), m, q, k, v])
        }
        Op::FusedAttentionGrad { heads, scale, grad, rope } => {
            let masks = head_masks(eg, heads, seq_len()?, &num)?;
            let [q, k, v, dout] = match xs {
                &[q, k, v, dout] => [q, k, v, dout],
                _ => return Err(format!("expected 4 operands, found {}", xs.len())),
            };
            let (which, scale) = (num(eg, grad.operand())?, float(eg, *scale));
            match rope {
                None => Weft::FusedAttentionGrad([which, scale, masks, q, k, v, dout]),
                Some(r) => {
                    let (theta, ps, freqs) =
                        (float(eg, r.theta), float(eg, r.position_scale), rope_freqs(eg, &r.freqs));
                    Weft::FusedAttentionGradRope([which, scale, theta, ps, freqs, masks, q, k, v, dout])
                }
            }
        }
        Op::FusedAttention { heads, scale, rope } => {
            let masks = head_masks(eg, heads, seq_len()?, &num)?;
            let [q, k, v] = triple(xs)?;
            let scale = float(eg, *scale);
            match rope {
                None => Weft::FusedAttention([scale, masks, q, k, v]),
                Some(r) => {
                    let (theta, ps, freqs) =
                        (float(eg, r.theta), float(eg, r.position_scale), rope_freqs(eg, &r.freqs));
                    Weft::FusedAttentionRope([scale, theta, ps, freqs, masks, q, k, v])
                }
            }
        }
    };
    Ok(eg.add(node))
}

/// `(head-masks (entry START END MASK)...)`, masks read at sequence length `n`.
fn head_masks(
    eg: &mut WeftGraph,
    heads: &[HeadMask],
    n: i64,
    num: &dyn Fn(&mut WeftGraph, usize) -> Result<Id, String>,
) -> Result<Id, String> {
    let mut entries = Vec::with_capacity(heads.len());
    for entry in heads {
        let m = add_mask(&mut |node| eg.add(node), &normalize_mask(entry.mask.expr()), n)?;
        let ids = [num(eg, entry.heads.start)?, num(eg, entry.heads.end)?, m];
        entries.push(eg.add(Weft::Entry(ids)));
    }
    Ok(eg.add(Weft::HeadMasks(entries.into_boxed_slice())))
}
