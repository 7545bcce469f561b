//! Fusion into [`Weft::FusedAttention`]: one block-sparse kernel for all heads,
//! each head range with its own mask.
//!
//! The reference graph spells a pattern out the way PyTorch code does: rolls
//! of q, k, v and back (S2-Attn's shift), reshapes into groups and back, dense
//! attention per head slice and a concat. Each rule here moves one of those
//! into the mask of a fused node, where it costs nothing at run time.

use std::ops::Range;

use egg::{Id, Subst};
use weft_ir::expr::SizeExpr;
use weft_ir::graph::{HeadMask, Op, TensorType};
use weft_ir::{Mask, MaskExpr};

use super::{WeftRewrite, bind_int, bound, custom, data, guarded, int, shape, wrap};
use crate::optimize::analysis::WeftGraph;
use crate::optimize::cost::CostModel;
use crate::optimize::lang::Weft;
use crate::optimize::terms::{add_mask, shift_heads};

/// The head axis of `[B, H, N, D]`.
const HEAD_AXIS: usize = 1;

pub fn rules() -> Result<Vec<WeftRewrite>, String> {
    Ok(vec![
        // attention(q, k, v, M) = fused(q, k, v; heads 0..H: M).
        guarded(
            "attention-to-fused",
            "(attention ?s ?m ?q ?k ?v)",
            "(fused-attention ?s (head-masks (entry 0 ?h ?m)) ?q ?k ?v)",
            to_fused,
        )?,
        // roll_R(+o, fused(roll_R(-o, q), roll_R(-o, k), roll_R(-o, v); M)) = fused(q, k, v; M') along
        // the sequence (axis 2), where M' gives heads in R the mask roll(o, M_h) and other heads M_h.
        guarded(
            "fuse-roll",
            "(roll 2 ?o ?r (fused-attention ?s ?ms (roll 2 ?i ?r ?q) (roll 2 ?i ?r ?k) (roll 2 ?i ?r ?v)))",
            "(fused-attention ?s ?rolled ?q ?k ?v)",
            fuse_roll,
        )?,
        // reshape_back(attention(reshape_G(q), reshape_G(k), reshape_G(v), M)) = fused(q, k, v; heads 0..H: M & groups(G))
        // when M depends on q - k only and not on h; reshape_G: [B, H, N, D] -> [B, H·N/G, G, D].
        guarded(
            "fuse-grouped-reshape",
            "(reshape ?back (attention ?s ?m (reshape ?g ?q) (reshape ?g ?k) (reshape ?gv ?v)))",
            "(fused-attention ?s (head-masks (entry 0 ?H (m-and ?m (m-groups ?G 0)))) ?q ?k ?v)",
            grouped,
        )?,
        // reshape_back(T(attention(T(reshape_G(q)), T(reshape_G(k)), T(reshape_G(v)), M))) = T(fused(T(q), T(k), T(v); heads 0..H: M & groups(G)))
        // when M depends on q - k only; q [B, N, H, D], reshape_G: [B, N, H, D] -> [B·N/G, G, H, D], T swaps axes 1 and 2.
        guarded(
            "fuse-batch-grouped",
            "(reshape ?back (permute ?t (attention ?s ?m (permute ?t (reshape ?g ?q)) (permute ?t (reshape ?g ?k)) (permute ?t (reshape ?gv ?v)))))",
            "(permute ?t (fused-attention ?s (head-masks (entry 0 ?H (m-and ?m (m-groups ?G 0)))) (permute ?t ?q) (permute ?t ?k) (permute ?t ?v)))",
            batch_grouped,
        )?,
        // concat_heads(fused(slice_R1(q), ...; M1), fused(slice_R2(q), ...; M2), ...) = fused(q, k, v; M1 ∪ M2 ∪ ...)
        // for adjacent ranges, each Mi moved to the global head index.
        custom("fuse-head-concat", plan_concat, build_concat)?,
        // Adjacent head ranges with equal masks are one range: (a..b: M) (b..c: M) = (a..c: M).
        custom("merge-head-masks", plan_merge, build_merge)?,
    ])
}

