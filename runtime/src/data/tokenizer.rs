//! Text to token ids: a Hugging Face `tokenizer.json`, or weft's byte-level
//! tokenizer for models trained from scratch.
//!
//! The byte-level tokenizer needs no file: ids 0..=255 are the bytes of the
//! UTF-8 text, 256 is the end of sequence and 257 the beginning, 258 ids in
//! all ([`BYTE_VOCAB`]).
//!
//! A `tokenizer.json` is loaded offline by the `tokenizers` crate. Its special
//! ids come from the caller first (a model directory's `config.json`, see
//! [`SpecialIds::from_model_dir`]), then from the tokenizer's added tokens by
//! their text: EOS is the first of `</s>`, `<|endoftext|>`, `<|end_of_text|>`
//! and BOS the first of `<s>`, `<|begin_of_text|>` the tokenizer has.

use std::path::{Path, PathBuf};

use super::{DataError, SpecialIds};

/// The byte-level tokenizer's end-of-sequence id.
pub const BYTE_EOS: u32 = 256;
/// The byte-level tokenizer's beginning-of-sequence id.
pub const BYTE_BOS: u32 = 257;
/// The byte-level tokenizer's vocabulary size: 256 bytes and two special ids.
pub const BYTE_VOCAB: usize = 258;

/// Added-token texts taken as EOS and BOS when the caller gives no id, in order of preference.
const EOS_TOKENS: [&str; 3] = ["</s>", "<|endoftext|>", "<|end_of_text|>"];
const BOS_TOKENS: [&str; 2] = ["<s>", "<|begin_of_text|>"];

pub enum Tokenizer {
    /// Bytes as ids, plus [`BYTE_EOS`] and [`BYTE_BOS`].
    Bytes,
    HuggingFace(HfTokenizer),
}

/// A loaded `tokenizer.json` with its special ids.
pub struct HfTokenizer {
    path: PathBuf,
    inner: Box<tokenizers::Tokenizer>,
    eos: Option<u32>,
    bos: Option<u32>,
    /// One past the largest id, added tokens included.
    size: usize,
}

impl Tokenizer {
    /// The byte-level tokenizer.
    pub fn bytes() -> Tokenizer {
        Tokenizer::Bytes
    }

    /// A Hugging Face `tokenizer.json`; `special` ids override the added tokens'.
    pub fn from_file(path: &Path, special: SpecialIds) -> Result<Tokenizer, DataError> {
        let bytes = std::fs::read(path).map_err(|source| DataError::Read { path: path.into(), source })?;
        let inner = tokenizers::Tokenizer::from_bytes(&bytes)
            .map_err(|e| DataError::TokenizerLoad { path: path.into(), message: e.to_string() })?;
        let added = |names: &[&str]| names.iter().find_map(|name| inner.token_to_id(name));
        let eos = special.eos.or_else(|| added(&EOS_TOKENS));
        let bos = special.bos.or_else(|| added(&BOS_TOKENS));
        let size = inner.get_vocab(true).values().max().map_or(0, |&id| id as usize + 1);
        Ok(Tokenizer::HuggingFace(HfTokenizer { path: path.into(), inner: Box::new(inner), eos, bos, size }))
    }

    /// What to call this tokenizer in messages: its file, or `the byte-level tokenizer`.
    pub fn name(&self) -> String {
        match self {
            Tokenizer::Bytes => "the byte-level tokenizer".into(),
            Tokenizer::HuggingFace(hf) => hf.path.display().to_string(),
        }
    }

