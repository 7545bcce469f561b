//! A LLaMA model's sizes, read from a Hugging Face `config.json`.

use std::path::Path;

use super::activation::{HiddenAct, read_hidden_act};
use super::error::{ConfigError, ConfigErrorKind};
use super::fields::{check_keys, unknown_keys};
use super::json::Fields;
use super::rope::{Rope, RopeScaling, read_rope};
use crate::limits::{self, Limit, Origin};

/// The sizes and settings of a LLaMA-family model, as transformers'
/// `LlamaConfig` holds them.
///
/// Keys read from `config.json` (keys that change the math in ways weft does
/// not implement, such as `attention_bias: true`, are refused, see
/// `fields.rs`; unknown keys are ignored):
///
/// | key | required | default |
/// |---|---|---|
/// | `hidden_size`, `intermediate_size`, `num_attention_heads`, `num_hidden_layers`, `vocab_size`, `max_position_embeddings`, `rms_norm_eps` | yes | |
/// | `num_key_value_heads` | no | `num_attention_heads` (no GQA) |
/// | `head_dim` | no | `hidden_size / num_attention_heads` |
/// | `tie_word_embeddings` | no | `false` |
/// | `rope_theta`, `rope_scaling`, `rope_parameters` | no | theta 10000, no scaling ([`Rope`]) |
/// | `hidden_act` | no | `"silu"` ([`HiddenAct`]) |
///
/// transformers has defaults for the required keys too (a 7B model's), but a
/// file without them almost surely is not the file meant, so weft asks for
/// them. A `null` value counts as absent.
#[derive(Clone, Debug, PartialEq)]
pub struct LlamaConfig {
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_attention_heads: usize,
    /// Key/value heads; fewer than `num_attention_heads` is grouped-query
    /// attention, each key/value head shared by `num_attention_heads /
    /// num_key_value_heads` consecutive query heads.
    pub num_key_value_heads: usize,
    /// Channels per head. Need not be `hidden_size / num_attention_heads` when
    /// the file gives it.
    pub head_dim: usize,
    pub num_hidden_layers: usize,
    pub rms_norm_eps: f64,
    pub vocab_size: usize,
    /// Whether the LM head reuses `model.embed_tokens.weight` (then the
    /// checkpoint needs no `lm_head.weight`).
    pub tie_word_embeddings: bool,
    pub max_position_embeddings: usize,
    pub rope: Rope,
    /// The MLP gate's activation.
    pub hidden_act: HiddenAct,
}

impl LlamaConfig {
    /// Reads and checks a `config.json`.
    pub fn from_file(path: &Path) -> Result<LlamaConfig, ConfigError> {
        Ok(LlamaConfig::from_file_with_unknown_keys(path)?.0)
    }

    /// Reads and checks a `config.json`, also returning the keys weft does
    /// not know and therefore ignored (for the user to see).
    pub fn from_file_with_unknown_keys(path: &Path) -> Result<(LlamaConfig, Vec<String>), ConfigError> {
        let file = path.display().to_string();
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Io { file: file.clone(), source })?;
        LlamaConfig::from_json_str_with_unknown_keys(&text, &file)
    }

    /// Parses and checks `config.json` text; `source_name` names it in errors.
    pub fn from_json_str(text: &str, source_name: &str) -> Result<LlamaConfig, ConfigError> {
        Ok(LlamaConfig::from_json_str_with_unknown_keys(text, source_name)?.0)
    }

    /// [`LlamaConfig::from_json_str`], also returning the ignored unknown keys.
    pub fn from_json_str_with_unknown_keys(
        text: &str,
        source_name: &str,
    ) -> Result<(LlamaConfig, Vec<String>), ConfigError> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
            // serde_json appends " at line L column C"; the position goes up front instead.
            let full = e.to_string();
            let suffix = format!(" at line {} column {}", e.line(), e.column());
            let message = full.strip_suffix(&suffix).unwrap_or(&full).to_string();
            ConfigError::Json { file: source_name.into(), line: e.line(), column: e.column(), message }
        })?;
        let config =
            read_config(&value).map_err(|kind| ConfigError::Invalid { file: source_name.into(), kind })?;
        Ok((config, unknown_keys(&value)))
    }

    /// Checks the relations between the sizes; [`LlamaConfig::from_json_str`]
    /// already did, this is for configs built in code.
    pub fn validate(&self) -> Result<(), ConfigErrorKind> {
        self.check("head_dim")
    }

    fn check(&self, head_dim_source: &'static str) -> Result<(), ConfigErrorKind> {
        let sizes = [
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.num_key_value_heads),
            ("head_dim", self.head_dim),
            ("num_hidden_layers", self.num_hidden_layers),
            ("vocab_size", self.vocab_size),
            ("max_position_embeddings", self.max_position_embeddings),
        ];
        if let Some((key, _)) = sizes.iter().find(|(_, size)| *size == 0) {
            return Err(ConfigErrorKind::Zero { key: (*key).into() });
        }
        for (key, size) in sizes {
            limits::check(size as u64, Origin::key(key), &size_limit(key))
                .map_err(ConfigErrorKind::TooLargeSize)?;
        }
        let mut numbers = vec![("rms_norm_eps", self.rms_norm_eps), ("rope_theta", self.rope.theta)];
        if let RopeScaling::Linear { factor } = self.rope.scaling {
            numbers.push(("rope_scaling.factor", factor));
        }
        if let Some((key, value)) = numbers.iter().find(|(_, v)| !(v.is_finite() && *v > 0.0)) {
            return Err(ConfigErrorKind::NotPositive { key: (*key).into(), value: *value });
        }
        if !self.num_attention_heads.is_multiple_of(self.num_key_value_heads) {
            return Err(ConfigErrorKind::KvHeadsDoNotDivideHeads {
                heads: self.num_attention_heads,
                kv_heads: self.num_key_value_heads,
            });
        }
        if !self.head_dim.is_multiple_of(2) {
            return Err(ConfigErrorKind::OddHeadDim { head_dim: self.head_dim, source_of: head_dim_source });
        }
        if self.checked_num_parameters().is_none() {
            return Err(ConfigErrorKind::TooLarge);
        }
        Ok(())
    }
}

