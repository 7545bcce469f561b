//! `weft train` against an independent reference trainer, and its resume.
//!
//! `tests/data/make_train_fixture.py` trains the same tiny GQA LLaMA with
//! transformers + PEFT + torch's AdamW (f64), three updates per case, and
//! records each update's loss and gradient norm and every trained tensor
//! after the third. weft's run must give the same numbers.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{gpu, root, scratch, stderr, weft};
use weft_runtime::io::{IntTensor, TensorFile, save_with_ints};

/// Relative tolerance on the loss and the gradient norm.
const LOSS_TOLERANCE: f64 = 1e-4;
/// On each trained tensor: max |Δweft − Δref| ≤ this · max |Δref|, Δ the change from the start.
const UPDATE_TOLERANCE: f64 = 1e-3;

fn fixture() -> PathBuf {
    root().join("tests/data/train")
}

/// The case's flags, as `weft train` takes them.
fn case_flags(case: &str) -> Vec<String> {
    let text = std::fs::read_to_string(fixture().join("cases").join(case).join("case.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut flags = Vec::new();
    for (key, value) in json.as_object().unwrap() {
        let value = match (key.as_str(), value) {
            ("pattern", serde_json::Value::Null) => "causal".to_string(),
            ("pattern", _) => "s2attn".to_string(),
            ("init-adapter", v) => root().join(v.as_str().unwrap()).display().to_string(),
            (_, serde_json::Value::String(s)) => s.clone(),
            (_, v) => v.to_string(),
        };
        flags.push(format!("--{key}"));
        flags.push(value);
    }
    flags
}

fn train(out: &Path, flags: &[String], extra: &[&str]) -> std::process::Output {
    let base = fixture().join("base");
    let data = fixture().join("data.safetensors");
    let mut args: Vec<String> =
        ["train", "--model", base.to_str().unwrap(), "--data", data.to_str().unwrap()]
            .map(String::from)
            .to_vec();
    args.extend([
        "--out".to_string(),
        out.display().to_string(),
        "--no-shuffle".into(),
        "--heldout".into(),
        "0".into(),
    ]);
    args.extend(flags.iter().cloned());
    args.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    weft(&refs)
}

/// Each update's record from metrics.jsonl.
fn metrics(out: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|r: &serde_json::Value| r.get("loss").is_some())
        .collect()
}

fn close(found: f64, expected: f64, tolerance: f64) -> bool {
    (found - expected).abs() <= tolerance * expected.abs().max(1e-12)
}

/// Runs `case` (with `extra` flags) and compares it with the reference.
fn check_case(case: &str, extra: &[&str]) {
    if !gpu() {
        return;
    }
    // Directories that do not exist yet: the run makes them.
    let out = scratch(&format!("train-{case}{}", extra.join(""))).join("runs/new");
    let flags = case_flags(case);
    let output = train(&out, &flags, extra);
    assert!(output.status.success(), "{}", stderr(&output));
    let expected =
        TensorFile::load(&fixture().join("cases").join(case).join("expected.safetensors")).unwrap();

    let records = metrics(&out);
    let losses = expected.f32("loss").unwrap().data;
    let norms = expected.f32("grad_norm").unwrap().data;
    assert_eq!(records.len(), losses.len());
    for (i, record) in records.iter().enumerate() {
        let (loss, norm) = (record["loss"].as_f64().unwrap(), record["grad_norm"].as_f64().unwrap());
        assert!(
            close(loss, losses[i] as f64, LOSS_TOLERANCE),
            "{case} step {}: loss {loss} vs {}",
            i + 1,
            losses[i]
        );
        assert!(
            close(norm, norms[i] as f64, LOSS_TOLERANCE),
            "{case} step {}: norm {norm} vs {}",
            i + 1,
            norms[i]
        );
    }

    // The trained tensors, against the reference's, as changes from where both started.
    let full = flags.iter().any(|f| f == "full");
    let (weights, start) = if full {
        (TensorFile::load(&out.join("model/model.safetensors")).unwrap(), base_start())
    } else {
        (TensorFile::load(&out.join("adapter/adapter_model.safetensors")).unwrap(), adapter_start())
    };
    let mut names = expected.names();
    names.retain(|n| n != "loss" && n != "grad_norm");
    let mut written = weights.names();
    written.sort();
    names.sort();
    assert_eq!(written, names, "{case}: weft wrote other tensors than the reference trained");
    for name in &names {
        let reference = expected.f32(name).unwrap().data;
        let found = weights.f32(name).unwrap().data;
        let before = start.get(name).unwrap_or_else(|| panic!("{case}: no starting value of {name}"));
        let largest = reference.iter().zip(before).map(|(r, b)| (r - b).abs() as f64).fold(0.0, f64::max);
        let error = found
            .iter()
            .zip(&reference)
            .zip(before)
            .map(|((f, r), b)| ((f - b) as f64 - (r - b) as f64).abs())
            .fold(0.0, f64::max);
        assert!(largest > 0.0, "{case}: the reference did not change {name}");
        assert!(
            error <= UPDATE_TOLERANCE * largest,
            "{case}: {name}: update error {error:e}, largest update {largest:e}"
        );
    }
}

/// Every base tensor, by its Hugging Face name (and its PEFT name for LoRA+).
fn base_start() -> BTreeMap<String, Vec<f32>> {
    let file = TensorFile::load(&fixture().join("base/model.safetensors")).unwrap();
    let mut out = BTreeMap::new();
    for name in file.names() {
        let data = file.f32(&name).unwrap().data;
        out.insert(format!("base_model.model.{name}"), data.clone());
        out.insert(name, data);
    }
    out
}

/// The initial adapter's factors and the base's embedding and norms, by PEFT name.
fn adapter_start() -> BTreeMap<String, Vec<f32>> {
    let mut out = base_start();
    let file = TensorFile::load(&fixture().join("init-adapter/adapter_model.safetensors")).unwrap();
    for name in file.names() {
        out.insert(name.clone(), file.f32(&name).unwrap().data);
    }
    out
}

#[test]
fn lora_plus_causal_matches_the_reference_trainer() {
    check_case("lora-plus-causal", &[]);
}

#[test]
fn lora_plus_s2attn_with_accumulation_matches_the_reference_trainer() {
    check_case("lora-plus-s2", &[]);
}

/// Gradient checkpointing changes what the step keeps, not what it computes.
#[test]
fn lora_plus_s2attn_with_gradient_checkpointing_matches_the_reference_trainer() {
    check_case("lora-plus-s2", &["--gradient-checkpointing"]);
}

#[test]
fn lora_causal_matches_the_reference_trainer() {
    check_case("lora-causal", &[]);
}

#[test]
fn full_causal_matches_the_reference_trainer() {
    check_case("full-causal", &[]);
}

#[test]
fn full_s2attn_matches_the_reference_trainer() {
    check_case("full-s2", &[]);
}

/// SIGKILL while training, then `--resume`: the losses and the final adapter
/// are bit for bit those of a run that was never interrupted.
#[test]
fn a_killed_run_resumes_bit_for_bit() {
    if !gpu() {
        return;
    }
    let flags: Vec<String> = [
        "--seq-len",
        "32",
        "--steps",
        "8",
        "--save-every",
        "2",
        "--keep",
        "2",
        "--lr",
        "1e-3",
        "--warmup-steps",
        "2",
        "--lora-r",
        "4",
    ]
    .map(String::from)
    .to_vec();
    let whole = scratch("train-resume-whole");
    let output = train(&whole, &flags, &[]);
    assert!(output.status.success(), "{}", stderr(&output));

    let killed = scratch("train-resume-killed");
    let base = fixture().join("base");
    let data = fixture().join("data.safetensors");
    let mut child = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["train", "--model", base.to_str().unwrap(), "--data", data.to_str().unwrap()])
        .args(["--out", killed.to_str().unwrap(), "--no-shuffle", "--heldout", "0"])
        .args(&flags)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once the first checkpoint is there, somewhere in the steps that follow.
    let started = Instant::now();
    while !killed.join("checkpoint-2").exists() && started.elapsed() < Duration::from_secs(600) {
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!killed.join("adapter").exists(), "the run finished before it was killed");

    let refused = train(&killed, &flags, &[]);
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("already holds a run"), "{}", stderr(&refused));
    let resumed = train(&killed, &flags, &["--resume"]);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    assert!(stderr(&resumed).contains("resuming from"), "{}", stderr(&resumed));

    let losses = |out: &Path| -> Vec<(u64, u64)> {
        metrics(out)
            .iter()
            .map(|r| (r["step"].as_u64().unwrap(), r["loss"].as_f64().unwrap().to_bits()))
            .collect()
    };
    assert_eq!(losses(&killed), losses(&whole));
    for file in ["adapter_model.safetensors", "adapter_config.json"] {
        let a = std::fs::read(whole.join("adapter").join(file)).unwrap();
        let b = std::fs::read(killed.join("adapter").join(file)).unwrap();
        assert!(a == b, "adapter/{file} differs after resuming");
    }
    let kept: Vec<String> = std::fs::read_dir(&killed)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("checkpoint-"))
        .collect();
    assert_eq!(kept.len(), 2, "--keep 2 left {kept:?}");
}

