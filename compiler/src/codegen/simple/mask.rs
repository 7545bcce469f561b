//! A mask expression as a WGSL function `mask_allows(h, q, k) -> bool`.
//!
//! Sizes may mention `h`, the global head index, so they are emitted as i32
//! expressions evaluated per head on the device. `/` and `%` in sizes, groups,
//! blocks and rolls are floor division and its remainder (DESIGN.md), which
//! WGSL's truncating `/` and `%` are not: `floor_div` and `floor_mod` fix that.
//! The arithmetic is i32, so [`check_range`] proves at plan time that no value
//! leaves ±2^29 for any head of the node (sums of two such values still fit).

use std::fmt::Write;

use weft_ir::expr::{SizeExpr, SizeKind, SizeOp};
use weft_ir::{Mask, MaskExpr};

/// The largest magnitude a size (or any part of one) may have.
const LIMIT: i64 = 1 << 29;

const FLOOR_HELPERS: &str = "\
// Floor division and its remainder (DESIGN.md's semantics), not WGSL's truncating / and %.
fn floor_div(a: i32, b: i32) -> i32 {
    let q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) {
        return q - 1;
    }
    return q;
}
fn floor_mod(a: i32, b: i32) -> i32 {
    let r = a % b;
    if ((r != 0) && ((r < 0) != (b < 0))) {
        return r + b;
    }
    return r;
}
";

/// WGSL for `fn mask_allows(h: i32, q: i32, k: i32) -> bool` (with its helpers):
/// whether query `q` may see key `k` in a sequence of `seq_len` tokens, for
/// global head `h`. Call [`check_range`] first: it rejects masks whose i32
/// arithmetic could overflow.
pub fn mask_wgsl(mask: &Mask, seq_len: usize) -> String {
    let mut lets = String::new();
    let mut fresh = 0;
    let expr = emit(mask.expr(), "q", "k", seq_len, &mut lets, &mut fresh);
    let mut out = String::from(FLOOR_HELPERS);
    let _ = writeln!(out, "// mask `{mask}` at N = {seq_len}; h is the global head index.");
    let _ = writeln!(out, "fn mask_allows(h: i32, q: i32, k: i32) -> bool {{");
    out.push_str(&lets);
    let _ = writeln!(out, "    return {expr};\n}}");
    out
}

/// Checks that every size of `mask`, and every part of every size, stays within
/// ±2^29 for each head in `heads` and that `seq_len` does too; on failure gives
/// the head and the reason.
pub(crate) fn check_range(
    mask: &Mask,
    heads: std::ops::Range<usize>,
    seq_len: usize,
) -> Result<(), (usize, String)> {
    if seq_len as u64 > LIMIT as u64 {
        return Err((heads.start, format!("sequence length {seq_len} exceeds 2^29")));
    }
    for head in heads {
        let mut problem = None;
        mask.expr().for_each_size(&mut |size, _| {
            if problem.is_none()
                && let Err(why) = value(size, head as i64)
            {
                problem = Some(why);
            }
        });
        if let Some(why) = problem {
            return Err((head, why));
        }
    }
    Ok(())
}

/// The value of `e` for head `h`, checking every subexpression's range.
fn value(e: &SizeExpr, h: i64) -> Result<i64, String> {
    let v = match &e.kind {
        SizeKind::Lit(v) => *v,
        SizeKind::Var(name) if name == "h" => h,
        SizeKind::Var(name) => return Err(format!("size `{e}` mentions unresolved variable `{name}`")),
        SizeKind::Neg(a) => -value(a, h)?,
        SizeKind::Bin(op, a, b) => {
            let (a, b) = (value(a, h)?, value(b, h)?);
            op.apply(a, b).ok_or_else(|| format!("size `{e}` divides by zero"))?
        }
    };
    if v.abs() > LIMIT {
        return Err(format!(
            "size `{e}` = {v} is outside ±2^29, the range of the kernel's i32 mask arithmetic"
        ));
    }
    Ok(v)
}

/// A size as an i32 WGSL expression.
fn size(e: &SizeExpr) -> String {
    match &e.kind {
        SizeKind::Lit(v) if *v < 0 => format!("({v}i)"),
        SizeKind::Lit(v) => format!("{v}i"),
        // `Mask` guarantees `h` is the only variable.
        SizeKind::Var(name) => name.clone(),
        SizeKind::Neg(a) => format!("(-{})", size(a)),
        SizeKind::Bin(SizeOp::Div, a, b) => format!("floor_div({}, {})", size(a), size(b)),
        SizeKind::Bin(SizeOp::Rem, a, b) => format!("floor_mod({}, {})", size(a), size(b)),
        SizeKind::Bin(op, a, b) => {
            let sym = match op {
                SizeOp::Add => "+",
                SizeOp::Sub => "-",
                _ => "*",
            };
            format!("({} {sym} {})", size(a), size(b))
        }
    }
}

/// `x - o`, or `x` when `o` is the literal 0.
fn minus(x: &str, o: &SizeExpr) -> String {
    if o.as_lit() == Some(0) { x.to_string() } else { format!("({x} - {})", size(o)) }
}

/// The mask at positions `q`, `k` as a boolean WGSL expression; rolls bind
/// their shifted positions as `let`s in `lets` (WGSL has no recursion).
fn emit(m: &MaskExpr<SizeExpr>, q: &str, k: &str, n: usize, lets: &mut String, fresh: &mut u32) -> String {
    match m {
        MaskExpr::Full => "true".into(),
        MaskExpr::Causal => format!("({k} <= {q})"),
        MaskExpr::Window(w) => format!("(abs({q} - {k}) < {})", size(w)),
        MaskExpr::Sink(s) => format!("({k} < {})", size(s)),
        MaskExpr::Groups { size: g, offset } => {
            let g = size(g);
            format!("(floor_div({}, {g}) == floor_div({}, {g}))", minus(q, offset), minus(k, offset))
        }
        MaskExpr::LocalStride { block, local, stride, offset } => {
            let b = size(block);
            let kb = format!("floor_div({k}, {b})");
            let vertical =
                if offset.as_lit() == Some(0) { kb.clone() } else { format!("({kb} + {})", size(offset)) };
            format!(
                "((floor_div({q}, {b}) - {kb} < {}) || (floor_mod({vertical}, {}) == 0i))",
                size(local),
                size(stride)
            )
        }
        MaskExpr::Roll { offset, inner } => {
            *fresh += 1;
            let (rq, rk) = (format!("q{fresh}"), format!("k{fresh}"));
            let _ = writeln!(lets, "    let {rq} = floor_mod({}, {n}i);", minus(q, offset));
            let _ = writeln!(lets, "    let {rk} = floor_mod({}, {n}i);", minus(k, offset));
            emit(inner, &rq, &rk, n, lets, fresh)
        }
        MaskExpr::Not(a) => format!("!{}", emit(a, q, k, n, lets, fresh)),
        MaskExpr::And(a, b) => {
            format!("({} && {})", emit(a, q, k, n, lets, fresh), emit(b, q, k, n, lets, fresh))
        }
        MaskExpr::Or(a, b) => {
            format!("({} || {})", emit(a, q, k, n, lets, fresh), emit(b, q, k, n, lets, fresh))
        }
    }
}
