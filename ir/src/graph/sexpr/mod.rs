//! The s-expression text format: one node per line, printed and parsed back exactly.
//!
//! ```text
//! file     := '(' 'graph' name item* ')'
//! item     := '(' ID '(' op ')' type ')'          ; a node
//!           | '(' 'output' name ID ')'            ; a named output, in order
//! op       := 'input' name | 'param' name attr*
//!           | OPNAME ID* attr*
//! attr     := ':' KEY value?                      ; flags such as :trainable take no value
//! value    := INT | FLOAT | STRING | '(' INT* ')' | '(' ('(' INT INT STRING ')')* ')'
//! type     := DTYPE '[' (INT (',' INT)*)? ']'     ; f32[2, 4, 64, 16]
//! name     := ATOM | STRING
//! ID       := '%' DIGITS                          ; defined before use, any numbering
//! ```
//!
//! `;` starts a comment. Floats print with Rust's shortest round-trip form, masks
//! as strings in the spec's mask syntax. Attributes per op:
//!
//! | op | attributes |
//! |----|------------|
//! | `param` | `:trainable` |
//! | `matmul` | `:transpose-a`, `:transpose-b` |
//! | `scale` | `:factor F` |
//! | `reshape` | `:shape (2 4)` |
//! | `permute` | `:perm (0 2 1 3)` |
//! | `roll` | `:axis A :shift S [:heads (AXIS START END)]` |
//! | `slice` | `:axis A :start S :end E` |
//! | `concat`, `softmax`, `reduce-sum`, `reduce-max`, `reduce-mean` | `:axis A` |
//! | `rms-norm` | `:eps F` |
//! | `rope` | `:theta F :position-scale F [:freqs "llama3:FACTOR:LOW:HIGH:CONTEXT"]` |
//! | `attention` | `:mask "causal & groups(16)" :head-offset O :scale F` |
//! | `fused-attention` | `:masks ((0 2 "causal & groups(16)") (2 4 "roll(8, causal & groups(16))")) :scale F [:rope-theta F :rope-position-scale F [:rope-freqs "…"]]` |
//! | `fused-attention-grad` | `:grad "dq"` and the attributes of `fused-attention` |

mod lexer;
mod parser;

use std::fmt::Write;

use super::{Graph, Node, Op};

pub use parser::parse_sexpr;

impl Graph {
    /// The graph in the s-expression format; [`parse_sexpr`] reads it back to an equal graph.
    pub fn to_sexpr(&self) -> String {
        let mut out = format!("(graph {}", name(&self.name));
        for id in self.node_ids() {
            let node = self.node(id);
            let _ = write!(out, "\n  ({id} ");
            write_op(&mut out, node);
            let _ = write!(out, " {})", node.ty);
        }
        for (output, id) in &self.outputs {
            let _ = write!(out, "\n  (output {} {id})", name(output));
        }
        out.push_str(")\n");
        out
    }
}

fn write_op(out: &mut String, node: &Node) {
    let _ = write!(out, "({}", node.op.name());
    for id in &node.inputs {
        let _ = write!(out, " {id}");
    }
    let ints = |xs: &[usize]| xs.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(" ");
    let _ = match &node.op {
        Op::Input { name: n } => write!(out, " {}", name(n)),
        Op::Parameter { name: n, trainable } => {
            write!(out, " {}{}", name(n), if *trainable { " :trainable" } else { "" })
        }
        Op::MatMul { transpose_a, transpose_b } => write!(
            out,
            "{}{}",
            if *transpose_a { " :transpose-a" } else { "" },
            if *transpose_b { " :transpose-b" } else { "" }
        ),
        Op::Add
        | Op::Mul
        | Op::Unary(_)
        | Op::Embedding
        | Op::CrossEntropy
        | Op::CrossEntropyGrad
        | Op::RopeTable => Ok(()),
        Op::EmbeddingGrad { vocab } => write!(out, " :vocab {vocab}"),
        Op::Scale { factor } => write!(out, " :factor {factor:?}"),
        Op::Reshape { shape } => write!(out, " :shape ({})", ints(shape)),
        Op::Permute { perm } => write!(out, " :perm ({})", ints(perm)),
        Op::Roll { axis, shift, heads } => {
            let _ = write!(out, " :axis {axis} :shift {shift}");
            match heads {
                Some(h) => write!(out, " :heads ({} {} {})", h.axis, h.start, h.end),
                None => Ok(()),
            }
        }
        Op::Slice { axis, start, end } => write!(out, " :axis {axis} :start {start} :end {end}"),
        Op::Concat { axis }
        | Op::Softmax { axis }
        | Op::SoftmaxGrad { axis }
        | Op::ReduceSum { axis }
        | Op::ReduceMax { axis }
        | Op::ReduceMean { axis } => write!(out, " :axis {axis}"),
        Op::Broadcast { axis, size } => write!(out, " :axis {axis} :size {size}"),
        Op::Pad { axis, before, after } => write!(out, " :axis {axis} :before {before} :after {after}"),
        Op::RmsNorm { eps } | Op::RmsNormGrad { eps } | Op::RmsNormWeightGrad { eps } => {
            write!(out, " :eps {eps:?}")
        }
        Op::Rope { theta, position_scale, freqs } => {
            write!(out, " :theta {theta:?} :position-scale {position_scale:?}{}", freqs_attr("freqs", freqs))
        }
        Op::Attention { mask, head_offset, scale } | Op::MaskedSoftmax { mask, head_offset, scale } => {
            write!(out, " :mask {} :head-offset {head_offset} :scale {scale:?}", quote(&mask.to_string()))
        }
        Op::CachedAttention { heads, scale } => {
            write!(out, " :masks ({}) :scale {scale:?}", head_masks(heads))
        }
        Op::FusedAttention { heads, scale, rope } => {
            write!(out, " :masks ({}) :scale {scale:?}{}", head_masks(heads), rope_attrs(rope))
        }
        Op::FusedAttentionGrad { heads, scale, grad, rope } => {
            let rope = rope_attrs(rope);
            write!(out, " :grad \"{}\" :masks ({}) :scale {scale:?}{rope}", grad.name(), head_masks(heads))
        }
    };
    out.push(')');
}

/// ` :rope-theta F :rope-position-scale F [:rope-freqs "…"]`, or nothing without a rope.
fn rope_attrs(rope: &Option<crate::graph::RopeParams>) -> String {
    rope.map(|r| {
        let freqs = freqs_attr("rope-freqs", &r.freqs);
        format!(" :rope-theta {:?} :rope-position-scale {:?}{freqs}", r.theta, r.position_scale)
    })
    .unwrap_or_default()
}

/// ` :KEY "llama3:…"`, or nothing for the default frequencies.
fn freqs_attr(key: &str, freqs: &crate::graph::RopeFreqs) -> String {
    match freqs {
        crate::graph::RopeFreqs::Default => String::new(),
        other => format!(" :{key} \"{other}\""),
    }
}

/// `(0 2 "causal") (2 4 "...")`.
fn head_masks(heads: &[crate::graph::HeadMask]) -> String {
    let entries: Vec<String> = heads
        .iter()
        .map(|h| format!("({} {} {})", h.heads.start, h.heads.end, quote(&h.mask.to_string())))
        .collect();
    entries.join(" ")
}

/// A name as a bare atom when that reads back unambiguously, else as a string.
fn name(s: &str) -> String {
    let mut chars = s.chars();
    let bare = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || "_-./".contains(c));
    if bare { s.to_string() } else { quote(s) }
}

fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
