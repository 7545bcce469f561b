//! Outputs never overwrite inputs, are written whole or not at all, and the
//! tuning cache is repaired before `weft tune` measures (issue 11, item 3 and
//! the tuning-cache part of item 6).
//!
//! Refusals come before any GPU is opened, so every case of the tables runs
//! without an adapter; the input files hold placeholders for that reason.

mod common;

use common::hostile::{Case, case, check_all};

/// The files every case starts from: a spec, a graph, a checkpoint, an
/// adapter, input tensors and a tuning cache (`WEFT_TUNING_CACHE` points at it).
fn with_inputs(c: Case) -> Case {
    c.copy("examples/patterns/s2attn-roll.toml", "p.toml")
        .file("g.sexpr", "(graph placeholder)")
        .file("models/config.json", "{}")
        .file("models/model.safetensors", "weights")
        .file("adapter/adapter_config.json", "{}")
        .file("adapter/adapter_model.safetensors", "lora")
        .file("in.safetensors", "tensors")
        .file("tuning.toml", "format = 2\n")
        .env("WEFT_TUNING_CACHE", "{dir}/tuning.toml")
}

/// A command that writes `what` to the path in place of `OUT`, and the inputs it reads.
struct Writer {
    args: &'static [&'static str],
    what: &'static str,
    inputs: &'static [(&'static str, &'static str)],
}

const SPEC: (&str, &str) = ("p.toml", "spec");
const CACHE: (&str, &str) = ("tuning.toml", "tuning cache");

const WRITERS: &[Writer] = &[
    Writer { args: &["mask", "p.toml", "--out", "OUT"], what: "the mask", inputs: &[SPEC] },
    Writer { args: &["graph", "p.toml", "--out", "OUT"], what: "the graph", inputs: &[SPEC] },
    Writer {
        args: &["compile", "p.toml", "--emit", "graph", "--out", "OUT"],
        what: "the graph",
        inputs: &[SPEC],
    },
    Writer {
        args: &["compile", "g.sexpr", "--emit", "plan", "--out", "OUT"],
        what: "the plan",
        inputs: &[("g.sexpr", "graph"), CACHE],
    },
    Writer {
        args: &["compile", "models", "--pattern", "p.toml", "--emit", "opt", "--out", "OUT"],
        what: "the optimized graph",
        inputs: &[("models", "input checkpoint"), ("p.toml", "pattern spec"), CACHE],
    },
    Writer {
        args: &["compile", "models/config.json", "--emit", "plan", "--out", "OUT"],
        what: "the plan",
        inputs: &[("models/config.json", "model config")],
    },
    Writer {
        args: &["attn", "p.toml", "--input", "in.safetensors", "--out", "OUT"],
        what: "the attention outputs",
        inputs: &[SPEC, ("in.safetensors", "input tensors"), CACHE],
    },
    Writer {
        args: &[
            "forward",
            "models",
            "--input",
            "in.safetensors",
            "--pattern",
            "p.toml",
            "--adapter",
            "adapter",
            "--out",
            "OUT",
        ],
        what: "logits",
        inputs: &[
            ("models", "input checkpoint"),
            ("in.safetensors", "input tensors"),
            ("p.toml", "pattern spec"),
            ("adapter", "adapter"),
            CACHE,
        ],
    },
    Writer {
        args: &["export", "models", "--adapter", "adapter", "--out", "OUT"],
        what: "the merged checkpoint",
        inputs: &[("models", "input checkpoint"), ("adapter", "adapter")],
    },
];

fn args_with_out<'a>(writer: &'a Writer, out: &'a str) -> Vec<&'a str> {
    writer.args.iter().map(|a| if *a == "OUT" { out } else { *a }).collect()
}

