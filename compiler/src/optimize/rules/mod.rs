//! The rewrite rules, one file per concern. Every rule is an identity that
//! holds on every input its condition admits, and never makes a graph worse
//! under [`super::cost`]; each file's tests show one before/after pair per rule.
//!
//! - [`shift`]: rolls compose, cancel and commute on disjoint heads;
//! - [`reshape`]: reshapes collapse, identities vanish, full slices vanish;
//! - [`permute`]: permutations compose and vanish, rolls pass through them;
//! - [`attention`]: the fusions into [`Weft::FusedAttention`] (rolls, grouped
//!   reshapes into heads or into the batch, head-range splits) and the merging
//!   of its per-head masks;
//! - [`mask`]: the algebra of `m-roll`;
//! - [`lora`]: a LoRA update folded into the weight it adapts, where cheaper.
//! - [`rope`]: RoPE folded into the load of a fused attention (and its gradients).

pub mod attention;
pub mod lora;
pub mod mask;
pub mod permute;
pub mod reshape;
pub mod rope;
pub mod shift;

use egg::{Applier, Id, Pattern, PatternAst, Rewrite, SearchMatches, Searcher, Subst, Symbol, Var};

use super::analysis::{Data, WeftAnalysis, WeftGraph};
use super::lang::Weft;

pub type WeftRewrite = Rewrite<Weft, WeftAnalysis>;

/// Every rule, in the order the report lists them.
pub fn all() -> Result<Vec<WeftRewrite>, String> {
    let mut rules = shift::rules()?;
    rules.extend(reshape::rules()?);
    rules.extend(permute::rules()?);
    rules.extend(attention::rules()?);
    rules.extend(mask::rules()?);
    rules.extend(lora::rules()?);
    rules.extend(rope::rules()?);
    Ok(rules)
}

/// The pattern variable `?name`.
pub(crate) fn var(name: &str) -> Var {
    Var::from(Symbol::from(name))
}

/// The class a pattern variable is bound to.
pub(crate) fn bound(subst: &Subst, name: &str) -> Option<Id> {
    subst.get(var(name)).copied()
}

/// The analysis data of the class bound to `?name`.
pub(crate) fn data<'a>(egraph: &'a WeftGraph, subst: &Subst, name: &str) -> Option<&'a Data> {
    bound(subst, name).map(|id| &egraph[id].data)
}

/// A constant integer bound to `?name`.
pub(crate) fn int(egraph: &WeftGraph, subst: &Subst, name: &str) -> Option<i64> {
    data(egraph, subst, name)?.int()
}

/// The shape of the tensor bound to `?name`.
pub(crate) fn shape<'a>(egraph: &'a WeftGraph, subst: &Subst, name: &str) -> Option<&'a [usize]> {
    data(egraph, subst, name)?.tensor().map(|t| &t.shape[..])
}

/// Binds `?name` to a new integer leaf.
pub(crate) fn bind_int(egraph: &mut WeftGraph, subst: &mut Subst, name: &str, value: i64) {
    let id = egraph.add(Weft::Num(value));
    subst.insert(var(name), id);
}

/// Checks a match and binds the variables only the right-hand side uses;
/// `None` when the rule's condition fails.
pub(crate) type Bind = fn(&mut WeftGraph, &Subst) -> Option<Subst>;

/// A rule `lhs => rhs` whose condition and extra bindings come from `bind`.
pub(crate) fn guarded(name: &str, lhs: &str, rhs: &str, bind: Bind) -> Result<WeftRewrite, String> {
    let lhs: Pattern<Weft> = lhs.parse().map_err(|e| format!("rule {name}: left-hand side: {e}"))?;
    let rhs: Pattern<Weft> = rhs.parse().map_err(|e| format!("rule {name}: right-hand side: {e}"))?;
    Rewrite::new(name, lhs, Guarded { rhs: rhs.ast, bind })
}

struct Guarded {
    rhs: PatternAst<Weft>,
    bind: Bind,
}

impl Applier<Weft, WeftAnalysis> for Guarded {
    fn apply_one(
        &self,
        egraph: &mut WeftGraph,
        eclass: Id,
        subst: &Subst,
        _searcher_ast: Option<&PatternAst<Weft>>,
        _rule_name: Symbol,
    ) -> Vec<Id> {
        let Some(subst) = (self.bind)(egraph, subst) else { return vec![] };
        let id = egraph.add_instantiation(&self.rhs, &subst);
        if egraph.union(eclass, id) { vec![id] } else { vec![] }
    }
}

/// A rule that does not fit a fixed pattern (variadic nodes): `plan` finds a
/// rewrite of an e-class without touching the e-graph, `build` adds the
/// equivalent term, which is unioned with the class.
pub(crate) fn custom<P: 'static>(
    name: &str,
    plan: fn(&WeftGraph, Id) -> Option<P>,
    build: fn(&mut WeftGraph, P) -> Option<Id>,
) -> Result<WeftRewrite, String> {
    Rewrite::new(name, Custom { plan, build }, Custom { plan, build })
}

