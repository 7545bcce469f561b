//! The end- and beginning-of-sequence ids a model directory declares.
//!
//! Hugging Face keeps them in `config.json` and `generation_config.json`
//! (`eos_token_id`, `bos_token_id`); Llama 3 writes a list there, of which the
//! first is the model's end of text. `config.json` wins; the generation config
//! fills what it leaves out.

use std::path::Path;

use serde_json::Value;

use super::DataError;

/// Special token ids given by the caller or a model directory; `None` lets
/// the tokenizer's own added tokens decide (see [`super::Tokenizer::from_file`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpecialIds {
    pub eos: Option<u32>,
    pub bos: Option<u32>,
}

impl SpecialIds {
    /// The ids `config.json`, then `generation_config.json`, in `dir` declare.
    /// A missing file declares nothing; a present one must be JSON whose ids
    /// are non-negative integers (or lists of them), or null.
    pub fn from_model_dir(dir: &Path) -> Result<SpecialIds, DataError> {
        let mut ids = SpecialIds::default();
        for name in ["config.json", "generation_config.json"] {
            let path = dir.join(name);
            let Some(json) = read_json(&path)? else { continue };
            if ids.eos.is_none() {
                ids.eos = token_id(&json, "eos_token_id", &path)?;
            }
            if ids.bos.is_none() {
                ids.bos = token_id(&json, "bos_token_id", &path)?;
            }
        }
        Ok(ids)
    }
}

/// The ids that end generation: `generation_config.json`'s `eos_token_id`
/// (an id or a list, as Llama 3 writes), else `config.json`'s, as
/// transformers' `generate` reads them. Empty when neither declares one.
pub fn stop_ids_from_model_dir(dir: &Path) -> Result<Vec<u32>, DataError> {
    for name in ["generation_config.json", "config.json"] {
        let path = dir.join(name);
        let Some(json) = read_json(&path)? else { continue };
        let values: Vec<&Value> = match json.get("eos_token_id") {
            None | Some(Value::Null) => continue,
            Some(Value::Array(list)) => list.iter().collect(),
            Some(value) => vec![value],
        };
        return values
            .into_iter()
            .map(|v| {
                v.as_u64().and_then(|id| u32::try_from(id).ok()).ok_or_else(|| DataError::SpecialId {
                    path: path.clone(),
                    key: "eos_token_id",
                    found: v.to_string(),
                })
            })
            .collect();
    }
    Ok(Vec::new())
}

/// The JSON in `path`, or `None` when there is no such file.
fn read_json(path: &Path) -> Result<Option<Value>, DataError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(DataError::Read { path: path.into(), source }),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| DataError::Json { path: path.into(), message: e.to_string() })
}

/// `json[key]`: an id, the first of a list of ids, or nothing.
fn token_id(json: &Value, key: &'static str, path: &Path) -> Result<Option<u32>, DataError> {
    let value = match json.get(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(list)) => match list.first() {
            None => return Ok(None),
            Some(first) => first,
        },
        Some(value) => value,
    };
    match value.as_u64().and_then(|id| u32::try_from(id).ok()) {
        Some(id) => Ok(Some(id)),
        None => Err(DataError::SpecialId { path: path.to_path_buf(), key, found: value.to_string() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_wins_and_generation_config_fills_in() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), r#"{"eos_token_id": [128001, 128009]}"#).unwrap();
        std::fs::write(
            dir.path().join("generation_config.json"),
            r#"{"eos_token_id": 5, "bos_token_id": 128000}"#,
        )
        .unwrap();
        let ids = SpecialIds::from_model_dir(dir.path()).unwrap();
        assert_eq!(ids, SpecialIds { eos: Some(128001), bos: Some(128000) });
    }

    #[test]
    fn missing_files_declare_nothing_and_bad_ids_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(SpecialIds::from_model_dir(dir.path()).unwrap(), SpecialIds::default());
        std::fs::write(dir.path().join("config.json"), r#"{"eos_token_id": -1}"#).unwrap();
        let err = SpecialIds::from_model_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("config.json: `eos_token_id` must be a token id"), "{err}");
        assert!(err.contains("found -1"), "{err}");
        std::fs::write(dir.path().join("config.json"), "{").unwrap();
        let err = SpecialIds::from_model_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("is not valid JSON"), "{err}");
    }

    #[test]
    fn generation_stops_at_every_eos_id_the_generation_config_lists() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(stop_ids_from_model_dir(dir.path()).unwrap(), Vec::<u32>::new());
        std::fs::write(dir.path().join("config.json"), r#"{"eos_token_id": 2}"#).unwrap();
        assert_eq!(stop_ids_from_model_dir(dir.path()).unwrap(), [2]);
        std::fs::write(dir.path().join("generation_config.json"), r#"{"eos_token_id": [128001, 128009]}"#)
            .unwrap();
        assert_eq!(stop_ids_from_model_dir(dir.path()).unwrap(), [128001, 128009]);
        std::fs::write(dir.path().join("generation_config.json"), r#"{"eos_token_id": [-1]}"#).unwrap();
        let err = stop_ids_from_model_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("eos_token_id") && err.contains("-1"), "{err}");
    }
}
