//! `weft graph SPEC --emit sexpr|dot`: the reference graph of a pattern.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};
use weft_ir::lower::{LowerOptions, lower_pattern};

use crate::args::{SpecArgs, pick_layer};
use crate::output::{Input, guard, out_text, write_text};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum GraphFormat {
    /// weft's s-expression text format (parses back with the same meaning).
    Sexpr,
    /// Graphviz DOT (render with `dot -Tsvg`).
    Dot,
}

#[derive(Args, Debug)]
pub struct GraphArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = GraphFormat::Sexpr)]
    pub emit: GraphFormat,
    /// Layer whose pattern to lower (hybrid schedules; default 0).
    #[arg(long, value_name = "I")]
    pub layer: Option<usize>,
    /// Batch size of the graph's q, k, v inputs.
    #[arg(long, default_value_t = 1, value_name = "B", value_parser = crate::args::batch)]
    pub batch: usize,
    /// Output file (default: standard output).
    #[arg(long, short, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

pub fn run(args: &GraphArgs) -> anyhow::Result<()> {
    if let Some(out) = &args.out {
        guard(out_text(out, "the graph"), &[Input { path: &args.spec.spec, what: "spec" }])?;
    }
    let schedule = args.spec.load()?;
    let layer = pick_layer(&schedule, args.layer)?;
    let pattern =
        schedule.pattern_for_layer(layer).with_context(|| format!("layer {layer} has no pattern"))?;
    let d = &schedule.dims;
    let opts = LowerOptions::new(args.batch, d.seq_len, d.head_dim);
    let graph = lower_pattern(pattern, &opts)
        .with_context(|| format!("cannot lower pattern {} to its reference graph", pattern.name))?;
    let text = match args.emit {
        GraphFormat::Sexpr => graph.to_sexpr(),
        GraphFormat::Dot => graph.to_dot(),
    };
    write_text(args.out.as_deref(), &text)
}
