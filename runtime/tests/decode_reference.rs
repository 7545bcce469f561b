//! Decoding with a KV cache shaped by the mask's reach, in f64 on the CPU:
//! the decode graph (`build_llama_decode_graph`) run by the reference
//! interpreter, its caches kept by `SlotTable`, gives at every position the
//! logits of a full recomputation of the sequence so far under the same
//! pattern (`build_llama_graph`). This pins the algorithm the decode kernels
//! implement: RoPE at each row's position, the mask in absolute positions, the
//! eviction by reach, GQA, and rows of different lengths in one batch.
//!
//! Tolerance: 1e-9 absolute on logits (both sides f64; only the order of sums
//! differs). Weights are random in ±[0.05, 0.5), ids random below the vocabulary;
//! `WEFT_TEST_SEED` replays.

use std::collections::HashMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use weft_ir::graph::{RopeParams, ValidGraph};
use weft_ir::interp::{Tensor, run};
use weft_ir::model::{
    DecodeGraphOptions, LlamaConfig, ModelGraphOptions, build_llama_decode_graph, build_llama_graph,
};
use weft_ir::{Overrides, Schedule, SourceFile, Spec};
use weft_runtime::decode::SlotTable;

const TOLERANCE: f64 = 1e-9;

fn rng() -> StdRng {
    let seed = std::env::var("WEFT_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    eprintln!("seed {seed} (rerun with WEFT_TEST_SEED={seed})");
    StdRng::seed_from_u64(seed)
}

/// Three layers, 4 query heads on 2 KV heads, head_dim 4, linear RoPE scaling.
fn config() -> LlamaConfig {
    let json = r#"{
        "hidden_size": 16, "intermediate_size": 24, "num_attention_heads": 4,
        "num_key_value_heads": 2, "num_hidden_layers": 3, "rms_norm_eps": 1e-5,
        "vocab_size": 13, "max_position_embeddings": 64, "tie_word_embeddings": false,
        "rope_theta": 500.0, "rope_scaling": {"type": "linear", "factor": 2.0}
    }"#;
    LlamaConfig::from_json_str(json, "config.json").unwrap()
}

/// A spec of 3 layers and 4 heads with `layers` as its `[[layers]]` and `patterns`.
fn schedule(patterns: &str, layers: &str, seq_len: usize) -> Schedule {
    let text =
        format!("[defaults]\nseq_len = 16\nn_heads = 4\nn_layers = 3\nhead_dim = 4\n{patterns}\n{layers}");
    let overrides = Overrides { seq_len: Some(seq_len), ..Overrides::default() };
    Spec::parse(SourceFile::new("decode.toml", text)).unwrap().resolve(&overrides).unwrap()
}

fn uniform(mask: &str, seq_len: usize) -> Schedule {
    let patterns = format!("[patterns.p]\nheads = [{{ range = \"0..H\", mask = \"{mask}\" }}]");
    schedule(&patterns, "[[layers]]\nrange = \"0..L\"\npattern = \"p\"", seq_len)
}

/// LongGen's hybrid at this size: layer 1 full, layers 0 and 2 sinks + window.
fn hybrid(seq_len: usize) -> Schedule {
    let patterns = r#"
        [patterns.sparse]
        heads = [{ range = "0..H", mask = "causal & (sink(2) | window(5))" }]
        [patterns.dense]
        heads = [{ range = "0..H", mask = "causal" }]"#;
    let layers = r#"
        [[layers]]
        range = "0..1"
        pattern = "sparse"
        [[layers]]
        range = "1..2"
        pattern = "dense"
        [[layers]]
        range = "2..3"
        pattern = "sparse""#;
    schedule(patterns, layers, seq_len)
}

/// Random weights for every parameter of `graph`.
fn weights(graph: &ValidGraph, rng: &mut StdRng) -> HashMap<String, Tensor> {
    graph
        .leaves()
        .filter(|(id, _)| matches!(graph.node(*id).op, weft_ir::graph::Op::Parameter { .. }))
        .map(|(id, name)| {
            let shape = graph.node(id).ty.shape.clone();
            let t = Tensor::from_fn(shape, |_| {
                let x: f64 = rng.random_range(0.05..0.5);
                if rng.random_bool(0.5) { x } else { -x }
            });
            (name.to_string(), t)
        })
        .collect()
}

fn ints(shape: Vec<usize>, values: &[i64]) -> Tensor {
    Tensor::new(shape, values.iter().map(|&v| v as f64).collect()).unwrap()
}

