//! Masks at the parser's limits (nesting and terms) compile, fused and unfused,
//! forward and backward, into WGSL that naga parses and validates; one more
//! level or term is refused when the spec is read.

use weft_compiler::{CompileOptions, Mode, compile};
use weft_ir::expr::{MAX_MASK_DEPTH, MAX_SIZE_DEPTH};
use weft_ir::lower::{LowerOptions, lower_pattern};
use weft_ir::mask::MAX_MASK_TERMS;
use weft_ir::source::SourceFile;
use weft_ir::spec::Spec;
use weft_ir::{Overrides, Schedule};

/// A spec with one mask on all heads at N = 64.
fn spec(mask: &str) -> String {
    format!(
        "name = \"limits\"\n[defaults]\nseq_len = 64\nn_heads = 2\nn_layers = 1\nhead_dim = 8\n\n\
         [[heads]]\nrange = \"0..H\"\nmask = \"{mask}\"\n"
    )
}

fn schedule(mask: &str) -> Result<Schedule, String> {
    let spec = Spec::parse(SourceFile::new("limits.toml", spec(mask))).map_err(|e| e.to_string())?;
    spec.resolve(&Overrides::default()).map_err(|e| e.to_string())
}

/// `h + 1 + 1 + …`, nested `depth` levels: stays symbolic, so it reaches the kernel as written.
fn deep_size(depth: usize) -> String {
    format!("h{}", " + 1".repeat(depth))
}

/// `n` causal terms chained with `op`, nested `n - 1` levels.
fn chain(op: &str, first: &str, n: usize) -> String {
    std::iter::once(first.to_string())
        .chain(std::iter::repeat_n("causal".to_string(), n - 1))
        .collect::<Vec<_>>()
        .join(op)
}

/// Masks exactly at the limits, each the deepest or widest of its kind, and
/// whether its WGSL nests parentheses as deep (chains do; `!` adds no
/// parentheses, rolls become `let`s and the mask's own parentheses vanish).
fn at_the_limits() -> Vec<(&'static str, String, bool)> {
    let d = MAX_MASK_DEPTH;
    let window = format!("window({})", deep_size(MAX_SIZE_DEPTH));
    // Groups of 8 terms joined by `|`, the whole under `!`s up to the depth limit.
    let groups = vec![format!("({})", chain(" & ", "causal", 8)); MAX_MASK_TERMS / 8].join(" | ");
    let group_height = 7 + MAX_MASK_TERMS / 8 - 1;
    vec![
        ("and-chain with the deepest size first", chain(" & ", &window, d + 1), true),
        ("or-chain", chain(" | ", &window, d + 1), true),
        ("nots", format!("{}{window}", "!".repeat(d)), false),
        ("rolls", format!("{}{window}{}", "roll(h + 1, ".repeat(d), ")".repeat(d)), false),
        ("parentheses", format!("{}{window}{}", "(".repeat(d), ")".repeat(d)), false),
        ("terms", format!("{}({groups})", "!".repeat(d - group_height)), false),
    ]
}

/// The deepest nesting of parentheses in `wgsl`.
fn paren_nesting(wgsl: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0);
    for c in wgsl.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        deepest = deepest.max(depth);
    }
    deepest
}

#[test]
fn masks_at_the_limits_compile_to_valid_wgsl_fused_and_unfused() {
    for (name, mask, deep_wgsl) in at_the_limits() {
        let schedule = schedule(&mask).unwrap_or_else(|e| panic!("{name}: {e}"));
        let graph = lower_pattern(&schedule.patterns[0], &LowerOptions::new(1, 64, 8)).unwrap();
        for optimize in [true, false] {
            for mode in [
                Mode::Inference,
                Mode::Training { wrt: vec!["q".into(), "k".into(), "v".into()], seeds: Vec::new() },
            ] {
                let opts = CompileOptions { optimize, mode: mode.clone(), ..CompileOptions::default() };
                // Every kernel is validated by naga as it is planned.
                let compiled = compile(graph.clone(), &opts)
                    .unwrap_or_else(|e| panic!("{name} (optimize {optimize}, {mode:?}): {e}"));
                // Unoptimized, the mask reaches the WGSL as written (the optimizer may merge rolls).
                let nesting = compiled.plan.kernels.iter().map(|k| paren_nesting(&k.wgsl)).max().unwrap_or(0);
                let expected = if deep_wgsl && !optimize { MAX_MASK_DEPTH + MAX_SIZE_DEPTH } else { 0 };
                assert!(nesting >= expected, "{name}: WGSL nests {nesting} deep");
            }
        }
    }
}

#[test]
fn one_level_or_term_more_is_refused_when_the_spec_is_read() {
    let d = MAX_MASK_DEPTH;
    let groups = vec![format!("({})", chain(" & ", "causal", 8)); MAX_MASK_TERMS / 8].join(" | ");
    let cases = [
        (chain(" & ", "causal", d + 2), "mask nested deeper than 64 levels"),
        (format!("{}causal", "!".repeat(d + 1)), "mask nested deeper than 64 levels"),
        (
            format!("window({})", deep_size(MAX_SIZE_DEPTH + 1)),
            "size expression nested deeper than 64 levels",
        ),
        (format!("{groups} | sink(1)"), "mask has 129 terms; the kernels take at most 128"),
    ];
    for (mask, message) in cases {
        let error = schedule(&mask).expect_err("refused");
        assert!(error.contains(message) && error.contains("limits.toml:10:"), "{error}");
    }
}
