//! `weft compile SPEC|GRAPH.sexpr|CONFIG|CHECKPOINT_DIR --emit graph|opt|plan|wgsl|spirv --out PATH`.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use weft_compiler::{Compiled, KernelKind, MatmulClass, render_plan, to_spirv};
use weft_runtime::io::write_dir_atomically;

use super::source::SourceArgs;
use crate::output::{Input, Output, OutputKind, guard, tuning_cache_path, write_text};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Emit {
    /// The reference graph (s-expression).
    Graph,
    /// The optimized graph (s-expression), with the optimizer's report as comments.
    Opt,
    /// The kernel plan: buffers, kernels, bindings, dispatches, per-kernel FLOPs and bytes, and
    /// the tile statistics of every fused attention.
    Plan,
    /// Every kernel's WGSL, one file per kernel in the directory --out.
    Wgsl,
    /// Every kernel's SPIR-V (through naga), one file per kernel in the directory --out.
    Spirv,
}

#[derive(Args, Debug)]
pub struct CompileArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// What to write.
    #[arg(long, value_enum)]
    pub emit: Emit,
    /// Output file (graph, opt, plan; `-` for standard output) or directory (wgsl, spirv).
    #[arg(long, short, value_name = "PATH")]
    pub out: std::path::PathBuf,
}

/// What an existing `--out` directory may hold to be replaced: kernels of an earlier run.
const KERNEL_EXTENSIONS: &[&str] = &["wgsl", "spv"];

pub fn run(args: &CompileArgs) -> anyhow::Result<()> {
    guard_output(args)?;
    if args.emit == Emit::Graph {
        return write_text(Some(&args.out), &args.source.graph()?.to_sexpr());
    }
    // The plan is made for the adapter this machine would run it on, with
    // `weft tune`'s choices for it when the cache has them.
    let compiled = args.source.compile(super::tune::local_plan_options)?;
    let plan = &compiled.plan;
    match args.emit {
        Emit::Graph => unreachable!("handled above"),
        Emit::Opt => {
            let Some(optimized) = &compiled.optimized else { bail!("the optimizer did not run") };
            let report: String = optimized.report.to_string().lines().map(|l| format!("; {l}\n")).collect();
            write_text(Some(&args.out), &format!("{report}{}", optimized.graph.to_sexpr()))
        }
        Emit::Plan => {
            let mut text = render_plan(plan);
            text.push('\n');
            text.push_str(&kernel_table(&compiled));
            for stats in compiled.attention_stats()? {
                let _ = write!(text, "\n{stats}");
            }
            write_text(Some(&args.out), &text)
        }
        Emit::Wgsl | Emit::Spirv => {
            // Every file is made before any is written, so that only the disk can fail midway.
            let mut files = Vec::with_capacity(plan.kernels.len());
            for kernel in &plan.kernels {
                if args.emit == Emit::Wgsl {
                    files.push((format!("{}.wgsl", kernel.name), kernel.wgsl.as_bytes().to_vec()));
                } else {
                    let words = to_spirv(&kernel.name, &kernel.wgsl)?;
                    files.push((
                        format!("{}.spv", kernel.name),
                        words.iter().flat_map(|w| w.to_le_bytes()).collect(),
                    ));
                }
            }
            // The directory is replaced whole, or left as it was.
            write_dir_atomically(&args.out, |dir| -> anyhow::Result<()> {
                for (name, bytes) in &files {
                    dir.file::<std::io::Error>(name, |w| std::io::Write::write_all(w, bytes))?;
                }
                Ok(())
            })
            .with_context(|| format!("cannot write kernels to {}", args.out.display()))?;
            errln!("wrote {} kernels to {}", plan.kernels.len(), args.out.display());
            Ok(())
        }
    }
}

