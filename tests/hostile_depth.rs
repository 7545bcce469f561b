//! Hostile input, nesting and mask complexity: masks and sizes nested 100,000
//! levels deep, masks with more terms than the kernels take, and deeply nested
//! TOML, JSON and s-expressions are refused by every command, with the limit
//! and the place, in under a second (see `docs/limits.md`).

mod common;

use std::time::Duration;

use common::hostile::{Case, case, check_all};

/// How deep the hostile texts nest: far past every limit.
const DEEP: usize = 100_000;
/// The acceptance bound for refusing a deep mask.
const REFUSAL_TIME: Duration = Duration::from_secs(1);

const MASK_TOO_DEEP: &str = "mask nested deeper than 64 levels";
const SIZE_TOO_DEEP: &str = "size expression nested deeper than 64 levels";

/// `n` copies of `item` joined by `sep`.
fn join(item: &str, sep: &str, n: usize) -> String {
    vec![item; n].join(sep)
}

/// Deep masks of every kind, each with the column (in a spec's `mask = "…"`
/// line, where the mask starts at column 9) of the token that crosses the limit.
fn deep_masks() -> Vec<(&'static str, String, usize)> {
    vec![
        ("parentheses", format!("{}causal{}", "(".repeat(DEEP), ")".repeat(DEEP)), 9 + 64),
        ("bangs", format!("{}causal", "!".repeat(DEEP)), 9 + 64),
        // The 65th operator of a chain is the 65th level.
        ("and-chain", join("causal", " & ", DEEP), 9 + 64 * 9 + 7),
        ("or-chain", join("causal", " | ", DEEP), 9 + 64 * 9 + 7),
        ("rolls", format!("{}causal{}", "roll(1, ".repeat(DEEP), ")".repeat(DEEP)), 9 + 64 * 8),
    ]
}

/// A spec with `mask` on every head and `vars` in `[vars]`; the mask is on line 11.
fn spec_with(vars: &str, range: &str, mask: &str) -> String {
    format!(
        "name = \"deep\"\n[defaults]\nseq_len = 64\nn_heads = 2\nn_layers = 1\nhead_dim = 8\n\
         [vars]\n{vars}\n[[heads]]\nrange = \"{range}\"\nmask = \"{mask}\"\n"
    )
}

fn spec(mask: &str) -> String {
    spec_with("", "0..H", mask)
}

/// `input_ids` [1, 4] as I64, the way PyTorch saves token ids.
fn token_ids() -> Vec<u8> {
    let bytes: Vec<u8> = [1i64, 2, 3, 4].iter().flat_map(|v| v.to_le_bytes()).collect();
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::I64, vec![1, 4], &bytes)
        .expect("a valid view");
    safetensors::serialize([("input_ids", view)], None).expect("serializable")
}

/// Every command that reads a spec, run on `spec.toml` (with the inputs it needs).
fn every_spec_command(name: &str) -> Vec<Case> {
    let runs: Vec<(&str, Vec<&str>)> = vec![
        ("check", vec!["check", "spec.toml"]),
        ("compile plan", vec!["compile", "spec.toml", "--emit", "plan", "--out", "-"]),
        ("compile wgsl", vec!["compile", "spec.toml", "--emit", "wgsl", "--out", "kernels"]),
        ("compile training", vec!["compile", "spec.toml", "--train", "--emit", "plan", "--out", "-"]),
        ("graph", vec!["graph", "spec.toml"]),
        ("inspect", vec!["inspect", "spec.toml"]),
        ("inspect kernels", vec!["inspect", "kernels", "spec.toml"]),
        ("mask", vec!["mask", "spec.toml", "--out", "mask.png"]),
        ("attn", vec!["attn", "spec.toml", "--input", "in.safetensors", "--out", "out.safetensors"]),
        (
            "forward",
            vec![
                "forward",
                "model",
                "--input",
                "ids.safetensors",
                "--out",
                "out.safetensors",
                "--pattern",
                "spec.toml",
            ],
        ),
    ];
    runs.into_iter()
        .map(|(command, args)| {
            let c = case(&format!("{name} via {command}"), &args);
            match command {
                "attn" => c.copy("tests/data/s2attn-roll-input.safetensors", "in.safetensors"),
                "forward" => c.copy("tests/data/llama-2layer", "model").file("ids.safetensors", token_ids()),
                _ => c,
            }
        })
        .collect()
}