/// A damaged checkpoint is an error naming the file, never a silent restart.
#[test]
fn a_damaged_checkpoint_is_named() {
    if !gpu() {
        return;
    }
    let out = scratch("train-damaged");
    let flags: Vec<String> =
        ["--seq-len", "32", "--save-every", "1", "--lora-r", "4"].map(String::from).to_vec();
    let output = train(&out, &flags, &["--steps", "2"]);
    assert!(output.status.success(), "{}", stderr(&output));
    std::fs::write(out.join("checkpoint-2/optimizer.safetensors"), b"garbage").unwrap();
    let output = train(&out, &flags, &["--resume", "--steps", "3"]);
    assert!(!output.status.success());
    let text = stderr(&output);
    assert!(text.contains("checkpoint-2/optimizer.safetensors: not a valid safetensors file"), "{text}");
    assert_eq!(text.matches("optimizer.safetensors").count(), 1, "named once: {text}");
}

/// The README's main command, at a small scale: every stage runs and leaves
/// its outputs (the adapter, the merged model, both evaluations, the plots).
#[test]
fn the_demo_runs_the_whole_loop() {
    if !gpu() {
        return;
    }
    let out = scratch("demo");
    let output = weft(&["demo", "--out", out.to_str().unwrap(), "--scale", "0.004"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    for expected in
        ["1/4 pretraining", "2/4 extending", "3/4 merging", "4/4 evaluating", "perplexity", "merged model:"]
    {
        assert!(text.contains(expected), "no `{expected}` in:\n{text}");
    }
    for file in [
        "extend/adapter/adapter_model.safetensors",
        "extend/adapter/weft_run.json",
        "merged/model.safetensors",
        "pretrain/loss.png",
        "extend/loss.png",
        "eval-base.json",
        "eval-extended.json",
    ] {
        assert!(out.join(file).exists(), "the demo wrote no {file}");
    }
    let eval: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("eval-extended.json")).unwrap()).unwrap();
    let ppl = eval["perplexity"]["512"].as_f64().unwrap();
    assert!(ppl.is_finite() && ppl > 1.0, "perplexity at 512: {ppl}");
    let again = weft(&["demo", "--out", out.to_str().unwrap(), "--scale", "0.004"]);
    assert!(!again.status.success() && stderr(&again).contains("--overwrite"), "{}", stderr(&again));
}

