//! The largest sizes weft accepts, in one place, and the checks that enforce them.
//!
//! Every size a user can give (a flag, a spec's `[defaults]`, a `config.json`
//! key, a tensor's shape in an input file) is checked against its [`Limit`]
//! before anything is allocated or looped over, and every product of user
//! sizes (a dense mask's bytes, a graph's node count, activations) is computed
//! with checked arithmetic and checked too. The limits sit well above what
//! real models use (128k context, 128 layers, a 256k vocabulary, head dim 256)
//! and well below what would exhaust memory or take hours; `docs/limits.md`
//! lists them.

use std::fmt;

/// The largest value one quantity may take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    /// What the quantity is, for messages ("sequence length").
    pub quantity: &'static str,
    pub max: u64,
    /// How to go past the limit, if there is a way ("pass --force").
    pub escape: Option<&'static str>,
}

impl Limit {
    const fn new(quantity: &'static str, max: u64) -> Limit {
        Limit { quantity, max, escape: None }
    }
}

/// Sequence length N (tokens).
pub const SEQ_LEN: Limit = Limit::new("sequence length", 1 << 20);
/// Attention heads H (query or key/value).
pub const HEADS: Limit = Limit::new("number of heads", 4096);
/// Transformer layers L.
pub const LAYERS: Limit = Limit::new("number of layers", 1024);
/// Channels per head D.
pub const HEAD_DIM: Limit = Limit::new("head dimension", 1024);
/// Sequences per batch B.
pub const BATCH: Limit = Limit::new("batch size", 65536);
/// Vocabulary size V.
pub const VOCAB: Limit = Limit::new("vocabulary size", 1 << 20);
/// Model width (`hidden_size`).
pub const HIDDEN: Limit = Limit::new("hidden size", 1 << 17);
/// MLP width (`intermediate_size`).
pub const INTERMEDIATE: Limit = Limit::new("intermediate size", 1 << 19);
/// LoRA rank R.
pub const LORA_RANK: Limit = Limit::new("LoRA rank", 4096);
/// Timed repetitions of a benchmark.
pub const REPEATS: Limit = Limit::new("number of repeats", 100_000);
/// Tile edge of `weft inspect --block`.
pub const BLOCK: Limit = Limit::new("block size", 1 << 20);
/// Tiles `inspect` classifies (distinct masks × (N / block)²): beyond this it would run for minutes.
pub const TILES: Limit = Limit::new("number of tiles", 1 << 26);
/// Bytes of a dense output (a mask as .npy, .png or ASCII) written without `--force`.
pub const DENSE_OUTPUT_BYTES: Limit = Limit {
    quantity: "dense output size (1 GiB)",
    max: 1 << 30,
    escape: Some("pass --force to write it anyway"),
};
/// Nodes of one graph (layers × nodes per layer).
pub const GRAPH_NODES: Limit = Limit::new("number of graph nodes", 1 << 20);
/// Elements of one activation tensor (batch × sequence × width): 1 Ti elements.
pub const ACTIVATION_ELEMENTS: Limit = Limit::new("elements of one activation tensor", 1 << 40);

/// Where a size came from, so that an error can point at it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A command-line flag: `--seq-len`.
    Flag(String),
    /// A key whose location is reported beside the error (a spec file's `n_heads`).
    Key(String),
    /// A key of a named file: `num_hidden_layers` in `config.json`.
    FileKey { key: String, file: String },
    /// One axis of a tensor in a file: `N` of tensor `q` in `in.safetensors`.
    Tensor { axis: String, tensor: String, file: String },
    /// A product of sizes and its factors: `the dense mask (heads × N × N bytes)`, `8 × 1024 × 1024`.
    Product { what: String, factors: String },
}

impl Origin {
    pub fn flag(name: &str) -> Origin {
        Origin::Flag(name.to_string())
    }
    pub fn key(name: &str) -> Origin {
        Origin::Key(name.to_string())
    }
    pub fn file_key(key: &str, file: &str) -> Origin {
        Origin::FileKey { key: key.to_string(), file: file.to_string() }
    }
    pub fn tensor(axis: &str, tensor: &str, file: &str) -> Origin {
        Origin::Tensor { axis: axis.to_string(), tensor: tensor.to_string(), file: file.to_string() }
    }

    /// The origin with its value: `--seq-len 2147483648`, `n_heads = 8`.
    fn with_value(&self, value: &Value) -> String {
        match self {
            Origin::Flag(flag) => format!("{flag} {value}"),
            Origin::Key(key) => format!("{key} = {value}"),
            Origin::FileKey { key, file } => format!("{key} = {value} in {file}"),
            Origin::Tensor { axis, tensor, file } => {
                format!("{axis} = {value} (tensor `{tensor}` in {file})")
            }
            Origin::Product { what, factors } => format!("{what} = {factors} = {value}"),
        }
    }
}

/// A checked value, or a product too large for 64 bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Value {
    Exact(u64),
    Overflow,
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Exact(v) => write!(f, "{v}"),
            Value::Overflow => f.write_str("more than 2^64"),
        }
    }
}

