//! The f64 reference interpreter: the oracle every generated kernel is checked against.
//!
//! Everything is computed in f64 whatever the declared dtype, directly from
//! each op's definition; speed is not a goal.

mod attention;
mod decode;
mod error;
mod loss;
mod ops;
mod tensor;

#[cfg(test)]
mod tests;

use std::collections::HashMap;

pub use attention::{masked_attention, masked_attention_grad, masked_softmax};
pub use error::InterpError;
pub use tensor::Tensor;

use crate::graph::{HeadMask, NodeId, Op, RopeParams, ValidGraph};
use crate::mask::{ConcreteMask, Mask};
use ops::Reduction;

/// Runs `graph` and returns its named outputs.
///
/// Inputs and parameters are looked up by name in `inputs`; a missing name, an
/// unknown name or a shape other than the declared one is an error.
pub fn run(
    graph: &ValidGraph,
    inputs: &HashMap<String, Tensor>,
) -> Result<HashMap<String, Tensor>, InterpError> {
    let values = run_all(graph, inputs)?;
    let mut out = HashMap::with_capacity(graph.outputs().len());
    for (name, id) in graph.outputs() {
        let value = values.get(id.index()).ok_or_else(|| missing_value(*id))?;
        out.insert(name.clone(), value.clone());
    }
    Ok(out)
}

/// Runs `graph` and returns the value of every node, indexed by [`NodeId::index`].
pub fn run_all(graph: &ValidGraph, inputs: &HashMap<String, Tensor>) -> Result<Vec<Tensor>, InterpError> {
    check_inputs(graph, inputs)?;
    let mut values: Vec<Tensor> = Vec::with_capacity(graph.len());
    for id in graph.node_ids() {
        let node = graph.node(id);
        if id.index() != values.len() {
            return Err(InterpError::Internal { node: id, message: "node ids are not contiguous".into() });
        }
        let value = match node.op.leaf_name() {
            Some(name) => inputs.get(name).cloned().ok_or_else(|| missing_value(id))?,
            None => {
                let args = node
                    .inputs
                    .iter()
                    .map(|x| values.get(x.index()).ok_or_else(|| missing_value(*x)))
                    .collect::<Result<Vec<_>, _>>()?;
                eval(&node.op, &args)?
            }
        };
        if value.shape() != node.ty.shape {
            let message =
                format!("computed shape {} but the graph says {}", error::dims(value.shape()), node.ty);
            return Err(InterpError::Internal { node: id, message });
        }
        values.push(value);
    }
    Ok(values)
}

/// Every leaf must be fed with its declared shape, and nothing else may be fed,
/// so a misspelled name is an error rather than a silently unused tensor.
fn check_inputs(graph: &ValidGraph, inputs: &HashMap<String, Tensor>) -> Result<(), InterpError> {
    let expected: Vec<String> = graph.leaves().map(|(_, name)| name.to_string()).collect();
    for (id, name) in graph.leaves() {
        let Some(tensor) = inputs.get(name) else {
            return Err(InterpError::MissingInput { name: name.to_string(), expected });
        };
        let declared = &graph.node(id).ty.shape;
        if tensor.shape() != declared {
            return Err(InterpError::InputShape {
                name: name.to_string(),
                expected: declared.clone(),
                found: tensor.shape().to_vec(),
            });
        }
    }
    let mut unexpected: Vec<&String> = inputs.keys().filter(|k| !expected.contains(k)).collect();
    unexpected.sort();
    match unexpected.first() {
        Some(name) => Err(InterpError::UnexpectedInput { name: name.to_string(), expected }),
        None => Ok(()),
    }
}

fn missing_value(id: NodeId) -> InterpError {
    InterpError::Internal { node: id, message: "value used before it was computed".into() }
}

