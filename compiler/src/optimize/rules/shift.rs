//! Rolls along one axis: they compose, vanish when they turn by a whole
//! period, and commute when they touch disjoint head ranges (LongLoRA's
//! lowering rolls several head ranges one after the other).

use egg::Subst;

use super::{WeftRewrite, bind_int, data, guarded, int, shape, wrap};
use crate::optimize::analysis::WeftGraph;

pub fn rules() -> Result<Vec<WeftRewrite>, String> {
    Ok(vec![
        // roll(a) ∘ roll(b) = roll((a + b) mod n) on one axis and one head range.
        guarded(
            "roll-compose",
            "(roll ?axis ?a ?heads (roll ?axis ?b ?heads ?x))",
            "(roll ?axis ?c ?heads ?x)",
            compose,
        )?,
        // roll(s) = id when s ≡ 0 (mod n).
        guarded("roll-zero", "(roll ?axis ?s ?heads ?x)", "?x", zero)?,
        // roll_R1(a) ∘ roll_R2(b) = roll_R2(b) ∘ roll_R1(a) on one axis when R1 ∩ R2 = ∅.
        guarded(
            "roll-commute-disjoint",
            "(roll ?axis ?a ?r1 (roll ?axis ?b ?r2 ?x))",
            "(roll ?axis ?b ?r2 (roll ?axis ?a ?r1 ?x))",
            disjoint,
        )?,
    ])
}

/// The length of the rolled axis of `?x`.
fn axis_len(egraph: &WeftGraph, subst: &Subst) -> Option<i64> {
    let axis = usize::try_from(int(egraph, subst, "?axis")?).ok()?;
    let n = *shape(egraph, subst, "?x")?.get(axis)?;
    i64::try_from(n).ok()
}

fn compose(egraph: &mut WeftGraph, subst: &Subst) -> Option<Subst> {
    let n = axis_len(egraph, subst)?;
    let total = int(egraph, subst, "?a")?.checked_add(int(egraph, subst, "?b")?)?;
    let mut subst = subst.clone();
    bind_int(egraph, &mut subst, "?c", wrap(total, n)?);
    Some(subst)
}

fn zero(egraph: &mut WeftGraph, subst: &Subst) -> Option<Subst> {
    let n = axis_len(egraph, subst)?;
    (wrap(int(egraph, subst, "?s")?, n)? == 0).then(|| subst.clone())
}

fn disjoint(egraph: &mut WeftGraph, subst: &Subst) -> Option<Subst> {
    let r1 = data(egraph, subst, "?r1")?.heads()??;
    let r2 = data(egraph, subst, "?r2")?.heads()??;
    let apart = r1.end <= r2.start || r2.end <= r1.start;
    (r1.axis == r2.axis && apart).then(|| subst.clone())
}

#[cfg(test)]
mod tests {
    use super::super::testing::{check, check_not};
    use super::*;

    #[test]
    fn roll_compose() {
        let rules = rules().unwrap();
        check(&rules, "roll-compose", "(roll 2 3 all (roll 2 7 all Q))", "(roll 2 10 all Q)");
        // The sum wraps modulo the axis length (16).
        check(
            &rules,
            "roll-compose",
            "(roll 2 -8 (heads 1 2 4) (roll 2 -12 (heads 1 2 4) Q))",
            "(roll 2 12 (heads 1 2 4) Q)",
        );
        // Different head ranges do not compose.
        check_not(
            &rules,
            "roll-compose",
            "(roll 2 3 (heads 1 0 2) (roll 2 7 (heads 1 2 4) Q))",
            "(roll 2 10 (heads 1 0 2) Q)",
        );
    }

    #[test]
    fn roll_zero() {
        let rules = rules().unwrap();
        check(&rules, "roll-zero", "(roll 2 0 all Q)", "Q");
        check(&rules, "roll-zero", "(roll 2 -32 (heads 1 1 3) Q)", "Q");
        check_not(&rules, "roll-zero", "(roll 2 8 all Q)", "Q");
    }

    #[test]
    fn roll_commute_disjoint() {
        let rules = rules().unwrap();
        check(
            &rules,
            "roll-commute-disjoint",
            "(roll 2 4 (heads 1 2 4) (roll 2 -3 (heads 1 0 1) Q))",
            "(roll 2 -3 (heads 1 0 1) (roll 2 4 (heads 1 2 4) Q))",
        );
        check_not(
            &rules,
            "roll-commute-disjoint",
            "(roll 2 4 (heads 1 1 4) (roll 2 -3 (heads 1 0 2) Q))",
            "(roll 2 -3 (heads 1 0 2) (roll 2 4 (heads 1 1 4) Q))",
        );
    }
}