/// The logits of the last position of `ids`, recomputed over the whole prefix.
fn recompute(
    config: &LlamaConfig,
    schedule: &Schedule,
    weights: &HashMap<String, Tensor>,
    ids: &[i64],
) -> Vec<f64> {
    let graph = build_llama_graph(config, Some(schedule), &ModelGraphOptions::new(1, ids.len())).unwrap();
    let mut inputs = weights.clone();
    inputs.insert("input_ids".into(), ints(vec![1, ids.len()], ids));
    let logits = run(&graph, &inputs).unwrap().remove("logits").unwrap();
    let vocab = config.vocab_size;
    logits.data()[(ids.len() - 1) * vocab..].to_vec()
}

/// One layer's device cache, on the host: `[B, G, C, D]` keys and values.
struct Cache {
    table: SlotTable,
    keys: Vec<f64>,
    values: Vec<f64>,
}

/// Prefills rows of `prompts` (right-padded to the longest) and decodes
/// `ids[b][prompt_len..]` row by row, teacher-forced, comparing each decoded
/// position's logits with a recomputation. Returns the most keys any layer held.
fn check(schedule: &Schedule, rows: &[Vec<i64>], prompt_lens: &[usize], rng: &mut StdRng) -> Vec<usize> {
    let config = config();
    let (batch, g, d, vocab) = (rows.len(), config.num_key_value_heads, config.head_dim, config.vocab_size);
    let max_len = rows.iter().map(Vec::len).max().unwrap();
    let prefill = ModelGraphOptions {
        kv_outputs: true,
        ..ModelGraphOptions::new(batch, *prompt_lens.iter().max().unwrap())
    };
    let prefill_graph = build_llama_graph(&config, Some(schedule), &prefill).unwrap();
    let weights = weights(&prefill_graph, rng);

    // Each layer's cache, sized by its pattern's reach at the longest row.
    let mut caches: Vec<Cache> = (0..config.num_hidden_layers)
        .map(|layer| {
            let reach = schedule.pattern_for_layer(layer).unwrap().kv_reach(g).unwrap();
            let table = SlotTable::new(reach, batch, max_len as u64);
            let n = batch * g * table.capacity() * d;
            Cache { table, keys: vec![0.0; n], values: vec![0.0; n] }
        })
        .collect();
    let store = |cache: &mut Cache,
                 row: usize,
                 position: i64,
                 key: &dyn Fn(usize, usize) -> f64,
                 value: &dyn Fn(usize, usize) -> f64| {
        let slots = cache.table.admit(row, position).unwrap();
        let capacity = cache.table.capacity();
        for (kv, slot) in slots.into_iter().enumerate() {
            let Some(slot) = slot else { continue };
            for i in 0..d {
                let at = ((row * g + kv) * capacity + slot) * d + i;
                cache.keys[at] = key(kv, i);
                cache.values[at] = value(kv, i);
            }
        }
    };

    // Prefill: one pass over the padded prompts; each row keeps its own prompt's keys.
    let t = prefill.seq_len;
    let mut padded = Vec::new();
    for (row, ids) in rows.iter().enumerate() {
        padded.extend((0..t).map(|i| if i < prompt_lens[row] { ids[i] } else { 0 }));
    }
    let mut inputs = weights.clone();
    inputs.insert("input_ids".into(), ints(vec![batch, t], &padded));
    let out = run(&prefill_graph, &inputs).unwrap();
    for (layer, cache) in caches.iter_mut().enumerate() {
        let (k, v) = (&out[&format!("present.{layer}.key")], &out[&format!("present.{layer}.value")]);
        for (row, &len) in prompt_lens.iter().enumerate() {
            for p in 0..len {
                let at = |kv: usize, i: usize| ((row * g + kv) * t + p) * d + i;
                store(cache, row, p as i64, &|kv, i| k.data()[at(kv, i)], &|kv, i| v.data()[at(kv, i)]);
            }
        }
    }

    // Decode: every row one token per step, at its own position, until the longest is done.
    let mut next: Vec<usize> = prompt_lens.to_vec();
    let mut most_held = vec![0; config.num_hidden_layers];
    while next.iter().zip(rows).any(|(&p, ids)| p < ids.len()) {
        // A row that is done repeats its last position's token, whose result is ignored.
        let active: Vec<bool> = next.iter().zip(rows).map(|(&p, ids)| p < ids.len()).collect();
        let positions: Vec<i64> =
            next.iter().zip(rows).map(|(&p, ids)| p.min(ids.len() - 1) as i64).collect();
        let ids: Vec<i64> = positions.iter().zip(rows).map(|(&p, ids)| ids[p as usize]).collect();
        let decode = DecodeGraphOptions {
            batch,
            cache_slots: caches.iter().map(|c| c.table.capacity()).collect(),
            lora: None,
        };
        let graph = build_llama_decode_graph(&config, Some(schedule), &decode).unwrap();
        let mut inputs = weights.clone();
        inputs.insert("input_ids".into(), ints(vec![batch, 1], &ids));
        inputs.insert("positions".into(), ints(vec![batch], &positions));
        let rope = RopeParams::new(config.rope.theta, config.rope.position_scale());
        let table: Vec<f64> = positions.iter().flat_map(|&p| rope.rotation(p as usize, d)).collect();
        inputs.insert("rope_table".into(), Tensor::new(vec![batch, 1, 2, d], table).unwrap());
        // Admit each active row's new position first (its slot is skipped by
        // the op until written), then run the step and store what it returns.
        let mut slots_of = Vec::new();
        for cache in caches.iter_mut() {
            let mut per_row = Vec::new();
            for (row, &on) in active.iter().enumerate() {
                per_row.push(if on { Some(cache.table.admit(row, positions[row]).unwrap()) } else { None });
            }
            slots_of.push(per_row);
        }
        for (layer, cache) in caches.iter().enumerate() {
            let c = cache.table.capacity();
            inputs.insert(
                format!("cache.{layer}.key"),
                Tensor::new(vec![batch, g, c, d], cache.keys.clone()).unwrap(),
            );
            inputs.insert(
                format!("cache.{layer}.value"),
                Tensor::new(vec![batch, g, c, d], cache.values.clone()).unwrap(),
            );
            let slots: Vec<i64> = cache.table.positions().iter().map(|&p| i64::from(p)).collect();
            inputs.insert(format!("cache.{layer}.slots"), ints(vec![batch, g, c], &slots));
            for row in 0..batch {
                for kv in 0..g {
                    most_held[layer] = most_held[layer].max(cache.table.held(row, kv).len());
                }
            }
        }
        let out = run(&graph, &inputs).unwrap();
        let logits = &out["logits"];
        for (row, &on) in active.iter().enumerate() {
            if !on {
                continue;
            }
            let p = positions[row] as usize;
            let got = &logits.data()[row * vocab..(row + 1) * vocab];
            let want = recompute(&config, schedule, &weights, &rows[row][..=p]);
            let err = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            assert!(err <= TOLERANCE, "row {row}, position {p}: decode differs from recomputation by {err}");
        }
        for (layer, cache) in caches.iter_mut().enumerate() {
            let c = cache.table.capacity();
            let (k, v) = (&out[&format!("present.{layer}.key")], &out[&format!("present.{layer}.value")]);
            for (row, slots) in slots_of[layer].iter().enumerate() {
                let Some(slots) = slots else { continue };
                for (kv, slot) in slots.iter().enumerate() {
                    let Some(slot) = slot else { continue };
                    for i in 0..d {
                        cache.keys[((row * g + kv) * c + slot) * d + i] = k.data()[(row * g + kv) * d + i];
                        cache.values[((row * g + kv) * c + slot) * d + i] = v.data()[(row * g + kv) * d + i];
                    }
                }
            }
        }
        for (p, on) in next.iter_mut().zip(&active) {
            *p += usize::from(*on);
        }
    }
    most_held
}

