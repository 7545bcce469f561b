//! Token streams and training sequences.
//!
//! Documents are tokenized and joined with EOS between them (`a EOS b EOS c`)
//! into one stream, which is cut into sequences of `seq_len` tokens; the tail
//! shorter than a sequence is dropped. Pre-tokenized rows are used as they
//! are, so their length must be the sequence length (a row is never split
//! across sequences or joined with the next, which would change what the
//! rows' author meant by a sequence).
//!
//! A held-out fraction of the *units* (documents, or rows) is set aside
//! before packing, so no held-out text leaks into training: at least one unit
//! whenever the fraction is positive and there are two or more, and never
//! all of them. Which ones is drawn from the seed; both parts keep file order.

use super::rng::{self, Purpose};
use super::{DataError, Documents, TokenRows, Tokenizer};

/// How to cut the data.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PackOptions {
    pub seq_len: usize,
    /// The fraction of documents (or rows) held out for evaluation, in [0, 1).
    pub heldout: f64,
    pub seed: u64,
}

/// Training sequences and the held-out stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packed {
    pub seq_len: usize,
    /// `sequences() × seq_len` ids, sequence after sequence.
    pub tokens: Vec<u32>,
    /// The held-out units' ids as one stream (rows end to end, documents joined with EOS).
    pub heldout: Vec<u32>,
    /// Units (documents or rows) in training, and held out.
    pub train_units: usize,
    pub heldout_units: usize,
    /// Tokens of the training stream's tail that fill no whole sequence.
    pub dropped: usize,
}

impl Packed {
    pub fn sequences(&self) -> usize {
        self.tokens.len() / self.seq_len.max(1)
    }

    /// Sequence `i` (`i < sequences()`).
    pub fn sequence(&self, i: usize) -> &[u32] {
        &self.tokens[i * self.seq_len..(i + 1) * self.seq_len]
    }

    /// The held-out stream cut into whole sequences (its tail dropped).
    pub fn heldout_sequences(&self) -> impl Iterator<Item = &[u32]> {
        self.heldout.chunks_exact(self.seq_len.max(1))
    }
}

impl PackOptions {
    fn check(&self) -> Result<(), DataError> {
        if self.seq_len == 0 {
            return Err(DataError::ZeroSeqLen);
        }
        if !(0.0..1.0).contains(&self.heldout) {
            return Err(DataError::HeldOutFraction(self.heldout));
        }
        Ok(())
    }
}

/// Each document's ids, checked against the model's vocabulary.
pub fn tokenize_documents(
    docs: &Documents,
    tokenizer: &Tokenizer,
    vocab: usize,
) -> Result<Vec<Vec<u32>>, DataError> {
    docs.docs
        .iter()
        .map(|doc| {
            let ids = tokenizer.encode(&doc.text).map_err(|e| match e {
                DataError::Tokenize { tokenizer, message, .. } => {
                    DataError::Tokenize { what: doc.origin.clone(), tokenizer, message }
                }
                other => other,
            })?;
            if let Some(position) = ids.iter().position(|&id| id as usize >= vocab) {
                return Err(DataError::IdOutOfRange {
                    origin: format!("{} (tokenized by {})", doc.origin, tokenizer.name()),
                    position,
                    id: i64::from(ids[position]),
                    vocab,
                });
            }
            Ok(ids)
        })
        .collect()
}

/// The documents as one stream, EOS between them. `eos` may be `None` only
/// for a single document; `tokenizer` names the tokenizer in that error.
pub fn join_documents(docs: &[Vec<u32>], eos: Option<u32>, tokenizer: &str) -> Result<Vec<u32>, DataError> {
    let separator = match (eos, docs.len()) {
        (Some(eos), _) => eos,
        (None, 0 | 1) => 0,
        (None, _) => return Err(DataError::NoEos { tokenizer: tokenizer.to_string() }),
    };
    let mut stream = Vec::with_capacity(docs.iter().map(|d| d.len() + 1).sum());
    for (i, doc) in docs.iter().enumerate() {
        if i > 0 {
            stream.push(separator);
        }
        stream.extend_from_slice(doc);
    }
    Ok(stream)
}

/// The rows end to end, each id checked against `vocab`.
pub fn rows_stream(rows: &TokenRows, vocab: usize) -> Result<Vec<u32>, DataError> {
    rows.check_ids(vocab)?;
    // In range of `0..vocab`, so each fits a u32.
    Ok(rows.ids.iter().map(|&id| id as u32).collect())
}

