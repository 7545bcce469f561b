//! Checkpoints: everything a run needs to continue bit for bit.
//!
//! `checkpoint-{step}/` holds the trained weights (a PEFT adapter, or a
//! Hugging Face checkpoint under full fine-tuning, so every checkpoint is
//! usable as it is), `optimizer.safetensors` (AdamW's moments per trained
//! tensor) and `trainer_state.json` (the step, the tokens seen, the seed and
//! the run's fingerprint). The data order is a function of the seed and the
//! step, and LoRA dropout is 0, so no other random state exists.
//!
//! A checkpoint is written whole into a temporary directory, each file
//! fsynced, then renamed into place (`io::write_dir_atomically`): a
//! directory named `checkpoint-N` is complete, whatever happened during the
//! write, and a crash leaves the previous checkpoint as it was.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::TrainError;
use crate::io::{
    DirWriter, HostTensor, TensorFileError, TensorFileReader, torch_metadata, write_dir_atomically,
    write_safetensors_from,
};

/// The file of AdamW's moments, `<name>.exp_avg` and `<name>.exp_avg_sq`.
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
pub const STATE_FILE: &str = "trainer_state.json";
const PREFIX: &str = "checkpoint-";

/// `trainer_state.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointState {
    pub format: u32,
    /// Optimizer updates done.
    pub step: u64,
    /// Training tokens seen.
    pub tokens: u64,
    pub seed: u64,
    /// What must be equal for a run to continue from this checkpoint.
    pub fingerprint: String,
}

/// A checkpoint opened to be read back: its state, and its tensors, each
/// read from its file when asked for ([`Checkpoint::tensor`]), so that
/// resuming holds one trained tensor and its moments at a time.
#[derive(Debug)]
pub struct Checkpoint {
    pub dir: PathBuf,
    pub state: CheckpointState,
    weights_file: String,
    strip_prefix: String,
    weights: TensorFileReader,
    optimizer: TensorFileReader,
}

impl Checkpoint {
    /// The trained tensor `name` (weft's name) and its AdamW moments
    /// `(exp_avg, exp_avg_sq)`.
    pub fn tensor(&mut self, name: &str) -> Result<(HostTensor, Vec<f32>, Vec<f32>), TrainError> {
        let damaged = |file: &str, e: TensorFileError| TrainError::DamagedCheckpoint {
            path: self.dir.join(file),
            reason: e.reason(),
        };
        let tensor = self
            .weights
            .f32(&format!("{}{name}", self.strip_prefix))
            .map_err(|e| damaged(&self.weights_file, e))?;
        let m = self.optimizer.f32(&format!("{name}.exp_avg")).map_err(|e| damaged(OPTIMIZER_FILE, e))?;
        let v = self.optimizer.f32(&format!("{name}.exp_avg_sq")).map_err(|e| damaged(OPTIMIZER_FILE, e))?;
        Ok((tensor, m.data, v.data))
    }
}

