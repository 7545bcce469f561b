//! The model on the GPU: two LLaMA layers with GQA, LoRA, an S²-Attn
//! layer and a causal one, trainable embedding and norms, through the loss;
//! forward and autodiff backward, op by op and with fused attention, against
//! the f64 interpreter.
//!
//! Tolerance: `max |gpu - ref| / max |ref| <= 1e-4` per output. Weights are
//! fresh random values in ±[0.05, 0.5) (never zero), ids below the vocabulary,
//! the last target of each row ignored; `WEFT_TEST_SEED` replays.

use std::collections::HashMap;

use rand::SeedableRng;
use rand::rngs::StdRng;
use weft_compiler::kernel::Access;
use weft_compiler::optimize::{OptimizeOptions, optimize};
use weft_compiler::{AttentionKernel, AttentionTiles};
use weft_compiler::{GraphPlanOptions, plan_graph};
use weft_ir::autodiff::{Gradients, checkpoint, differentiate, trainable_parameters};
use weft_ir::graph::{Op, ValidGraph};
use weft_ir::interp::{Tensor, run};
use weft_ir::model::{LlamaConfig, ModelGraphOptions, build_llama_graph};
use weft_runtime::testing::gpu;
use weft_runtime::{Executor, HostValues};

#[path = "../../ir/tests/support/llama.rs"]
mod llama;
mod support;

use support::model::{self, assert_close};

