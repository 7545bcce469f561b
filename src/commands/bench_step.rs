//! `weft bench step`: one LongLoRA fine-tuning step (forward, loss, backward)
//! of a ~20M-parameter LLaMA on the current adapter, full causal attention
//! against S2-Attn, with the buffer bytes the plan allocates.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use rand::{Rng, SeedableRng, rngs::StdRng};
use weft_compiler::{CompileOptions, ElemType, GraphPlanOptions, KernelKind, Mode, OptimizeOptions, compile};
use weft_ir::graph::Op;
use weft_ir::model::{LlamaConfig, LoraConfig, ModelGraphOptions, build_llama_graph};
use weft_ir::{Overrides, SourceFile, Spec};
use weft_runtime::{Executor, HostValues};

/// LongLoRA's roll-form S2-Attn, built in so the benchmark runs from anywhere.
const S2ATTN: &str = include_str!("../../examples/patterns/s2attn-roll.toml");

#[derive(Args, Debug)]
pub struct BenchStepArgs {
    /// Sequence lengths, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "2048", value_parser = crate::args::seq_len)]
    pub seq_len: Vec<usize>,
    #[arg(long, default_value_t = 512, value_parser = crate::args::hidden)]
    pub hidden: usize,
    #[arg(long, default_value_t = 4, value_parser = crate::args::layers)]
    pub layers: usize,
    #[arg(long, default_value_t = 8, value_parser = crate::args::heads)]
    pub heads: usize,
    #[arg(long, default_value_t = 8192, value_parser = crate::args::vocab)]
    pub vocab: usize,
    /// Timed steps after one warm-up step (which also compiles the pipelines); the median is reported.
    #[arg(long, default_value_t = 1, value_parser = crate::args::repeats)]
    pub repeats: usize,
    /// Plan and report buffer bytes only; run nothing.
    #[arg(long)]
    pub plan_only: bool,
    /// Plan every elementwise op as its own kernel (the baseline elementwise fusion is measured against).
    #[arg(long)]
    pub no_fusion: bool,
    /// Fold RoPE into the fused attention kernels' loads (off by default: slower on lavapipe).
    #[arg(long)]
    pub rope_on_load: bool,
    /// Recompute each layer's activations in the backward pass instead of keeping them.
    #[arg(long)]
    pub gradient_checkpointing: bool,
    /// Store the frozen weights in bf16 on the device, as a bf16 checkpoint's are kept (their
    /// random values are drawn as bf16 values); the trained ones stay f32.
    #[arg(long)]
    pub bf16_weights: bool,
    /// After timing, run each kernel on its own and print the slowest ones.
    #[arg(long, value_name = "N", value_parser = crate::args::repeats)]
    pub profile: Option<usize>,
}

/// A LLaMA of the given sizes: SwiGLU width 8/3 of hidden (rounded to 32), head dim 64.
fn config(args: &BenchStepArgs) -> anyhow::Result<LlamaConfig> {
    let intermediate = (args.hidden * 8 / 3).div_ceil(32) * 32;
    let json = format!(
        r#"{{"hidden_size": {}, "intermediate_size": {intermediate}, "num_attention_heads": {},
            "num_key_value_heads": {}, "num_hidden_layers": {}, "rms_norm_eps": 1e-5,
            "vocab_size": {}, "max_position_embeddings": 65536, "tie_word_embeddings": false}}"#,
        args.hidden, args.heads, args.heads, args.layers, args.vocab
    );
    Ok(LlamaConfig::from_json_str(&json, "bench model")?)
}