struct Custom<P> {
    plan: fn(&WeftGraph, Id) -> Option<P>,
    build: fn(&mut WeftGraph, P) -> Option<Id>,
}

impl<P: 'static> Searcher<Weft, WeftAnalysis> for Custom<P> {
    fn search_eclass_with_limit(
        &self,
        egraph: &WeftGraph,
        eclass: Id,
        limit: usize,
    ) -> Option<SearchMatches<'_, Weft>> {
        (limit > 0 && (self.plan)(egraph, eclass).is_some()).then(|| SearchMatches {
            eclass,
            substs: vec![Subst::default()],
            ast: None,
        })
    }

    fn vars(&self) -> Vec<Var> {
        vec![]
    }
}

impl<P: 'static> Applier<Weft, WeftAnalysis> for Custom<P> {
    fn apply_one(
        &self,
        egraph: &mut WeftGraph,
        eclass: Id,
        _subst: &Subst,
        _searcher_ast: Option<&PatternAst<Weft>>,
        _rule_name: Symbol,
    ) -> Vec<Id> {
        let Some(id) = (self.plan)(egraph, eclass).and_then(|plan| (self.build)(egraph, plan)) else {
            return vec![];
        };
        if egraph.union(eclass, id) { vec![id] } else { vec![] }
    }
}

/// `x mod n` in `[0, n)`, for offsets along an axis of length `n >= 1`.
pub(crate) fn wrap(x: i64, n: i64) -> Option<i64> {
    (n > 0).then(|| x.rem_euclid(n))
}

#[cfg(test)]
pub(crate) mod testing {
    //! The before/after harness every rule file uses.

    use egg::{RecExpr, Runner};

    use super::*;
    use crate::optimize::cost::CostModel;
    use crate::optimize::extract::ExtractCost;

    /// Spells the common leaves out: `Q`, `K`, `V` are `[1, 4, 16, 8]` inputs,
    /// `Q64`, `K64`, `V64` are `[2, 4, 64, 8]` inputs.
    fn expand(term: &str) -> String {
        let mut out = String::new();
        for token in term.split_inclusive(|c: char| c.is_whitespace() || c == '(' || c == ')') {
            let (word, tail) = token.split_at(token.trim_end_matches([' ', '\n', '(', ')']).len());
            let input = |name: &str, shape: &str| format!("(input {name} f32 (list {shape}))");
            let replaced = match word {
                "Q" | "K" | "V" => input(&word.to_lowercase(), "1 4 16 8"),
                "Q64" | "K64" | "V64" => input(&word[..1].to_lowercase(), "2 4 64 8"),
                other => other.to_string(),
            };
            out.push_str(&replaced);
            out.push_str(tail);
        }
        out
    }

    fn egraph_with(terms: &[&str]) -> (WeftGraph, Vec<Id>) {
        let mut egraph = WeftGraph::new(WeftAnalysis::default());
        let ids = terms
            .iter()
            .map(|t| {
                let expr: RecExpr<Weft> =
                    expand(t).parse().unwrap_or_else(|e| panic!("test term does not parse: {e}\n{t}"));
                egraph.add_expr(&expr)
            })
            .collect();
        (egraph, ids)
    }

    /// Runs rule `rule` alone on an e-graph holding both terms; whether it made them equal.
    fn proves(rules: &[WeftRewrite], rule: &str, before: &str, after: &str) -> bool {
        let rule: Vec<&WeftRewrite> = rules.iter().filter(|r| r.name.as_str() == rule).collect();
        assert_eq!(rule.len(), 1, "no rule named {rule:?}");
        let (egraph, ids) = egraph_with(&[before, after]);
        for id in &ids {
            assert!(
                !matches!(egraph[*id].data, Data::Invalid(_)),
                "test term is ill-formed: {:?}",
                egraph[*id].data
            );
        }
        let runner = Runner::default().with_egraph(egraph).with_iter_limit(8).run(rule);
        assert!(runner.egraph.analysis.conflicts.is_empty(), "{:?}", runner.egraph.analysis.conflicts);
        runner.egraph.find(ids[0]) == runner.egraph.find(ids[1])
    }

    /// Rule `rule` alone proves `before == after`, and `after` costs no more.
    pub fn check(rules: &[WeftRewrite], rule: &str, before: &str, after: &str) {
        assert!(proves(rules, rule, before, after), "{rule} does not rewrite\n  {before}\nto\n  {after}");
        let cost = |term: &str| {
            let expr: RecExpr<Weft> = expand(term).parse().unwrap_or_else(|e| panic!("{e}"));
            ExtractCost::of_expr(&expr, &CostModel::new())
        };
        let (b, a) = (cost(before), cost(after));
        assert!(a <= b, "{rule} makes the graph worse: {b:?} -> {a:?}");
    }

    /// Rule `rule` does not prove `before == after` (its condition fails).
    pub fn check_not(rules: &[WeftRewrite], rule: &str, before: &str, after: &str) {
        assert!(!proves(rules, rule, before, after), "{rule} must not rewrite\n  {before}\nto\n  {after}");
    }
}
