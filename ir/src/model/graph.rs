//! The graph of a LLaMA forward pass (and its loss), from a [`LlamaConfig`].
//!
//! The graph spells the model the way transformers' `LlamaForCausalLM` runs it
//! (see the conventions in [`super`]), with LoRA adapters on the chosen
//! projections and each layer's attention mask from a spec [`Schedule`].
//! Parameters carry their Hugging Face names, so a checkpoint's tensors feed
//! the graph by name; LoRA factors are named like PEFT's, under the projection
//! they adapt (`model.layers.0.self_attn.q_proj.lora_A.weight`).

use std::collections::BTreeSet;

use super::activation::{GELU_TANH_CUBIC, GELU_TANH_SCALE, HiddenAct};
use super::config::LlamaConfig;
use super::error::ConfigErrorKind;
use crate::graph::{DType, Graph, GraphError, HeadMask, NodeId, Op, TensorType, UnaryOp, ValidGraph};
use crate::limits::{self, Origin, SizeError};
use crate::mask::Mask;
use crate::pattern::Schedule;

/// The projections LoRA may adapt, by their module names.
pub const LORA_MODULES: [&str; 4] = ["q_proj", "k_proj", "v_proj", "o_proj"];

/// LoRA on some attention projections: `y = x Wᵀ + s · (x Aᵀ) Bᵀ` with
/// `s = alpha / rank` (or `alpha / √rank` with `use_rslora`), `A [rank, in]`,
/// `B [out, rank]` (B starts at zero, so training starts from the base model).
#[derive(Clone, Debug, PartialEq)]
pub struct LoraConfig {
    pub rank: usize,
    pub alpha: f64,
    /// A subset of [`LORA_MODULES`], like PEFT's `target_modules`.
    pub target_modules: Vec<String>,
    /// Rank-stabilized LoRA (Kalajdzievski 2023, PEFT's `use_rslora`): scale
    /// by `alpha / √rank` instead of `alpha / rank`.
    pub use_rslora: bool,
}

impl LoraConfig {
    /// LongLoRA's LoRA, `weft train`'s default: rank 8, alpha 16, on q, k, v
    /// and o.
    pub fn longlora() -> Self {
        LoraConfig {
            rank: 8,
            alpha: 16.0,
            target_modules: ["q_proj", "k_proj", "v_proj", "o_proj"].map(String::from).to_vec(),
            use_rslora: false,
        }
    }

    /// The factor `s` of the low-rank update, as PEFT computes it.
    pub fn scaling(&self) -> f64 {
        let rank = self.rank as f64;
        if self.use_rslora { self.alpha / rank.sqrt() } else { self.alpha / rank }
    }
}

/// What the graph computes and which parameters train.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelGraphOptions {
    pub batch: usize,
    pub seq_len: usize,
    pub lora: Option<LoraConfig>,
    /// LongLoRA's `trainable_params = "embed,norm"`: the embedding (and an
    /// untied LM head stays frozen) and every RMSNorm weight also train.
    pub train_embed: bool,
    pub train_norm: bool,
    /// Full fine-tuning: every weight of the model trains (the LM head, the
    /// projections, the MLP, the embedding and the norms).
    pub train_all: bool,
    /// Also compute the mean next-token cross-entropy `loss` against the
    /// integer input `targets [B, T]` (negative targets are ignored).
    pub loss: bool,
    /// Output `logits`. A training step that reads only `loss` leaves it
    /// off, so that the `[B, T, vocab]` logits are a scratch buffer freed
    /// after the loss's gradient, not an output kept for the whole step.
    pub logits_output: bool,
    /// Also output every layer's keys (after RoPE) and values, before
    /// grouped-query attention repeats them: `present.{i}.key` and
    /// `present.{i}.value`, `[B, G, T, D]`. What a decoder's cache takes from
    /// the prefill.
    pub kv_outputs: bool,
    /// Only one position's logits per row: `logits [B, 1, vocab]` at the
    /// input `last_rows [B]` (integer), each an index into the `B·T` flattened
    /// positions (row `b`'s last prompt token is `b·T + len_b − 1`). A
    /// prefill needs no more, and skips the LM head everywhere else.
    pub last_logits: bool,
}

