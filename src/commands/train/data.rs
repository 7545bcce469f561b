//! The run's sequences and their order, from `weft_runtime::data`: `--data`
//! read (pre-tokenized rows, or text through a tokenizer), packed into
//! sequences of `--seq-len` with a held-out fraction of documents, and the
//! sequences each micro-batch reads, in the seed's order per epoch.

use std::cell::RefCell;

use anyhow::{Context, bail};
use weft_runtime::data::{
    BYTE_VOCAB, Corpus, Glob, Order, PackOptions, Packed, SpecialIds, Tokenizer, micro_positions,
    pack_documents, pack_rows, tokenize_documents,
};

use weft_runtime::eval::training_trial;

use super::settings::Settings;

pub struct Sequences {
    packed: Packed,
    /// Interior mutability: the order caches the current epoch's permutation.
    order: RefCell<Order>,
    /// Where the ids came from: a tokenizer's name, or the tensor file.
    pub source: String,
    /// EOS and BOS of the tokenizer the text (or the passkey documents) went
    /// through; none for pre-tokenized data alone.
    pub tokenizer_ids: SpecialIds,
}

/// The tokenizer for text data ([`crate::commands::text_tokenizer`]'s rule).
fn tokenizer(settings: &Settings, vocab: usize) -> anyhow::Result<Tokenizer> {
    let found = crate::commands::text_tokenizer::resolve(
        settings.tokenizer.as_deref(),
        settings.model.as_deref(),
        vocab,
    )?;
    match found {
        Some(tokenizer) => Ok(tokenizer),
        None => bail!(
            "{} is text, but there is no tokenizer: give --tokenizer tokenizer.json (the model's vocabulary of \
             {vocab} is too small for the byte-level tokenizer's {BYTE_VOCAB})",
            settings.data.display()
        ),
    }
}

impl Sequences {
    /// Reads and packs `settings.data`, checking every id against `vocab`.
    pub fn load(settings: &Settings, vocab: usize) -> anyhow::Result<Sequences> {
        let glob = settings.data_glob.as_deref().map(Glob::new).transpose()?;
        let corpus = Corpus::load(&settings.data, glob.as_ref())?;
        let opts = PackOptions { seq_len: settings.seq_len, heldout: settings.heldout, seed: settings.seed };
        // Text data's tokenizer, which the passkey documents then use too.
        let mut text_tokenizer = None;
        let (packed, source) = match corpus {
            Corpus::Rows(rows) => (pack_rows(&rows, vocab, &opts)?, settings.data.display().to_string()),
            Corpus::Documents(docs) => {
                if let Some(warning) = docs.warning() {
                    errln!("warning: {warning}");
                }
                let tokenizer = text_tokenizer.insert(tokenizer(settings, vocab)?);
                let ids = tokenize_documents(&docs, tokenizer, vocab)?;
                let what = settings.data.display().to_string();
                let packed = pack_documents(&ids, tokenizer.eos_id(), &tokenizer.name(), &what, &opts)?;
                (packed, tokenizer.name())
            }
        };
        let mut packed = packed;
        if settings.passkey_fraction > 0.0 {
            let found = match text_tokenizer.take() {
                Some(tokenizer) => tokenizer,
                None => tokenizer(settings, vocab)?,
            };
            let tokenizer = text_tokenizer.insert(found);
            let added = add_passkey_documents(&mut packed, tokenizer, settings)?;
            errln!(
                "passkey documents: {added} of {} training sequences (--passkey-fraction {})",
                packed.sequences(),
                settings.passkey_fraction
            );
        }
        let order = Order::new(packed.sequences(), settings.shuffle, settings.seed)
            .with_context(|| format!("{} gives no training sequence", settings.data.display()))?;
        let tokenizer_ids =
            text_tokenizer.map(|t| SpecialIds { eos: t.eos_id(), bos: t.bos_id() }).unwrap_or_default();
        Ok(Sequences { packed, order: RefCell::new(order), source, tokenizer_ids })
    }

    pub fn train_rows(&self) -> usize {
        self.packed.sequences()
    }

    pub fn heldout_rows(&self) -> usize {
        self.packed.heldout_sequences().count()
    }

    /// The ids of micro-batch `j` of update `s`.
    pub fn micro_batch(&self, settings: &Settings, s: u64, j: usize) -> anyhow::Result<Vec<i64>> {
        let positions = micro_positions(s, settings.batch_size, settings.grad_accum, j)?;
        let mut order = self.order.borrow_mut();
        Ok(positions
            .flat_map(|p| self.packed.sequence(order.at(p)).iter().map(|&id| id as i64).collect::<Vec<_>>())
            .collect())
    }

    /// The held-out sequences in whole micro-batches of `batch` (the tail
    /// that does not fill one is left out).
    pub fn heldout_batches(&self, batch: usize) -> Vec<Vec<i64>> {
        let rows: Vec<&[u32]> = self.packed.heldout_sequences().collect();
        rows.chunks_exact(batch.max(1))
            .map(|chunk| chunk.iter().flat_map(|r| r.iter().map(|&id| id as i64)).collect())
            .collect()
    }
}

/// Appends passkey documents to the training sequences, so that they make
/// `--passkey-fraction` of them (at least one); returns how many. The
/// held-out stream stays the data's own.
fn add_passkey_documents(
    packed: &mut Packed,
    tokenizer: &Tokenizer,
    settings: &Settings,
) -> anyhow::Result<usize> {
    let fraction = settings.passkey_fraction;
    let text = packed.sequences() as f64;
    let count = ((fraction * text / (1.0 - fraction)).round() as usize).max(1);
    packed.tokens.reserve(count * settings.seq_len);
    for index in 0..count {
        let doc = training_trial(tokenizer, settings.seq_len, settings.seed, index as u64)
            .with_context(|| format!("--passkey-fraction at --seq-len {}", settings.seq_len))?;
        packed.tokens.extend_from_slice(&doc.ids);
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use weft_runtime::data::BYTE_BOS;

    use super::*;
    use crate::commands::train::TrainArgs;

    #[test]
    fn passkey_documents_make_the_fraction_asked_for() {
        let args = TrainArgs {
            model: Some("base".into()),
            data: Some("data.txt".into()),
            out: Some("run".into()),
            seq_len: Some(512),
            passkey_fraction: Some(0.25),
            ..TrainArgs::default()
        };
        let settings = Settings::resolve(&args).unwrap();
        let text: Vec<u32> = (0..6 * 512).map(|i| 32 + (i % 90) as u32).collect();
        let mut packed = Packed {
            seq_len: 512,
            tokens: text.clone(),
            heldout: vec![1, 2, 3],
            train_units: 6,
            heldout_units: 1,
            dropped: 0,
        };
        let added = add_passkey_documents(&mut packed, &Tokenizer::bytes(), &settings).unwrap();
        // 2 of 8 sequences: a quarter.
        assert_eq!(added, 2);
        assert_eq!(packed.sequences(), 8);
        assert_eq!(&packed.tokens[..text.len()], text.as_slice());
        assert_eq!(packed.heldout, [1, 2, 3]);
        for row in 6..8 {
            let doc = packed.sequence(row);
            assert_eq!(doc[0], BYTE_BOS);
            let text = Tokenizer::bytes().decode(&doc[1..]);
            assert!(text.contains("The pass key is "), "{text}");
        }
        assert_ne!(packed.sequence(6), packed.sequence(7));
    }
}
