//! Passkey retrieval, with the prompt of LongLoRA's `passkey_retrivial.py`.
//!
//! The prompt is five lines joined by `\n`: the task line; a prefix of the
//! filler text; the information line `The pass key is K. Remember it. K is
//! the pass key.`; a second prefix of the filler; and the question `What is
//! the pass key? The pass key is`. As in LongLoRA, the filler is the sentence
//! group [`FILLER`] repeated with spaces between and *cut by characters*: of
//! `n` filler characters, a uniformly random `p` in `0..=n` go before the
//! information line and the first `n − p` characters of the filler again
//! after it. K is uniform in `1..=50000`.
//!
//! Where LongLoRA grows `n` by a fixed ratio per length, here `n` is the
//! largest count for which BOS (if the tokenizer has one, as LongLoRA's
//! tokenizer call adds it) + the prompt + the answer fit in the length T, so
//! each trial fills its length as closely as the tokenizer allows; the rest
//! is padded with EOS (0 if the tokenizer has none), which a causal model
//! never sees from the positions scored.
//!
//! The answer is what follows `is` in the text `prompt + " " + K`: its tokens
//! are that text's tokens past the prompt's. That is the leading-space form a
//! BPE tokenizer gives (` 12345`), and SentencePiece's `▁` prefix, which
//! LongLoRA gets by tokenizing `K` alone and dropping BOS. A tokenizer that
//! merges across the boundary (the prompt's tokens are not a prefix of the
//! whole text's) is an error rather than a guess.
//!
//! A trial succeeds when, at every answer position, the model's argmax is
//! the answer's token: greedy decoding of the answer's length, in one pass.

use std::ops::Range;

use super::EvalError;
use crate::data::Tokenizer;
use crate::data::rng::{self, Purpose};

pub const TASK: &str = "There is an important info hidden inside a lot of irrelevant text. Find it and \
                        memorize them. I will quiz you about the important information there.";
pub const FILLER: &str =
    "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.";
pub const QUESTION: &str = "What is the pass key? The pass key is";
/// K is drawn from `1..=MAX_KEY`.
pub const MAX_KEY: u32 = 50_000;

/// One passkey prompt of exactly the length asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PasskeyTrial {
    pub key: u32,
    /// BOS, prompt, answer, EOS padding: exactly the length.
    pub ids: Vec<u32>,
    /// Where the answer's tokens are in `ids`.
    pub answer: Range<usize>,
    /// Filler characters in all, and before the information line.
    pub filler_chars: usize,
    pub prefix_chars: usize,
}

/// The information line for `key`.
pub fn information_line(key: u32) -> String {
    format!("The pass key is {key}. Remember it. {key} is the pass key.")
}

/// The first `chars` characters of the filler repeated with spaces between
/// (LongLoRA's `" ".join([garbage] * 5000)[:chars]`; all ASCII).
pub fn filler(chars: usize) -> String {
    let unit = format!("{FILLER} ");
    unit.chars().cycle().take(chars).collect()
}

/// The prompt with `filler_chars` filler characters, `prefix_chars` of them before the information line.
pub fn prompt(filler_chars: usize, prefix_chars: usize, key: u32) -> String {
    let prefix_chars = prefix_chars.min(filler_chars);
    [TASK, &filler(prefix_chars), &information_line(key), &filler(filler_chars - prefix_chars), QUESTION]
        .join("\n")
}

/// Trial `trial` at length `seq_len`, drawn from `seed`: the same arguments
/// give the same trial in every run.
pub fn passkey_trial(
    tokenizer: &Tokenizer,
    seq_len: usize,
    seed: u64,
    trial: u64,
) -> Result<PasskeyTrial, EvalError> {
    trial_from(tokenizer, seq_len, rng::stream(seed, Purpose::Passkey, seq_len as u64, trial))
}

/// Passkey document `index` for training (`weft train --passkey-fraction`):
/// a trial as [`passkey_trial`] makes one, from a stream evaluation never
/// draws from, so no seed makes a training document an evaluation trial.
pub fn training_trial(
    tokenizer: &Tokenizer,
    seq_len: usize,
    seed: u64,
    index: u64,
) -> Result<PasskeyTrial, EvalError> {
    trial_from(tokenizer, seq_len, rng::stream(seed, Purpose::PasskeyTraining, seq_len as u64, index))
}

