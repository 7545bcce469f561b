//! Hugging Face checkpoints written here in their layout (config.json +
//! model.safetensors, or two shards + model.safetensors.index.json) load with
//! exactly the values written, and every broken one gets a clear error.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng, rngs::StdRng};
use safetensors::Dtype;
use safetensors::tensor::TensorView;
use serde_json::{Value, json};
use weft_ir::model::LlamaConfig;
use weft_runtime::io::{
    CheckpointError, CheckpointReader, HostTensor, TensorFile, TensorFileError, check_layer_count,
    load_checkpoint, save,
};

const SHARD_1: &str = "model-00001-of-00002.safetensors";
const SHARD_2: &str = "model-00002-of-00002.safetensors";

/// A 2-layer model with grouped-query attention (4 query heads, 2 kv heads).
fn tiny_config(tied: bool) -> Value {
    json!({
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": 16,
        "intermediate_size": 24,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "num_hidden_layers": 2,
        "rms_norm_eps": 1e-5,
        "vocab_size": 11,
        "max_position_embeddings": 64,
        "rope_theta": 10000.0,
        "rope_scaling": {"type": "linear", "factor": 2.0},
        "tie_word_embeddings": tied,
        "torch_dtype": "float32"
    })
}

/// One tensor as stored: dtype, shape and little-endian bytes.
struct Stored {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

/// What a test wrote: the directory, its config, and the f32 values each
/// tensor must load as.
struct Written {
    dir: PathBuf,
    config: LlamaConfig,
    expected: BTreeMap<String, HostTensor>,
}

fn fresh_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("checkpoint").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The value of a 16-bit float from its definition, for `exponent_bits` 5
/// (f16) or 8 (bf16), computed in f64; every such value is exact in f32.
fn half_by_definition(bits: u16, exponent_bits: u32) -> f32 {
    let mantissa_bits = 15 - exponent_bits;
    let bias = (1i32 << (exponent_bits - 1)) - 1;
    let sign = if bits >> 15 == 1 { -1.0 } else { 1.0 };
    let exponent = i32::from((bits >> mantissa_bits) & ((1 << exponent_bits) - 1) as u16);
    let mantissa = f64::from(bits & ((1 << mantissa_bits) - 1) as u16) / f64::from(1u32 << mantissa_bits);
    let value = if exponent == 0 {
        sign * mantissa * 2f64.powi(1 - bias)
    } else {
        sign * (1.0 + mantissa) * 2f64.powi(exponent - bias)
    };
    value as f32
}

/// Random finite values of `dtype`, with the f32 each must load as.
fn random_tensor(rng: &mut StdRng, dtype: Dtype, shape: &[usize]) -> (Stored, HostTensor) {
    let len = shape.iter().product();
    let (bytes, data): (Vec<u8>, Vec<f32>) = match dtype {
        Dtype::F32 => {
            let data: Vec<f32> = (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect();
            (data.iter().flat_map(|v| v.to_le_bytes()).collect(), data)
        }
        Dtype::F16 | Dtype::BF16 => {
            let exponent_bits = if dtype == Dtype::F16 { 5 } else { 8 };
            let all_ones = ((1u16 << exponent_bits) - 1) << (15 - exponent_bits);
            let bits: Vec<u16> = (0..len)
                .map(|_| rng.random::<u16>())
                .map(|b| if b & all_ones == all_ones { b & !(1 << 14) } else { b })
                .collect();
            let data = bits.iter().map(|&b| half_by_definition(b, exponent_bits)).collect();
            (bits.iter().flat_map(|b| b.to_le_bytes()).collect(), data)
        }
        Dtype::F64 => {
            let data: Vec<f64> = (0..len).map(|_| rng.random_range(-1.0..1.0)).collect();
            (data.iter().flat_map(|v| v.to_le_bytes()).collect(), data.iter().map(|&v| v as f32).collect())
        }
        other => panic!("no random {other:?} tensors"),
    };
    (Stored { dtype, shape: shape.to_vec(), bytes }, HostTensor { shape: shape.to_vec(), data })
}

fn write_safetensors(path: &Path, tensors: &BTreeMap<String, Stored>) {
    let views = tensors
        .iter()
        .map(|(name, t)| (name.clone(), TensorView::new(t.dtype, t.shape.clone(), &t.bytes).unwrap()));
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}

/// Writes `config` and random weights in `dtype_of(name)` to a fresh
/// directory: one `model.safetensors`, or with `sharded` the first half of the
/// tensors in one shard and the rest in another, plus the index. Like real
/// checkpoints, each layer also carries a rotary `inv_freq` buffer, and a tied
/// model still has its `lm_head.weight`.
fn write_model(name: &str, config: &Value, dtype_of: impl Fn(&str) -> Dtype, sharded: bool) -> Written {
    let dir = fresh_dir(name);
    std::fs::write(dir.join("config.json"), serde_json::to_string_pretty(config).unwrap()).unwrap();
    let parsed = LlamaConfig::from_file(&dir.join("config.json")).unwrap();
    let mut rng = StdRng::seed_from_u64(name.bytes().map(u64::from).sum());
    let mut stored = Vec::new();
    let mut expected = BTreeMap::new();
    for parameter in parsed.parameter_shapes() {
        let (tensor, values) = random_tensor(&mut rng, dtype_of(&parameter.name), &parameter.shape);
        stored.push((parameter.name.clone(), tensor));
        expected.insert(parameter.name, values);
    }
    let extras = (0..parsed.num_hidden_layers)
        .map(|i| (format!("model.layers.{i}.self_attn.rotary_emb.inv_freq"), vec![parsed.head_dim / 2]))
        .chain(
            parsed
                .tie_word_embeddings
                .then(|| ("lm_head.weight".to_string(), vec![parsed.vocab_size, parsed.hidden_size])),
        );
    for (extra, shape) in extras {
        stored.push((extra, random_tensor(&mut rng, Dtype::F32, &shape).0));
    }
    if sharded {
        let second = stored.split_off(stored.len() / 2);
        let mut weight_map = serde_json::Map::new();
        for (shard, tensors) in [(SHARD_1, stored), (SHARD_2, second)] {
            for (tensor, _) in &tensors {
                weight_map.insert(tensor.clone(), json!(shard));
            }
            write_safetensors(&dir.join(shard), &tensors.into_iter().collect());
        }
        let index = json!({"metadata": {"total_size": 0}, "weight_map": weight_map});
        std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
    } else {
        write_safetensors(&dir.join("model.safetensors"), &stored.into_iter().collect());
    }
    Written { dir, config: parsed, expected }
}

/// Loaded values equal the written ones bit for bit.
fn assert_loads_exactly(written: &Written) {
    let loaded = load_checkpoint(&written.dir, &written.config).unwrap();
    assert_eq!(loaded.keys().collect::<Vec<_>>(), written.expected.keys().collect::<Vec<_>>());
    for (name, want) in &written.expected {
        let got = &loaded[name];
        assert_eq!(got.shape, want.shape, "{name}");
        let got_bits: Vec<u32> = got.data.iter().map(|v| v.to_bits()).collect();
        let want_bits: Vec<u32> = want.data.iter().map(|v| v.to_bits()).collect();
        assert!(got_bits == want_bits, "{name} differs");
    }
}

fn load_err(written: &Written) -> CheckpointError {
    match load_checkpoint(&written.dir, &written.config) {
        Ok(_) => panic!("{} loaded", written.dir.display()),
        Err(e) => e,
    }
}

fn with(mut base: Value, key: &str, value: Value) -> Value {
    base[key] = value;
    base
}

#[test]
fn loads_an_untied_f32_checkpoint_with_gqa() {
    let written = write_model("untied-f32", &tiny_config(false), |_| Dtype::F32, false);
    assert_eq!(written.expected["model.layers.1.self_attn.k_proj.weight"].shape, vec![8, 16]);
    assert_eq!(written.expected["lm_head.weight"].shape, vec![11, 16]);
    assert_loads_exactly(&written);
}

#[test]
fn loads_a_tied_bf16_checkpoint_and_ignores_its_lm_head_and_inv_freq() {
    let written = write_model("tied-bf16", &tiny_config(true), |_| Dtype::BF16, false);
    assert!(!written.expected.contains_key("lm_head.weight"));
    assert_loads_exactly(&written);
}

#[test]
fn loads_f16_and_mixed_dtypes() {
    let written = write_model("untied-f16", &tiny_config(false), |_| Dtype::F16, false);
    assert_loads_exactly(&written);
    // Norms kept in f32 beside half-precision matrices, as mixed exports do.
    let mixed = |name: &str| if name.contains("norm") { Dtype::F32 } else { Dtype::BF16 };
    assert_loads_exactly(&write_model("mixed", &tiny_config(true), mixed, false));
}

#[test]
fn loads_a_sharded_checkpoint() {
    assert_loads_exactly(&write_model("sharded-f16", &tiny_config(false), |_| Dtype::F16, true));
    assert_loads_exactly(&write_model("sharded-tied-f32", &tiny_config(true), |_| Dtype::F32, true));
}

/// The reader `weft export` streams from: any order, across shards, each
/// tensor as `load_checkpoint` gives it; a name the config does not list is
/// an error, not a panic.
#[test]
fn a_checkpoint_reader_reads_tensors_in_any_order() {
    let written = write_model("reader-sharded", &tiny_config(false), |_| Dtype::BF16, true);
    let mut reader = CheckpointReader::open(&written.dir, &written.config).unwrap();
    let in_file_order = reader.names_in_file_order();
    let mut sorted = in_file_order.clone();
    sorted.sort();
    assert_eq!(sorted, written.expected.keys().cloned().collect::<Vec<_>>());
    for name in in_file_order.iter().rev() {
        let got = reader.read(name).unwrap();
        let want = &written.expected[name];
        assert_eq!(got.shape, want.shape, "{name}");
        assert!(got.data.iter().zip(&want.data).all(|(g, w)| g.to_bits() == w.to_bits()), "{name}");
    }
    let err = reader.read("model.layers.0.self_attn.rotary_emb.inv_freq").unwrap_err();
    assert!(matches!(err, CheckpointError::NotInConfig { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "`model.layers.0.self_attn.rotary_emb.inv_freq` is not a tensor of the model the config describes"
    );
}

#[test]
fn a_directory_without_weights_says_what_it_looked_for() {
    let dir = fresh_dir("empty");
    let config = LlamaConfig::from_json_str(&tiny_config(false).to_string(), "config.json").unwrap();
    let err = load_checkpoint(&dir, &config).unwrap_err();
    assert!(matches!(err, CheckpointError::NoWeights { .. }));
    assert_eq!(
        err.to_string(),
        format!(
            "{} holds no checkpoint: expected model.safetensors or model.safetensors.index.json",
            dir.display()
        )
    );
}

/// A config whose `num_hidden_layers` is not the checkpoint's is refused
/// naming both numbers, from the safetensors header or the index alone.
#[test]
fn a_layer_count_other_than_the_checkpoints_names_both() {
    for sharded in [false, true] {
        let name = if sharded { "layers-sharded" } else { "layers-single" };
        let mut written = write_model(name, &tiny_config(false), |_| Dtype::F32, sharded);
        let checkpoint =
            written.dir.join(if sharded { "model.safetensors.index.json" } else { "model.safetensors" });
        for (configured, consequence) in [
            (3, "layers 2..3 would have no weights; set `num_hidden_layers` to 2"),
            (1, "weft would silently drop layers 1..2; set `num_hidden_layers` to 2"),
            (1_000_000_000, "layers 2..1000000000 would have no weights"),
        ] {
            written.config.num_hidden_layers = configured;
            assert!(check_layer_count(&written.dir, &written.config).is_err());
            let err = load_err(&written);
            assert!(matches!(err, CheckpointError::LayerCount { found: 2, .. }), "{err:?}");
            let message = err.to_string();
            assert!(
                message.starts_with(&format!(
                    "{}: `num_hidden_layers` is {configured}, but the checkpoint {} holds 2 layers",
                    written.dir.join("config.json").display(),
                    checkpoint.display()
                )),
                "{message}"
            );
            assert!(message.contains(consequence), "{message}");
        }
        written.config.num_hidden_layers = 2;
        assert!(check_layer_count(&written.dir, &written.config).is_ok());
    }
    // No checkpoint: nothing to check against (load_checkpoint says what is missing).
    let config = LlamaConfig::from_json_str(&tiny_config(false).to_string(), "config.json").unwrap();
    assert!(check_layer_count(&fresh_dir("layers-none"), &config).is_ok());
}

#[test]
fn an_untied_config_needs_an_lm_head() {
    let written = write_model("no-lm-head", &tiny_config(false), |_| Dtype::F32, false);
    let path = written.dir.join("model.safetensors");
    let file = TensorFile::load(&path).unwrap();
    let without_lm_head: BTreeMap<String, HostTensor> = file
        .names()
        .into_iter()
        .filter(|name| name != "lm_head.weight")
        .map(|name| file.f32(&name).map(|t| (name, t)))
        .collect::<Result<_, _>>()
        .unwrap();
    save(&path, &without_lm_head).unwrap();
    let err = load_err(&written);
    assert_eq!(
        err.to_string(),
        format!(
            "checkpoint tensor `lm_head.weight` (expected shape [11, 16]) is missing; searched {} (config.json \
             has tie_word_embeddings = false, so the LM head needs its own weight)",
            written.dir.join("model.safetensors").display()
        )
    );
}

#[test]
fn a_misshaped_tensor_names_both_shapes() {
    // Written without GQA, read with it: k_proj is [16, 16] on disk, [8, 16] expected.
    let mut written = write_model(
        "misshaped",
        &with(tiny_config(false), "num_key_value_heads", json!(4)),
        |_| Dtype::BF16,
        false,
    );
    written.config.num_key_value_heads = 2;
    let err = load_err(&written);
    assert!(matches!(err, CheckpointError::Shape { .. }));
    assert_eq!(
        err.to_string(),
        format!(
            "checkpoint tensor `model.layers.0.self_attn.k_proj.weight` in {} has shape [16, 16]; the config \
             expects [8, 16]",
            written.dir.join("model.safetensors").display()
        )
    );
}

#[test]
fn an_unsupported_dtype_is_named() {
    let f64_norm = |name: &str| if name == "model.norm.weight" { Dtype::F64 } else { Dtype::F32 };
    let written = write_model("f64-norm", &tiny_config(false), f64_norm, false);
    let err = load_err(&written);
    assert!(matches!(err, CheckpointError::File(TensorFileError::Dtype { .. })));
    assert_eq!(
        err.to_string(),
        format!(
            "tensor `model.norm.weight` in {} is F64; expected F32, F16 or BF16",
            written.dir.join("model.safetensors").display()
        )
    );
}

#[test]
fn a_corrupt_weights_file_is_a_format_error() {
    let written = write_model("corrupt", &tiny_config(false), |_| Dtype::F32, false);
    let path = written.dir.join("model.safetensors");
    std::fs::write(&path, b"\x08\x00\x00\x00\x00\x00\x00\x00not json").unwrap();
    let err = load_err(&written);
    assert!(matches!(err, CheckpointError::File(TensorFileError::Format { .. })), "{err}");
    assert!(
        err.to_string().starts_with(&format!("{} is not a valid safetensors file: ", path.display())),
        "{err}"
    );
}

/// Tensors are read one at a time from their offsets, so a file cut short
/// (a download that stopped) is caught from its header, before any tensor.
#[test]
fn a_truncated_weights_file_is_a_format_error() {
    let written = write_model("truncated", &tiny_config(false), |_| Dtype::F32, false);
    let path = written.dir.join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 4]).unwrap();
    let err = load_err(&written);
    assert!(matches!(err, CheckpointError::File(TensorFileError::Format { .. })), "{err}");
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let data_len = bytes.len() - 8 - header_len;
    assert_eq!(
        err.to_string(),
        format!(
            "{} is not a valid safetensors file: its header describes {data_len} bytes of tensors, and the \
             file holds {}",
            path.display(),
            data_len - 4
        )
    );
}

#[test]
fn a_shard_named_in_the_index_must_exist() {
    let written = write_model("lost-shard", &tiny_config(false), |_| Dtype::F32, true);
    std::fs::remove_file(written.dir.join(SHARD_2)).unwrap();
    let err = load_err(&written);
    assert!(matches!(err, CheckpointError::MissingShard { .. }));
    let index = serde_json::from_str::<Value>(
        &std::fs::read_to_string(written.dir.join("model.safetensors.index.json")).unwrap(),
    )
    .unwrap();
    // The error names the shard's alphabetically first tensor.
    let first_in_shard_2 = index["weight_map"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, shard)| *shard == SHARD_2)
        .map(|(name, _)| name.clone())
        .min()
        .unwrap();
    assert_eq!(
        err.to_string(),
        format!(
            "{} puts `{first_in_shard_2}` in the shard {}, which does not exist",
            written.dir.join("model.safetensors.index.json").display(),
            written.dir.join(SHARD_2).display()
        )
    );
}

/// Rewrites the index of `written` with `edit` applied to its JSON.
fn edit_index(written: &Written, edit: impl FnOnce(&mut Value)) {
    let path = written.dir.join("model.safetensors.index.json");
    let mut index: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut index);
    std::fs::write(&path, index.to_string()).unwrap();
}

