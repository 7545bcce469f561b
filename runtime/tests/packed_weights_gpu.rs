//! Frozen weights stored on the device in 16 bits (`GraphPlanOptions::leaf_storage`):
//! bf16 and f16 buffers that the kernels widen on load.
//!
//! The weights are fresh random values that are exactly bf16 or f16 (as a
//! checkpoint saved in those types holds them, widened to f32 on load), so
//! packing changes no value: a plan with packed weights must give the
//! interpreter's results within `max |gpu - ref| / max |ref| <= 1e-4`, and
//! the very bits of the same plan with f32 weights. `WEFT_TEST_SEED` replays.

use std::collections::{BTreeMap, HashMap};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use weft_compiler::optimize::{OptimizeOptions, optimize};
use weft_compiler::{DeviceLimits, ElemType, GraphPlanOptions, KernelPlan, plan_graph};
use weft_ir::autodiff::{differentiate, trainable_parameters};
use weft_ir::graph::{Op, ValidGraph};
use weft_ir::interp::{Tensor, run};
use weft_ir::model::{LlamaConfig, ModelGraphOptions, build_llama_graph};
use weft_runtime::io::{bf16_to_f32, f16_to_f32};
use weft_runtime::testing::executor;
use weft_runtime::{Executor, HostValues, RuntimeError, exact_storage};

#[path = "../../ir/tests/support/llama.rs"]
mod llama;
mod support;

use support::model::{self, assert_close};

