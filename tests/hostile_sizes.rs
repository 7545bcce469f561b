//! Hostile sizes (issue 11, items 1 and 6): every size a user gives, and every
//! product of them, is checked against `weft_ir::limits` before anything is
//! allocated or looped over. Each refusal names the value, where it came from
//! and the limit, in well under the harness's 10 s and 2 GiB. One table per
//! kind of entry; the last test shows that real sizes still pass.

mod common;

use std::time::{Duration, Instant};

use common::hostile::{Case, case, check_all};

const SPEC: &str = "examples/patterns/s2attn-roll.toml";
const HUGE_N: &str = "2147483648";
/// What every refusal of `--seq-len 2147483648` says.
const N_REFUSED: &str = "2147483648 is larger than the limit 1048576 (the largest sequence length";

/// A spec command line on a copy of the S2-Attn example.
fn on_spec(name: &str, args: &[&str]) -> Case {
    case(name, args).copy(SPEC, "spec.toml")
}

/// A safetensors file holding one tensor of `dtype` and `shape`, zero-filled.
fn safetensors(tensors: &[(&str, &str, &[usize])]) -> Vec<u8> {
    let mut header = Vec::new();
    let mut offset = 0;
    for (name, dtype, shape) in tensors {
        let bytes = shape.iter().product::<usize>() * if *dtype == "I64" { 8 } else { 4 };
        let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
        header.push(format!(
            r#""{name}":{{"dtype":"{dtype}","shape":[{}],"data_offsets":[{offset},{}]}}"#,
            dims.join(","),
            offset + bytes
        ));
        offset += bytes;
    }
    let header = format!("{{{}}}", header.join(","));
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.resize(out.len() + offset, 0);
    out
}

/// A LLaMA `config.json` (the 2-layer test model's sizes) with `key` set to `value`.
fn config_with(key: &str, value: &str) -> String {
    let mut fields = vec![
        ("hidden_size", "64"),
        ("intermediate_size", "176"),
        ("num_attention_heads", "4"),
        ("num_key_value_heads", "2"),
        ("num_hidden_layers", "2"),
        ("vocab_size", "128"),
        ("max_position_embeddings", "256"),
        ("rms_norm_eps", "1e-6"),
    ];
    match fields.iter_mut().find(|(k, _)| *k == key) {
        Some(field) => field.1 = value,
        None => fields.push((key, value)),
    }
    let body: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\": {v}")).collect();
    format!("{{{}}}", body.join(", "))
}

/// `--seq-len 2147483648` on every command that takes it: clap refuses it (exit 2) at parse time.
#[test]
fn a_huge_seq_len_flag_is_refused_by_every_command() {
    let commands: [(&str, &[&str]); 13] = [
        ("check", &["check", "spec.toml"]),
        ("mask", &["mask", "spec.toml", "--out", "m.npy"]),
        ("inspect", &["inspect", "spec.toml"]),
        ("inspect kernels", &["inspect", "kernels", "spec.toml"]),
        ("compile", &["compile", "spec.toml", "--emit", "plan", "-o", "p.txt"]),
        ("compile model", &["compile", "model/config.json", "--emit", "plan", "-o", "p.txt"]),
        ("graph", &["graph", "spec.toml"]),
        ("bench attn", &["bench", "attn"]),
        ("bench attn list", &["bench", "attn", "--seq-len=1024,2147483648"]),
        ("bench step", &["bench", "step"]),
        ("bench step plan-only", &["bench", "step", "--plan-only"]),
        ("tune", &["tune", "--quick"]),
        ("eval list", &["eval", "model", "--data", "x.txt", "--seq-len=16,2147483648"]),
    ];
    let cases: Vec<Case> = commands
        .iter()
        .map(|(name, args)| {
            let mut args = args.to_vec();
            if !args.iter().any(|a| a.starts_with("--seq-len")) {
                args.extend(["--seq-len", HUGE_N]);
            }
            on_spec(name, &args)
                .copy("tests/data/llama-2layer/config.json", "model/config.json")
                .exit_code(2)
                .expect("--seq-len")
                .expect(N_REFUSED)
                .time_limit(Duration::from_secs(1))
        })
        .collect();
    check_all(&cases);
}

