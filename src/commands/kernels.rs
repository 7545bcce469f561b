//! `weft inspect kernels SPEC|GRAPH.sexpr|CONFIG|CHECKPOINT_DIR`: what the
//! compiler made of a pattern or a model, stage by stage.

use std::fmt::Write;

use clap::Args;
use weft_compiler::Compiled;

use super::compile::kernel_table;
use super::source::SourceArgs;

#[derive(Args, Debug)]
pub struct KernelsArgs {
    #[command(flatten)]
    pub source: SourceArgs,
}

pub fn run(args: &KernelsArgs) -> anyhow::Result<()> {
    let compiled = args.source.compile(super::tune::local_plan_options)?;
    out!("{}", report(&compiled)?);
    Ok(())
}

fn report(c: &Compiled) -> anyhow::Result<String> {
    let mut out = String::new();
    // A model's graphs run to thousands of lines: their sizes say enough.
    let small = c.reference.len() <= 200;
    match &c.optimized {
        Some(opt) if small => {
            let _ = writeln!(out, "== graphs: reference (left), optimized (right)");
            out.push_str(&side_by_side(&c.reference.to_sexpr(), &opt.graph.to_sexpr()));
        }
        Some(opt) => {
            let _ = writeln!(
                out,
                "== graphs: reference {} nodes, optimized {} nodes (`weft compile --emit graph|opt` prints them)",
                c.reference.len(),
                opt.graph.len()
            );
        }
        None => {}
    }
    if let Some(opt) = &c.optimized {
        let _ = writeln!(out, "\n== optimizer");
        for line in opt.report.to_string().lines() {
            let _ = writeln!(out, "  {line}");
        }
    }
    if let Some(step) = &c.gradients {
        let _ = writeln!(
            out,
            "\n== training step: {} nodes, {} gradients ({})",
            step.graph.len(),
            step.grads.len(),
            step.grads.iter().map(|(leaf, _)| leaf.as_str()).take(6).collect::<Vec<_>>().join(", ")
                + if step.grads.len() > 6 { ", ..." } else { "" }
        );
    }
    let _ = writeln!(
        out,
        "\n== kernels ({} buffers, {:.1} MiB)",
        c.plan.buffers.len(),
        c.plan.total_bytes() as f64 / (1 << 20) as f64
    );
    for line in kernel_table(c).lines() {
        let _ = writeln!(out, "  {line}");
    }
    if small {
        let _ = writeln!(out, "\n== bindings");
        for k in &c.plan.kernels {
            let bindings: Vec<String> = k
                .bindings
                .iter()
                .map(|b| format!("{}:{}({:?})", b.index, b.buffer, b.access).to_lowercase())
                .collect();
            let _ = writeln!(out, "  {:<28} {}", k.name, bindings.join(" "));
        }
    }
    let stats = c.attention_stats()?;
    if !stats.is_empty() {
        let _ = writeln!(out, "\n== tiles, FLOPs and bytes of each fused attention");
        for s in stats {
            for line in s.to_string().lines() {
                let _ = writeln!(out, "  {line}");
            }
        }
    }
    Ok(out)
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
