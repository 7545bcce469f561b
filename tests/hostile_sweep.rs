//! The sweep: every value-taking option and positional argument of every
//! command, read from the command's own `--help` (so a new flag is swept
//! without editing this file), given one bad value at a time on an otherwise
//! valid, small invocation.
//!
//! Most values must be refused; a few happen to be valid (`--layer 0`), so a
//! case passes when the command either refuses cleanly (`error: `, exit 1 or
//! 2) or succeeds, and in both cases does not panic, hang, exceed 2 GiB or
//! change an existing file (see `Case::lenient`).

mod common;

use std::process::Command;

use common::hostile::{Case, case, check_all};

/// Values for options that take a number.
const BAD_NUMBERS: &[&str] =
    &["0", "-1", "2147483648", "4294967296", "9223372036854775807", "18446744073709551616", "1e9", "abc", ""];
/// Values for options that take a path.
const BAD_PATHS: &[&str] = &["{dir}/missing/x", "{dir}", "/dev/null", ""];
/// Values for options that take anything else (`--emit`, `--shape`).
const BAD_WORDS: &[&str] = &["", "abc", "0x0x0", "99999999x99999999x99999999", "1x1x1,"];

/// A valid, quick invocation of each command (files from [`with_files`]);
/// the first [`HOST_COMMANDS`] need no GPU.
/// The sweep replaces one option's value, or one positional, at a time.
/// `tune` is not swept: any valid value starts minutes of measuring (its bad
/// sizes and counts are cases of `hostile_sizes.rs`, its cache `hostile_paths.rs`).
/// Nor are `train` and `demo`, for the same reason (a valid seed or step count
/// is a training run); their bad input is `hostile_train.rs`.
#[rustfmt::skip]
const COMMANDS: &[&[&str]] = &[
    &["check", "p.toml"],
    &["mask", "p.toml", "--seq-len", "64", "--heads", "2", "--out", "m.npy"],
    &["inspect", "p.toml", "--seq-len", "256", "--heads", "2"],
    &["inspect", "kernels", "p.toml", "--seq-len", "64", "--heads", "2", "--head-dim", "8"],
    &["compile", "p.toml", "--seq-len", "64", "--heads", "2", "--head-dim", "8", "--emit", "plan", "--out", "plan.txt"],
    &["graph", "p.toml", "--seq-len", "64", "--heads", "2", "--out", "g.txt"],
    &["export", "model", "--adapter", "adapter", "--out", "merged"],
    &["compare", "--out", "report", "--smooth", "2", "a=e.json"],
    &["corpus", "--out", "corpus", "--train-mb", "0.01", "--heldout-kb", "1"],
    &["tokenizer", "--data", "text.jsonl", "--vocab-size", "300", "--passkey-documents", "2", "--out", "tok.json"],
    &["attn", "p.toml", "--input", "in.safetensors", "--out", "out.safetensors"],
    &["forward", "model", "--input", "ids.safetensors", "--out", "logits.safetensors"],
    &["eval", "model", "--data", "ids.safetensors", "--seq-len", "4", "--json", "eval.json"],
    &["generate", "model", "--input", "ids.safetensors", "--max-new-tokens", "2", "--out", "gen.safetensors"],
    &["bench", "attn", "--seq-len", "64", "--heads", "1", "--head-dim", "8", "--repeats", "1", "--no-unfused"],
    &["bench", "step", "--seq-len", "64", "--hidden", "64", "--layers", "1", "--heads", "2", "--vocab", "128",
      "--repeats", "1", "--plan-only"],
    &["bench", "matmul", "--shape", "16x16x16", "--repeats", "1", "--quick"],
];

/// How many of [`COMMANDS`], from the first, run without a GPU.
const HOST_COMMANDS: usize = 10;

/// One value-taking argument from `--help`: `--seq-len <N>`, or a positional `<SPEC>`.
#[derive(Debug)]
struct Arg {
    /// `Some("--seq-len")` for an option, `None` for a positional.
    flag: Option<String>,
    value_name: String,
}

/// The command's value-taking arguments, from its `--help`.
fn arguments(subcommand: &[&str]) -> Vec<Arg> {
    let out = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(subcommand)
        .arg("--help")
        .output()
        .expect("weft --help runs");
    let help = String::from_utf8_lossy(&out.stdout);
    let mut args = Vec::new();
    for line in help.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some(first) = words.first() else { continue };
        let is_value = |w: &str| w.starts_with('<') && w.ends_with('>');
        // A positional: `<SPEC>`, or `[SPEC]` where it is optional.
        let optional = first.starts_with('[') && first.ends_with(']');
        if (is_value(first) || optional) && line.starts_with("  ") {
            args.push(Arg { flag: None, value_name: first.trim_matches(['<', '>', '[', ']']).to_string() });
            continue;
        }
        // `-o, --out <FILE>` or `--seq-len <N>`
        let flag_at = words.iter().position(|w| w.starts_with("--"));
        if let Some(i) = flag_at
            && i <= 1
            && words.get(i + 1).is_some_and(|w| is_value(w))
        {
            args.push(Arg {
                flag: Some(words[i].trim_end_matches(',').to_string()),
                value_name: words[i + 1].trim_matches(['<', '>']).to_string(),
            });
        }
    }
    args
}

