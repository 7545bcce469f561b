//! `weft bench generate`: serving a LongGen hybrid model against full causal
//! attention on the same random-weight LLaMA: KV-cache bytes, prefill time
//! and decode tokens/s per context length, beside the ratios the masks
//! predict (cache slots, attention FLOPs of the prefill).

use std::collections::HashMap;
use std::time::Instant;

use clap::Args;
use rand::{Rng, SeedableRng, rngs::StdRng};
use weft_compiler::{CompileOptions, compile};
use weft_ir::mask::{Reach, causal_stats, head_stats};
use weft_ir::model::{
    DecodeGraphOptions, LlamaConfig, ModelGraphOptions, build_llama_decode_graph, build_llama_graph,
};
use weft_ir::{Overrides, Schedule, SourceFile, Spec};
use weft_runtime::decode::{DecodeSpec, Decoder, argmax};
use weft_runtime::{Executor, HostValues};

/// LongGen's hybrid schedule (sinks 64 + window 1024 on two thirds of the layers).
const HYBRID: &str = include_str!("../../examples/patterns/longgen-hybrid.toml");

#[derive(Args, Debug)]
pub struct BenchGenerateArgs {
    /// Context lengths (prompt + new tokens), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "4096,16384,32768", value_parser = crate::args::seq_len)]
    pub seq_len: Vec<usize>,
    /// Tokens decoded per length, after the prefill of the rest.
    #[arg(long, default_value_t = 32, value_parser = crate::args::repeats)]
    pub new_tokens: usize,
    #[arg(long, default_value_t = 256, value_parser = crate::args::hidden)]
    pub hidden: usize,
    #[arg(long, default_value_t = 3, value_parser = crate::args::layers)]
    pub layers: usize,
    #[arg(long, default_value_t = 4, value_parser = crate::args::heads)]
    pub heads: usize,
    #[arg(long, default_value_t = 8192, value_parser = crate::args::vocab)]
    pub vocab: usize,
}

fn config(args: &BenchGenerateArgs) -> anyhow::Result<LlamaConfig> {
    let intermediate = (args.hidden * 8 / 3).div_ceil(32) * 32;
    let json = format!(
        r#"{{"hidden_size": {}, "intermediate_size": {intermediate}, "num_attention_heads": {},
            "num_hidden_layers": {}, "rms_norm_eps": 1e-5, "vocab_size": {},
            "max_position_embeddings": 65536, "tie_word_embeddings": false}}"#,
        args.hidden, args.heads, args.layers, args.vocab
    );
    Ok(LlamaConfig::from_json_str(&json, "bench model")?)
}

/// What one (length, pattern) run measured.
struct Measured {
    cache_bytes: u64,
    prefill_seconds: f64,
    tokens_per_second: f64,
    slots: usize,
    attention_flops: f64,
}

pub fn run(args: &BenchGenerateArgs) -> anyhow::Result<()> {
    let config = config(args)?;
    let gpu = crate::gpu::open()?;
    outln!("adapter: {}", gpu.adapter_description());
    outln!(
        "model: hidden {}, {} layers, {} heads of {}, vocab {}; random weights; batch 1, greedy",
        config.hidden_size,
        config.num_hidden_layers,
        config.num_attention_heads,
        config.head_dim,
        config.vocab_size
    );
    let plan = super::tune::plan_options(&gpu);
    let mut executor = Executor::new(gpu);
    let mut rng = StdRng::seed_from_u64(0);
    let weights: HashMap<String, HostValues> = config
        .parameter_shapes()
        .into_iter()
        .map(|p| {
            let data = (0..p.len()).map(|_| rng.random_range(-0.05f32..0.05)).collect();
            (p.name, HostValues::F32(data))
        })
        .collect();
    for &t in &args.seq_len {
        anyhow::ensure!(
            t > args.new_tokens,
            "--seq-len {t} leaves no prompt before {} new tokens",
            args.new_tokens
        );
        let prompt: Vec<i64> =
            (0..t - args.new_tokens).map(|_| rng.random_range(0..config.vocab_size as i64)).collect();
        outln!("\nT = {t}: prefill {} tokens, then decode {}", prompt.len(), args.new_tokens);
        outln!(
            "  {:<15} {:>12} {:>12} {:>14} {:>12}",
            "attention",
            "KV cache",
            "key slots",
            "prefill s",
            "decode tok/s"
        );
        let mut rows = Vec::new();
        for name in ["causal", "longgen-hybrid"] {
            let schedule = (name != "causal").then(|| resolve_hybrid(&config, t)).transpose()?;
            // The first run of a plan pays for first touches of its buffers
            // and the driver's lazy work; the second is the one reported.
            let run = |executor: &mut Executor| {
                measure(executor, &config, schedule.as_ref(), &plan, &weights, &prompt, t, args.new_tokens)
            };
            run(&mut executor)?;
            let m = run(&mut executor)?;
            outln!(
                "  {name:<15} {:>9.1} MiB {:>12} {:>14.3} {:>12.1}",
                m.cache_bytes as f64 / (1 << 20) as f64,
                m.slots,
                m.prefill_seconds,
                m.tokens_per_second
            );
            rows.push(m);
        }
        let (causal, hybrid) = (&rows[0], &rows[1]);
        outln!(
            "  hybrid / causal: KV cache {:.3}x ({:+.1}%), prefill {:.3}x ({:.2}x faster), decode {:.2}x tokens/s",
            hybrid.cache_bytes as f64 / causal.cache_bytes as f64,
            100.0 * (hybrid.cache_bytes as f64 / causal.cache_bytes as f64 - 1.0),
            hybrid.prefill_seconds / causal.prefill_seconds,
            causal.prefill_seconds / hybrid.prefill_seconds,
            hybrid.tokens_per_second / causal.tokens_per_second
        );
        outln!(
            "  the masks predict: KV cache {:.3}x (key slots), prefill attention FLOPs {:.3}x (tiles of 64)",
            hybrid.slots as f64 / causal.slots as f64,
            hybrid.attention_flops / causal.attention_flops
        );
    }
    Ok(())
}

