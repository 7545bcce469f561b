//! `weft eval` on the 2-layer checkpoint in `tests/data/llama-2layer`
//! (vocab 128): its perplexity against the loop-by-loop f64 LLaMA in
//! `ir/tests/support/llama_reference.rs` run on the same windows, and its
//! passkey accuracy against the same reference's argmax on the same prompts.

mod common;

use std::collections::HashMap;
use std::path::Path;

use common::{gpu, ok, root, scratch};
use weft_ir::Overrides;
use weft_ir::interp::Tensor;
use weft_ir::model::{LlamaConfig, LoraConfig};
use weft_runtime::data::{SpecialIds, Tokenizer};
use weft_runtime::eval::passkey_trial;
use weft_runtime::io::load_checkpoint;

#[path = "../ir/tests/support/llama_reference.rs"]
mod llama_reference;

/// The bound: GPU perplexity within 1e-4 (relative) of an independent computation.
const TOLERANCE: f64 = 1e-4;

fn fixture() -> std::path::PathBuf {
    root().join("tests/data/llama-2layer")
}

/// `input_ids` as I64 `[rows, len]`.
fn write_ids(path: &Path, ids: &[i64], rows: usize, len: usize) {
    let bytes: Vec<u8> = ids.iter().flat_map(|v| v.to_le_bytes()).collect();
    let view =
        safetensors::tensor::TensorView::new(safetensors::Dtype::I64, vec![rows, len], &bytes).unwrap();
    std::fs::write(path, safetensors::serialize([("input_ids", view)], None).unwrap()).unwrap();
}

/// The checkpoint's weights as f64 tensors, for the reference.
fn weights(dir: &Path) -> (LlamaConfig, HashMap<String, Tensor>) {
    let config = LlamaConfig::from_file(&dir.join("config.json")).unwrap();
    let tensors = load_checkpoint(dir, &config).unwrap();
    let weights = tensors
        .into_iter()
        .map(|(n, t)| (n, Tensor::new(t.shape, t.data.iter().map(|&v| f64::from(v)).collect()).unwrap()))
        .collect();
    (config, weights)
}

/// The reference model's logits `[t, vocab]` for one sequence, under causal attention.
fn reference_logits(config: &LlamaConfig, weights: &HashMap<String, Tensor>, ids: &[u32]) -> Vec<f64> {
    let t = ids.len();
    let mut weights = weights.clone();
    weights.insert(
        "input_ids".into(),
        Tensor::new(vec![1, t], ids.iter().map(|&v| f64::from(v)).collect()).unwrap(),
    );
    let overrides = Overrides {
        seq_len: Some(t),
        n_heads: Some(config.num_attention_heads),
        n_layers: Some(config.num_hidden_layers),
        head_dim: Some(config.head_dim),
    };
    let causal =
        weft_ir::spec::load_schedule(&root().join("examples/patterns/causal.toml"), &overrides).unwrap();
    let no_lora = LoraConfig { rank: 1, alpha: 1.0, target_modules: vec![], use_rslora: false };
    llama_reference::reference_logits(config, &causal, &no_lora, &weights, 1, t)
}

