//! Reads the s-expression format (grammar in `mod.rs`) into an unvalidated [`Graph`].
//!
//! Each node's type is inferred as it is read and compared with the declared
//! type, so shape errors point at a line and column; whole-graph properties
//! (outputs present) are left to [`Graph::validate`].

use std::collections::HashMap;

use super::lexer::{Tok, Token, lex};
use crate::expr::parse_mask;
use crate::graph::infer;
use crate::graph::{
    AttentionGrad, DType, Graph, GraphError, HeadMask, HeadRange, Node, NodeId, Op, RopeFreqs, RopeParams,
    TensorType, UnaryOp,
};
use crate::mask::{Mask, NewMaskError};
use crate::source::{SourceFile, Span};

/// Parses a graph from its text. The result is not validated.
pub fn parse_sexpr(file: &SourceFile) -> Result<Graph, GraphError> {
    let tokens = lex(&file.text).map_err(|e| GraphError::Syntax {
        file: file.name.clone(),
        pos: file.line_col(e.span.start),
        span: e.span,
        expected: e.expected.to_string(),
        found: e.found,
    })?;
    let end = file.text.len();
    let mut parser = Parser {
        file,
        tokens,
        pos: 0,
        eof: Token { tok: Tok::Eof, span: Span::new(end, end) },
        graph: Graph::new(""),
        ids: HashMap::new(),
        leaves: HashMap::new(),
    };
    parser.file()?;
    Ok(parser.graph)
}

/// `text` quoted, cut after [`QUOTED_MASK_CHARS`] characters so a huge mask
/// does not flood the error message.
fn quoted_prefix(text: &str) -> String {
    match text.char_indices().nth(QUOTED_MASK_CHARS) {
        Some((cut, _)) => format!("{:?}…", &text[..cut]),
        None => format!("{text:?}"),
    }
}

/// How much of a mask an error message quotes.
const QUOTED_MASK_CHARS: usize = 60;

/// The kind of value an attribute takes.
#[derive(Clone, Copy)]
enum Kind {
    Flag,
    Uint,
    Int,
    Float,
    Uints,
    Heads,
    Str,
    HeadMasks,
}

type Schema = &'static [(&'static str, Kind)];

/// Every op and its attributes, in the order error messages list them.
const OPS: &[(&str, Schema)] = &[
    ("input", &[]),
    ("param", &[("trainable", Kind::Flag)]),
    ("matmul", &[("transpose-a", Kind::Flag), ("transpose-b", Kind::Flag)]),
    ("add", &[]),
    ("mul", &[]),
    ("scale", &[("factor", Kind::Float)]),
    ("exp", &[]),
    ("log", &[]),
    ("silu", &[]),
    ("sigmoid", &[]),
    ("reshape", &[("shape", Kind::Uints)]),
    ("permute", &[("perm", Kind::Uints)]),
    ("roll", &[("axis", Kind::Uint), ("shift", Kind::Int), ("heads", Kind::Heads)]),
    ("slice", &[("axis", Kind::Uint), ("start", Kind::Uint), ("end", Kind::Uint)]),
    ("concat", &[("axis", Kind::Uint)]),
    ("softmax", &[("axis", Kind::Uint)]),
    ("softmax-grad", &[("axis", Kind::Uint)]),
    ("masked-softmax", &[("mask", Kind::Str), ("head-offset", Kind::Uint), ("scale", Kind::Float)]),
    ("broadcast", &[("axis", Kind::Uint), ("size", Kind::Uint)]),
    ("pad", &[("axis", Kind::Uint), ("before", Kind::Uint), ("after", Kind::Uint)]),
    ("reduce-sum", &[("axis", Kind::Uint)]),
    ("reduce-max", &[("axis", Kind::Uint)]),
    ("reduce-mean", &[("axis", Kind::Uint)]),
    ("rms-norm", &[("eps", Kind::Float)]),
    ("rms-norm-grad", &[("eps", Kind::Float)]),
    ("rms-norm-weight-grad", &[("eps", Kind::Float)]),
    ("rope", &[("theta", Kind::Float), ("position-scale", Kind::Float), ("freqs", Kind::Str)]),
    ("embedding", &[]),
    ("embedding-grad", &[("vocab", Kind::Uint)]),
    ("cross-entropy", &[]),
    ("cross-entropy-grad", &[]),
    ("attention", &[("mask", Kind::Str), ("head-offset", Kind::Uint), ("scale", Kind::Float)]),
    ("rope-table", &[]),
    ("cached-attention", &[("masks", Kind::HeadMasks), ("scale", Kind::Float)]),
    (
        "fused-attention",
        &[
            ("masks", Kind::HeadMasks),
            ("scale", Kind::Float),
            ("rope-theta", Kind::Float),
            ("rope-position-scale", Kind::Float),
            ("rope-freqs", Kind::Str),
        ],
    ),
    (
        "fused-attention-grad",
        &[
            ("grad", Kind::Str),
            ("masks", Kind::HeadMasks),
            ("scale", Kind::Float),
            ("rope-theta", Kind::Float),
            ("rope-position-scale", Kind::Float),
            ("rope-freqs", Kind::Str),
        ],
    ),
];

