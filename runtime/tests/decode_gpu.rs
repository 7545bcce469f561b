//! Decoding on the GPU: `Decoder` (a fused prefill, then one step per token
//! against caches kept by reach) gives at every position the logits of a
//! full recomputation of the sequence so far under the same pattern, by the
//! f64 interpreter.
//!
//! Tolerance: `max |gpu - ref| / max |ref| <= 1e-4` per position (f32 kernels
//! against f64). Weights are random in ±[0.05, 0.5), ids random below the
//! vocabulary, teacher-forced; `WEFT_TEST_SEED` replays.

use std::collections::HashMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use weft_compiler::{CompileOptions, compile};
use weft_ir::graph::{Op, RopeParams, ValidGraph};
use weft_ir::interp::{Tensor, run};
use weft_ir::model::{
    DecodeGraphOptions, LlamaConfig, ModelGraphOptions, build_llama_decode_graph, build_llama_graph,
};
use weft_ir::{Overrides, Schedule, SourceFile, Spec};
use weft_runtime::HostValues;
use weft_runtime::decode::{DecodeSpec, Decoder};
use weft_runtime::testing::executor;

const TOLERANCE: f64 = 1e-4;

fn rng() -> StdRng {
    let seed = std::env::var("WEFT_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    eprintln!("seed {seed} (rerun with WEFT_TEST_SEED={seed})");
    StdRng::seed_from_u64(seed)
}

/// Three layers, 4 query heads on 2 KV heads, head_dim 8, linear RoPE scaling.
fn config() -> LlamaConfig {
    let json = r#"{
        "hidden_size": 32, "intermediate_size": 48, "num_attention_heads": 4,
        "num_key_value_heads": 2, "num_hidden_layers": 3, "rms_norm_eps": 1e-5,
        "vocab_size": 29, "max_position_embeddings": 128, "tie_word_embeddings": false,
        "rope_theta": 500.0, "rope_scaling": {"type": "linear", "factor": 2.0}
    }"#;
    LlamaConfig::from_json_str(json, "config.json").unwrap()
}

/// LongGen's hybrid at this size (layer 1 full, 0 and 2 sinks + a window),
/// or local-stride blocks per head on every layer.
fn schedule(hybrid: bool, seq_len: usize) -> Schedule {
    let text = if hybrid {
        r#"
        [patterns.sparse]
        heads = [{ range = "0..H", mask = "causal & (sink(3) | window(9))" }]
        [patterns.dense]
        heads = [{ range = "0..H", mask = "causal" }]
        [[layers]]
        range = "0..1"
        pattern = "sparse"
        [[layers]]
        range = "1..2"
        pattern = "dense"
        [[layers]]
        range = "2..3"
        pattern = "sparse""#
    } else {
        r#"
        [[heads]]
        range = "0..H"
        mask = "causal & local_stride(4, 2, 3, h)""#
    };
    let text = format!("[defaults]\nseq_len = 16\nn_heads = 4\nn_layers = 3\nhead_dim = 8\n{text}");
    let overrides = Overrides { seq_len: Some(seq_len), ..Overrides::default() };
    Spec::parse(SourceFile::new("decode.toml", text)).unwrap().resolve(&overrides).unwrap()
}

fn weights(graph: &ValidGraph, rng: &mut StdRng) -> HashMap<String, Vec<f64>> {
    graph
        .leaves()
        .filter(|(id, _)| matches!(graph.node(*id).op, Op::Parameter { .. }))
        .map(|(id, name)| {
            let n: usize = graph.node(id).ty.shape.iter().product();
            let values = (0..n)
                .map(|_| {
                    let x: f64 = rng.random_range(0.05..0.5);
                    if rng.random_bool(0.5) { x } else { -x }
                })
                .collect();
            (name.to_string(), values)
        })
        .collect()
}

/// The last position's logits of `ids`, recomputed in f64 over the whole prefix.
fn recompute(
    config: &LlamaConfig,
    schedule: &Schedule,
    weights: &HashMap<String, Vec<f64>>,
    ids: &[i64],
) -> Vec<f64> {
    let graph = build_llama_graph(config, Some(schedule), &ModelGraphOptions::new(1, ids.len())).unwrap();
    let mut inputs: HashMap<String, Tensor> = graph
        .leaves()
        .filter(|(_, n)| *n != "input_ids")
        .map(|(id, n)| {
            (n.to_string(), Tensor::new(graph.node(id).ty.shape.clone(), weights[n].clone()).unwrap())
        })
        .collect();
    inputs.insert(
        "input_ids".into(),
        Tensor::new(vec![1, ids.len()], ids.iter().map(|&i| i as f64).collect()).unwrap(),
    );
    let logits = run(&graph, &inputs).unwrap().remove("logits").unwrap();
    logits.data()[(ids.len() - 1) * config.vocab_size..].to_vec()
}