fn resolve_hybrid(config: &LlamaConfig, t: usize) -> anyhow::Result<Schedule> {
    let overrides = Overrides {
        seq_len: Some(t),
        n_heads: Some(config.num_attention_heads),
        n_layers: Some(config.num_hidden_layers),
        head_dim: Some(config.head_dim),
    };
    Ok(Spec::parse(SourceFile::new("longgen-hybrid.toml", HYBRID))?.resolve(&overrides)?)
}

#[allow(clippy::too_many_arguments)]
fn measure(
    executor: &mut Executor,
    config: &LlamaConfig,
    schedule: Option<&Schedule>,
    plan: &weft_compiler::GraphPlanOptions,
    weights: &HashMap<String, HostValues>,
    prompt: &[i64],
    t: usize,
    new_tokens: usize,
) -> anyhow::Result<Measured> {
    let (layers, kv) = (config.num_hidden_layers, config.num_key_value_heads);
    let reach: Vec<Vec<Reach>> = match schedule {
        None => vec![vec![Reach::Everything; kv]; layers],
        Some(s) => (0..layers)
            .map(|l| {
                s.pattern_for_layer(l)
                    .and_then(|p| p.kv_reach(kv))
                    .ok_or_else(|| anyhow::anyhow!("layer {l}"))
            })
            .collect::<anyhow::Result<_>>()?,
    };
    // The prefill's attention work: tiles of 64 the fused kernels visit, per head.
    let causal = causal_stats(prompt.len(), 64).kernel_flops(config.head_dim);
    let attention_flops: f64 = (0..layers)
        .map(|l| match schedule.and_then(|s| s.pattern_for_layer(l)) {
            None => causal * config.num_attention_heads as f64,
            Some(p) => p
                .head_masks()
                .iter()
                .map(|m| head_stats(m, prompt.len(), 64).kernel_flops(config.head_dim))
                .sum(),
        })
        .sum();
    let spec = DecodeSpec {
        batch: 1,
        prompt_len: prompt.len(),
        max_len: t as u64,
        n_kv_heads: kv,
        head_dim: config.head_dim,
        vocab: config.vocab_size,
        rope: config.rope.params(),
        reach,
    };
    let slots = spec.cache_slots();
    let prefill_opts =
        ModelGraphOptions { kv_outputs: true, last_logits: true, ..ModelGraphOptions::new(1, prompt.len()) };
    let prefill = compile(
        build_llama_graph(config, schedule, &prefill_opts)?,
        &CompileOptions { plan: plan.clone(), ..Default::default() },
    )?;
    let step_graph = build_llama_decode_graph(
        config,
        schedule,
        &DecodeGraphOptions { batch: 1, cache_slots: slots.clone(), lora: None },
    )?;
    let step =
        compile(step_graph, &CompileOptions { optimize: false, plan: plan.clone(), ..Default::default() })?;
    crate::memory::check_fits(
        prefill.plan.total_bytes().max(step.plan.total_bytes()),
        "the benchmark's buffers",
    )?;
    let (mut decoder, first) =
        Decoder::start(executor, spec, &prefill.plan, &step.plan, weights, &[prompt.to_vec()])?;
    let mut token = argmax(&first[0]) as i64;
    let started = Instant::now();
    for _ in 0..new_tokens {
        let out = decoder.step(&[Some(token)])?;
        token = out[0].as_deref().map_or(0, argmax) as i64;
    }
    let decode_seconds = started.elapsed().as_secs_f64();
    Ok(Measured {
        cache_bytes: decoder.cache_bytes(),
        prefill_seconds: decoder.prefill_time().as_secs_f64(),
        tokens_per_second: new_tokens as f64 / decode_seconds,
        slots: slots.iter().sum(),
        attention_flops,
    })
}