/// Refuses an `--out` that would replace one of the inputs (or, for a
/// directory of kernels, hold one or hold files weft did not write).
fn guard_output(args: &CompileArgs) -> anyhow::Result<()> {
    let directory = matches!(args.emit, Emit::Wgsl | Emit::Spirv);
    if directory && args.out == Path::new("-") {
        bail!("--emit {:?} writes one file per kernel: give a directory with --out", args.emit);
    }
    let cache = if args.emit == Emit::Graph { None } else { tuning_cache_path() };
    let mut inputs = args.source.inputs();
    inputs.extend(cache.as_deref().map(|path| Input { path, what: "tuning cache" }));
    let (what, kind) = match args.emit {
        Emit::Graph => ("the graph", OutputKind::Text),
        Emit::Opt => ("the optimized graph", OutputKind::Text),
        Emit::Plan => ("the plan", OutputKind::Text),
        Emit::Wgsl | Emit::Spirv => ("kernels", OutputKind::Directory { extensions: KERNEL_EXTENSIONS }),
    };
    guard(Output { path: &args.out, what, flag: "--out", kind }, &inputs)
}

/// Every kernel of the plan, one line each: kind, workgroup, grid, bindings,
/// estimated FLOPs and bytes, and for a matmul the shape class and kernel
/// shape it runs with (the tuned one when the cache has it); then the totals
/// by kind.
pub fn kernel_table(compiled: &Compiled) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<40} {:<18} {:>12} {:>20} {:>8} {:>12} {:>12}  config",
        "kernel", "kind", "workgroup", "grid", "bindings", "MFLOP", "MB"
    );
    for k in &compiled.kernels {
        let config = match k.kind {
            KernelKind::Matmul => compiled
                .plan
                .kernels
                .iter()
                .find(|p| p.name == k.name)
                .and_then(|p| matmul_config(&p.wgsl))
                .unwrap_or_default(),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "{:<40} {:<18} {:>12} {:>20} {:>8} {:>12.3} {:>12.3}  {config}",
            k.name,
            k.kind.label(),
            format!("{:?}", k.workgroup_size),
            format!("{:?}", k.workgroups),
            k.bindings,
            k.flops as f64 / 1e6,
            k.bytes as f64 / 1e6
        );
    }
    let mut kinds: Vec<_> = compiled.kernels.iter().map(|k| k.kind).collect();
    kinds.sort();
    kinds.dedup();
    let _ = writeln!(out, "{} kernels:", compiled.kernels.len());
    for kind in kinds {
        let of_kind: Vec<_> = compiled.kernels.iter().filter(|k| k.kind == kind).collect();
        let flops: u64 = of_kind.iter().map(|k| k.flops).sum();
        let bytes: u64 = of_kind.iter().map(|k| k.bytes).sum();
        let _ = writeln!(
            out,
            "  {:<18} {:>5} kernels {:>14.1} MFLOP {:>12.1} MB",
            kind.label(),
            of_kind.len(),
            flops as f64 / 1e6,
            bytes as f64 / 1e6
        );
    }
    out
}

/// `small sg4x64/wg8`: the shape class and kernel shape a matmul kernel's
/// title comment names (`// n3_matmul: matmul, transpose_b 64×32×64, small sg4x64/wg8: ...`).
fn matmul_config(wgsl: &str) -> Option<String> {
    let title = wgsl.lines().next()?;
    let words: Vec<&str> = title.split_whitespace().collect();
    let at = words.iter().position(|w| MatmulClass::from_name(w).is_some())?;
    let config = words.get(at + 1)?.trim_end_matches(':');
    Some(format!("{} {config}", words[at]))
}

#[cfg(test)]
mod tests {
    use super::matmul_config;

    #[test]
    fn matmul_config_is_read_from_either_generators_title() {
        let subgroup = "// n3_matmul: matmul, transpose_b 2·2048×512×8192, large sg4x64/wg8: B shared across each subgroup\n";
        assert_eq!(matmul_config(subgroup).as_deref(), Some("large sg4x64/wg8"));
        let registers =
            "// n2_matmul: matmul, transpose_a 6·5×7×6, narrow_n 8x8/wg64 (loads: a scalar, b scalar)\n";
        assert_eq!(matmul_config(registers).as_deref(), Some("narrow_n 8x8/wg64"));
        assert_eq!(matmul_config("// n1_add: add\n"), None);
    }
}