fn relative_error(got: &[f32], want: &[f64]) -> f64 {
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    got.iter().zip(want).map(|(&a, b)| (f64::from(a) - b).abs()).fold(0.0, f64::max) / scale
}

/// Decodes `rows` (teacher-forced past `prompt_lens`) and checks every
/// position against a recomputation; returns the most keys each layer held.
fn check(hybrid: bool, rows: &[Vec<i64>], prompt_lens: &[usize], rng: &mut StdRng) -> Option<Vec<usize>> {
    let mut ex = executor()?;
    let config = config();
    let max_len = rows.iter().map(Vec::len).max().unwrap();
    let schedule = schedule(hybrid, max_len);
    let (batch, prompt_len) = (rows.len(), *prompt_lens.iter().max().unwrap());
    let reach = (0..config.num_hidden_layers)
        .map(|l| schedule.pattern_for_layer(l).unwrap().kv_reach(config.num_key_value_heads).unwrap())
        .collect();
    let spec = DecodeSpec {
        batch,
        prompt_len,
        max_len: max_len as u64,
        n_kv_heads: config.num_key_value_heads,
        head_dim: config.head_dim,
        vocab: config.vocab_size,
        rope: RopeParams::new(config.rope.theta, config.rope.position_scale()),
        reach,
    };
    let prefill_opts = ModelGraphOptions {
        kv_outputs: true,
        last_logits: true,
        ..ModelGraphOptions::new(batch, prompt_len)
    };
    let prefill = build_llama_graph(&config, Some(&schedule), &prefill_opts).unwrap();
    let step_opts = DecodeGraphOptions { batch, cache_slots: spec.cache_slots(), lora: None };
    let step = build_llama_decode_graph(&config, Some(&schedule), &step_opts).unwrap();
    let plan_options = ex.gpu().plan_options();
    let prefill =
        compile(prefill, &CompileOptions { plan: plan_options.clone(), ..Default::default() }).unwrap();
    let step =
        compile(step, &CompileOptions { optimize: false, plan: plan_options, ..Default::default() }).unwrap();
    // The prefill's attention is fused.
    assert!(prefill.plan.kernels.iter().any(|k| k.name.contains("fused")), "prefill not fused");

    let weights = weights(&step.reference, rng);
    let feed: HashMap<String, HostValues> = weights
        .iter()
        .map(|(n, v)| (n.clone(), HostValues::F32(v.iter().map(|&x| x as f32).collect())))
        .collect();
    let prompts: Vec<Vec<i64>> = rows.iter().zip(prompt_lens).map(|(r, &n)| r[..n].to_vec()).collect();
    let (mut decoder, first) =
        Decoder::start(&mut ex, spec, &prefill.plan, &step.plan, &feed, &prompts).unwrap();
    for (row, logits) in first.iter().enumerate() {
        let want = recompute(&config, &schedule, &weights, &prompts[row]);
        let err = relative_error(logits, &want);
        assert!(err <= TOLERANCE, "row {row}, prefill: relative error {err:e}");
    }
    let mut next: Vec<usize> = prompt_lens.to_vec();
    let mut most = vec![0; config.num_hidden_layers];
    while next.iter().zip(rows).any(|(&p, r)| p < r.len()) {
        let tokens: Vec<Option<i64>> = next.iter().zip(rows).map(|(&p, r)| r.get(p).copied()).collect();
        let out = decoder.step(&tokens).unwrap();
        for (l, h) in decoder.held_keys().into_iter().enumerate() {
            most[l] = most[l].max(h);
        }
        for (row, logits) in out.iter().enumerate() {
            let Some(logits) = logits else { continue };
            let want = recompute(&config, &schedule, &weights, &rows[row][..=next[row]]);
            let err = relative_error(logits, &want);
            assert!(err <= TOLERANCE, "row {row}, position {}: relative error {err:e}", next[row]);
        }
        for (p, t) in next.iter_mut().zip(&tokens) {
            *p += usize::from(t.is_some());
        }
    }
    Some(most)
}

fn random_ids(len: usize, rng: &mut StdRng) -> Vec<i64> {
    (0..len).map(|_| rng.random_range(0..29)).collect()
}

#[test]
fn the_hybrid_schedule_decodes_a_batch_like_a_recomputation() {
    let mut rng = rng();
    let rows = [random_ids(30, &mut rng), random_ids(21, &mut rng)];
    let Some(held) = check(true, &rows, &[5, 12], &mut rng) else { return };
    // Sparse layers: 3 sinks + 9 of the window; the dense layer every key.
    assert_eq!(held, [12, 30, 12]);
}

#[test]
fn local_stride_heads_decode_like_a_recomputation() {
    let mut rng = rng();
    let rows = [random_ids(26, &mut rng)];
    let Some(held) = check(false, &rows, &[7], &mut rng) else { return };
    assert!(held.iter().all(|&h| h < 26), "{held:?}");
}
