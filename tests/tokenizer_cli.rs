//! `weft tokenizer`, and a model trained from scratch with the tokenizer it
//! learns: the model directory carries the tokenizer, so `eval` and
//! `generate` read text as training did without being told.

mod common;

use std::path::Path;

use common::{gpu, ok, scratch, stderr, weft};

/// Text with repeated words and numbers, as a directory of files.
fn write_text(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..6 {
        let text = format!(
            "fn parse_{i}(input: &str) -> Result<u32, Error> {{\n    let value = input.trim().parse::<u32>()?;\n    \
             Ok(value + {n})\n}}\n// The grass is green. The sky is blue. {i}{i}{i}\n",
            n = 1000 + 37 * i
        );
        std::fs::write(dir.join(format!("f{i}.rs")), text.repeat(4)).unwrap();
    }
}

fn tokenizer_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn learns_a_tokenizer_that_is_the_same_every_run() {
    let dir = scratch("tokenizer_learn");
    write_text(&dir.join("text"));
    let text = dir.join("text");
    let learn = |out: &str| {
        ok(&[
            "tokenizer",
            "--data",
            text.to_str().unwrap(),
            "--vocab-size",
            "400",
            "--passkey-documents",
            "20",
            "--out",
            dir.join(out).to_str().unwrap(),
        ])
    };
    let said = learn("a.json");
    assert!(
        said.contains("400 ids (EOS 0, BOS 1), learned from 6 documents and 20 passkey documents"),
        "{said}"
    );
    assert!(said.contains("bytes per token"), "{said}");
    learn("b.json");
    assert_eq!(std::fs::read(dir.join("a.json")).unwrap(), std::fs::read(dir.join("b.json")).unwrap());

    let json = tokenizer_json(&dir.join("a.json"));
    let vocab = json["model"]["vocab"].as_object().unwrap();
    assert_eq!(vocab.len(), 400);
    assert_eq!((vocab["</s>"].as_u64(), vocab["<s>"].as_u64()), (Some(0), Some(1)));
    // The passkey documents' words are learned (they occur nowhere in the text).
    for word in ["Ġpass", "Ġkey"] {
        assert!(vocab.contains_key(word), "no {word} in {:?}", vocab.keys());
    }
}

#[test]
fn refuses_what_it_cannot_learn_from() {
    let dir = scratch("tokenizer_refusals");
    write_text(&dir.join("text"));
    let text = dir.join("text");
    let out = dir.join("t.json");
    let (text, out, missing, inside) = (
        text.to_str().unwrap(),
        out.to_str().unwrap(),
        dir.join("missing").display().to_string(),
        dir.join("text/f0.rs").display().to_string(),
    );
    std::fs::write(dir.join("text/empty.txt"), "").unwrap();
    let cases: [(&[&str], &str); 5] = [
        (
            &["--data", text, "--out", out, "--vocab-size", "100"],
            "a vocabulary of 100 ids has no room for the 256 bytes and 2 special tokens: give at least 258",
        ),
        (&["--data", &missing, "--out", out], "missing"),
        (&["--data", text, "--out", &inside], "f0.rs"),
        (&["--data", text, "--out", out, "--data-glob", "*.md"], "matches the glob `*.md`"),
        (&["--data", text, "--out", out, "--data-glob", "*.txt"], "has no text to learn a tokenizer from"),
    ];
    let run = |extra: &[&str]| {
        let mut args = vec!["tokenizer"];
        args.extend_from_slice(extra);
        weft(&args)
    };
    for (extra, expected) in cases {
        let o = run(extra);
        assert_eq!(o.status.code(), Some(1), "{extra:?}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(err.contains(expected), "{extra:?}: expected {expected:?} in:\n{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    assert!(!Path::new(out).exists(), "a refused run wrote {out}");
}

#[test]
fn a_model_trained_from_scratch_carries_its_tokenizer() {
    if !gpu() {
        return;
    }
    let dir = scratch("tokenizer_train");
    write_text(&dir.join("text"));
    let text = dir.join("text");
    let tokenizer = dir.join("tokenizer.json");
    ok(&[
        "tokenizer",
        "--data",
        text.to_str().unwrap(),
        "--vocab-size",
        "300",
        "--out",
        tokenizer.to_str().unwrap(),
    ]);
    let config = dir.join("scratch.toml");
    std::fs::write(
        &config,
        "seq-len = 32\nmode = \"full\"\npattern = \"causal\"\nsteps = 2\nlr = 1e-3\nheldout = 0\n\n[model]\n\
         hidden_size = 32\nintermediate_size = 64\nnum_hidden_layers = 1\nnum_attention_heads = 2\n\
         vocab_size = 300\nmax_position_embeddings = 32\n",
    )
    .unwrap();
    let run = dir.join("run");
    ok(&[
        "train",
        "--config",
        config.to_str().unwrap(),
        "--data",
        text.to_str().unwrap(),
        "--tokenizer",
        tokenizer.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
    ]);
    let model = run.join("model");
    assert_eq!(std::fs::read(model.join("tokenizer.json")).unwrap(), std::fs::read(&tokenizer).unwrap());
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("config.json")).unwrap()).unwrap();
    assert_eq!((config["eos_token_id"].as_u64(), config["bos_token_id"].as_u64()), (Some(0), Some(1)));

    // eval reads the text with the model's own tokenizer: the same results
    // as naming it, and not those of the byte-level tokenizer, which a copy
    // of the model without the file falls back to.
    let eval = |model: &Path, json: &str, extra: &[&str]| {
        let json = dir.join(json);
        let mut args =
            vec!["eval", model.to_str().unwrap(), "--data", text.to_str().unwrap(), "--seq-len", "32"];
        args.extend_from_slice(&["--json", json.to_str().unwrap()]);
        args.extend_from_slice(extra);
        ok(&args);
        std::fs::read_to_string(json).unwrap()
    };
    let implicit = eval(&model, "implicit.json", &[]);
    assert_eq!(implicit, eval(&model, "named.json", &["--tokenizer", tokenizer.to_str().unwrap()]));
    let bare = dir.join("bare");
    std::fs::create_dir_all(&bare).unwrap();
    for name in ["config.json", "model.safetensors"] {
        std::fs::copy(model.join(name), bare.join(name)).unwrap();
    }
    assert_ne!(implicit, eval(&bare, "bytes.json", &[]));
    let o = weft(&["eval", bare.to_str().unwrap(), "--data", text.to_str().unwrap(), "--seq-len", "32"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let warned = stderr(&o);
    let fallback = "does not exist: reading text with the byte-level tokenizer, whose 258 ids are the first of the model's 300";
    assert!(warned.contains(fallback), "{warned}");
    // generate reads a prompt by the same rule, and says so the same way.
    let o = weft(&["generate", bare.to_str().unwrap(), "--prompt", "fn main", "--max-new-tokens", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains(fallback), "{}", stderr(&o));

    // A full fine-tune of that model keeps it too, and the base's ids.
    let tuned = dir.join("tuned");
    ok(&[
        "train",
        "--model",
        model.to_str().unwrap(),
        "--data",
        text.to_str().unwrap(),
        "--seq-len",
        "32",
        "--mode",
        "full",
        "--pattern",
        "causal",
        "--steps",
        "1",
        "--heldout",
        "0",
        "--out",
        tuned.to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read(tuned.join("model/tokenizer.json")).unwrap(),
        std::fs::read(&tokenizer).unwrap()
    );
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tuned.join("model/config.json")).unwrap()).unwrap();
    assert_eq!((config["eos_token_id"].as_u64(), config["bos_token_id"].as_u64()), (Some(0), Some(1)));
}