/// Applies a non-leaf op to its operand values.
fn eval(op: &Op, args: &[&Tensor]) -> Result<Tensor, InterpError> {
    let arity_error =
        || InterpError::Shape { op: op.name(), message: format!("got {} operands", args.len()) };
    Ok(match (op, args) {
        (Op::MatMul { transpose_a, transpose_b }, &[a, b]) => ops::matmul(a, b, *transpose_a, *transpose_b),
        (Op::Add, &[a, b]) => ops::binary(a, b, |x, y| x + y),
        (Op::Mul, &[a, b]) => ops::binary(a, b, |x, y| x * y),
        (Op::Scale { factor }, &[x]) => ops::unary(x, |v| v * factor),
        (Op::Unary(op), &[x]) => ops::unary(x, |v| op.eval(v)),
        (Op::Reshape { shape }, &[x]) => Tensor::new(shape.clone(), x.data().to_vec())?,
        (Op::Permute { perm }, &[x]) => ops::permute(x, perm),
        (Op::Roll { axis, shift, heads }, &[x]) => ops::roll(x, *axis, *shift, *heads),
        (Op::Slice { axis, start, end }, &[x]) => ops::slice(x, *axis, *start, *end),
        (Op::Concat { axis }, xs) if !xs.is_empty() => ops::concat(xs, *axis),
        (Op::Softmax { axis }, &[x]) => ops::softmax(x, *axis),
        (Op::ReduceSum { axis }, &[x]) => ops::reduce(x, *axis, Reduction::Sum),
        (Op::ReduceMax { axis }, &[x]) => ops::reduce(x, *axis, Reduction::Max),
        (Op::ReduceMean { axis }, &[x]) => ops::reduce(x, *axis, Reduction::Mean),
        (Op::RmsNorm { eps }, &[x, w]) => ops::rms_norm(x, w, *eps),
        (Op::RmsNormGrad { eps }, &[x, w, dy]) => ops::rms_norm_grad(x, w, dy, *eps),
        (Op::RmsNormWeightGrad { eps }, &[x, dy]) => ops::rms_norm_weight_grad(x, dy, *eps),
        (&Op::Rope { theta, position_scale, freqs }, &[x]) => {
            ops::rope(x, RopeParams { theta, position_scale, freqs })
        }
        (Op::RopeTable, &[x, table]) => decode::rope_table(x, table)?,
        (Op::CachedAttention { heads, scale }, &[q, k_new, v_new, k_cache, v_cache, slots, positions]) => {
            let n_heads = q.shape().get(1).copied().unwrap_or(0);
            let masks = (0..n_heads)
                .map(|head| {
                    let entry = heads.iter().find(|e| e.heads.contains(&head)).ok_or_else(|| {
                        InterpError::Shape { op: op.name(), message: format!("no mask for head {head}") }
                    })?;
                    entry.mask.for_head(head).map_err(|error| InterpError::Mask { head, error })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let operands = decode::Cached { q, k_new, v_new, k_cache, v_cache, slots, positions };
            decode::cached_attention(operands, &masks, *scale)?
        }
        (Op::SoftmaxGrad { axis }, &[y, dy]) => ops::softmax_grad(y, dy, *axis),
        (Op::Embedding, &[ids, table]) => loss::embedding(ids, table)?,
        (Op::EmbeddingGrad { vocab }, &[ids, dy]) => loss::embedding_grad(ids, dy, *vocab)?,
        (Op::CrossEntropy, &[logits, targets]) => loss::cross_entropy(logits, targets)?,
        (Op::CrossEntropyGrad, &[logits, targets, dloss]) => {
            loss::cross_entropy_grad(logits, targets, dloss.data().first().copied().unwrap_or(0.0))?
        }
        (Op::Broadcast { axis, size }, &[x]) => ops::broadcast(x, *axis, *size),
        (Op::Pad { axis, before, after }, &[x]) => ops::pad(x, *axis, *before, *after),
        (Op::MaskedSoftmax { mask, head_offset, scale }, &[s]) => {
            let masks = head_masks(mask, *head_offset, s.shape().get(1).copied().unwrap_or(0))?;
            masked_softmax(s, &masks, *scale)?
        }
        (Op::Attention { mask, head_offset, scale }, &[q, k, v]) => {
            let masks = head_masks(mask, *head_offset, q.shape().get(1).copied().unwrap_or(0))?;
            masked_attention(q, k, v, &masks, *scale)?
        }
        (Op::FusedAttention { heads, scale, rope }, &[q, k, v]) => {
            let masks = fused_masks(op, heads, q)?;
            match rope {
                None => masked_attention(q, k, v, &masks, *scale)?,
                Some(r) => {
                    let (q, k) = (ops::rope(q, *r), ops::rope(k, *r));
                    masked_attention(&q, &k, v, &masks, *scale)?
                }
            }
        }
        (Op::FusedAttentionGrad { heads, scale, grad, rope }, &[q, k, v, dout]) => {
            let masks = fused_masks(op, heads, q)?;
            let grads = match rope {
                None => masked_attention_grad(q, k, v, dout, &masks, *scale)?,
                // The chain rule through the rotation: rotate, differentiate, rotate dq and dk back.
                Some(r) => {
                    let (q, k) = (ops::rope(q, *r), ops::rope(k, *r));
                    let (dq, dk, dv) = masked_attention_grad(&q, &k, v, dout, &masks, *scale)?;
                    let back = r.transposed();
                    (ops::rope(&dq, back), ops::rope(&dk, back), dv)
                }
            };
            let (dq, dk, dv) = grads;
            [dq, dk, dv].into_iter().nth(grad.operand()).ok_or_else(arity_error)?
        }
        _ => return Err(arity_error()),
    })
}

/// Each head's mask of a fused attention node, canonical at q's sequence length.
fn fused_masks(op: &Op, heads: &[HeadMask], q: &Tensor) -> Result<Vec<ConcreteMask>, InterpError> {
    let &[_, n_heads, n, _] = q.shape() else {
        return Err(InterpError::Shape { op: op.name(), message: "q must have rank 4".into() });
    };
    (0..n_heads)
        .map(|head| {
            let entry = heads.iter().find(|e| e.heads.contains(&head)).ok_or_else(|| InterpError::Shape {
                op: op.name(),
                message: format!("no mask for head {head}"),
            })?;
            let mask = entry.mask.for_head(head).map_err(|error| InterpError::Mask { head, error })?;
            Ok(mask.canonical(n as i64))
        })
        .collect()
}

/// The masks of heads `head_offset..head_offset + n_heads`.
fn head_masks(mask: &Mask, head_offset: usize, n_heads: usize) -> Result<Vec<ConcreteMask>, InterpError> {
    (0..n_heads)
        .map(|i| {
            let head = head_offset.saturating_add(i);
            mask.for_head(head).map_err(|error| InterpError::Mask { head, error })
        })
        .collect()
}