/// exp(mean over windows of the mean next-token cross-entropy), windows at 0, stride, … that fit.
fn reference_perplexity(
    config: &LlamaConfig,
    weights: &HashMap<String, Tensor>,
    stream: &[u32],
    t: usize,
    stride: usize,
) -> f64 {
    let v = config.vocab_size;
    let mut losses = Vec::new();
    let mut start = 0;
    while start + t <= stream.len() {
        let window = &stream[start..start + t];
        let logits = reference_logits(config, weights, window);
        let loss: f64 = (0..t - 1)
            .map(|i| {
                let row = &logits[i * v..(i + 1) * v];
                let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                max + row.iter().map(|x| (x - max).exp()).sum::<f64>().ln() - row[window[i + 1] as usize]
            })
            .sum::<f64>()
            / (t - 1) as f64;
        losses.push(loss);
        start += stride;
    }
    (losses.iter().sum::<f64>() / losses.len() as f64).exp()
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn assert_close(got: f64, want: f64, what: &str) {
    let err = (got - want).abs() / want.abs();
    assert!(err <= TOLERANCE, "{what}: {got} vs {want} (relative error {err:e})");
}

#[test]
fn perplexity_matches_the_f64_reference_on_the_same_windows() {
    if !gpu() {
        return;
    }
    let dir = scratch("eval_perplexity");
    let (rows, len) = (3, 24);
    let ids: Vec<i64> = (0..rows * len).map(|i| ((i * 37 + 11) % 128) as i64).collect();
    let data = dir.join("ids.safetensors");
    write_ids(&data, &ids, rows, len);
    let json = dir.join("eval.json");
    let model = fixture();
    // Overlapping windows (stride 8), a length that spans rows, and one longer than the data.
    let stdout = ok(&[
        "eval",
        model.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--seq-len",
        "16,32,128",
        "--stride",
        "8",
        "--json",
        json.to_str().unwrap(),
    ]);
    let (config, weights) = self::weights(&model);
    let stream: Vec<u32> = ids.iter().map(|&id| id as u32).collect();
    let results = read_json(&json);
    for (t, windows) in [(16, 8), (32, 6)] {
        let want = reference_perplexity(&config, &weights, &stream, t, 8);
        let got = results["perplexity"][t.to_string()].as_f64().unwrap();
        assert_close(got, want, &format!("perplexity at T = {t}"));
        // The table: T, windows, perplexity to 4 places.
        let line = stdout.lines().find(|l| l.split_whitespace().next() == Some(&t.to_string())).unwrap();
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cells[1], windows.to_string(), "{stdout}");
        assert_close(cells[2].parse().unwrap(), want, "the printed perplexity");
    }
    assert!(results["perplexity"].get("128").is_none(), "{results}");
    assert_eq!(results["passkey"], serde_json::json!({}));
}

/// A checkpoint saved in bf16 is evaluated with its weights kept in bf16 on
/// the host and the device (`--weight-dtype auto`): the perplexity of its own
/// values in f64, and the f32 run's to the last digit.
#[test]
fn a_bf16_checkpoint_evaluates_in_bf16_with_the_perplexity_of_f32() {
    if !gpu() {
        return;
    }
    let dir = scratch("eval_bf16");
    let model = dir.join("model");
    common::bf16_model_copy(&fixture(), &model);
    let ids: Vec<i64> = (0..48).map(|i| ((i * 53 + 5) % 128) as i64).collect();
    let data = dir.join("ids.safetensors");
    write_ids(&data, &ids, 2, 24);
    let run = |extra: &[&str], name: &str| {
        let json = dir.join(name);
        let mut args =
            vec!["eval", model.to_str().unwrap(), "--data", data.to_str().unwrap(), "--seq-len", "16,32"];
        args.extend(["--json", json.to_str().unwrap()]);
        args.extend(extra);
        let o = common::weft(&args);
        assert!(o.status.success(), "{}", common::stderr(&o));
        (read_json(&json), common::stderr(&o))
    };
    let (packed, log) = run(&[], "bf16.json");
    assert!(log.contains("frozen values stored as bf16"), "{log}");
    let (plain, log) = run(&["--weight-dtype", "f32"], "f32.json");
    assert!(!log.contains("stored as bf16"), "{log}");
    assert_eq!(packed, plain);
    let (config, weights) = self::weights(&model);
    let stream: Vec<u32> = ids.iter().map(|&id| id as u32).collect();
    for t in [16, 32] {
        let want = reference_perplexity(&config, &weights, &stream, t, t);
        let got = packed["perplexity"][t.to_string()].as_f64().unwrap();
        assert_close(got, want, &format!("perplexity at T = {t}"));
    }
}

/// A word-level tokenizer.json over the prompt's words; ids 1 and 2 are the
/// fixture's `bos_token_id` and `eos_token_id` (written by hand: the format
/// `tokenizers` saves).
fn write_tokenizer(path: &Path) {
    let words = [
        "[UNK]",
        "<s>",
        "</s>",
        "The",
        "the",
        "pass",
        "key",
        "is",
        ".",
        "grass",
        "green",
        "sky",
        "blue",
        "sun",
        "yellow",
        "Here",
        "we",
        "go",
        "There",
        "and",
        "back",
        "again",
        "Remember",
        "it",
        "What",
        "?",
        "important",
        "info",
        "text",
        "hello",
        "world",
    ];
    let mut vocab = serde_json::Map::new();
    for word in words {
        let id = vocab.len();
        vocab.entry(word.to_string()).or_insert(serde_json::json!(id));
    }
    let special = |id: u32, content: &str| {
        serde_json::json!({"id": id, "content": content, "single_word": false, "lstrip": false,
            "rstrip": false, "normalized": false, "special": true})
    };
    let tokenizer = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null,
        "added_tokens": [special(1, "<s>"), special(2, "</s>")],
        "normalizer": null, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null,
        "decoder": null, "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]"}
    });
    std::fs::write(path, tokenizer.to_string()).unwrap();
}

