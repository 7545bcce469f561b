//! From a validated graph to a [`KernelPlan`]: one buffer per node, kernels in
//! topological order.

use std::collections::{BTreeMap, HashMap, HashSet};

use weft_ir::graph::{DType, NodeId, Op, ValidGraph};

use super::builder::{Region, elements};
use super::fusion::Fusion;
use super::{CodegenError, SimplePlanOptions, Site};
use super::{attention, cross_entropy, elementwise, embedding, layout, masked_softmax, matmul, reduce};
use super::{fused_attention, fusion, memory, rms_norm, rope};
use crate::kernel::{BufferDecl, BufferRole, ElemType, Kernel, KernelPlan};

/// Every element index must fit the kernels' u32 (and i32 mask) arithmetic.
const MAX_ELEMENTS: u64 = 1 << 31;

/// A tensor a kernel reads or writes: where it lives and its logical shape.
#[derive(Clone, Debug)]
pub(crate) struct Operand<'g> {
    pub region: Region,
    pub shape: &'g [usize],
}

/// What a generator may use besides its operands.
pub(crate) struct Ctx<'a> {
    pub site: Site,
    pub opts: &'a SimplePlanOptions,
    /// `n5`: the prefix of this node's kernel names.
    prefix: String,
    names: &'a mut Names,
    /// Buffers the generator adds (score scratch, tables).
    extra: Vec<BufferDecl>,
}

impl Ctx<'_> {
    /// `n5_roll` or `n5_roll_{suffix}`.
    pub(crate) fn kernel_name(&self, suffix: &str) -> String {
        let op = self.site.op.replace('-', "_");
        if suffix.is_empty() {
            format!("{}_{op}", self.prefix)
        } else {
            format!("{}_{op}_{suffix}", self.prefix)
        }
    }

    pub(crate) fn unsupported(&self) -> CodegenError {
        CodegenError::Unsupported { op: self.site.op, node: self.site.node }
    }

    /// Adds an f32 buffer named after the node (`n9_scores`) and returns its name.
    pub(crate) fn add_buffer(
        &mut self,
        suffix: &str,
        bytes: u64,
        role: BufferRole,
        shape: Vec<usize>,
    ) -> String {
        let name = self.names.fresh(&format!("{}_{suffix}", self.prefix));
        self.extra.push(BufferDecl { name: name.clone(), bytes, role, shape, elem: ElemType::F32 });
        name
    }
}

/// Buffer names in use; plan buffers, inputs and outputs share one namespace.
#[derive(Default)]
pub(crate) struct Names(HashSet<String>);

impl Names {
    /// `base`, or `base_1`, `base_2`, ... if it is taken.
    fn fresh(&mut self, base: &str) -> String {
        let mut name = base.to_string();
        let mut i = 1;
        while self.0.contains(&name) {
            name = format!("{base}_{i}");
            i += 1;
        }
        self.0.insert(name.clone());
        name
    }
}

