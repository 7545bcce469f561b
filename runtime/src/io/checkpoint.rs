//! Hugging Face checkpoints: `model.safetensors`, or its sharded form
//! `model.safetensors.index.json` + shards, in `LlamaForCausalLM` names.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

use weft_ir::model::{LlamaConfig, ParameterShape};

use super::tensors::{FloatType, HostTensor, TensorFileError, TensorFileReader};

/// The single-file checkpoint, looked for first (as transformers does).
pub const SINGLE_FILE: &str = "model.safetensors";
/// The index of a sharded checkpoint: `{"metadata": {..}, "weight_map": {tensor: shard file}}`.
pub const INDEX_FILE: &str = "model.safetensors.index.json";

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{dir} holds no checkpoint: expected {SINGLE_FILE} or {INDEX_FILE}")]
    NoWeights { dir: PathBuf },
    #[error("cannot read {path}: {source}")]
    IndexRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: invalid JSON: {message}")]
    IndexJson { path: PathBuf, line: usize, column: usize, message: String },
    #[error("{path}: {message}")]
    IndexFormat { path: PathBuf, message: String },
    #[error("{index} puts `{tensor}` in the shard {shard}, which does not exist")]
    MissingShard { index: PathBuf, tensor: String, shard: PathBuf },
    #[error("checkpoint tensor `{name}` (expected shape {expected:?}) is missing; searched {searched}{hint}")]
    MissingTensor { name: String, expected: Vec<usize>, searched: String, hint: &'static str },
    #[error("checkpoint tensor `{name}` in {path} has shape {found:?}; the config expects {expected:?}")]
    Shape { name: String, path: PathBuf, expected: Vec<usize>, found: Vec<usize> },
    #[error(
        "{config}: `num_hidden_layers` is {configured}, but the checkpoint {checkpoint} holds {found} layers \
         (model.layers.N); {consequence}"
    )]
    LayerCount { config: PathBuf, configured: usize, found: usize, checkpoint: PathBuf, consequence: String },
    /// A caller asked a [`CheckpointReader`] for a tensor the config does not list.
    #[error("`{name}` is not a tensor of the model the config describes")]
    NotInConfig { name: String },
    #[error(transparent)]
    File(#[from] TensorFileError),
}

/// Checks `config.num_hidden_layers` against the layers `model_dir`'s
/// checkpoint holds (the distinct `i` of its `model.layers.{i}.` names),
/// reading only the safetensors header or the index, so a config that
/// disagrees with its weights fails before anything is built for it. Fewer
/// layers than the weights would silently drop layers; more have no weights.
/// A directory with no checkpoint passes: there is nothing to check against.
pub fn check_layer_count(model_dir: &Path, config: &LlamaConfig) -> Result<(), CheckpointError> {
    let (checkpoint, names) = match Layout::find(model_dir) {
        Err(CheckpointError::NoWeights { .. }) => return Ok(()),
        Err(e) => return Err(e),
        Ok(Layout::Single(path)) => {
            let names = header_names(&path)?;
            (path, names)
        }
        Ok(Layout::Sharded { index, weight_map }) => (index, weight_map.into_keys().collect()),
    };
    let layers: BTreeSet<usize> = names
        .iter()
        .filter_map(|n| n.strip_prefix("model.layers.")?.split('.').next()?.parse().ok())
        .collect();
    let (configured, found) = (config.num_hidden_layers, layers.len());
    if configured == found {
        return Ok(());
    }
    let consequence = if configured < found {
        format!("weft would silently drop layers {configured}..{found}; set `num_hidden_layers` to {found}")
    } else {
        format!("layers {found}..{configured} would have no weights; set `num_hidden_layers` to {found}")
    };
    Err(CheckpointError::LayerCount {
        config: model_dir.join("config.json"),
        configured,
        found,
        checkpoint,
        consequence,
    })
}

/// The tensor names in a safetensors file's header, without reading the tensors.
fn header_names(path: &Path) -> Result<Vec<String>, CheckpointError> {
    Ok(TensorFileReader::open(path)?.names())
}

