//! Masks as WGSL: `fn mask_allows(h: i32, q: i32, k: i32) -> bool`, for the
//! fused kernels of [`crate::attention`] and the unfused ones of [`crate::kernels`].
//!
//! Both paths must compute exactly what `weft_ir::mask::eval` computes: each is
//! tested against the reference, and the fused path is measured against the
//! unfused one. One emitter and one range check keep them from drifting apart.
//!
//! Sizes stay expressions in `h`, the global head index, so one kernel serves
//! heads whose masks differ. `/` and `%` are floor division and the remainder
//! with the divisor's sign (DESIGN.md), which WGSL's truncating `/` and `%` are
//! not: `fdiv` and `fmod` fix that. The arithmetic is `i32`, so
//! [`check_sizes`] proves at plan time that it cannot overflow.

use std::ops::Range;

use weft_ir::expr::{SizeExpr, SizeKind, SizeOp};
use weft_ir::mask::check_complexity;
use weft_ir::{Mask, MaskExpr};

/// The largest magnitude of a sequence length, a head index, a size or any
/// intermediate value of a size expression. Positions lie in `[0, 2^30)`, and
/// the kernel combines two such values by one addition or subtraction at most
/// (`q - k`, `q - offset`, `k / b + offset`), which stays inside `i32`.
pub const MAX_MAGNITUDE: i64 = 1 << 30;

/// Why a mask cannot be compiled for a head.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("head {head}: {reason}")]
pub struct MaskError {
    pub head: usize,
    pub reason: String,
}

const HELPERS: &str = "\
// Floor division and modulo (DESIGN.md): the quotient rounds towards negative
// infinity and the remainder has the sign of the divisor.
fn fdiv(a: i32, b: i32) -> i32 {
    let t = a / b;
    return select(t, t - 1, (a % b != 0) && ((a < 0) != (b < 0)));
}

fn fmod(a: i32, b: i32) -> i32 {
    let r = a % b;
    return select(r, r + b, (r != 0) && ((r < 0) != (b < 0)));
}
";

/// Checks that `mask` can run on the kernels' `i32` arithmetic for every head
/// in `heads` of a sequence of `seq_len` tokens: every size, and every part of
/// every size, evaluates within ±[`MAX_MAGNITUDE`] (so the kernel computes
/// what the reference computes), and sizes that must be positive are.
pub fn check_sizes(mask: &Mask, heads: Range<usize>, seq_len: usize) -> Result<(), MaskError> {
    let fail = |head, reason| Err(MaskError { head, reason });
    // `Mask::new` refuses these already; kept here because the emitted WGSL
    // nests as the mask does and naga refuses deep nesting.
    if let Err(kind) = check_complexity(mask.expr()) {
        return fail(heads.start, kind.to_string());
    }
    if seq_len as u64 > MAX_MAGNITUDE as u64 {
        return fail(heads.start, format!("sequence length {seq_len} is beyond 2^30"));
    }
    if heads.end as u64 > MAX_MAGNITUDE as u64 {
        return fail(heads.start, format!("head index {} is beyond 2^30", heads.end - 1));
    }
    // Sizes without `h` are the same for every head: one check will do.
    let heads = if mask.depends_on_head() { heads } else { heads.start..heads.end.min(heads.start + 1) };
    for head in heads {
        let mut problem = None;
        mask.expr().for_each_size(&mut |s, role| {
            if problem.is_some() {
                return;
            }
            problem = match value(s, head as i64) {
                Ok(v) if role.positive && v < 1 => Some(format!(
                    "`{}` of `{}` is {v} (from `{s}`), but must be positive",
                    role.param, role.primitive
                )),
                Ok(_) => None,
                Err(why) => Some(why),
            };
        });
        if let Some(reason) = problem {
            return fail(head, reason);
        }
    }
    Ok(())
}

/// The value of `s` at head `h`, checking the range of every subexpression.
fn value(s: &SizeExpr, h: i64) -> Result<i64, String> {
    let v = match &s.kind {
        SizeKind::Lit(v) => *v,
        SizeKind::Var(name) if name == "h" => h,
        SizeKind::Var(name) => return Err(format!("size `{s}` mentions `{name}`, which is not resolved")),
        SizeKind::Neg(a) => -value(a, h)?,
        SizeKind::Bin(op, a, b) => {
            op.apply(value(a, h)?, value(b, h)?).ok_or_else(|| format!("size `{s}` divides by zero"))?
        }
    };
    if v.abs() > MAX_MAGNITUDE {
        return Err(format!(
            "size `{s}` reaches {v}, beyond the range ±2^30 of the kernel's 32-bit arithmetic"
        ));
    }
    Ok(v)
}

