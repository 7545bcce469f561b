//! `weft eval MODEL_DIR [--adapter DIR] --data PATH --seq-len 1024,2048
//! [--stride N] [--pattern SPEC] [--passkey TRIALS] [--seed S] [--tokenizer
//! PATH] [--json OUT]`: perplexity over sliding windows and passkey retrieval
//! accuracy, per length, on the GPU.
//!
//! Everything that can be refused is checked before the weights are read or
//! the device opened: the data and its ids, the tokenizer, the pattern at
//! every length and the windows. Each length then compiles one graph (batch
//! 1, with the loss), prepared once and run for every window and trial.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use weft_compiler::{CompileOptions, compile};
use weft_ir::Schedule;
use weft_ir::model::{
    DecodeGraphOptions, LlamaConfig, ModelGraphOptions, build_llama_decode_graph, build_llama_graph,
};
use weft_runtime::data::{
    BYTE_VOCAB, Corpus, DataError, Glob, Tokenizer, join_documents, rows_stream, tokenize_documents,
};
use weft_runtime::decode::{DecodeSpec, Decoder, argmax};
use weft_runtime::eval::{
    EvalError, MeanLoss, PasskeyTrial, next_token_targets, passkey_trial, window_starts,
};
use weft_runtime::io::{Output, OutputKind, check_layer_count};
use weft_runtime::{Executor, HostValues};

use crate::commands::weight_dtype::WeightDtype;
use crate::output::{Input, guard, tuning_cache_path, write_atomically};

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// A Hugging Face model directory: config.json and model.safetensors (or a sharded index).
    pub model_dir: PathBuf,
    /// A PEFT LoRA adapter directory (adapter_config.json, adapter_model.safetensors).
    #[arg(long, value_name = "DIR")]
    pub adapter: Option<PathBuf>,
    /// How the weights are stored on the host and the device: auto (the default) keeps a tensor
    /// whose values are exactly bf16 or f16, as such checkpoints hold them, in 16 bits (half the
    /// memory, the same results); f32 stores every weight in f32.
    #[arg(long, value_name = "DTYPE", default_value = "auto")]
    pub weight_dtype: WeightDtype,
    /// The evaluation data, read as one token stream: a safetensors file with `input_ids` (i32 or
    /// i64, [S, T], read row after row), or text through the tokenizer: a text file (one
    /// document), a JSONL file (a string `text` field per line) or a directory (every file under
    /// it in path order, hidden ones skipped; see --data-glob). Documents are joined with EOS.
    #[arg(long, value_name = "PATH")]
    pub data: PathBuf,
    /// With a directory --data, read only the files matching this glob: `*` and `?` within a
    /// name, `**` across directories, one `{a,b}` group (`*.rs`, `src/**/*.{md,txt}`). A glob
    /// without `/` matches file names. Files that are not UTF-8 text are skipped with a warning.
    #[arg(long, value_name = "GLOB")]
    pub data_glob: Option<String>,
    /// The lengths T to evaluate at, comma-separated (`1024,2048`). A length longer than the data
    /// gets no perplexity (noted); the data must hold a window of at least one of them.
    #[arg(long, value_name = "T", value_delimiter = ',', required = true, value_parser = crate::args::seq_len)]
    pub seq_len: Vec<usize>,
    /// Distance between the starts of perplexity windows, which start at 0, N, 2N, … while they
    /// fit. Default: T (non-overlapping windows); LongLoRA's eval.py uses 256.
    #[arg(long, value_name = "N", value_parser = stride)]
    pub stride: Option<usize>,
    /// Attention pattern spec for every layer (resolved at each T and the model's heads and
    /// layers; T must be divisible as the spec requires). Default: full causal attention.
    /// Passkey prompts are right-padded, which only a pattern that never looks ahead ignores.
    #[arg(long, value_name = "SPEC")]
    pub pattern: Option<PathBuf>,
    /// Also run passkey retrieval (LongLoRA's prompt, key in 1..=50000, filler fitted to each T)
    /// with this many trials per length; a trial passes when the model's argmax at every answer
    /// position is the answer's token (greedy decoding in one pass). Needs a tokenizer.
    #[arg(long, value_name = "TRIALS", value_parser = crate::args::repeats)]
    pub passkey: Option<usize>,
    /// Run the passkey trials by decoding, as `weft generate` does: a fused prefill of each
    /// prompt, then the answer's tokens one at a time against KV caches sized by the pattern's
    /// reach (trials in batches of 8). The same verdicts as the one-pass check, reached the way
    /// a served model answers.
    #[arg(long, requires = "passkey")]
    pub passkey_decode: bool,
    /// Seed of the passkey trials (the same seed gives the same prompts).
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub seed: u64,
    /// A Hugging Face tokenizer.json for text data and passkey prompts. Default: MODEL_DIR's
    /// tokenizer.json, else weft's byte-level tokenizer (ids 0-255 bytes, 256 EOS, 257 BOS) when
    /// the model's vocab_size is at least 258. EOS and BOS: config.json's eos_token_id and
    /// bos_token_id, else the tokenizer's </s>, <|endoftext|> and <s>.
    #[arg(long, value_name = "PATH")]
    pub tokenizer: Option<PathBuf>,
    /// Also write the results as JSON: {"perplexity": {"<T>": value, …}, "passkey": {"<T>": accuracy, …}},
    /// and with one-pass passkey trials "passkey_answer_nll": {"<T>": the answer's mean negative
    /// log-likelihood in nats, which shows progress before the argmax is right}.
    #[arg(long, value_name = "OUT")]
    pub json: Option<PathBuf>,
}

