//! What `eval`, `forward`, `generate` and `export` do alike with a model and
//! an adapter directory: check the adapter's small files before any weights
//! are read, apply the run's RoPE factor, load the weights for inference, and
//! say on standard error what the adapter changes beyond its LoRA factors.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::Context;
use weft_compiler::ElemType;
use weft_ir::model::{LlamaConfig, RopeScaling};
use weft_runtime::HostValues;
use weft_runtime::io::{
    ADAPTER_CONFIG, Adapter, RUN_RECORD, RunRecord, apply_linear_factor, load_adapter, read_adapter_config,
};

use crate::commands::weight_dtype::{WeightDtype, host_storage, host_values};

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
/// A model's weights for inference, as `eval`, `forward` and `generate`
/// upload them.
pub struct InferenceWeights {
    /// The model the weights make: the adapter's saved modules may untie the embeddings.
    pub config: LlamaConfig,
    /// Every tensor by name: the base's, the adapter's saved modules in their
    /// place, and its LoRA factors.
    pub values: HashMap<String, HostValues>,
    pub lora: Option<weft_ir::model::LoraConfig>,
    /// The 16-bit tensors' buffer types, for `GraphPlanOptions::leaf_storage`.
    pub leaf_storage: BTreeMap<String, ElemType>,
}

/// Reads `model_dir`'s checkpoint for inference and puts `adapter` into it
/// (its saved modules replace base tensors by name, as PEFT applies them; its
/// LoRA factors join them).
///
/// Under `--weight-dtype auto`, a tensor whose values are all exactly bf16
/// (or f16) is kept in 16 bits as soon as it is read, so the host holds a
/// bf16 model at its size on disk, not twice that in f32; it goes to the
/// device as it is.
pub fn load_for_inference(
    model_dir: &Path,
    config: &LlamaConfig,
    adapter: Option<Adapter>,
    dtype: WeightDtype,
) -> anyhow::Result<InferenceWeights> {
    errln!("loading {} ...", model_dir.display());
    let keep = |values: Vec<f32>| host_values(values, dtype);
    let mut weights = weft_runtime::io::load_checkpoint_with(model_dir, config, |_, t| keep(t.data))?;
    let (config, lora) = match adapter {
        Some(adapter) => {
            let replacements: BTreeMap<String, HostValues> =
                adapter.replacements.into_iter().map(|(name, t)| (name, keep(t.data))).collect();
            let adapted = weft_runtime::io::apply_saved_modules(
                config,
                &mut weights,
                &replacements,
                adapter.ensure_weight_tying,
            );
            note_untied(config, &adapted, &replacements);
            weights.extend(adapter.tensors.into_iter().map(|(name, t)| (name, keep(t.data))));
            (adapted, Some(adapter.lora))
        }
        None => (config.clone(), None),
    };
    let leaf_storage = host_storage(weights.iter().map(|(name, values)| (name.as_str(), values)));
    Ok(InferenceWeights { config, values: weights.into_iter().collect(), lora, leaf_storage })
}

/// Says so when applying the adapter's saved modules untied the embeddings.
pub fn note_untied<T>(before: &LlamaConfig, after: &LlamaConfig, replacements: &BTreeMap<String, T>) {
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
