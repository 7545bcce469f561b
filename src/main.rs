//! `weft`: compile sparse attention patterns, look at them, and (soon) train with them.

// First: its macros (`outln!`, `out!`, `errln!`) are in scope for every module below.
#[macro_use]
mod console;
mod args;
mod commands;
mod gpu;
mod memory;
mod output;
mod progress;
mod render;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// weft: a compiler for sparse attention patterns (LongLoRA S2-Attn, sliding
/// windows, attention sinks, LongGen block sparsity) and the runtime that
/// fine-tunes long-context models with them.
#[derive(Parser)]
#[command(name = "weft", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a pattern spec and print what it resolves to.
    Check(commands::check::CheckArgs),
    /// Write the dense mask of a pattern as .npy, .png or ASCII.
    Mask(commands::mask::MaskArgs),
    /// Per head: density, empty/full/partial tiles and attention FLOPs relative to full causal;
    /// `inspect kernels SPEC` shows the compiled kernels.
    Inspect(InspectCmd),
    /// Compile a pattern (or a hand-written .sexpr graph) and write a stage: graph, opt, plan, wgsl or spirv.
    Compile(commands::compile::CompileArgs),
    /// Run a pattern's attention on the GPU on tensors from a safetensors file.
    Attn(commands::attn::AttnArgs),
    /// Run a Hugging Face LLaMA checkpoint's forward pass (logits, and the loss with --loss).
    Forward(commands::forward::ForwardArgs),
    /// Generate with a LLaMA checkpoint: one fused prefill, then a token at a time against a KV
    /// cache per layer that keeps only the keys its attention pattern can still reach.
    Generate(commands::generate::GenerateArgs),
    /// Fine-tune a LLaMA (LongLoRA: S2-Attn and LoRA+ by default) or train one from scratch;
    /// writes a PEFT adapter (or a model), metrics.jsonl, loss.png and checkpoints.
    Train(Box<commands::train::TrainArgs>),
    /// The whole LongLoRA loop on a built-in corpus, no download: pretrain a tiny LLaMA at a short
    /// context, extend it 4x with S2-Attn and LoRA+, merge, and evaluate perplexity and passkey.
    Demo(commands::demo::DemoArgs),
    /// Write real text for training and evaluation, with nothing to download: the Rust sources of
    /// weft's dependencies in Cargo's registry, as train.jsonl and heldout.jsonl.
    Corpus(commands::corpus::CorpusArgs),
    /// Learn a byte-level BPE tokenizer.json from text, for a model trained from scratch.
    Tokenizer(commands::tokenizer::TokenizerArgs),
    /// Training runs and their evaluations side by side: results.json, a markdown table, the loss
    /// curves on one figure and perplexity against the evaluation length.
    Compare(commands::compare::CompareArgs),
    /// Merge a PEFT LoRA adapter (and the RoPE factor weft trained it with) into its base model:
    /// a Hugging Face checkpoint transformers loads as is.
    Export(commands::export::ExportArgs),
    /// Evaluate a LLaMA checkpoint per length: sliding-window perplexity and passkey retrieval.
    Eval(commands::eval::EvalArgs),
    /// Measure fused attention configurations on the current adapter and cache the fastest
    /// (`attn` and `bench attn` use it).
    Tune(commands::tune::TuneArgs),
    /// Benchmarks on the current adapter.
    #[command(subcommand)]
    Bench(commands::bench::BenchWhat),
    /// Print the reference graph of a pattern (the plain tensor ops a PyTorch user would write).
    Graph(commands::graph::GraphArgs),
}

#[derive(clap::Args)]
#[command(subcommand_negates_reqs = true)]
struct InspectCmd {
    #[command(subcommand)]
    what: Option<InspectWhat>,
    #[command(flatten)]
    pattern: commands::inspect::InspectArgs,
}

#[derive(Subcommand)]
enum InspectWhat {
    /// Per kernel: name, workgroup size, bindings, tiles visited, FLOPs, bytes and the rules that fired,
    /// with the optimized graph beside the reference graph.
    Kernels(commands::kernels::KernelsArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check(a) => commands::check::run(&a),
        Command::Mask(a) => commands::mask::run(&a),
        Command::Inspect(InspectCmd { what: Some(InspectWhat::Kernels(a)), .. }) => {
            commands::kernels::run(&a)
        }
        Command::Inspect(InspectCmd { what: None, pattern }) => commands::inspect::run(&pattern),
        Command::Compile(a) => commands::compile::run(&a),
        Command::Attn(a) => commands::attn::run(&a),
        Command::Tune(a) => commands::tune::run(&a),
        Command::Forward(a) => commands::forward::run(&a),
        Command::Generate(a) => commands::generate::run(&a),
        Command::Train(a) => commands::train::run(&a),
        Command::Demo(a) => commands::demo::run(&a),
        Command::Corpus(a) => commands::corpus::run(&a),
        Command::Tokenizer(a) => commands::tokenizer::run(&a),
        Command::Compare(a) => commands::compare::run(&a),
        Command::Export(a) => commands::export::run(&a),
        Command::Eval(a) => commands::eval::run(&a),
        Command::Bench(w) => commands::bench::run(&w),
        Command::Graph(a) => commands::graph::run(&a),
    };
    let code = match result {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`weft mask ... --out - | head`) is the reader's choice, not an error.
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            errln!("error: {}", describe(&err));
            ExitCode::FAILURE
        }
    };
    // Messages lost to a full disk behind a redirect: the output is not whole.
    match console::failure() {
        Some(failure) => {
            errln!("error: {failure}");
            ExitCode::FAILURE
        }
        None => code,
    }
}

/// Spec errors print with the offending line underlined; others with their causes.
fn describe(err: &anyhow::Error) -> String {
    if let Some(spec) = err.downcast_ref::<weft_ir::SpecError>() {
        return spec.render();
    }
    let mut text = err.to_string();
    for cause in err.chain().skip(1) {
        // Stage errors already end with their source's text (`cannot read X: <io error>`).
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(&format!("\n  caused by: {cause}"));
        }
    }
    text
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