fn rng() -> StdRng {
    let seed = std::env::var("WEFT_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    eprintln!("seed {seed} (rerun with WEFT_TEST_SEED={seed})");
    StdRng::seed_from_u64(seed)
}

/// The model with its loss, LoRA on q, v and o, embedding and norms trainable.
fn training_graph(config: &LlamaConfig, batch: usize, t: usize) -> ValidGraph {
    let opts = ModelGraphOptions {
        lora: Some(llama::lora()),
        train_embed: true,
        train_norm: true,
        loss: true,
        ..ModelGraphOptions::new(batch, t)
    };
    build_llama_graph(config, Some(&llama::schedule(t)), &opts).unwrap()
}

/// `graph` differentiated with respect to `reference`'s trainable parameters.
fn step(graph: &ValidGraph, reference: &ValidGraph) -> Gradients {
    let trainable = trainable_parameters(reference);
    differentiate(graph, &trainable.iter().map(String::as_str).collect::<Vec<_>>()).unwrap()
}

/// The same random values for every leaf, typed for the GPU and as f64 tensors.
fn inputs(
    graph: &ValidGraph,
    config: &LlamaConfig,
    t: usize,
    rng: &mut StdRng,
) -> (HashMap<String, HostValues>, HashMap<String, Tensor>) {
    model::inputs(graph, config, t, rng, |_, rng| model::weight(rng))
}

/// No buffer of the plan holds `T × T` values.
fn assert_no_square_buffers(plan: &weft_compiler::KernelPlan, t: usize) {
    for buffer in plan.buffers.values() {
        assert!(!buffer.shape.ends_with(&[t, t]), "buffer {} has shape {:?}", buffer.name, buffer.shape);
    }
}

fn count(graph: &ValidGraph, pred: impl Fn(&Op) -> bool) -> usize {
    graph.node_ids().filter(|&id| pred(&graph.node(id).op)).count()
}

#[test]
fn a_two_layer_llama_forward_and_backward_match_the_interpreter_on_the_gpu() {
    let mut rng = rng();
    let (batch, t) = (2, 16);
    let config = llama::tiny_config(false);
    let forward = training_graph(&config, batch, t);
    let grads = step(&forward, &forward);
    let Some(gpu) = gpu() else { return };
    let plan = plan_graph(&grads.graph, &gpu.plan_options()).unwrap();
    let (gpu_inputs, ref_inputs) = inputs(&grads.graph, &config, t, &mut rng);
    let got = Executor::new(gpu).run(&plan, &gpu_inputs).unwrap();
    let want = run(&grads.graph, &ref_inputs).unwrap();
    let trainable = trainable_parameters(&forward).len();
    assert_eq!(want.len(), 2 + trainable, "logits, loss and one gradient per trainable parameter");
    assert_close(&got, &want);
}

/// The optimizer fuses each layer's attention (head ranges and all), and the
/// op-by-op plan runs the fused forward kernels: no buffer holds T×T scores,
/// and the logits are the interpreter's.
#[test]
fn the_optimized_model_runs_fused_attention_without_t_squared_buffers() {
    let mut rng = rng();
    let (batch, t) = (2, 32);
    let config = llama::tiny_config(true);
    let opts = ModelGraphOptions { lora: Some(llama::lora()), ..ModelGraphOptions::new(batch, t) };
    let reference = build_llama_graph(&config, Some(&llama::schedule(t)), &opts).unwrap();
    let optimized = optimize(&reference, &OptimizeOptions::default()).unwrap();
    let fused = count(&optimized.graph, |op| matches!(op, Op::FusedAttention { .. }));
    assert_eq!(fused, config.num_hidden_layers, "{}", optimized.report);
    assert_eq!(count(&optimized.graph, |op| matches!(op, Op::Attention { .. })), 0, "{}", optimized.report);
    // At this size every LoRA path (q, v, o of both layers) folds into its weight.
    assert_eq!(optimized.report.fired("lora-fold"), 3 * config.num_hidden_layers, "{}", optimized.report);

    let Some(gpu) = gpu() else { return };
    let plan = plan_graph(&optimized.graph, &gpu.plan_options()).unwrap();
    assert_no_square_buffers(&plan, t);
    let (gpu_inputs, ref_inputs) = inputs(&reference, &config, t, &mut rng);
    let got = Executor::new(gpu).run(&plan, &gpu_inputs).unwrap();
    let want = run(&reference, &ref_inputs).unwrap();
    assert_close(&got, &want);
}

/// The training step's graph: the optimized forward, differentiated. Each
/// layer's attention gradient is one fused backward pass (three gradient nodes
/// planned together), so no buffer anywhere holds T×T values, and the loss and
/// every gradient are the interpreter's on the unoptimized graph.
#[test]
fn the_fused_training_graph_has_no_t_squared_buffers_and_matches() {
    let mut rng = rng();
    let (batch, t) = (2, 32);
    let config = llama::tiny_config(false);
    let reference = training_graph(&config, batch, t);
    // RoPE folded into the fused attention too: the whole model runs those kernels.
    let training = OptimizeOptions { training: true, rope_on_load: true, ..OptimizeOptions::default() };
    let optimized = optimize(&reference, &training).unwrap();
    assert_eq!(optimized.report.fired("lora-fold"), 0, "{}", optimized.report);
    let optimized = optimized.graph;
    let fused_step = step(&optimized, &reference);
    let unfused_step = step(&reference, &reference);
    let grads = count(&fused_step.graph, |op| matches!(op, Op::FusedAttentionGrad { .. }));
    assert_eq!(grads, 3 * config.num_hidden_layers);
    // RoPE happens inside the fused kernels, on load and on the dq/dk store.
    assert_eq!(count(&fused_step.graph, |op| matches!(op, Op::Rope { .. })), 0);

    let Some(gpu) = gpu() else { return };
    let opts = gpu.plan_options();
    // Other tiles, rows and kernels for the forward and the backward than the
    // defaults, as `weft tune` may choose them (the subgroup kernels run where
    // the device has them).
    let tiles = |block_q, block_k, rows_per_invocation, kernel| AttentionTiles {
        block_q,
        block_k,
        rows_per_invocation,
        rows_head_dim: None,
        kernel,
    };
    let tuned = GraphPlanOptions {
        attention_forward: tiles(16, 32, 1, AttentionKernel::Lanes),
        attention_backward: tiles(32, 16, 2, AttentionKernel::Subgroup),
        ..opts.clone()
    };
    let (gpu_inputs, ref_inputs) = inputs(&unfused_step.graph, &config, t, &mut rng);
    let want = run(&unfused_step.graph, &ref_inputs).unwrap();
    let mut executor = Executor::new(gpu);
    for opts in [opts, tuned] {
        let plan = plan_graph(&fused_step.graph, &opts).unwrap();
        assert_no_square_buffers(&plan, t);
        // The backward reads each forward's saved log-sum-exp: one forward pass per layer.
        let forwards = plan.kernels.iter().filter(|k| k.name.starts_with("attn_fwd_")).count();
        assert_eq!(
            forwards,
            config.num_hidden_layers,
            "{:?}",
            plan.kernels.iter().map(|k| &k.name).collect::<Vec<_>>()
        );
        let got = executor.run(&plan, &gpu_inputs).unwrap();
        assert_close(&got, &want);
    }
}

/// Gradient checkpointing on the GPU: the fused training step without a
/// logits output, rebuilt so that its backward pass recomputes each layer,
/// gives the interpreter's loss and gradients (of the plain, unfused step).
/// With the logits read by nothing after the loss's gradient, that gradient
/// overwrites them: its kernel binds one read-write buffer for both.
#[test]
fn a_checkpointed_training_step_with_the_loss_gradient_in_place_matches_the_interpreter() {
    let mut rng = rng();
    let (batch, t) = (2, 32);
    let config = llama::tiny_config(false);
    let opts = ModelGraphOptions {
        lora: Some(llama::lora()),
        train_embed: true,
        train_norm: true,
        loss: true,
        logits_output: false,
        ..ModelGraphOptions::new(batch, t)
    };
    let reference = build_llama_graph(&config, Some(&llama::schedule(t)), &opts).unwrap();
    let training = OptimizeOptions { training: true, ..OptimizeOptions::default() };
    let optimized = optimize(&reference, &training).unwrap().graph;
    let (checkpointed, report) = checkpoint(step(&optimized, &reference), optimized.len()).unwrap();
    assert!(report.recomputed > 0, "{report:?}");
    // The recomputed forward includes each layer's fused attention.
    let forwards = count(&checkpointed.graph, |op| matches!(op, Op::FusedAttention { .. }));
    assert_eq!(forwards, 2 * config.num_hidden_layers);
    let unfused_step = step(&reference, &reference);

    let Some(gpu) = gpu() else { return };
    let plan = plan_graph(&checkpointed.graph, &gpu.plan_options()).unwrap();
    assert_no_square_buffers(&plan, t);
    let loss_grad = plan.kernels.iter().find(|k| k.name.contains("cross_entropy_grad_rows")).unwrap();
    let access: Vec<Access> = loss_grad.bindings.iter().map(|b| b.access).collect();
    assert_eq!(
        access,
        [Access::ReadWrite, Access::Read, Access::Read],
        "dlogits over the logits, targets, weight"
    );
    let (gpu_inputs, ref_inputs) = inputs(&unfused_step.graph, &config, t, &mut rng);
    let want = run(&unfused_step.graph, &ref_inputs).unwrap();
    let got = Executor::new(gpu).run(&plan, &gpu_inputs).unwrap();
    assert_eq!(got.len(), want.len());
    assert_close(&got, &want);
}