/// A size outside what weft accepts; the message names the value, where it came from and the limit.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    #[error("{} is larger than the limit {} (the largest {} weft accepts){}",
        origin.with_value(value), limit.max, limit.quantity, escape(limit))]
    TooLarge { origin: Box<Origin>, value: Value, limit: Limit },
    #[error("{} must be at least 1", origin.with_value(&Value::Exact(0)))]
    Zero { origin: Box<Origin> },
}

fn escape(limit: &Limit) -> String {
    limit.escape.map(|e| format!("; {e}")).unwrap_or_default()
}

/// `value` if it is at most `limit.max`.
pub fn check(value: u64, origin: Origin, limit: &Limit) -> Result<u64, SizeError> {
    if value > limit.max {
        return Err(SizeError::TooLarge {
            origin: Box::new(origin),
            value: Value::Exact(value),
            limit: *limit,
        });
    }
    Ok(value)
}

/// `value` if it is at least 1 and at most `limit.max`.
pub fn check_positive(value: u64, origin: Origin, limit: &Limit) -> Result<u64, SizeError> {
    if value == 0 {
        return Err(SizeError::Zero { origin: Box::new(origin) });
    }
    check(value, origin, limit)
}

/// [`check_positive`] for a `usize`.
pub fn check_size(value: usize, origin: Origin, limit: &Limit) -> Result<usize, SizeError> {
    check_positive(value as u64, origin, limit).map(|_| value)
}

/// The product of `factors` if it is at most `limit.max`; `what` names the product
/// in the message, which shows the factors too (`the dense mask = 8 × 1024 × 1024 = …`).
pub fn check_product(factors: &[u64], what: &str, limit: &Limit) -> Result<u64, SizeError> {
    let product = factors.iter().try_fold(1u64, |acc, &f| acc.checked_mul(f));
    let shown: Vec<String> = factors.iter().map(u64::to_string).collect();
    let origin = Origin::Product { what: what.to_string(), factors: shown.join(" × ") };
    match product {
        Some(p) => check(p, origin, limit),
        None => Err(SizeError::TooLarge { origin: Box::new(origin), value: Value::Overflow, limit: *limit }),
    }
}

/// Parses a command-line size: a whole number from 1 to `limit.max`. Suits
/// clap's `value_parser`, which puts the flag's name before the message.
pub fn parse_flag(text: &str, limit: &Limit) -> Result<usize, String> {
    let value: u64 = text.trim().parse().map_err(|_| {
        format!("`{text}` is not a whole number from 1 to {} ({})", limit.max, limit.quantity)
    })?;
    if value == 0 {
        return Err(format!("the {} must be at least 1", limit.quantity));
    }
    if value > limit.max {
        return Err(format!(
            "{value} is larger than the limit {} (the largest {} weft accepts)",
            limit.max, limit.quantity
        ));
    }
    usize::try_from(value).map_err(|_| format!("{value} does not fit this machine's word size"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_admit_real_models() {
        // 128k context, 128 layers, a 256k vocabulary, head dim 256, 16k wide.
        let real = [(131072, &SEQ_LEN), (128, &LAYERS), (256000, &VOCAB), (256, &HEAD_DIM), (16384, &HIDDEN)];
        for (value, limit) in real {
            assert!(
                check(value, Origin::flag("--x"), limit).is_ok(),
                "{value} refused as {}",
                limit.quantity
            );
        }
        assert!(check_product(&[1, 131072, 256000], "logits", &ACTIVATION_ELEMENTS).is_ok());
    }

    #[test]
    fn a_flag_names_value_and_limit() {
        let e = check(2147483648, Origin::flag("--seq-len"), &SEQ_LEN).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--seq-len 2147483648 is larger than the limit 1048576 (the largest sequence length weft accepts)"
        );
    }

    #[test]
    fn a_file_key_names_the_file() {
        let e = check(1_000_000_000, Origin::file_key("num_hidden_layers", "m/config.json"), &LAYERS)
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("num_hidden_layers = 1000000000 in m/config.json is larger than the limit 1024")
        );
    }

    #[test]
    fn zero_names_the_tensor() {
        let e = check_positive(0, Origin::tensor("N", "q", "in.safetensors"), &SEQ_LEN).unwrap_err();
        assert_eq!(e.to_string(), "N = 0 (tensor `q` in in.safetensors) must be at least 1");
    }

    #[test]
    fn products_overflow_into_an_error() {
        let e = check_product(&[u64::MAX, 2], "the dense mask", &DENSE_OUTPUT_BYTES).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("more than 2^64"), "{text}");
        assert!(text.contains("--force"), "{text}");
        assert_eq!(check_product(&[8, 1024, 1024], "m", &DENSE_OUTPUT_BYTES), Ok(8 << 20));
    }

    #[test]
    fn flags_parse_within_bounds() {
        assert_eq!(parse_flag("131072", &SEQ_LEN), Ok(131072));
        assert!(parse_flag("0", &SEQ_LEN).unwrap_err().contains("at least 1"));
        assert!(parse_flag("2147483648", &SEQ_LEN).unwrap_err().contains("limit 1048576"));
        assert!(parse_flag("-3", &SEQ_LEN).unwrap_err().contains("not a whole number"));
    }
}
