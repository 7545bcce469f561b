//! LLaMA-family models as Hugging Face describes them.
//!
//! [`LlamaConfig`] is read from a `config.json`; its
//! [`parameter_shapes`](LlamaConfig::parameter_shapes) list the tensors a
//! `model.safetensors` must hold, and [`build_llama_graph`] spells its forward
//! pass (with LoRA and per-layer attention patterns) as a graph. The loading
//! of the tensors lives in the runtime crate; this module is pure data.
//!
//! # Conventions
//! weft follows transformers' `LlamaForCausalLM` (`modeling_llama.py`):
//! - Tensor names and shapes are its state-dict keys; linear weights are
//!   `[out_features, in_features]` as `nn.Linear` stores them, `y = x · Wᵀ`,
//!   and no projection has a bias (`attention_bias` and `mlp_bias` must be
//!   false).
//! - The MLP is `down(act(gate(x)) * up(x))` with `act` from `hidden_act`
//!   ([`HiddenAct`]: SiLU, GELU or its tanh approximation).
//! - Every `config.json` key that changes the math is read or refused
//!   (`fields.rs`, docs/model-fields.md); unknown keys are ignored and
//!   listed by [`unknown_keys`].
//! - With tied embeddings the LM head is `model.embed_tokens.weight`, and a
//!   checkpoint's own `lm_head.weight`, if any, is not used.
//! - RoPE is the rotate-half form on `head_dim` channels: with
//!   `inv_freq[i] = theta^(-2i / head_dim)` for `i < head_dim / 2` and angle
//!   `(p / position_scale) · inv_freq[i]` at position `p`, channels `i` and
//!   `i + head_dim / 2` are rotated together (`x·cos + rotate_half(x)·sin`,
//!   `rotate_half(x) = [-x₂, x₁]`). Linear scaling divides positions by
//!   `factor`, exactly as transformers' `"linear"` rope type divides
//!   `inv_freq`.
//! - Grouped-query attention: query head `h` uses key/value head
//!   `h / (num_attention_heads / num_key_value_heads)` (`repeat_kv`).

mod activation;
mod config;
mod error;
mod fields;
mod graph;
mod json;
mod parameters;
mod rope;

pub use activation::{GELU_TANH_CUBIC, GELU_TANH_SCALE, HiddenAct};
pub use config::LlamaConfig;
pub use error::{ConfigError, ConfigErrorKind};
pub use fields::unknown_keys;
pub use graph::{
    DecodeGraphOptions, LORA_MODULES, LoraConfig, ModelGraphError, ModelGraphOptions,
    build_llama_decode_graph, build_llama_graph,
};
pub use parameters::ParameterShape;
pub use rope::{DEFAULT_ROPE_THETA, Rope, RopeScaling};
