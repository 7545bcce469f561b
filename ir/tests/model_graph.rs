//! The LLaMA graph against a straightforward f64 implementation written here,
//! loop by loop from transformers' `LlamaForCausalLM`: embedding, RMSNorm,
//! q/k/v/o with LoRA, rotate-half RoPE with linear position interpolation,
//! grouped-query attention under each layer's masks, SwiGLU, the final norm,
//! the LM head (tied or not) and the next-token loss.

use std::collections::HashMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use weft_ir::Overrides;
use weft_ir::interp::{Tensor, run};
use weft_ir::model::{
    DecodeGraphOptions, HiddenAct, LoraConfig, ModelGraphError, ModelGraphOptions, build_llama_decode_graph,
    build_llama_graph,
};

#[path = "support/llama.rs"]
mod llama;
#[path = "support/llama_reference.rs"]
mod llama_reference;
use llama::{lora, schedule, tiny_config};
use llama_reference::reference_logits;

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

/// `hidden_act: "gelu"` and `"gelu_pytorch_tanh"`, and an rsLoRA adapter (`alpha / √r`),
/// against the same by-hand forward pass.
#[test]
fn gelu_and_rslora_compute_what_transformers_computes() {
    for act in [HiddenAct::Gelu, HiddenAct::GeluTanh] {
        gelu_and_rslora(act);
    }
}

fn gelu_and_rslora(act: HiddenAct) {
    let (mut rng, seed) = rng();
    let (batch, t) = (1, 8);
    let schedule = schedule(t);
    let config = weft_ir::model::LlamaConfig { hidden_act: act, ..tiny_config(false) };
    let lora = LoraConfig { rank: 4, use_rslora: true, ..lora() };
    // PEFT: alpha 8 at r 4 scales by 8 / 2 = 4 with rsLoRA, by 8 / 4 = 2 without.
    assert_eq!(lora.scaling(), 4.0);
    assert_eq!(LoraConfig { use_rslora: false, ..lora.clone() }.scaling(), 2.0);
    let opts = ModelGraphOptions { lora: Some(lora.clone()), ..ModelGraphOptions::new(batch, t) };
    let graph = build_llama_graph(&config, Some(&schedule), &opts).unwrap();
    let inputs = feeds(&graph, config.vocab_size, &mut rng);
    let logits = run(&graph, &inputs).unwrap().remove("logits").unwrap();
    let want = reference_logits(&config, &schedule, &lora, &inputs, batch, t);
    let want = Tensor::new(vec![batch, t, config.vocab_size], want).unwrap();
    let err = logits.max_rel_error(&want);
    assert!(err <= 1e-12, "{act}: relative error {err:e} (seed {seed})");
    // The plain-LoRA scaling gives other logits: the flag is not ignored.
    let plain = ModelGraphOptions {
        lora: Some(LoraConfig { use_rslora: false, ..lora }),
        ..ModelGraphOptions::new(batch, t)
    };
    let graph = build_llama_graph(&config, Some(&schedule), &plain).unwrap();
    let other = run(&graph, &inputs).unwrap().remove("logits").unwrap();
    assert!(other.max_rel_error(&want) > 1e-6);
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
    let mut no_kv = config.clone();
    no_kv.num_key_value_heads = 0;
    let err = build_llama_graph(&no_kv, None, &ModelGraphOptions::new(1, 16)).unwrap_err();
    assert!(matches!(err, ModelGraphError::Config(_)), "{err:?}");
    let err = build_llama_graph(&config, None, &ModelGraphOptions::new(0, 16)).unwrap_err();
    assert_eq!(err.to_string(), "batch and sequence length must be at least 1 (batch 0, seq_len 16)");
}

/// The decoding step's graph: one token per row, its cache per layer as
/// inputs, the new keys and values as outputs; it prints and parses back.
#[test]
fn the_decode_graph_reads_caches_and_returns_the_new_keys() {
    let config = tiny_config(false);
    let schedule = schedule(16);
    let decode = DecodeGraphOptions { batch: 3, cache_slots: vec![5, 9], lora: Some(lora()) };
    let graph = build_llama_decode_graph(&config, Some(&schedule), &decode).unwrap();
    let leaf = |name: &str| {
        let (id, _) = graph.leaves().find(|(_, n)| *n == name).unwrap_or_else(|| panic!("no leaf {name}"));
        graph.node(id).ty.to_string()
    };
    assert_eq!(leaf("input_ids"), "i32[3, 1]");
    assert_eq!(leaf("positions"), "i32[3]");
    assert_eq!(leaf("rope_table"), "f32[3, 1, 2, 4]");
    assert_eq!(leaf("cache.0.key"), "f32[3, 2, 5, 4]");
    assert_eq!(leaf("cache.1.slots"), "i32[3, 2, 9]");
    let outputs: Vec<String> =
        graph.outputs().iter().map(|(n, id)| format!("{n} {}", graph.node(*id).ty)).collect();
    assert_eq!(
        outputs,
        [
            "present.0.key f32[3, 2, 1, 4]",
            "present.0.value f32[3, 2, 1, 4]",
            "present.1.key f32[3, 2, 1, 4]",
            "present.1.value f32[3, 2, 1, 4]",
            "logits f32[3, 1, 11]"
        ]
    );
    let text = graph.to_sexpr();
    assert!(text.contains("(cached-attention ") && text.contains("(rope-table "), "{text}");
    let parsed =
        weft_ir::graph::parse_sexpr(&weft_ir::SourceFile::new("decode.sexpr", text.clone())).unwrap();
    assert_eq!(parsed.to_sexpr(), text);

    let wrong = DecodeGraphOptions { cache_slots: vec![5], ..decode };
    let err = build_llama_decode_graph(&config, Some(&schedule), &wrong).unwrap_err();
    assert!(matches!(err, ModelGraphError::CacheLayers { found: 1, layers: 2 }), "{err}");
    assert_eq!(err.to_string(), "1 cache sizes for a model of 2 layers");
}