fn trial_from(
    tokenizer: &Tokenizer,
    seq_len: usize,
    mut rng: rand_chacha::ChaCha8Rng,
) -> Result<PasskeyTrial, EvalError> {
    let key = 1 + rng::below(&mut rng, u64::from(MAX_KEY)) as u32;
    // The information line's place as a fraction of the filler, so it stays
    // uniform whatever filler length fits: `p = floor(u · (n + 1))`.
    let place = rng::unit(&mut rng);
    let prefix_of = |n: usize| ((place * (n as f64 + 1.0)) as usize).min(n);
    let bos: Vec<u32> = tokenizer.bos_id().into_iter().collect();

    let answer = answer_tokens(tokenizer, &prompt(0, 0, key), key)?;
    let length = |n: usize| -> Result<usize, EvalError> {
        Ok(bos.len() + tokenizer.encode(&prompt(n, prefix_of(n), key))?.len() + answer.len())
    };
    let needed = length(0)?;
    if needed > seq_len {
        return Err(EvalError::PasskeyTooLong { seq_len, needed, tokenizer: tokenizer.name() });
    }
    // The largest filler that fits: double, then bisect. `fits(lo)` holds throughout;
    // no tokenizer spends fewer than one token per 16 filler characters.
    let cap = seq_len.saturating_mul(16).saturating_add(1024);
    let fits = |n: usize| length(n).map(|len| len <= seq_len);
    let (mut lo, mut hi) = (0, 1);
    while hi <= cap && fits(hi)? {
        lo = hi;
        hi = hi.saturating_mul(2);
    }
    hi = hi.min(cap + 1);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if fits(mid)? { lo = mid } else { hi = mid }
    }

    let (filler_chars, prefix_chars) = (lo, prefix_of(lo));
    let text = prompt(filler_chars, prefix_chars, key);
    let prompt_ids = tokenizer.encode(&text)?;
    let mut ids = bos;
    ids.extend_from_slice(&prompt_ids);
    let answer_at = ids.len()..ids.len() + answer.len();
    ids.extend_from_slice(&answer);
    // The answer found on the short prompt must be the one this prompt gets.
    let whole = tokenizer.encode(&format!("{text} {key}"))?;
    if whole.len() != prompt_ids.len() + answer.len() || !whole.ends_with(&answer) {
        return Err(EvalError::AnswerBoundary { tokenizer: tokenizer.name(), key });
    }
    ids.resize(seq_len, tokenizer.eos_id().unwrap_or(0));
    Ok(PasskeyTrial { key, ids, answer: answer_at, filler_chars, prefix_chars })
}

/// The tokens `" {key}"` adds after `prompt`.
fn answer_tokens(tokenizer: &Tokenizer, prompt: &str, key: u32) -> Result<Vec<u32>, EvalError> {
    let alone = tokenizer.encode(prompt)?;
    let whole = tokenizer.encode(&format!("{prompt} {key}"))?;
    match whole.strip_prefix(alone.as_slice()) {
        Some(answer) if !answer.is_empty() => Ok(answer.to_vec()),
        _ => Err(EvalError::AnswerBoundary { tokenizer: tokenizer.name(), key }),
    }
}

impl PasskeyTrial {
    /// Next-token targets that score the answer alone: position `p − 1`
    /// predicts answer token `p`; every other position is ignored (-100).
    pub fn targets(&self) -> Vec<i64> {
        let mut targets = vec![-100; self.ids.len()];
        for p in self.answer.clone() {
            targets[p - 1] = i64::from(self.ids[p]);
        }
        targets
    }

    /// Whether the argmax of `logits` (`[len, vocab]`, row-major) at each
    /// position before an answer token is that token. A NaN, or a tie with
    /// another token, is a miss; so are logits of the wrong size.
    pub fn passed(&self, logits: &[f32], vocab: usize) -> bool {
        if vocab == 0 || logits.len() != self.ids.len() * vocab {
            return false;
        }
        self.answer.clone().all(|p| {
            let row = &logits[(p - 1) * vocab..p * vocab];
            let want = self.ids[p] as usize;
            let Some(&best) = row.get(want) else { return false };
            !best.is_nan() && row.iter().enumerate().all(|(i, &x)| i == want || x < best)
        })
    }

