//! From a validated graph to a [`KernelPlan`]: one buffer per node, kernels in
//! topological order.

use std::collections::{BTreeMap, HashMap, HashSet};

use weft_ir::graph::{DType, NodeId, Op, TensorType, ValidGraph};

use super::fusion::Fusion;
use super::{GraphPlanOptions, fused_attention, fusion, memory};
use crate::kernel::{BufferDecl, BufferRole, ElemType, Kernel, KernelPlan};
use crate::kernels::builder::{Region, elements};
use crate::kernels::{CodegenError, Ctx, MAX_ELEMENTS, Names, Operand, Site, permute};
use crate::optimize::{Cost, CostModel};

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
pub fn plan_graph(graph: &ValidGraph, opts: &GraphPlanOptions) -> Result<KernelPlan, CodegenError> {
    opts.check()?;
    let ids: Vec<NodeId> = graph.node_ids().collect();
    for &id in &ids {
        check_node(graph, id, opts)?;
    }

    let fusion = if opts.fuse_elementwise { Fusion::plan(graph, opts) } else { Fusion::none(graph) };
    // The node whose buffer holds each node's values.
    let mut root: Vec<NodeId> = Vec::with_capacity(ids.len());
    for &id in &ids {
        let node = graph.node(id);
        root.push(match (&node.op, node.inputs.first()) {
            (Op::Reshape { .. }, Some(x)) if opts.alias_reshapes => root[x.index()],
            _ => id,
        });
    }
    // Nodes whose kernel writes over their first operand's buffer.
    let mut in_place: HashSet<NodeId> = HashSet::new();
    if opts.in_place_loss_gradient {
        for &id in &ids {
            let node = graph.node(id);
            let Some(&logits) = node.inputs.first() else { continue };
            if matches!(node.op, Op::CrossEntropyGrad)
                && overwrites_dead_operand(graph, &fusion, &root, id, logits)
            {
                let target = root[logits.index()];
                for r in root.iter_mut().filter(|r| **r == id) {
                    *r = target;
                }
                in_place.insert(id);
            }
        }
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
    let storage = leaf_storage(graph, opts)?;

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
    for &id in &ids {
        // A fused group's inner values live in registers only.
        if root[id.index()] == id && buffer[id.index()].is_none() && fusion.materialized(id) {
            let name = names.fresh(&format!("n{}", id.index()));
            buffer[id.index()] = Some((name, BufferRole::Scratch, graph.node(id).ty.shape.clone()));
        }
    }

    let siblings = fused_grad_groups(graph);
    let model = CostModel::new();
    // Each fused attention planned so far, and the buffer of its log-sum-exp.
    let mut forwards: Vec<(NodeId, String)> = Vec::new();
    let mut plan = KernelPlan::default();
    for &id in &ids {
        let Some((name, role, shape)) = &buffer[id.index()] else { continue };
        let elem = storage.get(&id).copied().unwrap_or_else(|| elem_type(graph.node(id).ty.dtype));
        let bytes = elem.buffer_bytes(elements(shape));
        plan.buffers.insert(
            name.clone(),
            BufferDecl { name: name.clone(), bytes, role: role.clone(), shape: shape.clone(), elem },
        );
    }
    let region = |id: NodeId| -> Region {
        let r = root[id.index()];
        let name = buffer[r.index()].as_ref().map_or("", |b| b.0.as_str());
        let node = graph.node(id);
        // A reshape of a packed leaf reads the leaf's words.
        let elem = storage.get(&r).copied().unwrap_or_else(|| elem_type(node.ty.dtype));
        Region::whole(name, elements(&node.ty.shape)).with_elem(elem)
    };

    for &id in &ids {
        let node = graph.node(id);
        if node.op.leaf_name().is_some() || (root[id.index()] != id && !in_place.contains(&id)) {
            continue;
        }
        if let Some(group) = fusion.group(id) {
            // The group's one kernel runs at its last member.
            if group.members.last() == Some(&id) {
                let mut kernel = fusion::emit(graph, opts, group, id, &region)?;
                // The inner values stay in registers: FLOPs of every member, bytes as bound.
                kernel.flops = group.members.iter().map(|&m| node_cost(&model, graph, m).flops as u64).sum();
                kernel.bytes = bound_bytes(&plan, &kernel);
                add(&mut plan, Vec::new(), vec![kernel]);
            }
            continue;
        }
        let site = Site { node: id, op: node.op.name() };
        let mut cx = Ctx {
            site,
            limits: &opts.limits,
            matmul: opts.matmul,
            prefix: format!("n{}", id.index()),
            names: &mut names,
            extra: Vec::new(),
        };
        let inputs: Vec<Operand> = node
            .inputs
            .iter()
            .map(|&x| Operand { region: region(x), shape: &graph.node(x).ty.shape })
            .collect();
        let out = Operand { region: region(id), shape: &node.ty.shape };
        if matches!(node.op, Op::FusedAttention { .. } | Op::FusedAttentionGrad { .. })
            && let Some(packed) = inputs.iter().find(|o| o.region.elem.is_packed())
        {
            return Err(CodegenError::Options(format!(
                "fused attention reads `{}`, stored as {}: its kernels read f32 only",
                packed.region.buffer, packed.region.elem
            )));
        }
        let mut kernels = match &node.op {
            Op::FusedAttention { heads, scale, rope } => {
                let (kernels, lse) = fused_attention::emit(
                    &mut cx,
                    &opts.attention_forward,
                    heads,
                    *scale,
                    *rope,
                    &inputs,
                    &out,
                )?;
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
                        &opts.attention_backward,
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
            _ => crate::kernels::emit(&mut cx, &node.op, &inputs, &out)?,
        };
        // The fused attention planner counted its kernels' work exactly.
        if kernels.iter().all(|k| k.flops == 0 && k.bytes == 0) && !kernels.is_empty() {
            let cost = node_cost(&model, graph, id);
            let share = kernels.len() as f64;
            for k in &mut kernels {
                k.flops = (cost.flops / share) as u64;
                k.bytes = (cost.bytes / share) as u64;
            }
        }
        add(&mut plan, cx.extra, kernels);
    }

    for (i, (name, id, shape)) in copies.into_iter().enumerate() {
        let site = Site { node: id, op: "output" };
        let cx = Ctx {
            site,
            limits: &opts.limits,
            matmul: opts.matmul,
            prefix: String::new(),
            names: &mut names,
            extra: Vec::new(),
        };
        let to = Region::whole(&name, elements(&shape));
        let kernel = permute::copy(&cx, &format!("output_copy_{i}"), &region(id), &to)?;
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

/// Whether node `id` may write its result over its operand `x`'s buffer:
/// that buffer holds a value computed by the plan (not a leaf, not an
/// output), and no kernel reads it after `id`'s. Readers of the values that
/// share the buffer (reshapes of it) count, each at the kernel that reads it
/// (a fused group's kernel runs at its last member).
fn overwrites_dead_operand(
    graph: &ValidGraph,
    fusion: &Fusion,
    root: &[NodeId],
    id: NodeId,
    x: NodeId,
) -> bool {
    let target = root[x.index()];
    if graph.node(target).op.leaf_name().is_some() {
        return false;
    }
    let shares = |n: NodeId| root[n.index()] == target || root[n.index()] == id;
    if graph.outputs().iter().any(|(_, o)| shares(*o)) {
        return false;
    }
    graph.node_ids().filter(|&n| root[n.index()] == target).all(|n| {
        graph.users(n).all(|(user, _)| {
            let at = fusion.group(user).and_then(|g| g.members.last().copied()).unwrap_or(user);
            at <= id
        })
    })
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

/// The cost model's price of one node.
fn node_cost(model: &CostModel, graph: &ValidGraph, id: NodeId) -> Cost {
    let node = graph.node(id);
    let operands: Vec<&TensorType> = node.inputs.iter().map(|&x| &graph.node(x).ty).collect();
    model.op_cost(&node.op, &operands, &node.ty)
}

/// The bytes a kernel's bindings cover: each bound range read or written once.
fn bound_bytes(plan: &KernelPlan, kernel: &Kernel) -> u64 {
    let size = |b: &crate::kernel::Binding| match b.range {
        Some((_, bytes)) => bytes,
        None => plan.buffers.get(&b.buffer).map_or(0, |d| d.bytes),
    };
    kernel.bindings.iter().map(size).sum()
}

fn add(plan: &mut KernelPlan, buffers: Vec<BufferDecl>, kernels: Vec<Kernel>) {
    let buffers: BTreeMap<String, BufferDecl> = buffers.into_iter().map(|b| (b.name.clone(), b)).collect();
    plan.buffers.extend(buffers);
    plan.kernels.extend(kernels);
}

/// The packed leaves of `opts.leaf_storage`, by node. Each must be an f32
/// leaf; names `graph` does not have are left out, so that one map serves
/// every graph of a model (a prefill and its decoding step).
fn leaf_storage(
    graph: &ValidGraph,
    opts: &GraphPlanOptions,
) -> Result<HashMap<NodeId, ElemType>, CodegenError> {
    let mut packed = HashMap::new();
    for (name, &elem) in &opts.leaf_storage {
        let Some((id, _)) = graph.leaves().find(|(_, leaf)| *leaf == name.as_str()) else {
            continue;
        };
        let dtype = graph.node(id).ty.dtype;
        if dtype != DType::F32 {
            return Err(CodegenError::Options(format!(
                "`{name}` is {dtype}; only f32 leaves may be stored as {elem}"
            )));
        }
        if elem.is_packed() {
            packed.insert(id, elem);
        }
    }
    Ok(packed)
}

/// The element type of a node's buffer; only leaves may be integers (`check_node`).
fn elem_type(dtype: DType) -> ElemType {
    match dtype {
        DType::I32 | DType::I64 => ElemType::I32,
        DType::F32 | DType::F16 => ElemType::F32,
    }
}

/// f32, or an integer leaf, and small enough for one device buffer and 32-bit indices.
fn check_node(graph: &ValidGraph, id: NodeId, opts: &GraphPlanOptions) -> Result<(), CodegenError> {
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
    if elems * 4 > opts.limits.max_buffer_size {
        return Err(site.too_large(format!(
            "{} needs {} bytes, more than the largest buffer ({} bytes)",
            node.ty,
            elems * 4,
            opts.limits.max_buffer_size
        )));
    }
    Ok(())
}
