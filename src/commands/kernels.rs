//! `weft inspect kernels SPEC`: what the compiler made of a pattern.

use std::fmt::Write;

use clap::Args;
use weft_compiler::{CompiledAttention, PlanOptions};

use crate::args::SpecArgs;
use crate::commands::compile::compile;

#[derive(Args, Debug)]
pub struct KernelsArgs {
    /// A pattern spec (.toml) or a hand-written graph (.sexpr).
    #[command(flatten)]
    pub spec: SpecArgs,
    /// Include the backward kernels.
    #[arg(long)]
    pub backward: bool,
    /// Layer whose pattern to inspect (hybrid schedules; default 0).
    #[arg(long, value_name = "I")]
    pub layer: Option<usize>,
    /// Batch size the plan is made for.
    #[arg(long, default_value_t = 1, value_name = "B", value_parser = clap::value_parser!(u32).range(1..))]
    pub batch: u32,
}

pub fn run(args: &KernelsArgs) -> anyhow::Result<()> {
    let opts = PlanOptions { backward: args.backward, ..PlanOptions::default() };
    let compiled = compile(&args.spec, args.layer, args.batch as usize, &opts)?;
    print!("{}", report(&compiled));
    Ok(())
}

fn report(c: &CompiledAttention) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "== graphs: reference (left), optimized (right)");
    out.push_str(&side_by_side(&c.reference.to_sexpr(), &c.optimized.graph.to_sexpr()));
    let _ = writeln!(out, "\n== optimizer");
    for line in c.optimized.report.to_string().lines() {
        let _ = writeln!(out, "  {line}");
    }
    let _ = writeln!(out, "\n== kernels");
    for k in &c.fused.plan.kernels {
        let bindings: Vec<String> = k
            .bindings
            .iter()
            .map(|b| format!("{}:{}({:?})", b.index, b.buffer, b.access).to_lowercase())
            .collect();
        let _ = writeln!(
            out,
            "  {:<28} workgroup {:?}  grid {:?}\n    bindings {}",
            k.name,
            k.workgroup_size,
            k.workgroups,
            bindings.join(" ")
        );
    }
    let _ = writeln!(out, "\n== tiles, FLOPs and bytes");
    for line in c.fused.stats.to_string().lines() {
        let _ = writeln!(out, "  {line}");
    }
    out
}

/// Two texts in columns, the left one padded to its widest line (at most 90 characters).
fn side_by_side(left: &str, right: &str) -> String {
    let width = left.lines().map(|l| l.chars().count()).max().unwrap_or(0).min(90);
    let (l, r): (Vec<&str>, Vec<&str>) = (left.lines().collect(), right.lines().collect());
    let mut out = String::new();
    for i in 0..l.len().max(r.len()) {
        let a = l.get(i).copied().unwrap_or("");
        let b = r.get(i).copied().unwrap_or("");
        let _ = writeln!(out, "{a:<width$} | {b}");
    }
    out
}
