//! Which tokenizer reads a command's text (`train`, `eval`, `generate`): one
//! rule for all three, so a model reads its text the same way everywhere.
//!
//! `--tokenizer`, else the model directory's `tokenizer.json`, else weft's
//! byte-level tokenizer when the model's vocabulary holds its 258 ids. Its
//! ids are then the first of the vocabulary, which is right for a model
//! trained on them and wrong for one trained with a tokenizer file that was
//! not passed along: so a vocabulary larger than 258 gets a warning.

use std::path::Path;

use weft_runtime::data::{BYTE_VOCAB, SpecialIds, Tokenizer};

/// The tokenizer for `model_dir`'s model of `vocab` ids, or `None` when
/// there is neither a file nor room for the byte-level one (the caller says
/// why it needed one). Checked to fit the vocabulary.
pub fn resolve(
    explicit: Option<&Path>,
    model_dir: Option<&Path>,
    vocab: usize,
) -> anyhow::Result<Option<Tokenizer>> {
    let in_model = model_dir.map(|dir| dir.join("tokenizer.json")).filter(|path| path.is_file());
    let file = explicit.map(Path::to_path_buf).or(in_model);
    let tokenizer = match file {
        Some(path) => {
            let special = match model_dir {
                Some(dir) => SpecialIds::from_model_dir(dir)?,
                None => SpecialIds::default(),
            };
            Tokenizer::from_file(&path, special)?
        }
        None if vocab >= BYTE_VOCAB => {
            if vocab > BYTE_VOCAB {
                let missing = match model_dir {
                    Some(dir) => format!("{} does not exist", dir.join("tokenizer.json").display()),
                    None => "no --tokenizer".to_string(),
                };
                errln!(
                    "warning: {missing}: reading text with the byte-level tokenizer, whose {BYTE_VOCAB} ids are \
                     the first of the model's {vocab} (pass --tokenizer if the model was trained with another)"
                );
            }
            Tokenizer::bytes()
        }
        None => return Ok(None),
    };
    tokenizer.check_fits(vocab)?;
    Ok(Some(tokenizer))
}