pub fn run(args: &BenchStepArgs) -> anyhow::Result<()> {
    let config = config(args)?;
    let params: usize = config.parameter_shapes().iter().map(|p| p.len()).sum();
    let gpu = crate::gpu::open()?;
    outln!("adapter: {}", gpu.adapter_description());
    outln!(
        "model: {:.1}M parameters (hidden {}, {} layers, {} heads of {}, vocab {}); LoRA r = 8 on q, k, v, o; \
         embedding and norms trainable",
        params as f64 / 1e6,
        config.hidden_size,
        config.num_hidden_layers,
        config.num_attention_heads,
        config.head_dim,
        config.vocab_size
    );
    let plan_opts = GraphPlanOptions { fuse_elementwise: !args.no_fusion, ..super::tune::plan_options(&gpu) };
    let mut executor = Executor::new(gpu);
    for &t in &args.seq_len {
        outln!("\nT = {t}, B = 1");
        outln!(
            "  {:<10} {:>12} {:>12} {:>10} {:>14} {:>10} {:>9}",
            "attention",
            "step ms",
            "tokens/s",
            "kernels",
            "peak buffers",
            "largest",
            "T×T"
        );
        let mut times = Vec::new();
        for pattern in ["causal", "s2attn"] {
            let schedule = match pattern {
                "s2attn" => {
                    let overrides = Overrides {
                        seq_len: Some(t),
                        n_heads: Some(config.num_attention_heads),
                        n_layers: Some(config.num_hidden_layers),
                        head_dim: Some(config.head_dim),
                    };
                    Some(Spec::parse(SourceFile::new("s2attn-roll.toml", S2ATTN))?.resolve(&overrides)?)
                }
                _ => None,
            };
            let lora = LoraConfig::longlora();
            let opts = ModelGraphOptions {
                lora: Some(lora),
                train_embed: true,
                train_norm: true,
                loss: true,
                logits_output: false,
                ..ModelGraphOptions::new(1, t)
            };
            let started = Instant::now();
            let graph = build_llama_graph(&config, schedule.as_ref(), &opts)?;
            let trainable = weft_ir::autodiff::trainable_parameters(&graph);
            let leaf_storage: BTreeMap<String, ElemType> = graph
                .leaves()
                .filter(|&(id, name)| {
                    args.bf16_weights
                        && matches!(graph.node(id).op, Op::Parameter { .. })
                        && !trainable.iter().any(|t| t == name)
                })
                .map(|(_, name)| (name.to_string(), ElemType::Bf16))
                .collect();
            // A training step: LoRA stays unfolded (its gradients stay
            // rank-sized), every trainable parameter gets its gradient.
            let opts = CompileOptions {
                mode: Mode::Training { wrt: Vec::new(), seeds: vec!["loss".to_string()] },
                optimizer: OptimizeOptions { rope_on_load: args.rope_on_load, ..OptimizeOptions::default() },
                plan: GraphPlanOptions { leaf_storage: leaf_storage.clone(), ..plan_opts.clone() },
                gradient_checkpointing: args.gradient_checkpointing,
                ..CompileOptions::default()
            };
            let compiled = compile(graph, &opts)?;
            let plan = &compiled.plan;
            let step = compiled.planned_graph();
            let square = plan.buffers.values().filter(|b| b.shape.ends_with(&[t, t])).count();
            errln!("  {pattern}: compiled in {:.1} s", started.elapsed().as_secs_f64());
            if let Some(c) = &compiled.checkpointing {
                errln!(
                    "  {pattern}: gradient checkpointing keeps {} activations, recomputes {} nodes",
                    c.checkpoints,
                    c.recomputed
                );
            }
            let (peak, largest) = (plan.total_bytes(), plan.largest_buffer());
            let mib = |b: u64| format!("{:.1} MiB", b as f64 / (1 << 20) as f64);
            let square = if square == 0 { "none".to_string() } else { square.to_string() };
            if args.plan_only {
                let kernels = plan.kernels.len();
                outln!(
                    "  {pattern:<10} {:>12} {:>12} {kernels:>10} {:>14} {:>10} {square:>9}",
                    "-",
                    "-",
                    mib(peak),
                    mib(largest)
                );
                continue;
            }
            crate::memory::check_fits(peak, &format!("the {pattern} step's buffers"))?;
            let prepared = executor.prepare(plan).with_context(|| format!("preparing the {pattern} step"))?;
            let mut rng = StdRng::seed_from_u64(0x5EED);
            let inputs: HashMap<String, HostValues> = step
                .leaves()
                .map(|(id, name)| {
                    let ty = &step.node(id).ty;
                    let count: usize = ty.shape.iter().product();
                    // A weight stored in bf16 is drawn as bf16 values (the top half of an f32).
                    let mask = if leaf_storage.contains_key(name) { 0xffff_0000 } else { u32::MAX };
                    let values = if ty.dtype.is_float() {
                        HostValues::F32(
                            (0..count)
                                .map(|_| f32::from_bits(rng.random_range(-0.05f32..0.05).to_bits() & mask))
                                .collect(),
                        )
                    } else {
                        HostValues::I64(
                            (0..count).map(|_| rng.random_range(0..config.vocab_size as i64)).collect(),
                        )
                    };
                    (name.to_string(), values)
                })
                .collect();
            executor.upload(&prepared, &inputs)?;
            executor.execute(&prepared)?;
            let mut runs: Vec<Duration> =
                (0..args.repeats.max(1)).map(|_| executor.execute(&prepared)).collect::<Result<_, _>>()?;
            runs.sort();
            let median = runs[runs.len() / 2];
            if let Some(top) = args.profile {
                let each = executor.execute_each(&prepared)?;
                let mut named: Vec<(&str, Duration)> =
                    prepared.kernel_names().into_iter().zip(each).collect();
                named.sort_by_key(|(_, d)| std::cmp::Reverse(*d));
                let total: Duration = named.iter().map(|(_, d)| *d).sum();
                outln!(
                    "  {pattern}: slowest kernels of {:.1} ms, one submission each",
                    total.as_secs_f64() * 1e3
                );
                for (name, d) in named.iter().take(top) {
                    let kernel = plan.kernels.iter().find(|k| k.name == *name);
                    let rate = kernel
                        .filter(|k| k.flops > 0)
                        .map(|k| format!("{:>7.2} GFLOP/s", k.flops as f64 / d.as_secs_f64().max(1e-9) / 1e9))
                        .unwrap_or_default();
                    outln!(
                        "    {:>9.1} ms {rate:>15}  {}",
                        d.as_secs_f64() * 1e3,
                        kernel.map_or(*name, title)
                    );
                }
                let mut by_kind: Vec<(&str, Duration, usize)> = Vec::new();
                for (name, d) in &named {
                    let kind = KernelKind::of(name).label();
                    match by_kind.iter_mut().find(|(k, ..)| *k == kind) {
                        Some((_, sum, count)) => {
                            *sum += *d;
                            *count += 1;
                        }
                        None => by_kind.push((kind, *d, 1)),
                    }
                }
                by_kind.sort_by_key(|(_, d, _)| std::cmp::Reverse(*d));
                let share = |d: Duration| 100.0 * d.as_secs_f64() / total.as_secs_f64().max(1e-9);
                let parts: Vec<String> = by_kind
                    .iter()
                    .map(|(kind, d, count)| format!("{kind} {:.0}% ({count})", share(*d)))
                    .collect();
                outln!("  {pattern}: by kind (kernels): {}", parts.join(", "));
            }
            times.push(median);
            outln!(
                "  {pattern:<10} {:>12.1} {:>12.1} {:>10} {:>14} {:>10} {square:>9}",
                median.as_secs_f64() * 1e3,
                t as f64 / median.as_secs_f64(),
                plan.kernels.len(),
                mib(peak),
                mib(largest)
            );
        }
        if let [causal, s2] = times[..] {
            outln!("  S2-Attn / causal (step): {:.3}x", s2.as_secs_f64() / causal.as_secs_f64());
        }
    }
    Ok(())
}

/// A kernel's first comment line (`// name: what it does`), which says
/// which generator made it and with what shape; its name if it has none.
fn title(kernel: &weft_compiler::Kernel) -> &str {
    kernel.wgsl.lines().next().and_then(|line| line.strip_prefix("// ")).unwrap_or(&kernel.name)
}
