//! Training a byte-level BPE tokenizer on text, for models trained from
//! scratch (`weft tokenizer`).
//!
//! The tokenizer is GPT-2's byte-level BPE with LLaMA's digit rule: text is
//! split into words by GPT-2's pattern (a word keeps its leading space),
//! every digit is a word of its own, and merges are learned within words.
//! Every byte is in the initial alphabet, so any text encodes and nothing is
//! unknown. Ids 0 and 1 are the special tokens `</s>` (EOS) and `<s>` (BOS),
//! which [`super::Tokenizer::from_file`] finds by their text.
//!
//! Why digits alone: a number is then the same tokens wherever it stands, so
//! copying one (a passkey, an identifier's suffix) is one digit per step
//! rather than depending on how merges happened to cut it.

use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::{
    AddedToken, NormalizerWrapper, PostProcessorWrapper, PreTokenizerWrapper, TokenizerBuilder, TokenizerImpl,
};

use super::DataError;

/// The special tokens, in id order: EOS = 0, BOS = 1.
pub const BPE_SPECIAL: [&str; 2] = ["</s>", "<s>"];
/// The smallest vocabulary: the special tokens and the 256 bytes.
pub const BPE_MIN_VOCAB: usize = BPE_SPECIAL.len() + 256;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BpeOptions {
    /// Ids in all, special tokens and bytes included.
    pub vocab_size: usize,
    /// A pair merges only if it occurs at least this often.
    pub min_frequency: u64,
}

/// Learns a tokenizer from `texts`; returns its `tokenizer.json`. The same
/// texts and options give the same bytes.
pub fn train_bpe<I, S>(texts: I, options: &BpeOptions) -> Result<String, DataError>
where
    I: Iterator<Item = S> + Send,
    S: AsRef<str> + Send,
{
    if options.vocab_size < BPE_MIN_VOCAB {
        return Err(DataError::BpeVocabTooSmall { asked: options.vocab_size, min: BPE_MIN_VOCAB });
    }
    let failed = |e: tokenizers::Error| DataError::BpeTrain { message: e.to_string() };
    let byte_level = ByteLevel::new(false, true, true);
    let pre_tokenizer = Sequence::new(vec![
        PreTokenizerWrapper::Digits(Digits::new(true)),
        PreTokenizerWrapper::ByteLevel(byte_level),
    ]);
    let mut tokenizer: TokenizerImpl<BPE, NormalizerWrapper, Sequence, PostProcessorWrapper, ByteLevel> =
        TokenizerBuilder::new()
            .with_model(BPE::default())
            .with_normalizer(None)
            .with_pre_tokenizer(Some(pre_tokenizer))
            .with_post_processor(None)
            .with_decoder(Some(byte_level))
            .build()
            .map_err(failed)?;
    let mut trainer = BpeTrainerBuilder::new()
        .vocab_size(options.vocab_size)
        .min_frequency(options.min_frequency)
        .show_progress(false)
        .special_tokens(BPE_SPECIAL.iter().map(|t| AddedToken::from(*t, true)).collect())
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build();
    tokenizer.train(&mut trainer, texts).map_err(failed)?;
    // The trained model's special tokens are in its vocabulary; registering
    // them as added tokens keeps them whole when text contains them.
    tokenizer.add_special_tokens(&BPE_SPECIAL.map(|t| AddedToken::from(t, true)));
    let tokenizer: tokenizers::Tokenizer = tokenizer.into();
    tokenizer.to_string(true).map_err(failed)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::data::{SpecialIds, Tokenizer};

    fn trained(texts: &[&str], vocab_size: usize) -> (String, Tokenizer) {
        let json = train_bpe(texts.iter(), &BpeOptions { vocab_size, min_frequency: 2 }).unwrap();
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(json.as_bytes()).unwrap();
        (json, Tokenizer::from_file(file.path(), SpecialIds::default()).unwrap())
    }

    const TEXTS: [&str; 3] = [
        "The pass key is 4242. Remember it. 4242 is the pass key.",
        "The grass is green. The sky is blue. The sun is yellow.",
        "fn main() { let pass_key = 31337; println!(\"{pass_key}\"); }",
    ];

    #[test]
    fn learns_words_keeps_digits_apart_and_round_trips() {
        let (_, tok) = trained(&[TEXTS[0], TEXTS[0], TEXTS[1], TEXTS[2]], 300);
        assert_eq!((tok.eos_id(), tok.bos_id()), (Some(0), Some(1)));
        assert!(tok.vocab_size() > BPE_MIN_VOCAB && tok.vocab_size() <= 300, "{}", tok.vocab_size());
        let ids = tok.encode("The pass key is 4242.").unwrap();
        // Fewer tokens than bytes: merges were learned.
        assert!(ids.len() < "The pass key is 4242.".len(), "{ids:?}");
        // Each digit a token of its own, whatever merges were learned.
        let digits = tok.encode("4242").unwrap();
        let (four, two) = (tok.encode("4").unwrap()[0], tok.encode("2").unwrap()[0]);
        assert_eq!(digits, [four, two, four, two]);
        for text in TEXTS.iter().chain(&["ünïcödé and bytes never seen: \u{1F980}"]) {
            assert_eq!(tok.decode(&tok.encode(text).unwrap()), *text);
        }
    }

    #[test]
    fn the_same_texts_give_the_same_file() {
        assert_eq!(trained(&TEXTS, 280).0, trained(&TEXTS, 280).0);
    }

    #[test]
    fn refuses_a_vocabulary_without_room_for_the_bytes() {
        let err = train_bpe(TEXTS.iter(), &BpeOptions { vocab_size: 100, min_frequency: 2 }).unwrap_err();
        assert!(matches!(err, DataError::BpeVocabTooSmall { asked: 100, min: 258 }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "a vocabulary of 100 ids has no room for the 256 bytes and 2 special tokens: give at least 258"
        );
    }
}
