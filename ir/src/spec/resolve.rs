//! Step two: fix the sizes, evaluate `[vars]`, check ranges and masks.

use std::collections::HashMap;
use std::ops::Range;

use super::Overrides;
use super::error::{RangeOf, SpecError, SpecErrorKind};
use super::parse::{Body, ParsedHeads, ParsedSpec, ParsedVar, Site, error_at, expr_error};
use crate::expr::{ExprError, ExprErrorKind, SizeExpr};
use crate::limits::{self, Limit, Origin};
use crate::mask::{ConcreteMask, Mask, MaskExpr, NewMaskError};
use crate::pattern::{Dims, HeadGroup, LayerRange, Pattern, Schedule};
use crate::source::{SourceFile, Span};

const BUILTINS: [&str; 4] = ["N", "H", "L", "h"];
const DEFAULT_HEAD_DIM: i64 = 128;

pub(crate) fn resolve(
    source: &SourceFile,
    spec: &ParsedSpec,
    overrides: &Overrides,
) -> Result<Schedule, SpecError> {
    let dims = resolve_dims(source, spec, overrides)?;
    let env = Env::new(source, spec, &dims)?;

    let (patterns, layers) = match &spec.body {
        Body::Single(heads) => {
            let pattern = resolve_pattern(source, &env, &spec.name, heads, &dims)?;
            (vec![pattern], vec![LayerRange { layers: 0..dims.n_layers, pattern: 0 }])
        }
        Body::Hybrid { patterns, layers } => {
            let mut resolved = Vec::with_capacity(patterns.len());
            for p in patterns {
                resolved.push(resolve_pattern(source, &env, &p.name, &p.heads, &dims)?);
            }
            let mut ranges = Vec::with_capacity(layers.len());
            for entry in layers {
                let Some(index) = patterns.iter().position(|p| p.name == entry.pattern) else {
                    let known = patterns.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", ");
                    return Err(error_at(
                        source,
                        entry.pattern_span,
                        SpecErrorKind::UnknownPattern { name: entry.pattern.clone(), known },
                    ));
                };
                let range = env.range(&entry.range, &entry.range_site, RangeOf::Layers, dims.n_layers)?;
                ranges.push((range, entry.range_site.value, index));
            }
            let spans: Vec<_> = ranges.iter().map(|(r, s, _)| (r.clone(), *s)).collect();
            check_tiling(source, &spans, RangeOf::Layers, dims.n_layers)?;
            let mut layers: Vec<LayerRange> =
                ranges.into_iter().map(|(layers, _, pattern)| LayerRange { layers, pattern }).collect();
            layers.sort_by_key(|r| r.layers.start);
            (resolved, layers)
        }
    };

    Ok(Schedule { name: spec.name.clone(), dims, vars: env.ordered, patterns, layers })
}

fn resolve_dims(source: &SourceFile, spec: &ParsedSpec, overrides: &Overrides) -> Result<Dims, SpecError> {
    let d = &spec.defaults;
    let table = d.table.unwrap_or_default();
    let pick = |key: &'static str,
                flag: &'static str,
                limit: &Limit,
                cli: Option<usize>,
                file: &Option<toml::Spanned<i64>>,
                fallback: Option<i64>|
     -> Result<usize, SpecError> {
        // A size from the command line is the flag's fault, not the file's.
        if let Some(v) = cli {
            return Ok(limits::check_size(v, Origin::flag(flag), limit)?);
        }
        let (value, span) = match (file, fallback) {
            (Some(v), _) => (*v.get_ref(), Span::from(v.span())),
            (None, Some(v)) => (v, table),
            (None, None) => {
                return Err(error_at(source, table, SpecErrorKind::MissingDim { key, flag }));
            }
        };
        if value < 1 {
            return Err(error_at(source, span, SpecErrorKind::NonPositiveDim { key, value }));
        }
        limits::check(value as u64, Origin::key(key), limit)
            .map_err(|e| error_at(source, span, SpecErrorKind::TooLarge(e)))?;
        usize::try_from(value)
            .map_err(|_| error_at(source, span, SpecErrorKind::NonPositiveDim { key, value }))
    };
    // A file with one pattern for every layer need not say how many layers there are.
    let layers_fallback = matches!(spec.body, Body::Single(_)).then_some(1);
    Ok(Dims {
        seq_len: pick("seq_len", "--seq-len", &limits::SEQ_LEN, overrides.seq_len, &d.seq_len, None)?,
        n_heads: pick("n_heads", "--heads", &limits::HEADS, overrides.n_heads, &d.n_heads, None)?,
        n_layers: pick(
            "n_layers",
            "--layers",
            &limits::LAYERS,
            overrides.n_layers,
            &d.n_layers,
            layers_fallback,
        )?,
        head_dim: pick(
            "head_dim",
            "--head-dim",
            &limits::HEAD_DIM,
            overrides.head_dim,
            &d.head_dim,
            Some(DEFAULT_HEAD_DIM),
        )?,
    })
}