    /// The ids of `text`, with no special tokens added.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, DataError> {
        match self {
            Tokenizer::Bytes => Ok(text.bytes().map(u32::from).collect()),
            Tokenizer::HuggingFace(hf) => match hf.inner.encode(text, false) {
                Ok(encoding) => Ok(encoding.get_ids().to_vec()),
                Err(e) => Err(DataError::Tokenize {
                    what: format!("{} bytes of text", text.len()),
                    tokenizer: self.name(),
                    message: e.to_string(),
                }),
            },
        }
    }

    /// The text of `ids`, lossily: invalid UTF-8 becomes U+FFFD, special and
    /// unknown ids are left out (a Hugging Face tokenizer's special tokens are
    /// spelled out).
    pub fn decode(&self, ids: &[u32]) -> String {
        match self {
            Tokenizer::Bytes => {
                let bytes: Vec<u8> = ids.iter().filter_map(|&id| u8::try_from(id).ok()).collect();
                String::from_utf8_lossy(&bytes).into_owned()
            }
            Tokenizer::HuggingFace(hf) => {
                let known: Vec<u32> =
                    ids.iter().copied().filter(|&id| hf.inner.id_to_token(id).is_some()).collect();
                hf.inner.decode(&known, false).unwrap_or_default()
            }
        }
    }

    /// One past the largest id the tokenizer produces (added tokens included).
    pub fn vocab_size(&self) -> usize {
        match self {
            Tokenizer::Bytes => BYTE_VOCAB,
            Tokenizer::HuggingFace(hf) => hf.size,
        }
    }

    pub fn eos_id(&self) -> Option<u32> {
        match self {
            Tokenizer::Bytes => Some(BYTE_EOS),
            Tokenizer::HuggingFace(hf) => hf.eos,
        }
    }

    pub fn bos_id(&self) -> Option<u32> {
        match self {
            Tokenizer::Bytes => Some(BYTE_BOS),
            Tokenizer::HuggingFace(hf) => hf.bos,
        }
    }

    /// Refuses a tokenizer that can produce ids the model has no embedding for
    /// (its vocabulary, or its EOS or BOS, at or past `model_vocab`). A smaller
    /// tokenizer is fine: models often pad their vocabulary.
    pub fn check_fits(&self, model_vocab: usize) -> Result<(), DataError> {
        let size = self.vocab_size();
        if size > model_vocab {
            return Err(DataError::TokenizerTooLarge {
                tokenizer: self.name(),
                size,
                largest: (size - 1) as u32,
                model: model_vocab,
            });
        }
        for (which, id) in [("EOS", self.eos_id()), ("BOS", self.bos_id())] {
            if let Some(id) = id.filter(|&id| id as usize >= model_vocab) {
                return Err(DataError::SpecialTooLarge {
                    tokenizer: self.name(),
                    which,
                    id,
                    model: model_vocab,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use tokenizers::models::bpe::BPE;
    use tokenizers::models::wordlevel::WordLevel;
    use tokenizers::pre_tokenizers::byte_level::ByteLevel;
    use tokenizers::pre_tokenizers::whitespace::Whitespace;
    use tokenizers::{AddedToken, decoders::byte_level::ByteLevel as ByteLevelDecoder};

    use super::*;

    /// A word-level tokenizer.json: `[UNK]`, five words and two added specials.
    pub(crate) fn word_level(dir: &Path) -> PathBuf {
        let words = ["[UNK]", "the", "pass", "key", "is", "."];
        let vocab = words.iter().enumerate().map(|(i, w)| (w.to_string(), i as u32)).collect();
        let model = WordLevel::builder().vocab(vocab).unk_token("[UNK]".into()).build().unwrap();
        let mut tokenizer = tokenizers::Tokenizer::new(model);
        tokenizer.with_pre_tokenizer(Some(Whitespace {}));
        tokenizer.add_special_tokens(&[AddedToken::from("<s>", true), AddedToken::from("</s>", true)]);
        let path = dir.join("tokenizer.json");
        tokenizer.save(&path, false).unwrap();
        path
    }

    /// A GPT-2 style byte-level BPE with no merges: one token per byte, spaces as `Ġ`.
    pub(crate) fn byte_bpe(dir: &Path) -> PathBuf {
        let mut alphabet: Vec<char> = ByteLevel::alphabet().into_iter().collect();
        alphabet.sort();
        let vocab: std::collections::BTreeMap<String, u32> =
            alphabet.iter().enumerate().map(|(i, c)| (c.to_string(), i as u32)).collect();
        let (vocab_file, merges_file) = (dir.join("vocab.json"), dir.join("merges.txt"));
        std::fs::write(&vocab_file, serde_json::to_string(&vocab).unwrap()).unwrap();
        std::fs::write(&merges_file, "").unwrap();
        let files = (vocab_file.to_str().unwrap(), merges_file.to_str().unwrap());
        let model = BPE::from_file(files.0, files.1).build().unwrap();
        let mut tokenizer = tokenizers::Tokenizer::new(model);
        tokenizer.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
        tokenizer.with_decoder(Some(ByteLevelDecoder::default()));
        tokenizer.add_special_tokens(&[AddedToken::from("<|endoftext|>", true)]);
        let path = dir.join("tokenizer.json");
        tokenizer.save(&path, false).unwrap();
        path
    }

    #[test]
    fn bytes_round_trip_and_declare_their_specials() {
        let t = Tokenizer::bytes();
        let ids = t.encode("hé!").unwrap();
        assert_eq!(ids, [104, 195, 169, 33]);
        assert_eq!(t.decode(&ids), "hé!");
        // Specials and ids past a byte are left out; a cut character is replaced.
        assert_eq!(t.decode(&[BYTE_BOS, 104, 195, BYTE_EOS, 999]), "h\u{fffd}");
        assert_eq!((t.vocab_size(), t.eos_id(), t.bos_id()), (258, Some(256), Some(257)));
        assert!(t.check_fits(258).is_ok());
        let err = t.check_fits(128).unwrap_err().to_string();
        assert!(err.contains("byte-level tokenizer has ids up to 257"), "{err}");
        assert!(err.contains("vocab_size 128"), "{err}");
    }

    #[test]
    fn a_word_level_tokenizer_json_loads_with_its_added_specials() {
        let dir = tempfile::tempdir().unwrap();
        let path = word_level(dir.path());
        let t = Tokenizer::from_file(&path, SpecialIds::default()).unwrap();
        assert_eq!(t.encode("the pass key is 42.").unwrap(), [1, 2, 3, 4, 0, 5]);
        assert_eq!((t.eos_id(), t.bos_id(), t.vocab_size()), (Some(7), Some(6), 8));
        assert_eq!(t.decode(&[1, 2, 99]), "the pass");
        // The caller's ids win over the added tokens.
        let t = Tokenizer::from_file(&path, SpecialIds { eos: Some(5), bos: None }).unwrap();
        assert_eq!((t.eos_id(), t.bos_id()), (Some(5), Some(6)));
        assert!(t.check_fits(8).is_ok());
        let err = t.check_fits(7).unwrap_err().to_string();
        assert!(err.contains("tokenizer.json has ids up to 7 (vocabulary 8)"), "{err}");
        let t = Tokenizer::from_file(&path, SpecialIds { eos: Some(300), bos: None }).unwrap();
        let err = t.check_fits(8).unwrap_err().to_string();
        assert!(err.contains("EOS token 300"), "{err}");
    }

    #[test]
    fn a_byte_level_bpe_keeps_the_leading_space() {
        let dir = tempfile::tempdir().unwrap();
        let t = Tokenizer::from_file(&byte_bpe(dir.path()), SpecialIds::default()).unwrap();
        let ids = t.encode(" 12").unwrap();
        assert_eq!(ids.len(), 3);
        assert_eq!(t.decode(&ids), " 12");
        assert_eq!((t.eos_id(), t.bos_id(), t.vocab_size()), (Some(256), None, 257));
    }

    #[test]
    fn bad_tokenizer_files_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.json");
        let err = Tokenizer::from_file(&missing, SpecialIds::default()).err().unwrap().to_string();
        assert!(err.starts_with(&format!("cannot read {}", missing.display())), "{err}");
        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, r#"{"model": 3}"#).unwrap();
        let err = Tokenizer::from_file(&bad, SpecialIds::default()).err().unwrap().to_string();
        assert!(err.starts_with(&format!("cannot load the tokenizer {}", bad.display())), "{err}");
    }
}
