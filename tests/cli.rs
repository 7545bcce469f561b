//! End-to-end tests of the `weft` command line: examples, errors, outputs.

mod common;

use common::{example, ok, root, scratch, stderr, stdout, weft};

#[test]
fn every_example_passes_check() {
    let mut n = 0;
    for entry in std::fs::read_dir(root().join("examples/patterns")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let out = ok(&["check", path.to_str().unwrap()]);
            assert!(out.contains(": ok"), "{}: {out}", path.display());
            n += 1;
        }
    }
    assert!(n >= 6, "expected at least 6 example patterns, found {n}");
}

/// The recorded errors, keyed by spec file name, from `tests/bad_specs/errors.expected`.
fn recorded_errors() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(root().join("tests/bad_specs/errors.expected")).unwrap();
    text.split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .map(|block| {
            let message = block.lines().next().unwrap().to_string();
            let location = block.lines().nth(1).unwrap().trim_start_matches("  --> ").to_string();
            (location, message)
        })
        .collect()
}

#[test]
fn every_bad_spec_fails_cleanly_with_its_message_and_position() {
    let recorded = recorded_errors();
    assert!(recorded.len() >= 12, "expected at least 12 malformed specs");
    for (location, message) in recorded {
        // location is "bad_specs/NAME.toml:LINE:COL"
        let (file, line_col) = location.split_once(':').unwrap();
        let path = root().join("tests").join(file);
        let o = weft(&["check", path.to_str().unwrap()]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{file}: expected exit code 1, stderr:\n{err}");
        assert!(err.starts_with(&format!("error: {message}\n")), "{file}: stderr was:\n{err}");
        assert!(err.contains(&format!("{}:{line_col}", path.display())), "{file}: no position in:\n{err}");
        assert!(!err.contains("panicked"), "{file} panicked:\n{err}");
        assert!(stdout(&o).is_empty());
    }
}

#[test]
fn sizes_on_the_command_line_override_the_file() {
    let out =
        ok(&["check", example("s2attn-roll.toml").to_str().unwrap(), "--seq-len", "64", "--heads", "4"]);
    assert!(out.contains("N = 64 (seq_len), H = 4 (n_heads)"), "{out}");
    let shifted = out.lines().find(|l| l.contains("heads 2..4")).unwrap_or_default();
    assert!(shifted.ends_with(" roll(8, causal & groups(16))"), "{out}");
    // An override that breaks divisibility is reported against the file.
    let o = weft(&["check", example("s2attn-roll.toml").to_str().unwrap(), "--seq-len", "90"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("seq_len N = 90 is not divisible by 22"), "{}", stderr(&o));
}

#[test]
fn inspect_counts_tiles_and_compares_with_causal() {
    let spec = example("causal.toml");
    let out = ok(&["inspect", spec.to_str().unwrap(), "--seq-len", "256", "--heads", "2", "--block", "64"]);
    // 4 x 4 tiles: 6 full below the diagonal, 4 partial on it, 6 empty above.
    let row = out.lines().find(|l| l.trim_start().starts_with("0..2")).unwrap();
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cols[..6], &["0..2", "0.5020", "1.0000", "6", "6", "4"], "{row}");
    assert_eq!(cols[7], "1.0000");

    let spec = example("s2attn-roll.toml");
    let out = ok(&["inspect", spec.to_str().unwrap(), "--seq-len", "1024", "--heads", "4"]);
    assert!(out.contains("all 4 heads:"), "{out}");
    let ratio: f64 =
        out.split("x of full causal").next().unwrap().rsplit(' ').next().unwrap().parse().unwrap();
    assert!(
        (0.2..0.35).contains(&ratio),
        "S2-Attn at G = N/4 should do about a quarter of causal's work: {ratio}"
    );
}

#[test]
fn inspect_shows_every_pattern_of_a_hybrid_schedule() {
    let spec = example("longgen-hybrid.toml");
    let out = ok(&["inspect", spec.to_str().unwrap(), "--seq-len", "512", "--heads", "2", "--layers", "6"]);
    assert!(out.contains("pattern dense (layers 2..4)"), "{out}");
    assert!(out.contains("pattern sparse (layers 0..2, 4..6)"), "{out}");
    let one = ok(&["inspect", spec.to_str().unwrap(), "--seq-len", "512", "--layers", "6", "--layer", "3"]);
    assert!(one.contains("pattern dense") && !one.contains("pattern sparse"), "{one}");
}

/// The decode cache each layer keeps, from its masks' reach: LongGen's sparse
/// layers hold their sinks and a ring buffer of the window, the dense layer
/// every key; under GQA a KV head keeps its query heads' union.
#[test]
fn inspect_kv_cache_sizes_each_layers_cache_from_its_masks() {
    let spec = example("longgen-hybrid.toml");
    let spec = spec.to_str().unwrap();
    let out = ok(&[
        "inspect",
        spec,
        "--kv-cache",
        "--seq-len",
        "4096",
        "--heads",
        "4",
        "--layers",
        "3",
        "--head-dim",
        "64",
    ]);
    let rows: Vec<Vec<&str>> = out.lines().skip(2).take(3).map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows[0], ["0..1", "sparse", "0..4", "64", "+", "1024", "1088", "2.125", "0.2656"], "{out}");
    assert_eq!(rows[1], ["1..2", "dense", "0..4", "N", "4096", "8.000", "1.0000"], "{out}");
    assert_eq!(rows[2][..2], ["2..3", "sparse"], "{out}");
    // (2 * 1088 + 4096) / (3 * 4096) of the full cache.
    assert!(
        out.contains("all 3 layers: 12.250 MiB, 0.5104x of a full cache (24.000 MiB); 49.0% smaller"),
        "{out}"
    );
    assert!(out.contains("layers 1..2: the cache grows with the sequence"), "{out}");

    let spec = example("longgen-local-stride.toml");
    let gqa = ok(&[
        "inspect",
        spec.to_str().unwrap(),
        "--kv-cache",
        "--seq-len",
        "8192",
        "--heads",
        "8",
        "--kv-heads",
        "2",
    ]);
    assert!(gqa.contains(" 0..2     16*64 + 4*64*ceil(N/512) "), "{gqa}");

    let roll = ok(&[
        "inspect",
        example("s2attn-roll.toml").to_str().unwrap(),
        "--kv-cache",
        "--seq-len",
        "1024",
        "--heads",
        "4",
    ]);
    assert!(roll.contains("a mask reads the sequence length (roll)"), "{roll}");

    let o = weft(&["inspect", spec.to_str().unwrap(), "--kv-cache", "--heads", "8", "--kv-heads", "3"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "error: --kv-heads 3 does not divide the 8 heads of pattern `longgen-local-stride`\n"
    );
}

#[test]
fn png_is_a_picture_of_the_mask() {
    let dir = scratch("png");
    let out = dir.join("s2.png");
    let spec = example("s2attn-roll.toml");
    ok(&["mask", spec.to_str().unwrap(), "--seq-len", "64", "--heads", "4", "--out", out.to_str().unwrap()]);
    let img = image::open(&out).unwrap().to_rgb8();
    assert!(img.width() >= 2 * 64 && img.height() >= 2 * 64, "{}x{}", img.width(), img.height());
    let dark = img.pixels().filter(|p| p[0] < 60 && p[2] > 60).count();
    assert!(dark > 4 * 64, "too few allowed pixels: {dark}");
    // No temporary file is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 1, "{leftovers:?}");
}

#[test]
fn mask_rejects_bad_requests_with_clear_errors() {
    let spec = example("s2attn-roll.toml");
    let spec = spec.to_str().unwrap();
    let cases: [(&[&str], &str); 3] = [
        (
            &["--seq-len", "64", "--heads", "4", "--head", "4", "--out", "-"],
            "--head 4 is out of range: the pattern has 4 heads (0..4)",
        ),
        (
            &["--seq-len", "64", "--out", "mask.txt"],
            "cannot tell the format of mask.txt: use a .npy or .png file, or - for ASCII",
        ),
        (
            &["--seq-len", "64", "--layer", "40", "--out", "-"],
            "--layer 40 is out of range: the schedule has 32 layers (0..32)",
        ),
    ];
    for (args, message) in cases {
        let o = weft(&[&["mask", spec], args].concat());
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let err = stderr(&o);
        assert!(err.starts_with(&format!("error: {message}")), "{args:?}: {err}");
    }
    // A zero size is a usage error of the flag (tests/hostile_sizes.rs has the rest).
    let o = weft(&["mask", spec, "--seq-len", "0", "--out", "-"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("'--seq-len <N>': the sequence length must be at least 1"), "{}", stderr(&o));
    let o = weft(&["check", "no/such/spec.toml"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).starts_with("error: cannot read spec no/such/spec.toml: No such file"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn every_command_has_help() {
    let top = ok(&["--help"]);
    for command in ["check", "mask", "inspect", "graph"] {
        assert!(top.contains(command), "{top}");
        let help = ok(&[command, "--help"]);
        assert!(help.contains("Usage: weft") && help.contains("--seq-len"), "{command}: {help}");
    }
}

#[test]
fn graph_emits_the_reference_graph_as_sexpr_and_dot() {
    let spec = example("s2attn-roll.toml");
    let spec = spec.to_str().unwrap();
    let sexpr = ok(&["graph", spec, "--seq-len", "64", "--heads", "4", "--head-dim", "16", "--batch", "2"]);
    let golden = std::fs::read_to_string(root().join("tests/golden/graphs/s2attn-roll.sexpr")).unwrap();
    assert_eq!(sexpr, golden);
    let dot = ok(&["graph", spec, "--seq-len", "64", "--heads", "4", "--emit", "dot"]);
    assert!(dot.starts_with("digraph") && dot.contains("roll") && dot.contains("attention"), "{dot}");
    let dir = scratch("graph");
    let out = dir.join("g.sexpr");
    ok(&[
        "graph",
        spec,
        "--seq-len",
        "64",
        "--heads",
        "4",
        "--head-dim",
        "16",
        "--batch",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read_to_string(out).unwrap(), golden);
}
