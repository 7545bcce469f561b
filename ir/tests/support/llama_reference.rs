//! LLaMA's forward pass written out loop by loop in f64, from transformers'
//! `LlamaForCausalLM`: the independent implementation the model graph (and
//! `weft forward`) is checked against.

use std::collections::HashMap;

use weft_ir::Schedule;
use weft_ir::interp::Tensor;
use weft_ir::model::{HiddenAct, LlamaConfig, LoraConfig};

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
pub fn reference_logits(
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
            // PEFT: scaling = alpha / r, or alpha / sqrt(r) with use_rslora.
            let rank = lora.rank as f64;
            let scaling = if lora.use_rslora { lora.alpha / rank.sqrt() } else { lora.alpha / rank };
            for (y, ab) in y.iter_mut().zip(ab) {
                *y += scaling * ab;
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
        // transformers' SiLU, and its tanh GELU (`gelu_pytorch_tanh`) spelled with tanh.
        let act_fn = |g: f64| match config.hidden_act {
            HiddenAct::Silu => g / (1.0 + (-g).exp()),
            HiddenAct::Gelu => 0.5 * g * (1.0 + libm::erf(g / 2f64.sqrt())),
            HiddenAct::GeluTanh => {
                0.5 * g * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (g + 0.044715 * g.powi(3))).tanh())
            }
        };
        let act: Vec<f64> = gate.iter().zip(&up).map(|(&g, u)| act_fn(g) * u).collect();
        let down = adapted(layer, "down_proj", &act);
        for (x, o) in x.iter_mut().zip(down) {
            *x += o;
        }
    }
    let x = rms_norm(&x, &w["model.norm.weight"], eps);
    let head = if config.tie_word_embeddings { embed } else { &w["lm_head.weight"] };
    linear(&x, head)
}
