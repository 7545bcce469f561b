//! `weft check SPEC`: validate a spec and print what it resolves to.

use std::fmt::Write;

use clap::Args;
use weft_ir::Schedule;

use crate::args::SpecArgs;

#[derive(Args, Debug)]
pub struct CheckArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
}

pub fn run(args: &CheckArgs) -> anyhow::Result<()> {
    let schedule = args.spec.load()?;
    out!("{}", summary(&schedule));
    Ok(())
}

/// A human-readable account of a resolved spec.
pub fn summary(schedule: &Schedule) -> String {
    let d = &schedule.dims;
    let mut out = String::new();
    let _ = writeln!(out, "{}: ok", schedule.name);
    let _ = writeln!(
        out,
        "  sizes    N = {} (seq_len), H = {} (n_heads), L = {} (n_layers), head_dim = {}",
        d.seq_len, d.n_heads, d.n_layers, d.head_dim
    );
    if !schedule.vars.is_empty() {
        let vars: Vec<String> = schedule.vars.iter().map(|(n, v)| format!("{n} = {v}")).collect();
        let _ = writeln!(out, "  vars     {}", vars.join(", "));
    }
    for (index, pattern) in schedule.patterns.iter().enumerate() {
        let layers = schedule.layers_using(index);
        let used = if layers.is_empty() { "unused".to_string() } else { format!("layers {layers}") };
        let _ = writeln!(out, "  pattern  {} ({used})", pattern.name);
        for group in &pattern.groups {
            let heads = format!("{}..{}", group.heads.start, group.heads.end);
            let _ = writeln!(out, "    heads {heads:<9} {}", group.mask);
        }
    }
    out
}