/// Every writer, with its output naming each of its inputs: by the same
/// path, by a `./` path, through a symbolic link and through a hard link (to
/// a file inside a directory input, since directories have none).
#[test]
fn an_output_that_is_an_input_by_any_name_is_refused() {
    let mut cases = Vec::new();
    for writer in WRITERS {
        for &(input, input_what) in writer.inputs {
            let is_dir = matches!(input, "models" | "adapter");
            // The cache's path comes from the environment, so it is named as set there.
            let shown = if (input, input_what) == CACHE { "{dir}/tuning.toml" } else { input };
            let refused = |out: &str| {
                format!("refusing to write {} to {out}: it is the {input_what} {shown}", writer.what)
            };
            let name = |how: &str| format!("{} {input} {how}", writer.args[..2].join(" "));
            cases.push(
                with_inputs(case(&name("same path"), &args_with_out(writer, input))).expect(&refused(input)),
            );
            let dotted = format!("./{input}");
            cases.push(
                with_inputs(case(&name("dot path"), &args_with_out(writer, &dotted)))
                    .expect(&refused(&dotted)),
            );
            cases.push(
                with_inputs(case(&name("symlink"), &args_with_out(writer, "alias.out")))
                    .symlink("alias.out", input)
                    .expect(&refused("alias.out")),
            );
            if is_dir {
                let inner = if input == "models" {
                    "models/model.safetensors"
                } else {
                    "adapter/adapter_model.safetensors"
                };
                cases.push(
                    with_inputs(case(&name("hard link inside"), &args_with_out(writer, "alias.out")))
                        .hard_link("alias.out", inner)
                        .expect(&format!("refusing to write {} to alias.out: it is the file", writer.what))
                        .expect(&format!("{inner} of the {input_what} {input}, under another name (--out)")),
                );
            } else {
                cases.push(
                    with_inputs(case(&name("hard link"), &args_with_out(writer, "alias.out")))
                        .hard_link("alias.out", input)
                        .expect(&refused("alias.out")),
                );
            }
        }
    }
    check_all(&cases);
}

#[test]
fn an_output_inside_an_input_directory_is_refused() {
    fn forward(out: &str) -> Vec<&str> {
        vec!["forward", "models", "--input", "in.safetensors", "--adapter", "adapter", "--out", out]
    }
    fn export(out: &str) -> Vec<&str> {
        vec!["export", "models", "--adapter", "adapter", "--out", out]
    }
    let inside = |out: &str, what: &str, dir: &str| {
        format!("refusing to write {what} to {out}: it is inside the {dir} (--out)")
    };
    let out = "models/model.safetensors";
    let cases = vec![
        with_inputs(case("forward over the weights", &forward(out))).expect(&inside(
            out,
            "logits",
            "input checkpoint models",
        )),
        with_inputs(case("forward new file in checkpoint", &forward("models/logits.safetensors")))
            .expect(&inside("models/logits.safetensors", "logits", "input checkpoint models")),
        with_inputs(case("forward new subdir in checkpoint", &forward("models/new/x.safetensors")))
            .expect(&inside("models/new/x.safetensors", "logits", "input checkpoint models")),
        with_inputs(case("forward dotdot into checkpoint", &forward("./adapter/../models/x")))
            .expect(&inside("./adapter/../models/x", "logits", "input checkpoint models")),
        with_inputs(case("forward over the adapter", &forward("adapter/adapter_model.safetensors")))
            .expect(&inside("adapter/adapter_model.safetensors", "logits", "adapter adapter")),
        with_inputs(case("forward through a linked dir", &forward("m2/x.safetensors")))
            .symlink("m2", "models")
            .expect(&inside("m2/x.safetensors", "logits", "input checkpoint models")),
        with_inputs(case(
            "compile plan into checkpoint",
            &["compile", "models", "--emit", "plan", "--out", "models/plan.txt"],
        ))
        .expect(&inside("models/plan.txt", "the plan", "input checkpoint models")),
        with_inputs(case("forward output is a directory", &forward("newdir")))
            .file("newdir/keep", "")
            .expect("refusing to write logits to newdir: it is a directory (--out)"),
        with_inputs(case("export into the adapter", &export("adapter/merged")))
            .expect(&inside("adapter/merged", "the merged checkpoint", "adapter adapter")),
        with_inputs(case("export into the checkpoint", &export("models/merged")))
            .expect(&inside("models/merged", "the merged checkpoint", "input checkpoint models")),
        with_inputs(case("export over the working dir", &export(".")))
            .expect("refusing to replace . with the merged checkpoint: it holds the input checkpoint models"),
        with_inputs(case("export over a dir with notes", &export("merged")))
            .file("merged/config.json", "{}")
            .file("merged/notes.txt", "mine")
            .expect("refusing to replace merged with the merged checkpoint: it holds notes.txt, which weft did not write"),
        with_inputs(case("export onto a file", &export("merged")))
            .file("merged", "a file")
            .expect("refusing to write the merged checkpoint to merged: it is a file, not a directory (--out)"),
        with_inputs(case("export to stdout", &export("-")))
            .expect("cannot write the merged checkpoint to standard output (--out -): give a directory"),
    ];
    check_all(&cases);
}