#[test]
fn passkey_and_text_data_agree_with_the_reference() {
    if !gpu() {
        return;
    }
    let dir = scratch("eval_passkey");
    let model = dir.join("model");
    std::fs::create_dir_all(&model).unwrap();
    for file in ["config.json", "generation_config.json", "model.safetensors"] {
        std::fs::copy(fixture().join(file), model.join(file)).unwrap();
    }
    write_tokenizer(&model.join("tokenizer.json"));
    let data = dir.join("docs.jsonl");
    let docs = ["The grass is green. hello world", "the sky is blue . What is it?", "There and back again."];
    let lines: Vec<String> = docs.iter().map(|d| serde_json::json!({ "text": d }).to_string()).collect();
    std::fs::write(&data, lines.join("\n")).unwrap();
    let json = dir.join("eval.json");
    let (trials, seed) = (3, 5);
    let stdout = ok(&[
        "eval",
        model.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--seq-len",
        "8,64",
        "--passkey",
        &trials.to_string(),
        "--seed",
        &seed.to_string(),
        "--json",
        json.to_str().unwrap(),
    ]);
    let results = read_json(&json);
    let (config, weights) = self::weights(&model);
    let tokenizer =
        Tokenizer::from_file(&model.join("tokenizer.json"), SpecialIds::from_model_dir(&model).unwrap())
            .unwrap();
    assert_eq!((tokenizer.bos_id(), tokenizer.eos_id()), (Some(1), Some(2)));

    // Text: the documents tokenized and joined with EOS, one window of 8 at each multiple of 8.
    let mut stream = Vec::new();
    for (i, doc) in docs.iter().enumerate() {
        if i > 0 {
            stream.push(2);
        }
        stream.extend(tokenizer.encode(doc).unwrap());
    }
    assert!(stream.len() >= 16, "{stream:?}");
    let want = reference_perplexity(&config, &weights, &stream, 8, 8);
    assert_close(results["perplexity"]["8"].as_f64().unwrap(), want, "perplexity of the text at T = 8");

    // Passkey at 64: the same prompts, scored by the reference's argmax, and
    // the answer's mean negative log-likelihood. At 8 the prompt cannot fit.
    let (mut passed, mut nll) = (0, 0.0);
    for i in 0..trials {
        let trial = passkey_trial(&tokenizer, 64, seed, i).unwrap();
        let logits: Vec<f32> =
            reference_logits(&config, &weights, &trial.ids).iter().map(|&x| x as f32).collect();
        passed += usize::from(trial.passed(&logits, config.vocab_size));
        nll += trial.answer_nll(&logits, config.vocab_size).unwrap() / trials as f64;
    }
    let accuracy = results["passkey"]["64"].as_f64().unwrap();
    assert_eq!(accuracy, passed as f64 / trials as f64, "{results}");
    assert!(results["passkey"].get("8").is_none(), "{results}");
    assert_close(results["passkey_answer_nll"]["64"].as_f64().unwrap(), nll, "passkey answer NLL at T = 64");
    assert!(results["passkey_answer_nll"].get("8").is_none(), "{results}");
    let row = stdout.lines().find(|l| l.trim_start().starts_with("64 ")).unwrap();
    assert!(row.contains(&format!("{passed}/{trials}")), "{stdout}");

    // Decoding the answers (prefill, then a token at a time against the caches) gives the same verdicts.
    let decoded = dir.join("decoded.json");
    let args = ["eval", model.to_str().unwrap(), "--data", data.to_str().unwrap(), "--seq-len", "8,64"];
    let seed = seed.to_string();
    let trials = trials.to_string();
    let more =
        ["--passkey", &trials, "--seed", &seed, "--passkey-decode", "--json", decoded.to_str().unwrap()];
    ok(&[&args[..], &more[..]].concat());
    assert_eq!(read_json(&decoded)["passkey"]["64"], results["passkey"]["64"]);
    // Decoding reads argmaxes, not the answer's likelihood.
    assert!(read_json(&decoded).get("passkey_answer_nll").is_none());
}
