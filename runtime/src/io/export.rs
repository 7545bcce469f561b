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

use std::borrow::Cow;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;
use weft_ir::model::{LlamaConfig, ParameterShape};

use super::atomic_dir::write_dir_atomically;
use super::checkpoint::{CheckpointError, SINGLE_FILE};
use super::merge::MergeError;
use super::rope_factor::{RopeFactorError, write_linear_factor};
use super::run_record::{RUN_RECORD, RunRecord};
use super::tensors::{FloatType, torch_metadata, write_floats_from};

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
    #[error("`{name}` holds {value}, past the largest f16 (65504): write it in bf16 or f32")]
    F16Overflow { name: String, value: f32 },
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    Merge(#[from] MergeError),
}

/// The merged model's `config.json` text: `base_text` (read from
/// `base_path`) with the RoPE factor `factor` (the run record's, if any),
/// `merged`'s `tie_word_embeddings`, and `float` as the dtype where the base
/// names one. It is checked to read back as `merged`.
pub fn merged_config_json(
    base_text: &str,
    base_path: &Path,
    merged: &LlamaConfig,
    factor: Option<f64>,
    float: FloatType,
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
            object.insert(key.into(), float.torch_name().into());
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
/// `config_json` as `config.json`; the tensors `tensors` as
/// `model.safetensors` in `float` (metadata `format: pt`), each one's values fetched
/// with `values(i)` when its turn comes, so that one tensor at a time is in
/// memory; [`COPIED_FILES`] that `base_dir` has; and `record` as
/// `weft_run.json`. Returns the names of the files written. An error from
/// `values` leaves `out` as it was.
pub fn write_merged_checkpoint<'a>(
    out: &Path,
    config_json: &str,
    tensors: &[ParameterShape],
    float: FloatType,
    mut values: impl FnMut(usize) -> Result<Cow<'a, [f32]>, ExportError>,
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
    let shapes: Vec<(&str, &[usize])> = tensors.iter().map(|p| (p.name.as_str(), &p.shape[..])).collect();
    // The safetensors writer speaks io::Error; a failed fetch keeps its own error here.
    let mut fetch_error = None;
    let result = write_dir_atomically::<std::io::Error>(out, |dir| {
        dir.file("config.json", |w| w.write_all(config_json.as_bytes()))?;
        dir.file(SINGLE_FILE, |w| {
            write_floats_from(w, &shapes, float, &metadata, |i| {
                let fetched = values(i).and_then(|v| {
                    // A finite weight must not become infinite on the way to f16.
                    let overflows = |v: &&f32| v.is_finite() && half::f16::from_f32(**v).is_infinite();
                    if float == FloatType::F16
                        && let Some(&value) = v.iter().find(overflows)
                    {
                        return Err(ExportError::F16Overflow { name: tensors[i].name.clone(), value });
                    }
                    Ok(v)
                });
                fetched.map_err(|e| {
                    let message = e.to_string();
                    fetch_error = Some(e);
                    std::io::Error::other(message)
                })
            })
        })?;
        for (name, bytes) in &copies {
            dir.file(name, |w| w.write_all(bytes))?;
        }
        if let Some(record) = record {
            dir.file(RUN_RECORD, |w| w.write_all(record.to_json().as_bytes()))?;
        }
        Ok(())
    });
    match (result, fetch_error) {
        (Ok(()), _) => Ok(written),
        (Err(_), Some(e)) => Err(e),
        (Err(source), None) => Err(ExportError::Write { path: out.into(), source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tensor that cannot be fetched halfway through the file fails the
    /// export with its own error, and the earlier export stays as it was.
    #[test]
    fn a_failed_fetch_leaves_the_old_export_and_names_its_cause() {
        let root = std::env::temp_dir().join(format!("weft-export-fetch-{}", std::process::id()));
        let (base, out) = (root.join("base"), root.join("out"));
        std::fs::create_dir_all(&base).unwrap();
        let tensors: Vec<ParameterShape> = ["a", "b", "c"]
            .iter()
            .map(|name| ParameterShape { name: name.to_string(), shape: vec![2, 3] })
            .collect();
        let values = [0.5f32; 6];
        let written = write_merged_checkpoint(
            &out,
            "{}\n",
            &tensors,
            FloatType::F32,
            |_| Ok(Cow::Borrowed(&values[..])),
            &base,
            None,
        )
        .unwrap();
        assert_eq!(written, ["config.json", "model.safetensors"]);
        let before = std::fs::read(out.join("model.safetensors")).unwrap();

        let failing = |i: usize| match i {
            0 => Ok(Cow::Borrowed(&values[..])),
            _ => Err(ExportError::Merge(MergeError::MissingFactor { name: "b.lora_A.weight".into() })),
        };
        let err = write_merged_checkpoint(&out, "{}\n", &tensors, FloatType::F32, failing, &base, None)
            .unwrap_err();
        assert!(matches!(err, ExportError::Merge(MergeError::MissingFactor { .. })), "{err:?}");
        assert_eq!(err.to_string(), "the adapter has no LoRA factor `b.lora_A.weight`");
        assert_eq!(std::fs::read(out.join("model.safetensors")).unwrap(), before);

        // 65519 rounds to f16's largest, 65504; 65520 would be infinite, and is refused.
        let fits = [65519.0f32; 6];
        write_merged_checkpoint(
            &out,
            "{}\n",
            &tensors,
            FloatType::F16,
            |_| Ok(Cow::Borrowed(&fits[..])),
            &base,
            None,
        )
        .unwrap();
        let large = [1.0, 1.0, 1.0, -65520.0, 1.0, 1.0f32];
        let err = write_merged_checkpoint(
            &out,
            "{}\n",
            &tensors,
            FloatType::F16,
            |_| Ok(Cow::Borrowed(&large[..])),
            &base,
            None,
        )
        .unwrap_err();
        assert!(matches!(err, ExportError::F16Overflow { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "`a` holds -65520, past the largest f16 (65504): write it in bf16 or f32"
        );
        let mut left: Vec<String> = std::fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into())
            .collect();
        left.sort();
        assert_eq!(left, ["base", "out"], "no staging directory is left");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
