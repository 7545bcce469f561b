//! RoPE on load in the LLaMA training step: once optimized and differentiated,
//! the model rotates q and k inside its fused attention kernels (and dq, dk
//! back inside the fused backward), so the plan has no rope kernel left, and
//! the folded graph computes what the unfolded one does (f64 interpreter).

use std::collections::HashMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use weft_compiler::optimize::{OptimizeOptions, optimize};
use weft_compiler::{GraphPlanOptions, plan_graph};
use weft_ir::autodiff::{differentiate, trainable_parameters};
use weft_ir::graph::{DType, Op, ValidGraph};
use weft_ir::interp::{Tensor, run};
use weft_ir::model::{LlamaConfig, ModelGraphOptions, build_llama_graph};

#[path = "../../ir/tests/support/llama.rs"]
mod llama;

/// The optimizer with RoPE folding on (it is off by default; see `OptimizeOptions::rope_on_load`).
fn rope_on_load() -> OptimizeOptions {
    OptimizeOptions { rope_on_load: true, ..OptimizeOptions::default() }
}

fn count(graph: &ValidGraph, pred: impl Fn(&Op) -> bool) -> usize {
    graph.node_ids().filter(|&id| pred(&graph.node(id).op)).count()
}

/// The LongLoRA step: LoRA, trainable embedding and norms, the loss.
fn training_graph(config: &LlamaConfig, t: usize) -> ValidGraph {
    let opts = ModelGraphOptions {
        lora: Some(llama::lora()),
        train_embed: true,
        train_norm: true,
        loss: true,
        ..ModelGraphOptions::new(1, t)
    };
    build_llama_graph(config, Some(&llama::schedule(t)), &opts).unwrap()
}

/// `graph` differentiated with respect to its trainable parameters.
fn step(graph: &ValidGraph) -> ValidGraph {
    let trainable = trainable_parameters(graph);
    differentiate(graph, &trainable.iter().map(String::as_str).collect::<Vec<_>>()).unwrap().graph
}

/// A LLaMA whose key/value heads equal its query heads (no `repeat_kv`), head dim 8.
fn mha_config() -> LlamaConfig {
    let json = r#"{"hidden_size": 32, "intermediate_size": 48, "num_attention_heads": 4,
        "num_key_value_heads": 4, "num_hidden_layers": 2, "rms_norm_eps": 1e-5, "vocab_size": 11,
        "max_position_embeddings": 64, "tie_word_embeddings": false, "rope_theta": 500.0,
        "rope_scaling": {"type": "linear", "factor": 2.0}}"#;
    LlamaConfig::from_json_str(json, "mha").unwrap()
}

#[test]
fn the_llama_training_step_has_no_rope_kernels() {
    let t = 16;
    // Grouped-query (k's rope before repeat_kv) and plain multi-head attention.
    for config in [llama::tiny_config(false), mha_config()] {
        let reference = training_graph(&config, t);
        let layers = config.num_hidden_layers;
        assert_eq!(count(&reference, |op| matches!(op, Op::Rope { .. })), 2 * layers);
        let optimized = optimize(&reference, &rope_on_load()).unwrap();
        let graph = &optimized.graph;
        let folded = count(graph, |op| matches!(op, Op::FusedAttention { rope: Some(_), .. }));
        assert_eq!(folded, layers, "{}", optimized.report);
        assert_eq!(count(graph, |op| matches!(op, Op::Rope { .. })), 0, "{}", optimized.report);

        let train = step(graph);
        assert_eq!(count(&train, |op| matches!(op, Op::Rope { .. })), 0);
        let grads = count(&train, |op| matches!(op, Op::FusedAttentionGrad { rope: Some(_), .. }));
        assert_eq!(grads, 3 * layers);
        let plan = plan_graph(&train, &GraphPlanOptions::default()).unwrap();
        let ropes: Vec<&str> =
            plan.kernels.iter().map(|k| k.name.as_str()).filter(|n| n.contains("rope")).collect();
        assert!(ropes.is_empty(), "rope kernels left: {ropes:?}");

        // Without folding, the same step has a rope kernel per rope node.
        let unfolded = plan_graph(&step(&reference), &GraphPlanOptions::default()).unwrap();
        let unfolded_ropes = unfolded.kernels.iter().filter(|k| k.name.contains("rope")).count();
        assert_eq!(unfolded_ropes, 4 * layers, "q, k and their gradients' transposed ropes");
    }
}

#[test]
fn rope_stays_a_kernel_of_its_own_by_default() {
    let config = llama::tiny_config(false);
    let reference = training_graph(&config, 16);
    let optimized = optimize(&reference, &OptimizeOptions::default()).unwrap();
    let ropes = count(&optimized.graph, |op| matches!(op, Op::Rope { .. }));
    assert_eq!(ropes, 2 * config.num_hidden_layers, "{}", optimized.report);
    assert_eq!(count(&optimized.graph, |op| matches!(op, Op::FusedAttention { rope: Some(_), .. })), 0);
}

#[test]
fn the_folded_training_step_computes_the_same() {
    let mut rng = StdRng::seed_from_u64(0x0a0e);
    let t = 16;
    let config = llama::tiny_config(false);
    let reference = training_graph(&config, t);
    let folded = step(&optimize(&reference, &rope_on_load()).unwrap().graph);
    let unfolded = step(&reference);
    let inputs: HashMap<String, Tensor> = unfolded
        .leaves()
        .map(|(id, name)| {
            let ty = &unfolded.node(id).ty;
            let count = ty.shape.iter().product();
            let values = if ty.dtype == DType::F32 {
                (0..count)
                    .map(|_| rng.random_range(0.05..0.5) * if rng.random_bool(0.5) { 1.0 } else { -1.0 })
                    .collect()
            } else {
                (0..count).map(|_| rng.random_range(0..config.vocab_size) as f64).collect()
            };
            (name.to_string(), Tensor::new(ty.shape.clone(), values).unwrap())
        })
        .collect();
    let (got, want) = (run(&folded, &inputs).unwrap(), run(&unfolded, &inputs).unwrap());
    for (name, expected) in &want {
        let err = got[name].max_rel_error(expected);
        assert!(err < 1e-10, "{name}: relative error {err}");
    }
}