#[test]
fn a_tensor_absent_from_the_weight_map_or_its_shard_is_missing() {
    let written = write_model("unmapped", &tiny_config(false), |_| Dtype::F32, true);
    let index_path = written.dir.join("model.safetensors.index.json");
    edit_index(&written, |index| {
        index["weight_map"].as_object_mut().unwrap().remove("model.norm.weight");
    });
    let err = load_err(&written);
    assert_eq!(
        err.to_string(),
        format!(
            "checkpoint tensor `model.norm.weight` (expected shape [16]) is missing; searched the weight_map of {}",
            index_path.display()
        )
    );
    // Mapped to the wrong shard: the shard is searched and named.
    edit_index(&written, |index| {
        index["weight_map"]["model.norm.weight"] = json!(SHARD_1);
    });
    let err = load_err(&written);
    assert!(matches!(err, CheckpointError::MissingTensor { .. }));
    assert_eq!(
        err.to_string(),
        format!(
            "checkpoint tensor `model.norm.weight` (expected shape [16]) is missing; searched {}",
            written.dir.join(SHARD_1).display()
        )
    );
}

#[test]
fn a_malformed_index_is_rejected_with_its_position_or_reason() {
    let written = write_model("bad-index", &tiny_config(false), |_| Dtype::F32, true);
    let path = written.dir.join("model.safetensors.index.json");

    std::fs::write(&path, "{\n  \"weight_map\": {\n    \"a\": \"b\"\n  \n").unwrap();
    let err = load_err(&written);
    assert!(matches!(err, CheckpointError::IndexJson { line: 5, column: 0, .. }), "{err:?}");
    assert_eq!(err.to_string(), format!("{}:5:0: invalid JSON: EOF while parsing an object", path.display()));

    std::fs::write(&path, r#"{"metadata": {}}"#).unwrap();
    let err = load_err(&written);
    assert_eq!(err.to_string(), format!("{}: expected an object with a `weight_map` object", path.display()));

    std::fs::write(&path, r#"{"weight_map": {"model.norm.weight": 3}}"#).unwrap();
    let err = load_err(&written);
    assert_eq!(
        err.to_string(),
        format!("{}: `weight_map` maps `model.norm.weight` to 3; expected a file name", path.display())
    );

    std::fs::write(&path, r#"{"weight_map": {"model.norm.weight": "../elsewhere.safetensors"}}"#).unwrap();
    let err = load_err(&written);
    assert!(matches!(err, CheckpointError::IndexFormat { .. }));
    assert_eq!(
        err.to_string(),
        format!(
            "{}: `weight_map` maps `model.norm.weight` to \"../elsewhere.safetensors\", which is not a file name \
             inside {}",
            path.display(),
            written.dir.display()
        )
    );
}
