//! Writing a LoRA adapter in PEFT's format, so that
//! `PeftModel.from_pretrained(base, dir)` loads it with no missing or
//! unexpected keys: `adapter_config.json` with the keys PEFT writes for a
//! LoRA of this kind, and `adapter_model.safetensors` (metadata
//! `format: pt`, as `save_pretrained` writes) under PEFT's names: the factors
//! as `base_model.model.<module>.lora_{A,B}.weight` and, under LongLoRA's
//! LoRA+, the embedding and norm weights as `base_model.model.<name>` (PEFT
//! strips `modules_to_save.default` when saving).

use std::borrow::Cow;
use std::path::Path;

use serde_json::json;
use weft_ir::model::LoraConfig;

use crate::io::{DirWriter, TensorFileError, torch_metadata, write_safetensors_from};

/// The prefix PEFT's `get_peft_model` puts before the base model's names.
const PEFT_PREFIX: &str = "base_model.model.";

/// The PEFT key of a tensor weft names `name` (`model.layers.0.…`).
pub fn peft_key(name: &str) -> String {
    format!("{PEFT_PREFIX}{name}")
}

/// What `adapter_config.json` says.
#[derive(Clone, Debug)]
pub struct PeftAdapter<'a> {
    pub lora: &'a LoraConfig,
    /// PEFT's `modules_to_save`: `["embed_tokens", "norm"]` under LoRA+
    /// (PEFT matches by suffix, so `norm` covers every `*_layernorm`).
    pub modules_to_save: Vec<String>,
    /// The base model's path or hub name, as PEFT records it.
    pub base_model: String,
    /// PEFT's `ensure_weight_tying`: a trained embedding of a tied model
    /// stays the LM head too.
    pub ensure_weight_tying: bool,
}

impl PeftAdapter<'_> {
    /// The text of `adapter_config.json`.
    pub fn config_json(&self) -> String {
        let modules = if self.modules_to_save.is_empty() { json!(null) } else { json!(self.modules_to_save) };
        let config = json!({
            "peft_type": "LORA",
            "task_type": "CAUSAL_LM",
            "r": self.lora.rank,
            "lora_alpha": self.lora.alpha,
            "lora_dropout": 0.0,
            "target_modules": self.lora.target_modules,
            "modules_to_save": modules,
            "bias": "none",
            "base_model_name_or_path": self.base_model,
            "fan_in_fan_out": false,
            "use_rslora": self.lora.use_rslora,
            "use_dora": false,
            "inference_mode": true,
            "ensure_weight_tying": self.ensure_weight_tying,
            "init_lora_weights": true,
            "rank_pattern": {},
            "alpha_pattern": {},
            "layers_to_transform": null,
            "layers_pattern": null,
            "revision": null,
        });
        // serde_json's maps are sorted, as PEFT's `json.dumps(sort_keys=True)` writes them.
        let mut text = serde_json::to_string_pretty(&config).unwrap_or_default();
        text.push('\n');
        text
    }

    /// Writes `adapter_config.json` and `adapter_model.safetensors` into `dir`:
    /// `tensors` gives each tensor's weft name and shape, and `values(i)`
    /// fetches the values of `tensors[i]` when it is written (one at a time).
    pub fn write<'a>(
        &self,
        dir: &mut DirWriter,
        tensors: &[(&str, &[usize])],
        values: impl FnMut(usize) -> std::io::Result<Cow<'a, [f32]>>,
    ) -> Result<(), TensorFileError> {
        let path = Path::new(crate::io::ADAPTER_WEIGHTS);
        let renamed: Vec<(String, &[usize])> =
            tensors.iter().map(|(name, shape)| (peft_key(name), *shape)).collect();
        let write_err = |source| TensorFileError::Write { path: path.into(), source };
        dir.file(crate::io::ADAPTER_WEIGHTS, |w| {
            write_safetensors_from(w, &renamed, &torch_metadata(), values)
        })
        .map_err(write_err)?;
        let config = self.config_json();
        dir.file(crate::io::ADAPTER_CONFIG, |w| std::io::Write::write_all(w, config.as_bytes()))
            .map_err(|source| TensorFileError::Write { path: crate::io::ADAPTER_CONFIG.into(), source })
    }
}
