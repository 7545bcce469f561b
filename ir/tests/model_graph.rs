//! The LLaMA graph against a straightforward f64 implementation written here,
//! loop by loop from transformers' `LlamaForCausalLM`: embedding, RMSNorm,
//! q/k/v/o with LoRA, rotate-half RoPE with linear position interpolation,
//! grouped-query attention under each layer's masks, SwiGLU, the final norm,
//! the LM head (tied or not) and the next-token loss.

use std::collections::HashMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use weft_ir::interp::{Tensor, run};
use weft_ir::model::{LlamaConfig, LoraConfig, ModelGraphError, ModelGraphOptions, build_llama_graph};
use weft_ir::{Overrides, Schedule};

#[path = "support/llama.rs"]
mod llama;
use llama::{lora, schedule, tiny_config};

fn rng() -> (StdRng, u64) {
    let seed = std::env::var("WEFT_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    eprintln!("seed {seed} (rerun with WEFT_TEST_SEED={seed})");
    (StdRng::seed_from_u64(seed), seed)
}

/// Random values for every leaf: parameters in (-0.5, 0.5), ids in `0..vocab`.
fn feeds(graph: &weft_ir::graph::ValidGraph, vocab: usize, rng: &mut StdRng) -> HashMap<String, Tensor> {
    graph
        .leaves()
        .map(|(id, name)| {
            let ty = &graph.node(id).ty;
            let tensor = Tensor::from_fn(ty.shape.clone(), |_| {
                if ty.dtype.is_float() {
                    rng.random_range(-0.5..0.5)
                } else {
                    rng.random_range(0..vocab) as f64
                }
            });
            (name.to_string(), tensor)
        })
        .collect()
}

/// `x [rows, in] · Wᵀ` with `W [out, in]`.
fn linear(x: &[f64], w: &Tensor) -> Vec<f64> {
    let (out, input) = (w.shape()[0], w.shape()[1]);
    x.chunks(input)
        .flat_map(|row| {
            (0..out).map(move |o| (0..input).map(|i| row[i] * w.data()[o * input + i]).sum::<f64>())
        })
        .collect()
}

fn rms_norm(x: &[f64], w: &Tensor, eps: f64) -> Vec<f64> {
    let d = w.len();
    x.chunks(d)
        .flat_map(|row| {
            let r = 1.0 / (row.iter().map(|v| v * v).sum::<f64>() / d as f64 + eps).sqrt();
            row.iter().zip(w.data()).map(move |(v, g)| v * r * g).collect::<Vec<_>>()
        })
        .collect()
}

/// The model by hand; returns logits `[B, T, V]` flattened.
fn reference_logits(
    config: &LlamaConfig,
    schedule: &Schedule,
    lora: &LoraConfig,
    w: &HashMap<String, Tensor>,
    batch: usize,
    t: usize,
) -> Vec<f64> {
    let (hidden, heads, kv_heads, d) =
        (config.hidden_size, config.num_attention_heads, config.num_key_value_heads, config.head_dim);
    let eps = config.rms_norm_eps;
    let ids = w["input_ids"].data();
    let embed = &w["model.embed_tokens.weight"];
    let mut x: Vec<f64> = ids
        .iter()
        .flat_map(|&id| embed.data()[id as usize * hidden..(id as usize + 1) * hidden].to_vec())
        .collect();
    let adapted = |layer: usize, module: &str, h: &[f64]| -> Vec<f64> {
        let family =
            if module.ends_with("_proj") && ["q_proj", "k_proj", "v_proj", "o_proj"].contains(&module) {
                "self_attn"
            } else {
                "mlp"
            };
        let prefix = format!("model.layers.{layer}.{family}.{module}");
        let mut y = linear(h, &w[&format!("{prefix}.weight")]);
        if lora.target_modules.iter().any(|m| m == module) {
            let ab = linear(
                &linear(h, &w[&format!("{prefix}.lora_A.weight")]),
                &w[&format!("{prefix}.lora_B.weight")],
            );
            for (y, ab) in y.iter_mut().zip(ab) {
                *y += lora.alpha / lora.rank as f64 * ab;
            }
        }
        y
    };
    // Rotate-half RoPE at position p with positions divided by the scaling factor.
    let rope = |v: &mut [f64], p: usize| {
        let half = d / 2;
        for i in 0..half {
            let angle = (p as f64 / config.rope.position_scale())
                * config.rope.theta.powf(-2.0 * i as f64 / d as f64);
            let (a, b) = (v[i], v[i + half]);
            v[i] = a * angle.cos() - b * angle.sin();
            v[i + half] = b * angle.cos() + a * angle.sin();
        }
    };
    for layer in 0..config.num_hidden_layers {
        let pattern = schedule.pattern_for_layer(layer).unwrap();
        let h = rms_norm(&x, &w[&format!("model.layers.{layer}.input_layernorm.weight")], eps);
        let mut q = adapted(layer, "q_proj", &h);
        let mut k = adapted(layer, "k_proj", &h);
        let v = adapted(layer, "v_proj", &h);
        for row in 0..batch * t {
            for head in 0..heads {
                rope(&mut q[row * heads * d + head * d..][..d], row % t);
            }
            for head in 0..kv_heads {
                rope(&mut k[row * kv_heads * d + head * d..][..d], row % t);
            }
        }
        let mut o = vec![0.0; batch * t * heads * d];
        for b in 0..batch {
            for head in 0..heads {
                let kv = head / (heads / kv_heads);
                let mask = pattern.head_mask(head).unwrap();
                for i in 0..t {
                    let qi = &q[(b * t + i) * heads * d + head * d..][..d];
                    let scores: Vec<(usize, f64)> = (0..t)
                        .filter(|&j| mask.allows(t as i64, i as i64, j as i64))
                        .map(|j| {
                            let kj = &k[(b * t + j) * kv_heads * d + kv * d..][..d];
                            (j, qi.iter().zip(kj).map(|(a, b)| a * b).sum::<f64>() / (d as f64).sqrt())
                        })
                        .collect();
                    let max = scores.iter().map(|s| s.1).fold(f64::NEG_INFINITY, f64::max);
                    let total: f64 = scores.iter().map(|s| (s.1 - max).exp()).sum();
                    for &(j, s) in &scores {
                        let p = (s - max).exp() / total;
                        for c in 0..d {
                            o[(b * t + i) * heads * d + head * d + c] +=
                                p * v[(b * t + j) * kv_heads * d + kv * d + c];
                        }
                    }
                }
            }
        }
        let o = adapted(layer, "o_proj", &o);
        for (x, o) in x.iter_mut().zip(o) {
            *x += o;
        }
        let h = rms_norm(&x, &w[&format!("model.layers.{layer}.post_attention_layernorm.weight")], eps);
        let gate = adapted(layer, "gate_proj", &h);
        let up = adapted(layer, "up_proj", &h);
        let act: Vec<f64> = gate.iter().zip(&up).map(|(g, u)| g / (1.0 + (-g).exp()) * u).collect();
        let down = adapted(layer, "down_proj", &act);
        for (x, o) in x.iter_mut().zip(down) {
            *x += o;
        }
    }
    let x = rms_norm(&x, &w["model.norm.weight"], eps);
    let head = if config.tie_word_embeddings { embed } else { &w["lm_head.weight"] };
    linear(&x, head)
}

#[test]
fn the_graph_computes_what_transformers_computes() {
    let (mut rng, seed) = rng();
    let (batch, t) = (2, 16);
    let schedule = schedule(t);
    for tied in [false, true] {
        let config = tiny_config(tied);
        let opts = ModelGraphOptions { lora: Some(lora()), ..ModelGraphOptions::new(batch, t) };
        let graph = build_llama_graph(&config, Some(&schedule), &opts).unwrap();
        let inputs = feeds(&graph, config.vocab_size, &mut rng);
        let logits = run(&graph, &inputs).unwrap().remove("logits").unwrap();
        assert_eq!(logits.shape(), [batch, t, config.vocab_size]);
        let want = reference_logits(&config, &schedule, &lora(), &inputs, batch, t);
        let want = Tensor::new(vec![batch, t, config.vocab_size], want).unwrap();
        let err = logits.max_rel_error(&want);
        assert!(err <= 1e-12, "tied = {tied}: relative error {err:e} (seed {seed})");
        // The graph's parameters are the checkpoint's tensors, plus LoRA's.
        let mut names: Vec<String> = config.parameter_shapes().into_iter().map(|p| p.name).collect();
        names.extend((0..2).flat_map(|l| {
            ["q_proj", "v_proj", "o_proj"].into_iter().flat_map(move |m| {
                ["lora_A", "lora_B"].map(|f| format!("model.layers.{l}.self_attn.{m}.{f}.weight"))
            })
        }));
        let mut leaves: Vec<String> =
            graph.leaves().map(|(_, n)| n.to_string()).filter(|n| n != "input_ids").collect();
        names.sort();
        leaves.sort();
        assert_eq!(leaves, names);
    }
}

#[test]
fn the_loss_is_the_mean_next_token_cross_entropy() {
    let (mut rng, _) = rng();
    let (batch, t) = (1, 8);
    let config = tiny_config(true);
    let opts = ModelGraphOptions { loss: true, ..ModelGraphOptions::new(batch, t) };
    let graph = build_llama_graph(&config, None, &opts).unwrap();
    let mut inputs = feeds(&graph, config.vocab_size, &mut rng);
    // targets[t] = input_ids[t + 1], the last position ignored.
    let ids = inputs["input_ids"].data().to_vec();
    let targets: Vec<f64> = (0..t).map(|i| if i + 1 < t { ids[i + 1] } else { -100.0 }).collect();
    inputs.insert("targets".into(), Tensor::new(vec![batch, t], targets.clone()).unwrap());
    let out = run(&graph, &inputs).unwrap();
    let (logits, loss) = (&out["logits"], out["loss"].data()[0]);
    let v = config.vocab_size;
    let mut total = 0.0;
    for i in 0..t - 1 {
        let row = &logits.data()[i * v..(i + 1) * v];
        let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let lse = max + row.iter().map(|x| (x - max).exp()).sum::<f64>().ln();
        total += lse - row[targets[i] as usize];
    }
    assert!((loss - total / (t - 1) as f64).abs() < 1e-12, "{loss} vs {}", total / (t - 1) as f64);
}

#[test]
fn bad_options_and_schedules_are_clear_errors() {
    let config = tiny_config(false);
    let bad_lora = LoraConfig { target_modules: vec!["gate".into()], ..lora() };
    let opts = ModelGraphOptions { lora: Some(bad_lora), ..ModelGraphOptions::new(1, 16) };
    let err = build_llama_graph(&config, None, &opts).unwrap_err();
    assert!(matches!(err, ModelGraphError::UnknownLoraModule { .. }), "{err:?}");
    assert_eq!(err.to_string(), "LoRA target module `gate` is not one of q_proj, k_proj, v_proj, o_proj");

    let eight_heads = {
        let overrides = Overrides { seq_len: Some(16), n_heads: Some(8), ..Overrides::default() };
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/patterns/causal.toml");
        weft_ir::spec::load_schedule(&path, &overrides).unwrap()
    };
    let err = build_llama_graph(&config, Some(&eight_heads), &ModelGraphOptions::new(1, 16)).unwrap_err();
    assert_eq!(err.to_string(), "layer 0: pattern `causal` has 8 heads, but the model has 4");
    let err = build_llama_graph(&config, None, &ModelGraphOptions::new(0, 16)).unwrap_err();
    assert_eq!(err.to_string(), "batch and sequence length must be at least 1 (batch 0, seq_len 16)");
}
