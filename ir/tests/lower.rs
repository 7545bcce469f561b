//! The reference graphs of patterns, run in the f64 interpreter.

use std::collections::HashMap;

use expect_test::expect_file;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use weft_ir::graph::{Op, ValidGraph};
use weft_ir::interp::{Tensor, masked_attention, run};
use weft_ir::lower::{LowerOptions, lower_pattern};
use weft_ir::{Overrides, Pattern, Schedule, SourceFile, Spec};

/// A fresh random generator; `WEFT_TEST_SEED` replays a failure.
fn rng() -> (StdRng, u64) {
    let seed = std::env::var("WEFT_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    eprintln!("seed {seed} (rerun with WEFT_TEST_SEED={seed})");
    (StdRng::seed_from_u64(seed), seed)
}

fn random(rng: &mut StdRng, shape: &[usize]) -> Tensor {
    Tensor::from_fn(shape.to_vec(), |_| rng.random_range(-2.0..2.0))
}

fn s2_spec(form: &str, group_divisor: usize) -> String {
    let shifted = match form {
        "roll" => "roll(G/2, causal & groups(G))",
        _ => "causal & groups(G, G/2)",
    };
    format!(
        "[defaults]\nseq_len = 64\nn_heads = 4\n[vars]\nG = \"N / {group_divisor}\"\n\
         [[heads]]\nrange = \"0..H/2\"\nmask = \"causal & groups(G)\"\n\
         [[heads]]\nrange = \"H/2..H\"\nmask = \"{shifted}\"\n"
    )
}

fn resolve(text: &str, n: usize, h: usize) -> Schedule {
    let overrides = Overrides { seq_len: Some(n), n_heads: Some(h), ..Overrides::default() };
    Spec::parse(SourceFile::new("inline.toml", text)).and_then(|s| s.resolve(&overrides)).unwrap()
}

fn example(name: &str, n: usize, h: usize) -> Schedule {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/patterns").join(name);
    let overrides = Overrides { seq_len: Some(n), n_heads: Some(h), ..Overrides::default() };
    weft_ir::spec::load_schedule(&path, &overrides).unwrap()
}

/// Runs the reference graph and dense masked attention on the same random inputs.
fn graph_and_dense(
    pattern: &Pattern,
    graph: &ValidGraph,
    batch: usize,
    n: usize,
    d: usize,
    rng: &mut StdRng,
) -> (Tensor, Tensor) {
    let shape = [batch, pattern.n_heads(), n, d];
    let inputs: HashMap<String, Tensor> =
        ["q", "k", "v"].iter().map(|name| (name.to_string(), random(rng, &shape))).collect();
    let out = run(graph, &inputs).unwrap().remove("o").unwrap();
    let dense = masked_attention(
        &inputs["q"],
        &inputs["k"],
        &inputs["v"],
        pattern.head_masks(),
        1.0 / (d as f64).sqrt(),
    )
    .unwrap();
    (out, dense)
}

fn count_ops(graph: &ValidGraph, pred: impl Fn(&Op) -> bool) -> usize {
    graph.node_ids().filter(|&id| pred(&graph.node(id).op)).count()
}

#[test]
fn roll_graph_equals_dense_attention_under_the_roll_mask() {
    let (mut rng, seed) = rng();
    for (n, divisor, h) in [(16, 4, 2), (32, 4, 4), (64, 4, 6), (64, 2, 4), (48, 4, 2), (64, 8, 4)] {
        let schedule = resolve(&s2_spec("roll", divisor), n, h);
        let pattern = &schedule.patterns[0];
        let d = 8;
        let graph = lower_pattern(pattern, &LowerOptions::new(2, n, d)).unwrap();
        // LongLoRA's ops: rolls of q, k, v and o; reshapes into groups and back; one attention.
        assert_eq!(count_ops(&graph, |op| matches!(op, Op::Roll { .. })), 4);
        assert_eq!(count_ops(&graph, |op| matches!(op, Op::Reshape { .. })), 4);
        assert_eq!(count_ops(&graph, |op| matches!(op, Op::Attention { .. })), 1);
        let (out, dense) = graph_and_dense(pattern, &graph, 2, n, d, &mut rng);
        let err = out.max_rel_error(&dense);
        assert!(err <= 1e-12, "N = {n}, G = N/{divisor}, H = {h}: relative error {err:e} (seed {seed})");
    }
}

#[test]
fn flash_form_is_a_different_mask() {
    let (mut rng, seed) = rng();
    let (n, h, d) = (32, 4, 8);
    let roll = resolve(&s2_spec("roll", 4), n, h);
    let flash = resolve(&s2_spec("flash", 4), n, h);
    let (roll_p, flash_p) = (&roll.patterns[0], &flash.patterns[0]);
    // Same on the unshifted heads, different on the shifted ones.
    assert_eq!(roll_p.head_mask(0), flash_p.head_mask(0));
    assert_ne!(roll_p.head_mask(h - 1).unwrap().dense(n), flash_p.head_mask(h - 1).unwrap().dense(n));
    // And so the roll graph does not compute flash-form attention.
    let graph = lower_pattern(roll_p, &LowerOptions::new(2, n, d)).unwrap();
    let (out, _) = graph_and_dense(roll_p, &graph, 2, n, d, &mut StdRng::seed_from_u64(seed));
    let (_, flash_dense) = graph_and_dense(flash_p, &graph, 2, n, d, &mut StdRng::seed_from_u64(seed));
    let err = out.max_rel_error(&flash_dense);
    assert!(err > 1e-2, "roll graph matches the flash form to {err:e} (seed {seed})");
    let _ = &mut rng;
}

#[test]
fn roll_graph_attends_exactly_where_the_mask_allows() {
    // With one-hot values, output row q is the softmax weight of every key: it is
    // positive exactly on the keys the graph's rolls and reshapes let q see.
    let (mut rng, _) = rng();
    let (n, h) = (16, 2);
    let schedule = resolve(&s2_spec("roll", 4), n, h);
    let pattern = &schedule.patterns[0];
    let graph =
        lower_pattern(pattern, &LowerOptions { batch: 1, seq_len: n, head_dim: 4, value_dim: n }).unwrap();
    let mut inputs = HashMap::new();
    inputs.insert("q".to_string(), random(&mut rng, &[1, h, n, 4]));
    inputs.insert("k".to_string(), random(&mut rng, &[1, h, n, 4]));
    inputs.insert("v".to_string(), Tensor::from_fn(vec![1, h, n, n], |i| f64::from(u8::from(i[2] == i[3]))));
    let out = run(&graph, &inputs).unwrap().remove("o").unwrap();
    for head in 0..h {
        let mask = pattern.head_mask(head).unwrap();
        for q in 0..n {
            for k in 0..n {
                let weight = out.get(&[0, head, q, k]).unwrap();
                assert_eq!(
                    weight > 0.0,
                    mask.allows(n as i64, q as i64, k as i64),
                    "head {head} q {q} k {k}"
                );
            }
        }
    }
}

#[test]
fn every_example_lowers_and_matches_dense_attention() {
    let (mut rng, seed) = rng();
    let examples = [
        "causal.toml",
        "s2attn-roll.toml",
        "s2attn-flash.toml",
        "sink-window.toml",
        "longgen-local-stride.toml",
        "longgen-hybrid.toml",
    ];
    for name in examples {
        let schedule = example(name, 64, 4);
        for pattern in &schedule.patterns {
            let graph = lower_pattern(pattern, &LowerOptions::new(1, 64, 4)).unwrap();
            let (out, dense) = graph_and_dense(pattern, &graph, 1, 64, 4, &mut rng);
            let err = out.max_rel_error(&dense);
            assert!(err <= 1e-12, "{name} / {}: relative error {err:e} (seed {seed})", pattern.name);
        }
    }
}

#[test]
fn batch_samples_are_independent() {
    let (mut rng, seed) = rng();
    let schedule = resolve(&s2_spec("roll", 4), 32, 4);
    let pattern = &schedule.patterns[0];
    let two = lower_pattern(pattern, &LowerOptions::new(2, 32, 4)).unwrap();
    let one = lower_pattern(pattern, &LowerOptions::new(1, 32, 4)).unwrap();
    let inputs: HashMap<String, Tensor> =
        ["q", "k", "v"].iter().map(|n| (n.to_string(), random(&mut rng, &[2, 4, 32, 4]))).collect();
    let both = run(&two, &inputs).unwrap().remove("o").unwrap();
    let second: HashMap<String, Tensor> = inputs
        .iter()
        .map(|(name, t)| {
            (name.clone(), Tensor::new(vec![1, 4, 32, 4], t.data()[t.len() / 2..].to_vec()).unwrap())
        })
        .collect();
    let alone = run(&one, &second).unwrap().remove("o").unwrap();
    let err =
        Tensor::new(vec![1, 4, 32, 4], both.data()[both.len() / 2..].to_vec()).unwrap().max_rel_error(&alone);
    assert!(err <= 1e-12, "sample 1 depends on sample 0: {err:e} (seed {seed})");
}

/// Golden snapshots of printed reference graphs; bless with `UPDATE_EXPECT=1`.
#[test]
fn reference_graphs_match_their_snapshots() {
    let roll = example("s2attn-roll.toml", 64, 4);
    let graph = lower_pattern(&roll.patterns[0], &LowerOptions::new(2, 64, 16)).unwrap();
    expect_file!["../../tests/golden/graphs/s2attn-roll.sexpr"].assert_eq(&graph.to_sexpr());
    let hybrid = example("longgen-hybrid.toml", 64, 4);
    let graph = lower_pattern(&hybrid.patterns[1], &LowerOptions::new(1, 64, 16)).unwrap();
    expect_file!["../../tests/golden/graphs/longgen-hybrid-sparse.sexpr"].assert_eq(&graph.to_sexpr());
    let flash = example("s2attn-flash.toml", 64, 4);
    let graph = lower_pattern(&flash.patterns[0], &LowerOptions::new(1, 64, 16)).unwrap();
    expect_file!["../../tests/golden/graphs/s2attn-flash.sexpr"].assert_eq(&graph.to_sexpr());
}

#[test]
fn printed_reference_graphs_parse_back() {
    for name in ["s2attn-roll.toml", "s2attn-flash.toml", "longgen-local-stride.toml"] {
        let schedule = example(name, 64, 4);
        let graph = lower_pattern(&schedule.patterns[0], &LowerOptions::new(2, 64, 16)).unwrap();
        let text = graph.to_sexpr();
        let parsed =
            weft_ir::graph::parse_sexpr(&SourceFile::new(name, text.clone())).unwrap().validate().unwrap();
        assert_eq!(parsed.to_sexpr(), text);
    }
}
