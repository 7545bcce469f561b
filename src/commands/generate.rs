//! `weft generate MODEL_DIR (--prompt TEXT | --input IN.safetensors)
//! --max-new-tokens N [--pattern SPEC] [--adapter DIR] [--temperature T
//! --top-p P --seed S] [--out OUT.safetensors [--logits]] [--ignore-eos]`:
//! decoding with a KV cache per layer sized by what its masks can still
//! reach, after one fused prefill over the prompts.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use weft_compiler::{CompileOptions, compile};
use weft_ir::Schedule;
use weft_ir::model::{
    DecodeGraphOptions, LlamaConfig, ModelGraphOptions, build_llama_decode_graph, build_llama_graph,
};
use weft_runtime::Executor;
use weft_runtime::data::{Tokenizer, stop_ids_from_model_dir};
use weft_runtime::decode::{DecodeSpec, Decoder, Sampling};
use weft_runtime::io::{HostTensor, IntTensor, TensorFile, check_layer_count, save_with_ints};

use crate::commands::weight_dtype::WeightDtype;
use crate::output::{Input, guard, out_file, tuning_cache_path};

#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// A Hugging Face model directory: config.json and model.safetensors (or a sharded index).
    pub model_dir: PathBuf,
    /// The prompt as text, through --tokenizer, else MODEL_DIR's tokenizer.json, else weft's
    /// byte-level tokenizer when the model's vocabulary holds its 258 ids (warned when larger). One row.
    #[arg(long, value_name = "TEXT", conflicts_with = "input", required_unless_present = "input")]
    pub prompt: Option<String>,
    /// safetensors file with `input_ids` (i32 or i64, [B, T]) and optionally `attention_mask`
    /// ([B, T], 1 on each row's prompt, one run per row, padding 0 on either side).
    #[arg(long, value_name = "IN")]
    pub input: Option<PathBuf>,
    /// New tokens per row, at most.
    #[arg(long, value_name = "N")]
    pub max_new_tokens: usize,
    /// Attention pattern spec (resolved at prompt + new tokens); default: full causal.
    #[arg(long, value_name = "SPEC")]
    pub pattern: Option<PathBuf>,
    /// A PEFT LoRA adapter directory; weft_run.json's RoPE factor is applied.
    #[arg(long, value_name = "DIR")]
    pub adapter: Option<PathBuf>,
    /// How the weights are stored on the host and the device: auto (the default) keeps a tensor
    /// whose values are exactly bf16 or f16, as such checkpoints hold them, in 16 bits (half the
    /// memory, the same results); f32 stores every weight in f32.
    #[arg(long, value_name = "DTYPE", default_value = "auto")]
    pub weight_dtype: WeightDtype,
    /// Sampling temperature; 0 (the default) is greedy.
    #[arg(long, value_name = "T", default_value_t = 0.0)]
    pub temperature: f64,
    /// Nucleus sampling: the smallest set of most likely tokens of this total probability.
    #[arg(long, value_name = "P", default_value_t = 1.0)]
    pub top_p: f64,
    /// Seed of the sampling.
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub seed: u64,
    /// Generate exactly --max-new-tokens, past the model's end-of-sequence tokens.
    #[arg(long)]
    pub ignore_eos: bool,
    /// A Hugging Face tokenizer.json (default: MODEL_DIR's; else the byte-level tokenizer, as for --prompt).
    #[arg(long, value_name = "FILE")]
    pub tokenizer: Option<PathBuf>,
    /// safetensors file to write: `output_ids` (int64, [B, T + N]: the input, then the new
    /// tokens; a row that stopped early is padded with its end-of-sequence id).
    #[arg(long, short, value_name = "OUT")]
    pub out: Option<PathBuf>,
    /// Also write `logits` (f32, [B, N, V]) to --out: each new token's distribution (zeros
    /// after a row stopped).
    #[arg(long, requires = "out")]
    pub logits: bool,
}

/// The prompts, as rows of ids, and where each sits in the input's rows.
struct Prompts {
    /// The input's rows as given (padding included), for `output_ids`.
    given: Vec<Vec<i64>>,
    /// Each row's prompt.
    rows: Vec<Vec<i64>>,
}