/// The other size flags, including the products they would make, refused at parse time.
#[test]
fn huge_or_zero_size_flags_are_refused_at_parse_time() {
    check_all(&[
        on_spec(
            "heads i64 max on mask",
            &["mask", "spec.toml", "--heads", "9223372036854775807", "-o", "m.npy"],
        )
        .exit_code(2)
        .expect("--heads")
        .expect("9223372036854775807 is larger than the limit 4096"),
        case("heads i64 max on bench attn", &["bench", "attn", "--heads", "9223372036854775807"])
            .exit_code(2)
            .expect("limit 4096"),
        on_spec("mask 1e8 heads", &["mask", "spec.toml", "--heads", "100000000", "-o", "m.png"])
            .exit_code(2)
            .expect("100000000 is larger than the limit 4096"),
        on_spec("head dim 100000", &["inspect", "spec.toml", "--head-dim", "100000"])
            .exit_code(2)
            .expect("--head-dim")
            .expect("100000 is larger than the limit 1024"),
        on_spec(
            "batch u32 max",
            &["compile", "spec.toml", "--emit", "plan", "--batch", "4294967295", "-o", "p"],
        )
        .exit_code(2)
        .expect("--batch")
        .expect("4294967295 is larger than the limit 65536"),
        on_spec("batch 0", &["graph", "spec.toml", "--batch", "0"])
            .exit_code(2)
            .expect("--batch")
            .expect("the batch size must be at least 1"),
        case("bench step 1e8 layers", &["bench", "step", "--layers", "100000000", "--plan-only"])
            .exit_code(2)
            .expect("--layers")
            .expect("100000000 is larger than the limit 1024"),
        case("bench step huge vocab", &["bench", "step", "--vocab", "1000000000", "--plan-only"])
            .exit_code(2)
            .expect("limit 1048576"),
        case("bench step huge hidden", &["bench", "step", "--hidden", "1000000000", "--plan-only"])
            .exit_code(2)
            .expect("limit 131072"),
        case("bench attn repeats 0", &["bench", "attn", "--repeats", "0"])
            .exit_code(2)
            .expect("--repeats")
            .expect("the number of repeats must be at least 1"),
        case("tune repeats 0", &["tune", "--repeats", "0"]).exit_code(2).expect("at least 1"),
        case(
            "lora rank huge",
            &["compile", "m/config.json", "--train", "--lora-rank", "99999999", "--emit", "plan", "-o", "p"],
        )
        .exit_code(2)
        .expect("--lora-rank")
        .expect("limit 4096"),
        on_spec("inspect block 0", &["inspect", "spec.toml", "--block", "0"]).exit_code(2).expect("--block"),
    ]);
}

/// Sizes in a spec's `[defaults]`: refused with the key, the value, the limit and the place.
#[test]
fn huge_spec_defaults_are_refused_where_they_are_written() {
    let spec = |line: &str| {
        format!(
            "name = \"x\"\n[defaults]\nseq_len = 1024\n{line}\n[[heads]]\nrange = \"0..H\"\nmask = \"causal\"\n"
        )
    };
    check_all(&[
        case("n_heads 1e9", &["check", "s.toml"])
            .file("s.toml", spec("n_heads = 1000000000"))
            .expect("n_heads = 1000000000 is larger than the limit 4096")
            .expect("s.toml:4:11"),
        case("n_heads 1e9 mask", &["mask", "s.toml", "-o", "m.npy"])
            .file("s.toml", spec("n_heads = 1000000000"))
            .expect("n_heads = 1000000000 is larger than the limit 4096"),
        case("head_dim huge", &["inspect", "s.toml"])
            .file("s.toml", spec("n_heads = 8\nhead_dim = 100000"))
            .expect("head_dim = 100000 is larger than the limit 1024"),
        case("seq_len i64 max", &["compile", "s.toml", "--emit", "plan", "-o", "p"])
            .file("s.toml", spec("n_heads = 8").replace("seq_len = 1024", "seq_len = 9223372036854775807"))
            .expect("seq_len = 9223372036854775807 is larger than the limit 1048576"),
        case("n_layers huge", &["inspect", "kernels", "s.toml"])
            .file("s.toml", spec("n_heads = 8\nn_layers = 100000000"))
            .expect("n_layers = 100000000 is larger than the limit 1024"),
    ]);
}

/// Sizes in a `config.json`: refused before the graph is built, naming the key and the file.
#[test]
fn huge_config_sizes_are_refused_before_the_graph_is_built() {
    let model = |name: &str, args: &[&str], key: &str, value: &str| {
        case(name, args).file("m/config.json", config_with(key, value))
    };
    let compile = ["compile", "m/config.json", "--emit", "plan", "-o", "p.txt"];
    let kernels = ["inspect", "kernels", "m/config.json"];
    check_all(&[
        model("layers 1e9 compile", &compile, "num_hidden_layers", "1000000000")
            .expect("m/config.json")
            .expect("num_hidden_layers = 1000000000 is larger than the limit 1024"),
        model("layers 1e9 kernels", &kernels, "num_hidden_layers", "1000000000")
            .expect("num_hidden_layers = 1000000000 is larger than the limit 1024"),
        model("layers float 1e9", &compile, "num_hidden_layers", "1e9")
            .expect("`num_hidden_layers` must be a non-negative integer"),
        model("vocab huge", &compile, "vocab_size", "4000000000")
            .expect("vocab_size = 4000000000 is larger than the limit 1048576"),
        model("hidden huge", &kernels, "hidden_size", "1048576")
            .expect("hidden_size = 1048576 is larger than the limit 131072"),
        model("kv heads huge", &compile, "num_key_value_heads", "100000000")
            .expect("num_key_value_heads = 100000000 is larger than the limit 4096"),
        model("intermediate huge", &compile, "intermediate_size", "18446744073709551615")
            .expect("intermediate_size = 18446744073709551615 is larger than the limit 524288"),
    ]);
}