fn rng() -> StdRng {
    let seed = std::env::var("WEFT_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    eprintln!("seed {seed} (rerun with WEFT_TEST_SEED={seed})");
    StdRng::seed_from_u64(seed)
}

/// A random value in ±[0.0625, 0.5) that is exactly a 16-bit float of `elem`.
fn sixteen_bit(rng: &mut StdRng, elem: ElemType) -> f32 {
    let sign: u16 = if rng.random_bool(0.5) { 0x8000 } else { 0 };
    match elem {
        // Exponents 2^-4 ..= 2^-2, 7 random mantissa bits.
        ElemType::Bf16 => {
            bf16_to_f32(sign | (rng.random_range(123u16..=125) << 7) | rng.random_range(0..128))
        }
        // Exponents 2^-4 ..= 2^-2, 10 random mantissa bits.
        _ => f16_to_f32(sign | (rng.random_range(11u16..=13) << 10) | rng.random_range(0..1024)),
    }
}

/// A LoRA-only training graph: the embedding, norms and every projection frozen.
fn lora_training_graph(config: &LlamaConfig, batch: usize, t: usize) -> ValidGraph {
    let opts =
        ModelGraphOptions { lora: Some(llama::lora()), loss: true, ..ModelGraphOptions::new(batch, t) };
    build_llama_graph(config, Some(&llama::schedule(t)), &opts).unwrap()
}

/// An inference graph of the tiny tied model with LoRA, and its LoRA factors' names.
fn lora_inference_graph(batch: usize, t: usize) -> (LlamaConfig, ValidGraph, Vec<String>) {
    let config = llama::tiny_config(true);
    let opts = ModelGraphOptions { lora: Some(llama::lora()), ..ModelGraphOptions::new(batch, t) };
    let graph = build_llama_graph(&config, Some(&llama::schedule(t)), &opts).unwrap();
    let lora =
        graph.leaves().map(|(_, name)| name.to_string()).filter(|name| name.contains("lora_")).collect();
    (config, graph, lora)
}

/// Every frozen float leaf (parameters other than `trained`, not the loss seed), alternately bf16 and f16.
fn frozen_storage(graph: &ValidGraph, trained: &[String]) -> BTreeMap<String, ElemType> {
    let mut frozen: Vec<&str> = graph
        .leaves()
        .filter(|&(id, name)| {
            matches!(graph.node(id).op, Op::Parameter { .. }) && !trained.iter().any(|t| t == name)
        })
        .map(|(_, name)| name)
        .collect();
    frozen.sort();
    frozen
        .into_iter()
        .enumerate()
        .map(|(i, name)| (name.to_string(), if i % 2 == 0 { ElemType::Bf16 } else { ElemType::F16 }))
        .collect()
}

/// Random inputs for every leaf of `graph`: the packed ones exact in their
/// type, the rest any f32; ids below the vocabulary.
fn inputs(
    graph: &ValidGraph,
    storage: &BTreeMap<String, ElemType>,
    config: &LlamaConfig,
    t: usize,
    rng: &mut StdRng,
) -> (HashMap<String, HostValues>, HashMap<String, Tensor>) {
    model::inputs(graph, config, t, rng, |name, rng| match storage.get(name) {
        Some(&elem) => sixteen_bit(rng, elem),
        None => model::weight(rng),
    })
}

/// Each packed leaf's buffer holds its type, at half the bytes of f32 (rounded up to a word).
fn assert_packed(plan: &KernelPlan, storage: &BTreeMap<String, ElemType>) {
    for (name, &elem) in storage {
        let decl = &plan.buffers[name];
        let elems: u64 = decl.shape.iter().map(|&d| d as u64).product();
        assert_eq!(decl.elem, elem, "{name}");
        assert_eq!(decl.bytes, elems.div_ceil(2) * 4, "{name}");
    }
}

/// Runs `graph` planned with `opts`, its frozen weights packed and as f32:
/// the packed plan matches the interpreter and the f32 plan bit for bit.
fn check_packed_against_f32(
    executor: &mut Executor,
    graph: &ValidGraph,
    reference: &ValidGraph,
    opts: &GraphPlanOptions,
    storage: &BTreeMap<String, ElemType>,
    gpu_inputs: &HashMap<String, HostValues>,
    ref_inputs: &HashMap<String, Tensor>,
) {
    let packed_opts = GraphPlanOptions { leaf_storage: storage.clone(), ..opts.clone() };
    let packed_plan = plan_graph(graph, &packed_opts).unwrap();
    assert_packed(&packed_plan, storage);
    let f32_plan = plan_graph(graph, opts).unwrap();
    let saved = f32_plan.buffers.values().map(|b| b.bytes).sum::<u64>()
        - packed_plan.buffers.values().map(|b| b.bytes).sum::<u64>();
    eprintln!("{} bytes saved by packing {} leaves", saved, storage.len());
    assert!(saved > 0);

    let packed = executor.run(&packed_plan, gpu_inputs).unwrap();
    let plain = executor.run(&f32_plan, gpu_inputs).unwrap();
    let want = run(reference, ref_inputs).unwrap();
    assert_close(&packed, &want);
    for (name, values) in &plain {
        let same = values.iter().zip(&packed[name]).all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(same, "`{name}` differs between the packed and the f32 plan");
    }
}

/// The fused LoRA training step (attention fused, elementwise chains fused)
/// with every frozen weight packed: the embedding lookup, the norms, the
/// projections forward and backward and the LM head read 16-bit buffers.
#[test]
fn a_lora_training_step_with_packed_frozen_weights_matches_the_interpreter_and_the_f32_plan() {
    let mut rng = rng();
    let (batch, t) = (2, 32);
    let config = llama::tiny_config(false);
    let reference = lora_training_graph(&config, batch, t);
    let trained = trainable_parameters(&reference);
    let wrt: Vec<&str> = trained.iter().map(String::as_str).collect();
    let training = OptimizeOptions { training: true, ..OptimizeOptions::default() };
    let optimized = optimize(&reference, &training).unwrap().graph;
    let fused_step = differentiate(&optimized, &wrt).unwrap();
    let unfused_step = differentiate(&reference, &wrt).unwrap();
    let storage = frozen_storage(&fused_step.graph, &trained);
    assert!(storage.contains_key("model.embed_tokens.weight") && storage.contains_key("lm_head.weight"));

    let Some(mut executor) = executor() else { return };
    let (gpu_inputs, ref_inputs) = inputs(&unfused_step.graph, &storage, &config, t, &mut rng);
    let opts = executor.gpu().plan_options();
    check_packed_against_f32(
        &mut executor,
        &fused_step.graph,
        &unfused_step.graph,
        &opts,
        &storage,
        &gpu_inputs,
        &ref_inputs,
    );
}

/// The unfused step op by op, with 512-byte bindings: packed weights larger
/// than one binding are read across several. (An odd count, whose last word
/// is half filled, is `uploading_a_value_the_packed_type_cannot_hold_is_an_error`'s
/// three weights.)
#[test]
fn packed_weights_split_across_bindings_match_the_interpreter() {
    let mut rng = rng();
    let (batch, t) = (1, 16);
    let config = llama::tiny_config(true);
    let reference = lora_training_graph(&config, batch, t);
    let trained = trainable_parameters(&reference);
    let wrt: Vec<&str> = trained.iter().map(String::as_str).collect();
    let step = differentiate(&reference, &wrt).unwrap();
    let storage = frozen_storage(&step.graph, &trained);
    // 11 × 16 embedding values: 176 bf16s in 352 bytes, within one binding;
    // the 16 × 24 MLP weights (768 bytes) take two.
    assert!(storage.contains_key("model.layers.0.mlp.up_proj.weight"));

    let Some(mut executor) = executor() else { return };
    let device = executor.gpu().plan_options();
    let opts = GraphPlanOptions {
        fuse_elementwise: false,
        ..GraphPlanOptions::for_device(DeviceLimits { max_storage_binding: 512, ..device.limits })
    };
    let (gpu_inputs, ref_inputs) = inputs(&step.graph, &storage, &config, t, &mut rng);
    check_packed_against_f32(
        &mut executor,
        &step.graph,
        &step.graph,
        &opts,
        &storage,
        &gpu_inputs,
        &ref_inputs,
    );
}

/// An inference graph whose LoRA folds into its weights (`W + s·B·A`) reads
/// the packed `W` in that elementwise kernel.
#[test]
fn an_inference_graph_with_folded_lora_reads_packed_weights() {
    let mut rng = rng();
    let (config, reference, lora) = lora_inference_graph(2, 32);
    let t = 32;
    let optimized = optimize(&reference, &OptimizeOptions::default()).unwrap();
    assert!(optimized.report.fired("lora-fold") > 0, "{}", optimized.report);
    let storage = frozen_storage(&optimized.graph, &lora);

    let Some(mut executor) = executor() else { return };
    let (gpu_inputs, ref_inputs) = inputs(&reference, &storage, &config, t, &mut rng);
    let opts = executor.gpu().plan_options();
    check_packed_against_f32(
        &mut executor,
        &optimized.graph,
        &reference,
        &opts,
        &storage,
        &gpu_inputs,
        &ref_inputs,
    );
}

/// What cannot be packed is refused by name, before anything runs.
#[test]
fn packing_what_kernels_write_or_fused_attention_reads_is_an_error() {
    let config = llama::tiny_config(false);
    let graph = lora_training_graph(&config, 1, 16);
    let opts = GraphPlanOptions::default();

    // A trained parameter: AdamW writes it.
    let trained = trainable_parameters(&graph);
    let name = trained[0].clone();
    let wrt: Vec<&str> = trained.iter().map(String::as_str).collect();
    let step = differentiate(&graph, &wrt).unwrap();
    let mut plan = plan_graph(
        &step.graph,
        &GraphPlanOptions { leaf_storage: BTreeMap::from([(name.clone(), ElemType::Bf16)]), ..opts.clone() },
    )
    .unwrap();
    let grads = &step.grads;
    let err =
        weft_compiler::plan_update(&mut plan, &step.graph, grads, &Default::default(), &opts).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("invalid plan options: parameter `{name}` is trained, so it must be stored as f32, not bf16")
    );

    // A name the graph does not have is left out: one map serves a prefill and its decoding step.
    let other = GraphPlanOptions {
        leaf_storage: BTreeMap::from([("no.such.weight".to_string(), ElemType::F16)]),
        ..opts.clone()
    };
    assert_eq!(plan_graph(&graph, &other).unwrap(), plan_graph(&graph, &opts).unwrap());

    // An integer leaf, a type that is no storage type.
    for (leaf, elem, why) in [
        ("input_ids", ElemType::Bf16, "`input_ids` is i32; only f32 leaves may be stored as bf16"),
        (
            "lm_head.weight",
            ElemType::I32,
            "leaf `lm_head.weight` cannot be stored as i32: only f32, bf16 and f16 are storage types",
        ),
    ] {
        let opts =
            GraphPlanOptions { leaf_storage: BTreeMap::from([(leaf.to_string(), elem)]), ..opts.clone() };
        let err = plan_graph(&graph, &opts).unwrap_err();
        assert_eq!(err.to_string(), format!("invalid plan options: {why}"));
    }
}