fn bad_values(value_name: &str) -> &'static [&'static str] {
    match value_name {
        "SPEC" | "FILE" | "PATH" | "IN" | "OUT" | "DIR" | "INPUT" | "MODEL_DIR" => BAD_PATHS,
        "EMIT" | "SHAPE" => BAD_WORDS,
        _ => BAD_NUMBERS,
    }
}

/// The files every sweep case starts from.
fn with_files(c: Case) -> Case {
    c.copy("examples/patterns/s2attn-roll.toml", "p.toml")
        .copy("tests/data/s2attn-roll-input.safetensors", "in.safetensors")
        .copy("tests/data/llama-2layer", "model")
        .file("ids.safetensors", token_ids())
        .file("text.jsonl", "{\"text\": \"fn main() { let x = 1; }\"}\n{\"text\": \"The pass key is 42.\"}\n")
        .file("e.json", r#"{"perplexity": {"4": 2.5}, "passkey": {"4": 0.5}}"#)
        .file("adapter/adapter_config.json", ADAPTER_CONFIG)
        .file("adapter/adapter_model.safetensors", adapter_weights())
}

/// A PEFT adapter for the fixture model: rank 1 on q_proj, zero factors.
const ADAPTER_CONFIG: &str =
    r#"{"peft_type": "LORA", "r": 1, "lora_alpha": 2, "target_modules": ["q_proj"]}"#;

fn adapter_weights() -> Vec<u8> {
    let shapes: Vec<(String, Vec<usize>)> = (0..2)
        .flat_map(|layer| {
            let base = format!("base_model.model.model.layers.{layer}.self_attn.q_proj");
            [(format!("{base}.lora_A.weight"), vec![1, 64]), (format!("{base}.lora_B.weight"), vec![64, 1])]
        })
        .collect();
    let zeros = vec![0u8; 4 * 64];
    let views = shapes.iter().map(|(name, shape)| {
        (
            name.clone(),
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), &zeros).unwrap(),
        )
    });
    safetensors::serialize(views, None).unwrap()
}

/// A safetensors file with `input_ids` [1, 4] (I64) for `forward` and `eval`.
fn token_ids() -> Vec<u8> {
    let header = r#"{"input_ids":{"dtype":"I64","shape":[1,4],"data_offsets":[0,32]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    for id in [1i64, 5, 9, 2] {
        bytes.extend_from_slice(&id.to_le_bytes());
    }
    bytes
}

/// `base` with `arg` set to `value`: the option's value replaced (or the
/// option added), or the first positional replaced.
fn substitute(base: &[&str], subcommand_len: usize, arg: &Arg, value: &str) -> Vec<String> {
    let mut args: Vec<String> = base.iter().map(|s| s.to_string()).collect();
    match &arg.flag {
        Some(flag) => match args.iter().position(|a| a == flag) {
            Some(i) => args[i + 1] = value.to_string(),
            None => args.extend([flag.clone(), value.to_string()]),
        },
        None => args[subcommand_len] = value.to_string(),
    }
    args
}

fn sweep(base: &[&str]) -> Vec<Case> {
    // The subcommand words come before the first positional or flag.
    let subcommand_len =
        if matches!(base[0], "bench") || base[..2] == ["inspect", "kernels"] { 2 } else { 1 };
    let arguments = arguments(&base[..subcommand_len]);
    assert!(
        !arguments.is_empty(),
        "no arguments found in `weft {} --help`",
        base[..subcommand_len].join(" ")
    );
    let mut cases = Vec::new();
    for arg in &arguments {
        let name = arg.flag.clone().unwrap_or_else(|| format!("<{}>", arg.value_name));
        for value in bad_values(&arg.value_name) {
            let args = substitute(base, subcommand_len, arg, value);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let title = format!("{} {name}={value:?}", base[..subcommand_len].join(" "));
            cases.push(with_files(case(&title, &args)).lenient());
        }
    }
    cases
}

#[test]
fn the_help_parser_finds_flags_and_positionals() {
    let found = arguments(&["mask"]);
    let names: Vec<String> =
        found.iter().map(|a| a.flag.clone().unwrap_or_else(|| format!("<{}>", a.value_name))).collect();
    for expected in ["<SPEC>", "--seq-len", "--heads", "--out"] {
        assert!(names.iter().any(|n| n == expected), "{expected} not in {names:?}");
    }
    let inspect = arguments(&["inspect"]);
    assert!(inspect.iter().any(|a| a.flag.is_none() && a.value_name == "SPEC"), "{inspect:?}");
}

#[test]
fn spec_commands_refuse_every_bad_value() {
    let cases: Vec<Case> = COMMANDS[..HOST_COMMANDS].iter().flat_map(|base| sweep(base)).collect();
    check_all(&cases);
}

#[test]
fn gpu_commands_refuse_every_bad_value() {
    if !common::gpu() {
        return;
    }
    let cases: Vec<Case> = COMMANDS[HOST_COMMANDS..].iter().flat_map(|base| sweep(base)).collect();
    check_all(&cases);
}