fn to_fused(egraph: &mut WeftGraph, subst: &Subst) -> Option<Subst> {
    let &[_, heads, _, _] = shape(egraph, subst, "?q")? else { return None };
    let mut subst = subst.clone();
    bind_int(egraph, &mut subst, "?h", i64::try_from(heads).ok()?);
    Some(subst)
}

fn fuse_roll(egraph: &mut WeftGraph, subst: &Subst) -> Option<Subst> {
    let &[_, heads, n, _] = shape(egraph, subst, "?q")? else { return None };
    let n = i64::try_from(n).ok()?;
    let o = int(egraph, subst, "?o")?;
    // The output turns back exactly what the operands were turned by.
    if wrap(o.checked_add(int(egraph, subst, "?i")?)?, n)? != 0 {
        return None;
    }
    let rolled = match data(egraph, subst, "?r")?.heads()? {
        None => 0..heads,
        Some(r) if r.axis == HEAD_AXIS => r.start..r.end,
        Some(_) => return None,
    };
    let entries = entries_of(egraph, bound(subst, "?ms")?)?;
    let offset = wrap(o, n)?;
    let mut pieces = Vec::with_capacity(entries.len() + 2);
    for (range, mask) in entries {
        if range.start > range.end {
            return None;
        }
        let cuts = [
            range.start,
            rolled.start.clamp(range.start, range.end),
            rolled.end.clamp(range.start, range.end),
            range.end,
        ];
        for piece in cuts.windows(2).map(|w| w[0]..w[1]).filter(|p| !p.is_empty()) {
            let inside = rolled.contains(&piece.start);
            let mask = if inside && offset != 0 {
                let (len, by) = (egraph.add(Weft::Num(n)), egraph.add(Weft::Num(offset)));
                egraph.add(Weft::MRoll([len, by, mask]))
            } else {
                mask
            };
            pieces.push((piece, mask));
        }
    }
    let list = add_head_masks(egraph, pieces)?;
    let mut subst = subst.clone();
    subst.insert(super::var("?rolled"), list);
    Some(subst)
}

fn lit(x: usize) -> Option<i64> {
    i64::try_from(x).ok()
}

fn grouped(egraph: &mut WeftGraph, subst: &Subst) -> Option<Subst> {
    let &[b, h, n, d] = shape(egraph, subst, "?q")? else { return None };
    let &[vb, vh, vn, dv] = shape(egraph, subst, "?v")? else { return None };
    if shape(egraph, subst, "?k")? != [b, h, n, d] || [vb, vh, vn] != [b, h, n] {
        return None;
    }
    let list = |name: &str| -> Option<Vec<usize>> {
        data(egraph, subst, name)?.list()?.iter().map(|&x| usize::try_from(x).ok()).collect()
    };
    let g = list("?g")?;
    let group = *g.get(2)?;
    if group == 0 || !n.is_multiple_of(group) {
        return None;
    }
    let folded = h.checked_mul(n / group)?;
    if g != [b, folded, group, d] || list("?gv")? != [b, folded, group, dv] || list("?back")? != [b, h, n, dv]
    {
        return None;
    }
    // Inside a group the mask reads group-local positions; that equals reading
    // global ones only if it depends on q - k alone, and every folded head is a
    // different (head, group) pair, so it must not depend on h.
    let mask = data(egraph, subst, "?m")?.mask()?;
    if !mask.translation_invariant || mask.depends_on_h {
        return None;
    }
    let (q_ty, v_ty) = (data(egraph, subst, "?q")?.tensor()?, data(egraph, subst, "?v")?.tensor()?);
    let scale = data(egraph, subst, "?s")?.float()?;
    let dense = [q_ty.with_shape(g), v_ty.with_shape(vec![b, folded, group, dv])];
    if !fused_no_dearer(&mask.mask, group, scale, &dense, &[q_ty.clone(), v_ty.clone()])? {
        return None;
    }
    let mut subst = subst.clone();
    bind_int(egraph, &mut subst, "?G", lit(group)?);
    bind_int(egraph, &mut subst, "?H", lit(h)?);
    Some(subst)
}