    /// The answer's negative log-likelihood under `logits` (nats, summed over
    /// its tokens, log-softmax in f64): how far a model is from retrieving the
    /// key even when its argmax misses. `None` for logits of the wrong size
    /// or a non-finite result.
    pub fn answer_nll(&self, logits: &[f32], vocab: usize) -> Option<f64> {
        if vocab == 0 || logits.len() != self.ids.len() * vocab {
            return None;
        }
        let mut nll = 0.0;
        for p in self.answer.clone() {
            let row = &logits[(p - 1) * vocab..p * vocab];
            let target = f64::from(*row.get(self.ids[p] as usize)?);
            let max = row.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(f64::from(x)));
            let sum: f64 = row.iter().map(|&x| (f64::from(x) - max).exp()).sum();
            nll += max + sum.ln() - target;
        }
        nll.is_finite().then_some(nll)
    }
}

#[cfg(test)]
mod tests {
    use tokenizers::models::wordlevel::WordLevel;

    use super::*;
    use crate::data::tokenizer::tests::{byte_bpe, word_level};
    use crate::data::{BYTE_BOS, BYTE_EOS, SpecialIds};

    #[test]
    fn the_prompt_is_longloras() {
        let text = prompt(30, 10, 4242);
        let lines: Vec<&str> = text.split('\n').collect();
        assert_eq!(lines.len(), 5);
        assert_eq!(lines[0], TASK);
        assert_eq!(lines[1], "The grass ");
        assert_eq!(lines[2], "The pass key is 4242. Remember it. 4242 is the pass key.");
        assert_eq!(lines[3], "The grass is green. ");
        assert_eq!(lines[4], QUESTION);
        // The filler wraps with a space between repeats.
        let long = filler(FILLER.len() + 5);
        assert!(long.ends_with(". The "), "{long}");
        assert_eq!(prompt(0, 0, 7), format!("{TASK}\n\n{}\n\n{QUESTION}", information_line(7)));
    }

    #[test]
    fn byte_level_trials_fill_the_length_exactly() {
        let tokenizer = Tokenizer::bytes();
        for trial in 0..5 {
            let t = passkey_trial(&tokenizer, 512, 0, trial).unwrap();
            assert!((1..=MAX_KEY).contains(&t.key));
            assert_eq!(t.ids.len(), 512);
            assert_eq!(t.ids[0], BYTE_BOS);
            // One byte per character: the answer ends exactly at the length.
            assert_eq!(t.answer.end, 512, "trial {trial}");
            let answer = tokenizer.decode(&t.ids[t.answer.clone()]);
            assert_eq!(answer, format!(" {}", t.key));
            let text = tokenizer.decode(&t.ids[1..t.answer.start]);
            assert_eq!(text, prompt(t.filler_chars, t.prefix_chars, t.key));
            assert!(t.prefix_chars <= t.filler_chars);
        }
        let a = passkey_trial(&tokenizer, 512, 0, 1).unwrap();
        assert_eq!(a, passkey_trial(&tokenizer, 512, 0, 1).unwrap(), "seeded");
        let keys: Vec<u32> = (0..6).map(|i| passkey_trial(&tokenizer, 512, 9, i).unwrap().key).collect();
        assert!(keys.iter().any(|&k| k != keys[0]), "{keys:?}");
        let err = passkey_trial(&tokenizer, 100, 0, 0).unwrap_err().to_string();
        assert!(err.starts_with("the passkey prompt needs at least"), "{err}");
        assert!(err.contains("more than the length 100"), "{err}");
    }

    #[test]
    fn training_documents_are_trials_that_evaluation_never_draws() {
        let tokenizer = Tokenizer::bytes();
        for index in 0..4 {
            let doc = training_trial(&tokenizer, 512, 0, index).unwrap();
            assert_eq!(doc.ids.len(), 512);
            assert_eq!(tokenizer.decode(&doc.ids[doc.answer.clone()]), format!(" {}", doc.key));
            // Same seed, length and counter as an evaluation trial, another stream.
            assert_ne!(doc, passkey_trial(&tokenizer, 512, 0, index).unwrap());
        }
        assert_eq!(
            training_trial(&tokenizer, 512, 3, 1).unwrap(),
            training_trial(&tokenizer, 512, 3, 1).unwrap()
        );
    }