pub fn run(args: &GenerateArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let cache = tuning_cache_path();
    let mut inputs = vec![Input { path: &args.model_dir, what: "input checkpoint" }];
    inputs.extend(args.input.as_deref().map(|path| Input { path, what: "input tensors" }));
    inputs.extend(args.pattern.as_deref().map(|path| Input { path, what: "pattern spec" }));
    inputs.extend(args.adapter.as_deref().map(|path| Input { path, what: "adapter" }));
    inputs.extend(args.tokenizer.as_deref().map(|path| Input { path, what: "tokenizer" }));
    inputs.extend(cache.as_deref().map(|path| Input { path, what: "tuning cache" }));
    if let Some(out) = &args.out {
        guard(out_file(out, "output ids"), &inputs)?;
    }
    if args.max_new_tokens == 0 {
        bail!("--max-new-tokens must be at least 1");
    }
    if !(args.temperature >= 0.0 && args.temperature.is_finite()) {
        bail!("--temperature must be 0 (greedy) or positive, found {}", args.temperature);
    }
    if !(args.top_p > 0.0 && args.top_p <= 1.0) {
        bail!("--top-p must be in (0, 1], found {}", args.top_p);
    }
    let config_path = args.model_dir.join("config.json");
    let (mut config, unknown) = LlamaConfig::from_file_with_unknown_keys(&config_path)?;
    super::source::warn_unknown_keys(&config_path, &unknown);
    check_layer_count(&args.model_dir, &config)?;
    let record = match &args.adapter {
        Some(dir) => super::adapter::check(dir)?,
        None => None,
    };
    let vocab = config.vocab_size;
    let tokenizer = super::text_tokenizer::resolve(args.tokenizer.as_deref(), Some(&args.model_dir), vocab)?;
    let prompts = read_prompts(args, vocab, tokenizer.as_ref())?;
    let longest = prompts.rows.iter().map(Vec::len).max().unwrap_or(0);
    let max_len = longest + args.max_new_tokens;
    let adapter = match &args.adapter {
        Some(dir) => Some(super::adapter::load(dir, &config)?),
        None => None,
    };
    if let (Some(dir), Some(record)) = (&args.adapter, &record) {
        config = super::adapter::apply_run_factor(&config, record, dir)?;
    }
    // The context the model (with its RoPE factor) was trained for.
    let context = (config.max_position_embeddings as f64 * config.rope.position_scale()).round() as usize;
    if max_len > context {
        bail!(
            "the longest prompt ({longest} tokens) and --max-new-tokens {} make {max_len} positions, more \
             than the model's context of {context} (max_position_embeddings {}{})",
            args.max_new_tokens,
            config.max_position_embeddings,
            if config.rope.position_scale() == 1.0 {
                String::new()
            } else {
                format!(" × RoPE factor {}", config.rope.position_scale())
            }
        );
    }
    let stop: Vec<i64> = if args.ignore_eos {
        Vec::new()
    } else {
        let mut ids: Vec<i64> =
            stop_ids_from_model_dir(&args.model_dir)?.into_iter().map(i64::from).collect();
        if ids.is_empty() {
            ids.extend(tokenizer.as_ref().and_then(Tokenizer::eos_id).map(i64::from));
        }
        ids
    };
    let schedule = super::source::model_schedule(args.pattern.as_deref(), max_len, &config)?;
    let reach = decode_reach(schedule.as_ref(), &config)?;

    let super::adapter::InferenceWeights { config, values: weights, lora, leaf_storage } =
        super::adapter::load_for_inference(&args.model_dir, &config, adapter, args.weight_dtype)?;

    let batch = prompts.rows.len();
    let spec = DecodeSpec {
        batch,
        prompt_len: longest,
        max_len: max_len as u64,
        n_kv_heads: config.num_key_value_heads,
        head_dim: config.head_dim,
        vocab,
        rope: config.rope.params(),
        reach,
    };
    let slots = spec.cache_slots();
    report_cache(&spec, &slots, config.num_hidden_layers);
    let prefill_opts = ModelGraphOptions {
        lora: lora.clone(),
        kv_outputs: true,
        last_logits: true,
        ..ModelGraphOptions::new(batch, longest)
    };
    let prefill = build_llama_graph(&config, schedule.as_ref(), &prefill_opts)?;
    let step = build_llama_decode_graph(
        &config,
        schedule.as_ref(),
        &DecodeGraphOptions { batch, cache_slots: slots, lora },
    )?;
    let gpu = crate::gpu::open()?;
    errln!("adapter: {}", gpu.adapter_description());
    let plan = weft_compiler::GraphPlanOptions { leaf_storage, ..super::tune::plan_options(&gpu) };
    let prefill = compile(prefill, &CompileOptions { plan: plan.clone(), ..Default::default() })
        .context("compiling the prefill")?;
    // One token per row: nothing for the optimizer to fuse.
    let step = compile(step, &CompileOptions { optimize: false, plan, ..Default::default() })
        .context("compiling the decoding step")?;
    crate::memory::check_fits(
        prefill.plan.total_bytes().max(step.plan.total_bytes()),
        "the model's buffers",
    )?;

    let mut executor = Executor::new(gpu);
    let prefill_started = Instant::now();
    let (mut decoder, first) =
        Decoder::start(&mut executor, spec, &prefill.plan, &step.plan, &weights, &prompts.rows)
            .context("prefilling the prompts")?;
    // Both plans hold the weights now; the host's copy is not needed again.
    drop(weights);
    let prefill_seconds = prefill_started.elapsed().as_secs_f64();

    let sampling = Sampling { temperature: args.temperature, top_p: args.top_p };
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let stream = tokenizer.as_ref().filter(|_| batch == 1);
    let mut generated: Vec<Vec<i64>> = vec![Vec::new(); batch];
    let mut logits_out: Vec<Vec<f32>> = vec![Vec::new(); batch];
    let mut shown = String::new();
    let mut pending: Vec<Option<Vec<f32>>> = first.into_iter().map(Some).collect();
    let decode_started = Instant::now();
    let mut steps = 0usize;
    loop {
        let mut tokens = Vec::with_capacity(batch);
        for (row, logits) in pending.iter().enumerate() {
            let Some(logits) = logits else {
                tokens.push(None);
                continue;
            };
            let token = sampling.pick(logits, &mut rng) as i64;
            generated[row].push(token);
            if args.logits {
                logits_out[row].extend_from_slice(logits);
            }
            let done = generated[row].len() >= args.max_new_tokens || stop.contains(&token);
            tokens.push((!done).then_some(token));
        }
        if let Some(tok) = stream {
            let ids: Vec<u32> =
                generated[0].iter().filter(|t| !stop.contains(t)).map(|&t| t as u32).collect();
            let text = tok.decode(&ids);
            if let Some(new) = text.strip_prefix(shown.as_str()) {
                out!("{new}"); // flushed: the tokens show as they come
            }
            shown = text;
        }
        if tokens.iter().all(Option::is_none) {
            break;
        }
        pending = decoder.step(&tokens).context("decoding")?;
        steps += 1;
    }
    if stream.is_some() {
        outln!();
    }
    let decode_seconds = decode_started.elapsed().as_secs_f64();
    let new_tokens: usize = generated.iter().map(Vec::len).sum();
    errln!(
        "prefill {} tokens in {prefill_seconds:.2} s; decoded {new_tokens} tokens in {steps} steps, {decode_seconds:.2} s \
         ({:.1} tokens/s); KV cache {:.2} MiB",
        prompts.rows.iter().map(Vec::len).sum::<usize>(),
        new_tokens as f64 / decode_seconds.max(1e-9),
        decoder.cache_bytes() as f64 / (1 << 20) as f64
    );
    if stream.is_none() && args.out.is_none() {
        for row in &generated {
            let ids: Vec<String> = row.iter().map(i64::to_string).collect();
            outln!("{}", ids.join(" "));
        }
    }
    if let Some(out) = &args.out {
        let pad = stop.first().copied().unwrap_or(0);
        let width = prompts.given.first().map_or(0, Vec::len) + args.max_new_tokens;
        let mut ids = Vec::with_capacity(batch * width);
        for (given, new) in prompts.given.iter().zip(&generated) {
            ids.extend_from_slice(given);
            ids.extend_from_slice(new);
            ids.extend(std::iter::repeat_n(pad, args.max_new_tokens - new.len()));
        }
        let ints =
            BTreeMap::from([("output_ids".to_string(), IntTensor { shape: vec![batch, width], data: ids })]);
        let mut floats = BTreeMap::new();
        if args.logits {
            let mut data = Vec::with_capacity(batch * args.max_new_tokens * vocab);
            for mut row in logits_out {
                row.resize(args.max_new_tokens * vocab, 0.0);
                // Each row is freed as it joins the tensor.
                data.extend_from_slice(&row);
            }
            floats.insert(
                "logits".to_string(),
                HostTensor { shape: vec![batch, args.max_new_tokens, vocab], data },
            );
        }
        save_with_ints(out, &floats, &ints)?;
        errln!("wrote {} in {:.1} s", out.display(), started.elapsed().as_secs_f64());
    }
    Ok(())
}

