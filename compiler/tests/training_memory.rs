//! What a training step's plan holds, in bytes: gradient checkpointing keeps
//! fewer activations, the more so the more layers there are, and the loss's
//! gradient overwrites the logits instead of taking a buffer of their size;
//! and no kernel binds more than one storage binding may hold, however large
//! the shared allocations grow. Plans only: nothing runs, so the sizes can be
//! those of a real step.

use weft_compiler::{CompileOptions, DeviceLimits, GraphPlanOptions, KernelPlan, Mode, compile};
use weft_ir::model::{LlamaConfig, LoraConfig, ModelGraphOptions, build_llama_graph};

const T: usize = 512;
const VOCAB: usize = 1024;

fn config(layers: usize) -> LlamaConfig {
    let json = format!(
        r#"{{"hidden_size": 128, "intermediate_size": 352, "num_attention_heads": 4,
            "num_key_value_heads": 4, "num_hidden_layers": {layers}, "rms_norm_eps": 1e-5,
            "vocab_size": {VOCAB}, "max_position_embeddings": 4096, "tie_word_embeddings": false}}"#
    );
    LlamaConfig::from_json_str(&json, "config.json").unwrap()
}

/// The bytes of the plan of a LoRA+ training step of `layers` layers.
fn step_bytes(layers: usize, gradient_checkpointing: bool, in_place_loss_gradient: bool) -> u64 {
    let plan = GraphPlanOptions { in_place_loss_gradient, ..GraphPlanOptions::default() };
    step_plan(layers, gradient_checkpointing, plan).total_bytes()
}

/// The plan of a LoRA+ training step of `layers` layers.
fn step_plan(layers: usize, gradient_checkpointing: bool, plan: GraphPlanOptions) -> KernelPlan {
    let lora = LoraConfig::longlora();
    let opts = ModelGraphOptions {
        lora: Some(lora),
        train_embed: true,
        train_norm: true,
        loss: true,
        logits_output: false,
        ..ModelGraphOptions::new(1, T)
    };
    let graph = build_llama_graph(&config(layers), None, &opts).unwrap();
    let opts = CompileOptions {
        mode: Mode::Training { wrt: Vec::new(), seeds: vec!["loss".to_string()] },
        plan,
        gradient_checkpointing,
        ..CompileOptions::default()
    };
    let compiled = compile(graph, &opts).unwrap();
    assert_eq!(compiled.checkpointing.is_some(), gradient_checkpointing);
    compiled.plan
}

#[test]
fn the_loss_gradient_in_place_saves_a_logits_buffer() {
    let logits = (T * VOCAB * 4) as u64;
    let separate = step_bytes(2, false, false);
    let in_place = step_bytes(2, false, true);
    // Not all of it: later values of the backward pass would have reused
    // part of the gradient's own buffer.
    assert!(separate - in_place >= logits / 2, "{separate} then {in_place} bytes; the logits are {logits}");
}

#[test]
fn gradient_checkpointing_saves_more_bytes_the_more_layers() {
    let saved = |layers| {
        let (plain, checkpointed) = (step_bytes(layers, false, true), step_bytes(layers, true, true));
        eprintln!("{layers} layers: {plain} bytes, checkpointed {checkpointed}");
        assert!(checkpointed < plain, "{layers} layers: {plain} then {checkpointed} bytes");
        plain - checkpointed
    };
    let (two, four) = (saved(2), saved(4));
    // Each layer keeps two [T, hidden] activations instead of all of them.
    let per_layer = (four - two) / 2;
    let activation = (T * 128 * 4) as u64;
    assert!(per_layer >= 4 * activation, "{per_layer} bytes saved per layer");
}

/// A scratch allocation shared by values of several sizes grows to the
/// largest (here the 2 MiB logits, over a 1 MiB storage binding, which the
/// kernels that read them split). A smaller value placed in it later is
/// bound by its own size, not the allocation's, so no binding exceeds the
/// limit: once, every kernel of a shared slot bound the whole slot, and a
/// vocabulary of 32000 at T = 2048 failed on lavapipe (128 MiB bindings).
#[test]
fn no_kernel_binds_more_than_a_storage_binding_of_a_shared_slot() {
    let limits = DeviceLimits { max_storage_binding: 1 << 20, ..DeviceLimits::default() };
    for gradient_checkpointing in [false, true] {
        let plan = step_plan(2, gradient_checkpointing, GraphPlanOptions::for_device(limits));
        assert!(plan.largest_buffer() > limits.max_storage_binding, "the test needs a slot over the limit");
        for kernel in &plan.kernels {
            for binding in &kernel.bindings {
                let bytes = binding.range.map_or(plan.buffers[&binding.buffer].bytes, |(_, size)| size);
                assert!(
                    bytes <= limits.max_storage_binding,
                    "{}: binding {} of `{}` is {bytes} bytes",
                    kernel.name,
                    binding.index,
                    binding.buffer
                );
            }
        }
    }
}