/// `compile --emit wgsl|spirv` replaces its output directory whole: never
/// one that holds an input or files weft did not write.
#[test]
fn a_kernel_directory_that_would_lose_files_is_refused() {
    let compile =
        |emit: &'static str, out: &'static str| vec!["compile", "p.toml", "--emit", emit, "--out", out];
    let cases = vec![
        with_inputs(case("spirv into the working dir", &compile("spirv", "."))).expect(
            "refusing to replace . with kernels: it holds the spec p.toml, which would be lost (--out)",
        ),
        with_inputs(case(
            "wgsl into the checkpoint",
            &["compile", "models", "--emit", "wgsl", "--out", "models"],
        ))
        .expect("refusing to write kernels to models: it is the input checkpoint models (--out)"),
        with_inputs(case("wgsl over a dir with notes", &compile("wgsl", "k")))
            .file("k/old.wgsl", "old kernel")
            .file("k/notes.txt", "mine")
            .expect("refusing to replace k with kernels: it holds notes.txt, which weft did not write"),
        with_inputs(case("spirv onto a file", &compile("spirv", "k")))
            .file("k", "a file")
            .expect("refusing to write kernels to k: it is a file, not a directory (--out)"),
        with_inputs(case("spirv onto the spec", &compile("spirv", "p.toml")))
            .expect("refusing to write kernels to p.toml: it is the spec p.toml (--out)"),
        with_inputs(case("spirv to stdout", &compile("spirv", "-")))
            .expect("--emit Spirv writes one file per kernel: give a directory with --out"),
    ];
    check_all(&cases);
}

/// A full disk is an error, never a silent success (`/dev/full` is written
/// in place: renaming over a device would replace it).
#[test]
fn a_full_disk_is_an_error() {
    let full = "No space left on device";
    let cases = vec![
        with_inputs(case("graph to dev full", &["graph", "p.toml", "--out", "/dev/full"]))
            .expect("cannot write /dev/full")
            .expect(full),
        with_inputs(case(
            "compile graph to dev full",
            &["compile", "p.toml", "--emit", "graph", "--out", "/dev/full"],
        ))
        .expect(full),
        with_inputs(case(
            "mask through a link to dev full",
            &["mask", "p.toml", "--seq-len", "64", "--heads", "2", "--out", "full.npy"],
        ))
        .symlink("full.npy", "/dev/full")
        .expect("cannot write full.npy")
        .expect(full),
    ];
    check_all(&cases);
}

/// `weft tune` finds out before measuring that it could not save.
#[test]
fn an_unwritable_tuning_cache_is_an_error_before_tuning() {
    let tune = ["tune", "--quick", "--budget", "1"];
    let cases = vec![
        case("cache is a directory", &tune)
            .file("cachedir/keep", "")
            .env("WEFT_TUNING_CACHE", "{dir}/cachedir")
            .expect("cannot write the tuning cache {dir}/cachedir: it is a directory"),
        case("cache under a file", &tune)
            .file("afile", "")
            .env("WEFT_TUNING_CACHE", "{dir}/afile/tuning.toml")
            .expect("cannot write the tuning cache {dir}/afile/tuning.toml: {dir}/afile is not a directory"),
        case("cache is a device", &tune)
            .env("WEFT_TUNING_CACHE", "/dev/full")
            .expect("cannot write the tuning cache /dev/full: it is not a regular file"),
    ];
    check_all(&cases);
}

const NOT_UTF8: &[u8] = b"format = 2\n\xff\xfe not text";