/// Plans `graph` as plain kernels, one op at a time, except that connected
/// elementwise ops become one kernel when `opts.fuse_elementwise` is set.
///
/// Inputs and parameters get buffers under their names (role `Input`); every
/// other node gets a buffer `n{index}` unless it is a reshape that shares its
/// operand's buffer, or a fused value nothing outside its group reads. An output takes over its node's buffer under the output's
/// name (role `Output`) when it can, and is copied into one otherwise.
///
/// Every buffer holds f32 except those of integer leaves (`i32` and `i64`
/// ids and targets), which hold i32: the runtime narrows `i64` values on
/// upload. Integer tensors are only ever read, so no other node, and no
/// output, may be an integer.
pub fn plan_graph(graph: &ValidGraph, opts: &SimplePlanOptions) -> Result<KernelPlan, CodegenError> {
    opts.check()?;
    let ids: Vec<NodeId> = graph.node_ids().collect();
    for &id in &ids {
        check_node(graph, id, opts)?;
    }

    // The node whose buffer holds each node's values.
    let mut root: Vec<NodeId> = Vec::with_capacity(ids.len());
    for &id in &ids {
        let node = graph.node(id);
        root.push(match (&node.op, node.inputs.first()) {
            (Op::Reshape { .. }, Some(x)) if opts.alias_reshapes => root[x.index()],
            _ => id,
        });
    }

    let mut names = Names::default();
    let leaves: HashSet<&str> = graph.leaves().map(|(_, name)| name).collect();
    for (name, id) in graph.outputs() {
        if leaves.contains(name.as_str()) {
            return Err(CodegenError::NameClash { name: name.clone() });
        }
        // Outputs are read back as f32; integer leaves are never copied out.
        let dtype = graph.node(*id).ty.dtype;
        if dtype != DType::F32 {
            return Err(CodegenError::UnsupportedDType { op: "output", node: *id, dtype });
        }
        names.0.insert(name.clone());
    }
    names.0.extend(leaves.iter().map(|s| s.to_string()));

    // Buffer name and role of each root node.
    let mut buffer: Vec<Option<(String, BufferRole, Vec<usize>)>> = vec![None; ids.len()];
    for (id, name) in graph.leaves() {
        buffer[id.index()] = Some((name.to_string(), BufferRole::Input, graph.node(id).ty.shape.clone()));
    }
    let mut copies = Vec::new();
    for (name, id) in graph.outputs() {
        let r = root[id.index()];
        let shape = graph.node(*id).ty.shape.clone();
        if buffer[r.index()].is_none() {
            buffer[r.index()] = Some((name.clone(), BufferRole::Output, shape));
        } else {
            copies.push((name.clone(), *id, shape));
        }
    }
    let fusion = if opts.fuse_elementwise { Fusion::plan(graph, opts) } else { Fusion::none(graph) };
    for &id in &ids {
        // A fused group's inner values live in registers only.
        if root[id.index()] == id && buffer[id.index()].is_none() && fusion.materialized(id) {
            let name = names.fresh(&format!("n{}", id.index()));
            buffer[id.index()] = Some((name, BufferRole::Scratch, graph.node(id).ty.shape.clone()));
        }
    }

    let siblings = fused_grad_groups(graph);
    // Each fused attention planned so far, and the buffer of its log-sum-exp.
    let mut forwards: Vec<(NodeId, String)> = Vec::new();
    let mut plan = KernelPlan::default();
    for &id in &ids {
        let Some((name, role, shape)) = &buffer[id.index()] else { continue };
        let bytes = elements(shape) * 4;
        let elem = elem_type(graph.node(id).ty.dtype);
        plan.buffers.insert(
            name.clone(),
            BufferDecl { name: name.clone(), bytes, role: role.clone(), shape: shape.clone(), elem },
        );
    }
    let region = |id: NodeId| -> Region {
        let name = buffer[root[id.index()].index()].as_ref().map_or("", |b| b.0.as_str());
        let node = graph.node(id);
        Region::whole(name, elements(&node.ty.shape)).with_elem(elem_type(node.ty.dtype))
    };

    for &id in &ids {
        let node = graph.node(id);
        if node.op.leaf_name().is_some() || root[id.index()] != id {
            continue;
        }
        if let Some(group) = fusion.group(id) {
            // The group's one kernel runs at its last member.
            if group.members.last() == Some(&id) {
                let kernel = fusion::emit(graph, opts, group, id, &region)?;
                add(&mut plan, Vec::new(), vec![kernel]);
            }
            continue;
        }
        let site = Site { node: id, op: node.op.name() };
        let mut cx =
            Ctx { site, opts, prefix: format!("n{}", id.index()), names: &mut names, extra: Vec::new() };
        let inputs: Vec<Operand> = node
            .inputs
            .iter()
            .map(|&x| Operand { region: region(x), shape: &graph.node(x).ty.shape })
            .collect();
        let out = Operand { region: region(id), shape: &node.ty.shape };
        let kernels = match &node.op {
            Op::FusedAttention { heads, scale, rope } => {
                let (kernels, lse) = fused_attention::emit(&mut cx, heads, *scale, *rope, &inputs, &out)?;
                forwards.push((id, lse));
                kernels
            }
            // One backward pass writes every gradient of the group, at its first member.
            Op::FusedAttentionGrad { heads, scale, rope, .. } => match siblings.get(&id) {
                Some(group) => {
                    let grads = group
                        .map(|m| m.map(|g| Operand { region: region(g), shape: &graph.node(g).ty.shape }));
                    let saved =
                        forwards.iter().find(|(f, _)| is_forward_of(graph, *f, id)).map(|(f, lse)| {
                            fused_attention::SavedForward {
                                o: Operand { region: region(*f), shape: &graph.node(*f).ty.shape },
                                lse: lse.clone(),
                            }
                        });
                    fused_attention::emit_backward(
                        &mut cx,
                        heads,
                        *scale,
                        *rope,
                        &inputs,
                        &grads,
                        saved.as_ref(),
                    )?
                }
                None => Vec::new(),
            },
            _ => emit(&mut cx, &node.op, &inputs, &out)?,
        };
        add(&mut plan, cx.extra, kernels);
    }

    for (i, (name, id, shape)) in copies.into_iter().enumerate() {
        let site = Site { node: id, op: "output" };
        let cx = Ctx { site, opts, prefix: String::new(), names: &mut names, extra: Vec::new() };
        let to = Region::whole(&name, elements(&shape));
        let kernel = layout::copy(&cx, &format!("output_copy_{i}"), &region(id), &to)?;
        let decl = BufferDecl {
            name: name.clone(),
            bytes: to.elems * 4,
            role: BufferRole::Output,
            shape,
            elem: ElemType::F32,
        };
        add(&mut plan, vec![decl], vec![kernel]);
    }
    if opts.share_scratch {
        memory::share_scratch(&mut plan);
    }
    Ok(plan)
}