/// Which of `units` are held out: `fraction` of them, rounded, at least one
/// if `fraction > 0` and `units ≥ 2`, never all; drawn from `seed`.
pub fn heldout_units(units: usize, fraction: f64, seed: u64) -> Vec<bool> {
    let mut held = vec![false; units];
    if fraction <= 0.0 || units < 2 {
        return held;
    }
    let count = ((fraction * units as f64).round() as usize).clamp(1, units - 1);
    let mut rng = rng::stream(seed, Purpose::HeldOut, units as u64, 0);
    for i in rng::permutation(units, &mut rng).into_iter().take(count) {
        held[i] = true;
    }
    held
}

/// Tokenized documents packed into sequences, with the held-out stream.
/// `what` names the data in errors (`--data`'s path).
pub fn pack_documents(
    docs: &[Vec<u32>],
    eos: Option<u32>,
    tokenizer: &str,
    what: &str,
    opts: &PackOptions,
) -> Result<Packed, DataError> {
    opts.check()?;
    let total: usize = docs.iter().map(Vec::len).sum();
    if total == 0 {
        return Err(DataError::NoTokens { what: what.to_string() });
    }
    let held = heldout_units(docs.len(), opts.heldout, opts.seed);
    let (mut train, mut heldout) = (Vec::new(), Vec::new());
    for (doc, held) in docs.iter().zip(&held) {
        if *held { heldout.push(doc.clone()) } else { train.push(doc.clone()) }
    }
    let stream = join_documents(&train, eos, tokenizer)?;
    let heldout_stream = join_documents(&heldout, eos, tokenizer)?;
    if stream.len() < opts.seq_len {
        let what = match heldout.len() {
            0 => what.to_string(),
            n => format!("{what} (less the {n} held-out document{})", if n == 1 { "" } else { "s" }),
        };
        return Err(DataError::TooShort { what, tokens: stream.len(), seq_len: opts.seq_len });
    }
    let whole = stream.len() / opts.seq_len * opts.seq_len;
    Ok(Packed {
        seq_len: opts.seq_len,
        dropped: stream.len() - whole,
        tokens: stream[..whole].to_vec(),
        heldout: heldout_stream,
        train_units: train.len(),
        heldout_units: heldout.len(),
    })
}

