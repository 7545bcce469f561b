//! `weft generate` on a checkpoint the test writes (GQA, linear RoPE
//! scaling): under sink + window, local-stride and the hybrid schedule, every
//! generated position's logits equal `weft forward --pattern` on the sequence
//! so far, the greedy tokens are its argmax, and the cache holds no more keys
//! than the masks' reach allows; and bad input gets a clear error.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{gpu, ok, scratch, stderr, weft};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use weft_ir::model::LlamaConfig;
use weft_runtime::io::{HostTensor, IntTensor, TensorFile, save, save_with_ints};

/// GPU against GPU (the same f32 kernels, fused differently): per position,
/// relative to the largest logit.
const TOLERANCE: f64 = 1e-4;
const VOCAB: usize = 40;

fn write_model(dir: &Path) -> LlamaConfig {
    std::fs::create_dir_all(dir).unwrap();
    let config = r#"{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 32,
        "intermediate_size": 48, "num_attention_heads": 4, "num_key_value_heads": 2,
        "num_hidden_layers": 3, "rms_norm_eps": 1e-5, "vocab_size": 40, "eos_token_id": 1,
        "max_position_embeddings": 32, "tie_word_embeddings": false,
        "rope_theta": 500.0, "rope_scaling": {"type": "linear", "factor": 2.0}}"#;
    std::fs::write(dir.join("config.json"), config).unwrap();
    let config = LlamaConfig::from_file(&dir.join("config.json")).unwrap();
    let mut rng = StdRng::seed_from_u64(5);
    let mut tensors = BTreeMap::new();
    for p in config.parameter_shapes() {
        let data = (0..p.len()).map(|_| rng.random_range(-0.6f32..0.6)).collect();
        tensors.insert(p.name.clone(), HostTensor { data, shape: p.shape });
    }
    save(&dir.join("model.safetensors"), &tensors).unwrap();
    config
}