/// Sizes read from input tensors: refused naming the file and the tensor, never the spec.
#[test]
fn bad_sizes_in_input_files_name_the_file_and_tensor() {
    let q = |shape: &[usize]| safetensors(&[("q", "F32", shape), ("k", "F32", shape), ("v", "F32", shape)]);
    let model = "tests/data/llama-2layer";
    let forward = |name: &str, ids: &[usize], loss: bool| {
        let mut args = vec!["forward", "model", "--input", "ids.safetensors", "-o", "out.safetensors"];
        if loss {
            args.push("--loss");
        }
        case(name, &args)
            .copy(model, "model")
            .file("ids.safetensors", safetensors(&[("input_ids", "I64", ids)]))
    };
    check_all(&[
        on_spec("attn N 0", &["attn", "spec.toml", "--input", "in.safetensors", "-o", "o.safetensors"])
            .file("in.safetensors", q(&[1, 2, 0, 8]))
            .expect("N = 0 (tensor `q` in in.safetensors) must be at least 1"),
        on_spec("attn B 0", &["attn", "spec.toml", "--input", "in.safetensors", "-o", "o.safetensors"])
            .file("in.safetensors", q(&[0, 2, 16, 8]))
            .expect("B = 0 (tensor `q` in in.safetensors) must be at least 1"),
        on_spec("attn D huge", &["attn", "spec.toml", "--input", "in.safetensors", "-o", "o.safetensors"])
            .file("in.safetensors", q(&[1, 1, 1, 4096]))
            .expect("D = 4096 (tensor `q` in in.safetensors) is larger than the limit 1024"),
        forward("forward T 0", &[1, 0], false).expect("T = 0 (tensor `input_ids` in ids.safetensors)"),
        forward("forward B 0", &[0, 4], false).expect("B = 0 (tensor `input_ids` in ids.safetensors)"),
        forward("forward loss T 1", &[1, 1], true).expect("--loss needs at least 2 tokens").expect("T = 1"),
    ]);
}

/// `input_ids` (I64) of `shape` holding `ids`.
fn id_file(shape: &[usize], ids: &[i64]) -> Vec<u8> {
    let mut bytes = safetensors(&[("input_ids", "I64", shape)]);
    let data_at = bytes.len() - ids.len() * 8;
    for (i, id) in ids.iter().enumerate() {
        bytes[data_at + i * 8..data_at + i * 8 + 8].copy_from_slice(&id.to_le_bytes());
    }
    bytes
}

/// A word-level tokenizer.json with `words` words (`w0` … ), `w0` unknown.
fn word_tokenizer(words: usize) -> String {
    let vocab: Vec<String> = (0..words).map(|i| format!("\"w{i}\": {i}")).collect();
    format!(
        r#"{{"version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
            "normalizer": null, "pre_tokenizer": {{"type": "Whitespace"}}, "post_processor": null,
            "decoder": null, "model": {{"type": "WordLevel", "vocab": {{{}}}, "unk_token": "w0"}}}}"#,
        vocab.join(", ")
    )
}