#[test]
fn deep_masks_are_refused_by_every_command_in_under_a_second() {
    let mut cases = Vec::new();
    for (kind, mask, column) in deep_masks() {
        let text = spec(&mask);
        for c in every_spec_command(&format!("mask of {DEEP} {kind}")) {
            cases.push(
                c.file("spec.toml", &text)
                    .expect(MASK_TOO_DEEP)
                    .expect(&format!("spec.toml:11:{column}"))
                    .time_limit(REFUSAL_TIME),
            );
        }
    }
    check_all(&cases);
}

#[test]
fn deep_masks_in_sexpr_graphs_are_refused() {
    let graph = |op: &str, attrs: &str| {
        format!(
            "(graph deep\n  (%0 (input q) f32[1, 2, 64, 8])\n  (%1 (input k) f32[1, 2, 64, 8])\n  \
             (%2 (input v) f32[1, 2, 64, 8])\n  (%3 ({op} %0 %1 %2 {attrs}) f32[1, 2, 64, 8])\n  (output o %3))\n"
        )
    };
    let mut cases = Vec::new();
    for (kind, mask, _) in deep_masks() {
        let attention = graph("attention", &format!(":mask \"{mask}\" :head-offset 0 :scale 0.35"));
        let fused = graph("fused-attention", &format!(":masks ((0 2 \"{mask}\")) :scale 0.35"));
        for (op, text) in [("attention", attention), ("fused-attention", fused)] {
            for emit in ["graph", "plan"] {
                let name = format!("{op} :mask of {DEEP} {kind}, --emit {emit}");
                cases.push(
                    case(&name, &["compile", "g.sexpr", "--emit", emit, "--out", "-"])
                        .file("g.sexpr", &text)
                        .expect(MASK_TOO_DEEP)
                        .expect("g.sexpr:5:")
                        .time_limit(REFUSAL_TIME),
                );
            }
        }
    }
    // The s-expression grammar itself nests one level (a node's op); deeper is a syntax error.
    let parens = format!("(graph deep {}{})", "(".repeat(DEEP), ")".repeat(DEEP));
    cases.push(
        case("s-expression of 100000 parentheses", &["compile", "g.sexpr", "--emit", "plan", "--out", "-"])
            .file("g.sexpr", parens)
            .expect("g.sexpr:1:14: expected a node id such as `%3` or `output`, found `(`"),
    );
    check_all(&cases);
}

#[test]
fn deep_size_expressions_are_refused_where_they_are_written() {
    let parens = format!("{}4{}", "(".repeat(DEEP), ")".repeat(DEEP));
    let minus_chain = format!("N{}", " - 1".repeat(DEEP));
    let negations = format!("{}4", "-".repeat(DEEP));
    let product = join("2", " * ", DEEP);
    let table: Vec<(&str, String, &str)> = vec![
        ("[vars] parentheses", spec_with(&format!("G = \"{parens}\""), "0..H", "causal"), "spec.toml:8:"),
        ("[vars] chain", spec_with(&format!("G = \"{minus_chain}\""), "0..H", "causal"), "spec.toml:8:"),
        ("[vars] negations", spec_with(&format!("G = \"{negations}\""), "0..H", "causal"), "spec.toml:8:"),
        ("[vars] product", spec_with(&format!("G = \"{product}\""), "0..H", "causal"), "spec.toml:8:"),
        ("head range", spec_with("", &format!("0..{minus_chain}"), "causal"), "spec.toml:10:"),
        ("window size", spec(&format!("window({parens})")), "spec.toml:11:"),
        ("roll offset", spec(&format!("roll({minus_chain}, causal)")), "spec.toml:11:"),
    ];
    let cases: Vec<Case> = table
        .into_iter()
        .map(|(name, text, at)| {
            case(&format!("size of {DEEP} levels in {name}"), &["check", "spec.toml"])
                .file("spec.toml", text)
                .expect(SIZE_TOO_DEEP)
                .expect(at)
                .time_limit(REFUSAL_TIME)
        })
        .collect();
    check_all(&cases);
}