/// Per layer, per KV head: what the decode cache keeps. Refuses masks a
/// cache cannot serve: ones that let a query see later keys, or read the
/// sequence length (a roll: S2-Attn's shifted form, a training-time pattern).
pub(crate) fn decode_reach(
    schedule: Option<&Schedule>,
    config: &LlamaConfig,
) -> anyhow::Result<Vec<Vec<weft_ir::mask::Reach>>> {
    let kv = config.num_key_value_heads;
    let Some(schedule) = schedule else {
        return Ok(vec![vec![weft_ir::mask::Reach::Everything; kv]; config.num_hidden_layers]);
    };
    let mut per_layer = Vec::with_capacity(config.num_hidden_layers);
    for layer in 0..config.num_hidden_layers {
        let pattern = schedule
            .pattern_for_layer(layer)
            .with_context(|| format!("the pattern has no entry for layer {layer}"))?;
        for (head, mask) in pattern.head_masks().iter().enumerate() {
            if mask.mentions_length() {
                bail!(
                    "layer {layer}, head {head}: mask `{mask}` reads the sequence length (roll), so a cached \
                     key would change as the sequence grows; decode S2-Attn models with full attention \
                     (no --pattern), as LongLoRA does"
                );
            }
            if !mask.implies_causal() {
                bail!(
                    "layer {layer}, head {head}: mask `{mask}` is not causal (it may let a query see later \
                     tokens), which decoding cannot do; add `causal &`"
                );
            }
        }
        let reach = pattern.kv_reach(kv).with_context(|| {
            format!("the model's {kv} KV heads do not divide the pattern's {} heads", pattern.n_heads())
        })?;
        per_layer.push(reach);
    }
    Ok(per_layer)
}