/// `eval`'s data, lengths and tokenizer: each refused before the weights are
/// read or the device opened, naming the file, the value and what it had to fit.
#[test]
fn eval_refuses_bad_data_lengths_and_tokenizers() {
    let eval = |name: &str, data: &str, extra: &[&str]| {
        let mut args = vec!["eval", "model", "--data", data];
        args.extend_from_slice(extra);
        case(name, &args).copy("tests/data/llama-2layer", "model")
    };
    let four = id_file(&[1, 4], &[1, 2, 3, 4]);
    check_all(&[
        eval("eval id past vocab", "ids.safetensors", &["--seq-len", "4"])
            .file("ids.safetensors", id_file(&[2, 4], &[1, 2, 3, 4, 5, 6, 128, 7]))
            .expect(
                "ids.safetensors (`input_ids`), row 1, position 2: id 128 is not a token id of this \
                 model (vocab_size 128)",
            ),
        eval("eval negative id", "ids.safetensors", &["--seq-len", "4"])
            .file("ids.safetensors", id_file(&[1, 4], &[1, -1, 3, 4]))
            .expect("row 0, position 1: id -1 is not a token id"),
        eval("eval no rows", "ids.safetensors", &["--seq-len", "4"])
            .file("ids.safetensors", id_file(&[0, 4], &[]))
            .expect("no tokens in ids.safetensors"),
        eval("eval empty text", "empty.txt", &["--seq-len", "4"])
            .file("empty.txt", "")
            .file("model/tokenizer.json", word_tokenizer(3))
            .expect("no tokens in empty.txt"),
        eval("eval data shorter than every T", "ids.safetensors", &["--seq-len", "8,16"])
            .file("ids.safetensors", &four)
            .expect("ids.safetensors has 4 tokens, fewer than the shortest --seq-len 8"),
        eval("eval stride 0", "ids.safetensors", &["--seq-len", "4", "--stride", "0"])
            .file("ids.safetensors", &four)
            .exit_code(2)
            .expect("the stride must be at least 1"),
        eval("eval T 1", "ids.safetensors", &["--seq-len", "1"])
            .file("ids.safetensors", &four)
            .expect("a window of 1 token(s) has no next-token prediction to score"),
        eval("eval T not divisible", "ids.safetensors", &["--seq-len", "18", "--pattern", "spec.toml"])
            .file("ids.safetensors", id_file(&[1, 24], &[1; 24]))
            .copy(SPEC, "spec.toml")
            .expect("seq_len N = 18 is not divisible by 4"),
        eval("eval passkey without tokenizer", "ids.safetensors", &["--seq-len", "4", "--passkey", "2"])
            .file("ids.safetensors", &four)
            .expect("passkey retrieval needs a tokenizer")
            .expect("vocab_size 128 is smaller than the byte-level tokenizer's 258"),
        eval("eval tokenizer too large", "ids.safetensors", &["--seq-len", "4", "--tokenizer", "tok.json"])
            .file("ids.safetensors", &four)
            .file("tok.json", word_tokenizer(200))
            .expect("tok.json has ids up to 199 (vocabulary 200), more than the model's vocab_size 128"),
        eval("eval text without tokenizer", "doc.txt", &["--seq-len", "4"])
            .file("doc.txt", "some text")
            .expect("the data is text, but there is no tokenizer"),
        eval("eval bad jsonl", "d.jsonl", &["--seq-len", "4"])
            .file("d.jsonl", "{\"text\": \"w1 w2\"}\n{\"txt\": 3}\n")
            .file("model/tokenizer.json", word_tokenizer(3))
            .expect("d.jsonl:2: the object has no `text` field"),
    ]);
}

/// Products of sizes each within its limit: dense outputs and tile counts state their size.
#[test]
fn products_of_accepted_sizes_are_checked_too() {
    check_all(&[
        on_spec("npy 128k", &["mask", "spec.toml", "--seq-len", "131072", "-o", "m.npy"])
            .expect("the dense mask (heads × N × N bytes) = 32 × 131072 × 131072 = 549755813888")
            .expect("limit 1073741824")
            .expect("pass --force"),
        on_spec("ascii 64k", &["mask", "spec.toml", "--seq-len", "65536", "--head", "0", "-o", "-"])
            .expect("the ASCII mask")
            .expect("--force"),
        on_spec("png max", &["mask", "spec.toml", "--seq-len", "1048576", "--heads", "4096", "-o", "m.png"])
            .expect("the pairs the picture may count")
            .expect("--force"),
        on_spec("inspect tiles", &["inspect", "spec.toml", "--seq-len", "1048576", "--block", "8"])
            .expect("the tiles to classify")
            .expect("pass a larger --block"),
        case(
            "activations",
            &[
                "compile",
                "m/config.json",
                "--emit",
                "plan",
                "--batch",
                "65536",
                "--seq-len",
                "1048576",
                "-o",
                "p",
            ],
        )
        .file("m/config.json", config_with("vocab_size", "1000000"))
        .expect("the widest activation (batch × sequence × width) = 65536 × 1048576 × 1000000"),
    ]);
}

/// Real sizes still pass, quickly: 128k context on a spec, and `inspect` at 128k.
#[test]
fn real_sizes_still_pass() {
    for args in [
        &["check", SPEC, "--seq-len", "131072"][..],
        &["inspect", SPEC, "--seq-len", "131072"][..],
        &["graph", SPEC, "--seq-len", "131072"][..],
    ] {
        let started = Instant::now();
        common::ok(args);
        assert!(started.elapsed() < Duration::from_secs(30), "weft {args:?} took {:?}", started.elapsed());
    }
    // A picture of 128k stays cheap; an .npy of one head at 16k is 256 MiB, under the bound.
    let dir = common::scratch("hostile_sizes/real");
    let png = dir.join("m.png");
    common::ok(&["mask", SPEC, "--seq-len", "131072", "--head", "0", "-o", png.to_str().unwrap_or_default()]);
    assert!(png.exists());
}