/// The longest chain of `[vars]` defined through one another (`a = "b + 1"`,
/// `b = "c + 1"`, …). Evaluation recurses along the chain; real specs chain a
/// few variables at most.
pub const MAX_VAR_CHAIN: usize = 64;

/// Variable values: the built-in sizes and `[vars]`, evaluated in dependency order.
struct Env<'a> {
    source: &'a SourceFile,
    values: HashMap<String, i64>,
    ordered: Vec<(String, i64)>,
}

impl<'a> Env<'a> {
    fn new(source: &'a SourceFile, spec: &ParsedSpec, dims: &Dims) -> Result<Self, SpecError> {
        let mut env = Env { source, values: HashMap::new(), ordered: Vec::new() };
        env.values.insert("N".into(), dims.seq_len as i64);
        env.values.insert("H".into(), dims.n_heads as i64);
        env.values.insert("L".into(), dims.n_layers as i64);
        for var in &spec.vars {
            if BUILTINS.contains(&var.name.as_str()) {
                return Err(error_at(
                    source,
                    var.name_span,
                    SpecErrorKind::ReservedVar { name: var.name.clone() },
                ));
            }
        }
        let by_name: HashMap<&str, &ParsedVar> = spec.vars.iter().map(|v| (v.name.as_str(), v)).collect();
        for var in &spec.vars {
            env.define(&by_name, var, &mut Vec::new())?;
        }
        Ok(env)
    }

    /// Evaluates `var` after the variables it uses; `stack` is the chain being evaluated.
    fn define<'s>(
        &mut self,
        by_name: &HashMap<&'s str, &'s ParsedVar>,
        var: &'s ParsedVar,
        stack: &mut Vec<&'s str>,
    ) -> Result<i64, SpecError> {
        if let Some(v) = self.values.get(&var.name) {
            return Ok(*v);
        }
        if let Some(pos) = stack.iter().position(|n| *n == var.name) {
            let mut cycle: Vec<&str> = stack[pos..].to_vec();
            cycle.push(&var.name);
            return Err(error_at(
                self.source,
                var.site.value,
                SpecErrorKind::CyclicVar { name: var.name.clone(), cycle: cycle.join(" -> ") },
            ));
        }
        if stack.len() >= MAX_VAR_CHAIN {
            // Named after where the chain starts, placed where it crosses the limit.
            let kind = SpecErrorKind::VarChainTooLong { name: stack[0].to_string(), limit: MAX_VAR_CHAIN };
            return Err(error_at(self.source, var.site.value, kind));
        }
        stack.push(&var.name);
        for (name, span) in var.expr.variables() {
            if name == "h" {
                return Err(error_at(
                    self.source,
                    var.site.locate(span),
                    SpecErrorKind::HeadIndexOutsideMask,
                ));
            }
            if let Some(dep) = by_name.get(name) {
                self.define(by_name, dep, stack)?;
            }
        }
        stack.pop();
        let value = self.eval(&var.expr, &var.site)?;
        self.values.insert(var.name.clone(), value);
        self.ordered.push((var.name.clone(), value));
        Ok(value)
    }

    fn undefined(&self, name: &str, span: Span) -> ExprError {
        let mut known: Vec<&str> = self.values.keys().map(String::as_str).collect();
        known.sort_by_key(|k| (!BUILTINS.contains(k), *k));
        let available = if name == "h" {
            "`h` (the head index) can only be used inside a mask".to_string()
        } else {
            format!("defined here: {}", known.join(", "))
        };
        ExprError::new(ExprErrorKind::UndefinedVar { name: name.into(), available }, span)
    }

    /// Evaluates a size that must not mention `h`.
    fn eval(&self, expr: &SizeExpr, site: &Site) -> Result<i64, SpecError> {
        expr.eval_with(&mut |name, span| {
            self.values.get(name).copied().ok_or_else(|| self.undefined(name, span))
        })
        .map_err(|e| expr_error(self.source, site, e))
    }

    /// Substitutes every variable but `h`.
    fn substitute(&self, expr: &SizeExpr, site: &Site) -> Result<SizeExpr, SpecError> {
        expr.substitute(&mut |name, span| match self.values.get(name) {
            Some(v) => Ok(Some(*v)),
            None if name == "h" => Ok(None),
            None => Err(self.undefined(name, span)),
        })
        .map_err(|e| expr_error(self.source, site, e))
    }

    /// Evaluates `start..end` and checks it lies in `0..total`.
    fn range(
        &self,
        (start, end): &(SizeExpr, SizeExpr),
        site: &Site,
        of: RangeOf,
        total: usize,
    ) -> Result<Range<usize>, SpecError> {
        for (name, span) in start.variables().into_iter().chain(end.variables()) {
            if name == "h" {
                return Err(error_at(self.source, site.locate(span), SpecErrorKind::HeadIndexOutsideMask));
            }
        }
        let (s, e) = (self.eval(start, site)?, self.eval(end, site)?);
        if s >= e {
            return Err(error_at(
                self.source,
                site.value,
                SpecErrorKind::EmptyRange { of, start: s, end: e },
            ));
        }
        if s < 0 || e > total as i64 {
            return Err(error_at(
                self.source,
                site.value,
                SpecErrorKind::RangeOutOfBounds { of, start: s, end: e, total },
            ));
        }
        Ok(s as usize..e as usize)
    }
}

