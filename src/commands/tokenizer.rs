//! `weft tokenizer`: learn a byte-level BPE `tokenizer.json` from text, for
//! a model trained from scratch (`weft train --tokenizer`, with the `[model]`
//! table's `vocab_size` at least the size printed).

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::bail;
use clap::Args;
use weft_runtime::data::{BpeOptions, Corpus, Glob, SpecialIds, Tokenizer, train_bpe};
use weft_runtime::eval::training_trial;

use crate::output::{Input, guard, out_file, write_atomically};

/// The passkey texts' length in bytes: several filler sentences around the information line.
const PASSKEY_TEXT_BYTES: usize = 1024;
/// More passkey texts teach a tokenizer nothing new: their words repeat.
const MAX_PASSKEY_DOCUMENTS: usize = 100_000;
/// A vocabulary past this would not fit a model's embedding on any machine weft runs on.
const MAX_VOCAB: usize = 1 << 20;

#[derive(Args, Debug)]
pub struct TokenizerArgs {
    /// Text to learn from: a text file, a JSONL file (`text` fields), or a directory of text
    /// files (see --data-glob), as `weft train --data` reads it.
    #[arg(long, value_name = "PATH")]
    pub data: PathBuf,
    /// Which files of a --data directory to read, e.g. `*.rs` (default: every file).
    #[arg(long, value_name = "GLOB")]
    pub data_glob: Option<String>,
    /// The tokenizer.json to write.
    #[arg(long, short, value_name = "FILE")]
    pub out: PathBuf,
    /// Ids in all: `</s>` (0), `<s>` (1), the 256 bytes and the learned merges.
    #[arg(long, value_name = "N", default_value_t = 4096)]
    pub vocab_size: usize,
    /// A pair of tokens merges only if it occurs at least this often.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub min_frequency: u64,
    /// Also learn from this many passkey documents, drawn as `weft train --passkey-fraction`
    /// draws them (with --seed), so that a run mixing them in has words for their text.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub passkey_documents: usize,
    /// The seed of the passkey documents (use the training run's).
    #[arg(long, value_name = "SEED", default_value_t = 0)]
    pub seed: u64,
}

pub fn run(args: &TokenizerArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    if args.vocab_size > MAX_VOCAB {
        bail!("--vocab-size {} is more than {MAX_VOCAB} ids", args.vocab_size);
    }
    if args.passkey_documents > MAX_PASSKEY_DOCUMENTS {
        bail!(
            "--passkey-documents {} is more than {MAX_PASSKEY_DOCUMENTS}; a few thousand give the tokenizer every word of them",
            args.passkey_documents
        );
    }
    guard(out_file(&args.out, "tokenizer"), &[Input { path: &args.data, what: "training text" }])?;
    let glob = args.data_glob.as_deref().map(Glob::new).transpose()?;
    let docs = match Corpus::load(&args.data, glob.as_ref())? {
        Corpus::Documents(docs) => docs,
        Corpus::Rows(_) => bail!(
            "{} holds token ids, not text: a tokenizer is learned from text (a text file, JSONL or a directory)",
            args.data.display()
        ),
    };
    if let Some(warning) = docs.warning() {
        errln!("warning: {warning}");
    }
    let mut texts: Vec<String> = docs.docs.iter().map(|d| d.text.clone()).collect();
    if texts.iter().all(|t| t.is_empty()) {
        bail!("{} has no text to learn a tokenizer from", args.data.display());
    }
    let bytes = Tokenizer::bytes();
    for index in 0..args.passkey_documents {
        let trial = training_trial(&bytes, PASSKEY_TEXT_BYTES, args.seed, index as u64)?;
        texts.push(bytes.decode(&trial.ids));
    }
    let options = BpeOptions { vocab_size: args.vocab_size, min_frequency: args.min_frequency };
    let json = train_bpe(texts.iter(), &options)?;
    write_atomically(&args.out, |w| Ok(w.write_all(json.as_bytes())?))?;

    // What the tokenizer does to the text it learned from.
    let tokenizer = Tokenizer::from_file(&args.out, SpecialIds::default())?;
    let (mut text_bytes, mut tokens) = (0usize, 0usize);
    for doc in &docs.docs {
        text_bytes += doc.text.len();
        tokens += tokenizer.encode(&doc.text)?.len();
    }
    outln!(
        "wrote {}: {} ids (EOS 0, BOS 1), learned from {} documents{} in {:.1} s; the text is {:.2} bytes per token",
        args.out.display(),
        tokenizer.vocab_size(),
        docs.docs.len(),
        if args.passkey_documents > 0 {
            format!(" and {} passkey documents", args.passkey_documents)
        } else {
            String::new()
        },
        started.elapsed().as_secs_f64(),
        text_bytes as f64 / tokens.max(1) as f64,
    );
    Ok(())
}