/// Whether fused attention with `mask & groups(group)` on `fused` (q and v
/// types; k is q's) costs no more than the dense attention with `mask` on
/// `dense` it replaces. Fused attention computes a subset of the tiles the
/// grouped dense attention computes (it skips tiles outside the groups) in
/// fewer launches, so this holds under the tile cost model; the check keeps
/// the grouping rules' promise never to make a graph worse should the model
/// change. `None` when the grouped mask cannot be built.
fn fused_no_dearer(
    mask: &Mask,
    group: usize,
    scale: f64,
    dense: &[TensorType; 2],
    fused: &[TensorType; 2],
) -> Option<bool> {
    let grouped_mask = mask
        .expr()
        .clone()
        .and(MaskExpr::Groups { size: SizeExpr::lit(lit(group)?), offset: SizeExpr::lit(0) });
    let grouped_mask = Mask::new(grouped_mask).ok()?;
    let model = CostModel::new();
    let [qd, vd] = dense;
    let dense =
        model.op_cost(&Op::Attention { mask: mask.clone(), head_offset: 0, scale }, &[qd, qd, vd], vd);
    let [qf, vf] = fused;
    let heads = vec![HeadMask::new(0..*qf.shape.get(1)?, grouped_mask)];
    let fused = model.op_cost(&Op::FusedAttention { heads, scale, rope: None }, &[qf, qf, vf], vf);
    Some(fused.total() <= dense.total())
}

/// `(0 2 1 3)`: the transpose of axes 1 and 2 of a rank-4 tensor
/// (`[B, N, H, D]` to `[B, H, N, D]` and back).
const SWAP_1_2: [i64; 4] = [0, 2, 1, 3];

fn batch_grouped(egraph: &mut WeftGraph, subst: &Subst) -> Option<Subst> {
    if data(egraph, subst, "?t")?.list()? != SWAP_1_2 {
        return None;
    }
    // q, k, v in token-major layout, [B, N, H, D].
    let &[b, n, h, d] = shape(egraph, subst, "?q")? else { return None };
    let &[vb, vn, vh, dv] = shape(egraph, subst, "?v")? else { return None };
    if shape(egraph, subst, "?k")? != [b, n, h, d] || [vb, vn, vh] != [b, n, h] {
        return None;
    }
    let list = |name: &str| -> Option<Vec<usize>> {
        data(egraph, subst, name)?.list()?.iter().map(|&x| usize::try_from(x).ok()).collect()
    };
    let g = list("?g")?;
    let group = *g.get(1)?;
    if group == 0 || !n.is_multiple_of(group) {
        return None;
    }
    // The groups of every sample folded into the batch axis: [B·N/G, G, H, D].
    let folded = b.checked_mul(n / group)?;
    if g != [folded, group, h, d] || list("?gv")? != [folded, group, h, dv] || list("?back")? != [b, n, h, dv]
    {
        return None;
    }
    // Inside a group the mask reads group-local positions; that equals reading
    // global ones only if it depends on q - k alone. The head axis is the
    // model's own on both sides, so a mask in h keeps its meaning.
    let mask = data(egraph, subst, "?m")?.mask()?;
    if !mask.translation_invariant {
        return None;
    }
    let (q_ty, v_ty) = (data(egraph, subst, "?q")?.tensor()?, data(egraph, subst, "?v")?.tensor()?);
    let scale = data(egraph, subst, "?s")?.float()?;
    let dense = [q_ty.with_shape(vec![folded, h, group, d]), v_ty.with_shape(vec![folded, h, group, dv])];
    let fused = [q_ty.with_shape(vec![b, h, n, d]), v_ty.with_shape(vec![b, h, n, dv])];
    // Both sides transpose q, k, v and the output once each, on tensors of the
    // same sizes (reshapes are free), so the attention nodes decide the cost.
    if !fused_no_dearer(&mask.mask, group, scale, &dense, &fused)? {
        return None;
    }
    let mut subst = subst.clone();
    bind_int(egraph, &mut subst, "?G", lit(group)?);
    bind_int(egraph, &mut subst, "?H", lit(h)?);
    Some(subst)
}