fn random_ids(len: usize, rng: &mut StdRng) -> Vec<i64> {
    (0..len).map(|_| rng.random_range(0..13)).collect()
}

#[test]
fn sink_and_window_decodes_like_a_recomputation_from_a_ring_of_the_window() {
    let mut rng = rng();
    let schedule = uniform("causal & (sink(2) | window(5))", 20);
    let ids = random_ids(20, &mut rng);
    let held = check(&schedule, &[ids], &[6], &mut rng);
    assert_eq!(held, [7, 7, 7]);
}

#[test]
fn local_stride_decodes_like_a_recomputation() {
    let mut rng = rng();
    // Per-head vertical blocks: under GQA a KV head keeps both of its heads' blocks.
    let schedule = uniform("causal & local_stride(2, 2, 4, h)", 20);
    let ids = random_ids(20, &mut rng);
    let held = check(&schedule, &[ids], &[5], &mut rng);
    // 2 local blocks of 2, and 2 of every 4 blocks (at most 3 + 2 of them by 20): 4 + 10.
    assert!(held.iter().all(|&h| h <= 14), "{held:?}");
}

#[test]
fn the_hybrid_schedule_decodes_a_batch_of_different_lengths() {
    let mut rng = rng();
    let schedule = hybrid(18);
    let rows = [random_ids(18, &mut rng), random_ids(13, &mut rng)];
    let held = check(&schedule, &rows, &[4, 7], &mut rng);
    // The sparse layers hold 2 sinks + 5 of the window; the dense one every key.
    assert_eq!(held, [7, 18, 7]);
}

#[test]
fn full_causal_with_gqa_decodes_like_a_recomputation() {
    let mut rng = rng();
    let schedule = uniform("causal", 12);
    let ids = random_ids(12, &mut rng);
    let held = check(&schedule, &[ids], &[1], &mut rng);
    assert_eq!(held, [12, 12, 12]);
}