fn resolve_pattern(
    source: &SourceFile,
    env: &Env,
    name: &str,
    heads: &[ParsedHeads],
    dims: &Dims,
) -> Result<Pattern, SpecError> {
    let mut groups = Vec::with_capacity(heads.len());
    let mut spans = Vec::with_capacity(heads.len());
    for entry in heads {
        let range = env.range(&entry.range, &entry.range_site, RangeOf::Heads, dims.n_heads)?;
        spans.push((range.clone(), entry.range_site.value));
        let resolved = entry.mask.try_map_sizes(&mut |s, _| env.substitute(s, &entry.mask_site))?;
        check_roll_form_divides(source, &entry.mask_site, &resolved, dims.seq_len)?;
        // Unreachable in practice: substitution leaves only `h` and turns
        // variables into numbers, so the mask is no deeper than it parsed.
        let mask = Mask::new(resolved).map_err(|e| {
            let kind = match e {
                NewMaskError::Unresolved(name) => {
                    ExprErrorKind::UndefinedVar { name, available: String::new() }
                }
                NewMaskError::TooComplex(kind) => kind,
            };
            error_at(source, entry.mask_site.value, SpecErrorKind::Expr(kind))
        })?;
        groups.push((range, mask, entry.mask_site));
    }
    check_tiling(source, &spans, RangeOf::Heads, dims.n_heads)?;
    groups.sort_by_key(|(r, _, _)| r.start);

    let mut head_masks = Vec::with_capacity(dims.n_heads);
    for (range, mask, site) in &groups {
        for head_idx in range.clone() {
            head_masks.push(head_mask(source, site, mask, head_idx, dims.seq_len)?);
        }
    }
    let groups = groups.into_iter().map(|(heads, mask, _)| HeadGroup { heads, mask }).collect();
    Ok(Pattern::new(name.to_string(), groups, head_masks))
}

/// Evaluates one head's sizes, checking that widths and block sizes are positive.
fn head_mask(
    source: &SourceFile,
    site: &Site,
    mask: &Mask,
    head_idx: usize,
    seq_len: usize,
) -> Result<ConcreteMask, SpecError> {
    let per_head = mask.depends_on_head();
    let concrete = mask.expr().try_map_sizes(&mut |size, role| {
        let value = size
            .eval(&|name| (name == "h").then_some(head_idx as i64))
            .map_err(|e| expr_error(source, site, e))?;
        if role.positive && value < 1 {
            let kind = SpecErrorKind::NonPositiveSize {
                primitive: role.primitive,
                param: role.param,
                value,
                head: per_head.then_some(head_idx),
            };
            return Err(error_at(source, site.locate(size.span), kind));
        }
        Ok(value)
    })?;
    Ok(concrete.canonical(seq_len as i64))
}

/// LongLoRA's roll form reshapes the sequence into groups, so the group size must divide N.
fn check_roll_form_divides(
    source: &SourceFile,
    site: &Site,
    mask: &MaskExpr<SizeExpr>,
    seq_len: usize,
) -> Result<(), SpecError> {
    let mut result = Ok(());
    visit(mask, &mut |m| {
        if let MaskExpr::Roll { inner, .. } = m
            && let Some(group) = inner.causal_groups_size()
            && let Some(g) = group.as_lit()
            && g > 0
            && seq_len as i64 % g != 0
            && result.is_ok()
        {
            result = Err(error_at(
                source,
                site.locate(group.span),
                SpecErrorKind::NotDivisible { group: g, seq_len },
            ));
        }
    });
    result
}