    #[test]
    fn hugging_face_trials_pad_with_eos_and_keep_the_answer_apart() {
        let dir = tempfile::tempdir().unwrap();
        // Word level: unknown words (the key among them) are [UNK], one token per word.
        let words = Tokenizer::from_file(&word_level(dir.path()), SpecialIds::default()).unwrap();
        let t = passkey_trial(&words, 80, 0, 0).unwrap();
        assert_eq!(t.ids.len(), 80);
        assert_eq!(t.answer.len(), 1);
        assert_eq!(t.ids[t.answer.start], 0, "the key is [UNK]");
        assert!(t.ids[t.answer.end..].iter().all(|&id| Some(id) == words.eos_id()));
        // Byte-level BPE: the answer is ` K` with its leading space, one token per byte.
        let bpe_dir = tempfile::tempdir().unwrap();
        let bpe = Tokenizer::from_file(&byte_bpe(bpe_dir.path()), SpecialIds::default()).unwrap();
        let t = passkey_trial(&bpe, 400, 1, 0).unwrap();
        assert_eq!(bpe.decode(&t.ids[t.answer.clone()]), format!(" {}", t.key));
        assert_eq!(t.answer.start, bpe.encode(&prompt(t.filler_chars, t.prefix_chars, t.key)).unwrap().len());
    }

    #[test]
    fn a_tokenizer_that_merges_into_the_answer_is_refused() {
        // No pre-tokenizer: the whole text is one unknown word, with or without the answer.
        let dir = tempfile::tempdir().unwrap();
        let vocab = [("[UNK]".to_string(), 0u32)].into_iter().collect();
        let model = WordLevel::builder().vocab(vocab).unk_token("[UNK]".into()).build().unwrap();
        let path = dir.path().join("tokenizer.json");
        tokenizers::Tokenizer::new(model).save(&path, false).unwrap();
        let tokenizer = Tokenizer::from_file(&path, SpecialIds::default()).unwrap();
        let err = passkey_trial(&tokenizer, 64, 0, 0).unwrap_err().to_string();
        assert!(err.contains("tokenizes the passkey prompt differently when the answer"), "{err}");
    }

    #[test]
    fn scoring_checks_the_argmax_before_each_answer_token() {
        let trial = PasskeyTrial {
            key: 12,
            ids: vec![BYTE_BOS, 7, 8, 49, 50, BYTE_EOS],
            answer: 3..5,
            filler_chars: 0,
            prefix_chars: 0,
        };
        assert_eq!(trial.targets(), [-100, -100, 49, 50, -100, -100]);
        let vocab = 258;
        let mut logits = vec![0f32; 6 * vocab];
        logits[2 * vocab + 49] = 1.0;
        logits[3 * vocab + 50] = 1.0;
        assert!(trial.passed(&logits, vocab));
        // A tie is a miss, and so is a better wrong token, a NaN or the wrong size.
        let mut tie = logits.clone();
        tie[3 * vocab + 51] = 1.0;
        assert!(!trial.passed(&tie, vocab));
        let mut wrong = logits.clone();
        wrong[2 * vocab + 48] = 2.0;
        assert!(!trial.passed(&wrong, vocab));
        let mut nan = logits.clone();
        nan[3 * vocab + 50] = f32::NAN;
        assert!(!trial.passed(&nan, vocab));
        assert!(!trial.passed(&logits[1..], vocab));

        // Each answer token has logit 1 against 0 for the 257 others.
        let per_token = (1f64.exp() + 257.0).ln() - 1.0;
        let nll = trial.answer_nll(&logits, vocab).unwrap();
        assert!((nll - 2.0 * per_token).abs() < 1e-12, "{nll}");
        // Uniform logits: ln(vocab) per token, argmax or not.
        let uniform = vec![0.5f32; 6 * vocab];
        assert!((trial.answer_nll(&uniform, vocab).unwrap() - 2.0 * (vocab as f64).ln()).abs() < 1e-12);
        assert_eq!(trial.answer_nll(&nan, vocab), None);
        assert_eq!(trial.answer_nll(&logits[1..], vocab), None);
    }
}
