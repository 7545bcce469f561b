//! Layout ops that move nothing: reshapes of reshapes, reshapes to the same
//! shape, slices of a whole axis.

use egg::Subst;

use super::{WeftRewrite, data, guarded, int, shape};
use crate::optimize::analysis::WeftGraph;

pub fn rules() -> Result<Vec<WeftRewrite>, String> {
    Ok(vec![
        // reshape(s1, reshape(s2, x)) = reshape(s1, x): row-major reinterpretations compose.
        guarded("reshape-compose", "(reshape ?s1 (reshape ?s2 ?x))", "(reshape ?s1 ?x)", |_, s| {
            Some(s.clone())
        })?,
        // reshape(shape(x), x) = x.
        guarded("reshape-identity", "(reshape ?s ?x)", "?x", same_shape)?,
        // slice(axis, 0..dim(axis), x) = x.
        guarded("slice-full", "(slice ?axis 0 ?end ?x)", "?x", whole_axis)?,
    ])
}

fn same_shape(egraph: &mut WeftGraph, subst: &Subst) -> Option<Subst> {
    let target = data(egraph, subst, "?s")?.list()?;
    let shape = shape(egraph, subst, "?x")?;
    let same =
        target.len() == shape.len() && target.iter().zip(shape).all(|(&t, &d)| usize::try_from(t) == Ok(d));
    same.then(|| subst.clone())
}

fn whole_axis(egraph: &mut WeftGraph, subst: &Subst) -> Option<Subst> {
    let axis = usize::try_from(int(egraph, subst, "?axis")?).ok()?;
    let end = usize::try_from(int(egraph, subst, "?end")?).ok()?;
    (shape(egraph, subst, "?x")?.get(axis) == Some(&end)).then(|| subst.clone())
}

#[cfg(test)]
mod tests {
    use super::super::testing::{check, check_not};
    use super::*;

    #[test]
    fn reshape_compose() {
        let rules = rules().unwrap();
        check(
            &rules,
            "reshape-compose",
            "(reshape (list 4 128) (reshape (list 16 4 8) Q))",
            "(reshape (list 4 128) Q)",
        );
    }

    #[test]
    fn reshape_identity() {
        let rules = rules().unwrap();
        check(&rules, "reshape-identity", "(reshape (list 1 4 16 8) Q)", "Q");
        check_not(&rules, "reshape-identity", "(reshape (list 1 16 4 8) Q)", "Q");
    }

    #[test]
    fn slice_full() {
        let rules = rules().unwrap();
        check(&rules, "slice-full", "(slice 1 0 4 Q)", "Q");
        check_not(&rules, "slice-full", "(slice 1 0 2 Q)", "Q");
    }
}
