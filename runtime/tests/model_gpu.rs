//! The issue's model on the GPU: two LLaMA layers with GQA, LoRA, an S²-Attn
//! layer and a causal one, trainable embedding and norms, through the loss;
//! forward and autodiff backward op by op, against the f64 interpreter.
//!
//! Tolerance: `max |gpu - ref| / max |ref| <= 1e-4` per output. Weights are
//! fresh random values in ±[0.05, 0.5) (never zero); `WEFT_TEST_SEED` replays.

use std::collections::HashMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use weft_compiler::codegen::simple::{SimplePlanOptions, plan_graph};
use weft_ir::autodiff::{differentiate, trainable_parameters};
use weft_ir::interp::{Tensor, run};
use weft_ir::model::{LlamaConfig, LoraConfig, ModelGraphOptions, build_llama_graph};
use weft_ir::{Overrides, SourceFile, Spec};
use weft_runtime::{Executor, Gpu, HostValues};

const TOLERANCE: f64 = 1e-4;

fn config() -> LlamaConfig {
    let json = r#"{"hidden_size": 16, "intermediate_size": 24, "num_attention_heads": 4,
        "num_key_value_heads": 2, "num_hidden_layers": 2, "rms_norm_eps": 1e-5, "vocab_size": 13,
        "max_position_embeddings": 64, "rope_theta": 500.0,
        "rope_scaling": {"rope_type": "linear", "factor": 2.0}}"#;
    LlamaConfig::from_json_str(json, "config.json").unwrap()
}

fn schedule(t: usize) -> weft_ir::Schedule {
    let text = r#"
        [defaults]
        seq_len = 16
        n_heads = 4
        n_layers = 2
        [vars]
        G = "N / 4"
        [patterns.s2]
        heads = [{ range = "0..H/2", mask = "causal & groups(G)" }, { range = "H/2..H", mask = "roll(G/2, causal & groups(G))" }]
        [patterns.dense]
        heads = [{ range = "0..H", mask = "causal" }]
        [[layers]]
        range = "0..1"
        pattern = "s2"
        [[layers]]
        range = "1..2"
        pattern = "dense"
    "#;
    let overrides = Overrides { seq_len: Some(t), ..Overrides::default() };
    Spec::parse(SourceFile::new("s2.toml", text)).unwrap().resolve(&overrides).unwrap()
}

#[test]
fn a_two_layer_llama_forward_and_backward_match_the_interpreter_on_the_gpu() {
    let seed = std::env::var("WEFT_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    eprintln!("seed {seed} (rerun with WEFT_TEST_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);
    let (batch, t) = (2, 16);
    let config = config();
    let lora = LoraConfig {
        rank: 2,
        alpha: 8.0,
        target_modules: vec!["q_proj".into(), "v_proj".into(), "o_proj".into()],
    };
    let opts = ModelGraphOptions {
        lora: Some(lora),
        train_embed: true,
        train_norm: true,
        loss: true,
        ..ModelGraphOptions::new(batch, t)
    };
    let forward = build_llama_graph(&config, Some(&schedule(t)), &opts).unwrap();
    let trainable = trainable_parameters(&forward);
    let wrt: Vec<&str> = trainable.iter().map(String::as_str).collect();
    let grads = differentiate(&forward, &wrt).unwrap();

    let gpu = Gpu::new().expect("a GPU adapter (install mesa-vulkan-drivers on machines without a GPU)");
    let limits = gpu.limits();
    let plan_opts = SimplePlanOptions {
        max_storage_binding: limits.max_storage_binding,
        max_buffer_size: limits.max_buffer,
        max_storage_buffers_per_stage: limits.max_storage_buffers_per_stage,
        max_workgroups_per_dimension: limits.max_workgroups_per_dim,
        ..SimplePlanOptions::default()
    };
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
            (0..count).map(|i| if i % t == t - 1 { -100.0 } else { rng.random_range(0..13) as f64 }).collect()
        } else {
            (0..count).map(|_| rng.random_range(0..13) as f64).collect()
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
