//! The model on the GPU: two LLaMA layers with GQA, LoRA, an S²-Attn
//! layer and a causal one, trainable embedding and norms, through the loss;
//! forward and autodiff backward op by op, against the f64 interpreter.
//!
//! Tolerance: `max |gpu - ref| / max |ref| <= 1e-4` per output. Weights are
//! fresh random values in ±[0.05, 0.5) (never zero); `WEFT_TEST_SEED` replays.

use std::collections::HashMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use weft_compiler::codegen::simple::plan_graph;
use weft_compiler::optimize::{OptimizeOptions, optimize};
use weft_ir::autodiff::{differentiate, trainable_parameters};
use weft_ir::graph::Op;
use weft_ir::interp::{Tensor, run};
use weft_ir::model::{ModelGraphOptions, build_llama_graph};

#[path = "../../ir/tests/support/llama.rs"]
mod llama;
use weft_runtime::{Executor, Gpu, HostValues};

const TOLERANCE: f64 = 1e-4;

#[test]
fn a_two_layer_llama_forward_and_backward_match_the_interpreter_on_the_gpu() {
    let seed = std::env::var("WEFT_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    eprintln!("seed {seed} (rerun with WEFT_TEST_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);
    let (batch, t) = (2, 16);
    let config = llama::tiny_config(false);
    let opts = ModelGraphOptions {
        lora: Some(llama::lora()),
        train_embed: true,
        train_norm: true,
        loss: true,
        ..ModelGraphOptions::new(batch, t)
    };
    let forward = build_llama_graph(&config, Some(&llama::schedule(t)), &opts).unwrap();
    let trainable = trainable_parameters(&forward);
    let wrt: Vec<&str> = trainable.iter().map(String::as_str).collect();
    let grads = differentiate(&forward, &wrt).unwrap();

    let gpu = Gpu::new().expect("a GPU adapter (install mesa-vulkan-drivers on machines without a GPU)");
    let limits = gpu.limits();
    let plan_opts = limits.simple_plan_options();
    let plan = plan_graph(&grads.graph, &plan_opts).unwrap();
    let mut executor = Executor::new(gpu);

    let mut gpu_inputs = HashMap::new();
    let mut ref_inputs = HashMap::new();
    for (id, name) in grads.graph.leaves() {
        let ty = &grads.graph.node(id).ty;
        let count: usize = ty.shape.iter().product();
        let values: Vec<f64> = if ty.dtype.is_float() {
            (0..count)
                .map(|_| rng.random_range(0.05..0.5) * if rng.random_bool(0.5) { 1.0 } else { -1.0 })
                .collect()
        } else if name == "targets" {
            (0..count)
                .map(|i| if i % t == t - 1 { -100.0 } else { rng.random_range(0..config.vocab_size) as f64 })
                .collect()
        } else {
            (0..count).map(|_| rng.random_range(0..config.vocab_size) as f64).collect()
        };
        let host = if ty.dtype.is_float() {
            HostValues::F32(values.iter().map(|&v| v as f32).collect())
        } else {
            HostValues::I64(values.iter().map(|&v| v as i64).collect())
        };
        // The interpreter sees exactly the f32 values the GPU does.
        let exact: Vec<f64> =
            values.iter().map(|&v| if ty.dtype.is_float() { f64::from(v as f32) } else { v }).collect();
        gpu_inputs.insert(name.to_string(), host);
        ref_inputs.insert(name.to_string(), Tensor::new(ty.shape.clone(), exact).unwrap());
    }
    let got = executor.run_with(&plan, &gpu_inputs).unwrap();
    let want = run(&grads.graph, &ref_inputs).unwrap();
    assert_eq!(want.len(), 2 + trainable.len(), "logits, loss and one gradient per trainable parameter");
    let mut failures = Vec::new();
    for (name, expected) in &want {
        let data = &got[name];
        let actual =
            Tensor::new(expected.shape().to_vec(), data.iter().map(|&v| f64::from(v)).collect()).unwrap();
        let err = actual.max_rel_error(expected);
        eprintln!("{name}: {err:.2e}");
        if err.is_nan() || err > TOLERANCE {
            failures.push(format!("{name}: {err:.3e}"));
        }
    }
    assert!(
        failures.is_empty(),
        "relative error above {TOLERANCE:e} (seed {seed}):\n{}",
        failures.join("\n")
    );
}

/// The optimizer fuses each layer's attention (head ranges and all), and the
/// op-by-op plan runs the fused forward kernels: no buffer holds T×T scores,
/// and the logits are the interpreter's.
#[test]
fn the_optimized_model_runs_fused_attention_without_t_squared_buffers() {
    let seed = std::env::var("WEFT_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    eprintln!("seed {seed} (rerun with WEFT_TEST_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);
    let (batch, t) = (2, 32);
    let config = llama::tiny_config(true);
    let opts = ModelGraphOptions { lora: Some(llama::lora()), ..ModelGraphOptions::new(batch, t) };
    let reference = build_llama_graph(&config, Some(&llama::schedule(t)), &opts).unwrap();
    let optimized = optimize(&reference, &OptimizeOptions::default()).unwrap();
    let fused = optimized
        .graph
        .node_ids()
        .filter(|&id| matches!(optimized.graph.node(id).op, Op::FusedAttention { .. }));
    assert_eq!(fused.count(), config.num_hidden_layers, "{}", optimized.report);
    let dense =
        optimized.graph.node_ids().filter(|&id| matches!(optimized.graph.node(id).op, Op::Attention { .. }));
    assert_eq!(dense.count(), 0, "{}", optimized.report);

    let gpu = Gpu::new().expect("a GPU adapter (install mesa-vulkan-drivers on machines without a GPU)");
    let plan = plan_graph(&optimized.graph, &gpu.limits().simple_plan_options()).unwrap();
    for buffer in plan.buffers.values() {
        assert!(!buffer.shape.ends_with(&[t, t]), "buffer {} has shape {:?}", buffer.name, buffer.shape);
    }
    let mut executor = Executor::new(gpu);
    let mut gpu_inputs = HashMap::new();
    let mut ref_inputs = HashMap::new();
    for (id, name) in reference.leaves() {
        let ty = &reference.node(id).ty;
        let count: usize = ty.shape.iter().product();
        if ty.dtype.is_float() {
            let values: Vec<f32> = (0..count).map(|_| rng.random_range(-0.5f32..0.5)).collect();
            ref_inputs.insert(
                name.to_string(),
                Tensor::new(ty.shape.clone(), values.iter().map(|&v| f64::from(v)).collect()).unwrap(),
            );
            gpu_inputs.insert(name.to_string(), HostValues::F32(values));
        } else {
            let ids: Vec<i64> = (0..count).map(|_| rng.random_range(0..config.vocab_size as i64)).collect();
            ref_inputs.insert(
                name.to_string(),
                Tensor::new(ty.shape.clone(), ids.iter().map(|&v| v as f64).collect()).unwrap(),
            );
            gpu_inputs.insert(name.to_string(), HostValues::I64(ids));
        }
    }
    let got = executor.run_with(&plan, &gpu_inputs).unwrap();
    let want = run(&reference, &ref_inputs).unwrap();
    let logits =
        Tensor::new(want["logits"].shape().to_vec(), got["logits"].iter().map(|&v| f64::from(v)).collect())
            .unwrap();
    let err = logits.max_rel_error(&want["logits"]);
    assert!(err <= TOLERANCE, "logits: relative error {err:e} (seed {seed})");
}

/// The training step's graph: the optimized forward, differentiated. Each
/// layer's attention gradient is one fused backward pass (three gradient nodes
/// planned together), so no buffer anywhere holds T×T values, and the loss and
/// every gradient are the interpreter's on the unoptimized graph.
#[test]
fn the_fused_training_graph_has_no_t_squared_buffers_and_matches() {
    let seed = std::env::var("WEFT_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    eprintln!("seed {seed} (rerun with WEFT_TEST_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);
    let (batch, t) = (2, 32);
    let config = llama::tiny_config(false);
    let opts = ModelGraphOptions {
        lora: Some(llama::lora()),
        train_embed: true,
        train_norm: true,
        loss: true,
        ..ModelGraphOptions::new(batch, t)
    };
    let reference = build_llama_graph(&config, Some(&llama::schedule(t)), &opts).unwrap();
    let trainable = trainable_parameters(&reference);
    let wrt: Vec<&str> = trainable.iter().map(String::as_str).collect();
    let optimized = optimize(&reference, &OptimizeOptions::default()).unwrap().graph;
    let fused_step = differentiate(&optimized, &wrt).unwrap();
    let unfused_step = differentiate(&reference, &wrt).unwrap();
    let grads = fused_step
        .graph
        .node_ids()
        .filter(|&id| matches!(fused_step.graph.node(id).op, Op::FusedAttentionGrad { .. }))
        .count();
    assert_eq!(grads, 3 * config.num_hidden_layers);

    let gpu = Gpu::new().expect("a GPU adapter (install mesa-vulkan-drivers on machines without a GPU)");
    let plan = plan_graph(&fused_step.graph, &gpu.limits().simple_plan_options()).unwrap();
    for buffer in plan.buffers.values() {
        assert!(!buffer.shape.ends_with(&[t, t]), "buffer {} has shape {:?}", buffer.name, buffer.shape);
    }
    let mut executor = Executor::new(gpu);
    let mut gpu_inputs = HashMap::new();
    let mut ref_inputs = HashMap::new();
    for (id, name) in unfused_step.graph.leaves() {
        let ty = &unfused_step.graph.node(id).ty;
        let count: usize = ty.shape.iter().product();
        let values: Vec<f64> = if ty.dtype.is_float() {
            (0..count).map(|_| f64::from(rng.random_range(-0.5f32..0.5))).collect()
        } else if name == "targets" {
            (0..count)
                .map(|i| if i % t == t - 1 { -100.0 } else { rng.random_range(0..config.vocab_size) as f64 })
                .collect()
        } else {
            (0..count).map(|_| rng.random_range(0..config.vocab_size) as f64).collect()
        };
        let host = if ty.dtype.is_float() {
            HostValues::F32(values.iter().map(|&v| v as f32).collect())
        } else {
            HostValues::I64(values.iter().map(|&v| v as i64).collect())
        };
        gpu_inputs.insert(name.to_string(), host);
        ref_inputs.insert(name.to_string(), Tensor::new(ty.shape.clone(), values).unwrap());
    }
    let got = executor.run_with(&plan, &gpu_inputs).unwrap();
    let want = run(&unfused_step.graph, &ref_inputs).unwrap();
    let mut failures = Vec::new();
    for (name, expected) in &want {
        let actual =
            Tensor::new(expected.shape().to_vec(), got[name].iter().map(|&v| f64::from(v)).collect())
                .unwrap();
        let err = actual.max_rel_error(expected);
        eprintln!("{name}: {err:.2e}");
        if err.is_nan() || err > TOLERANCE {
            failures.push(format!("{name}: {err:.3e}"));
        }
    }
    assert!(
        failures.is_empty(),
        "relative error above {TOLERANCE:e} (seed {seed}):\n{}",
        failures.join("\n")
    );
}
