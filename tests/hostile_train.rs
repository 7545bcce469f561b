//! `weft train` on bad input (issue 12's list): each refused with a clear
//! message before anything is written, so the run directory, the data and
//! the model stay as they were. None of these cases reaches the GPU.

mod common;

use common::hostile::{Case, case, check_all};

/// `input_ids` of `shape` (i64) holding `value` everywhere but where `bad` says.
fn ids(shape: [usize; 2], fill: i64, bad: Option<(usize, i64)>) -> Vec<u8> {
    let mut values = vec![fill; shape[0] * shape[1]];
    if let Some((at, value)) = bad {
        values[at] = value;
    }
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::I64, shape.to_vec(), &bytes).unwrap();
    safetensors::serialize([("input_ids", view)], None).unwrap()
}

/// The fixture's tiny GQA LLaMA (vocab 64, max_position_embeddings 64) and its adapter.
/// A word-level `tokenizer.json` of `size` tokens (`w0`, `w1`, …).
fn word_level_tokenizer(size: usize) -> String {
    let vocab: Vec<String> = (0..size).map(|i| format!("\"w{i}\": {i}")).collect();
    format!(
        r#"{{"version": "1.0", "truncation": null, "padding": null, "added_tokens": [], "normalizer": null,
            "pre_tokenizer": {{"type": "Whitespace"}}, "post_processor": null, "decoder": null,
            "model": {{"type": "WordLevel", "vocab": {{{}}}, "unk_token": "w0"}}}}"#,
        vocab.join(", ")
    )
}

fn with_model(c: Case) -> Case {
    c.copy("tests/data/train/base/config.json", "base/config.json")
        .copy("tests/data/train/base/model.safetensors", "base/model.safetensors")
        .copy("tests/data/train/init-adapter/adapter_config.json", "adapter/adapter_config.json")
        .copy("tests/data/train/init-adapter/adapter_model.safetensors", "adapter/adapter_model.safetensors")
        .copy("tests/data/train/data.safetensors", "data.safetensors")
}

/// `weft train` on the fixture, `extra` flags replacing the defaults of the same name.
fn train(name: &str, extra: &[&str]) -> Case {
    let mut args = vec!["train"];
    let defaults =
        [("--model", "base"), ("--data", "data.safetensors"), ("--out", "run"), ("--seq-len", "32")];
    for (flag, value) in defaults {
        if !extra.contains(&flag) {
            args.extend([flag, value]);
        }
    }
    args.extend_from_slice(extra);
    with_model(case(name, &args))
}

#[test]
fn train_refuses_bad_data() {
    check_all(&[
        train("id beyond the vocabulary", &["--data", "bad.safetensors"])
            .file("bad.safetensors", ids([4, 32], 3, Some((37, 64))))
            .expect("row 1, position 5: id 64 is not a token id")
            .expect("vocab_size 64"),
        train("negative id", &["--data", "bad.safetensors"])
            .file("bad.safetensors", ids([4, 32], 3, Some((0, -1))))
            .expect("row 0, position 0: id -1"),
        train("no sequences", &["--data", "empty.safetensors"])
            .file("empty.safetensors", ids([0, 32], 0, None))
            .expect("no tokens in empty.safetensors"),
        train("sequences shorter than --seq-len", &["--data", "short.safetensors"])
            .file("short.safetensors", ids([4, 16], 1, None))
            .expect("have T = 16 tokens, but the sequence length is 32"),
        train("data is not a tensor file", &["--data", "text.safetensors"])
            .file("text.safetensors", "hello")
            .expect("text.safetensors"),
        train("missing data", &["--data", "nowhere.safetensors"]).expect("nowhere.safetensors"),
        train("text for a model too small for bytes", &["--data", "notes.txt"])
            .file("notes.txt", "some text to train on")
            .expect("no tokenizer"),
        train("a tokenizer larger than the vocabulary", &["--data", "notes.txt", "--tokenizer", "tok.json"])
            .file("notes.txt", "some text to train on")
            .file("tok.json", word_level_tokenizer(100))
            .expect("tok.json")
            .expect("64"),
        train(
            "text shorter than one sequence",
            &["--data", "notes.txt", "--tokenizer", "tok.json", "--heldout", "0"],
        )
        .file("notes.txt", "w1 w2 w3")
        .file("tok.json", word_level_tokenizer(64))
        .expect("notes.txt"),
    ]);
}