/// Trials decoded together.
const DECODE_BATCH: usize = 8;

/// How many of `length`'s passkey trials decode their answer exactly:
/// greedy, after a prefill of everything before the answer.
fn decode_trials(
    executor: &mut Executor,
    config: &LlamaConfig,
    length: &Length,
    lora: Option<&weft_ir::model::LoraConfig>,
    weights: &HashMap<String, HostValues>,
    plan: &weft_compiler::GraphPlanOptions,
) -> anyhow::Result<usize> {
    let reach = super::generate::decode_reach(length.schedule.as_ref(), config)?;
    let mut passed = 0;
    for trials in length.trials.chunks(DECODE_BATCH) {
        let prompts: Vec<Vec<i64>> = trials
            .iter()
            .map(|t| t.ids[..t.answer.start].iter().map(|&id| i64::from(id)).collect())
            .collect();
        let longest = prompts.iter().map(Vec::len).max().unwrap_or(1);
        let answer_len = trials.iter().map(|t| t.answer.len()).max().unwrap_or(1);
        let spec = DecodeSpec {
            batch: trials.len(),
            prompt_len: longest,
            max_len: (longest + answer_len) as u64,
            n_kv_heads: config.num_key_value_heads,
            head_dim: config.head_dim,
            vocab: config.vocab_size,
            rope: config.rope.params(),
            reach: reach.clone(),
        };
        let prefill = ModelGraphOptions {
            lora: lora.cloned(),
            kv_outputs: true,
            last_logits: true,
            ..ModelGraphOptions::new(trials.len(), longest)
        };
        let prefill = compile(
            build_llama_graph(config, length.schedule.as_ref(), &prefill)?,
            &CompileOptions { plan: plan.clone(), ..Default::default() },
        )?;
        let step =
            DecodeGraphOptions { batch: trials.len(), cache_slots: spec.cache_slots(), lora: lora.cloned() };
        let step = compile(
            build_llama_decode_graph(config, length.schedule.as_ref(), &step)?,
            &CompileOptions { optimize: false, plan: plan.clone(), ..Default::default() },
        )?;
        let (mut decoder, first) =
            Decoder::start(executor, spec, &prefill.plan, &step.plan, weights, &prompts)?;
        // Each row feeds its answer's tokens while it decodes them right.
        let mut logits: Vec<Option<Vec<f32>>> = first.into_iter().map(Some).collect();
        let mut right = vec![true; trials.len()];
        for position in 0..answer_len {
            let mut tokens = Vec::with_capacity(trials.len());
            for (row, trial) in trials.iter().enumerate() {
                let answer = &trial.ids[trial.answer.clone()];
                let token = match (&logits[row], answer.get(position)) {
                    (Some(l), Some(&want)) if right[row] => {
                        right[row] = argmax(l) == want as usize;
                        Some(want)
                    }
                    _ => None,
                };
                let more = position + 1 < answer.len() && right[row];
                tokens.push(token.filter(|_| more).map(i64::from));
            }
            if tokens.iter().all(Option::is_none) {
                break;
            }
            logits = decoder.step(&tokens)?;
        }
        passed += right.iter().filter(|&&r| r).count();
    }
    Ok(passed)
}

fn stride(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(0) => Err("the stride must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("`{text}` is not a stride: {e}")),
    }
}

/// What one length runs: its perplexity windows and passkey trials.
struct Length {
    t: usize,
    windows: Vec<usize>,
    trials: Vec<PasskeyTrial>,
    schedule: Option<Schedule>,
}