/// A tuning cache that is not UTF-8 is moved aside with one line before
/// measuring, and the new results are saved.
#[test]
fn tune_repairs_a_tuning_cache_that_is_not_utf8() {
    if !common::gpu() {
        return;
    }
    let dir = common::scratch("hostile_paths/tune-repair");
    let cache = dir.join("tuning.toml");
    std::fs::write(&cache, NOT_UTF8).unwrap();
    let out = common::weft_with_cache(
        &["tune", "--quick", "--budget", "1", "--seq-len", "64", "--heads", "1", "--repeats", "1"],
        &cache,
    );
    let err = common::stderr(&out);
    assert!(out.status.success(), "{err}");
    let line = format!(
        "warning: the tuning cache {} is not valid: not UTF-8 text (byte 11); moved it aside to {}.bad-",
        cache.display(),
        cache.display()
    );
    assert!(err.lines().next().is_some_and(|l| l.starts_with(&line)), "{err}");
    let aside: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains(".bad-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(std::fs::read(&aside[0]).unwrap(), NOT_UTF8, "the bad file is kept as it was");
    let saved = std::fs::read_to_string(&cache).expect("the new cache is UTF-8");
    assert!(saved.contains("format = 2"), "{saved}");
}

/// Commands that only read the cache warn and run with the defaults, leaving the file alone.
#[test]
fn readers_warn_about_a_tuning_cache_that_is_not_utf8() {
    let dir = common::scratch("hostile_paths/reader-warns");
    let cache = dir.join("tuning.toml");
    std::fs::write(&cache, NOT_UTF8).unwrap();
    let spec = common::example("s2attn-roll.toml");
    let out =
        common::weft_with_cache(&["compile", spec.to_str().unwrap(), "--emit", "plan", "--out", "-"], &cache);
    let err = common::stderr(&out);
    assert!(out.status.success(), "{err}");
    if common::gpu() {
        assert!(
            err.contains("is not valid: not UTF-8 text (byte 11); using the default kernel configuration"),
            "{err}"
        );
    }
    assert_eq!(std::fs::read(&cache).unwrap(), NOT_UTF8);
}

/// `compile --emit spirv --out DIR` replaces an existing DIR whole (no stale
/// kernel stays) and removes what a crashed earlier write left beside it.
#[test]
fn compile_replaces_a_kernel_directory_whole() {
    let dir = common::scratch("hostile_paths/replace-whole");
    let out = dir.join("kernels");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("stale_kernel.spv"), b"old").unwrap();
    let leftover = dir.join(".weft-tmp-4999999-kernels");
    std::fs::create_dir(&leftover).unwrap();
    std::fs::write(leftover.join("half.spv"), b"half").unwrap();
    let spec = common::example("s2attn-roll.toml");
    let run =
        common::weft(&["compile", spec.to_str().unwrap(), "--emit", "spirv", "--out", out.to_str().unwrap()]);
    assert!(run.status.success(), "{}", common::stderr(&run));
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(!names.is_empty() && names.iter().all(|n| n.ends_with(".spv")), "{names:?}");
    assert!(!names.contains(&"stale_kernel.spv".to_string()), "{names:?}");
    let beside: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(beside, ["kernels"], "no temporary or leftover beside the output");
}

/// `--out -` is standard output only where the output is text (`mask`'s
/// ASCII, `graph`, `compile`'s graphs and plan). Everywhere else it is
/// refused, where it used to become a file or directory named `-`.
#[test]
fn an_out_of_dash_is_refused_where_the_output_is_not_text() {
    let file = "give a file name";
    let dir = "give a directory";
    let table: &[(&[&str], &str, &str)] = &[
        (&["attn", "p.toml", "--input", "in.safetensors", "--out", "-"], "the attention outputs", file),
        (&["forward", "models", "--input", "in.safetensors", "--out", "-"], "logits", file),
        (
            &["generate", "models", "--input", "in.safetensors", "--max-new-tokens", "1", "--out", "-"],
            "output ids",
            file,
        ),
        (
            &["eval", "models", "--data", "in.safetensors", "--seq-len", "8", "--json", "-"],
            "evaluation results",
            file,
        ),
        (&["tokenizer", "--data", "p.toml", "--out", "-"], "tokenizer", file),
        (&["export", "models", "--adapter", "adapter", "--out", "-"], "the merged checkpoint", dir),
        (
            &["train", "--model", "models", "--data", "in.safetensors", "--seq-len", "8", "--out", "-"],
            "the run",
            dir,
        ),
        (&["compare", "--out", "-", "a=adapter"], "the comparison", dir),
        (&["demo", "--out", "-"], "the demo's runs", dir),
        (&["corpus", "--out", "-"], "the corpus", dir),
    ];
    let cases: Vec<Case> = table
        .iter()
        .map(|&(args, what, needed)| {
            let flag = if args.contains(&"--json") { "--json" } else { "--out" };
            with_inputs(case(&format!("{} --out -", args[0]), args))
                .expect(&format!("cannot write {what} to standard output ({flag} -): {needed}"))
        })
        .collect();
    check_all(&cases);
}