/// Loads every tensor of `config.parameter_shapes()` from `model_dir`, as f32
/// (F16 and BF16 are widened exactly), checking each one's shape.
///
/// Tensors the config does not ask for are not read: rotary `inv_freq`
/// buffers older checkpoints carry, and `lm_head.weight` when the embeddings
/// are tied (the LM head then is `model.embed_tokens.weight`).
pub fn load_checkpoint(
    model_dir: &Path,
    config: &LlamaConfig,
) -> Result<BTreeMap<String, HostTensor>, CheckpointError> {
    load_checkpoint_with(model_dir, config, |_, tensor| tensor)
}

/// [`load_checkpoint`], each tensor handed to `keep` as soon as it is read
/// and checked, and the map holding what `keep` returns: the host holds one
/// f32 tensor at a time beside what was kept (for inference, each weight in
/// the checkpoint's own 16 bits: [`HostValues::exact`](crate::HostValues::exact)).
pub fn load_checkpoint_with<T>(
    model_dir: &Path,
    config: &LlamaConfig,
    mut keep: impl FnMut(&str, HostTensor) -> T,
) -> Result<BTreeMap<String, T>, CheckpointError> {
    let mut reader = CheckpointReader::open(model_dir, config)?;
    let mut tensors = BTreeMap::new();
    for name in reader.names_in_file_order() {
        let tensor = reader.read(&name)?;
        let kept = keep(&name, tensor);
        tensors.insert(name, kept);
    }
    Ok(tensors)
}

/// A checkpoint opened for reading one tensor at a time, in any order: what
/// `weft export` merges from, so that a 7B base is never whole in memory.
///
/// [`CheckpointReader::open`] checks, from the safetensors headers alone,
/// that every tensor `config` asks for is there as F32, F16 or BF16 at its
/// shape, so a bad checkpoint fails before a byte of tensor data is read.
#[derive(Debug)]
pub struct CheckpointReader {
    /// One reader per file (the single file, or each shard holding a wanted tensor).
    files: Vec<TensorFileReader>,
    /// Each wanted tensor's file, as an index into `files`.
    file_of: BTreeMap<String, usize>,
}

impl CheckpointReader {
    pub fn open(model_dir: &Path, config: &LlamaConfig) -> Result<CheckpointReader, CheckpointError> {
        check_layer_count(model_dir, config)?;
        let wanted = config.parameter_shapes();
        let mut by_file: BTreeMap<PathBuf, Vec<ParameterShape>> = BTreeMap::new();
        match Layout::find(model_dir)? {
            Layout::Single(path) => {
                by_file.insert(path, wanted);
            }
            Layout::Sharded { index, weight_map } => {
                for parameter in wanted {
                    let Some(shard) = weight_map.get(&parameter.name) else {
                        return Err(missing(parameter, format!("the weight_map of {}", index.display())));
                    };
                    by_file.entry(shard.clone()).or_default().push(parameter);
                }
            }
        }
        let mut files = Vec::with_capacity(by_file.len());
        let mut file_of = BTreeMap::new();
        for (path, parameters) in by_file {
            let file = TensorFileReader::open(&path)?;
            for parameter in parameters {
                let found = match file.float_shape(&parameter.name) {
                    Err(TensorFileError::Missing { .. }) => {
                        return Err(missing(parameter, path.display().to_string()));
                    }
                    other => other?,
                };
                if found != parameter.shape {
                    return Err(CheckpointError::Shape {
                        name: parameter.name,
                        path,
                        expected: parameter.shape,
                        found,
                    });
                }
                file_of.insert(parameter.name, files.len());
            }
            files.push(file);
        }
        Ok(CheckpointReader { files, file_of })
    }

    /// The tensors the config asks for, grouped by file (the order that reads each file once).
    pub fn names_in_file_order(&self) -> Vec<String> {
        let mut names: Vec<(usize, &String)> =
            self.file_of.iter().map(|(name, &file)| (file, name)).collect();
        names.sort();
        names.into_iter().map(|(_, name)| name.clone()).collect()
    }