enum Value {
    Flag,
    Uint(usize),
    Int(i64),
    Float(f64),
    Uints(Vec<usize>),
    Heads(HeadRange),
    Str(String, Span),
    /// `(start end "mask")` entries, masks not yet parsed.
    HeadMasks(Vec<(usize, usize, String, Span)>),
}

/// The attributes given to one op, checked against its schema.
struct Attrs {
    op: &'static str,
    span: Span,
    values: HashMap<&'static str, Value>,
}

impl Attrs {
    fn flag(&self, key: &str) -> bool {
        matches!(self.values.get(key), Some(Value::Flag))
    }

    fn heads(&self, key: &str) -> Option<HeadRange> {
        match self.values.get(key) {
            Some(Value::Heads(h)) => Some(*h),
            _ => None,
        }
    }
}

struct Parser<'a> {
    file: &'a SourceFile,
    tokens: Vec<Token>,
    pos: usize,
    eof: Token,
    graph: Graph,
    /// Text id (`%7`) -> the node it names.
    ids: HashMap<String, NodeId>,
    /// Input and parameter names -> the text id that declared them.
    leaves: HashMap<String, String>,
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        self.tokens.get(self.pos).unwrap_or(&self.eof)
    }

    fn bump(&mut self) -> Token {
        let t = self.peek().clone();
        if t.tok != Tok::Eof {
            self.pos += 1;
        }
        t
    }

    /// Whether the next token is an atom starting with `c` (`%` ids, `:` attributes).
    fn at_atom_starting(&self, c: char) -> bool {
        matches!(&self.peek().tok, Tok::Atom(s) if s.starts_with(c))
    }

    fn syntax(&self, t: &Token, expected: &str) -> GraphError {
        GraphError::Syntax {
            file: self.file.name.clone(),
            pos: self.file.line_col(t.span.start),
            span: t.span,
            expected: expected.to_string(),
            found: describe(&t.tok),
        }
    }

    fn error(&self, span: Span, message: String) -> GraphError {
        GraphError::Parse { file: self.file.name.clone(), pos: self.file.line_col(span.start), span, message }
    }

    fn located(&self, span: Span, error: GraphError) -> GraphError {
        GraphError::Located {
            file: self.file.name.clone(),
            pos: self.file.line_col(span.start),
            span,
            error: Box::new(error),
        }
    }

    fn expect(&mut self, tok: Tok, expected: &str) -> Result<Token, GraphError> {
        let t = self.bump();
        if t.tok == tok { Ok(t) } else { Err(self.syntax(&t, expected)) }
    }

    fn file(&mut self) -> Result<(), GraphError> {
        self.expect(Tok::LParen, "`(graph`")?;
        let t = self.bump();
        if t.tok != Tok::Atom("graph".into()) {
            return Err(self.syntax(&t, "`graph`"));
        }
        self.graph.name = self.name("the graph's name")?.0;
        loop {
            let t = self.bump();
            match t.tok {
                Tok::RParen => break,
                Tok::LParen => self.item()?,
                _ => {
                    return Err(
                        self.syntax(&t, "a node `(%N (op ...) type)`, an output `(output name %N)` or `)`")
                    );
                }
            }
        }
        let t = self.bump();
        if t.tok == Tok::Eof { Ok(()) } else { Err(self.syntax(&t, "the end of the file")) }
    }

    /// A node or an output; the opening parenthesis is already read.
    fn item(&mut self) -> Result<(), GraphError> {
        let t = self.bump();
        match &t.tok {
            Tok::Atom(s) if s == "output" => self.output(),
            Tok::Atom(s) if s.starts_with('%') => self.node(s.clone(), t.span),
            _ => Err(self.syntax(&t, "a node id such as `%3` or `output`")),
        }
    }

    fn output(&mut self) -> Result<(), GraphError> {
        let (name, span) = self.name("the output's name")?;
        let node = self.operand()?;
        self.expect(Tok::RParen, "`)`")?;
        if self.graph.outputs.iter().any(|(n, _)| *n == name) {
            return Err(self.error(span, format!("output `{name}` is declared twice")));
        }
        self.graph.set_output(&name, node);
        Ok(())
    }

    fn node(&mut self, text_id: String, id_span: Span) -> Result<(), GraphError> {
        if !is_node_id(&text_id) {
            return Err(self.error(id_span, format!("node ids look like `%3`, found `{text_id}`")));
        }
        if self.ids.contains_key(&text_id) {
            return Err(self.error(id_span, format!("`{text_id}` is defined twice")));
        }
        self.expect(Tok::LParen, "`(` and an op")?;
        let op_tok = self.bump();
        let Some((op_name, schema)) = (match &op_tok.tok {
            Tok::Atom(s) => OPS.iter().find(|(name, _)| name == s).copied(),
            _ => return Err(self.syntax(&op_tok, "an op name")),
        }) else {
            let names: Vec<&str> = OPS.iter().map(|(name, _)| *name).collect();
            let message =
                format!("unknown op {}; expected one of {}", describe(&op_tok.tok), names.join(", "));
            return Err(self.error(op_tok.span, message));
        };
        let is_leaf = matches!(op_name, "input" | "param");
        let leaf_name = if is_leaf { Some(self.name("the name of the input or parameter")?) } else { None };
        let mut operands = Vec::new();
        while !is_leaf && self.at_atom_starting('%') {
            operands.push(self.operand()?);
        }
        let attrs = self.attrs(op_name, schema, op_tok.span)?;
        let close = self.bump();
        if close.tok != Tok::RParen {
            return Err(self.syntax(&close, &close_expectation(is_leaf, schema, &attrs)));
        }
        let (ty, ty_span) = self.ty()?;
        self.expect(Tok::RParen, "`)` after the type")?;

        let id = match leaf_name {
            Some((name, name_span)) => {
                if let Some(first) = self.leaves.get(&name) {
                    let message = format!(
                        "name `{name}` is already used by `{first}`; input and parameter names must be unique"
                    );
                    return Err(self.error(name_span, message));
                }
                if let Err(reason) = infer::check_leaf(&ty) {
                    let error = GraphError::Type { node: None, op: op_name, operands: Vec::new(), reason };
                    return Err(self.located(ty_span, error));
                }
                self.leaves.insert(name.clone(), text_id.clone());
                if op_name == "input" {
                    self.graph.input(&name, ty)
                } else {
                    self.graph.parameter(&name, ty, attrs.flag("trainable"))
                }
            }
            None => {
                let op = self.build_op(attrs)?;
                let inferred =
                    self.graph.infer_node(None, &op, &operands).map_err(|e| self.located(op_tok.span, e))?;
                if inferred != ty {
                    let error = GraphError::TypeMismatch { node: None, op: op_name, declared: ty, inferred };
                    return Err(self.located(ty_span, error));
                }
                self.graph.push(Node { op, inputs: operands, ty })
            }
        };
        self.ids.insert(text_id, id);
        Ok(())
    }

    /// Reads `:key value` pairs while they come, checking each against `schema`.
    fn attrs(&mut self, op: &'static str, schema: Schema, span: Span) -> Result<Attrs, GraphError> {
        let mut attrs = Attrs { op, span, values: HashMap::new() };
        while self.at_atom_starting(':') {
            let t = self.bump();
            let Tok::Atom(text) = &t.tok else { break };
            let key = text.strip_prefix(':').unwrap_or(text);
            let Some(&(key, kind)) = schema.iter().find(|(k, _)| *k == key) else {
                let message = if schema.is_empty() {
                    format!("`{op}` takes no attributes, found `{text}`")
                } else {
                    format!("`{op}` has no attribute `{text}`; it takes {}", attr_list(schema))
                };
                return Err(self.error(t.span, message));
            };
            if attrs.values.contains_key(key) {
                return Err(self.error(t.span, format!("duplicate attribute `{text}`")));
            }
            let value = match kind {
                Kind::Flag => Value::Flag,
                Kind::Uint => Value::Uint(self.uint("a non-negative integer")?),
                Kind::Int => Value::Int(self.int()?),
                Kind::Float => Value::Float(self.float()?),
                Kind::Uints => Value::Uints(self.uint_list(None)?),
                Kind::Heads => {
                    let v = self.uint_list(Some(3))?;
                    match v[..] {
                        [axis, start, end] => Value::Heads(HeadRange { axis, start, end }),
                        _ => return Err(self.error(t.span, "`:heads` takes (axis start end)".into())),
                    }
                }
                Kind::HeadMasks => Value::HeadMasks(self.head_masks()?),
                Kind::Str => {
                    let s = self.bump();
                    match s.tok {
                        Tok::Str(text) => Value::Str(text, s.span),
                        _ => return Err(self.syntax(&s, "a quoted string")),
                    }
                }
            };
            attrs.values.insert(key, value);
        }
        Ok(attrs)
    }

    /// Builds a non-leaf op from its attributes; every non-flag attribute but `:heads` is required.
    fn build_op(&self, attrs: Attrs) -> Result<Op, GraphError> {
        let op = attrs.op;
        let span = attrs.span;
        let missing = |key: &str| self.error(span, format!("`{op}` needs `:{key}`"));
        let uint = |key: &str| match attrs.values.get(key) {
            Some(Value::Uint(v)) => Ok(*v),
            _ => Err(missing(key)),
        };
        if let Some(unary) = UnaryOp::from_name(op) {
            return Ok(Op::Unary(unary));
        }
        Ok(match op {
            "matmul" => {
                Op::MatMul { transpose_a: attrs.flag("transpose-a"), transpose_b: attrs.flag("transpose-b") }
            }
            "add" => Op::Add,
            "mul" => Op::Mul,
            "embedding" => Op::Embedding,
            "embedding-grad" => Op::EmbeddingGrad { vocab: uint("vocab")? },
            "cross-entropy" => Op::CrossEntropy,
            "cross-entropy-grad" => Op::CrossEntropyGrad,
            "scale" => Op::Scale { factor: self.float_attr(&attrs, "factor")? },
            "reshape" => Op::Reshape { shape: self.list_attr(&attrs, "shape")? },
            "permute" => Op::Permute { perm: self.list_attr(&attrs, "perm")? },
            "roll" => {
                let axis = uint("axis")?;
                let shift = match attrs.values.get("shift") {
                    Some(Value::Int(v)) => *v,
                    _ => return Err(missing("shift")),
                };
                Op::Roll { axis, shift, heads: attrs.heads("heads") }
            }
            "slice" => Op::Slice { axis: uint("axis")?, start: uint("start")?, end: uint("end")? },
            "concat" => Op::Concat { axis: uint("axis")? },
            "softmax" => Op::Softmax { axis: uint("axis")? },
            "softmax-grad" => Op::SoftmaxGrad { axis: uint("axis")? },
            "broadcast" => Op::Broadcast { axis: uint("axis")?, size: uint("size")? },
            "pad" => Op::Pad { axis: uint("axis")?, before: uint("before")?, after: uint("after")? },
            "reduce-sum" => Op::ReduceSum { axis: uint("axis")? },
            "reduce-max" => Op::ReduceMax { axis: uint("axis")? },
            "reduce-mean" => Op::ReduceMean { axis: uint("axis")? },
            "rms-norm" => Op::RmsNorm { eps: self.float_attr(&attrs, "eps")? },
            "rms-norm-grad" => Op::RmsNormGrad { eps: self.float_attr(&attrs, "eps")? },
            "rms-norm-weight-grad" => Op::RmsNormWeightGrad { eps: self.float_attr(&attrs, "eps")? },
            "rope" => Op::Rope {
                theta: self.float_attr(&attrs, "theta")?,
                position_scale: self.float_attr(&attrs, "position-scale")?,
                freqs: self.freqs_attr(&attrs, "freqs")?,
            },
            "rope-table" => Op::RopeTable,
            "cached-attention" => {
                let heads = self.head_masks_attr(&attrs)?;
                Op::CachedAttention { heads, scale: self.float_attr(&attrs, "scale")? }
            }
            "attention" | "masked-softmax" => {
                let head_offset = uint("head-offset")?;
                let mask = match attrs.values.get("mask") {
                    Some(Value::Str(text, span)) => self.mask(text, *span)?,
                    _ => return Err(missing("mask")),
                };
                let scale = self.float_attr(&attrs, "scale")?;
                if op == "attention" {
                    Op::Attention { mask, head_offset, scale }
                } else {
                    Op::MaskedSoftmax { mask, head_offset, scale }
                }
            }
            "fused-attention" | "fused-attention-grad" => {
                let heads = self.head_masks_attr(&attrs)?;
                let scale = self.float_attr(&attrs, "scale")?;
                // The two rope attributes come together or not at all.
                let rope = match (attrs.values.get("rope-theta"), attrs.values.get("rope-position-scale")) {
                    (None, None) => None,
                    (Some(Value::Float(theta)), Some(Value::Float(position_scale))) => Some(
                        RopeParams::new(*theta, *position_scale)
                            .with_freqs(self.freqs_attr(&attrs, "rope-freqs")?),
                    ),
                    (Some(_), _) => return Err(missing("rope-position-scale")),
                    (None, _) => return Err(missing("rope-theta")),
                };
                if op == "fused-attention" {
                    Op::FusedAttention { heads, scale, rope }
                } else {
                    let grad = match attrs.values.get("grad") {
                        Some(Value::Str(text, span)) => AttentionGrad::from_name(text).ok_or_else(|| {
                            self.error(*span, format!("`:grad` is dq, dk or dv, not {text:?}"))
                        })?,
                        _ => return Err(missing("grad")),
                    };
                    Op::FusedAttentionGrad { heads, scale, grad, rope }
                }
            }
            _ => return Err(self.error(span, format!("`{op}` is not an op with operands"))),
        })
    }

    /// An optional `:KEY "llama3:…"` (the default frequencies without it).
    fn freqs_attr(&self, attrs: &Attrs, key: &str) -> Result<RopeFreqs, GraphError> {
        match attrs.values.get(key) {
            None => Ok(RopeFreqs::Default),
            Some(Value::Str(text, span)) => text.parse().map_err(|why: String| self.error(*span, why)),
            Some(_) => Err(self.error(attrs.span, format!("`:{key}` takes a string"))),
        }
    }

    /// `:masks ((0 2 "causal") ...)`, each mask parsed.
    fn head_masks_attr(&self, attrs: &Attrs) -> Result<Vec<HeadMask>, GraphError> {
        let Some(Value::HeadMasks(entries)) = attrs.values.get("masks") else {
            return Err(self.error(attrs.span, format!("`{}` needs `:masks`", attrs.op)));
        };
        entries
            .iter()
            .map(|(start, end, text, span)| Ok(HeadMask::new(*start..*end, self.mask(text, *span)?)))
            .collect()
    }

    fn float_attr(&self, attrs: &Attrs, key: &str) -> Result<f64, GraphError> {
        match attrs.values.get(key) {
            Some(Value::Float(v)) => Ok(*v),
            _ => Err(self.error(attrs.span, format!("`{}` needs `:{key}`", attrs.op))),
        }
    }

    fn list_attr(&self, attrs: &Attrs, key: &str) -> Result<Vec<usize>, GraphError> {
        match attrs.values.get(key) {
            Some(Value::Uints(v)) => Ok(v.clone()),
            _ => Err(self.error(attrs.span, format!("`{}` needs `:{key}`", attrs.op))),
        }
    }

    /// Parses a mask string; errors point into the string when it has no escapes.
    fn mask(&self, text: &str, span: Span) -> Result<Mask, GraphError> {
        let raw = self.file.text.get(span.start..span.end).unwrap_or("");
        let ast = parse_mask(text).map_err(|e| {
            let at = if raw.contains('\\') { span } else { e.span.offset(span.start + 1) };
            self.error(at, format!("invalid mask {}: {e}", quoted_prefix(text)))
        })?;
        Mask::new(ast).map_err(|e| match e {
            NewMaskError::Unresolved(var) => {
                let text = quoted_prefix(text);
                self.error(
                    span,
                    format!("mask {text} mentions `{var}`; only `h`, the head index, may appear"),
                )
            }
            NewMaskError::TooComplex(kind) => self.error(span, format!("invalid mask: {kind}")),
        })
    }

    /// A name: a bare atom (not an id or attribute) or a string.
    fn name(&mut self, expected: &str) -> Result<(String, Span), GraphError> {
        let t = self.bump();
        match t.tok {
            Tok::Atom(s) if !s.starts_with(['%', ':']) => Ok((s, t.span)),
            Tok::Str(s) => Ok((s, t.span)),
            _ => Err(self.syntax(&t, expected)),
        }
    }

    /// A reference to a node defined earlier.
    fn operand(&mut self) -> Result<NodeId, GraphError> {
        let t = self.bump();
        match &t.tok {
            Tok::Atom(s) if s.starts_with('%') => match self.ids.get(s) {
                Some(&id) => Ok(id),
                None => Err(self.error(
                    t.span,
                    format!("undefined node `{s}`; nodes must be defined before they are used"),
                )),
            },
            _ => Err(self.syntax(&t, "a node id such as `%3`")),
        }
    }

    /// `f32[2, 4, 64, 16]` and its span.
    fn ty(&mut self) -> Result<(TensorType, Span), GraphError> {
        let t = self.bump();
        let dtype = match &t.tok {
            Tok::Atom(s) => DType::from_name(s),
            _ => None,
        };
        let Some(dtype) = dtype else {
            return Err(self.syntax(&t, "a type such as `f32[2, 4]` (dtypes: f32, f16, i32, i64)"));
        };
        self.expect(Tok::LBracket, "`[` and the shape")?;
        let mut shape = Vec::new();
        let end = if self.peek().tok == Tok::RBracket {
            self.bump()
        } else {
            loop {
                shape.push(self.uint("a dimension")?);
                let t = self.bump();
                match t.tok {
                    Tok::Comma => {}
                    Tok::RBracket => break t,
                    _ => return Err(self.syntax(&t, "`,` or `]`")),
                }
            }
        };
        Ok((TensorType { dtype, shape }, t.span.to(end.span)))
    }

    /// `((0 2 "causal") (2 4 "roll(8, causal)"))`: head ranges and their masks.
    fn head_masks(&mut self) -> Result<Vec<(usize, usize, String, Span)>, GraphError> {
        self.expect(Tok::LParen, "`(` and a list of `(start end \"mask\")` entries")?;
        let mut out = Vec::new();
        loop {
            let t = self.bump();
            match t.tok {
                Tok::RParen => return Ok(out),
                Tok::LParen => {}
                _ => return Err(self.syntax(&t, "`(start end \"mask\")` or `)`")),
            }
            let start = self.uint("the first head of the range")?;
            let end = self.uint("the end of the head range")?;
            let s = self.bump();
            let Tok::Str(text) = s.tok else {
                return Err(self.syntax(&s, "the range's mask as a quoted string"));
            };
            self.expect(Tok::RParen, "`)` after the mask")?;
            out.push((start, end, text, s.span));
        }
    }

    /// `(1 2 3)`; with `len`, exactly that many.
    fn uint_list(&mut self, len: Option<usize>) -> Result<Vec<usize>, GraphError> {
        self.expect(Tok::LParen, "`(` and a list of integers")?;
        let mut out = Vec::new();
        loop {
            if self.peek().tok == Tok::RParen && len.is_none_or(|n| out.len() == n) {
                self.bump();
                return Ok(out);
            }
            if len.is_some_and(|n| out.len() == n) {
                let t = self.peek().clone();
                return Err(self.syntax(&t, "`)`"));
            }
            out.push(self.uint("a non-negative integer")?);
        }
    }

    fn uint(&mut self, expected: &str) -> Result<usize, GraphError> {
        let t = self.bump();
        match &t.tok {
            Tok::Atom(s) if s.bytes().all(|b| b.is_ascii_digit()) => {
                s.parse().map_err(|_| self.error(t.span, format!("integer `{s}` is too large")))
            }
            _ => Err(self.syntax(&t, expected)),
        }
    }

    fn int(&mut self) -> Result<i64, GraphError> {
        let t = self.bump();
        match &t.tok {
            Tok::Atom(s) if is_int(s) => {
                s.parse().map_err(|_| self.error(t.span, format!("integer `{s}` is out of range")))
            }
            _ => Err(self.syntax(&t, "an integer")),
        }
    }

    fn float(&mut self) -> Result<f64, GraphError> {
        let t = self.bump();
        match &t.tok {
            Tok::Atom(s) => match s.parse::<f64>() {
                Ok(v) if v.is_finite() => Ok(v),
                _ => Err(self.syntax(&t, "a finite number")),
            },
            _ => Err(self.syntax(&t, "a finite number")),
        }
    }
}

