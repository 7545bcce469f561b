//! A whole model's depth: every layer of a 32-layer graph, inference or
//! training, fuses its attention. Extraction once priced terms as trees, and a transformer's
//! residual stream, read several times per layer, made those prices grow
//! some 30x per layer until the fused and dense forms of the last layers'
//! attention tied in f64 and the dense one (with its N×N scores) came out.

use weft_compiler::optimize::{OptimizeOptions, optimize};
use weft_ir::graph::Op;
use weft_ir::model::{LlamaConfig, LoraConfig, ModelGraphOptions, build_llama_graph};

#[test]
fn every_layer_of_a_32_layer_graph_fuses_its_attention() {
    let layers = 32;
    let json = format!(
        r#"{{"hidden_size": 64, "intermediate_size": 176, "num_attention_heads": 4,
            "num_key_value_heads": 4, "num_hidden_layers": {layers}, "rms_norm_eps": 1e-5,
            "vocab_size": 256, "max_position_embeddings": 4096, "tie_word_embeddings": false}}"#
    );
    let config = LlamaConfig::from_json_str(&json, "config.json").unwrap();
    let lora = LoraConfig::longlora();
    let opts = ModelGraphOptions {
        lora: Some(lora),
        train_embed: true,
        train_norm: true,
        loss: true,
        ..ModelGraphOptions::new(1, 1024)
    };
    let graph = build_llama_graph(&config, None, &opts).unwrap();
    let optimized =
        optimize(&graph, &OptimizeOptions { training: true, ..OptimizeOptions::default() }).unwrap();
    let count = |pred: fn(&Op) -> bool| {
        optimized.graph.node_ids().filter(|&id| pred(&optimized.graph.node(id).op)).count()
    };
    let report = &optimized.report;
    assert_eq!(report.fired("attention-to-fused"), layers, "{report}");
    assert_eq!(count(|op| matches!(op, Op::FusedAttention { .. })), layers, "{report}");
    assert_eq!(count(|op| matches!(op, Op::Attention { .. })), 0, "{report}");
}