/// The gradient nodes of each fused attention, keyed by the group's first node:
/// `[dq, dk, dv]`, each present if some node computes it. Nodes with the same
/// operands and attributes are one backward pass.
fn fused_grad_groups(graph: &ValidGraph) -> HashMap<NodeId, [Option<NodeId>; 3]> {
    let mut first: Vec<(NodeId, [Option<NodeId>; 3])> = Vec::new();
    for id in graph.node_ids() {
        let node = graph.node(id);
        let Op::FusedAttentionGrad { heads, scale, grad, rope } = &node.op else { continue };
        let same = |other: NodeId| {
            let o = graph.node(other);
            matches!(&o.op, Op::FusedAttentionGrad { heads: h, scale: s, rope: r, .. }
                if h == heads && s == scale && r == rope)
                && o.inputs == node.inputs
        };
        match first.iter_mut().find(|(lead, _)| same(*lead)) {
            Some((_, members)) if members[grad.operand()].is_none() => members[grad.operand()] = Some(id),
            // A duplicate of a gradient already in the group forms a group of its own.
            _ => {
                let mut members = [None; 3];
                members[grad.operand()] = Some(id);
                first.push((id, members));
            }
        }
    }
    first.into_iter().collect()
}

/// Whether fused attention `forward` is the one gradient node `grad`
/// differentiates: the same q, k and v, masks, scale and rope.
fn is_forward_of(graph: &ValidGraph, forward: NodeId, grad: NodeId) -> bool {
    let (f, g) = (graph.node(forward), graph.node(grad));
    match (&f.op, &g.op) {
        (
            Op::FusedAttention { heads, scale, rope },
            Op::FusedAttentionGrad { heads: gh, scale: gs, rope: gr, .. },
        ) => heads == gh && scale == gs && rope == gr && g.inputs.get(..3) == Some(&f.inputs[..]),
        _ => false,
    }
}

fn add(plan: &mut KernelPlan, buffers: Vec<BufferDecl>, kernels: Vec<Kernel>) {
    let buffers: BTreeMap<String, BufferDecl> = buffers.into_iter().map(|b| (b.name.clone(), b)).collect();
    plan.buffers.extend(buffers);
    plan.kernels.extend(kernels);
}