/// The entries of a `head-masks` class as (range, mask class), from its
/// shortest list.
fn entries_of(egraph: &WeftGraph, list: Id) -> Option<Vec<(Range<usize>, Id)>> {
    let ids = egraph[list]
        .nodes
        .iter()
        .filter_map(|node| match node {
            Weft::HeadMasks(ids) => Some(ids),
            _ => None,
        })
        .min_by_key(|ids| ids.len())?;
    ids.iter()
        .map(|&entry| {
            let heads = match &egraph[entry].data {
                crate::optimize::analysis::Data::Entry(e) => e.heads.clone(),
                _ => return None,
            };
            let mask = egraph[entry].nodes.iter().find_map(|node| match node {
                Weft::Entry([_, _, m]) => Some(egraph.find(*m)),
                _ => None,
            })?;
            Some((heads, mask))
        })
        .collect()
}

/// Merges adjacent ranges whose masks are one class.
fn merge_adjacent(egraph: &WeftGraph, entries: Vec<(Range<usize>, Id)>) -> Vec<(Range<usize>, Id)> {
    let mut out: Vec<(Range<usize>, Id)> = Vec::with_capacity(entries.len());
    for (range, mask) in entries {
        match out.last_mut() {
            Some((last, m)) if last.end == range.start && egraph.find(*m) == egraph.find(mask) => {
                last.end = range.end
            }
            _ => out.push((range, mask)),
        }
    }
    out
}

/// Adds `(head-masks (entry ...) ...)`, adjacent equal masks merged.
fn add_head_masks(egraph: &mut WeftGraph, entries: Vec<(Range<usize>, Id)>) -> Option<Id> {
    let entries = merge_adjacent(egraph, entries);
    let mut ids = Vec::with_capacity(entries.len());
    for (range, mask) in entries {
        let start = egraph.add(Weft::Num(i64::try_from(range.start).ok()?));
        let end = egraph.add(Weft::Num(i64::try_from(range.end).ok()?));
        ids.push(egraph.add(Weft::Entry([start, end, mask])));
    }
    Some(egraph.add(Weft::HeadMasks(ids.into_boxed_slice())))
}

/// One operand of a head concat: fused attention on the same head slice of q, k, v.
#[derive(Clone, Debug)]
struct SlicedFused {
    scale: Id,
    masks: Id,
    heads: Range<usize>,
    /// The unsliced q, k, v.
    qkv: [Id; 3],
}

/// A head concat of fused nodes to merge into one.
pub(crate) struct ConcatPlan {
    scale: Id,
    qkv: [Id; 3],
    heads: Range<usize>,
    all_heads: usize,
    seq_len: i64,
    /// (range in the merged node, mask class, how far the range moved).
    entries: Vec<(Range<usize>, Id, usize)>,
}

/// The head slice `(slice 1 a b x)` in class `class`: `(a..b, x)`.
fn head_slices(egraph: &WeftGraph, class: Id) -> Vec<(Range<usize>, Id)> {
    egraph[class]
        .nodes
        .iter()
        .filter_map(|node| match node {
            Weft::Slice([axis, start, end, x]) => {
                let int = |id: Id| egraph[id].data.int().and_then(|v| usize::try_from(v).ok());
                (int(*axis)? == HEAD_AXIS).then_some((int(*start)?..int(*end)?, egraph.find(*x)))
            }
            _ => None,
        })
        .collect()
}

/// Every fused node in `class` whose q, k, v are one head slice of three tensors.
fn sliced_fused(egraph: &WeftGraph, class: Id) -> Vec<SlicedFused> {
    let mut out = Vec::new();
    for node in &egraph[class].nodes {
        let Weft::FusedAttention([scale, masks, q, k, v]) = node else { continue };
        for (heads, q) in head_slices(egraph, *q) {
            let find =
                |x: Id| head_slices(egraph, x).into_iter().find(|(r, _)| *r == heads).map(|(_, base)| base);
            if let (Some(k), Some(v)) = (find(*k), find(*v)) {
                out.push(SlicedFused {
                    scale: egraph.find(*scale),
                    masks: egraph.find(*masks),
                    heads: heads.clone(),
                    qkv: [q, k, v],
                });
            }
        }
    }
    out
}

fn plan_concat(egraph: &WeftGraph, class: Id) -> Option<ConcatPlan> {
    egraph[class].nodes.iter().find_map(|node| {
        let Weft::Concat(ids) = node else { return None };
        let (axis, operands) = ids.split_first()?;
        if egraph[*axis].data.int()? != HEAD_AXIS as i64 || operands.len() < 2 {
            return None;
        }
        let firsts = sliced_fused(egraph, operands[0]);
        firsts.into_iter().find_map(|first| plan_from(egraph, first, &operands[1..]))
    })
}