impl ModelGraphOptions {
    pub fn new(batch: usize, seq_len: usize) -> Self {
        ModelGraphOptions {
            batch,
            seq_len,
            lora: None,
            train_embed: false,
            train_norm: false,
            train_all: false,
            loss: false,
            logits_output: true,
            kv_outputs: false,
            last_logits: false,
        }
    }
}

/// Why a model graph could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ModelGraphError {
    #[error("LoRA target module `{module}` is not one of {}", LORA_MODULES.join(", "))]
    UnknownLoraModule { module: String },
    #[error("LoRA rank must be at least 1")]
    ZeroRank,
    #[error("batch and sequence length must be at least 1 (batch {batch}, seq_len {seq_len})")]
    EmptyInput { batch: usize, seq_len: usize },
    #[error("{found} cache sizes for a model of {layers} layers")]
    CacheLayers { found: usize, layers: usize },
    #[error("the schedule has no pattern for layer {layer} (the model has {layers} layers)")]
    NoPattern { layer: usize, layers: usize },
    #[error("layer {layer}: pattern `{pattern}` has {found} heads, but the model has {expected}")]
    HeadCount { layer: usize, pattern: String, found: usize, expected: usize },
    /// A config built in code whose sizes do not fit together.
    #[error("invalid config: {0}")]
    Config(#[from] ConfigErrorKind),
    #[error("building the graph: {0}")]
    Graph(#[from] GraphError),
    #[error("{0}")]
    Size(#[from] SizeError),
}

/// Nodes one layer adds besides its attention nodes (norms, projections, RoPE,
/// repeat_kv, SwiGLU, residuals, LoRA), a generous bound.
const NODES_PER_LAYER: u64 = 96;

/// Checks the sizes and their products before a node is added: the batch and
/// length, the LoRA rank, the node count and the widest activations.
fn check_sizes(
    config: &LlamaConfig,
    schedule: Option<&Schedule>,
    opts: &ModelGraphOptions,
) -> Result<(), SizeError> {
    limits::check(opts.batch as u64, Origin::key("batch"), &limits::BATCH)?;
    limits::check(opts.seq_len as u64, Origin::key("sequence length"), &limits::SEQ_LEN)?;
    if let Some(lora) = &opts.lora {
        limits::check(lora.rank as u64, Origin::key("LoRA rank"), &limits::LORA_RANK)?;
    }
    // One attention node per head range of the layer's pattern.
    let attention_nodes =
        schedule.map_or(1, |s| s.patterns.iter().map(|p| p.groups.len()).max().unwrap_or(1)) as u64;
    limits::check_product(
        &[config.num_hidden_layers as u64, NODES_PER_LAYER + attention_nodes],
        "the model graph's nodes (layers × nodes per layer)",
        &limits::GRAPH_NODES,
    )?;
    let tokens = [opts.batch as u64, opts.seq_len as u64];
    let widest =
        [config.hidden_size, config.intermediate_size, config.vocab_size].into_iter().max().unwrap_or(1)
            as u64;
    limits::check_product(
        &[tokens[0], tokens[1], widest],
        "the widest activation (batch × sequence × width)",
        &limits::ACTIVATION_ELEMENTS,
    )?;
    Ok(())
}

/// The graph of `config`'s forward pass on `input_ids [B, T]` (i32), with
/// output `logits [B, T, vocab]` and, with `opts.loss`, `loss []`.
///
/// Layer `i` attends with `schedule`'s pattern for layer `i` (its masks per
/// head range, resolved at `T`); without a schedule every layer is causal.
pub fn build_llama_graph(
    config: &LlamaConfig,
    schedule: Option<&Schedule>,
    opts: &ModelGraphOptions,
) -> Result<ValidGraph, ModelGraphError> {
    config.validate()?;
    if opts.batch == 0 || opts.seq_len == 0 {
        return Err(ModelGraphError::EmptyInput { batch: opts.batch, seq_len: opts.seq_len });
    }
    let lora_modules = lora_modules(opts)?;
    check_sizes(config, schedule, opts)?;
    let mut b = Builder { g: Graph::new("llama"), config, opts, lora_modules, decode: None };
    let (batch, t) = (opts.batch, opts.seq_len);
    let ids = b.g.input("input_ids", TensorType::new(DType::I32, [batch, t]));
    let logits = b.body(schedule, ids)?;
    if opts.loss {
        let targets = b.g.input("targets", TensorType::new(DType::I32, [batch, t]));
        let loss = b.g.add(Op::CrossEntropy, &[logits, targets])?;
        b.g.set_output("loss", loss);
    }
    Ok(b.g.validate()?)
}

/// A decoding step's graph: what it takes besides the model's weights.
#[derive(Clone, Debug, PartialEq)]
pub struct DecodeGraphOptions {
    pub batch: usize,
    /// Per layer, the slots of its KV cache (per row and KV head).
    pub cache_slots: Vec<usize>,
    pub lora: Option<LoraConfig>,
}

/// The graph of one decoding step: every row of the batch feeds one new token
/// (`input_ids [B, 1]`) at its own position (`positions [B]`, and
/// `rope_table [B, 1, 2, D]`: that position's rows of [`RopeParams::table`](crate::graph::RopeParams::table)
/// for the config's RoPE, computed by the caller), and layer
/// `i` attends over its cache, the inputs `cache.{i}.key`, `cache.{i}.value`
/// (`[B, G, C_i, D]`) and `cache.{i}.slots` (`[B, G, C_i]`, each slot's
/// position, -1 when empty), with [`Op::CachedAttention`]. Outputs: `logits
/// [B, 1, vocab]`, and per layer the new token's `present.{i}.key` and
/// `present.{i}.value` (`[B, G, 1, D]`), for the caller to store.
///
/// `schedule`'s masks are used as resolved: resolve it at the longest
/// sequence to be decoded.
pub fn build_llama_decode_graph(
    config: &LlamaConfig,
    schedule: Option<&Schedule>,
    decode: &DecodeGraphOptions,
) -> Result<ValidGraph, ModelGraphError> {
    config.validate()?;
    if decode.cache_slots.len() != config.num_hidden_layers {
        return Err(ModelGraphError::CacheLayers {
            found: decode.cache_slots.len(),
            layers: config.num_hidden_layers,
        });
    }
    let opts = ModelGraphOptions { lora: decode.lora.clone(), ..ModelGraphOptions::new(decode.batch, 1) };
    if opts.batch == 0 {
        return Err(ModelGraphError::EmptyInput { batch: opts.batch, seq_len: 1 });
    }
    let lora_modules = lora_modules(&opts)?;
    check_sizes(config, schedule, &opts)?;
    let mut b = Builder { g: Graph::new("llama-decode"), config, opts: &opts, lora_modules, decode: None };
    let batch = decode.batch;
    let ids = b.g.input("input_ids", TensorType::new(DType::I32, [batch, 1]));
    let positions = b.g.input("positions", TensorType::new(DType::I32, [batch]));
    let rope_table = b.g.input("rope_table", TensorType::f32([batch, 1, 2, config.head_dim]));
    b.decode = Some(DecodeLeaves { rope_table, positions, cache_slots: decode.cache_slots.clone() });
    b.body(schedule, ids)?;
    Ok(b.g.validate()?)
}

/// The LoRA modules `opts` adapts, checked.
fn lora_modules(opts: &ModelGraphOptions) -> Result<BTreeSet<String>, ModelGraphError> {
    let Some(lora) = &opts.lora else { return Ok(BTreeSet::new()) };
    if lora.rank == 0 {
        return Err(ModelGraphError::ZeroRank);
    }
    for module in &lora.target_modules {
        if !LORA_MODULES.contains(&module.as_str()) {
            return Err(ModelGraphError::UnknownLoraModule { module: module.clone() });
        }
    }
    Ok(lora.target_modules.iter().cloned().collect())
}

/// The leaves a decoding step's layers read.
struct DecodeLeaves {
    /// `[B, 1, 2, D]`: each row's rotation.
    rope_table: NodeId,
    /// `[B]`: each row's position, for the cached attention's masks.
    positions: NodeId,
    cache_slots: Vec<usize>,
}

impl Builder<'_> {
    /// Embedding, layers, final norm and LM head on `ids [B, T]`: the output `logits`.
    fn body(&mut self, schedule: Option<&Schedule>, ids: NodeId) -> Result<NodeId, ModelGraphError> {
        let (config, batch, t) = (self.config, self.opts.batch, self.opts.seq_len);
        let b = self;
        let embed = b.param(
            "model.embed_tokens.weight",
            &[config.vocab_size, config.hidden_size],
            b.opts.train_embed,
        );
        let x = b.g.add(Op::Embedding, &[ids, embed])?;
        let mut x = b.g.reshape(x, &[batch * t, config.hidden_size])?;
        for layer in 0..config.num_hidden_layers {
            let masks = b.layer_masks(schedule, layer)?;
            x = b.layer(layer, x, &masks)?;
        }
        let norm = b.param("model.norm.weight", &[config.hidden_size], b.opts.train_norm);
        let x = b.g.rms_norm(x, norm, config.rms_norm_eps)?;
        let head = if config.tie_word_embeddings {
            embed
        } else {
            b.param("lm_head.weight", &[config.vocab_size, config.hidden_size], false)
        };
        let logits = if b.opts.last_logits && b.decode.is_none() {
            // Row `last_rows[b]` of the [B·T, hidden] states, picked as an embedding picks rows.
            let rows = b.g.input("last_rows", TensorType::new(DType::I32, [batch]));
            let last = b.g.add(Op::Embedding, &[rows, x])?;
            let logits = b.g.matmul(last, head, false, true)?;
            b.g.reshape(logits, &[batch, 1, config.vocab_size])?
        } else {
            let logits = b.g.matmul(x, head, false, true)?;
            b.g.reshape(logits, &[batch, t, config.vocab_size])?
        };
        if b.opts.logits_output {
            b.g.set_output("logits", logits);
        }
        Ok(logits)
    }
}

struct Builder<'a> {
    g: Graph,
    config: &'a LlamaConfig,
    opts: &'a ModelGraphOptions,
    lora_modules: BTreeSet<String>,
    /// Set while building a decoding step.
    decode: Option<DecodeLeaves>,
}

