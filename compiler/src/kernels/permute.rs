//! reshape (a copy, when it does not alias), permute, roll, slice, pad,
//! broadcast and concat: one thread per destination element, gathering its
//! source element.

use std::fmt::Write;

use weft_ir::graph::{HeadRange, Op};

use super::CodegenError;
use super::builder::{KernelBuilder, Region, split_at_axis, strides, unravel};
use super::{Ctx, Operand};
use crate::kernel::Kernel;

pub(crate) fn emit(
    cx: &Ctx,
    op: &Op,
    inputs: &[Operand],
    out: &Operand,
) -> Result<Vec<Kernel>, CodegenError> {
    match (op, inputs) {
        (Op::Reshape { .. }, [x]) => Ok(vec![copy(cx, &cx.kernel_name(""), &x.region, &out.region)?]),
        (Op::Permute { perm }, [x]) => {
            let in_strides = strides(x.shape);
            let mut body = unravel("i", out.shape, "c");
            let terms: Vec<String> =
                perm.iter().enumerate().map(|(axis, &p)| format!("c{axis} * {}u", in_strides[p])).collect();
            let _ = writeln!(body, "st_y(i, ld_x({}));", terms.join(" + "));
            gather(cx, op, x, out, "", &body)
        }
        (Op::Roll { axis, shift, heads }, [x]) => {
            let body = roll_body(x.shape, *axis, *shift, *heads);
            gather(cx, op, x, out, "", &body)
        }
        (Op::Slice { axis, start, .. }, [x]) => {
            let (_, n, inner) = split_at_axis(x.shape, *axis);
            let len = out.shape[*axis] as u64;
            let body = format!(
                "let o = i / {span}u;\nlet r = i % {span}u;\nst_y(i, ld_x(o * {src}u + {offset}u + r));\n",
                span = len * inner,
                src = n * inner,
                offset = *start as u64 * inner,
            );
            gather(cx, op, x, out, "", &body)
        }
        (Op::Pad { axis, before, .. }, [x]) => {
            let (_, n, inner) = split_at_axis(x.shape, *axis);
            let total = out.shape[*axis] as u64;
            // Unsigned wrap-around puts rows in front of `before` out of range too.
            let body = format!(
                "let o = i / {span}u;\nlet c = (i / {inner}u) % {total}u - {before}u;\nlet r = i % {inner}u;\n\
                 var value = 0.0;\nif (c < {n}u) {{\n    value = ld_x((o * {n}u + c) * {inner}u + r);\n}}\nst_y(i, value);\n",
                span = total * inner,
            );
            gather(cx, op, x, out, "", &body)
        }
        (Op::Broadcast { axis, size }, [x]) => {
            let inner: u64 = x.shape[*axis..].iter().map(|&d| d as u64).product();
            let body = format!(
                "st_y(i, ld_x((i / {span}u) * {inner}u + i % {inner}u));\n",
                span = *size as u64 * inner,
            );
            gather(cx, op, x, out, "", &body)
        }
        (Op::Concat { axis }, xs) => {
            // One kernel per operand, each writing its slab of every outer index:
            // two bindings each, however many operands there are.
            let (_, total, inner) = split_at_axis(out.shape, *axis);
            let mut offset = 0u64;
            let mut kernels = Vec::with_capacity(xs.len());
            for (i, x) in xs.iter().enumerate() {
                let span = x.shape[*axis] as u64 * inner;
                let body = format!(
                    "let o = i / {span}u;\nlet r = i % {span}u;\nst_y(o * {dst}u + {off}u + r, ld_x(i));\n",
                    dst = total * inner,
                    off = offset * inner,
                );
                let suffix = if xs.len() == 1 { String::new() } else { i.to_string() };
                let title = format!("{op}, operand {i} of {}", xs.len());
                let mut k = KernelBuilder::new(cx.site, cx.limits, &cx.kernel_name(&suffix), &title);
                k.read("x", &x.region)?;
                k.write("y", &out.region)?;
                kernels.push(k.finish(x.region.elems, &body)?);
                offset += x.shape[*axis] as u64;
            }
            Ok(kernels)
        }
        _ => Err(cx.unsupported()),
    }
}

/// `to = from`, element by element: non-aliasing reshapes and output copies.
pub(crate) fn copy(cx: &Ctx, name: &str, from: &Region, to: &Region) -> Result<Kernel, CodegenError> {
    let mut k = KernelBuilder::new(cx.site, cx.limits, name, "copy");
    k.read("x", from)?;
    k.write("y", to)?;
    k.finish(to.elems, "st_y(i, ld_x(i));\n")
}

/// A kernel with `y[i] = x[src(i)]` over the output, `body` computing it.
fn gather(
    cx: &Ctx,
    op: &Op,
    x: &Operand,
    out: &Operand,
    suffix: &str,
    body: &str,
) -> Result<Vec<Kernel>, CodegenError> {
    let mut k = KernelBuilder::new(cx.site, cx.limits, &cx.kernel_name(suffix), &op.to_string());
    k.read("x", &x.region)?;
    k.write("y", &out.region)?;
    Ok(vec![k.finish(out.region.elems, body)?])
}

/// `out[i] = in[(i - shift) mod n]` along `axis`, only inside `heads` when given.
fn roll_body(shape: &[usize], axis: usize, shift: i64, heads: Option<HeadRange>) -> String {
    let (_, n, inner) = split_at_axis(shape, axis);
    // (c - shift) mod n == (c + n - s) mod n with s = shift mod n in [0, n).
    let s = shift.rem_euclid(n as i64) as u64;
    let mut body = String::new();
    if s == 0 {
        body.push_str("st_y(i, ld_x(i));\n");
        return body;
    }
    let _ = writeln!(body, "let c = (i / {inner}u) % {n}u;");
    let _ = writeln!(body, "var src = i - c * {inner}u + ((c + {}u) % {n}u) * {inner}u;", n - s);
    if let Some(h) = heads {
        let (_, hn, hinner) = split_at_axis(shape, h.axis);
        let mut outside = Vec::new();
        if h.start > 0 {
            outside.push(format!("head < {}u", h.start));
        }
        if (h.end as u64) < hn {
            outside.push(format!("head >= {}u", h.end));
        }
        if !outside.is_empty() {
            let _ = writeln!(body, "let head = (i / {hinner}u) % {hn}u;");
            let _ = writeln!(body, "if ({}) {{\n    src = i;\n}}", outside.join(" || "));
        }
    }
    body.push_str("st_y(i, ld_x(src));\n");
    body
}
