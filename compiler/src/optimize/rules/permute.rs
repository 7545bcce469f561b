//! Axis permutations (`transpose` in PyTorch code): they compose, vanish when
//! they move nothing, and let a roll pass through them with its axes renamed.
//! LongLoRA's plain PyTorch path transposes q, k, v and the output around its
//! grouping; these rules bring the transposes of one side together so that
//! they cancel, and the rolls back next to the attention they shift.

use egg::Subst;

use super::{WeftRewrite, bind_int, data, guarded, var};
use crate::optimize::analysis::WeftGraph;
use crate::optimize::lang::Weft;

pub fn rules() -> Result<Vec<WeftRewrite>, String> {
    Ok(vec![
        // permute(p1, permute(p2, x)) = permute(p, x) with p[i] = p2[p1[i]].
        guarded("permute-compose", "(permute ?p1 (permute ?p2 ?x))", "(permute ?p ?x)", compose)?,
        // permute((0 1 ... r-1), x) = x.
        guarded("permute-identity", "(permute ?p ?x)", "?x", identity)?,
        // permute(p, roll(a, s, R on axis b, x)) = roll(p⁻¹(a), s, R on axis p⁻¹(b), permute(p, x)).
        guarded(
            "roll-through-permute",
            "(permute ?p (roll ?axis ?s ?heads ?x))",
            "(roll ?axis2 ?s ?heads2 (permute ?p ?x))",
            roll_through,
        )?,
    ])
}

/// The permutation bound to `name`: output axis `i` is input axis `p[i]`.
/// `None` unless it is a permutation of `0..len`.
fn permutation(egraph: &WeftGraph, subst: &Subst, name: &str) -> Option<Vec<usize>> {
    let p: Vec<usize> =
        data(egraph, subst, name)?.list()?.iter().map(|&a| usize::try_from(a).ok()).collect::<Option<_>>()?;
    let mut seen = vec![false; p.len()];
    for &a in &p {
        if std::mem::replace(seen.get_mut(a)?, true) {
            return None;
        }
    }
    Some(p)
}

/// The output axis that input axis `axis` moves to under `p`: `p⁻¹(axis)`.
fn moved_to(p: &[usize], axis: usize) -> Option<usize> {
    p.iter().position(|&a| a == axis)
}

/// Binds `?name` to a new `(list ...)` of integers.
fn bind_list(egraph: &mut WeftGraph, subst: &mut Subst, name: &str, values: &[usize]) -> Option<()> {
    let ids = values
        .iter()
        .map(|&v| Some(egraph.add(Weft::Num(i64::try_from(v).ok()?))))
        .collect::<Option<Vec<_>>>()?;
    let list = egraph.add(Weft::List(ids.into_boxed_slice()));
    subst.insert(var(name), list);
    Some(())
}

fn compose(egraph: &mut WeftGraph, subst: &Subst) -> Option<Subst> {
    let (p1, p2) = (permutation(egraph, subst, "?p1")?, permutation(egraph, subst, "?p2")?);
    if p1.len() != p2.len() {
        return None;
    }
    let p: Vec<usize> = p1.iter().map(|&i| p2[i]).collect();
    let mut subst = subst.clone();
    bind_list(egraph, &mut subst, "?p", &p)?;
    Some(subst)
}

fn identity(egraph: &mut WeftGraph, subst: &Subst) -> Option<Subst> {
    let p = permutation(egraph, subst, "?p")?;
    p.iter().enumerate().all(|(i, &a)| i == a).then(|| subst.clone())
}

fn roll_through(egraph: &mut WeftGraph, subst: &Subst) -> Option<Subst> {
    let p = permutation(egraph, subst, "?p")?;
    let axis = usize::try_from(data(egraph, subst, "?axis")?.int()?).ok()?;
    let heads = data(egraph, subst, "?heads")?.heads()?;
    let mut subst = subst.clone();
    bind_int(egraph, &mut subst, "?axis2", i64::try_from(moved_to(&p, axis)?).ok()?);
    let heads2 = match heads {
        None => egraph.add(Weft::AllHeads),
        Some(r) => {
            let [axis, start, end] = [moved_to(&p, r.axis)?, r.start, r.end]
                .map(|v| i64::try_from(v).ok().map(|v| egraph.add(Weft::Num(v))));
            egraph.add(Weft::Heads([axis?, start?, end?]))
        }
    };
    subst.insert(var("?heads2"), heads2);
    Some(subst)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{check, check_not};
    use super::*;

    #[test]
    fn permute_compose() {
        let rules = rules().unwrap();
        // A transpose twice is no transpose (left for permute-identity).
        check(
            &rules,
            "permute-compose",
            "(permute (list 0 2 1 3) (permute (list 0 2 1 3) Q))",
            "(permute (list 0 1 2 3) Q)",
        );
        // Output axis i of the outer permute is axis p2[p1[i]] of Q.
        check(
            &rules,
            "permute-compose",
            "(permute (list 1 2 0 3) (permute (list 0 2 1 3) Q))",
            "(permute (list 2 1 0 3) Q)",
        );
        // Not p1[p2[i]]: the inner permutation applies first.
        check_not(
            &rules,
            "permute-compose",
            "(permute (list 1 2 0 3) (permute (list 0 2 1 3) Q))",
            "(permute (list 1 0 2 3) Q)",
        );
    }

    #[test]
    fn permute_identity() {
        let rules = rules().unwrap();
        check(&rules, "permute-identity", "(permute (list 0 1 2 3) Q)", "Q");
        check_not(&rules, "permute-identity", "(permute (list 0 2 1 3) (permute (list 0 2 1 3) Q))", "Q");
        check_not(&rules, "permute-identity", "(permute (list 1 0 2 3) Q)", "Q");
    }

    #[test]
    fn roll_through_permute() {
        let rules = rules().unwrap();
        // LongLoRA's shift back: [B, N, H, D], the tokens (axis 1) of heads 2..4 (axis 2)
        // rolled, then transposed to [B, H, N, D], where the roll is along axis 2 on heads of axis 1.
        check(
            &rules,
            "roll-through-permute",
            "(permute (list 0 2 1 3) (roll 1 8 (heads 2 2 4) Q))",
            "(roll 2 8 (heads 1 2 4) (permute (list 0 2 1 3) Q))",
        );
        // A roll of every index, through a permutation that is not its own inverse:
        // input axis 3 becomes output axis 1.
        check(
            &rules,
            "roll-through-permute",
            "(permute (list 0 3 1 2) (roll 3 -3 all Q))",
            "(roll 1 -3 all (permute (list 0 3 1 2) Q))",
        );
        // Not axis p[a] (= 2 here): the roll must follow its axis to where it goes.
        check_not(
            &rules,
            "roll-through-permute",
            "(permute (list 0 3 1 2) (roll 3 -3 all Q))",
            "(roll 2 -3 all (permute (list 0 3 1 2) Q))",
        );
    }
}
