//! `weft compile SPEC|GRAPH.sexpr --emit graph|opt|plan|wgsl|spirv --out PATH`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use weft_compiler::{
    CompiledAttention, OptimizeOptions, PlanOptions, compile_attention, render_plan, to_spirv,
};
use weft_ir::SourceFile;
use weft_ir::graph::ValidGraph;
use weft_ir::lower::{LowerOptions, lower_pattern};

use crate::args::{SpecArgs, pick_layer};
use crate::output::{write_atomically, write_text};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Emit {
    /// The reference graph (s-expression).
    Graph,
    /// The optimized graph (s-expression), with the optimizer's report as comments.
    Opt,
    /// The kernel plan: buffers, kernels, bindings, dispatches and tile statistics.
    Plan,
    /// Every kernel's WGSL, one file per kernel in the directory --out.
    Wgsl,
    /// Every kernel's SPIR-V (through naga), one file per kernel in the directory --out.
    Spirv,
}

#[derive(Args, Debug)]
pub struct CompileArgs {
    /// A pattern spec (.toml) or a hand-written graph (.sexpr) with inputs q, k, v.
    #[command(flatten)]
    pub spec: SpecArgs,
    /// What to write.
    #[arg(long, value_enum)]
    pub emit: Emit,
    /// Output file (graph, opt, plan; `-` for standard output) or directory (wgsl, spirv).
    #[arg(long, short, value_name = "PATH")]
    pub out: PathBuf,
    /// Also plan the backward kernels (dQ, dK, dV).
    #[arg(long)]
    pub backward: bool,
    /// Layer whose pattern to compile (hybrid schedules; default 0).
    #[arg(long, value_name = "I")]
    pub layer: Option<usize>,
    /// Batch size the plan is made for.
    #[arg(long, default_value_t = 1, value_name = "B", value_parser = clap::value_parser!(u32).range(1..))]
    pub batch: u32,
}

/// The reference graph of a spec's pattern, or a graph read from an s-expression file.
pub fn reference_graph(spec: &SpecArgs, layer: Option<usize>, batch: usize) -> anyhow::Result<ValidGraph> {
    if spec.spec.extension().is_some_and(|e| e == "sexpr") {
        let text = std::fs::read_to_string(&spec.spec)
            .with_context(|| format!("cannot read graph {}", spec.spec.display()))?;
        let file = SourceFile::new(spec.spec.display().to_string(), text);
        let graph = weft_ir::graph::parse_sexpr(&file).map_err(|e| match e.excerpt(&file) {
            Some(excerpt) => anyhow::anyhow!("{e}\n{excerpt}"),
            None => anyhow::anyhow!("{e}"),
        })?;
        return Ok(graph.validate()?);
    }
    let schedule = spec.load()?;
    let layer = pick_layer(&schedule, layer)?;
    let pattern =
        schedule.pattern_for_layer(layer).with_context(|| format!("layer {layer} has no pattern"))?;
    let d = &schedule.dims;
    Ok(lower_pattern(pattern, &LowerOptions::new(batch, d.seq_len, d.head_dim))?)
}

pub fn compile(
    args: &SpecArgs,
    layer: Option<usize>,
    batch: usize,
    plan: &PlanOptions,
) -> anyhow::Result<CompiledAttention> {
    let reference = reference_graph(args, layer, batch)?;
    Ok(compile_attention(reference, &OptimizeOptions::default(), plan)?)
}

pub fn run(args: &CompileArgs) -> anyhow::Result<()> {
    let plan_opts = PlanOptions { backward: args.backward, ..PlanOptions::default() };
    if args.emit == Emit::Graph {
        let graph = reference_graph(&args.spec, args.layer, args.batch as usize)?;
        return write_text(Some(&args.out), &graph.to_sexpr());
    }
    let compiled = compile(&args.spec, args.layer, args.batch as usize, &plan_opts)?;
    let plan = &compiled.fused.plan;
    match args.emit {
        Emit::Graph => write_text(Some(&args.out), &compiled.reference.to_sexpr()),
        Emit::Opt => {
            let report: String =
                compiled.optimized.report.to_string().lines().map(|l| format!("; {l}\n")).collect();
            write_text(Some(&args.out), &format!("{report}{}", compiled.optimized.graph.to_sexpr()))
        }
        Emit::Plan => {
            write_text(Some(&args.out), &format!("{}\n{}", render_plan(plan), compiled.fused.stats))
        }
        Emit::Wgsl | Emit::Spirv => {
            if args.out == Path::new("-") {
                bail!("--emit {:?} writes one file per kernel: give a directory with --out", args.emit);
            }
            std::fs::create_dir_all(&args.out)
                .with_context(|| format!("cannot create {}", args.out.display()))?;
            for kernel in &plan.kernels {
                if args.emit == Emit::Wgsl {
                    let path = args.out.join(format!("{}.wgsl", kernel.name));
                    write_atomically(&path, |w| Ok(std::io::Write::write_all(w, kernel.wgsl.as_bytes())?))?;
                } else {
                    let words = to_spirv(&kernel.name, &kernel.wgsl)?;
                    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
                    let path = args.out.join(format!("{}.spv", kernel.name));
                    write_atomically(&path, |w| Ok(std::io::Write::write_all(w, &bytes)?))?;
                }
            }
            eprintln!("wrote {} kernels to {}", plan.kernels.len(), args.out.display());
            Ok(())
        }
    }
}