impl Builder<'_> {
    /// A weight of the model; with `train_all` every weight trains.
    fn param(&mut self, name: &str, shape: &[usize], trainable: bool) -> NodeId {
        let trainable = trainable || self.opts.train_all;
        self.g.parameter(name, TensorType::f32(shape.to_vec()), trainable)
    }

    /// Layer `layer`'s masks by head range: the schedule's pattern, or causal.
    fn layer_masks(
        &self,
        schedule: Option<&Schedule>,
        layer: usize,
    ) -> Result<Vec<HeadMask>, ModelGraphError> {
        let heads = self.config.num_attention_heads;
        let Some(schedule) = schedule else {
            return Ok(vec![HeadMask::new(0..heads, Mask::causal())]);
        };
        let layers = self.config.num_hidden_layers;
        let pattern =
            schedule.pattern_for_layer(layer).ok_or(ModelGraphError::NoPattern { layer, layers })?;
        if pattern.n_heads() != heads {
            return Err(ModelGraphError::HeadCount {
                layer,
                pattern: pattern.name.clone(),
                found: pattern.n_heads(),
                expected: heads,
            });
        }
        Ok(pattern.groups.iter().map(|g| HeadMask::new(g.heads.clone(), g.mask.clone())).collect())
    }

    /// `x [B·T, in]` through projection `module` of layer `layer`, with LoRA if targeted.
    fn project(&mut self, layer: usize, module: &str, x: NodeId, out: usize) -> Result<NodeId, GraphError> {
        let family =
            if module.ends_with("_proj") && LORA_MODULES.contains(&module) { "self_attn" } else { "mlp" };
        let prefix = format!("model.layers.{layer}.{family}.{module}");
        let input = self.g.node(x).ty.shape[1];
        let w = self.param(&format!("{prefix}.weight"), &[out, input], false);
        let y = self.g.matmul(x, w, false, true)?;
        let Some(lora) = self.opts.lora.as_ref().filter(|_| self.lora_modules.contains(module)) else {
            return Ok(y);
        };
        let a = self.param(&format!("{prefix}.lora_A.weight"), &[lora.rank, input], true);
        let b = self.param(&format!("{prefix}.lora_B.weight"), &[out, lora.rank], true);
        let xa = self.g.matmul(x, a, false, true)?;
        let xab = self.g.matmul(xa, b, false, true)?;
        let scaled = self.g.scale(xab, lora.scaling())?;
        self.g.elementwise_add(y, scaled)
    }

    /// `hidden_act` applied to the MLP gate.
    fn activation(&mut self, x: NodeId) -> Result<NodeId, GraphError> {
        match self.config.hidden_act {
            HiddenAct::Silu => self.g.silu(x),
            // x Φ(x) = 0.5 (x + x erf(x / √2)).
            HiddenAct::Gelu => {
                let scaled = self.g.scale(x, std::f64::consts::FRAC_1_SQRT_2)?;
                let erf = self.g.add(Op::Unary(UnaryOp::Erf), &[scaled])?;
                let x_erf = self.g.elementwise_mul(x, erf)?;
                let sum = self.g.elementwise_add(x, x_erf)?;
                self.g.scale(sum, 0.5)
            }
            // 0.5 (1 + tanh z) = sigmoid(2z), so gelu_tanh(x) = x · sigmoid(2√(2/π) (x + 0.044715 x³)):
            // existing ops (and their gradients), no tanh needed.
            HiddenAct::GeluTanh => {
                let x2 = self.g.elementwise_mul(x, x)?;
                let x3 = self.g.elementwise_mul(x2, x)?;
                let cubic = self.g.scale(x3, GELU_TANH_CUBIC)?;
                let inner = self.g.elementwise_add(x, cubic)?;
                let z = self.g.scale(inner, 2.0 * GELU_TANH_SCALE)?;
                let gate = self.g.add(Op::Unary(UnaryOp::Sigmoid), &[z])?;
                self.g.elementwise_mul(x, gate)
            }
        }
    }

    /// `[B·T, n·D]` → `[B, n, T, D]`.
    fn split_heads(&mut self, x: NodeId, n: usize) -> Result<NodeId, GraphError> {
        let (batch, t, d) = (self.opts.batch, self.opts.seq_len, self.config.head_dim);
        let x = self.g.reshape(x, &[batch, t, n, d])?;
        self.g.permute(x, &[0, 2, 1, 3])
    }

    /// transformers' `repeat_kv`: key/value head `j` serves query heads `j·r .. (j+1)·r`.
    fn repeat_kv(&mut self, x: NodeId) -> Result<NodeId, GraphError> {
        let c = self.config;
        let repeats = c.num_attention_heads / c.num_key_value_heads;
        if repeats == 1 {
            return Ok(x);
        }
        let x = self.g.broadcast(x, 2, repeats)?;
        self.g.reshape(x, &[self.opts.batch, c.num_attention_heads, self.opts.seq_len, c.head_dim])
    }

    /// One attention node per head range, joined along the heads.
    fn attention(
        &mut self,
        q: NodeId,
        k: NodeId,
        v: NodeId,
        masks: &[HeadMask],
    ) -> Result<NodeId, GraphError> {
        let scale = 1.0 / (self.config.head_dim as f64).sqrt();
        if let [only] = masks {
            return self.g.attention(q, k, v, only.mask.clone(), only.heads.start, scale);
        }
        let mut outs = Vec::with_capacity(masks.len());
        for entry in masks {
            let (start, end) = (entry.heads.start, entry.heads.end);
            let (qs, ks, vs) = (
                self.g.slice(q, 1, start, end)?,
                self.g.slice(k, 1, start, end)?,
                self.g.slice(v, 1, start, end)?,
            );
            outs.push(self.g.attention(qs, ks, vs, entry.mask.clone(), start, scale)?);
        }
        self.g.concat(&outs, 1)
    }

    /// One decoder layer on the residual stream `x [B·T, hidden]`.
    fn layer(&mut self, layer: usize, x: NodeId, masks: &[HeadMask]) -> Result<NodeId, GraphError> {
        let c = self.config;
        let (hidden, heads, kv_heads, d) =
            (c.hidden_size, c.num_attention_heads, c.num_key_value_heads, c.head_dim);
        let rope = c.rope.params();
        let prefix = format!("model.layers.{layer}");

        let norm = self.param(&format!("{prefix}.input_layernorm.weight"), &[hidden], self.opts.train_norm);
        let h = self.g.rms_norm(x, norm, c.rms_norm_eps)?;
        let q = self.project(layer, "q_proj", h, heads * d)?;
        let k = self.project(layer, "k_proj", h, kv_heads * d)?;
        let v = self.project(layer, "v_proj", h, kv_heads * d)?;
        let q = self.split_heads(q, heads)?;
        let k = self.split_heads(k, kv_heads)?;
        let v = self.split_heads(v, kv_heads)?;
        let (q, k) = match &self.decode {
            None => (self.g.rope_with(q, rope)?, self.g.rope_with(k, rope)?),
            Some(decode) => {
                let table = decode.rope_table;
                (self.g.add(Op::RopeTable, &[q, table])?, self.g.add(Op::RopeTable, &[k, table])?)
            }
        };
        if self.opts.kv_outputs || self.decode.is_some() {
            self.g.set_output(&format!("present.{layer}.key"), k);
            self.g.set_output(&format!("present.{layer}.value"), v);
        }
        let o = match &self.decode {
            None => {
                let (k, v) = (self.repeat_kv(k)?, self.repeat_kv(v)?);
                self.attention(q, k, v, masks)?
            }
            Some(decode) => {
                let (batch, slots) = (self.opts.batch, decode.cache_slots[layer]);
                let positions = decode.positions;
                let cache = |g: &mut Graph, what: &str, dtype, shape: Vec<usize>| {
                    g.input(&format!("cache.{layer}.{what}"), TensorType::new(dtype, shape))
                };
                let k_cache = cache(&mut self.g, "key", DType::F32, vec![batch, kv_heads, slots, d]);
                let v_cache = cache(&mut self.g, "value", DType::F32, vec![batch, kv_heads, slots, d]);
                let slot_positions = cache(&mut self.g, "slots", DType::I32, vec![batch, kv_heads, slots]);
                let scale = 1.0 / (d as f64).sqrt();
                let op = Op::CachedAttention { heads: masks.to_vec(), scale };
                self.g.add(op, &[q, k, v, k_cache, v_cache, slot_positions, positions])?
            }
        };
        let o = self.g.permute(o, &[0, 2, 1, 3])?;
        let o = self.g.reshape(o, &[self.opts.batch * self.opts.seq_len, heads * d])?;
        let o = self.project(layer, "o_proj", o, hidden)?;
        let x = self.g.elementwise_add(x, o)?;

        let norm =
            self.param(&format!("{prefix}.post_attention_layernorm.weight"), &[hidden], self.opts.train_norm);
        let h = self.g.rms_norm(x, norm, c.rms_norm_eps)?;
        let gate = self.project(layer, "gate_proj", h, c.intermediate_size)?;
        let gate = self.activation(gate)?;
        let up = self.project(layer, "up_proj", h, c.intermediate_size)?;
        let act = self.g.elementwise_mul(gate, up)?;
        let down = self.project(layer, "down_proj", act, hidden)?;
        self.g.elementwise_add(x, down)
    }
}