/// Says once what each layer's cache keeps, and the layers that keep everything.
fn report_cache(spec: &DecodeSpec, slots: &[usize], n_layers: usize) {
    let full = spec.max_len as usize * n_layers;
    let kept: usize = slots.iter().sum();
    let unbounded: Vec<String> = spec
        .reach
        .iter()
        .enumerate()
        .filter(|(_, r)| r.iter().any(|x| !x.is_bounded()))
        .map(|(l, _)| l.to_string())
        .collect();
    errln!(
        "KV cache: {kept} of {full} key slots over {n_layers} layers ({:.1}% of a full cache){}",
        100.0 * kept as f64 / full.max(1) as f64,
        if unbounded.is_empty() {
            String::new()
        } else {
            format!("; layers {} grow with the sequence", unbounded.join(", "))
        }
    );
}

fn read_prompts(args: &GenerateArgs, vocab: usize, tokenizer: Option<&Tokenizer>) -> anyhow::Result<Prompts> {
    if let Some(text) = &args.prompt {
        let Some(tokenizer) = tokenizer else {
            bail!(
                "--prompt needs a tokenizer: {} has no tokenizer.json; pass --tokenizer, or token ids with --input",
                args.model_dir.display()
            );
        };
        let mut ids: Vec<i64> = tokenizer.bos_id().into_iter().map(i64::from).collect();
        ids.extend(tokenizer.encode(text)?.into_iter().map(i64::from));
        if text.is_empty() || ids.is_empty() {
            bail!("the prompt is empty");
        }
        return Ok(Prompts { given: vec![ids.clone()], rows: vec![ids] });
    }
    let Some(path) = &args.input else { bail!("give --prompt TEXT or --input IN.safetensors") };
    let file = TensorFile::load(path)?;
    let ids = file.ints("input_ids")?;
    let [batch, t] = ids.shape[..] else {
        bail!("tensor `input_ids` in {} has shape {:?}; expected [B, T]", path.display(), ids.shape);
    };
    if batch == 0 || t == 0 {
        bail!("`input_ids` in {} is empty (shape [{batch}, {t}]): no prompt to continue", path.display());
    }
    let mask = if file.contains("attention_mask") {
        let mask = file.ints("attention_mask")?;
        if mask.shape != ids.shape {
            bail!("`attention_mask` has shape {:?}, but `input_ids` has {:?}", mask.shape, ids.shape);
        }
        Some(mask.data)
    } else {
        None
    };
    let mut prompts = Prompts { given: Vec::with_capacity(batch), rows: Vec::with_capacity(batch) };
    for row in 0..batch {
        let given = ids.data[row * t..(row + 1) * t].to_vec();
        let keep: Vec<bool> = match &mask {
            Some(m) => m[row * t..(row + 1) * t].iter().map(|&v| v != 0).collect(),
            None => vec![true; t],
        };
        let first = keep.iter().position(|&k| k);
        let last = keep.iter().rposition(|&k| k);
        let (Some(first), Some(last)) = (first, last) else {
            bail!("row {row} of `attention_mask` is all 0: the prompt is empty");
        };
        if keep[first..=last].iter().any(|&k| !k) {
            bail!("row {row} of `attention_mask` has a gap; each row's prompt must be one run of 1s");
        }
        let prompt = given[first..=last].to_vec();
        if let Some((at, id)) = prompt.iter().enumerate().find(|(_, id)| !(0..vocab as i64).contains(id)) {
            bail!(
                "input_ids[{row}, {}] = {id} is not a token id of this model (vocab_size {vocab})",
                first + at
            );
        }
        prompts.given.push(given);
        prompts.rows.push(prompt);
    }
    Ok(prompts)
}