#[test]
fn long_chains_of_variables_are_refused() {
    // `v0 = "v1 + 1"`, …: evaluating v0 walks the whole chain.
    let chain: String = (0..DEEP).map(|i| format!("v{i} = \"v{} + 1\"\n", i + 1)).collect();
    let vars = format!("{chain}v{DEEP} = \"1\"");
    // A cycle through every variable is the longest chain there is.
    let cycle: String = (0..DEEP).map(|i| format!("v{i} = \"v{} + 1\"\n", (i + 1) % DEEP)).collect();
    let cases: Vec<Case> = [("chain", vars), ("cycle", cycle)]
        .into_iter()
        .map(|(name, vars)| {
            case(&format!("[vars] {name} of {DEEP}"), &["check", "spec.toml"])
                .file("spec.toml", spec_with(&vars, "0..H", "window(v0)"))
                .expect("variable `v0` is defined through a chain of more than 64 variables")
                .expect("spec.toml:72:7")
                .time_limit(REFUSAL_TIME)
        })
        .collect();
    check_all(&cases);
}

#[test]
fn masks_with_more_terms_than_the_kernels_take_are_refused_at_check() {
    // Groups of 8 keep the nesting low: only the term count is over.
    let group = format!("({})", join("causal", " & ", 8));
    let over = format!("{} | sink(1)", join(&group, " | ", 16));
    let huge = join(&format!("({})", join(&group, " | ", 8)), " | ", 8);
    let message = |terms: usize| format!("mask has {terms} terms; the kernels take at most 128");
    let mut cases = Vec::new();
    for (mask, terms) in [(over, 129), (huge, 512)] {
        let text = spec(&mask);
        for c in every_spec_command(&format!("mask of {terms} terms")) {
            cases.push(c.file("spec.toml", &text).expect(&message(terms)).expect("spec.toml:11:9"));
        }
    }
    check_all(&cases);
}

#[test]
fn deeply_nested_toml_and_json_are_refused() {
    let arrays = format!("name = \"deep\"\nx = {}{}\n", "[".repeat(DEEP), "]".repeat(DEEP));
    let tables = format!("name = \"deep\"\nx = {}1{}\n", "{ a = ".repeat(DEEP), " }".repeat(DEEP));
    let dotted = format!("name = \"deep\"\n{} = 1\n", join("a", ".", DEEP));
    let header = format!("name = \"deep\"\n[{}]\n", join("a", ".", DEEP));
    let mut cases: Vec<Case> =
        [("arrays", arrays), ("inline tables", tables), ("dotted keys", dotted), ("a table header", header)]
            .into_iter()
            .map(|(name, text)| {
                case(&format!("TOML spec with {DEEP} nested {name}"), &["check", "spec.toml"])
                    .file("spec.toml", text)
                    .expect("invalid TOML")
                    .expect("recursion")
            })
            .collect();
    let json = format!("{{\"model_type\": {}{}}}", "[".repeat(DEEP), "]".repeat(DEEP));
    cases.push(
        case(
            "config.json with 100000 nested arrays",
            &["compile", "model/config.json", "--emit", "graph", "--out", "-"],
        )
        .file("model/config.json", json)
        .expect("model/config.json:1:")
        .expect("recursion limit exceeded"),
    );
    check_all(&cases);
}
