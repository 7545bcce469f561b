//! The algebra of rolled masks. `(m-roll n o m)` reads `m` at positions moved
//! by `o` modulo the sequence length `n` (DESIGN.md's `roll(o, m)` at `N = n`),
//! so offsets compose and reduce modulo `n`.
//!
//! A roll term is only ever used at its own length `n` (conversion and
//! `fuse-roll` record the length of the attention that reads it), so identities
//! that hold on positions `[0, n)` are sound. When `mask-roll-zero` puts
//! `roll(0, m)` in the class of an `m` that is also read at another length, the
//! class's cheapest member (and its analysis representative) is still `m`.

use egg::Subst;

use super::{WeftRewrite, bind_int, guarded, int, wrap};
use crate::optimize::analysis::WeftGraph;

pub fn rules() -> Result<Vec<WeftRewrite>, String> {
    Ok(vec![
        // roll(o, m) = m when o ≡ 0 (mod n), on positions [0, n).
        guarded("mask-roll-zero", "(m-roll ?n ?o ?m)", "?m", zero)?,
        // roll(a, roll(b, m)) = roll((a + b) mod n, m).
        guarded("mask-roll-compose", "(m-roll ?n ?a (m-roll ?n ?b ?m))", "(m-roll ?n ?c ?m)", compose)?,
        // roll(o, m) = roll(o mod n, m): positions are taken modulo n anyway.
        guarded("mask-roll-reduce", "(m-roll ?n ?o ?m)", "(m-roll ?n ?c ?m)", reduce)?,
    ])
}

fn zero(egraph: &mut WeftGraph, subst: &Subst) -> Option<Subst> {
    let n = int(egraph, subst, "?n")?;
    (wrap(int(egraph, subst, "?o")?, n)? == 0).then(|| subst.clone())
}

fn compose(egraph: &mut WeftGraph, subst: &Subst) -> Option<Subst> {
    let n = int(egraph, subst, "?n")?;
    let total = int(egraph, subst, "?a")?.checked_add(int(egraph, subst, "?b")?)?;
    let mut subst = subst.clone();
    bind_int(egraph, &mut subst, "?c", wrap(total, n)?);
    Some(subst)
}

fn reduce(egraph: &mut WeftGraph, subst: &Subst) -> Option<Subst> {
    let n = int(egraph, subst, "?n")?;
    let o = int(egraph, subst, "?o")?;
    let c = wrap(o, n)?;
    if c == o {
        return None;
    }
    let mut subst = subst.clone();
    bind_int(egraph, &mut subst, "?c", c);
    Some(subst)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{check, check_not};
    use super::*;

    #[test]
    fn mask_roll_zero() {
        let rules = rules().unwrap();
        check(&rules, "mask-roll-zero", "(m-roll 64 0 m-causal)", "m-causal");
        check(&rules, "mask-roll-zero", "(m-roll 64 -128 (m-window 3))", "(m-window 3)");
        check_not(&rules, "mask-roll-zero", "(m-roll 64 8 m-causal)", "m-causal");
    }

    #[test]
    fn mask_roll_compose() {
        let rules = rules().unwrap();
        check(
            &rules,
            "mask-roll-compose",
            "(m-roll 64 40 (m-roll 64 30 (m-and m-causal (m-groups 16 0))))",
            "(m-roll 64 6 (m-and m-causal (m-groups 16 0)))",
        );
        // Lengths differ: these rolls do not compose.
        check_not(
            &rules,
            "mask-roll-compose",
            "(m-roll 64 8 (m-roll 32 8 m-causal))",
            "(m-roll 64 16 m-causal)",
        );
    }

    #[test]
    fn mask_roll_reduce() {
        let rules = rules().unwrap();
        check(&rules, "mask-roll-reduce", "(m-roll 64 -8 m-causal)", "(m-roll 64 56 m-causal)");
        check(&rules, "mask-roll-reduce", "(m-roll 64 72 m-causal)", "(m-roll 64 8 m-causal)");
    }
}