/// The same error when fused attention would read a packed input.
#[test]
fn fused_attention_refuses_a_packed_operand() {
    let text = "\
(graph attn
  (%0 (input q) f32[1, 2, 16, 8])
  (%1 (input k) f32[1, 2, 16, 8])
  (%2 (input v) f32[1, 2, 16, 8])
  (%3 (fused-attention %0 %1 %2 :masks ((0 2 \"causal\")) :scale 0.35355339059327373) f32[1, 2, 16, 8])
  (output o %3))";
    let file = weft_ir::SourceFile::new("attn.sexpr", text);
    let graph = weft_ir::graph::parse_sexpr(&file).unwrap().validate().unwrap();
    let opts = GraphPlanOptions {
        leaf_storage: BTreeMap::from([("k".to_string(), ElemType::F16)]),
        ..Default::default()
    };
    let err = plan_graph(&graph, &opts).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid plan options: fused attention reads `k`, stored as f16: its kernels read f32 only"
    );
}

/// `y = x * w` over three values: a weight whose packed buffer's last word is half filled.
fn scale_graph() -> ValidGraph {
    let text = "\
(graph scale
  (%0 (input x) f32[3])
  (%1 (param w) f32[3])
  (%2 (mul %0 %1) f32[3])
  (output y %2))";
    let file = weft_ir::SourceFile::new("scale.sexpr", text);
    weft_ir::graph::parse_sexpr(&file).unwrap().validate().unwrap()
}

/// Packing never rounds: a value that is not exactly of the buffer's type is refused on upload.
#[test]
fn uploading_a_value_the_packed_type_cannot_hold_is_an_error() {
    assert_eq!(exact_storage(&[0.5, -0.25, 3.0]), ElemType::Bf16);
    assert_eq!(exact_storage(&[0.5, 1.0 + 2f32.powi(-10)]), ElemType::F16);
    assert_eq!(exact_storage(&[0.1]), ElemType::F32);

    let graph = scale_graph();
    let Some(mut executor) = executor() else { return };
    let opts = GraphPlanOptions {
        leaf_storage: BTreeMap::from([("w".to_string(), ElemType::Bf16)]),
        ..executor.gpu().plan_options()
    };
    let plan = plan_graph(&graph, &opts).unwrap();
    let inputs = |w: Vec<f32>| {
        HashMap::from([
            ("x".to_string(), HostValues::F32(vec![1.5, -2.0, 4.0])),
            ("w".to_string(), HostValues::F32(w)),
        ])
    };
    let got = executor.run(&plan, &inputs(vec![0.5, -0.75, 3.0])).unwrap();
    assert_eq!(got["y"], [0.75, 1.5, 12.0]);
    let err = executor.run(&plan, &inputs(vec![0.5, 0.1, 3.0])).unwrap_err();
    assert!(matches!(err, RuntimeError::InputNotExact { position: 1, elem: ElemType::Bf16, .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "plan input `w` is stored as bf16, but its value 0.1 at position 1 is not exactly a bf16; store it as f32"
    );
}

/// Weights the host keeps in 16 bits (`HostValues::exact`, as `eval`,
/// `forward` and `generate` load a bf16 or f16 checkpoint) upload as they are
/// to packed buffers and widen exactly into f32 ones: every output is the bits
/// of the same plan fed f32 values.
#[test]
fn sixteen_bit_host_values_upload_packed_and_widen_into_f32_buffers() {
    let mut rng = rng();
    let (config, graph, lora) = lora_inference_graph(1, 16);
    let t = 16;
    let storage = frozen_storage(&graph, &lora);
    let (f32_inputs, _) = inputs(&graph, &storage, &config, t, &mut rng);
    // Each packed weight becomes 16-bit bits of its own type; LoRA's random f32 factors stay f32.
    let host: HashMap<String, HostValues> = f32_inputs
        .iter()
        .map(|(name, values)| match values {
            HostValues::F32(v) => (name.clone(), HostValues::exact(v.clone())),
            other => (name.clone(), other.clone()),
        })
        .collect();
    for (name, values) in &host {
        let want = storage.get(name).copied().unwrap_or(values.elem());
        assert_eq!(values.elem(), want, "{name} kept as {}", values.type_name());
    }

    let Some(mut executor) = executor() else { return };
    let device = executor.gpu().plan_options();
    for leaf_storage in [storage.clone(), BTreeMap::new()] {
        let plan = plan_graph(&graph, &GraphPlanOptions { leaf_storage, ..device.clone() }).unwrap();
        let from_f32 = executor.run(&plan, &f32_inputs).unwrap();
        let from_16 = executor.run(&plan, &host).unwrap();
        for (name, values) in &from_f32 {
            let same = values.iter().zip(&from_16[name]).all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "`{name}` differs between f32 and 16-bit host values");
        }
    }

    // An odd count fills half of its last word; a 16-bit type is not the other 16-bit type.
    let graph = scale_graph();
    let x = HostValues::F32(vec![1.5, -2.0, 4.0]);
    let w = HostValues::exact(vec![0.5, -0.75, 3.0]);
    assert!(matches!(w, HostValues::Bf16(_)), "{w:?}");
    for elem in [ElemType::Bf16, ElemType::F32] {
        let leaf_storage = BTreeMap::from([("w".to_string(), elem)]);
        let plan = plan_graph(&graph, &GraphPlanOptions { leaf_storage, ..device.clone() }).unwrap();
        let inputs = HashMap::from([("x".to_string(), x.clone()), ("w".to_string(), w.clone())]);
        assert_eq!(executor.run(&plan, &inputs).unwrap()["y"], [0.75, 1.5, 12.0], "{elem}");
    }
    let leaf_storage = BTreeMap::from([("w".to_string(), ElemType::F16)]);
    let plan = plan_graph(&graph, &GraphPlanOptions { leaf_storage, ..device }).unwrap();
    let inputs = HashMap::from([("x".to_string(), x), ("w".to_string(), w)]);
    let err = executor.run(&plan, &inputs).unwrap_err();
    assert_eq!(err.to_string(), "plan input `w` holds f16 values, but bf16 values were given");
}
