//! PEFT's `modules_to_save`: whole modules an adapter replaces.
//!
//! PEFT wraps every module whose name *ends in* an entry of
//! `modules_to_save` (`key.endswith(name)`, no dot needed, so `norm` covers
//! `input_layernorm`, `post_attention_layernorm` and `model.norm`), trains a
//! copy of it, and saves the copy's weight under the module's own name
//! (`base_model.model.model.norm.weight`, `modules_to_save.default` stripped).
//! weft replaces the base tensors of that name before upload.
//!
//! A listed module whose tensor the file lacks keeps the base weight, as PEFT
//! before 0.15 did (its copy starts as the base's); PEFT 0.15 and later fail
//! on such a file with a `KeyError`, so only hand-made adapters have one.
//!
//! Tied embeddings (`tie_word_embeddings`): PEFT gives `embed_tokens` and
//! `lm_head` each its own copy, so replacing one unties them (the other keeps
//! the base weight), unless `ensure_weight_tying` is set, which ties the LM
//! head to the saved embedding. [`apply_saved_modules`] does the same, and
//! returns the config with `tie_word_embeddings` false when they come apart.

use std::collections::BTreeMap;

use weft_ir::model::{LlamaConfig, ParameterShape};

/// The modules weft lets an adapter replace: the names `modules_to_save` may list.
pub const SAVABLE_MODULES: [&str; 5] =
    ["embed_tokens", "norm", "input_layernorm", "post_attention_layernorm", "lm_head"];

pub(crate) const EMBED: &str = "model.embed_tokens.weight";
pub(crate) const LM_HEAD: &str = "lm_head.weight";

/// Every module of `config`'s model an entry of [`SAVABLE_MODULES`] can
/// match, by its full name, with its one weight. `lm_head` is listed even
/// when tied: the module exists, and PEFT would wrap it.
fn replaceable(config: &LlamaConfig) -> Vec<(String, ParameterShape)> {
    let (vocab, hidden) = (config.vocab_size, config.hidden_size);
    let weight = |module: &str, shape: &[usize]| {
        (module.to_string(), ParameterShape { name: format!("{module}.weight"), shape: shape.to_vec() })
    };
    let mut modules = vec![weight("model.embed_tokens", &[vocab, hidden])];
    for i in 0..config.num_hidden_layers {
        modules.push(weight(&format!("model.layers.{i}.input_layernorm"), &[hidden]));
        modules.push(weight(&format!("model.layers.{i}.post_attention_layernorm"), &[hidden]));
    }
    modules.push(weight("model.norm", &[hidden]));
    modules.push(weight("lm_head", &[vocab, hidden]));
    modules
}

/// Where a weight an adapter file holds belongs.
pub(crate) enum SavedWeight {
    /// A weight of a listed module: replaces the base tensor of this name and shape.
    Listed(ParameterShape),
    /// A weight of a module weft can replace, but `modules_to_save` does not list it.
    NotListed { module: String },
    /// Nothing weft replaces.
    Unknown,
}

/// The tensors of the modules `modules_to_save` lists, for a model of `config`.
pub(crate) struct SavedModules {
    listed: BTreeMap<String, ParameterShape>,
    all: BTreeMap<String, String>,
}

impl SavedModules {
    /// `tied_pair`: tied embeddings with `ensure_weight_tying`, under which
    /// PEFT treats `embed_tokens` and `lm_head` as one module, so listing
    /// either lists both.
    pub(crate) fn new(config: &LlamaConfig, modules_to_save: &[String], tied_pair: bool) -> SavedModules {
        let all_modules = replaceable(config);
        let embedding = |m: &str| m == "model.embed_tokens" || m == "lm_head";
        let pair_listed = tied_pair
            && all_modules
                .iter()
                .any(|(m, _)| embedding(m) && modules_to_save.iter().any(|s| m.ends_with(s)));
        let mut listed = BTreeMap::new();
        let mut all = BTreeMap::new();
        for (module, weight) in all_modules {
            let matched = modules_to_save.iter().any(|name| module.ends_with(name.as_str()));
            all.insert(weight.name.clone(), module.clone());
            if matched || (pair_listed && embedding(&module)) {
                listed.insert(weight.name.clone(), weight);
            }
        }
        SavedModules { listed, all }
    }

    /// What the tensor `name` (a Hugging Face name, PEFT's prefix removed) is.
    pub(crate) fn classify(&self, name: &str) -> SavedWeight {
        match (self.listed.get(name), self.all.get(name)) {
            (Some(weight), _) => SavedWeight::Listed(weight.clone()),
            (None, Some(module)) => SavedWeight::NotListed { module: module.clone() },
            (None, None) => SavedWeight::Unknown,
        }
    }
}

/// Replaces `weights`' base tensors by the adapter's `replacements` (by
/// Hugging Face name), returning the config the result is a model of: `config`
/// itself, or with `tie_word_embeddings` false when a tied pair came apart
/// (`lm_head.weight` is then added: the saved head, or the base embedding).
pub fn apply_saved_modules<T: Clone>(
    config: &LlamaConfig,
    weights: &mut BTreeMap<String, T>,
    replacements: &BTreeMap<String, T>,
    ensure_weight_tying: bool,
) -> LlamaConfig {
    let mut config = config.clone();
    let (embed, head) = (replacements.get(EMBED), replacements.get(LM_HEAD));
    if config.tie_word_embeddings && (embed.is_some() || head.is_some()) {
        if ensure_weight_tying {
            // One tensor serves both; `load_adapter` checked that two saved copies agree.
            if let Some(shared) = embed.or(head) {
                weights.insert(EMBED.into(), shared.clone());
            }
        } else {
            // Each has its own copy, the unsaved one the base weight.
            let base_embedding = weights.get(EMBED).cloned();
            config.tie_word_embeddings = false;
            if let Some(head) = head.cloned().or(base_embedding) {
                weights.insert(LM_HEAD.into(), head);
            }
            if let Some(embed) = embed {
                weights.insert(EMBED.into(), embed.clone());
            }
        }
        for (name, tensor) in replacements {
            if name != EMBED && name != LM_HEAD {
                weights.insert(name.clone(), tensor.clone());
            }
        }
    } else {
        for (name, tensor) in replacements {
            weights.insert(name.clone(), tensor.clone());
        }
    }
    config
}