/// The element type of a node's buffer; only leaves may be integers (`check_node`).
fn elem_type(dtype: DType) -> ElemType {
    match dtype {
        DType::I32 | DType::I64 => ElemType::I32,
        DType::F32 | DType::F16 => ElemType::F32,
    }
}

/// f32, or an integer leaf, and small enough for one device buffer and 32-bit indices.
fn check_node(graph: &ValidGraph, id: NodeId, opts: &SimplePlanOptions) -> Result<(), CodegenError> {
    let node = graph.node(id);
    let op = node.op.name();
    let integer_leaf = node.op.leaf_name().is_some() && matches!(node.ty.dtype, DType::I32 | DType::I64);
    if node.ty.dtype != DType::F32 && !integer_leaf {
        return Err(CodegenError::UnsupportedDType { op, node: id, dtype: node.ty.dtype });
    }
    let elems = elements(&node.ty.shape);
    let site = Site { node: id, op };
    if elems > MAX_ELEMENTS {
        return Err(site.too_large(format!("{} has more than 2^31 elements", node.ty)));
    }
    if elems * 4 > opts.max_buffer_size {
        return Err(site.too_large(format!(
            "{} needs {} bytes, more than the largest buffer ({} bytes)",
            node.ty,
            elems * 4,
            opts.max_buffer_size
        )));
    }
    Ok(())
}

/// Dispatches a node to its op family's generator.
fn emit(cx: &mut Ctx, op: &Op, inputs: &[Operand], out: &Operand) -> Result<Vec<Kernel>, CodegenError> {
    match op {
        // Leaves own buffers and have no kernel; the caller never gets here with one.
        Op::Input { .. } | Op::Parameter { .. } => Err(cx.unsupported()),
        Op::Add | Op::Mul | Op::Scale { .. } | Op::Exp | Op::Log | Op::Silu | Op::Sigmoid => {
            elementwise::emit(cx, op, inputs, out)
        }
        Op::Reshape { .. }
        | Op::Permute { .. }
        | Op::Roll { .. }
        | Op::Slice { .. }
        | Op::Pad { .. }
        | Op::Broadcast { .. }
        | Op::Concat { .. } => layout::emit(cx, op, inputs, out),
        Op::Softmax { .. }
        | Op::SoftmaxGrad { .. }
        | Op::ReduceSum { .. }
        | Op::ReduceMax { .. }
        | Op::ReduceMean { .. } => reduce::emit(cx, op, inputs, out),
        Op::MaskedSoftmax { mask, head_offset, scale } => {
            masked_softmax::emit(cx, mask, *head_offset, *scale, inputs, out)
        }
        Op::MatMul { transpose_a, transpose_b } => matmul::emit(cx, *transpose_a, *transpose_b, inputs, out),
        Op::RmsNorm { eps } => rms_norm::emit(cx, *eps, inputs, out),
        Op::RmsNormGrad { eps } => rms_norm::emit_grad(cx, *eps, inputs, out),
        Op::RmsNormWeightGrad { eps } => rms_norm::emit_weight_grad(cx, *eps, inputs, out),
        Op::Rope { theta, position_scale } => rope::emit(cx, *theta, *position_scale, inputs, out),
        Op::Attention { mask, head_offset, scale } => {
            attention::emit(cx, mask, *head_offset, *scale, inputs, out)
        }
        // Planned in `plan_graph`, which keeps each forward's log-sum-exp for
        // its backward and plans the gradient nodes by group.
        Op::FusedAttention { .. } | Op::FusedAttentionGrad { .. } => Err(cx.unsupported()),
        Op::Embedding => embedding::emit(cx, inputs, out),
        Op::EmbeddingGrad { .. } => embedding::emit_grad(cx, inputs, out),
        Op::CrossEntropy => cross_entropy::emit(cx, inputs, out),
        Op::CrossEntropyGrad => cross_entropy::emit_grad(cx, inputs, out),
    }
}