/// Pre-tokenized rows as training sequences (each row one sequence), with
/// the held-out rows as a stream.
pub fn pack_rows(rows: &TokenRows, vocab: usize, opts: &PackOptions) -> Result<Packed, DataError> {
    opts.check()?;
    if rows.len != opts.seq_len {
        return Err(DataError::RowLength {
            path: rows.path.clone(),
            row_len: rows.len,
            seq_len: opts.seq_len,
        });
    }
    let ids = rows_stream(rows, vocab)?;
    let held = heldout_units(rows.rows, opts.heldout, opts.seed);
    let (mut tokens, mut heldout) = (Vec::new(), Vec::new());
    for (row, held) in ids.chunks_exact(rows.len).zip(&held) {
        if *held { heldout.extend_from_slice(row) } else { tokens.extend_from_slice(row) }
    }
    let heldout_units = held.iter().filter(|&&h| h).count();
    Ok(Packed {
        seq_len: opts.seq_len,
        tokens,
        heldout,
        train_units: rows.rows - heldout_units,
        heldout_units,
        dropped: 0,
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::data::Document;

    const EOS: u32 = 99;

    fn opts(seq_len: usize, heldout: f64) -> PackOptions {
        PackOptions { seq_len, heldout, seed: 3 }
    }

    #[test]
    fn documents_are_joined_with_eos_and_cut_into_sequences() {
        let docs = vec![vec![1, 2, 3], vec![4, 5], vec![6, 7, 8, 9]];
        let packed = pack_documents(&docs, Some(EOS), "tok", "data", &opts(4, 0.0)).unwrap();
        // 1 2 3 EOS 4 5 EOS 6 7 8 9: two sequences, three tokens dropped.
        assert_eq!(packed.tokens, [1, 2, 3, EOS, 4, 5, EOS, 6]);
        assert_eq!((packed.sequences(), packed.dropped, packed.train_units), (2, 3, 3));
        assert_eq!(packed.sequence(1), [4, 5, EOS, 6]);
        assert!(packed.heldout.is_empty());
    }

    #[test]
    fn held_out_documents_are_whole_seeded_and_never_all() {
        let docs: Vec<Vec<u32>> = (0..20).map(|d| vec![d; 5]).collect();
        let packed = pack_documents(&docs, Some(EOS), "tok", "data", &opts(8, 0.1)).unwrap();
        assert_eq!((packed.heldout_units, packed.train_units), (2, 18));
        // Held-out documents appear whole in the held-out stream and nowhere in training.
        let held: Vec<u32> = packed.heldout.iter().copied().filter(|&t| t != EOS).collect();
        assert_eq!(held.len(), 10);
        for id in &held {
            assert!(!packed.tokens.contains(id), "document {id} is in both parts");
        }
        assert_eq!(packed, pack_documents(&docs, Some(EOS), "tok", "data", &opts(8, 0.1)).unwrap());
        let other = PackOptions { seed: 4, ..opts(8, 0.1) };
        let heldouts: Vec<Vec<bool>> = (0..8).map(|seed| heldout_units(20, 0.1, seed)).collect();
        assert!(heldouts.iter().any(|h| *h != heldouts[0]), "the seed changes the choice");
        assert_eq!(pack_documents(&docs, Some(EOS), "tok", "data", &other).unwrap().heldout_units, 2);
        // A small positive fraction still holds one out; two documents keep one for training.
        assert_eq!(heldout_units(2, 0.01, 0).iter().filter(|&&h| h).count(), 1);
        assert_eq!(heldout_units(5, 0.99, 0).iter().filter(|&&h| h).count(), 4);
        assert_eq!(heldout_units(1, 0.5, 0), [false]);
        assert_eq!(heldout_units(4, 0.0, 0), [false; 4]);
    }

    #[test]
    fn empty_and_short_data_are_errors() {
        let err = pack_documents(&[vec![], vec![]], Some(EOS), "tok", "d.txt", &opts(4, 0.0)).unwrap_err();
        assert_eq!(err.to_string(), "no tokens in d.txt");
        let err = pack_documents(&[vec![1, 2]], Some(EOS), "tok", "d.txt", &opts(4, 0.0)).unwrap_err();
        assert_eq!(err.to_string(), "d.txt has 2 tokens, fewer than one sequence of 4");
        let docs = vec![vec![1, 2, 3], vec![4, 5, 6]];
        let err = pack_documents(&docs, Some(EOS), "tok", "d", &opts(4, 0.5)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "d (less the 1 held-out document) has 3 tokens, fewer than one sequence of 4"
        );
        let err = pack_documents(&docs, None, "t.json", "d", &opts(4, 0.0)).unwrap_err();
        assert!(err.to_string().starts_with("the tokenizer t.json has no end-of-sequence token"), "{err}");
        assert!(matches!(
            pack_documents(&docs, Some(EOS), "t", "d", &opts(0, 0.0)),
            Err(DataError::ZeroSeqLen)
        ));
        for bad in [1.0, -0.1, f64::NAN] {
            let err = pack_documents(&docs, Some(EOS), "t", "d", &opts(2, bad)).unwrap_err();
            assert!(err.to_string().starts_with("the held-out fraction must be in [0, 1)"), "{err}");
        }
    }

    fn rows(rows: usize, len: usize, ids: Vec<i64>) -> TokenRows {
        TokenRows { path: PathBuf::from("ids.safetensors"), rows, len, ids }
    }

    #[test]
    fn rows_are_sequences_and_held_out_by_row() {
        let data = rows(4, 3, (0..12).collect());
        let packed = pack_rows(&data, 12, &opts(3, 0.25)).unwrap();
        assert_eq!((packed.sequences(), packed.heldout_units, packed.dropped), (3, 1, 0));
        let held = packed.heldout_sequences().next().unwrap().to_vec();
        assert_eq!(held.len(), 3);
        assert_eq!(held[0] % 3, 0, "a whole row: {held:?}");
        assert!(!packed.tokens.contains(&held[0]));
        let err = pack_rows(&data, 12, &opts(4, 0.0)).unwrap_err().to_string();
        assert!(err.contains("have T = 3 tokens, but the sequence length is 4"), "{err}");
        let err = pack_rows(&data, 11, &opts(3, 0.0)).unwrap_err().to_string();
        assert!(err.contains("row 3, position 2: id 11"), "{err}");
        assert!(err.contains("(vocab_size 11)"), "{err}");
        let negative = rows(1, 2, vec![0, -5]);
        let err = rows_stream(&negative, 10).unwrap_err().to_string();
        assert!(err.contains("row 0, position 1: id -5"), "{err}");
    }

    #[test]
    fn tokenizing_checks_ids_against_the_model() {
        let docs = Documents {
            docs: vec![Document { origin: "a.txt".into(), text: "hi é".into() }],
            skipped: vec![],
        };
        let ids = tokenize_documents(&docs, &Tokenizer::bytes(), 258).unwrap();
        assert_eq!(ids, [vec![104, 105, 32, 195, 169]]);
        let err = tokenize_documents(&docs, &Tokenizer::bytes(), 128).unwrap_err().to_string();
        assert_eq!(
            err,
            "a.txt (tokenized by the byte-level tokenizer), position 3: id 195 is not a token id of \
             this model (vocab_size 128)"
        );
        assert_eq!(join_documents(&[vec![1]], None, "t").unwrap(), [1]);
        assert_eq!(join_documents(&[vec![1], vec![2, 3]], Some(0), "t").unwrap(), [1, 0, 2, 3]);
    }
}