/// Emits `fdiv`, `fmod`, one `mask_<g>` per head group and `mask_allows`,
/// which dispatches on `h`.
///
/// `heads` are head groups in order, each with its mask (the unfused path has
/// one). `n` is how the including module spells `seq_len` as an `i32`, the
/// modulus of rolls: the fused kernels declare a constant, the unfused ones
/// bake numbers in. Every group is checked with [`check_sizes`] first, so no
/// WGSL is emitted whose arithmetic could overflow.
pub fn mask_functions(heads: &[(Range<usize>, Mask)], seq_len: usize, n: &str) -> Result<String, MaskError> {
    let mut out = String::from(HELPERS);
    for (g, (range, mask)) in heads.iter().enumerate() {
        check_sizes(mask, range.clone(), seq_len)?;
        let mut emitter = Emitter { n, lets: Vec::new(), rolls: 0 };
        let body = emitter.expr(mask.expr(), "q", "k");
        out.push_str(&format!("\n// heads {}..{}: {mask}\n", range.start, range.end));
        out.push_str(&format!("fn mask_{g}(h: i32, q: i32, k: i32) -> bool {{\n"));
        for line in &emitter.lets {
            out.push_str(&format!("    {line}\n"));
        }
        out.push_str(&format!("    return {body};\n}}\n"));
    }
    out.push_str("\nfn mask_allows(h: i32, q: i32, k: i32) -> bool {\n");
    // Kernels only ask about their own heads, so the last group takes the rest.
    for (g, (range, _)) in heads.iter().enumerate() {
        if g + 1 == heads.len() {
            out.push_str(&format!("    return mask_{g}(h, q, k);\n"));
        } else {
            out.push_str(&format!(
                "    if (h < {}) {{\n        return mask_{g}(h, q, k);\n    }}\n",
                range.end
            ));
        }
    }
    if heads.is_empty() {
        out.push_str("    return false;\n");
    }
    out.push_str("}\n");
    Ok(out)
}

struct Emitter<'a> {
    n: &'a str,
    /// `let` bindings of rolled positions, in order (WGSL has no closures to
    /// evaluate the inner mask at other positions).
    lets: Vec<String>,
    rolls: usize,
}

impl Emitter<'_> {
    /// A parenthesized (or atomic) WGSL `bool` expression for `mask` at positions `q`, `k`.
    fn expr(&mut self, mask: &MaskExpr<SizeExpr>, q: &str, k: &str) -> String {
        match mask {
            MaskExpr::Full => "true".to_string(),
            MaskExpr::Causal => format!("({k} <= {q})"),
            MaskExpr::Window(w) => format!("(abs({q} - {k}) < {})", size(w)),
            MaskExpr::Sink(s) => format!("({k} < {})", size(s)),
            MaskExpr::Groups { size: g, offset } => {
                let g = size(g);
                if offset.as_lit() == Some(0) {
                    format!("(fdiv({q}, {g}) == fdiv({k}, {g}))")
                } else {
                    let o = size(offset);
                    format!("(fdiv({q} - {o}, {g}) == fdiv({k} - {o}, {g}))")
                }
            }
            MaskExpr::LocalStride { block, local, stride, offset } => {
                let (b, l, s) = (size(block), size(local), size(stride));
                let kb = format!("fdiv({k}, {b})");
                let vertical = if offset.as_lit() == Some(0) {
                    format!("(fmod({kb}, {s}) == 0)")
                } else {
                    format!("(fmod({kb} + {}, {s}) == 0)", size(offset))
                };
                format!("((fdiv({q}, {b}) - {kb} < {l}) || {vertical})")
            }
            MaskExpr::Roll { offset, inner } => {
                let (o, n, id) = (size(offset), self.n, self.rolls);
                self.rolls += 1;
                let (rq, rk) = (format!("q{id}"), format!("k{id}"));
                self.lets.push(format!("let {rq} = fmod({q} - {o}, {n});"));
                self.lets.push(format!("let {rk} = fmod({k} - {o}, {n});"));
                self.expr(inner, &rq, &rk)
            }
            MaskExpr::Not(a) => format!("!{}", self.expr(a, q, k)),
            MaskExpr::And(a, b) => format!("({} && {})", self.expr(a, q, k), self.expr(b, q, k)),
            MaskExpr::Or(a, b) => format!("({} || {})", self.expr(a, q, k), self.expr(b, q, k)),
        }
    }
}