/// A full disk while checkpointing: the write fails with a clear error and a
/// non-zero exit, and the previous checkpoint stays whole. The disk is made
/// "full" for files over 12 KiB with `RLIMIT_FSIZE` (writes past it fail with
/// EFBIG once SIGXFSZ is ignored), which every checkpoint's weights exceed.
#[test]
fn a_full_disk_while_checkpointing_keeps_the_previous_checkpoint() {
    use std::os::unix::process::CommandExt;
    if !gpu() {
        return;
    }
    let out = scratch("train-full-disk");
    let flags: Vec<String> =
        ["--seq-len", "32", "--save-every", "1", "--lora-r", "4"].map(String::from).to_vec();
    let output = train(&out, &flags, &["--steps", "1"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let before: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(out.join("checkpoint-1"))
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect();

    let base = fixture().join("base");
    let data = fixture().join("data.safetensors");
    let mut command = Command::new(env!("CARGO_BIN_EXE_weft"));
    command
        .args(["train", "--model", base.to_str().unwrap(), "--data", data.to_str().unwrap()])
        .args(["--out", out.to_str().unwrap(), "--no-shuffle", "--heldout", "0", "--resume", "--steps", "2"])
        .args(&flags);
    // SAFETY: between fork and exec the closure only makes two async-signal-safe calls.
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit { rlim_cur: 12 << 10, rlim_max: 12 << 10 };
            libc::setrlimit(libc::RLIMIT_FSIZE, &limit);
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
    let full = command.output().unwrap();
    let text = stderr(&full);
    assert_eq!(full.status.code(), Some(1), "{text}");
    assert!(text.contains("error: writing checkpoint-2") && text.contains("File too large"), "{text}");
    assert!(!out.join("checkpoint-2").exists(), "a half-written checkpoint-2 is in place");
    for (path, bytes) in &before {
        assert!(std::fs::read(path).unwrap() == *bytes, "{} changed", path.display());
    }
    let leftovers: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".weft-tmp"))
        .collect();
    assert!(leftovers.is_empty(), "staging left behind: {leftovers:?}");
    // With room again, the run resumes from the checkpoint that stayed whole.
    let resumed = train(&out, &flags, &["--resume", "--steps", "2"]);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    assert!(stderr(&resumed).contains("checkpoint-1"), "{}", stderr(&resumed));
}

