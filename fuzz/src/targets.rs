//! What each fuzz target does with its input. One file, shared: the fuzz
//! binaries call these, and `tests/fuzz_regressions.rs` (which includes this
//! file by path) calls them on every committed corpus and regression input, so
//! CI replays what the fuzzer found without running it.
//!
//! Each function feeds bytes to a parser of user input and on to the checks
//! a command would run next. Errors are fine; a panic, an abort or a hang is
//! the bug.

use weft_ir::graph::parse_sexpr;
use weft_ir::model::LlamaConfig;
use weft_ir::{Overrides, SourceFile, Spec};
use weft_runtime::io::{TensorFile, parse_adapter_config};

/// Sizes small enough that evaluating a dense mask is cheap, whatever the spec says.
const SEQ_LEN: usize = 64;
const N_HEADS: usize = 4;

/// A pattern spec: parse, resolve at small sizes, evaluate every head's mask.
pub fn spec(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(spec) = Spec::parse(SourceFile::new("fuzz.toml", text)) else { return };
    let overrides =
        Overrides { seq_len: Some(SEQ_LEN), n_heads: Some(N_HEADS), n_layers: Some(2), head_dim: Some(8) };
    let Ok(schedule) = spec.resolve(&overrides) else { return };
    for pattern in &schedule.patterns {
        for mask in pattern.head_masks() {
            let dense = mask.dense(SEQ_LEN);
            assert_eq!(dense.len(), SEQ_LEN * SEQ_LEN);
        }
    }
}

/// A hand-written graph (`.sexpr`): parse, then validate (shape inference).
pub fn sexpr(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(graph) = parse_sexpr(&SourceFile::new("fuzz.sexpr", text)) else { return };
    let _ = graph.validate();
}

/// A Hugging Face `config.json`.
pub fn model_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(config) = LlamaConfig::from_json_str(text, "config.json") {
        let _ = config.validate();
    }
}

/// A PEFT `adapter_config.json`.
pub fn adapter_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = parse_adapter_config(text, std::path::Path::new("adapter_config.json"));
}

/// A safetensors file: header, then every tensor decoded as a command would.
pub fn safetensors(data: &[u8]) {
    let Ok(file) = TensorFile::from_bytes("fuzz.safetensors", data.to_vec()) else { return };
    for name in file.names() {
        let _ = file.float_as_f32(&name);
        let _ = file.ints(&name);
    }
}