    /// The float types the config's tensors are stored in (checked at open
    /// to be F32, F16 or BF16): one for a checkpoint saved in one type.
    pub fn stored_types(&self) -> BTreeSet<FloatType> {
        self.file_of
            .iter()
            .filter_map(|(name, &file)| self.files[file].dtype(name).and_then(FloatType::of))
            .collect()
    }

    /// The tensor `name` as f32 (F16 and BF16 widened exactly); `name` must
    /// be one the config asks for.
    pub fn read(&mut self, name: &str) -> Result<HostTensor, CheckpointError> {
        let Some(&file) = self.file_of.get(name) else {
            return Err(CheckpointError::NotInConfig { name: name.into() });
        };
        Ok(self.files[file].float_as_f32(name)?)
    }
}

fn missing(parameter: ParameterShape, searched: String) -> CheckpointError {
    let hint = if parameter.name == "lm_head.weight" {
        " (config.json has tie_word_embeddings = false, so the LM head needs its own weight)"
    } else {
        ""
    };
    CheckpointError::MissingTensor { name: parameter.name, expected: parameter.shape, searched, hint }
}

/// Where a checkpoint's tensors are.
enum Layout {
    Single(PathBuf),
    /// Each tensor name mapped to the path of its shard, every shard checked to exist.
    Sharded {
        index: PathBuf,
        weight_map: BTreeMap<String, PathBuf>,
    },
}

impl Layout {
    fn find(dir: &Path) -> Result<Layout, CheckpointError> {
        let single = dir.join(SINGLE_FILE);
        if single.is_file() {
            return Ok(Layout::Single(single));
        }
        let index = dir.join(INDEX_FILE);
        if !index.is_file() {
            return Err(CheckpointError::NoWeights { dir: dir.into() });
        }
        let weight_map = read_index(&index)?;
        let mut seen = BTreeMap::new();
        for (tensor, shard) in &weight_map {
            seen.entry(shard).or_insert(tensor);
        }
        for (shard, tensor) in seen {
            if !shard.is_file() {
                return Err(CheckpointError::MissingShard {
                    index: index.clone(),
                    tensor: tensor.clone(),
                    shard: shard.clone(),
                });
            }
        }
        Ok(Layout::Sharded { index, weight_map })
    }
}

/// The `weight_map` of an index file, with shard names resolved against its directory.
fn read_index(index: &Path) -> Result<BTreeMap<String, PathBuf>, CheckpointError> {
    let text = std::fs::read_to_string(index)
        .map_err(|source| CheckpointError::IndexRead { path: index.into(), source })?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        // serde_json appends " at line L column C"; the position goes up front instead.
        let full = e.to_string();
        let suffix = format!(" at line {} column {}", e.line(), e.column());
        let message = full.strip_suffix(&suffix).unwrap_or(&full).to_string();
        CheckpointError::IndexJson { path: index.into(), line: e.line(), column: e.column(), message }
    })?;
    let format_error = |message: String| CheckpointError::IndexFormat { path: index.into(), message };
    let Some(entries) = value.get("weight_map").and_then(serde_json::Value::as_object) else {
        return Err(format_error("expected an object with a `weight_map` object".into()));
    };
    let dir = index.parent().unwrap_or(Path::new(""));
    entries
        .iter()
        .map(|(tensor, shard)| {
            let shard_name = shard.as_str().ok_or_else(|| {
                format_error(format!("`weight_map` maps `{tensor}` to {shard}; expected a file name"))
            })?;
            // Shards live beside the index; a path elsewhere is not a checkpoint weight_map writes.
            let plain = !shard_name.is_empty()
                && Path::new(shard_name).components().all(|c| matches!(c, Component::Normal(_)));
            if !plain {
                return Err(format_error(format!(
                    "`weight_map` maps `{tensor}` to \"{shard_name}\", which is not a file name inside {}",
                    dir.display()
                )));
            }
            Ok((tensor.clone(), dir.join(shard_name)))
        })
        .collect()
}
