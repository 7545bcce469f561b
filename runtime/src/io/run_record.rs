//! `weft_run.json`: weft's own record of a fine-tuning run, beside the PEFT
//! files of an adapter directory (and in a merged or fully trained model
//! directory).
//!
//! PEFT's `adapter_config.json` has no place for what the run changed about
//! the base model's positions: a run at T tokens beyond the base's context
//! trains under linear position interpolation, and the adapter only gives the
//! trained logits under the same factor (LongLoRA's merged models lost it,
//! LongLoRA issues #181, #42, #82). The record carries it, so `forward`,
//! `eval` and `export` apply it.
//!
//! ```json
//! {"format": 1, "rope_linear_factor": 4.0, "base_max_position_embeddings": 2048,
//!  "seq_len": 8192, "pattern": "s2attn-roll", "mode": "lora+"}
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::atomic::write_atomically;

/// The file's name inside the adapter or model directory.
pub const RUN_RECORD: &str = "weft_run.json";
/// The one format this weft reads and writes.
pub const RUN_RECORD_FORMAT: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum RunRecordError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: not a weft run record: {message}")]
    Json { path: PathBuf, line: usize, column: usize, message: String },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What a run did to its base model that its outputs need to be used right.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunRecord {
    /// [`RUN_RECORD_FORMAT`].
    pub format: u32,
    /// The total linear RoPE factor the run trained with (the base's own
    /// factor included), 1.0 if none: it replaces the base config's factor.
    pub rope_linear_factor: f64,
    /// The base model's `max_position_embeddings`.
    pub base_max_position_embeddings: usize,
    /// The sequence length the run trained at.
    pub seq_len: usize,
    /// The attention pattern spec's `name`, if the run used one.
    pub pattern: Option<String>,
    /// What trained: `lora+`, `lora` or `full`.
    pub mode: String,
}

impl RunRecord {
    /// The record in `dir`, or `None` when `dir` has none (an adapter PEFT or
    /// an older weft wrote). A file that is there but not a valid record is an
    /// error naming it.
    pub fn load(dir: &Path) -> Result<Option<RunRecord>, RunRecordError> {
        let path = dir.join(RUN_RECORD);
        let text = match std::fs::read_to_string(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(RunRecordError::Read { path, source }),
            Ok(text) => text,
        };
        RunRecord::parse(&text, &path).map(Some)
    }

    /// Parses and checks the text of a record; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<RunRecord, RunRecordError> {
        let record: RunRecord = serde_json::from_str(text).map_err(|e| {
            // serde_json appends " at line L column C"; the position goes up front instead.
            let full = e.to_string();
            let suffix = format!(" at line {} column {}", e.line(), e.column());
            let message = full.strip_suffix(&suffix).unwrap_or(&full).to_string();
            RunRecordError::Json { path: path.into(), line: e.line(), column: e.column(), message }
        })?;
        record.check().map_err(|message| RunRecordError::Invalid { path: path.into(), message })?;
        Ok(record)
    }

    fn check(&self) -> Result<(), String> {
        if self.format != RUN_RECORD_FORMAT {
            return Err(format!(
                "`format` is {}, but this weft reads format {RUN_RECORD_FORMAT}",
                self.format
            ));
        }
        if !(self.rope_linear_factor.is_finite() && self.rope_linear_factor > 0.0) {
            return Err(format!(
                "`rope_linear_factor` must be a positive number, found {}",
                self.rope_linear_factor
            ));
        }
        for (key, value) in
            [("base_max_position_embeddings", self.base_max_position_embeddings), ("seq_len", self.seq_len)]
        {
            if value == 0 {
                return Err(format!("`{key}` must be positive"));
            }
        }
        Ok(())
    }

    /// The record as the file holds it: pretty JSON and a newline.
    pub fn to_json(&self) -> String {
        // A struct of plain fields always serializes.
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }

    /// Writes the record into `dir` (which must exist), atomically.
    pub fn save(&self, dir: &Path) -> Result<(), RunRecordError> {
        let path = dir.join(RUN_RECORD);
        write_atomically(&path, |w| w.write_all(self.to_json().as_bytes()))
            .map_err(|source| RunRecordError::Write { path, source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> RunRecord {
        RunRecord {
            format: 1,
            rope_linear_factor: 4.0,
            base_max_position_embeddings: 2048,
            seq_len: 8192,
            pattern: Some("s2attn-roll".into()),
            mode: "lora+".into(),
        }
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("weft-run-record-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_record_round_trips_and_an_absent_one_is_none() {
        let dir = scratch("round-trip");
        assert_eq!(RunRecord::load(&dir).unwrap(), None);
        record().save(&dir).unwrap();
        assert_eq!(RunRecord::load(&dir).unwrap(), Some(record()));
        let no_pattern = RunRecord { pattern: None, rope_linear_factor: 1.0, ..record() };
        no_pattern.save(&dir).unwrap();
        assert_eq!(RunRecord::load(&dir).unwrap(), Some(no_pattern));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_bad_record_names_the_file_and_the_problem() {
        let path = Path::new("adapter/weft_run.json");
        let good = record().to_json();
        for (text, fragment) in [
            ("{\"format\": 1,\n", "adapter/weft_run.json:2:0: not a weft run record: EOF while parsing"),
            (&good.replace("\"format\": 1", "\"format\": 2"), "`format` is 2, but this weft reads format 1"),
            (&good.replace("4.0", "-4.0"), "`rope_linear_factor` must be a positive number, found -4"),
            (&good.replace("\"seq_len\": 8192", "\"seq_len\": 0"), "`seq_len` must be positive"),
            (&good.replace("\"mode\"", "\"extra\": 1, \"mode\""), "unknown field `extra`"),
            (&good.replace("\"rope_linear_factor\": 4.0,", ""), "missing field `rope_linear_factor`"),
        ] {
            let err = RunRecord::parse(text, path).unwrap_err().to_string();
            assert!(err.contains(fragment), "{err}");
            assert!(err.starts_with("adapter/weft_run.json"), "{err}");
        }
    }
}