/// A size as an atomic WGSL `i32` expression in `h`.
fn size(s: &SizeExpr) -> String {
    match &s.kind {
        SizeKind::Lit(v) if *v < 0 => format!("({v})"),
        SizeKind::Lit(v) => v.to_string(),
        // `Mask` admits no variable but `h`, and `check_sizes` proves it.
        SizeKind::Var(name) => name.clone(),
        SizeKind::Neg(a) => format!("(-{})", size(a)),
        SizeKind::Bin(op, a, b) => {
            let (a, b) = (size(a), size(b));
            match op {
                SizeOp::Add => format!("({a} + {b})"),
                SizeOp::Sub => format!("({a} - {b})"),
                SizeOp::Mul => format!("({a} * {b})"),
                SizeOp::Div => format!("fdiv({a}, {b})"),
                SizeOp::Rem => format!("fmod({a}, {b})"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(src: &str) -> Mask {
        Mask::new(weft_ir::expr::parse_mask(src).unwrap()).unwrap()
    }

    #[test]
    fn masks_become_expressions_in_h() {
        let heads = vec![(0..2, mask("causal & groups(64)")), (2..4, mask("roll(32, causal & groups(64))"))];
        let text = mask_functions(&heads, 256, "NI").unwrap();
        assert!(text.contains("return ((k <= q) && (fdiv(q, 64) == fdiv(k, 64)));"), "{text}");
        assert!(text.contains("let q0 = fmod(q - 32, NI);"), "{text}");
        assert!(text.contains("if (h < 2) {"), "{text}");
        let ls = mask_functions(&[(0..4, mask("causal & local_stride(16, 2, 4, h - 1)"))], 64, "NI").unwrap();
        assert!(ls.contains("(fmod(fdiv(k, 16) + (h - 1), 4) == 0)"), "{ls}");
        let floor = mask_functions(&[(0..8, mask("groups(h + 5, -3)"))], 16, "16").unwrap();
        assert!(floor.contains("(fdiv(q - (-3), (h + 5)) == fdiv(k - (-3), (h + 5)))"), "{floor}");
    }

    #[test]
    fn nested_rolls_bind_fresh_positions_modulo_n() {
        let text =
            mask_functions(&[(0..1, mask("roll(3, roll(-2, causal) & window(4))"))], 16, "16").unwrap();
        for line in [
            "let q0 = fmod(q - 3, 16);",
            "let k1 = fmod(k0 - (-2), 16);",
            "((k1 <= q1) && (abs(q0 - k0) < 4))",
        ] {
            assert!(text.contains(line), "{line}\n{text}");
        }
    }

    #[test]
    fn the_last_group_takes_the_remaining_heads() {
        let text = mask_functions(&[(2..5, mask("causal"))], 16, "16").unwrap();
        assert!(text.contains("-> bool {\n    return mask_0(h, q, k);\n}"), "{text}");
        let text = mask_functions(&[], 16, "16").unwrap();
        assert!(
            text.contains("fn mask_allows(h: i32, q: i32, k: i32) -> bool {\n    return false;\n}"),
            "{text}"
        );
    }

    #[test]
    fn sizes_are_checked_per_head() {
        assert!(check_sizes(&mask("groups(4 - h)"), 0..4, 64).is_ok());
        let err = check_sizes(&mask("groups(4 - h)"), 0..5, 64).unwrap_err();
        assert_eq!(err.head, 4);
        assert!(err.reason.contains("must be positive"), "{err}");
        let err = check_sizes(&mask("window(h * 600000000 * 2 + 1)"), 0..2, 64).unwrap_err();
        assert_eq!(err.head, 1, "{err}");
        assert!(err.reason.contains("±2^30"), "{err}");
        assert!(check_sizes(&mask("window(1073741824 * 2)"), 3..4, 64).is_err());
        assert!(check_sizes(&mask("window(1073741824)"), 3..4, 64).is_ok());
        let err = check_sizes(&mask("window(4 / (h - 2) + 10)"), 0..4, 64).unwrap_err();
        assert_eq!((err.head, err.reason.contains("divides by zero")), (2, true), "{err}");
        let err = check_sizes(&mask("causal"), 0..1, (1 << 30) + 1).unwrap_err();
        assert!(err.reason.contains("sequence length"), "{err}");
        let err =
            mask_functions(&[(0..1, mask("causal")), (1..3, mask("sink(h - 1)"))], 64, "NI").unwrap_err();
        assert_eq!(err.head, 1, "{err}");
    }
}
