//! The e-graph language: weft's graph ops, the fused attention node, masks and
//! their sizes, all as terms, so that rules can rewrite masks as well as tensors.
//!
//! Attributes are children, not payloads: an axis or a shift is a [`Weft::Num`]
//! leaf, a shape a `(list ...)` of them, a mask a tree of `m-*` nodes. Patterns
//! can then bind and compare them (`(roll ?axis ?a ?heads (roll ?axis ?b ?heads ?x))`).
//!
//! ```text
//! tensor := (input NAME DTYPE (list D...)) | (param NAME DTYPE (list D...) TRAINABLE)
//!         | (matmul TA TB a b) | (add a b) | (mul a b) | (scale F x) | (unary NAME x)
//!         | (rms-norm-grad EPS x w dy) | (rms-norm-weight-grad EPS x dy)
//!         | (embedding ids table) | (embedding-grad VOCAB ids dy)
//!         | (cross-entropy logits targets) | (cross-entropy-grad logits targets dloss)
//!         | (reshape (list D...) x) | (permute (list P...) x)
//!         | (roll AXIS SHIFT HEADS x) | (slice AXIS START END x) | (concat AXIS x...)
//!         | (softmax AXIS x) | (reduce-sum AXIS x) | (reduce-max AXIS x) | (reduce-mean AXIS x)
//!         | (softmax-grad AXIS y dy) | (broadcast AXIS SIZE x) | (pad AXIS BEFORE AFTER x)
//!         | (masked-softmax SCALE MASK s)         ; head i of s uses MASK at h = i
//!         | (rms-norm EPS x w) | (rope THETA POSITION-SCALE FREQS x)
//!         | (attention SCALE MASK q k v)          ; head i of q uses MASK at h = i
//!         | (fused-attention SCALE (head-masks (entry START END MASK)...) q k v)
//!         | (fused-attention-grad GRAD SCALE (head-masks ...) q k v do)   ; GRAD 0, 1, 2: dq, dk, dv
//!         | (fused-attention-rope SCALE THETA POSITION-SCALE FREQS (head-masks ...) q k v)
//!         | (fused-attention-grad-rope GRAD SCALE THETA POSITION-SCALE FREQS (head-masks ...) q k v do)
//! FREQS  := default | llama3:FACTOR:LOW:HIGH:CONTEXT   ; a name (`RopeFreqs`'s display)
//! HEADS  := all | (heads AXIS START END)
//! MASK   := m-full | m-causal | (m-window S) | (m-sink S) | (m-groups S S)
//!         | (m-local-stride S S S S) | (m-roll N S MASK) | (m-not MASK)
//!         | (m-and MASK MASK) | (m-or MASK MASK)
//! S      := INT | h | (+ S S) | (- S S) | (* S S) | (/ S S) | (% S S) | (neg S)
//! ```
//!
//! `m-roll` records the sequence length `N` it rolls modulo, so a mask term
//! means the same wherever it appears (a graph's `roll(o, m)` has `N` from its
//! attention node). The `head_offset` of attention and masked softmax is folded into the mask when a
//! graph is converted (`h` becomes `h + offset`), so every head index in the
//! e-graph is the index on the node's own head axis.

use std::fmt;
use std::str::FromStr;

use egg::{Id, Symbol, define_language};

define_language! {
    /// weft's e-graph language; see the module docs for the grammar.
    pub enum Weft {
        "input" = Input([Id; 3]),
        "param" = Param([Id; 4]),
        "matmul" = MatMul([Id; 4]),
        "add" = Add([Id; 2]),
        "mul" = Mul([Id; 2]),
        "scale" = Scale([Id; 2]),
        // Every elementwise unary op (`weft_ir::graph::UnaryOp`), named by its first child.
        "unary" = Unary([Id; 2]),
        "embedding" = Embedding([Id; 2]),
        "embedding-grad" = EmbeddingGrad([Id; 3]),
        "cross-entropy" = CrossEntropy([Id; 2]),
        "cross-entropy-grad" = CrossEntropyGrad([Id; 3]),
        "rms-norm-grad" = RmsNormGrad([Id; 4]),
        "rms-norm-weight-grad" = RmsNormWeightGrad([Id; 3]),
        "reshape" = Reshape([Id; 2]),
        "permute" = Permute([Id; 2]),
        "roll" = Roll([Id; 4]),
        "slice" = Slice([Id; 4]),
        "concat" = Concat(Box<[Id]>),
        "softmax" = Softmax([Id; 2]),
        "softmax-grad" = SoftmaxGrad([Id; 3]),
        "masked-softmax" = MaskedSoftmax([Id; 3]),
        "broadcast" = Broadcast([Id; 3]),
        "pad" = Pad([Id; 4]),
        "reduce-sum" = ReduceSum([Id; 2]),
        "reduce-max" = ReduceMax([Id; 2]),
        "reduce-mean" = ReduceMean([Id; 2]),
        "rms-norm" = RmsNorm([Id; 3]),
        "rope" = Rope([Id; 4]),
        "attention" = Attention([Id; 5]),
        "fused-attention" = FusedAttention([Id; 5]),
        "fused-attention-grad" = FusedAttentionGrad([Id; 7]),
        // RoPE on load: their own nodes, so the rules on plain fused attention stay as they are.
        "fused-attention-rope" = FusedAttentionRope([Id; 8]),
        "fused-attention-grad-rope" = FusedAttentionGradRope([Id; 10]),

        "list" = List(Box<[Id]>),
        "all" = AllHeads,
        "heads" = Heads([Id; 3]),
        "head-masks" = HeadMasks(Box<[Id]>),
        "entry" = Entry([Id; 3]),

        "m-full" = MFull,
        "m-causal" = MCausal,
        "m-window" = MWindow(Id),
        "m-sink" = MSink(Id),
        "m-groups" = MGroups([Id; 2]),
        "m-local-stride" = MLocalStride([Id; 4]),
        "m-roll" = MRoll([Id; 3]),
        "m-not" = MNot(Id),
        "m-and" = MAnd([Id; 2]),
        "m-or" = MOr([Id; 2]),

        "h" = HeadIndex,
        "+" = SAdd([Id; 2]),
        "-" = SSub([Id; 2]),
        "*" = SMul([Id; 2]),
        "/" = SDiv([Id; 2]),
        "%" = SRem([Id; 2]),
        "neg" = SNeg(Id),

        // Leaves last: the parser tries variants in order and a symbol accepts anything.
        Num(i64),
        Float(Float),
        Name(Symbol),
    }
}