/// A full fine-tune's `config.json` is the base's own, RoPE factor added:
/// keys weft does not read (an EOS list, `pad_token_id`, a model's own
/// extras) carry over, as `save_pretrained` keeps them.
#[test]
fn a_full_fine_tune_keeps_the_base_config_keys() {
    if !gpu() {
        return;
    }
    let dir = scratch("train-full-config");
    let base = dir.join("base");
    std::fs::create_dir_all(&base).unwrap();
    std::fs::copy(fixture().join("base/model.safetensors"), base.join("model.safetensors")).unwrap();
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture().join("base/config.json")).unwrap()).unwrap();
    config["eos_token_id"] = serde_json::json!([2, 5]);
    config["pad_token_id"] = serde_json::json!(0);
    config["my_model_note"] = serde_json::json!("kept");
    // The data's 32-token rows over a context of 16: linear RoPE factor 2.
    config["max_position_embeddings"] = serde_json::json!(16);
    std::fs::write(base.join("config.json"), config.to_string()).unwrap();

    let out = dir.join("run");
    let data = fixture().join("data.safetensors");
    let o = weft(&[
        "train",
        "--model",
        base.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--mode",
        "full",
        "--pattern",
        "causal",
        "--seq-len",
        "32",
        "--steps",
        "1",
        "--heldout",
        "0",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("model/config.json")).unwrap()).unwrap();
    let mut expected = config.clone();
    expected["rope_parameters"] =
        serde_json::json!({"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0});
    for key in ["eos_token_id", "bos_token_id", "pad_token_id", "my_model_note", "rope_parameters", "dtype"] {
        assert_eq!(written[key], expected[key], "{key} in {written:#}");
    }
    assert_eq!(written.as_object().unwrap().keys().collect::<Vec<_>>(), {
        let mut keys: Vec<_> = expected.as_object().unwrap().keys().collect();
        keys.extend(written.as_object().unwrap().keys().filter(|k| *k == "rope_scaling"));
        keys.sort();
        keys
    });
}

/// `--resume` compares the settings one by one: a copy of the config file
/// elsewhere (a fresh clone of an experiment) resumes, so does a run that
/// turns gradient checkpointing on, and a changed setting is named in the
/// refusal.
#[test]
fn resume_names_a_changed_setting_and_accepts_a_moved_config() {
    if !gpu() {
        return;
    }
    let dir = scratch("train-resume-settings");
    let config_text = "mode = \"lora\"\npattern = \"causal\"\nseq-len = 32\nlr = 1e-3\nsave-every = 1\n";
    for name in ["first.toml", "moved/first.toml"] {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, config_text).unwrap();
    }
    let out = dir.join("run");
    let run = |config: &str, extra: &[&str]| {
        let config = dir.join(config);
        let mut args = vec!["--config", config.to_str().unwrap()];
        args.extend_from_slice(extra);
        train(&out, &[], &args)
    };
    let o = run("first.toml", &["--steps", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Gradient checkpointing may change on resume: it changes memory, not results.
    let o = run("moved/first.toml", &["--steps", "2", "--resume", "--gradient-checkpointing"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("(step 1)"), "{}", stderr(&o));
    assert!(stderr(&o).contains("gradient checkpointing: "), "{}", stderr(&o));
    let o = run("moved/first.toml", &["--steps", "3", "--resume", "--lr", "2e-3", "--seed", "4"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o)
            .contains("was written by a run with other settings (optimizer.lr: 0.001 → 0.002; seed: 0 → 4)"),
        "{}",
        stderr(&o)
    );
}

/// A Llama 3.1 base (`rope_type: "llama3"`, the generate fixture, context
/// 32) fine-tunes within its context, and its adapter's run records no
/// linear factor; past its context it is refused before anything is
/// written, since linear interpolation cannot be added to Llama 3's scaling.
#[test]
fn a_llama3_base_trains_within_its_context_and_refuses_interpolation() {
    if !gpu() {
        return;
    }
    let dir = scratch("train-llama3");
    let base = root().join("tests/data/generate/llama3");
    let data = |t: usize| {
        let path = dir.join(format!("ids-{t}.safetensors"));
        let ids: Vec<i64> = (0..4 * t).map(|i| (3 + (i * 7) % 90) as i64).collect();
        let ints = BTreeMap::from([("input_ids".to_string(), IntTensor { shape: vec![4, t], data: ids })]);
        save_with_ints(&path, &BTreeMap::new(), &ints).unwrap();
        path
    };
    let run = |t: usize, out: &Path| {
        let (ids, t_text) = (data(t), t.to_string());
        weft(&[
            "train",
            "--model",
            base.to_str().unwrap(),
            "--data",
            ids.to_str().unwrap(),
            "--seq-len",
            &t_text,
            "--out",
            out.to_str().unwrap(),
            "--steps",
            "2",
            "--heldout",
            "0",
            "--lr",
            "1e-3",
        ])
    };
    let out = dir.join("within");
    let o = run(32, &out);
    assert!(o.status.success(), "{}", stderr(&o));
    let losses: Vec<f64> = metrics(&out).iter().map(|r| r["loss"].as_f64().unwrap()).collect();
    assert!(losses.len() == 2 && losses.iter().all(|l| l.is_finite()), "{losses:?}");
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("adapter/weft_run.json")).unwrap()).unwrap();
    assert_eq!(record["rope_linear_factor"], 1.0);

    let past = dir.join("past");
    let o = run(64, &past);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(
            "--seq-len 64 is beyond the base's context of 32 tokens (max_position_embeddings), and its RoPE is \
             Llama 3's frequency scaling"
        ),
        "{}",
        stderr(&o)
    );
    assert!(!past.exists(), "nothing is written for a refused run");
}