/// Extends `first` by the remaining operands, each starting where the last ended.
fn plan_from(egraph: &WeftGraph, first: SlicedFused, rest: &[Id]) -> Option<ConcatPlan> {
    let start = first.heads.start;
    let mut parts = vec![first.clone()];
    for &operand in rest {
        let end = parts.last()?.heads.end;
        let next = sliced_fused(egraph, operand)
            .into_iter()
            .find(|f| f.heads.start == end && f.scale == first.scale && f.qkv == first.qkv)?;
        parts.push(next);
    }
    let end = parts.last()?.heads.end;
    let &[_, all_heads, seq_len, _] = egraph[first.qkv[0]].data.tensor()?.shape.as_slice() else {
        return None;
    };
    let mut entries = Vec::new();
    for part in &parts {
        let moved = part.heads.start.checked_sub(start)?;
        for (range, mask) in entries_of(egraph, part.masks)? {
            entries.push(((range.start + moved)..(range.end + moved), mask, moved));
        }
    }
    Some(ConcatPlan {
        scale: first.scale,
        qkv: first.qkv,
        heads: start..end,
        all_heads,
        seq_len: i64::try_from(seq_len).ok()?,
        entries,
    })
}

fn build_concat(egraph: &mut WeftGraph, plan: ConcatPlan) -> Option<Id> {
    let mut entries = Vec::with_capacity(plan.entries.len());
    for (range, mask, moved) in plan.entries {
        // A head that was local head j is now head j + moved: read its mask at h - moved.
        let info = egraph[mask].data.mask()?.clone();
        let mask = if info.depends_on_h && moved != 0 {
            let shifted = shift_heads(info.mask.expr(), -i64::try_from(moved).ok()?);
            add_mask(&mut |node| egraph.add(node), &shifted, plan.seq_len).ok()?
        } else {
            mask
        };
        entries.push((range, mask));
    }
    let masks = add_head_masks(egraph, entries)?;
    let [q, k, v] = if plan.heads == (0..plan.all_heads) {
        plan.qkv
    } else {
        let axis = egraph.add(Weft::Num(HEAD_AXIS as i64));
        let start = egraph.add(Weft::Num(i64::try_from(plan.heads.start).ok()?));
        let end = egraph.add(Weft::Num(i64::try_from(plan.heads.end).ok()?));
        plan.qkv.map(|x| egraph.add(Weft::Slice([axis, start, end, x])))
    };
    Some(egraph.add(Weft::FusedAttention([plan.scale, masks, q, k, v])))
}

fn plan_merge(egraph: &WeftGraph, class: Id) -> Option<Vec<(Range<usize>, Id)>> {
    let entries = entries_of(egraph, class)?;
    let merged = merge_adjacent(egraph, entries.clone());
    (merged.len() < entries.len()).then_some(merged)
}

