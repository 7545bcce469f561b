//! Arguments shared by several commands.

use std::path::PathBuf;

use clap::Args;
use weft_ir::limits::{self, Limit};
use weft_ir::{Overrides, Schedule};

// Size flags are checked as clap parses them (`weft_ir::limits`), so that no
// command ever starts on a size it would refuse later; clap names the flag.
fn size_flag(text: &str, limit: &Limit) -> Result<usize, String> {
    limits::parse_flag(text, limit)
}
pub fn seq_len(text: &str) -> Result<usize, String> {
    size_flag(text, &limits::SEQ_LEN)
}
pub fn heads(text: &str) -> Result<usize, String> {
    size_flag(text, &limits::HEADS)
}
pub fn layers(text: &str) -> Result<usize, String> {
    size_flag(text, &limits::LAYERS)
}
pub fn head_dim(text: &str) -> Result<usize, String> {
    size_flag(text, &limits::HEAD_DIM)
}
pub fn batch(text: &str) -> Result<usize, String> {
    size_flag(text, &limits::BATCH)
}
pub fn hidden(text: &str) -> Result<usize, String> {
    size_flag(text, &limits::HIDDEN)
}
pub fn vocab(text: &str) -> Result<usize, String> {
    size_flag(text, &limits::VOCAB)
}
pub fn lora_rank(text: &str) -> Result<usize, String> {
    size_flag(text, &limits::LORA_RANK)
}
pub fn repeats(text: &str) -> Result<usize, String> {
    size_flag(text, &limits::REPEATS)
}
pub fn block(text: &str) -> Result<usize, String> {
    size_flag(text, &limits::BLOCK)
}

/// The spec file and the sizes that override its `[defaults]`.
#[derive(Args, Debug, Clone)]
pub struct SpecArgs {
    /// Pattern spec file (TOML), e.g. examples/patterns/s2attn-roll.toml.
    pub spec: PathBuf,
    #[command(flatten)]
    pub sizes: SizeArgs,
}

/// Sizes that override a spec's `[defaults]`.
#[derive(Args, Debug, Clone, Default)]
pub struct SizeArgs {
    /// Sequence length N (overrides [defaults] seq_len).
    #[arg(long, value_name = "N", value_parser = seq_len)]
    pub seq_len: Option<usize>,
    /// Number of heads H (overrides [defaults] n_heads).
    #[arg(long, value_name = "H", value_parser = heads)]
    pub heads: Option<usize>,
    /// Number of layers L (overrides [defaults] n_layers).
    #[arg(long, value_name = "L", value_parser = layers)]
    pub layers: Option<usize>,
    /// Head dimension (overrides [defaults] head_dim).
    #[arg(long, value_name = "D", value_parser = head_dim)]
    pub head_dim: Option<usize>,
}

impl SizeArgs {
    pub fn overrides(&self) -> Overrides {
        Overrides {
            seq_len: self.seq_len,
            n_heads: self.heads,
            n_layers: self.layers,
            head_dim: self.head_dim,
        }
    }
}

impl SpecArgs {
    pub fn load(&self) -> anyhow::Result<Schedule> {
        Ok(weft_ir::spec::load_schedule(&self.spec, &self.sizes.overrides())?)
    }
}

/// Picks the layer a command looks at; a hybrid schedule without `--layer` uses layer 0.
pub fn pick_layer(schedule: &Schedule, layer: Option<usize>) -> anyhow::Result<usize> {
    let n_layers = schedule.dims.n_layers;
    match layer {
        Some(l) if l >= n_layers => {
            anyhow::bail!("--layer {l} is out of range: the schedule has {n_layers} layers (0..{n_layers})")
        }
        Some(l) => Ok(l),
        None => {
            if schedule.is_hybrid() {
                errln!(
                    "note: {} assigns different patterns to layers; showing layer 0 (pick one with --layer)",
                    schedule.name
                );
            }
            Ok(0)
        }
    }
}