/// A base checkpoint saved in bf16 trains with its frozen weights in bf16 on
/// the host and the device (`--weight-dtype auto`), and the run is the f32
/// run bit for bit: the same losses, gradient norms and saved weights. Under
/// LoRA+ and full fine-tuning, the trained weights start from the same
/// 16-bit values, widened into their f32 buffers.
#[test]
fn a_bf16_base_trains_with_bf16_frozen_weights_and_the_same_results_as_f32() {
    if !gpu() {
        return;
    }
    let dir = scratch("train_bf16_base");
    let base = dir.join("base");
    common::bf16_model_copy(&fixture().join("base"), &base);

    let data = fixture().join("data.safetensors");
    // LoRA+ trains the embedding and norms from 16-bit host values and keeps the rest frozen in
    // 16 bits; full fine-tuning widens every weight. (Plain LoRA's frozen side is LoRA+'s.)
    for (mode, saved) in [("lora+", "adapter/adapter_model.safetensors"), ("full", "model/model.safetensors")]
    {
        let run = |name: &str, extra: &[&str]| {
            let out = dir.join(format!("{mode}-{name}"));
            let mut args = vec!["train", "--model", base.to_str().unwrap(), "--data", data.to_str().unwrap()];
            args.extend(["--out", out.to_str().unwrap(), "--no-shuffle", "--heldout", "0", "--mode", mode]);
            args.extend(["--seq-len", "32", "--steps", "3", "--pattern", "s2attn"]);
            args.extend(extra);
            let o = weft(&args);
            assert!(o.status.success(), "{}", stderr(&o));
            (metrics(&out), std::fs::read(out.join(saved)).unwrap(), stderr(&o))
        };
        let (packed, packed_weights, log) = run("auto", &[]);
        // Full fine-tuning freezes nothing, so nothing is stored in 16 bits on the device.
        assert_eq!(log.contains("frozen values stored as bf16"), mode != "full", "{mode}: {log}");
        let (plain, plain_weights, _) = run("f32", &["--weight-dtype", "f32"]);
        assert_eq!(packed.len(), 3);
        for (a, b) in packed.iter().zip(&plain) {
            assert_eq!((&a["loss"], &a["grad_norm"]), (&b["loss"], &b["grad_norm"]), "{mode}: {a} vs {b}");
        }
        assert!(packed_weights == plain_weights, "{mode}: the saved weights differ");
    }
}
