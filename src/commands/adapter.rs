//! What `forward` and `export` do alike with an adapter directory: check its
//! small files before any weights are read, apply the run's RoPE factor, and
//! say on standard error what the adapter changes beyond its LoRA factors.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use weft_ir::model::{LlamaConfig, RopeScaling};
use weft_runtime::io::{
    ADAPTER_CONFIG, Adapter, HostTensor, RUN_RECORD, RunRecord, apply_linear_factor, load_adapter,
    read_adapter_config,
};

/// Refuses a bad `adapter_config.json` or `weft_run.json` in `dir` (both
/// small) before anything large is read; returns the run record, if any.
pub fn check(dir: &Path) -> anyhow::Result<Option<RunRecord>> {
    read_adapter_config(dir)?;
    Ok(RunRecord::load(dir)?)
}

/// `config` with the RoPE factor `record` (read from `dir`) gives, saying so.
pub fn apply_run_factor(config: &LlamaConfig, record: &RunRecord, dir: &Path) -> anyhow::Result<LlamaConfig> {
    let path = dir.join(RUN_RECORD);
    let scaled = apply_linear_factor(config, record.rope_linear_factor)
        .with_context(|| format!("applying the RoPE factor of {}", path.display()))?;
    let base = match config.rope.scaling {
        RopeScaling::None => "no scaling".to_string(),
        RopeScaling::Linear { factor } => format!("linear factor {factor}"),
        llama3 @ RopeScaling::Llama3 { .. } => llama3.to_string(),
    };
    errln!(
        "RoPE: linear factor {} from {} (trained at {} tokens; the base config has {base})",
        record.rope_linear_factor,
        path.display(),
        record.seq_len
    );
    if record.base_max_position_embeddings != config.max_position_embeddings {
        errln!(
            "warning: {} was recorded on a base with max_position_embeddings {}, but this base has {}",
            path.display(),
            record.base_max_position_embeddings,
            config.max_position_embeddings
        );
    }
    Ok(scaled)
}

/// Loads the adapter in `dir` for a model of `config`, listing ignored keys
/// and the base tensors it replaces.
pub fn load(dir: &Path, config: &LlamaConfig) -> anyhow::Result<Adapter> {
    let adapter = load_adapter(dir, config)?;
    super::source::warn_unknown_keys(&dir.join(ADAPTER_CONFIG), &adapter.unknown_keys);
    if !adapter.replacements.is_empty() {
        errln!(
            "modules_to_save ({}): {} base tensors replaced by the adapter's",
            adapter.modules_to_save.join(", "),
            adapter.replacements.len()
        );
    }
    Ok(adapter)
}

/// Reads the checkpoint in `model_dir` and, with an adapter, puts it in
/// (see [`apply`]): the config the graph is built from, the weights by name,
/// and the LoRA the graph takes. What `forward`, `generate` and `eval` share.
pub fn load_weights(
    model_dir: &Path,
    config: &LlamaConfig,
    adapter: Option<Adapter>,
) -> anyhow::Result<(LlamaConfig, BTreeMap<String, HostTensor>, Option<weft_ir::model::LoraConfig>)> {
    errln!("loading {} ...", model_dir.display());
    let mut weights = weft_runtime::io::load_checkpoint(model_dir, config)?;
    Ok(match adapter {
        // The saved modules override the base tensors by name before upload.
        Some(adapter) => {
            let (adapted, lora) = apply(config, &mut weights, adapter);
            (adapted, weights, Some(lora))
        }
        None => (config.clone(), weights, None),
    })
}

/// Puts `adapter` into the base `weights`: its saved modules replace base
/// tensors by name, its LoRA factors join them. Returns the config (untied if
/// the saved modules untie the embeddings) and the LoRA the graph takes.
pub fn apply(
    config: &LlamaConfig,
    weights: &mut BTreeMap<String, HostTensor>,
    adapter: Adapter,
) -> (LlamaConfig, weft_ir::model::LoraConfig) {
    let adapted = weft_runtime::io::apply_saved_modules(
        config,
        weights,
        &adapter.replacements,
        adapter.ensure_weight_tying,
    );
    note_untied(config, &adapted, &adapter.replacements);
    weights.extend(adapter.tensors);
    (adapted, adapter.lora)
}

/// Says so when applying the adapter's saved modules untied the embeddings.
pub fn note_untied(before: &LlamaConfig, after: &LlamaConfig, replacements: &BTreeMap<String, HostTensor>) {
    if before.tie_word_embeddings && !after.tie_word_embeddings {
        let replaced: Vec<&str> = replacements
            .keys()
            .map(String::as_str)
            .filter(|n| *n == "model.embed_tokens.weight" || *n == "lm_head.weight")
            .collect();
        errln!(
            "note: the adapter replaces {} of the tied embeddings without `ensure_weight_tying`; as in \
             PEFT, the other keeps the base weight, so the embeddings are untied",
            replaced.join(" and ")
        );
    }
}
