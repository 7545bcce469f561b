//! The optimizer on weft's example patterns, on a hand-written LongLoRA graph
//! and on random patterns: every pattern fuses into one kernel with per-head
//! masks, and the fused graph computes what the reference graph computes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use expect_test::expect_file;
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use weft_compiler::optimize::{OptimizeOptions, Optimized, optimize};
use weft_ir::autodiff::differentiate;
use weft_ir::graph::{Graph, Op, TensorType, ValidGraph, parse_sexpr};
use weft_ir::interp::{Tensor, run};
use weft_ir::lower::{LowerOptions, lower_pattern};
use weft_ir::{ConcreteMask, Overrides, Pattern, SourceFile, Spec};

/// The seed of this run's random inputs: `WEFT_TEST_SEED` or a fresh one, printed.
fn seed() -> u64 {
    let seed = std::env::var("WEFT_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    eprintln!("seed {seed} (rerun with WEFT_TEST_SEED={seed})");
    seed
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn examples() -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(root().join("examples/patterns"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    assert!(paths.len() >= 6, "examples/patterns has {} specs", paths.len());
    paths
}

/// Every pattern of every example at N = 64, H = 4, with its golden-file name.
fn example_patterns() -> Vec<(String, Pattern)> {
    let overrides = Overrides { seq_len: Some(64), n_heads: Some(4), ..Overrides::default() };
    let mut out = Vec::new();
    for path in examples() {
        let schedule = weft_ir::spec::load_schedule(&path, &overrides).unwrap();
        let stem = path.file_stem().unwrap().to_string_lossy().to_string();
        let several = schedule.patterns.len() > 1;
        for pattern in schedule.patterns {
            let name = if several { format!("{stem}-{}", pattern.name) } else { stem.clone() };
            out.push((name, pattern));
        }
    }
    out
}

/// Random inputs (never zeros) for every leaf of `graph`.
fn inputs(graph: &ValidGraph, rng: &mut StdRng) -> HashMap<String, Tensor> {
    graph
        .leaves()
        .map(|(id, name)| {
            let shape = graph.node(id).ty.shape.clone();
            (name.to_string(), Tensor::from_fn(shape, |_| rng.random_range(-2.0..2.0)))
        })
        .collect()
}

/// The largest relative error between the outputs of two graphs on the same inputs.
fn max_error(reference: &ValidGraph, optimized: &ValidGraph, rng: &mut StdRng) -> f64 {
    let feeds = inputs(reference, rng);
    let want = run(reference, &feeds).unwrap();
    let got = run(optimized, &feeds).unwrap();
    assert_eq!(want.len(), got.len());
    want.iter().map(|(name, w)| got[name].max_rel_error(w)).fold(0.0, f64::max)
}

fn count(graph: &ValidGraph, pred: impl Fn(&Op) -> bool) -> usize {
    graph.node_ids().filter(|&id| pred(&graph.node(id).op)).count()
}

/// One fused kernel and none of the ops it replaces.
fn assert_one_kernel(name: &str, opt: &Optimized) {
    let g = &opt.graph;
    let text = g.to_sexpr();
    assert_eq!(count(g, |op| matches!(op, Op::FusedAttention { .. })), 1, "{name}:\n{text}\n{}", opt.report);
    let leftover = count(g, |op| {
        matches!(
            op,
            Op::Roll { .. }
                | Op::Reshape { .. }
                | Op::Slice { .. }
                | Op::Concat { .. }
                | Op::Attention { .. }
        )
    });
    assert_eq!(leftover, 0, "{name}:\n{text}\n{}", opt.report);
}

/// Each head's mask of the graph's fused node, canonical at its sequence length, and its scale.
fn fused_head_masks(graph: &ValidGraph) -> (Vec<ConcreteMask>, f64) {
    let node = graph
        .node_ids()
        .map(|id| graph.node(id))
        .find(|n| matches!(n.op, Op::FusedAttention { .. }))
        .expect("a fused attention node");
    let Op::FusedAttention { heads, scale, .. } = &node.op else { unreachable!() };
    let (h, n) = (node.ty.shape[1], node.ty.shape[2]);
    let masks = (0..h)
        .map(|head| {
            let entry = heads.iter().find(|e| e.heads.contains(&head)).unwrap();
            entry.mask.for_head(head).unwrap().canonical(n as i64)
        })
        .collect();
    (masks, *scale)
}

#[test]
fn every_example_fuses_into_one_kernel_and_computes_the_same() {
    let mut rng = StdRng::seed_from_u64(seed());
    for (name, pattern) in example_patterns() {
        let reference = lower_pattern(&pattern, &LowerOptions::new(2, 64, 8)).unwrap();
        let opt = optimize(&reference, &OptimizeOptions::default()).unwrap();
        assert_one_kernel(&name, &opt);
        assert_eq!(opt.report.stop_reason, "saturated", "{name}: {}", opt.report);
        assert!(opt.report.cost_after.total() < opt.report.cost_before.total(), "{name}: {}", opt.report);
        // The kernel's per-head masks are the pattern's.
        let (masks, _) = fused_head_masks(&opt.graph);
        let want: Vec<ConcreteMask> = pattern.head_masks().iter().map(|m| m.canonical(64)).collect();
        assert_eq!(masks, want, "{name}");
        let err = max_error(&reference, &opt.graph, &mut rng);
        assert!(err <= 1e-12, "{name}: relative error {err:e}");
    }
}

/// A backward graph is an ordinary graph: the optimizer takes it, the forward
/// half still fuses, and the gradients stay what they were.
#[test]
fn backward_graphs_optimize_and_compute_the_same() {
    let mut rng = StdRng::seed_from_u64(seed());
    for (name, pattern) in example_patterns() {
        let forward = lower_pattern(&pattern, &LowerOptions::new(2, 32, 4)).unwrap();
        let grads = differentiate(&forward, &["q", "k", "v"]).unwrap();
        let opt = optimize(&grads.graph, &OptimizeOptions::default()).unwrap();
        let report = &opt.report;
        assert!(report.cost_after.total() <= report.cost_before.total(), "{name}: {report}");
        assert_eq!(count(&opt.graph, |op| matches!(op, Op::FusedAttention { .. })), 1, "{name}: {report}");
        let err = max_error(&grads.graph, &opt.graph, &mut rng);
        assert!(err <= 1e-12, "{name}: relative error {err:e}");
    }
}

#[test]
fn optimized_examples_match_their_golden_files() {
    for (name, pattern) in example_patterns() {
        let reference = lower_pattern(&pattern, &LowerOptions::new(2, 64, 8)).unwrap();
        let opt = optimize(&reference, &OptimizeOptions::default()).unwrap();
        expect_file![format!("../../tests/golden/opt/{name}.sexpr")].assert_eq(&opt.graph.to_sexpr());
    }
}

fn load_graph(path: &Path) -> ValidGraph {
    let text = std::fs::read_to_string(path).unwrap();
    parse_sexpr(&SourceFile::new(path.display().to_string(), text)).unwrap().validate().unwrap()
}

#[test]
fn hand_written_s2attn_graph_fuses_like_the_spec() {
    let hand = load_graph(&root().join("examples/graphs/s2attn-roll.sexpr"));
    let opt = optimize(&hand, &OptimizeOptions::default()).unwrap();
    assert_one_kernel("examples/graphs/s2attn-roll.sexpr", &opt);

    let overrides = Overrides { seq_len: Some(64), n_heads: Some(4), ..Overrides::default() };
    let spec =
        weft_ir::spec::load_schedule(&root().join("examples/patterns/s2attn-roll.toml"), &overrides).unwrap();
    let reference = lower_pattern(&spec.patterns[0], &LowerOptions::new(2, 64, 16)).unwrap();
    let from_spec = optimize(&reference, &OptimizeOptions::default()).unwrap();
    // The same kernel: same per-head masks after canonicalization, same scale, same node.
    assert_eq!(fused_head_masks(&opt.graph), fused_head_masks(&from_spec.graph));
    let fused = |g: &ValidGraph| {
        g.node_ids().map(|id| g.node(id).clone()).find(|n| matches!(n.op, Op::FusedAttention { .. })).unwrap()
    };
    assert_eq!(fused(&opt.graph), fused(&from_spec.graph));

    let mut rng = StdRng::seed_from_u64(seed());
    let err = max_error(&hand, &opt.graph, &mut rng);
    assert!(err <= 1e-12, "relative error {err:e}");
}

/// The roll example's fused node: the kernel every S2-Attn roll-form graph at
/// these sizes must fuse into.
fn roll_kernel() -> weft_ir::graph::Node {
    let roll = load_graph(&root().join("examples/graphs/s2attn-roll.sexpr"));
    let opt = optimize(&roll, &OptimizeOptions::default()).unwrap();
    fused_node(&opt.graph)
}

fn fused_node(g: &ValidGraph) -> weft_ir::graph::Node {
    let mut fused =
        g.node_ids().map(|id| g.node(id).clone()).filter(|n| matches!(n.op, Op::FusedAttention { .. }));
    let node = fused.next().expect("a fused attention node");
    assert!(fused.next().is_none(), "more than one fused attention node:\n{}", g.to_sexpr());
    node
}

/// Every hand-written graph in examples/graphs/ prints and parses back to
/// itself, and fuses into one kernel that computes what it computes.
#[test]
fn every_hand_written_graph_round_trips_and_fuses_into_one_kernel() {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(root().join("examples/graphs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "sexpr"))
        .collect();
    paths.sort();
    let names: Vec<String> =
        paths.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(names, ["s2attn-longlora.sexpr", "s2attn-roll.sexpr"]);
    let mut rng = StdRng::seed_from_u64(seed());
    for path in &paths {
        let name = path.display().to_string();
        let graph = load_graph(path);
        let text = graph.to_sexpr();
        let again = parse_sexpr(&SourceFile::new("printed", text.clone())).unwrap().validate().unwrap();
        assert_eq!(again, graph, "{name}");
        assert_eq!(again.to_sexpr(), text, "{name}");
        let opt = optimize(&graph, &OptimizeOptions::default()).unwrap();
        assert_one_kernel(&name, &opt);
        assert_eq!(opt.report.stop_reason, "saturated", "{name}: {}", opt.report);
        assert!(opt.report.cost_after.total() < opt.report.cost_before.total(), "{name}: {}", opt.report);
        let err = max_error(&graph, &opt.graph, &mut rng);
        assert!(err <= 1e-12, "{name}: relative error {err:e}");
        // Differentiated, the forward half still fuses and the gradients stay what they were.
        let grads = differentiate(&graph, &["q", "k", "v"]).unwrap().graph;
        let opt = optimize(&grads, &OptimizeOptions::default()).unwrap();
        let report = &opt.report;
        assert!(report.cost_after.total() <= report.cost_before.total(), "{name}: {report}");
        assert_eq!(count(&opt.graph, |op| matches!(op, Op::FusedAttention { .. })), 1, "{name}: {report}");
        let err = max_error(&grads, &opt.graph, &mut rng);
        assert!(err <= 1e-12, "{name} backward: relative error {err:e}");
    }
}

/// The printed LongLoRA graph; bless with `UPDATE_EXPECT=1`.
#[test]
fn the_longlora_graph_matches_its_golden_file() {
    let graph = load_graph(&root().join("examples/graphs/s2attn-longlora.sexpr"));
    expect_file!["../../tests/golden/graphs/s2attn-longlora.sexpr"].assert_eq(&graph.to_sexpr());
}

/// LongLoRA's own code folds the groups into the batch axis, with transposes
/// around the grouping: it computes what the roll example (groups folded into
/// the heads) computes, and fuses into the very same kernel.
#[test]
fn the_longlora_graph_fuses_into_the_roll_graphs_kernel() {
    let longlora = load_graph(&root().join("examples/graphs/s2attn-longlora.sexpr"));
    let roll = load_graph(&root().join("examples/graphs/s2attn-roll.sexpr"));
    // As written, before any rule: the two graphs agree.
    let mut rng = StdRng::seed_from_u64(seed());
    let feeds = inputs(&roll, &mut rng);
    let (a, b) = (run(&longlora, &feeds).unwrap(), run(&roll, &feeds).unwrap());
    let err = a["o"].max_rel_error(&b["o"]);
    assert!(err <= 1e-12, "the two forms differ: relative error {err:e}");

    let opt = optimize(&longlora, &OptimizeOptions::default()).unwrap();
    assert_one_kernel("examples/graphs/s2attn-longlora.sexpr", &opt);
    let leftover = count(&opt.graph, |op| matches!(op, Op::Permute { .. }));
    assert_eq!(leftover, 0, "{}", opt.graph.to_sexpr());
    // One node in all: q, k, v and the kernel.
    assert_eq!(opt.graph.len(), 4, "{}", opt.graph.to_sexpr());
    assert_eq!(opt.report.cost_after.launches, 1, "{}", opt.report);
    for rule in
        ["fuse-batch-grouped", "roll-through-permute", "permute-compose", "permute-identity", "fuse-roll"]
    {
        assert!(opt.report.fired(rule) > 0, "{rule} did not fire:\n{}", opt.report);
    }
    // The roll graph's kernel: same masks, scale, operands and type.
    assert_eq!(fused_node(&opt.graph), roll_kernel());
    let roll_opt = optimize(&roll, &OptimizeOptions::default()).unwrap();
    assert_eq!(fused_head_masks(&opt.graph), fused_head_masks(&roll_opt.graph));
    assert_eq!(
        opt.graph.to_sexpr().replace("s2attn-longlora-pytorch", "s2attn-roll-pytorch"),
        roll_opt.graph.to_sexpr()
    );
    // And the spec's masks, head by head.
    let overrides = Overrides { seq_len: Some(64), n_heads: Some(4), ..Overrides::default() };
    let spec =
        weft_ir::spec::load_schedule(&root().join("examples/patterns/s2attn-roll.toml"), &overrides).unwrap();
    let want: Vec<ConcreteMask> = spec.patterns[0].head_masks().iter().map(|m| m.canonical(64)).collect();
    assert_eq!(fused_head_masks(&opt.graph).0, want);

    let err = max_error(&longlora, &opt.graph, &mut rng);
    assert!(err <= 1e-12, "relative error {err:e}");
}

/// The LongLoRA graph with q, k, v transposed to [B, N, H, D] before their
/// shift (as one might write it: roll the tokens, axis 1, of heads 2..4, axis 2),
/// and sizes where the groups are not a quarter of the sequence: the same
/// rules fuse it into one kernel.
#[test]
fn the_batch_folded_form_fuses_with_the_shift_after_the_transpose() {
    // B = 1, H = 6, N = 48, D = 4, G = 12: heads 3..6 shifted by G/2 = 6.
    let mut text = String::from("(graph shift-after-transpose\n");
    for (i, name) in ["q", "k", "v"].iter().enumerate() {
        text.push_str(&format!("  (%{i} (input {name}) f32[1, 6, 48, 4])\n"));
    }
    for i in 0..3 {
        text.push_str(&format!("  (%{} (permute %{i} :perm (0 2 1 3)) f32[1, 48, 6, 4])\n", 3 + i));
        text.push_str(&format!(
            "  (%{} (roll %{} :axis 1 :shift -6 :heads (2 3 6)) f32[1, 48, 6, 4])\n",
            6 + i,
            3 + i
        ));
        text.push_str(&format!("  (%{} (reshape %{} :shape (4 12 6 4)) f32[4, 12, 6, 4])\n", 9 + i, 6 + i));
        text.push_str(&format!("  (%{} (permute %{} :perm (0 2 1 3)) f32[4, 6, 12, 4])\n", 12 + i, 9 + i));
    }
    text.push_str(
        "  (%15 (attention %12 %13 %14 :mask \"causal\" :head-offset 0 :scale 0.5) f32[4, 6, 12, 4])
  (%16 (permute %15 :perm (0 2 1 3)) f32[4, 12, 6, 4])
  (%17 (reshape %16 :shape (1 48 6 4)) f32[1, 48, 6, 4])
  (%18 (roll %17 :axis 1 :shift 6 :heads (2 3 6)) f32[1, 48, 6, 4])
  (%19 (permute %18 :perm (0 2 1 3)) f32[1, 6, 48, 4])
  (output o %19))",
    );
    let graph =
        parse_sexpr(&SourceFile::new("shift-after-transpose.sexpr", text)).unwrap().validate().unwrap();
    let opt = optimize(&graph, &OptimizeOptions::default()).unwrap();
    assert_one_kernel("shift after transpose", &opt);
    assert_eq!(count(&opt.graph, |op| matches!(op, Op::Permute { .. })), 0, "{}", opt.graph.to_sexpr());
    let pattern = pattern_from(
        "[defaults]\nseq_len = 48\nn_heads = 6\n[vars]\nG = \"N / 4\"\n\
         [[heads]]\nrange = \"0..3\"\nmask = \"causal & groups(G)\"\n\
         [[heads]]\nrange = \"3..6\"\nmask = \"roll(G/2, causal & groups(G))\"\n",
    );
    let want: Vec<ConcreteMask> = pattern.head_masks().iter().map(|m| m.canonical(48)).collect();
    assert_eq!(fused_head_masks(&opt.graph), (want, 0.5));
    let mut rng = StdRng::seed_from_u64(seed());
    let err = max_error(&graph, &opt.graph, &mut rng);
    assert!(err <= 1e-12, "relative error {err:e}");
}

#[test]
fn the_report_says_why_it_stopped_and_which_rules_fired() {
    let hand = load_graph(&root().join("examples/graphs/s2attn-roll.sexpr"));
    let report = optimize(&hand, &OptimizeOptions::default()).unwrap().report;
    assert_eq!(report.stop_reason, "saturated", "{report}");
    for rule in ["fuse-grouped-reshape", "fuse-roll"] {
        assert!(report.fired(rule) > 0, "{rule} did not fire:\n{report}");
    }
    assert!(report.iterations > 0 && report.egraph_nodes > 0 && report.egraph_classes > 0);
    // Dense attention (3 launches) and four rolls become one kernel.
    assert_eq!(report.cost_before.launches, 3 + 4);
    assert_eq!(report.cost_after.launches, 1);
    assert!(report.cost_after.bytes < report.cost_before.bytes);
    let text = report.to_string();
    assert!(text.contains("stopped: saturated") && text.contains("fuse-roll x"), "{text}");

    // The flash form needs the head concat instead.
    let overrides = Overrides { seq_len: Some(64), n_heads: Some(4), ..Overrides::default() };
    let flash = weft_ir::spec::load_schedule(&root().join("examples/patterns/s2attn-flash.toml"), &overrides)
        .unwrap();
    let graph = lower_pattern(&flash.patterns[0], &LowerOptions::new(1, 64, 8)).unwrap();
    let report = optimize(&graph, &OptimizeOptions::default()).unwrap().report;
    assert!(report.fired("fuse-head-concat") > 0, "{report}");
}

#[test]
fn limits_stop_the_run_early_and_the_result_is_still_right() {
    let hand = load_graph(&root().join("examples/graphs/s2attn-roll.sexpr"));
    let opts = OptimizeOptions { iter_limit: 1, ..OptimizeOptions::default() };
    let opt = optimize(&hand, &opts).unwrap();
    assert_eq!(opt.report.stop_reason, "iteration limit (1 iterations)");
    assert_eq!(opt.report.iterations, 1);
    assert!(opt.report.cost_after.total() <= opt.report.cost_before.total());
    let mut rng = StdRng::seed_from_u64(seed());
    let err = max_error(&hand, &opt.graph, &mut rng);
    assert!(err <= 1e-12, "relative error {err:e}");

    let opts = OptimizeOptions { node_limit: 10, ..OptimizeOptions::default() };
    let opt = optimize(&hand, &opts).unwrap();
    assert!(opt.report.stop_reason.starts_with("node limit"), "{}", opt.report);
}

#[test]
fn other_ops_pass_through_and_layout_noise_disappears() {
    // Rolls that cancel, reshapes that compose, a full slice: none of it survives;
    // the matmul-softmax chain around it stays.
    let text = r#"
        (graph layout
          (%0 (input x) f32[2, 3, 8, 4])
          (%1 (input w) f32[2, 3, 4, 8])
          (%2 (roll %0 :axis 2 :shift 3) f32[2, 3, 8, 4])
          (%3 (roll %2 :axis 2 :shift 13) f32[2, 3, 8, 4])
          (%4 (reshape %3 :shape (6 32)) f32[6, 32])
          (%5 (reshape %4 :shape (2 3 8 4)) f32[2, 3, 8, 4])
          (%6 (slice %5 :axis 1 :start 0 :end 3) f32[2, 3, 8, 4])
          (%7 (matmul %6 %1) f32[2, 3, 8, 8])
          (%8 (softmax %7 :axis 3) f32[2, 3, 8, 8])
          (output y %8))"#;
    let graph = parse_sexpr(&SourceFile::new("layout.sexpr", text)).unwrap().validate().unwrap();
    let opt = optimize(&graph, &OptimizeOptions::default()).unwrap();
    expect_test::expect![[r#"
        (graph layout
          (%0 (input x) f32[2, 3, 8, 4])
          (%1 (input w) f32[2, 3, 4, 8])
          (%2 (matmul %0 %1) f32[2, 3, 8, 8])
          (%3 (softmax %2 :axis 3) f32[2, 3, 8, 8])
          (output y %3))
    "#]]
    .assert_eq(&opt.graph.to_sexpr());
    let mut rng = StdRng::seed_from_u64(seed());
    assert!(max_error(&graph, &opt.graph, &mut rng) <= 1e-12);
}

#[test]
fn inputs_and_outputs_keep_their_names_and_order() {
    let text = r#"
        (graph two-outputs
          (%0 (input b) f32[1, 2, 16, 4])
          (%1 (input a) f32[1, 2, 16, 4])
          (%2 (input unused) f32[3])
          (%3 (attention %1 %0 %0 :mask "causal & window(4)" :head-offset 0 :scale 0.5) f32[1, 2, 16, 4])
          (%4 (roll %3 :axis 2 :shift 16) f32[1, 2, 16, 4])
          (output second %4)
          (output first %0))"#;
    let graph = parse_sexpr(&SourceFile::new("io.sexpr", text)).unwrap().validate().unwrap();
    let opt = optimize(&graph, &OptimizeOptions::default()).unwrap();
    let leaves: Vec<&str> = opt.graph.leaves().map(|(_, n)| n).collect();
    assert_eq!(leaves, ["b", "a", "unused"]);
    let outputs: Vec<&str> = opt.graph.outputs().iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(outputs, ["second", "first"]);
    assert_eq!(count(&opt.graph, |op| matches!(op, Op::FusedAttention { .. })), 1);
    let mut rng = StdRng::seed_from_u64(seed());
    assert!(max_error(&graph, &opt.graph, &mut rng) <= 1e-12);
}

#[test]
fn a_head_offset_that_does_not_fit_the_e_graph_is_an_error() {
    let text = format!(
        r#"(graph big
          (%0 (input q) f32[1, 1, 4, 2])
          (%1 (attention %0 %0 %0 :mask "causal" :head-offset {} :scale 1.0) f32[1, 1, 4, 2])
          (output o %1))"#,
        u64::MAX / 2 + 1
    );
    let graph = parse_sexpr(&SourceFile::new("big.sexpr", text)).unwrap().validate().unwrap();
    let err = optimize(&graph, &OptimizeOptions::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "graph `big`: node %1 (`attention`) cannot enter the e-graph: head offset 9223372036854775808 too large"
    );
}

/// One head range of a random pattern: a mask template and its numbers.
type RandomRange = (u8, u8, u8, i8, bool);

/// A spec with masks from window, sink, causal, groups, local_stride and roll.
fn random_spec(n: usize, h: usize, cuts: &[usize], ranges: &[RandomRange], shared: bool) -> String {
    let mut bounds: Vec<usize> = cuts.iter().map(|c| 1 + c % h.max(1)).filter(|&c| c < h).collect();
    bounds.extend([0, h]);
    bounds.sort_unstable();
    bounds.dedup();
    let divisors: Vec<usize> = (2..n).filter(|g| n.is_multiple_of(*g)).collect();
    let mut text = format!("[defaults]\nseq_len = {n}\nn_heads = {h}\n");
    for (i, w) in bounds.windows(2).enumerate() {
        let (kind, a, b, o, rolled) = ranges[if shared { 0 } else { i % ranges.len() }];
        let g = divisors[a as usize % divisors.len()];
        let (a, b) = (1 + a as usize % 8, 1 + b as usize % 4);
        let core = match kind % 7 {
            0 => "causal".to_string(),
            1 => format!("causal & groups({g})"),
            2 => format!("causal & window({a})"),
            3 => format!("causal & (sink({b}) | window({a}))"),
            4 => format!("causal & local_stride({}, {b}, {}, h)", [4, 8][a % 2], 2 + a % 3),
            5 => format!("causal & groups({g}, {})", g / 2),
            _ => format!("window({a}) | sink({b})"),
        };
        // In a shared pattern every range rolls the same core by its own amount.
        let offset = if shared { o as i64 * (i as i64 + 1) } else { o as i64 };
        let mask = if rolled || shared { format!("roll({offset}, {core})") } else { core };
        text.push_str(&format!("[[heads]]\nrange = \"{}..{}\"\nmask = \"{mask}\"\n", w[0], w[1]));
    }
    text
}

/// This run's seed, printed once.
fn base_seed() -> u64 {
    static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *SEED.get_or_init(seed)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_patterns_fuse_and_compute_the_same(
        n in prop::sample::select(vec![16usize, 24, 32, 48, 64]),
        h in 1usize..5,
        batch in 1usize..3,
        d in 2usize..5,
        cuts in prop::collection::vec(any::<usize>(), 0..3),
        ranges in prop::collection::vec((any::<u8>(), any::<u8>(), any::<u8>(), any::<i8>(), any::<bool>()), 1..4),
        shared in any::<bool>(),
        input_seed in any::<u64>(),
    ) {
        let text = random_spec(n, h, &cuts, &ranges, shared);
        let spec = Spec::parse(SourceFile::new("random.toml", text.clone())).unwrap();
        let schedule = spec.resolve(&Overrides::default()).unwrap();
        let pattern = &schedule.patterns[0];
        let reference = lower_pattern(pattern, &LowerOptions::new(batch, n, d)).unwrap();
        let opt = optimize(&reference, &OptimizeOptions::default()).unwrap();
        assert_one_kernel(&text, &opt);
        let (masks, _) = fused_head_masks(&opt.graph);
        let want: Vec<ConcreteMask> = pattern.head_masks().iter().map(|m| m.canonical(n as i64)).collect();
        prop_assert_eq!(masks, want, "{}", text);
        let mut rng = StdRng::seed_from_u64(base_seed() ^ input_seed);
        let err = max_error(&reference, &opt.graph, &mut rng);
        prop_assert!(err <= 1e-12, "relative error {:e}\n{}", err, text);
    }
}

fn pattern_from(text: &str) -> Pattern {
    let spec = Spec::parse(SourceFile::new("inline.toml", text)).unwrap();
    spec.resolve(&Overrides::default()).unwrap().patterns.remove(0)
}

#[test]
fn several_rolled_head_ranges_fuse_into_one_kernel() {
    // One core mask rolled by a different amount per head range: the reference
    // graph stacks one roll per range, so the rolls must commute to meet.
    let pattern = pattern_from(
        "[defaults]\nseq_len = 32\nn_heads = 4\n\
         [[heads]]\nrange = \"0..1\"\nmask = \"roll(4, causal & window(3))\"\n\
         [[heads]]\nrange = \"1..2\"\nmask = \"causal & window(3)\"\n\
         [[heads]]\nrange = \"2..4\"\nmask = \"roll(-6, causal & window(3))\"\n",
    );
    let reference = lower_pattern(&pattern, &LowerOptions::new(2, 32, 4)).unwrap();
    assert_eq!(count(&reference, |op| matches!(op, Op::Roll { .. })), 8);
    let opt = optimize(&reference, &OptimizeOptions::default()).unwrap();
    assert_one_kernel("stacked rolls", &opt);
    assert!(opt.report.fired("roll-commute-disjoint") > 0, "{}", opt.report);
    let (masks, _) = fused_head_masks(&opt.graph);
    let want: Vec<ConcreteMask> = pattern.head_masks().iter().map(|m| m.canonical(32)).collect();
    assert_eq!(masks, want);
    let mut rng = StdRng::seed_from_u64(seed());
    let err = max_error(&reference, &opt.graph, &mut rng);
    assert!(err <= 1e-12, "relative error {err:e}");
}

#[test]
fn head_dependent_masks_keep_their_global_head_index() {
    // The slice 1..4 reads `h` from head 1 on (head offset 1); merged into one
    // node it reads the global head index again, and prints as written.
    let pattern = pattern_from(
        "[defaults]\nseq_len = 32\nn_heads = 4\n\
         [[heads]]\nrange = \"0..1\"\nmask = \"causal\"\n\
         [[heads]]\nrange = \"1..4\"\nmask = \"causal & local_stride(4, 1, 3, h)\"\n",
    );
    let reference = lower_pattern(&pattern, &LowerOptions::new(1, 32, 4)).unwrap();
    let opt = optimize(&reference, &OptimizeOptions::default()).unwrap();
    assert_one_kernel("local stride in h", &opt);
    assert!(
        opt.graph.to_sexpr().contains(r#":masks ((0 1 "causal") (1 4 "causal & local_stride(4, 1, 3, h)"))"#),
        "{}",
        opt.graph.to_sexpr()
    );
    let mut rng = StdRng::seed_from_u64(seed());
    let err = max_error(&reference, &opt.graph, &mut rng);
    assert!(err <= 1e-12, "relative error {err:e}");
}

/// A LoRA-adapted projection as the model builds it: `x·Wᵀ + 2·(x·Aᵀ)·Bᵀ`,
/// `x [t, d_in]`, `W [d_out, d_in]` frozen, `A [r, d_in]`, `B [d_out, r]`.
fn lora_graph(t: usize, d_in: usize, d_out: usize, r: usize) -> ValidGraph {
    let mut g = Graph::new("lora");
    let x = g.input("x", TensorType::f32([t, d_in]));
    let w = g.parameter("w", TensorType::f32([d_out, d_in]), false);
    let a = g.parameter("a", TensorType::f32([r, d_in]), true);
    let b = g.parameter("b", TensorType::f32([d_out, r]), true);
    let y = g.matmul(x, w, false, true).unwrap();
    let xa = g.matmul(x, a, false, true).unwrap();
    let xab = g.matmul(xa, b, false, true).unwrap();
    let scaled = g.scale(xab, 2.0).unwrap();
    let sum = g.elementwise_add(y, scaled).unwrap();
    g.set_output("y", sum);
    g.validate().unwrap()
}

fn matmuls(graph: &ValidGraph) -> usize {
    count(graph, |op| matches!(op, Op::MatMul { .. }))
}

/// Many tokens: the update is folded into the weight (`x·(W + (2·B)·A)ᵀ`, two
/// matmuls, none of them token-by-rank), it costs less, and it computes the same.
#[test]
fn lora_folds_into_its_weight_for_many_tokens() {
    let graph = lora_graph(2048, 64, 48, 8);
    let opt = optimize(&graph, &OptimizeOptions::default()).unwrap();
    assert_eq!(opt.report.fired("lora-fold"), 1, "{}", opt.report);
    assert_eq!(matmuls(&opt.graph), 2);
    let token_rank = opt.graph.node_ids().any(|id| opt.graph.node(id).ty.shape == [2048, 8]);
    assert!(!token_rank, "the x·Aᵀ activations are gone");
    assert!(opt.report.cost_after.total() < opt.report.cost_before.total(), "{}", opt.report);
    let mut rng = StdRng::seed_from_u64(seed());
    let err = max_error(&graph, &opt.graph, &mut rng);
    assert!(err <= 1e-12, "relative error {err:e}");
}

/// Few tokens through a wide weight: building `W + s·B·A` costs more than the
/// LoRA path, so the graph keeps its three matmuls.
#[test]
fn lora_stays_unfolded_where_folding_costs_more() {
    let graph = lora_graph(16, 256, 192, 8);
    let opt = optimize(&graph, &OptimizeOptions::default()).unwrap();
    assert_eq!(opt.report.fired("lora-fold"), 0, "{}", opt.report);
    assert_eq!(matmuls(&opt.graph), 3);
    assert_eq!(opt.report.cost_after, opt.report.cost_before);
}

/// A graph that will be differentiated keeps its LoRA factors apart, however many tokens.
#[test]
fn training_graphs_never_fold_lora() {
    let graph = lora_graph(2048, 64, 48, 8);
    let opts = OptimizeOptions { training: true, ..OptimizeOptions::default() };
    let opt = optimize(&graph, &opts).unwrap();
    assert_eq!(opt.report.fired("lora-fold"), 0, "{}", opt.report);
    assert_eq!(matmuls(&opt.graph), 3);
}

/// Already differentiated, the forward's `x·Aᵀ` is read by the backward too, so
/// folding saves less; whatever extraction picks is never costlier than the
/// input, and every gradient is unchanged.
#[test]
fn a_differentiated_lora_graph_optimizes_and_computes_the_same() {
    for t in [16, 2048] {
        let grads = differentiate(&lora_graph(t, 64, 48, 8), &["a", "b"]).unwrap().graph;
        let opt = optimize(&grads, &OptimizeOptions::default()).unwrap();
        assert!(opt.report.cost_after.total() <= opt.report.cost_before.total(), "{}", opt.report);
        let mut rng = StdRng::seed_from_u64(seed());
        let err = max_error(&grads, &opt.graph, &mut rng);
        assert!(err <= 1e-12, "t = {t}: relative error {err:e}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Folded or not, the optimized projection is never costlier and agrees
    /// with the interpreter on the reference graph.
    #[test]
    fn random_lora_projections_optimize_and_compute_the_same(
        t in prop::sample::select(vec![1usize, 3, 16, 64, 512, 2048]),
        d_in in 1usize..80,
        d_out in 1usize..80,
        r in 1usize..9,
        input_seed in any::<u64>(),
    ) {
        let graph = lora_graph(t, d_in, d_out, r);
        let opt = optimize(&graph, &OptimizeOptions::default()).unwrap();
        prop_assert!(opt.report.cost_after.total() <= opt.report.cost_before.total(), "{}", opt.report);
        let folded = opt.report.fired("lora-fold") > 0;
        prop_assert_eq!(matmuls(&opt.graph), if folded { 2 } else { 3 });
        let mut rng = StdRng::seed_from_u64(base_seed() ^ input_seed);
        let err = max_error(&graph, &opt.graph, &mut rng);
        prop_assert!(err <= 1e-12, "relative error {:e}", err);
    }
}