fn visit<S>(mask: &MaskExpr<S>, f: &mut impl FnMut(&MaskExpr<S>)) {
    f(mask);
    match mask {
        MaskExpr::Roll { inner, .. } | MaskExpr::Not(inner) => visit(inner, f),
        MaskExpr::And(a, b) | MaskExpr::Or(a, b) => {
            visit(a, f);
            visit(b, f);
        }
        _ => {}
    }
}

/// Checks that the ranges cover `0..total` exactly once.
fn check_tiling(
    source: &SourceFile,
    ranges: &[(Range<usize>, Span)],
    of: RangeOf,
    total: usize,
) -> Result<(), SpecError> {
    let mut sorted: Vec<&(Range<usize>, Span)> = ranges.iter().collect();
    sorted.sort_by_key(|(r, span)| (r.start, span.start));
    let mut covered = 0;
    let mut previous: Option<&Range<usize>> = None;
    for (range, span) in sorted {
        if let Some(prev) = previous
            && range.start < prev.end
        {
            let kind = SpecErrorKind::Overlap {
                of,
                start: range.start,
                end: range.end,
                other_start: prev.start,
                other_end: prev.end,
            };
            return Err(error_at(source, *span, kind));
        }
        if range.start > covered {
            return Err(error_at(source, *span, SpecErrorKind::Gap { of, start: covered, end: range.start }));
        }
        covered = range.end;
        previous = Some(range);
    }
    if covered < total {
        let span = ranges.iter().max_by_key(|(r, _)| r.end).map(|(_, s)| *s).unwrap_or_default();
        return Err(error_at(source, span, SpecErrorKind::Gap { of, start: covered, end: total }));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::{Origin, SizeError};
    use crate::spec::Spec;

    /// A spec whose `[vars]` chain `v0 = "v1 + 1"`, …, `v{n-1} = "1"`.
    fn chained(n: usize) -> Result<Schedule, SpecError> {
        let mut text =
            String::from("name = \"x\"\n[defaults]\nseq_len = 64\nn_heads = 2\nn_layers = 1\n[vars]\n");
        for i in 0..n - 1 {
            text.push_str(&format!("v{i} = \"v{} + 1\"\n", i + 1));
        }
        text.push_str(&format!("v{} = \"1\"\n[[heads]]\nrange = \"0..H\"\nmask = \"window(v0)\"\n", n - 1));
        Spec::parse(SourceFile::new("chain.toml", text))?.resolve(&Overrides::default())
    }

    #[test]
    fn variables_chain_up_to_the_limit() {
        let schedule = chained(MAX_VAR_CHAIN).unwrap();
        assert!(schedule.vars.contains(&("v0".to_string(), MAX_VAR_CHAIN as i64)));
        let error = chained(MAX_VAR_CHAIN + 1).unwrap_err();
        assert_eq!(
            error.to_string(),
            "chain.toml:71:7: variable `v0` is defined through a chain of more than 64 variables"
        );
        // Far longer chains are refused as quickly, without exhausting the stack.
        assert!(chained(100_000).unwrap_err().to_string().contains("more than 64 variables"));
    }

    fn resolve(defaults: &str, overrides: Overrides) -> Result<crate::Schedule, SpecError> {
        let text =
            format!("name = \"x\"\n[defaults]\n{defaults}\n[[heads]]\nrange = \"0..H\"\nmask = \"causal\"\n");
        Spec::parse(SourceFile::new("x.toml", text)).and_then(|s| s.resolve(&overrides))
    }

    #[test]
    fn a_huge_default_is_refused_at_its_place() {
        let e = resolve("seq_len = 64\nn_heads = 1000000000", Overrides::default()).unwrap_err();
        assert!(matches!(e.kind(), Some(SpecErrorKind::TooLarge(SizeError::TooLarge { .. }))), "{e}");
        assert!(
            e.to_string().starts_with("x.toml:4:11: n_heads = 1000000000 is larger than the limit 4096"),
            "{e}"
        );
    }

    #[test]
    fn a_bad_override_blames_the_flag_not_the_file() {
        let zero = Overrides { seq_len: Some(0), ..Overrides::default() };
        let e = resolve("n_heads = 8", zero).unwrap_err();
        assert!(
            matches!(e, SpecError::Size(SizeError::Zero { ref origin }) if **origin == Origin::flag("--seq-len"))
        );
        let huge = Overrides { seq_len: Some(1 << 31), ..Overrides::default() };
        let e = resolve("n_heads = 8", huge).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--seq-len 2147483648 is larger than the limit 1048576 (the largest sequence length weft accepts)"
        );
    }

    #[test]
    fn real_sizes_resolve() {
        let real =
            Overrides { seq_len: Some(131072), n_heads: Some(128), n_layers: Some(128), head_dim: Some(256) };
        assert!(resolve("", real).is_ok());
    }
}
