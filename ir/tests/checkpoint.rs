//! Gradient checkpointing (`autodiff::checkpoint`): the rebuilt training step
//! computes exactly what the plain one does (the recomputed nodes are the
//! same ops on the same values, so the f64 interpreter agrees to the bit),
//! and its backward pass reads no more forward activations than the
//! checkpoints the report counts: two per layer (its residual sum after
//! attention and its output), the embedding's, and those of the head.

use std::collections::{HashMap, HashSet};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use weft_ir::autodiff::{Gradients, checkpoint, differentiate_outputs, trainable_parameters};
use weft_ir::graph::{NodeId, Op, ValidGraph};
use weft_ir::interp::{Tensor, run};
use weft_ir::model::{LlamaConfig, ModelGraphOptions, build_llama_graph};

#[path = "support/llama.rs"]
mod llama;

fn rng() -> StdRng {
    let seed = std::env::var("WEFT_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    eprintln!("seed {seed} (rerun with WEFT_TEST_SEED={seed})");
    StdRng::seed_from_u64(seed)
}

/// The LLaMA training step (LoRA, embedding and norms trainable, S²-Attn
/// and causal layers), seeded at the loss alone, as `weft train` builds it.
fn training_step(config: &LlamaConfig, batch: usize, t: usize) -> (ValidGraph, Gradients) {
    let opts = ModelGraphOptions {
        lora: Some(llama::lora()),
        train_embed: true,
        train_norm: true,
        loss: true,
        logits_output: false,
        ..ModelGraphOptions::new(batch, t)
    };
    let forward = build_llama_graph(config, Some(&llama::schedule(t)), &opts).unwrap();
    let wrt = trainable_parameters(&forward);
    let wrt: Vec<&str> = wrt.iter().map(String::as_str).collect();
    let step = differentiate_outputs(&forward, Some(&["loss"]), &wrt).unwrap();
    (forward, step)
}

/// Fresh random values for every leaf (never zero); the last target of each row ignored.
fn inputs(graph: &ValidGraph, config: &LlamaConfig, t: usize, rng: &mut StdRng) -> HashMap<String, Tensor> {
    graph
        .leaves()
        .map(|(id, name)| {
            let ty = &graph.node(id).ty;
            let count: usize = ty.shape.iter().product();
            let values: Vec<f64> = if ty.dtype.is_float() {
                (0..count)
                    .map(|_| rng.random_range(0.05..0.5) * if rng.random_bool(0.5) { 1.0 } else { -1.0 })
                    .collect()
            } else {
                (0..count)
                    .map(|i| match name {
                        "targets" if i % t == t - 1 => -100.0,
                        _ => rng.random_range(0..config.vocab_size) as f64,
                    })
                    .collect()
            };
            (name.to_string(), Tensor::new(ty.shape.clone(), values).unwrap())
        })
        .collect()
}

/// The forward activations (nodes computed from the token ids) that some
/// backward node (index `forward_len` on) reads.
fn activations_read_backward(graph: &ValidGraph, forward_len: usize) -> HashSet<NodeId> {
    let mut from_ids = vec![false; graph.len()];
    for id in graph.node_ids() {
        let node = graph.node(id);
        from_ids[id.index()] =
            matches!(node.op, Op::Input { .. }) || node.inputs.iter().any(|x| from_ids[x.index()]);
    }
    let activation =
        |x: NodeId| x.index() < forward_len && from_ids[x.index()] && graph.node(x).op.leaf_name().is_none();
    graph
        .node_ids()
        .skip(forward_len)
        .flat_map(|id| graph.node(id).inputs.clone())
        .filter(|&x| activation(x))
        .collect()
}

#[test]
fn a_checkpointed_step_computes_the_same_loss_and_gradients_to_the_bit() {
    let mut rng = rng();
    let (batch, t) = (2, 16);
    let config = llama::tiny_config(false);
    let (forward, step) = training_step(&config, batch, t);
    let (checkpointed, report) = checkpoint(step.clone(), forward.len()).unwrap();
    assert!(report.recomputed > 0, "{report:?}");
    assert_eq!(checkpointed.grads, step.grads);
    assert_eq!(checkpointed.seeds, step.seeds);

    let values = inputs(&step.graph, &config, t, &mut rng);
    let want = run(&step.graph, &values).unwrap();
    let got = run(&checkpointed.graph, &values).unwrap();
    assert_eq!(
        got.len(),
        1 + trainable_parameters(&forward).len(),
        "the loss and one gradient per parameter"
    );
    for (name, expected) in &want {
        assert_eq!(got[name].data(), expected.data(), "{name}");
    }
}

#[test]
fn the_checkpointed_backward_pass_reads_only_the_checkpoints() {
    let (batch, t) = (1, 16);
    let config = llama::tiny_config(false);
    let layers = config.num_hidden_layers;
    let (forward, step) = training_step(&config, batch, t);
    let plain = activations_read_backward(&step.graph, forward.len());
    let (checkpointed, report) = checkpoint(step, forward.len()).unwrap();
    let kept = activations_read_backward(&checkpointed.graph, forward.len());
    // One per attention: the first layer's input (the embedding's reshape),
    // each layer's sum after attention; then everything after the last
    // attention: the last layer's output, the final norm, the LM head's
    // product, the logits' reshape and the loss. Not the embedding itself,
    // nor the other layers' outputs (their MLP is recomputed from the sum).
    assert_eq!(report.checkpoints, 1 + layers + 5, "{report:?}");
    assert!(kept.len() <= report.checkpoints, "{} read, {report:?}", kept.len());
    assert!(plain.len() > 8 * layers, "the plain step reads {} activations", plain.len());
    // Every activation the plain step kept but this one does not is computed again.
    assert!(report.recomputed >= plain.len() - kept.len(), "{report:?}, {} then {}", plain.len(), kept.len());
}

#[test]
fn a_graph_whose_every_layer_reads_an_input_has_no_checkpoints_and_is_unchanged() {
    use weft_ir::graph::{DType, Graph, TensorType};
    // x -> silu -> mul(bias) -> silu -> mul(bias) -> sum: `bias` (an input)
    // is read by both layers, so no single value separates them.
    let mut g = Graph::new("every-layer-reads-bias");
    let ty = TensorType::new(DType::F32, [4]);
    let x = g.input("x", ty.clone());
    let bias = g.input("bias", ty.clone());
    let w = g.parameter("w", ty, true);
    let mut h = g.elementwise_mul(x, w).unwrap();
    for _ in 0..2 {
        let s = g.silu(h).unwrap();
        h = g.elementwise_mul(s, bias).unwrap();
    }
    let loss = g.reduce_sum(h, 0).unwrap();
    g.set_output("loss", loss);
    let forward = g.validate().unwrap();
    let step = differentiate_outputs(&forward, None, &["w"]).unwrap();
    let (rebuilt, report) = checkpoint(step.clone(), forward.len()).unwrap();
    assert_eq!(report.recomputed, 0, "{report:?}");
    assert_eq!(rebuilt.graph, step.graph);
}