fn spec(dir: &Path, name: &str, body: &str) -> String {
    let text = format!("[defaults]\nseq_len = 64\nn_heads = 4\nn_layers = 3\nhead_dim = 8\n{body}");
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

fn ids_file(path: &Path, ids: &[i64], shape: [usize; 2], mask: Option<&[i64]>) {
    let mut ints =
        BTreeMap::from([("input_ids".to_string(), IntTensor { shape: shape.to_vec(), data: ids.to_vec() })]);
    if let Some(mask) = mask {
        ints.insert("attention_mask".into(), IntTensor { shape: shape.to_vec(), data: mask.to_vec() });
    }
    save_with_ints(path, &BTreeMap::new(), &ints).unwrap();
}

/// Generates `new` tokens greedily for two prompts (the second left-padded)
/// under `pattern`, and checks every new position against `weft forward`.
fn check(dir: &Path, model: &Path, pattern: &str, new: usize) -> String {
    let input = dir.join("in.safetensors");
    let prompts: [&[i64]; 2] = [&[3, 9, 27, 5, 11, 2, 30], &[0, 0, 0, 14, 8, 33, 6]];
    let mask = [1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1];
    ids_file(&input, &prompts.concat(), [2, 7], Some(&mask));
    let out = dir.join("out.safetensors");
    let new_arg = new.to_string();
    let o = weft(&[
        "generate",
        model.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--max-new-tokens",
        &new_arg,
        "--pattern",
        pattern,
        "--out",
        out.to_str().unwrap(),
        "--logits",
        "--ignore-eos",
    ]);
    let log = stderr(&o);
    assert!(o.status.success(), "{log}");
    let file = TensorFile::load(&out).unwrap();
    let output = file.ints("output_ids").unwrap();
    assert_eq!(output.shape, [2, 7 + new]);
    let logits = file.f32("logits").unwrap();
    assert_eq!(logits.shape, [2, new, VOCAB]);
    for (row, prompt) in prompts.iter().enumerate() {
        let given = &output.data[row * (7 + new)..(row + 1) * (7 + new)];
        assert_eq!(&given[..7], *prompt, "the input comes first");
        let first = if row == 0 { 0 } else { 3 };
        let sequence = &given[first..];
        // The recomputation: one forward over the prompt and every new token;
        // with causal masks, position p sees what the sequence so far holds.
        let seq_file = dir.join(format!("seq{row}.safetensors"));
        ids_file(&seq_file, sequence, [1, sequence.len()], None);
        let fwd = dir.join(format!("fwd{row}.safetensors"));
        ok(&[
            "forward",
            model.to_str().unwrap(),
            "--input",
            seq_file.to_str().unwrap(),
            "--pattern",
            pattern,
            "--out",
            fwd.to_str().unwrap(),
        ]);
        let want = TensorFile::load(&fwd).unwrap().f32("logits").unwrap();
        let prompt_len = 7 - first;
        for j in 0..new {
            let got = &logits.data[(row * new + j) * VOCAB..][..VOCAB];
            let at = prompt_len - 1 + j;
            let want = &want.data[at * VOCAB..][..VOCAB];
            let scale = want.iter().fold(0.0f64, |m, &v| m.max(f64::from(v).abs()));
            let err = got.iter().zip(want).map(|(&a, &b)| f64::from(a - b).abs()).fold(0.0, f64::max) / scale;
            assert!(err <= TOLERANCE, "{pattern}: row {row}, new token {j}: relative error {err:e}");
            // Greedy: the token is the argmax of its logits, and of the recomputation's.
            let token = sequence[prompt_len + j] as usize;
            let argmax = |v: &[f32]| (0..VOCAB).fold(0, |best, i| if v[i] > v[best] { i } else { best });
            assert_eq!(token, argmax(got), "{pattern}: row {row}, new token {j}");
            assert_eq!(token, argmax(want), "{pattern}: row {row}, new token {j} against forward");
        }
    }
    log
}

#[test]
fn generated_logits_equal_a_recomputation_under_sparse_patterns() {
    if !gpu() {
        return;
    }
    let dir = scratch("generate_patterns");
    let model = dir.join("model");
    write_model(&model);
    let sink_window =
        spec(&dir, "sink-window", "[[heads]]\nrange = \"0..H\"\nmask = \"causal & (sink(2) | window(5))\"");
    let log = check(&dir, &model, &sink_window, 12);
    // 2 sinks + 5 of the window per layer, of 19 positions.
    assert!(log.contains("KV cache: 21 of 57 key slots over 3 layers"), "{log}");
    let local_stride = spec(
        &dir,
        "local-stride",
        "[[heads]]\nrange = \"0..H\"\nmask = \"causal & local_stride(2, 2, 3, h)\"",
    );
    check(&dir, &model, &local_stride, 10);
    let hybrid = spec(
        &dir,
        "hybrid",
        "[patterns.sparse]\nheads = [{ range = \"0..H\", mask = \"causal & (sink(2) | window(4))\" }]\n\
         [patterns.dense]\nheads = [{ range = \"0..H\", mask = \"causal\" }]\n\
         [[layers]]\nrange = \"0..1\"\npattern = \"sparse\"\n\
         [[layers]]\nrange = \"1..2\"\npattern = \"dense\"\n\
         [[layers]]\nrange = \"2..3\"\npattern = \"sparse\"",
    );
    let log = check(&dir, &model, &hybrid, 12);
    // 6 + 19 + 6 of 3 × 19.
    assert!(
        log.contains("KV cache: 31 of 57 key slots over 3 layers") && log.contains("layers 1 grow"),
        "{log}"
    );
}

#[test]
fn generation_stops_at_eos_and_bad_input_is_refused() {
    if !gpu() {
        return;
    }
    let dir = scratch("generate_errors");
    let model = dir.join("model");
    write_model(&model);
    let m = model.to_str().unwrap();
    let input = dir.join("in.safetensors");
    let fail = |args: &[&str], message: &str| {
        let o = weft(args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(message), "{args:?}: expected `{message}` in:\n{err}");
        assert!(!err.contains("panicked"), "{err}");
    };
    ids_file(&input, &[3, 9, 27], [1, 3], None);
    let i = input.to_str().unwrap();
    fail(&["generate", m, "--input", i, "--max-new-tokens", "0"], "--max-new-tokens must be at least 1");
    // 3 + 62 > 32 × 2 (the RoPE factor).
    fail(
        &["generate", m, "--input", i, "--max-new-tokens", "62"],
        "make 65 positions, more than the model's context of 64",
    );
    fail(&["generate", m, "--prompt", "hello", "--max-new-tokens", "4"], "--prompt needs a tokenizer");
    // At 3 + 13 = 16 positions S2-Attn's groups are 4 and half the heads roll by 2.
    let roll = example_spec("s2attn-roll.toml");
    fail(
        &["generate", m, "--input", i, "--max-new-tokens", "13", "--pattern", &roll],
        "reads the sequence length (roll)",
    );
    ids_file(&input, &[3, 99, 27], [1, 3], None);
    fail(
        &["generate", m, "--input", i, "--max-new-tokens", "4"],
        "input_ids[0, 1] = 99 is not a token id of this model (vocab_size 40)",
    );
    ids_file(&input, &[3, 9, 27], [1, 3], Some(&[0, 0, 0]));
    fail(
        &["generate", m, "--input", i, "--max-new-tokens", "4"],
        "row 0 of `attention_mask` is all 0: the prompt is empty",
    );
    // An adapter made for a model of another width.
    let adapter = dir.join("adapter");
    std::fs::create_dir_all(&adapter).unwrap();
    std::fs::write(
        adapter.join("adapter_config.json"),
        r#"{"peft_type": "LORA", "r": 2, "lora_alpha": 4, "target_modules": ["q_proj"]}"#,
    )
    .unwrap();
    let mut factors = BTreeMap::new();
    for layer in 0..3 {
        for (factor, shape) in [("lora_A", vec![2, 64]), ("lora_B", vec![32, 2])] {
            let name = format!("base_model.model.model.layers.{layer}.self_attn.q_proj.{factor}.weight");
            factors.insert(name, HostTensor { data: vec![0.1; shape.iter().product()], shape });
        }
    }
    save(&adapter.join("adapter_model.safetensors"), &factors).unwrap();
    ids_file(&input, &[3, 9, 27], [1, 3], None);
    let o =
        weft(&["generate", m, "--input", i, "--max-new-tokens", "4", "--adapter", adapter.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("lora_A"), "{}", stderr(&o));

    // EOS (id 1 in config.json) ends a row early; --out pads it with EOS.
    let out = dir.join("out.safetensors");
    let o = weft(&["generate", m, "--input", i, "--max-new-tokens", "20", "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let ids = TensorFile::load(&out).unwrap().ints("output_ids").unwrap();
    assert_eq!(ids.shape, [1, 23]);
    if let Some(stop) = ids.data[3..].iter().position(|&t| t == 1) {
        assert!(ids.data[3 + stop..].iter().all(|&t| t == 1), "{:?}", ids.data);
    }
}

fn example_spec(name: &str) -> String {
    common::example(name).to_str().unwrap().to_string()
}

/// Greedy `weft generate` equals transformers' `generate(do_sample=False)`
/// token for token, on checkpoints transformers wrote (GQA, linear RoPE
/// scaling, tied and untied, and Llama 3.1's RoPE); the logits agree to 1e-4
/// of the largest. See tests/data/make_generate_fixture.py.
#[test]
fn greedy_generation_matches_transformers() {
    if !gpu() {
        return;
    }
    let dir = scratch("generate_transformers");
    for case in ["untied", "tied", "llama3"] {
        let fixture = common::root().join("tests/data/generate").join(case);
        let out = dir.join(format!("{case}.safetensors"));
        let o = weft(&[
            "generate",
            fixture.to_str().unwrap(),
            "--input",
            fixture.join("input.safetensors").to_str().unwrap(),
            "--max-new-tokens",
            "12",
            "--out",
            out.to_str().unwrap(),
            "--logits",
        ]);
        assert!(o.status.success(), "{case}: {}", stderr(&o));
        let got = TensorFile::load(&out).unwrap();
        let want = TensorFile::load(&fixture.join("expected.safetensors")).unwrap();
        let (got_ids, want_ids) = (got.ints("output_ids").unwrap(), want.ints("output_ids").unwrap());
        assert_eq!(got_ids.shape, want_ids.shape, "{case}");
        assert_eq!(got_ids.data, want_ids.data, "{case}: output_ids differ from transformers'");
        let (got, want) = (got.f32("logits").unwrap(), want.f32("logits").unwrap());
        for (step, (g, w)) in got.data.chunks(96).zip(want.data.chunks(96)).enumerate() {
            let scale = w.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            if scale == 0.0 {
                continue; // a row that had ended
            }
            let err = g.iter().zip(w).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max) / scale;
            assert!(err <= 1e-4, "{case}: logits of step {step} differ by {err:e} (relative)");
        }
    }
}

/// With a PEFT adapter (LoRA on q, k, v, o), every new token's logits are
/// `weft forward --adapter`'s on the sequence so far.
#[test]
fn an_adapter_decodes_like_forward_with_the_adapter() {
    if !gpu() {
        return;
    }
    let dir = scratch("generate_adapter");
    let data = common::root().join("tests/data/train");
    let (base, adapter) = (data.join("base"), data.join("init-adapter"));
    let input = dir.join("in.safetensors");
    ids_file(&input, &[5, 17, 42, 8, 30], [1, 5], None);
    let out = dir.join("out.safetensors");
    let (b, a) = (base.to_str().unwrap(), adapter.to_str().unwrap());
    ok(&[
        "generate",
        b,
        "--adapter",
        a,
        "--input",
        input.to_str().unwrap(),
        "--max-new-tokens",
        "6",
        "--ignore-eos",
        "--out",
        out.to_str().unwrap(),
        "--logits",
    ]);
    let file = TensorFile::load(&out).unwrap();
    let ids = file.ints("output_ids").unwrap();
    let logits = file.f32("logits").unwrap();
    let seq = dir.join("seq.safetensors");
    ids_file(&seq, &ids.data, [1, 11], None);
    let fwd = dir.join("fwd.safetensors");
    ok(&["forward", b, "--adapter", a, "--input", seq.to_str().unwrap(), "--out", fwd.to_str().unwrap()]);
    let want = TensorFile::load(&fwd).unwrap().f32("logits").unwrap();
    let vocab = 64;
    for j in 0..6 {
        let got = &logits.data[j * vocab..][..vocab];
        let want = &want.data[(4 + j) * vocab..][..vocab];
        let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let err = got.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max) / scale;
        assert!(err <= 1e-4, "new token {j}: relative error {err:e}");
    }
}

/// A checkpoint saved in bf16 decodes with its weights in bf16 on the device
/// (`--weight-dtype auto`): the new tokens' logits still equal `weft forward`'s
/// recomputation, and the f32 run's bit for bit.
#[test]
fn a_bf16_checkpoint_decodes_with_bf16_weights_and_the_logits_of_f32() {
    if !gpu() {
        return;
    }
    let dir = scratch("generate_bf16");
    let model = dir.join("model");
    write_model(&model);
    let weights = model.join("model.safetensors");
    common::save_as_bf16(&weights, &weights);
    let sink_window =
        spec(&dir, "sink-window", "[[heads]]\nrange = \"0..H\"\nmask = \"causal & (sink(2) | window(5))\"");
    let log = check(&dir, &model, &sink_window, 8);
    assert!(log.contains("frozen values stored as bf16"), "{log}");
    let packed = TensorFile::load(&dir.join("out.safetensors")).unwrap();

    let plain_out = dir.join("f32.safetensors");
    ok(&[
        "generate",
        model.to_str().unwrap(),
        "--input",
        dir.join("in.safetensors").to_str().unwrap(),
        "--max-new-tokens",
        "8",
        "--pattern",
        &sink_window,
        "--out",
        plain_out.to_str().unwrap(),
        "--logits",
        "--ignore-eos",
        "--weight-dtype",
        "f32",
    ]);
    let plain = TensorFile::load(&plain_out).unwrap();
    assert_eq!(packed.ints("output_ids").unwrap().data, plain.ints("output_ids").unwrap().data);
    let (a, b) = (packed.f32("logits").unwrap(), plain.f32("logits").unwrap());
    assert!(a.data.iter().zip(&b.data).all(|(x, y)| x.to_bits() == y.to_bits()), "the logits differ");
}