/// The checkpoint directories under `out`, oldest first, by step.
pub fn checkpoint_dirs(out: &Path) -> Result<Vec<(u64, PathBuf)>, TrainError> {
    let mut found = Vec::new();
    let entries = match std::fs::read_dir(out) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(TrainError::io(out)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(TrainError::io(out))?;
        let name = entry.file_name();
        let Some(step) =
            name.to_str().and_then(|n| n.strip_prefix(PREFIX)).and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        if entry.path().is_dir() {
            found.push((step, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

/// Writes `checkpoint-{state.step}` under `out`: `files` writes the trained
/// weights' files and the moments ([`write_moments`]), then the state is added.
pub fn write_checkpoint(
    out: &Path,
    state: &CheckpointState,
    files: impl FnOnce(&mut DirWriter) -> Result<(), TrainError>,
) -> Result<PathBuf, TrainError> {
    let dir = out.join(format!("{PREFIX}{}", state.step));
    let state_json = serde_json::to_string_pretty(state).map_err(|e| TrainError::Plan(e.to_string()))?;
    write_dir_atomically(&dir, |w: &mut DirWriter| -> Result<(), TrainError> {
        files(w)?;
        w.file(STATE_FILE, |f| std::io::Write::write_all(f, state_json.as_bytes()))
            .map_err(TrainError::io(&dir))
    })?;
    Ok(dir)
}

/// Writes [`OPTIMIZER_FILE`]: AdamW's two moments of each trained tensor,
/// `trained` giving each one's name and length. `moment(i, j)` fetches
/// moment `j` (0: `exp_avg`, 1: `exp_avg_sq`) of `trained[i]` when it is
/// written, one at a time (from the device, say).
pub fn write_moments<'a>(
    w: &mut DirWriter,
    trained: &[(String, usize)],
    mut moment: impl FnMut(usize, usize) -> std::io::Result<Cow<'a, [f32]>>,
) -> std::io::Result<()> {
    let tensors: Vec<(String, [usize; 1])> = trained
        .iter()
        .flat_map(|(name, len)| [(format!("{name}.exp_avg"), [*len]), (format!("{name}.exp_avg_sq"), [*len])])
        .collect();
    w.file(OPTIMIZER_FILE, |f| {
        write_safetensors_from(f, &tensors, &torch_metadata(), |k| moment(k / 2, k % 2))
    })
}

/// Opens the checkpoint in `dir`: its state, the trained tensors in
/// `weights_file` (keys with `strip_prefix` removed), and the moments of
/// every tensor in `trained_names`. Anything missing or malformed is a
/// [`TrainError::DamagedCheckpoint`] naming the file; every tensor's
/// presence, dtype and length is checked here, before any is read.
pub fn load_checkpoint_dir(
    dir: &Path,
    weights_file: &str,
    strip_prefix: &str,
    trained_names: &[String],
) -> Result<Checkpoint, TrainError> {
    let damaged = |file: &str, reason: String| TrainError::DamagedCheckpoint { path: dir.join(file), reason };
    let state_path = dir.join(STATE_FILE);
    let text = std::fs::read_to_string(&state_path).map_err(|e| damaged(STATE_FILE, e.to_string()))?;
    let state: CheckpointState =
        serde_json::from_str(&text).map_err(|e| damaged(STATE_FILE, e.to_string()))?;
    // Read tensor by tensor later: a full fine-tune's files are the size of the
    // model. Every tensor is checked here, from the headers, before any is read.
    let weights =
        TensorFileReader::open(&dir.join(weights_file)).map_err(|e| damaged(weights_file, e.reason()))?;
    let optimizer =
        TensorFileReader::open(&dir.join(OPTIMIZER_FILE)).map_err(|e| damaged(OPTIMIZER_FILE, e.reason()))?;
    for name in trained_names {
        let shape = weights
            .f32_shape(&format!("{strip_prefix}{name}"))
            .map_err(|e| damaged(weights_file, e.reason()))?;
        let len: usize = shape.iter().product();
        for suffix in ["exp_avg", "exp_avg_sq"] {
            let moment = optimizer
                .f32_shape(&format!("{name}.{suffix}"))
                .map_err(|e| damaged(OPTIMIZER_FILE, e.reason()))?;
            let moment_len: usize = moment.iter().product();
            if moment_len != len {
                return Err(damaged(
                    OPTIMIZER_FILE,
                    format!("`{name}.{suffix}` has {moment_len} values, the tensor {len}"),
                ));
            }
        }
    }
    Ok(Checkpoint {
        dir: dir.to_path_buf(),
        state,
        weights_file: weights_file.to_string(),
        strip_prefix: strip_prefix.to_string(),
        weights,
        optimizer,
    })
}

/// Removes all but the newest `keep` checkpoints under `out`.
pub fn prune_checkpoints(out: &Path, keep: usize) -> Result<(), TrainError> {
    let dirs = checkpoint_dirs(out)?;
    let surplus = dirs.len().saturating_sub(keep.max(1));
    for (_, dir) in dirs.into_iter().take(surplus) {
        std::fs::remove_dir_all(&dir).map_err(TrainError::io(&dir))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("weft-ckpt-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn state(step: u64) -> CheckpointState {
        CheckpointState { format: 1, step, tokens: step * 64, seed: 3, fingerprint: "abc".into() }
    }

    fn write(out: &Path, step: u64) -> PathBuf {
        let moments = [vec![0.5, -1.0], vec![0.25, 1.0]];
        let weights = BTreeMap::from([(
            "p.w".to_string(),
            HostTensor { shape: vec![2], data: vec![1.5, step as f32] },
        )]);
        write_checkpoint(out, &state(step), |w| {
            let weights = weights.iter().map(|(name, t)| (name, t.view()));
            w.file("w.safetensors", |f| crate::io::write_safetensors(f, weights, &torch_metadata()))
                .map_err(TrainError::io("w"))?;
            write_moments(w, &[("w".to_string(), 2)], |i, j| {
                assert_eq!(i, 0);
                Ok(Cow::Borrowed(&moments[j]))
            })
            .map_err(TrainError::io("optimizer"))
        })
        .unwrap()
    }

    #[test]
    fn checkpoints_round_trip_and_prune_oldest_first() {
        let out = scratch("round-trip");
        for step in [2, 10, 4] {
            write(&out, step);
        }
        let dirs: Vec<u64> = checkpoint_dirs(&out).unwrap().into_iter().map(|(s, _)| s).collect();
        assert_eq!(dirs, [2, 4, 10]);
        let mut loaded =
            load_checkpoint_dir(&out.join("checkpoint-10"), "w.safetensors", "p.", &["w".into()]).unwrap();
        assert_eq!(loaded.state, state(10));
        let (tensor, m, v) = loaded.tensor("w").unwrap();
        assert_eq!((tensor.data, m, v), (vec![1.5, 10.0], vec![0.5, -1.0], vec![0.25, 1.0]));
        prune_checkpoints(&out, 2).unwrap();
        let dirs: Vec<u64> = checkpoint_dirs(&out).unwrap().into_iter().map(|(s, _)| s).collect();
        assert_eq!(dirs, [4, 10]);
        let _ = std::fs::remove_dir_all(&out);
    }

    #[test]
    fn a_damaged_checkpoint_names_its_file() {
        let out = scratch("damaged");
        let dir = write(&out, 1);
        // A valid file without the moments, then one that is not a tensor file at all.
        std::fs::write(dir.join(OPTIMIZER_FILE), b"\x02\0\0\0\0\0\0\0{}").unwrap();
        let err = load_checkpoint_dir(&dir, "w.safetensors", "p.", &["w".into()]).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, TrainError::DamagedCheckpoint { .. }), "{text}");
        assert!(text.contains("optimizer.safetensors") && text.contains("w.exp_avg"), "{text}");
        std::fs::write(dir.join(OPTIMIZER_FILE), b"\x08\0\0\0\0\0\0\0{}").unwrap();
        let err = load_checkpoint_dir(&dir, "w.safetensors", "p.", &["w".into()]).unwrap_err();
        // The file is named once, then what is wrong with it.
        let path = dir.join(OPTIMIZER_FILE);
        assert!(
            err.to_string()
                .starts_with(&format!("checkpoint {}: not a valid safetensors file: ", path.display())),
            "{err}"
        );
        assert_eq!(err.to_string().matches("optimizer.safetensors").count(), 1, "{err}");
        std::fs::write(dir.join(STATE_FILE), b"{").unwrap();
        let err = load_checkpoint_dir(&dir, "w.safetensors", "p.", &["w".into()]).unwrap_err();
        assert!(err.to_string().contains("trainer_state.json"), "{err}");
        let _ = std::fs::remove_dir_all(&out);
    }
}