/// One length's results.
struct Scores {
    t: usize,
    loss: MeanLoss,
    passed: Option<(usize, usize)>,
    /// The passkey answer's mean negative log-likelihood per trial (one-pass trials only).
    answer_nll: Option<f64>,
}

pub fn run(args: &EvalArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let cache = tuning_cache_path();
    let mut inputs = vec![
        Input { path: &args.model_dir, what: "input checkpoint" },
        Input { path: &args.data, what: "evaluation data" },
    ];
    inputs.extend(args.adapter.as_deref().map(|path| Input { path, what: "adapter" }));
    inputs.extend(args.pattern.as_deref().map(|path| Input { path, what: "pattern spec" }));
    inputs.extend(args.tokenizer.as_deref().map(|path| Input { path, what: "tokenizer" }));
    inputs.extend(cache.as_deref().map(|path| Input { path, what: "tuning cache" }));
    if let Some(json) = &args.json {
        let output =
            Output { path: json, what: "evaluation results", flag: "--json", kind: OutputKind::File };
        guard(output, &inputs)?;
    }
    let config_path = args.model_dir.join("config.json");
    let (mut config, unknown) = LlamaConfig::from_file_with_unknown_keys(&config_path)?;
    super::source::warn_unknown_keys(&config_path, &unknown);
    check_layer_count(&args.model_dir, &config)?;
    if let Some(dir) = &args.adapter {
        // Refuse a bad adapter_config.json or weft_run.json before the weights are read; a
        // run's recorded RoPE factor applies to every graph below.
        if let Some(record) = super::adapter::check(dir)? {
            config = super::adapter::apply_run_factor(&config, &record, dir)?;
        }
    }
    let vocab = config.vocab_size;

    // A tokenizer given is loaded (and checked) even if the data turns out pre-tokenized.
    let mut tokenizer = match &args.tokenizer {
        Some(_) => Some(load_tokenizer(args, vocab, "")?),
        None => None,
    };
    // Notes wait until everything is checked, so that a refusal is the first thing printed.
    let mut notes = Vec::new();
    let stream = read_stream(args, vocab, &mut tokenizer, &mut notes)?;
    let lengths = plan_lengths(args, &config, &stream, &mut tokenizer, &mut notes)?;
    for note in &notes {
        errln!("{note}");
    }

    let adapter = match &args.adapter {
        Some(dir) => Some(super::adapter::load(dir, &config)?),
        None => None,
    };
    // modules_to_save tensors (LoRA+'s embedding and norms) replace the base's, as PEFT applies them.
    let super::adapter::InferenceWeights { config, mut values, lora, leaf_storage } =
        super::adapter::load_for_inference(&args.model_dir, &config, adapter, args.weight_dtype)?;
    let gpu = crate::gpu::open()?;
    errln!("adapter: {}", gpu.adapter_description());
    let plan_options = weft_compiler::GraphPlanOptions { leaf_storage, ..super::tune::plan_options(&gpu) };
    let mut executor = Executor::new(gpu);

    let mut scores = Vec::new();
    for length in &lengths {
        let t = length.t;
        let opts = ModelGraphOptions { lora: lora.clone(), loss: true, ..ModelGraphOptions::new(1, t) };
        let graph = build_llama_graph(&config, length.schedule.as_ref(), &opts)?;
        let compiled = compile(graph, &CompileOptions { plan: plan_options.clone(), ..Default::default() })
            .with_context(|| format!("compiling the model at T = {t}"))?;
        let plan = &compiled.plan;
        crate::memory::check_fits(plan.total_bytes(), &format!("the model's buffers at T = {t}"))?;
        let prepared = executor.prepare(plan).with_context(|| format!("preparing the model at T = {t}"))?;
        let bar = crate::progress::passes((length.windows.len() + length.trials.len()) as u64, t);
        let at = Instant::now();
        // The weights go up once per length; each pass uploads only its ids and targets and
        // reads back only what it needs (`read`: the loss, or the logits for passkey).
        let dummy = vec![0i64; t];
        values.insert("input_ids".into(), HostValues::I64(dummy.clone()));
        values.insert("targets".into(), HostValues::I64(dummy));
        executor.upload(&prepared, &values)?;
        let forward = |ids: Vec<i64>, targets: Vec<i64>, read: &str| -> anyhow::Result<Vec<f32>> {
            let step = HashMap::from([
                ("input_ids".to_string(), HostValues::I64(ids)),
                ("targets".to_string(), HostValues::I64(targets)),
            ]);
            executor.upload_some(&prepared, &step)?;
            executor.execute(&prepared)?;
            let output = executor.read_f32(&prepared, read)?;
            bar.inc(1);
            Ok(output)
        };
        let mut loss = MeanLoss::default();
        for &start in &length.windows {
            let window = &stream[start..start + t];
            let output =
                forward(window.iter().map(|&id| i64::from(id)).collect(), next_token_targets(window), "loss")
                    .with_context(|| format!("running the window at token {start} (T = {t})"))?;
            let value = output.first().context("the plan produced no loss")?;
            loss.add(f64::from(*value));
        }
        let mut passed = None;
        let mut answer_nll = None;
        if args.passkey_decode && !length.trials.is_empty() {
            drop(prepared);
            // The decoding plans take the weights alone; the next length puts these back.
            values.remove("input_ids");
            values.remove("targets");
            let count = decode_trials(&mut executor, &config, length, lora.as_ref(), &values, &plan_options)
                .with_context(|| format!("decoding the passkey trials (T = {t})"))?;
            passed = Some((count, length.trials.len()));
        } else if args.passkey.is_some() && !length.trials.is_empty() {
            let (mut count, mut nll) = (0, Some(0.0));
            for (i, trial) in length.trials.iter().enumerate() {
                let ids = trial.ids.iter().map(|&id| i64::from(id)).collect();
                let logits = forward(ids, trial.targets(), "logits")
                    .with_context(|| format!("running passkey trial {i} (T = {t})"))?;
                count += usize::from(trial.passed(&logits, vocab));
                nll = nll.zip(trial.answer_nll(&logits, vocab)).map(|(sum, x)| sum + x);
            }
            passed = Some((count, length.trials.len()));
            answer_nll = nll.map(|sum| sum / length.trials.len() as f64);
        }
        bar.finish_and_clear();
        errln!(
            "T = {t}: {} window{}, {} passkey trial{} in {:.1} s",
            length.windows.len(),
            if length.windows.len() == 1 { "" } else { "s" },
            length.trials.len(),
            if length.trials.len() == 1 { "" } else { "s" },
            at.elapsed().as_secs_f64()
        );
        scores.push(Scores { t, loss, passed, answer_nll });
    }

    print_table(&scores, args.passkey.is_some())?;
    if let Some(path) = &args.json {
        let text = results_json(&scores);
        write_atomically(path, |w| Ok(w.write_all(text.as_bytes())?))?;
        errln!("wrote {}", path.display());
    }
    errln!("evaluated in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// The data as one token stream, ids checked against the model's vocabulary.
fn read_stream(
    args: &EvalArgs,
    vocab: usize,
    tokenizer: &mut Option<Tokenizer>,
    notes: &mut Vec<String>,
) -> anyhow::Result<Vec<u32>> {
    let glob = args.data_glob.as_deref().map(Glob::new).transpose()?;
    let stream = match Corpus::load(&args.data, glob.as_ref())? {
        Corpus::Rows(rows) => rows_stream(&rows, vocab)?,
        Corpus::Documents(docs) => {
            notes.extend(docs.warning().map(|w| format!("warning: {w}")));
            let tok = match tokenizer.take() {
                Some(tok) => tok,
                None => load_tokenizer(args, vocab, "the data is text")?,
            };
            let ids = tokenize_documents(&docs, &tok, vocab)?;
            let stream = join_documents(&ids, tok.eos_id(), &tok.name())?;
            *tokenizer = Some(tok);
            stream
        }
    };
    if stream.is_empty() {
        return Err(DataError::NoTokens { what: args.data.display().to_string() }.into());
    }
    Ok(stream)
}

/// The tokenizer ([`super::text_tokenizer`]'s rule); `why` says what needs one when there is none.
fn load_tokenizer(args: &EvalArgs, vocab: usize, why: &str) -> anyhow::Result<Tokenizer> {
    match super::text_tokenizer::resolve(args.tokenizer.as_deref(), Some(&args.model_dir), vocab)? {
        Some(tokenizer) => Ok(tokenizer),
        None => bail!(
            "{why}, but there is no tokenizer: {} does not exist and the model's vocab_size {vocab} is \
             smaller than the byte-level tokenizer's {BYTE_VOCAB}; pass --tokenizer",
            args.model_dir.join("tokenizer.json").display()
        ),
    }
}

/// Per length: the windows, the passkey trials and the pattern. Lengths with
/// neither are noted and skipped; no window at any length is an error.
fn plan_lengths(
    args: &EvalArgs,
    config: &LlamaConfig,
    stream: &[u32],
    tokenizer: &mut Option<Tokenizer>,
    notes: &mut Vec<String>,
) -> anyhow::Result<Vec<Length>> {
    let mut lengths: Vec<usize> = Vec::new();
    for &t in &args.seq_len {
        if !lengths.contains(&t) {
            lengths.push(t);
        }
    }
    let mut planned = Vec::new();
    for &t in &lengths {
        let windows = window_starts(stream.len(), t, args.stride.unwrap_or(t))?;
        if windows.is_empty() {
            notes.push(format!(
                "note: T = {t}: the data's {} tokens hold no window of {t}; no perplexity at this length",
                stream.len()
            ));
        }
        planned.push((t, windows));
    }
    if planned.iter().all(|(_, w)| w.is_empty()) {
        let shortest = lengths.iter().min().copied().unwrap_or(0);
        bail!(
            "{} has {} tokens, fewer than the shortest --seq-len {shortest}: no length has a window to score",
            args.data.display(),
            stream.len()
        );
    }
    if args.passkey.is_some() && tokenizer.is_none() {
        *tokenizer = Some(load_tokenizer(args, config.vocab_size, "passkey retrieval needs a tokenizer")?);
    }
    let mut out = Vec::new();
    for (t, windows) in planned {
        let mut trials = Vec::new();
        if let (Some(count), Some(tok)) = (args.passkey, tokenizer.as_ref()) {
            for trial in 0..count as u64 {
                match passkey_trial(tok, t, args.seed, trial) {
                    Ok(made) => trials.push(made),
                    Err(EvalError::PasskeyTooLong { needed, .. }) => {
                        notes.push(format!(
                            "note: T = {t}: the passkey prompt needs at least {needed} tokens; no passkey \
                             retrieval at this length"
                        ));
                        break;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        if windows.is_empty() && trials.is_empty() {
            continue;
        }
        let schedule = super::source::model_schedule(args.pattern.as_deref(), t, config)?;
        out.push(Length { t, windows, trials, schedule });
    }
    Ok(out)
}

fn print_table(scores: &[Scores], passkey: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let nll = scores.iter().any(|s| s.answer_nll.is_some());
    write!(out, "{:>8} {:>8} {:>12}", "T", "windows", "perplexity")?;
    if passkey {
        write!(out, "  {:<14}", "passkey")?;
    }
    if nll {
        // Nats over the answer's tokens: about ln(10) a digit for a model that cannot retrieve.
        write!(out, "  answer nll")?;
    }
    writeln!(out)?;
    for s in scores {
        let ppl = s.loss.perplexity().map_or("-".to_string(), |p| format!("{p:.4}"));
        write!(out, "{:>8} {:>8} {ppl:>12}", s.t, s.loss.windows())?;
        if passkey {
            let cell = match s.passed {
                Some((k, n)) => format!("{k}/{n} ({:.2})", k as f64 / n as f64),
                None => "-".to_string(),
            };
            write!(out, "  {cell:<14}")?;
        }
        if nll {
            write!(out, "  {:>10}", s.answer_nll.map_or("-".to_string(), |v| format!("{v:.3}")))?;
        }
        writeln!(out)?;
    }
    Ok(out.flush()?)
}

/// `{"perplexity": {"<T>": value, …}, "passkey": {"<T>": accuracy, …}}`, lengths in the order
/// given, and `"passkey_answer_nll": {"<T>": nats, …}` where the trials ran in one pass.
fn results_json(scores: &[Scores]) -> String {
    let object = |pairs: Vec<(usize, f64)>| {
        // serde_json writes a NaN or infinite perplexity as null.
        let fields: Vec<String> = pairs
            .iter()
            .map(|(t, v)| format!("\"{t}\": {}", serde_json::to_string(v).unwrap_or_else(|_| "null".into())))
            .collect();
        format!("{{{}}}", fields.join(", "))
    };
    let perplexity = scores.iter().filter_map(|s| Some((s.t, s.loss.perplexity()?))).collect();
    let passkey = scores.iter().filter_map(|s| s.passed.map(|(k, n)| (s.t, k as f64 / n as f64))).collect();
    let nll: Vec<(usize, f64)> = scores.iter().filter_map(|s| Some((s.t, s.answer_nll?))).collect();
    let nll =
        if nll.is_empty() { String::new() } else { format!(", \"passkey_answer_nll\": {}", object(nll)) };
    format!("{{\"perplexity\": {}, \"passkey\": {}{nll}}}\n", object(perplexity), object(passkey))
}
