//! A tiny LLaMA configuration, an S²-Attn schedule and a LoRA setup shared by
//! the model tests.

use weft_ir::model::{LlamaConfig, LoraConfig};
use weft_ir::{Overrides, Schedule, SourceFile, Spec};

/// Two layers, 4 query heads sharing 2 key/value heads, head_dim 4, linear RoPE scaling.
pub fn tiny_config(tied: bool) -> LlamaConfig {
    let json = format!(
        r#"{{
            "architectures": ["LlamaForCausalLM"], "model_type": "llama",
            "hidden_size": 16, "intermediate_size": 24, "num_attention_heads": 4,
            "num_key_value_heads": 2, "num_hidden_layers": 2, "rms_norm_eps": 1e-5,
            "vocab_size": 11, "max_position_embeddings": 64, "tie_word_embeddings": {tied},
            "rope_theta": 500.0, "rope_scaling": {{"type": "linear", "factor": 2.0}}
        }}"#
    );
    LlamaConfig::from_json_str(&json, "config.json").unwrap()
}

/// S²-Attn on layer 0 (heads 2..4 shifted by half a group), causal on layer 1.
pub fn schedule(seq_len: usize) -> Schedule {
    let text = r#"
        [defaults]
        seq_len = 16
        n_heads = 4
        n_layers = 2
        [vars]
        G = "N / 4"
        [patterns.s2]
        heads = [{ range = "0..H/2", mask = "causal & groups(G)" }, { range = "H/2..H", mask = "roll(G/2, causal & groups(G))" }]
        [patterns.dense]
        heads = [{ range = "0..H", mask = "causal" }]
        [[layers]]
        range = "0..1"
        pattern = "s2"
        [[layers]]
        range = "1..2"
        pattern = "dense"
    "#;
    let overrides = Overrides { seq_len: Some(seq_len), ..Overrides::default() };
    Spec::parse(SourceFile::new("s2.toml", text)).unwrap().resolve(&overrides).unwrap()
}

pub fn lora() -> LoraConfig {
    LoraConfig {
        rank: 2,
        alpha: 8.0,
        target_modules: vec!["q_proj".into(), "v_proj".into(), "o_proj".into()],
        use_rslora: false,
    }
}
