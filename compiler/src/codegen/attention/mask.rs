//! Mask expressions as WGSL: `fn mask_allows(h: i32, q: i32, k: i32) -> bool`.
//!
//! The function switches on the head's mask group and evaluates that group's
//! [`Mask`] with DESIGN.md's semantics. Sizes stay expressions in `h`, the head
//! index, so one kernel serves heads whose masks differ; division and modulo
//! are floor division and the remainder with the divisor's sign (`fdiv`, `fmod`),
//! exactly as in `weft_ir::mask::eval`.

use std::ops::Range;

use weft_ir::Mask;
use weft_ir::MaskExpr;
use weft_ir::expr::{SizeExpr, SizeKind, SizeOp};

/// The largest magnitude a size, or any intermediate value of a size
/// expression, may have: positions and sizes are combined by one addition or
/// subtraction in the kernel, which must not overflow `i32`.
pub const MAX_MAGNITUDE: i64 = 1 << 30;

/// WGSL helpers shared by every mask: floor division and floor modulo on `i32`.
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

/// Emits `fdiv`, `fmod`, one `mask_<g>` per head group and `mask_allows`.
///
/// `heads` are the head groups of the fused node, sorted, tiling the heads.
/// Errors carry the first head of the offending group and a message.
pub fn mask_functions(heads: &[(Range<usize>, Mask)]) -> Result<String, (usize, String)> {
    let mut out = String::from(HELPERS);
    for (g, (range, mask)) in heads.iter().enumerate() {
        let mut emitter = Emitter::default();
        let body = emitter.expr(mask.expr(), "q", "k").map_err(|message| (range.start, message))?;
        out.push_str(&format!("\n// heads {}..{}: {mask}\n", range.start, range.end));
        out.push_str(&format!("fn mask_{g}(h: i32, q: i32, k: i32) -> bool {{\n"));
        for line in &emitter.lets {
            out.push_str(&format!("    {line}\n"));
        }
        out.push_str(&format!("    return {body};\n}}\n"));
    }
    out.push_str("\nfn mask_allows(h: i32, q: i32, k: i32) -> bool {\n");
    let last = heads.len().saturating_sub(1);
    for (g, (range, _)) in heads.iter().enumerate() {
        if g == last {
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

#[derive(Default)]
struct Emitter {
    /// `let` bindings for rolled positions, in order.
    lets: Vec<String>,
    fresh: usize,
}

impl Emitter {
    /// A parenthesized (or atomic) WGSL `bool` expression for `mask` at positions `q`, `k`.
    fn expr(&mut self, mask: &MaskExpr<SizeExpr>, q: &str, k: &str) -> Result<String, String> {
        Ok(match mask {
            MaskExpr::Full => "true".to_string(),
            MaskExpr::Causal => format!("({k} <= {q})"),
            MaskExpr::Window(w) => format!("(abs({q} - {k}) < {})", size(w)?),
            MaskExpr::Sink(s) => format!("({k} < {})", size(s)?),
            MaskExpr::Groups { size: g, offset } => {
                let g = size(g)?;
                if offset.as_lit() == Some(0) {
                    format!("(fdiv({q}, {g}) == fdiv({k}, {g}))")
                } else {
                    let o = size(offset)?;
                    format!("(fdiv({q} - {o}, {g}) == fdiv({k} - {o}, {g}))")
                }
            }
            MaskExpr::LocalStride { block, local, stride, offset } => {
                let (b, l, s) = (size(block)?, size(local)?, size(stride)?);
                let kb = format!("fdiv({k}, {b})");
                let vertical = if offset.as_lit() == Some(0) {
                    format!("(fmod({kb}, {s}) == 0)")
                } else {
                    format!("(fmod({kb} + {}, {s}) == 0)", size(offset)?)
                };
                format!("((fdiv({q}, {b}) - {kb} < {l}) || {vertical})")
            }
            MaskExpr::Roll { offset, inner } => {
                let o = size(offset)?;
                let id = self.fresh;
                self.fresh += 1;
                let (rq, rk) = (format!("q{id}"), format!("k{id}"));
                self.lets.push(format!("let {rq} = fmod({q} - {o}, NI);"));
                self.lets.push(format!("let {rk} = fmod({k} - {o}, NI);"));
                self.expr(inner, &rq, &rk)?
            }
            MaskExpr::Not(a) => format!("!{}", self.expr(a, q, k)?),
            MaskExpr::And(a, b) => format!("({} && {})", self.expr(a, q, k)?, self.expr(b, q, k)?),
            MaskExpr::Or(a, b) => format!("({} || {})", self.expr(a, q, k)?, self.expr(b, q, k)?),
        })
    }
}

/// A size as an atomic WGSL `i32` expression in `h`.
fn size(s: &SizeExpr) -> Result<String, String> {
    Ok(match &s.kind {
        SizeKind::Lit(v) if v.abs() > MAX_MAGNITUDE => {
            return Err(format!("size {v} is too large for the kernel's 32-bit arithmetic"));
        }
        SizeKind::Lit(v) if *v < 0 => format!("({v})"),
        SizeKind::Lit(v) => v.to_string(),
        SizeKind::Var(name) if name == "h" => "h".to_string(),
        SizeKind::Var(name) => return Err(format!("size `{s}` mentions `{name}`, which is not resolved")),
        SizeKind::Neg(a) => format!("(-{})", size(a)?),
        SizeKind::Bin(op, a, b) => {
            let (a, b) = (size(a)?, size(b)?);
            match op {
                SizeOp::Add => format!("({a} + {b})"),
                SizeOp::Sub => format!("({a} - {b})"),
                SizeOp::Mul => format!("({a} * {b})"),
                SizeOp::Div => format!("fdiv({a}, {b})"),
                SizeOp::Rem => format!("fmod({a}, {b})"),
            }
        }
    })
}

/// Checks that every size of `mask` evaluates at head `h` without any
/// intermediate value leaving `[-MAX_MAGNITUDE, MAX_MAGNITUDE]`, so the kernel's
/// `i32` arithmetic computes what the reference computes, and that sizes that
/// must be positive are.
pub fn check_sizes(mask: &Mask, h: usize) -> Result<(), String> {
    let mut result = Ok(());
    mask.expr().for_each_size(&mut |s, role| {
        if result.is_err() {
            return;
        }
        result = match eval_bounded(s, h as i64) {
            Some(v) if role.positive && v < 1 => Err(format!(
                "`{}` of `{}` is {v} (from `{s}`), but must be positive",
                role.param, role.primitive
            )),
            Some(_) => Ok(()),
            None => Err(format!(
                "size `{s}` leaves the range ±2^30 of the kernel's 32-bit arithmetic, or divides by zero"
            )),
        };
    });
    result
}

fn eval_bounded(s: &SizeExpr, h: i64) -> Option<i64> {
    let v = match &s.kind {
        SizeKind::Lit(v) => *v,
        SizeKind::Var(name) if name == "h" => h,
        SizeKind::Var(_) => return None,
        SizeKind::Neg(a) => -eval_bounded(a, h)?,
        SizeKind::Bin(op, a, b) => op.apply(eval_bounded(a, h)?, eval_bounded(b, h)?)?,
    };
    (v.abs() <= MAX_MAGNITUDE).then_some(v)
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
        let text = mask_functions(&heads).unwrap();
        assert!(text.contains("return ((k <= q) && (fdiv(q, 64) == fdiv(k, 64)));"), "{text}");
        assert!(text.contains("let q0 = fmod(q - 32, NI);"), "{text}");
        assert!(text.contains("if (h < 2) {"), "{text}");
        let ls = mask_functions(&[(0..4, mask("causal & local_stride(16, 2, 4, h - 1)"))]).unwrap();
        assert!(ls.contains("(fmod(fdiv(k, 16) + (h - 1), 4) == 0)"), "{ls}");
    }

    #[test]
    fn sizes_are_checked_per_head() {
        assert!(check_sizes(&mask("groups(4 - h)"), 3).is_ok());
        let err = check_sizes(&mask("groups(4 - h)"), 4).unwrap_err();
        assert!(err.contains("must be positive"), "{err}");
        assert!(check_sizes(&mask("window(1073741824 * 2)"), 0).is_err());
    }
}