#[cfg(test)]
mod size_tests {
    use super::*;

    fn config() -> LlamaConfig {
        let text = r#"{"hidden_size": 64, "intermediate_size": 176, "num_attention_heads": 4,
            "num_hidden_layers": 2, "vocab_size": 1000000, "max_position_embeddings": 256, "rms_norm_eps": 1e-6}"#;
        LlamaConfig::from_json_str(text, "c.json").expect("a valid config")
    }

    #[test]
    fn activations_are_checked_before_a_node_is_added() {
        let opts = ModelGraphOptions::new(65536, 1 << 20);
        let e = build_llama_graph(&config(), None, &opts).unwrap_err();
        assert!(matches!(e, ModelGraphError::Size(_)), "{e}");
        assert!(e.to_string().contains("65536 × 1048576 × 1000000"), "{e}");
    }

    #[test]
    fn a_huge_lora_rank_is_refused() {
        let lora = LoraConfig {
            rank: 1 << 20,
            alpha: 1.0,
            target_modules: vec!["q_proj".into()],
            use_rslora: false,
        };
        let opts = ModelGraphOptions { lora: Some(lora), ..ModelGraphOptions::new(1, 8) };
        let e = build_llama_graph(&config(), None, &opts).unwrap_err();
        assert!(e.to_string().contains("LoRA rank = 1048576 is larger than the limit 4096"), "{e}");
    }
}
