//! A merged Hugging Face checkpoint directory, as `weft export` writes it:
//! `config.json`, `model.safetensors`, the generation config and tokenizer
//! files copied from the base, and the run record, written to a staging
//! directory and renamed in whole (`atomic_dir.rs`).
//!
//! The config is the base's own `config.json` text with only what the merge
//! changed: the run's RoPE factor (`rope_factor.rs`), `tie_word_embeddings:
//! false` when a saved module untied the embeddings, and the dtype
//! (`torch_dtype`, `dtype`) of the f32 tensors written. Every other key is
//! kept as the base had it, so transformers sees the model it knew.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;
use weft_ir::model::LlamaConfig;

use super::atomic_dir::write_dir_atomically;
use super::checkpoint::SINGLE_FILE;
use super::rope_factor::{RopeFactorError, write_linear_factor};
use super::run_record::{RUN_RECORD, RunRecord};
use super::tensors::{HostTensor, torch_metadata, write_safetensors};

/// Files of a checkpoint directory copied as they are, when the base has them.
pub const COPIED_FILES: [&str; 5] = [
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "tokenizer.model",
];

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error("{path}: {source}")]
    RopeFactor {
        path: PathBuf,
        #[source]
        source: RopeFactorError,
    },
    /// The written config would not read back as the merged model: a bug, caught before writing.
    #[error("the merged config.json would read back as a different model than the one merged: {message}")]
    RoundTrip { message: String },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write the merged checkpoint {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The merged model's `config.json` text: `base_text` (read from
/// `base_path`) with the RoPE factor `factor` (the run record's, if any),
/// `merged`'s `tie_word_embeddings`, and f32 as the dtype. It is checked to
/// read back as `merged`.
pub fn merged_config_json(
    base_text: &str,
    base_path: &Path,
    merged: &LlamaConfig,
    factor: Option<f64>,
) -> Result<String, ExportError> {
    let config_error = |message: String| ExportError::Config { path: base_path.into(), message };
    let mut json: Value = serde_json::from_str(base_text).map_err(|e| config_error(e.to_string()))?;
    if let Some(factor) = factor {
        write_linear_factor(&mut json, factor)
            .map_err(|source| ExportError::RopeFactor { path: base_path.into(), source })?;
    }
    let object = json.as_object_mut().ok_or_else(|| config_error("must be a JSON object".into()))?;
    if !merged.tie_word_embeddings && object.get("tie_word_embeddings") == Some(&Value::Bool(true)) {
        object.insert("tie_word_embeddings".into(), Value::Bool(false));
    }
    for key in ["torch_dtype", "dtype"] {
        if object.get(key).is_some_and(|v| !v.is_null()) {
            object.insert(key.into(), "float32".into());
        }
    }
    let mut text = serde_json::to_string_pretty(&json).map_err(|e| config_error(e.to_string()))?;
    text.push('\n');
    let read_back = LlamaConfig::from_json_str(&text, "the merged config.json")
        .map_err(|e| ExportError::RoundTrip { message: e.to_string() })?;
    if &read_back != merged {
        return Err(ExportError::RoundTrip { message: format!("wrote {read_back:?}, merged {merged:?}") });
    }
    Ok(text)
}

/// Writes the merged checkpoint directory `out` (replacing it whole):
/// `config_json` as `config.json`, `tensors` as `model.safetensors` (metadata
/// `format: pt`), [`COPIED_FILES`] that `base_dir` has, and `record` as
/// `weft_run.json`. Returns the names of the files written.
pub fn write_merged_checkpoint(
    out: &Path,
    config_json: &str,
    tensors: &BTreeMap<String, HostTensor>,
    base_dir: &Path,
    record: Option<&RunRecord>,
) -> Result<Vec<String>, ExportError> {
    // Read before anything is written, so a bad file fails with its own name.
    let mut copies = Vec::new();
    for name in COPIED_FILES {
        let path = base_dir.join(name);
        match std::fs::read(&path) {
            Ok(bytes) => copies.push((name, bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(ExportError::Read { path, source }),
        }
    }
    let metadata = torch_metadata();
    let mut written = vec!["config.json".to_string(), SINGLE_FILE.to_string()];
    written.extend(copies.iter().map(|(name, _)| name.to_string()));
    if record.is_some() {
        written.push(RUN_RECORD.to_string());
    }
    write_dir_atomically::<std::io::Error>(out, |dir| {
        dir.file("config.json", |w| w.write_all(config_json.as_bytes()))?;
        dir.file(SINGLE_FILE, |w| {
            write_safetensors(w, tensors.iter().map(|(n, t)| (n, t.view())), &metadata)
        })?;
        for (name, bytes) in &copies {
            dir.file(name, |w| w.write_all(bytes))?;
        }
        if let Some(record) = record {
            dir.file(RUN_RECORD, |w| w.write_all(record.to_json().as_bytes()))?;
        }
        Ok(())
    })
    .map_err(|source| ExportError::Write { path: out.into(), source })?;
    Ok(written)
}
