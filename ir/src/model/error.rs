//! What can be wrong with a `config.json`.

/// An error reading a Hugging Face `config.json`; every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read model config {file}: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}:{line}:{column}: invalid JSON: {message}")]
    Json { file: String, line: usize, column: usize, message: String },
    #[error("{file}: {kind}")]
    Invalid { file: String, kind: ConfigErrorKind },
}

impl ConfigError {
    /// What was wrong with a well-formed JSON file, if that was the problem.
    pub fn kind(&self) -> Option<&ConfigErrorKind> {
        match self {
            ConfigError::Invalid { kind, .. } => Some(kind),
            ConfigError::Io { .. } | ConfigError::Json { .. } => None,
        }
    }
}

/// A value in well-formed JSON that does not describe a LLaMA model weft can
/// build. Keys are dotted paths (`rope_scaling.factor`).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ConfigErrorKind {
    #[error("the top level must be a JSON object, found {found}")]
    NotAnObject { found: String },
    #[error("missing required key `{key}`")]
    Missing { key: String },
    #[error("`{key}` must be {expected}, found {found}")]
    WrongType { key: String, expected: &'static str, found: String },
    #[error("`{key}` must be at least 1, found 0")]
    Zero { key: String },
    #[error("`{key}` must be a positive finite number, found {value:?}")]
    NotPositive { key: String, value: f64 },
    #[error("`{key}` is {value:?}, but it must be below `{bound}` ({bound_value:?})")]
    NotBelow { key: String, value: f64, bound: String, bound_value: f64 },
    #[error(
        "`hidden_size` ({hidden_size}) is not divisible by `num_attention_heads` ({heads}); \
         set `head_dim` if the model's heads are not hidden_size / num_attention_heads wide"
    )]
    HeadsDoNotDivideHidden { hidden_size: usize, heads: usize },
    #[error(
        "`num_attention_heads` ({heads}) is not divisible by `num_key_value_heads` ({kv_heads}); \
         grouped-query attention shares each key/value head among the same number of query heads"
    )]
    KvHeadsDoNotDivideHeads { heads: usize, kv_heads: usize },
    #[error("the head dimension ({head_dim}, from {source_of}) must be even: RoPE rotates pairs of channels")]
    OddHeadDim { head_dim: usize, source_of: &'static str },
    #[error("{0}")]
    TooLargeSize(crate::limits::SizeError),
    #[error("the model's parameter count does not fit in 64 bits; check the sizes")]
    TooLarge,
    #[error("`{key}` names no RoPE type; give `rope_type` (or `type`) as one of: {supported}")]
    MissingRopeType { key: String, supported: &'static str },
    #[error("`{key}` is \"{rope_type}\", a RoPE type weft does not support; supported: {supported}")]
    UnsupportedRope { key: String, rope_type: String, supported: &'static str },
    /// A key whose value would change the math in a way weft does not implement.
    #[error("`{key}: {value}` is not supported ({why})")]
    Unsupported { key: String, value: String, why: String },
    #[error("`{first}` says {first_value} but `{second}` says {second_value}; remove one of them")]
    Conflict { first: String, first_value: String, second: String, second_value: String },
}
