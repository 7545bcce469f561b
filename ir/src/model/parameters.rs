//! The tensors a LLaMA checkpoint holds, by their Hugging Face names.

use super::config::LlamaConfig;

/// One weight tensor a checkpoint must hold: its Hugging Face name and shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParameterShape {
    pub name: String,
    pub shape: Vec<usize>,
}

impl ParameterShape {
    fn new(name: impl Into<String>, shape: &[usize]) -> ParameterShape {
        ParameterShape { name: name.into(), shape: shape.to_vec() }
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl LlamaConfig {
    /// Every tensor of `LlamaForCausalLM`'s state dict, in module order, with
    /// the shape transformers gives it. Linear weights are `[out, in]`
    /// (`nn.Linear` computes `y = x · Wᵀ`); with `D` = `head_dim`, `H` =
    /// `hidden_size`, `V` = `vocab_size`, `I` = `intermediate_size`:
    ///
    /// - `model.embed_tokens.weight` `[V, H]`
    /// - per layer `i`: `model.layers.{i}.input_layernorm.weight` `[H]`,
    ///   `self_attn.q_proj.weight` `[heads·D, H]`, `self_attn.k_proj.weight`
    ///   and `self_attn.v_proj.weight` `[kv_heads·D, H]`,
    ///   `self_attn.o_proj.weight` `[H, heads·D]`,
    ///   `post_attention_layernorm.weight` `[H]`, `mlp.gate_proj.weight` and
    ///   `mlp.up_proj.weight` `[I, H]`, `mlp.down_proj.weight` `[H, I]`
    /// - `model.norm.weight` `[H]`
    /// - `lm_head.weight` `[V, H]`, only when `tie_word_embeddings` is false.
    ///
    /// No bias tensors: LLaMA's projections have none.
    pub fn parameter_shapes(&self) -> Vec<ParameterShape> {
        let hidden = self.hidden_size;
        let q_width = self.num_attention_heads.saturating_mul(self.head_dim);
        let kv_width = self.num_key_value_heads.saturating_mul(self.head_dim);
        let inter = self.intermediate_size;
        let mut shapes = vec![ParameterShape::new("model.embed_tokens.weight", &[self.vocab_size, hidden])];
        for i in 0..self.num_hidden_layers {
            let layer = format!("model.layers.{i}");
            shapes.extend([
                ParameterShape::new(format!("{layer}.input_layernorm.weight"), &[hidden]),
                ParameterShape::new(format!("{layer}.self_attn.q_proj.weight"), &[q_width, hidden]),
                ParameterShape::new(format!("{layer}.self_attn.k_proj.weight"), &[kv_width, hidden]),
                ParameterShape::new(format!("{layer}.self_attn.v_proj.weight"), &[kv_width, hidden]),
                ParameterShape::new(format!("{layer}.self_attn.o_proj.weight"), &[hidden, q_width]),
                ParameterShape::new(format!("{layer}.post_attention_layernorm.weight"), &[hidden]),
                ParameterShape::new(format!("{layer}.mlp.gate_proj.weight"), &[inter, hidden]),
                ParameterShape::new(format!("{layer}.mlp.up_proj.weight"), &[inter, hidden]),
                ParameterShape::new(format!("{layer}.mlp.down_proj.weight"), &[hidden, inter]),
            ]);
        }
        shapes.push(ParameterShape::new("model.norm.weight", &[hidden]));
        if !self.tie_word_embeddings {
            shapes.push(ParameterShape::new("lm_head.weight", &[self.vocab_size, hidden]));
        }
        shapes
    }

    /// The number of weights in [`LlamaConfig::parameter_shapes`], counting
    /// tied embeddings once. Saturates for configs that failed validation.
    pub fn num_parameters(&self) -> u64 {
        self.checked_num_parameters().unwrap_or(u64::MAX)
    }

    /// Counted without listing the tensors, so absurd sizes are caught before
    /// anything is allocated for them.
    pub(super) fn checked_num_parameters(&self) -> Option<u64> {
        let [hidden, inter, heads, kv_heads, head_dim, layers, vocab] = [
            self.hidden_size,
            self.intermediate_size,
            self.num_attention_heads,
            self.num_key_value_heads,
            self.head_dim,
            self.num_hidden_layers,
            self.vocab_size,
        ]
        .map(|n| n as u64);
        let embedding = vocab.checked_mul(hidden)?;
        let attention =
            heads.checked_add(kv_heads)?.checked_mul(2)?.checked_mul(head_dim)?.checked_mul(hidden)?;
        let mlp = inter.checked_mul(hidden)?.checked_mul(3)?;
        let norms = hidden.checked_mul(2)?;
        let per_layer = attention.checked_add(mlp)?.checked_add(norms)?;
        let lm_head = if self.tie_word_embeddings { 0 } else { embedding };
        per_layer.checked_mul(layers)?.checked_add(embedding)?.checked_add(hidden)?.checked_add(lm_head)
    }
}