#[test]
fn train_refuses_bad_settings() {
    check_all(&[
        train("T the pattern does not divide", &["--seq-len", "30", "--data", "d30.safetensors"])
            .file("d30.safetensors", ids([4, 30], 1, None))
            .expect("seq_len N = 30 is not divisible by 7"),
        train("zero steps", &["--steps", "0"]).expect("--steps 0"),
        train("zero save interval", &["--save-every", "0"]).expect("--save-every 0"),
        train("beta2 of one", &["--adam-beta2", "1"]).expect("adam-beta2 = 1 must be in [0, 1)"),
        train("negative learning rate", &["--lr=-1"]).expect("lr = -1 must not be negative"),
        train("held-out fraction of one", &["--heldout", "1"]).expect("--heldout 1 must be in [0, 1)"),
        train("passkey fraction of one", &["--passkey-fraction", "1"])
            .expect("--passkey-fraction 1 must be in [0, 1)"),
        train("passkey documents longer than a sequence", &["--passkey-fraction", "0.5", "--tokenizer", "tok.json"])
            .file("tok.json", word_level_tokenizer(64))
            .expect("--passkey-fraction at --seq-len 32")
            .expect("the passkey prompt needs at least"),
        train("no model at all", &["--model", "nowhere"]).expect("nowhere"),
        train("init adapter under full training", &["--mode", "full", "--init-adapter", "adapter"])
            .expect("--init-adapter is for LoRA training"),
        with_model(case("no output directory", &["train", "--model", "base", "--data", "data.safetensors", "--seq-len", "32"]))
            .expect("give --out DIR"),
        train("unknown key in the config file", &["--config", "c.toml"])
            .file("c.toml", "seq-len = 32\nlearning-rate = 1e-3\n")
            .expect("c.toml:2:1")
            .expect("learning-rate"),
        train("config file with a bad value", &["--config", "c.toml"])
            .file("c.toml", "seq-len = 32\nsteps = \"many\"\n")
            .expect("c.toml:2:9")
            .expect("invalid type: string \"many\""),
        train("model table with a bad value", &["--config", "c.toml"])
            .file("c.toml", "steps = 2\n\n[model]\nhidden_size = -8\n")
            .expect("c.toml:4:15"),
        train("model table with an unknown key", &["--config", "c.toml"])
            .file("c.toml", "[model]\nhidden = 8\n")
            .expect("c.toml:2:1")
            .expect("hidden"),
        train("model path and model table", &["--config", "c.toml"])
            .file("c.toml", "[model]\nhidden_size = 8\nintermediate_size = 8\nnum_hidden_layers = 1\nnum_attention_heads = 1\nvocab_size = 8\nmax_position_embeddings = 8\n")
            .expect("not both"),
    ]);
}

#[test]
fn train_refuses_bad_adapters() {
    check_all(&[
        train("adapter of another rank", &["--init-adapter", "adapter"])
            .file("adapter/adapter_config.json", r#"{"peft_type": "LORA", "r": 8, "lora_alpha": 16, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]}"#)
            .expect("adapter"),
        train("adapter of other targets", &["--init-adapter", "adapter"])
            .file("adapter/adapter_config.json", r#"{"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj"]}"#)
            .expect("k_proj"),
        train("adapter that is not LoRA", &["--init-adapter", "adapter"])
            .file("adapter/adapter_config.json", r#"{"peft_type": "IA3", "target_modules": ["q_proj"]}"#)
            .expect("IA3"),
    ]);
}

#[test]
fn train_refuses_run_directories_it_would_damage() {
    check_all(&[
        train("another run in --out", &[])
            .file("run/run.json", "{}")
            .expect("already holds a run")
            .expect("--resume"),
        train("resume without a run", &["--resume"])
            .file("run/notes.txt", "mine")
            .expect("holds no run to resume"),
        train("--out inside the model", &["--out", "base/run"]).expect("inside"),
        train("--out two new levels inside the model", &["--out", "base/runs/first"]).expect("inside"),
        train("--out is the data file", &["--out", "data.safetensors"]).expect("data.safetensors"),
        train("data inside --out", &["--out", ".", "--data", "data.safetensors"]).expect("inside it"),
        train("--out under a file", &["--out", "data.safetensors/run"]).expect("data.safetensors"),
    ]);
}