impl Weft {
    /// Whether the node computes a tensor (as opposed to an attribute, a mask or a size).
    pub fn is_tensor(&self) -> bool {
        use Weft::*;
        matches!(
            self,
            Input(_)
                | Param(_)
                | MatMul(_)
                | Add(_)
                | Mul(_)
                | Scale(_)
                | Unary(_)
                | Embedding(_)
                | EmbeddingGrad(_)
                | CrossEntropy(_)
                | CrossEntropyGrad(_)
                | RmsNormGrad(_)
                | RmsNormWeightGrad(_)
                | Reshape(_)
                | Permute(_)
                | Roll(_)
                | Slice(_)
                | Concat(_)
                | Softmax(_)
                | SoftmaxGrad(_)
                | MaskedSoftmax(_)
                | Broadcast(_)
                | Pad(_)
                | ReduceSum(_)
                | ReduceMax(_)
                | ReduceMean(_)
                | RmsNorm(_)
                | Rope(_)
                | Attention(_)
                | FusedAttention(_)
                | FusedAttentionGrad(_)
                | FusedAttentionRope(_)
                | FusedAttentionGradRope(_)
        )
    }
}

/// An `f64` leaf (scales, epsilons), compared and hashed by its bits so it can
/// live in an e-graph; printed in Rust's shortest round-trip form.
#[derive(Clone, Copy, Debug)]
pub struct Float(pub f64);

impl PartialEq for Float {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}
impl Eq for Float {}
impl std::hash::Hash for Float {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.to_bits().hash(state)
    }
}
impl PartialOrd for Float {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Float {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

impl fmt::Display for Float {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// Accepts finite numbers only, and only text with a digit in it, so that names
/// such as `inf` stay names.
impl FromStr for Float {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.parse::<f64>() {
            Ok(v) if v.is_finite() && s.bytes().any(|b| b.is_ascii_digit()) => Ok(Float(v)),
            _ => Err(format!("`{s}` is not a finite number")),
        }
    }
}

#[cfg(test)]
mod tests {
    use egg::RecExpr;

    use super::*;

    #[test]
    fn terms_print_and_parse_back() {
        let text = "(fused-attention 0.25 (head-masks (entry 0 2 (m-and m-causal (m-groups 16 0))) \
                    (entry 2 4 (m-roll 64 8 (m-local-stride 64 16 8 (+ h 2))))) \
                    (roll 2 -8 (heads 1 2 4) (input q f32 (list 2 4 64 8))) \
                    (input k f32 (list 2 4 64 8)) (input v f32 (list 2 4 64 8)))";
        let expr: RecExpr<Weft> = text.parse().unwrap();
        let again: RecExpr<Weft> = expr.to_string().parse().unwrap();
        assert_eq!(expr, again);
        assert!(expr.to_string().contains("(roll 2 -8 (heads 1 2 4)"), "{expr}");
        assert!(matches!(expr[expr.root()], Weft::FusedAttention(_)));
    }

    #[test]
    fn floats_are_leaves_of_their_own() {
        assert_eq!("0.25".parse::<Float>(), Ok(Float(0.25)));
        assert_eq!("1e-6".parse::<Float>(), Ok(Float(1e-6)));
        assert!("inf".parse::<Float>().is_err());
        assert_eq!(Float(1.0).to_string(), "1.0");
        let expr: RecExpr<Weft> = "(scale 1.0 (input x f32 (list 2)))".parse().unwrap();
        assert!(expr.as_ref().iter().any(|n| matches!(n, Weft::Float(Float(1.0)))));
        assert!(expr.as_ref().iter().any(|n| matches!(n, Weft::Num(2))));
    }
}