/// What may follow an op's operands and attributes, for the error when `)` is missing.
fn close_expectation(is_leaf: bool, schema: Schema, attrs: &Attrs) -> String {
    let operands = !is_leaf && attrs.values.is_empty();
    match (operands, schema.is_empty()) {
        (true, true) => "an operand such as `%3` or `)`".into(),
        (true, false) => format!("an operand such as `%3`, an attribute ({}) or `)`", attr_list(schema)),
        (false, true) => "`)`".into(),
        (false, false) => format!("an attribute ({}) or `)`", attr_list(schema)),
    }
}

fn attr_list(schema: Schema) -> String {
    schema.iter().map(|(k, _)| format!("`:{k}`")).collect::<Vec<_>>().join(", ")
}

fn is_node_id(s: &str) -> bool {
    s.strip_prefix('%').is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
}

fn is_int(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// How a token reads in "found ..." messages.
fn describe(tok: &Tok) -> String {
    match tok {
        Tok::LParen => "`(`".into(),
        Tok::RParen => "`)`".into(),
        Tok::LBracket => "`[`".into(),
        Tok::RBracket => "`]`".into(),
        Tok::Comma => "`,`".into(),
        Tok::Atom(s) => format!("`{s}`"),
        Tok::Str(s) => format!("the string {s:?}"),
        Tok::Eof => "the end of the file".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> String {
        parse_sexpr(&SourceFile::new("g.sexpr", text)).expect_err("refused").to_string()
    }

    fn attention(mask: &str) -> String {
        format!(
            "(graph g\n  (%0 (input q) f32[1, 2, 8, 4])\n  (%1 (input k) f32[1, 2, 8, 4])\n  \
             (%2 (input v) f32[1, 2, 8, 4])\n  \
             (%3 (attention %0 %1 %2 :mask \"{mask}\" :head-offset 0 :scale 0.5) f32[1, 2, 8, 4])\n  \
             (output o %3))\n"
        )
    }

    #[test]
    fn masks_past_the_limits_are_refused_with_their_place() {
        assert!(
            parse_sexpr(&SourceFile::new("g.sexpr", attention(&format!("{}causal", "!".repeat(64))))).is_ok()
        );
        let bangs = attention(&format!("{}causal", "!".repeat(100_000)));
        let quoted = format!("{:?}…", "!".repeat(QUOTED_MASK_CHARS));
        assert_eq!(
            error(&bangs),
            format!("g.sexpr:5:98: invalid mask {quoted}: mask nested deeper than 64 levels")
        );
        let sizes = attention(&format!("window({}1)", "-".repeat(100_000)));
        assert!(
            error(&sizes).ends_with(": size expression nested deeper than 64 levels"),
            "{}",
            error(&sizes)
        );
        let group = format!("({})", ["causal"; 8].join(" & "));
        let wide = attention(&vec![group; 17].join(" | "));
        assert!(
            error(&wide).ends_with(": mask has 136 terms; the kernels take at most 128"),
            "{}",
            error(&wide)
        );
    }

    #[test]
    fn the_grammar_does_not_nest_so_deep_parentheses_are_a_syntax_error() {
        let deep = format!("(graph g {}{})", "(".repeat(100_000), ")".repeat(100_000));
        assert_eq!(error(&deep), "g.sexpr:1:11: expected a node id such as `%3` or `output`, found `(`");
    }
}
