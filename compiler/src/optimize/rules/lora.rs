//! LoRA folding: a low-rank update applied to the activations can instead be
//! added to the weight it adapts (what PEFT's `merge_and_unload` does), which
//! pays off once the tokens outnumber what the weight-sized work costs.
//!
//! The rule adds the folded form only where the cost model says it is
//! cheaper: extraction prices terms as trees, and the unfolded form mentions
//! the projection's input twice, so extraction alone would count that input's
//! whole history twice and fold even where folding costs more. The guard
//! prices exactly the nodes that differ, and counts a node of the LoRA path as
//! saved only if nothing else reads it (in a differentiated graph the
//! backward pass still reads `x·Aᵀ`).

use egg::{Id, Subst};
use weft_ir::graph::{Op, TensorType};

use super::{WeftRewrite, bound, guarded};
use crate::optimize::analysis::WeftGraph;
use crate::optimize::cost::CostModel;
use crate::optimize::lang::Weft;

/// The rule's name, for [`crate::optimize::OptimizeOptions::training`].
pub const LORA_FOLD: &str = "lora-fold";

pub fn rules() -> Result<Vec<WeftRewrite>, String> {
    Ok(vec![
        // x·Wᵀ + s·((x·Aᵀ)·Bᵀ) = x·(W + (s·B)·A)ᵀ.
        guarded(
            LORA_FOLD,
            "(add (matmul 0 1 ?x ?w) (scale ?s (matmul 0 1 (matmul 0 1 ?x ?a) ?b)))",
            "(matmul 0 1 ?x (add ?w (matmul 0 0 (scale ?s ?b) ?a)))",
            cheaper,
        )?,
    ])
}

/// The matched sum's e-classes, found again from its operands.
struct Path {
    y: Id,
    xa: Id,
    xab: Id,
    scaled: Id,
    sum: Id,
}

fn find_path(egraph: &WeftGraph, subst: &Subst) -> Option<Path> {
    let [x, w, a, b, s] = ["?x", "?w", "?a", "?b", "?s"].map(|v| bound(subst, v));
    let (x, w, a, b, s) = (x?, w?, a?, b?, s?);
    let zero = egraph.lookup(Weft::Num(0))?;
    let one = egraph.lookup(Weft::Num(1))?;
    let y = egraph.lookup(Weft::MatMul([zero, one, x, w]))?;
    let xa = egraph.lookup(Weft::MatMul([zero, one, x, a]))?;
    let xab = egraph.lookup(Weft::MatMul([zero, one, xa, b]))?;
    let scaled = egraph.lookup(Weft::Scale([s, xab]))?;
    let sum = egraph.lookup(Weft::Add([y, scaled]))?;
    Some(Path { y, xa, xab, scaled, sum })
}

/// Whether every e-node that reads `class` belongs to class `reader`.
fn only_read_by(egraph: &WeftGraph, class: Id, reader: Id) -> bool {
    let reader = egraph.find(reader);
    egraph[class].parents().all(|p| egraph.find(p) == reader)
}

/// Folds when the weight-sized work (`s·B`, `(s·B)·A`, `W + ...`) costs less
/// than the token-sized work it removes.
fn cheaper(egraph: &mut WeftGraph, subst: &Subst) -> Option<Subst> {
    let path = find_path(egraph, subst)?;
    let ty = |id: Id| egraph[id].data.tensor().cloned();
    let [x, w, a, b] = ["?x", "?w", "?a", "?b"].map(|v| bound(subst, v).and_then(ty));
    let (x, w, a, b) = (x?, w?, a?, b?);
    let (y, xa, xab, scaled, sum) =
        (ty(path.y)?, ty(path.xa)?, ty(path.xab)?, ty(path.scaled)?, ty(path.sum)?);
    let model = CostModel::new();
    let cost = |op: Op, xs: &[&TensorType], out: &TensorType| model.op_cost(&op, xs, out).total();
    let mm = |ta, tb| Op::MatMul { transpose_a: ta, transpose_b: tb };
    let scale = Op::Scale { factor: 1.0 };

    // What the unfolded path costs beyond x·Wᵀ, node by node while nothing else reads it.
    let mut removed = cost(Op::Add, &[&y, &scaled], &sum);
    if only_read_by(egraph, path.scaled, path.sum) {
        removed += cost(scale.clone(), &[&xab], &scaled);
        if only_read_by(egraph, path.xab, path.scaled) {
            removed += cost(mm(false, true), &[&xa, &b], &xab);
            if only_read_by(egraph, path.xa, path.xab) {
                removed += cost(mm(false, true), &[&x, &a], &xa);
            }
        }
    }
    let mut added =
        cost(scale, &[&b], &b) + cost(mm(false, false), &[&b, &a], &w) + cost(Op::Add, &[&w, &w], &w);
    // x·Wᵀ itself is replaced by x·W'ᵀ unless something else still needs it.
    if !only_read_by(egraph, path.y, path.sum) {
        added += cost(mm(false, true), &[&x, &w], &y);
    }
    (added < removed).then(|| subst.clone())
}

#[cfg(test)]
mod tests {
    use super::super::testing::{check, check_not};
    use super::*;

    /// `y = x·Wᵀ + 2·(x·Aᵀ)·Bᵀ` and its folded form, with `t` tokens, `d` in
    /// and out features and rank 4.
    fn terms(t: usize, d: usize) -> (String, String) {
        let x = format!("(input x f32 (list {t} {d}))");
        let w = format!("(param w f32 (list {d} {d}) 0)");
        let a = format!("(param a f32 (list 4 {d}) 1)");
        let b = format!("(param b f32 (list {d} 4) 1)");
        let before = format!("(add (matmul 0 1 {x} {w}) (scale 2.0 (matmul 0 1 (matmul 0 1 {x} {a}) {b})))");
        let after = format!("(matmul 0 1 {x} (add {w} (matmul 0 0 (scale 2.0 {b}) {a})))");
        (before, after)
    }

    #[test]
    fn lora_fold() {
        let rules = rules().unwrap();
        // 4096 tokens through a 64 x 64 weight: the weight-sized work is cheaper.
        let (before, after) = terms(4096, 64);
        check(&rules, LORA_FOLD, &before, &after);
        // 16 tokens through a 128 x 128 weight: building W' costs more than the path.
        let (before, after) = terms(16, 128);
        check_not(&rules, LORA_FOLD, &before, &after);
    }

    #[test]
    fn a_shared_lora_path_is_not_counted_as_saved() {
        let rules = rules().unwrap();
        // 16 tokens through 64 x 64: folding pays only while it also removes
        // x·Aᵀ; with x·Aᵀ read elsewhere (as a backward pass does) it does not.
        let (before, after) = terms(16, 64);
        check(&rules, LORA_FOLD, &before, &after);
        let xa = "(unary exp (matmul 0 1 (input x f32 (list 16 64)) (param a f32 (list 4 64) 1)))";
        let shared = format!("(concat 1 {before} {xa})");
        let folded = format!("(concat 1 {after} {xa})");
        check_not(&rules, LORA_FOLD, &shared, &folded);
    }
}