fn build_merge(egraph: &mut WeftGraph, entries: Vec<(Range<usize>, Id)>) -> Option<Id> {
    add_head_masks(egraph, entries)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{check, check_not};
    use super::*;

    const CG16: &str = "(m-and m-causal (m-groups 16 0))";

    #[test]
    fn attention_to_fused() {
        let rules = rules().unwrap();
        check(
            &rules,
            "attention-to-fused",
            "(attention 0.25 m-causal Q K V)",
            "(fused-attention 0.25 (head-masks (entry 0 4 m-causal)) Q K V)",
        );
    }

    #[test]
    fn fuse_roll() {
        let rules = rules().unwrap();
        let fused = |ms: &str, x: &str| format!("(fused-attention 0.25 {ms} {x})");
        // LongLoRA's shift: heads 2..4 are rolled by -8 and back by +8.
        let roll = |s: i64, x: &str| format!("(roll 2 {s} (heads 1 2 4) {x})");
        let inner = fused(
            &format!("(head-masks (entry 0 4 {CG16}))"),
            &format!("{} {} {}", roll(-8, "Q64"), roll(-8, "K64"), roll(-8, "V64")),
        );
        check(
            &rules,
            "fuse-roll",
            &roll(8, &inner),
            &fused(
                &format!("(head-masks (entry 0 2 {CG16}) (entry 2 4 (m-roll 64 8 {CG16})))"),
                "Q64 K64 V64",
            ),
        );
        // All heads, a shift given modulo N, and per-head masks that the rolled range cuts.
        let roll_all = |s: i64, x: &str| format!("(roll 2 {s} all {x})");
        let inner = fused(
            "(head-masks (entry 0 1 m-causal) (entry 1 4 (m-window 3)))",
            &format!("{} {} {}", roll_all(60, "Q64"), roll_all(60, "K64"), roll_all(60, "V64")),
        );
        check(
            &rules,
            "fuse-roll",
            &roll_all(4, &inner),
            &fused(
                "(head-masks (entry 0 1 (m-roll 64 4 m-causal)) (entry 1 4 (m-roll 64 4 (m-window 3))))",
                "Q64 K64 V64",
            ),
        );
        // The output must turn back exactly what the inputs were turned by.
        let inner = fused(
            "(head-masks (entry 0 4 m-causal))",
            &format!("{} {} {}", roll_all(-4, "Q64"), roll_all(-4, "K64"), roll_all(-4, "V64")),
        );
        check_not(
            &rules,
            "fuse-roll",
            &roll_all(8, &inner),
            &fused("(head-masks (entry 0 4 (m-roll 64 8 m-causal)))", "Q64 K64 V64"),
        );
    }

    #[test]
    fn fuse_grouped_reshape() {
        let rules = rules().unwrap();
        let grouped = |mask: &str| {
            let fold = |x: &str| format!("(reshape (list 2 16 16 8) {x})");
            format!(
                "(reshape (list 2 4 64 8) (attention 0.25 {mask} {} {} {}))",
                fold("Q64"),
                fold("K64"),
                fold("V64")
            )
        };
        let fused =
            |mask: &str| format!("(fused-attention 0.25 (head-masks (entry 0 4 {mask})) Q64 K64 V64)");
        check(&rules, "fuse-grouped-reshape", &grouped("m-causal"), &fused(CG16));
        check(
            &rules,
            "fuse-grouped-reshape",
            &grouped("(m-and m-causal (m-not (m-window 2)))"),
            &fused("(m-and (m-and m-causal (m-not (m-window 2))) (m-groups 16 0))"),
        );
        // A sink reads absolute positions, so it differs from group to group.
        check_not(
            &rules,
            "fuse-grouped-reshape",
            &grouped("(m-and m-causal (m-sink 2))"),
            &fused("(m-and (m-and m-causal (m-sink 2)) (m-groups 16 0))"),
        );
        // A mask in h would see the folded head index.
        check_not(
            &rules,
            "fuse-grouped-reshape",
            &grouped("(m-window (+ h 1))"),
            &fused("(m-and (m-window (+ h 1)) (m-groups 16 0))"),
        );
    }

    #[test]
    fn fuse_batch_grouped() {
        let rules = rules().unwrap();
        // LongLoRA's plain PyTorch path: q, k, v token-major ([B, N, H, D] = [2, 64, 4, 8]),
        // grouped into the batch ([B·N/G, G, H, D]) and transposed to [B·N/G, H, G, D].
        let t = |x: &str| format!("(permute (list 0 2 1 3) {x})");
        let leaf = |name: &str| format!("(input {name} f32 (list 2 64 4 8))");
        let grouped = |mask: &str| {
            let fold = |x: &str| t(&format!("(reshape (list 8 16 4 8) {})", leaf(x)));
            format!(
                "(reshape (list 2 64 4 8) {})",
                t(&format!("(attention 0.25 {mask} {} {} {})", fold("q"), fold("k"), fold("v")))
            )
        };
        let fused = |mask: &str| {
            t(&format!(
                "(fused-attention 0.25 (head-masks (entry 0 4 {mask})) {} {} {})",
                t(&leaf("q")),
                t(&leaf("k")),
                t(&leaf("v"))
            ))
        };
        check(&rules, "fuse-batch-grouped", &grouped("m-causal"), &fused(CG16));
        // The head axis is the model's on both sides, so a mask in h may stay.
        let windows = "(m-and m-causal (m-window (+ h 1)))";
        check(
            &rules,
            "fuse-batch-grouped",
            &grouped(windows),
            &fused(&format!("(m-and {windows} (m-groups 16 0))")),
        );
        // A sink reads absolute positions, so it differs from group to group.
        check_not(
            &rules,
            "fuse-batch-grouped",
            &grouped("(m-and m-causal (m-sink 2))"),
            &fused("(m-and (m-and m-causal (m-sink 2)) (m-groups 16 0))"),
        );
        // q, k, v in [B, H, N, D] layout: the same reshape cuts across heads, not into
        // groups of tokens.
        let heads_first = |name: &str| format!("(input {name} f32 (list 2 4 64 8))");
        let fold = |x: &str| t(&format!("(reshape (list 8 16 4 8) {})", heads_first(x)));
        check_not(
            &rules,
            "fuse-batch-grouped",
            &format!(
                "(reshape (list 2 64 4 8) {})",
                t(&format!("(attention 0.25 m-causal {} {} {})", fold("q"), fold("k"), fold("v")))
            ),
            &t(&format!(
                "(fused-attention 0.25 (head-masks (entry 0 64 {CG16})) {} {} {})",
                t(&heads_first("q")),
                t(&heads_first("k")),
                t(&heads_first("v"))
            )),
        );
    }

    #[test]
    fn fuse_head_concat() {
        let rules = rules().unwrap();
        let part = |a: usize, b: usize, mask: &str| {
            let s = |x: &str| format!("(slice 1 {a} {b} {x})");
            format!(
                "(fused-attention 0.25 (head-masks (entry 0 {} {mask})) {} {} {})",
                b - a,
                s("Q"),
                s("K"),
                s("V")
            )
        };
        // LongLoRA's flash form: unshifted and shifted halves.
        check(
            &rules,
            "fuse-head-concat",
            &format!("(concat 1 {} {})", part(0, 2, CG16), part(2, 4, "(m-and m-causal (m-groups 16 8))")),
            &format!(
                "(fused-attention 0.25 (head-masks (entry 0 2 {CG16}) (entry 2 4 (m-and m-causal (m-groups 16 8)))) Q K V)"
            ),
        );
        // Masks in h move with their heads: local head j of the second part is head j + 1.
        check(
            &rules,
            "fuse-head-concat",
            &format!(
                "(concat 1 {} {})",
                part(0, 1, "m-causal"),
                part(1, 4, "(m-local-stride 2 1 4 (+ h 1))")
            ),
            "(fused-attention 0.25 (head-masks (entry 0 1 m-causal) (entry 1 4 (m-local-stride 2 1 4 h))) Q K V)",
        );
        // A part of the heads stays a slice.
        check(
            &rules,
            "fuse-head-concat",
            &format!("(concat 1 {} {})", part(1, 2, "m-causal"), part(2, 3, "m-full")),
            "(fused-attention 0.25 (head-masks (entry 0 1 m-causal) (entry 1 2 m-full)) \
             (slice 1 1 3 Q) (slice 1 1 3 K) (slice 1 1 3 V))",
        );
        // Not adjacent: heads 0..1 and 2..4 leave a gap.
        check_not(
            &rules,
            "fuse-head-concat",
            &format!("(concat 1 {} {})", part(0, 1, "m-causal"), part(2, 4, "m-full")),
            "(fused-attention 0.25 (head-masks (entry 0 1 m-causal) (entry 1 3 m-full)) \
             (slice 1 0 3 Q) (slice 1 0 3 K) (slice 1 0 3 V))",
        );
    }

    #[test]
    fn merge_head_masks() {
        let rules = rules().unwrap();
        check(
            &rules,
            "merge-head-masks",
            "(fused-attention 0.25 (head-masks (entry 0 1 m-causal) (entry 1 3 m-causal) (entry 3 4 m-full)) Q K V)",
            "(fused-attention 0.25 (head-masks (entry 0 3 m-causal) (entry 3 4 m-full)) Q K V)",
        );
        check_not(
            &rules,
            "merge-head-masks",
            "(fused-attention 0.25 (head-masks (entry 0 1 m-causal) (entry 1 3 m-full) (entry 3 4 m-causal)) Q K V)",
            "(fused-attention 0.25 (head-masks (entry 0 4 m-causal)) Q K V)",
        );
    }
}