/// The limit on a size key of `config.json`.
fn size_limit(key: &str) -> Limit {
    match key {
        "hidden_size" => limits::HIDDEN,
        "intermediate_size" => limits::INTERMEDIATE,
        "num_attention_heads" | "num_key_value_heads" => limits::HEADS,
        "head_dim" => limits::HEAD_DIM,
        "num_hidden_layers" => limits::LAYERS,
        "vocab_size" => limits::VOCAB,
        // Positions a model was trained for; longer contexts than weft runs are fine to state.
        _ => Limit { max: u64::MAX, ..limits::SEQ_LEN },
    }
}

fn read_config(value: &serde_json::Value) -> Result<LlamaConfig, ConfigErrorKind> {
    let fields = Fields::top(value)?;
    check_keys(&fields)?;
    let hidden_size = fields.size("hidden_size")?;
    let num_attention_heads = fields.size("num_attention_heads")?;
    let (head_dim, head_dim_source) = match fields.optional_size("head_dim")? {
        Some(head_dim) => (head_dim, "head_dim"),
        None if hidden_size.is_multiple_of(num_attention_heads) => {
            (hidden_size / num_attention_heads, "hidden_size / num_attention_heads")
        }
        None => {
            return Err(ConfigErrorKind::HeadsDoNotDivideHidden { hidden_size, heads: num_attention_heads });
        }
    };
    let config = LlamaConfig {
        hidden_size,
        intermediate_size: fields.size("intermediate_size")?,
        num_attention_heads,
        num_key_value_heads: fields.optional_size("num_key_value_heads")?.unwrap_or(num_attention_heads),
        head_dim,
        num_hidden_layers: fields.size("num_hidden_layers")?,
        rms_norm_eps: fields.positive("rms_norm_eps")?,
        vocab_size: fields.size("vocab_size")?,
        tie_word_embeddings: fields.optional_bool("tie_word_embeddings")?.unwrap_or(false),
        max_position_embeddings: fields.size("max_position_embeddings")?,
        rope: read_rope(&fields)?,
        hidden_act: read_hidden_act(&fields)?,
    };
    config.check(head_dim_source)?;
    Ok(config)
}

#[cfg(test)]
mod limit_tests {
    use super::*;

    fn config(layers: &str, vocab: &str) -> String {
        format!(
            r#"{{"hidden_size": 8192, "intermediate_size": 28672, "num_attention_heads": 32,
                "num_key_value_heads": 8, "head_dim": 256, "num_hidden_layers": {layers},
                "vocab_size": {vocab}, "max_position_embeddings": 131072, "rms_norm_eps": 1e-5}}"#
        )
    }

    #[test]
    fn real_sizes_pass_and_huge_ones_name_key_file_and_limit() {
        assert!(LlamaConfig::from_json_str(&config("128", "256000"), "c.json").is_ok());
        let e = LlamaConfig::from_json_str(&config("1000000000", "256000"), "m/config.json").unwrap_err();
        assert!(matches!(e.kind(), Some(ConfigErrorKind::TooLargeSize(_))), "{e}");
        assert!(
            e.to_string()
                .starts_with("m/config.json: num_hidden_layers = 1000000000 is larger than the limit 1024"),
            "{e}"
        );
    }
}
