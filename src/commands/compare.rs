//! `weft compare`: training runs and their evaluations side by side, as one
//! JSON file, a markdown table and two plots (the loss curves of every run on
//! one figure; perplexity against the evaluation length).
//!
//! A run is a `weft train` run directory (its `metrics.jsonl`, and the
//! `eval.json` beside it if there is one) or a `weft eval --json` file alone,
//! e.g. for a base model that was not trained in the comparison.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use serde::{Deserialize, Serialize};

use weft_runtime::io::{OutputError, check_output};

use crate::output::{Input, Output, OutputKind, write_atomically};
use crate::render::plot::{self, Series};

/// What `weft eval --json` writes beside a run, by the name this reads.
pub const EVAL_FILE: &str = "eval.json";

#[derive(Args, Debug)]
pub struct CompareArgs {
    /// Runs to compare, in order, each `NAME=PATH`: a `weft train` run directory (its
    /// metrics.jsonl, and eval.json if present) or a `weft eval --json` file
    #[arg(required = true, value_name = "NAME=PATH")]
    pub runs: Vec<String>,
    /// Directory for results.json, results.md, loss.png and perplexity.png
    #[arg(long, short, value_name = "DIR")]
    pub out: PathBuf,
    /// Updates averaged per point of the loss curves
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub smooth: usize,
}

/// One run's figures; lengths are keys as `weft eval --json` writes them.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RunResult {
    pub name: String,
    pub path: PathBuf,
    pub updates: Option<u64>,
    pub tokens: Option<u64>,
    /// Wall time of the updates, the first (which compiles) included.
    pub train_seconds: Option<f64>,
    /// Median wall time of one update, the first left out.
    pub median_update_seconds: Option<f64>,
    /// Mean training loss of the last tenth of the updates.
    pub final_loss: Option<f64>,
    pub perplexity: BTreeMap<String, f64>,
    pub passkey: BTreeMap<String, f64>,
    /// (update, loss), one per update.
    #[serde(skip)]
    pub losses: Vec<(f64, f64)>,
}

#[derive(Deserialize)]
struct UpdateRecord {
    step: u64,
    loss: f64,
    seconds: f64,
    tokens: u64,
}

#[derive(Deserialize, Default)]
struct EvalFile {
    #[serde(default)]
    perplexity: BTreeMap<String, f64>,
    #[serde(default)]
    passkey: BTreeMap<String, f64>,
}

/// The files `compare` writes under `--out`.
const OUTPUTS: [&str; 4] = ["results.json", "results.md", "loss.png", "perplexity.png"];

pub fn run(args: &CompareArgs) -> anyhow::Result<()> {
    if args.out.as_os_str().is_empty() {
        bail!("--out is empty: give the directory to write the comparison to");
    }
    crate::output::directory_not_stdout(&args.out, "the comparison")?;
    let mut named = Vec::with_capacity(args.runs.len());
    for spec in &args.runs {
        let Some((name, path)) = spec.split_once('=').filter(|(n, p)| !n.is_empty() && !p.is_empty()) else {
            bail!("`{spec}`: give each run as NAME=PATH (a run directory or an eval JSON file)");
        };
        if named.iter().any(|(n, _): &(&str, &Path)| *n == name) {
            bail!("two runs are named `{name}`");
        }
        named.push((name, Path::new(path)));
    }
    // No output may land on or inside a run (a run directory's own loss.png, say).
    let inputs: Vec<Input> = named.iter().map(|(_, path)| Input { path, what: "run" }).collect();
    for file in OUTPUTS {
        let path = args.out.join(file);
        let output = Output { path: &path, what: "the comparison", flag: "--out", kind: OutputKind::File };
        match check_output(&output, &inputs) {
            // --out is created below.
            Ok(()) | Err(OutputError::NoParent { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let mut results = Vec::with_capacity(named.len());
    for (name, path) in named {
        results.push(load(name, path)?);
    }
    std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    let json = serde_json::to_string_pretty(&serde_json::json!({ "runs": results }))?;
    write_atomically(&args.out.join("results.json"), |w| Ok(w.write_all(json.as_bytes())?))?;
    let table = markdown(&results);
    write_atomically(&args.out.join("results.md"), |w| Ok(w.write_all(table.as_bytes())?))?;
    out!("{table}");

    let smoothed: Vec<(String, Vec<(f64, f64)>)> = results
        .iter()
        .filter(|r| !r.losses.is_empty())
        .map(|r| (r.name.clone(), moving_average(&r.losses, args.smooth.max(1))))
        .collect();
    if !smoothed.is_empty() {
        let series: Vec<Series> = smoothed.iter().map(|(n, p)| Series { name: n, points: p }).collect();
        let title = format!("training loss ({}-update mean)", args.smooth.max(1));
        plot::write(&args.out.join("loss.png"), &title, "update", &series)?;
    }
    let curves: Vec<(String, Vec<(f64, f64)>)> = results
        .iter()
        .filter(|r| !r.perplexity.is_empty())
        .map(|r| (r.name.clone(), by_length(&r.perplexity)))
        .collect();
    if !curves.is_empty() {
        let series: Vec<Series> = curves.iter().map(|(n, p)| Series { name: n, points: p }).collect();
        plot::write(
            &args.out.join("perplexity.png"),
            "held-out perplexity",
            "evaluation length (tokens)",
            &series,
        )?;
    }
    outln!("wrote results.json, results.md and the plots to {}", args.out.display());
    Ok(())
}

/// A run directory's metrics and eval.json, or an eval JSON file.
pub fn load(name: &str, path: &Path) -> anyhow::Result<RunResult> {
    let mut result = RunResult { name: name.to_string(), path: path.to_path_buf(), ..RunResult::default() };
    let eval_path = if path.is_dir() {
        let metrics = path.join("metrics.jsonl");
        if metrics.exists() {
            read_metrics(&metrics, &mut result)?;
        }
        Some(path.join(EVAL_FILE)).filter(|p| p.exists())
    } else if path.is_file() {
        Some(path.to_path_buf())
    } else {
        bail!("run `{name}`: {} does not exist", path.display());
    };
    if let Some(eval_path) = eval_path {
        let text = std::fs::read_to_string(&eval_path)
            .with_context(|| format!("cannot read {}", eval_path.display()))?;
        let eval: EvalFile = serde_json::from_str(&text)
            .with_context(|| format!("{}: not the JSON `weft eval --json` writes", eval_path.display()))?;
        result.perplexity = eval.perplexity;
        result.passkey = eval.passkey;
    }
    if result.losses.is_empty() && result.perplexity.is_empty() && result.passkey.is_empty() {
        bail!("run `{name}`: {} holds neither metrics.jsonl nor {EVAL_FILE}", path.display());
    }
    Ok(result)
}

/// The update records of metrics.jsonl (eval records skipped); where a
/// resumed run wrote an update twice, the last record counts.
fn read_metrics(path: &Path, result: &mut RunResult) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut updates: BTreeMap<u64, UpdateRecord> = BTreeMap::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let value: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("{}:{}: not JSON", path.display(), i + 1))?;
        if value.get("loss").is_none() {
            continue;
        }
        let record: UpdateRecord = serde_json::from_value(value)
            .with_context(|| format!("{}:{}: not an update record", path.display(), i + 1))?;
        updates.insert(record.step, record);
    }
    let Some(last) = updates.values().next_back() else { return Ok(()) };
    result.updates = Some(last.step);
    result.tokens = Some(last.tokens);
    result.train_seconds = Some(updates.values().map(|u| u.seconds).sum());
    let mut times: Vec<f64> = updates.values().skip(1).map(|u| u.seconds).collect();
    times.sort_by(f64::total_cmp);
    result.median_update_seconds = times.get(times.len() / 2).copied();
    let tail = (updates.len() / 10).max(1);
    result.final_loss = Some(updates.values().rev().take(tail).map(|u| u.loss).sum::<f64>() / tail as f64);
    result.losses = updates.values().map(|u| (u.step as f64, u.loss)).collect();
    Ok(())
}

/// Means of `window` consecutive points, one per window.
fn moving_average(points: &[(f64, f64)], window: usize) -> Vec<(f64, f64)> {
    points
        .chunks(window)
        .map(|c| {
            let n = c.len() as f64;
            (c.iter().map(|p| p.0).sum::<f64>() / n, c.iter().map(|p| p.1).sum::<f64>() / n)
        })
        .collect()
}

/// (length, value), by length; keys that are not lengths are left out.
fn by_length(values: &BTreeMap<String, f64>) -> Vec<(f64, f64)> {
    let mut points: Vec<(f64, f64)> =
        values.iter().filter_map(|(k, &v)| Some((k.parse::<usize>().ok()? as f64, v))).collect();
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    points
}

/// The lengths any run was evaluated at, ascending.
fn lengths<'a>(
    results: &'a [RunResult],
    pick: impl Fn(&'a RunResult) -> &'a BTreeMap<String, f64>,
) -> Vec<&'a str> {
    let set: BTreeSet<(usize, &str)> = results
        .iter()
        .flat_map(|r| pick(r).keys())
        .map(|k| (k.parse::<usize>().unwrap_or(usize::MAX), k.as_str()))
        .collect();
    set.into_iter().map(|(_, k)| k).collect()
}

/// One row per run: updates, tokens, times, final loss, perplexity and passkey accuracy per length.
pub fn markdown(results: &[RunResult]) -> String {
    let ppl = lengths(results, |r| &r.perplexity);
    let key = lengths(results, |r| &r.passkey);
    let mut header = vec!["run".to_string(), "updates".into(), "tokens".into(), "train time".into()];
    header.extend(["s / update".into(), "final loss".into()]);
    header.extend(ppl.iter().map(|t| format!("ppl @ {t}")));
    header.extend(key.iter().map(|t| format!("passkey @ {t}")));
    let mut out = String::new();
    let _ = writeln!(out, "| {} |", header.join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(header.len()));
    let or_dash = |v: Option<String>| v.unwrap_or_else(|| "–".to_string());
    for r in results {
        let mut row = vec![
            r.name.clone(),
            or_dash(r.updates.map(|u| u.to_string())),
            or_dash(r.tokens.map(|t| t.to_string())),
            or_dash(r.train_seconds.map(|s| format!("{:.1} min", s / 60.0))),
            or_dash(r.median_update_seconds.map(|s| format!("{s:.3}"))),
            or_dash(r.final_loss.map(|l| format!("{l:.4}"))),
        ];
        row.extend(ppl.iter().map(|t| or_dash(r.perplexity.get(*t).map(|v| format!("{v:.3}")))));
        row.extend(key.iter().map(|t| or_dash(r.passkey.get(*t).map(|v| format!("{:.0}%", 100.0 * v)))));
        let _ = writeln!(out, "| {} |", row.join(" | "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_directory_and_an_eval_file_make_one_table() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run");
        std::fs::create_dir_all(&run).unwrap();
        let metrics = [
            r#"{"grad_norm":1.0,"loss":3.0,"lr":0.0,"seconds":9.0,"step":1,"tokens":100}"#,
            r#"{"grad_norm":1.0,"loss":2.0,"lr":0.1,"seconds":0.5,"step":2,"tokens":200}"#,
            r#"{"eval_loss":2.1,"eval_perplexity":8.2,"step":2}"#,
            // A resumed run wrote update 2 again.
            r#"{"grad_norm":1.0,"loss":1.5,"lr":0.1,"seconds":0.7,"step":2,"tokens":200}"#,
            r#"{"grad_norm":1.0,"loss":1.0,"lr":0.1,"seconds":0.6,"step":3,"tokens":300}"#,
        ];
        std::fs::write(run.join("metrics.jsonl"), metrics.join("\n")).unwrap();
        std::fs::write(
            run.join(EVAL_FILE),
            r#"{"perplexity": {"1024": 5.5, "512": 6.25}, "passkey": {"512": 0.5}}"#,
        )
        .unwrap();
        let base = dir.path().join("base.json");
        std::fs::write(&base, r#"{"perplexity": {"512": 7.0}}"#).unwrap();

        let a = load("s2", &run).unwrap();
        assert_eq!((a.updates, a.tokens), (Some(3), Some(300)));
        assert_eq!(a.losses, [(1.0, 3.0), (2.0, 1.5), (3.0, 1.0)]);
        assert_eq!(a.train_seconds, Some(9.0 + 0.7 + 0.6));
        assert_eq!(a.median_update_seconds, Some(0.7));
        assert_eq!(a.final_loss, Some(1.0));
        let b = load("base", &base).unwrap();
        assert!(b.losses.is_empty());
        let table = markdown(&[a, b]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[0],
            "| run | updates | tokens | train time | s / update | final loss | ppl @ 512 | ppl @ 1024 | passkey @ 512 |"
        );
        assert_eq!(lines[2], "| s2 | 3 | 300 | 0.2 min | 0.700 | 1.0000 | 6.250 | 5.500 | 50% |");
        assert_eq!(lines[3], "| base | – | – | – | – | – | 7.000 | – | – |");

        let out = dir.path().join("report");
        let args = CompareArgs {
            runs: vec![format!("s2={}", run.display()), format!("base={}", base.display())],
            out: out.clone(),
            smooth: 2,
        };
        run_and_check(&args, &out);
    }

    fn run_and_check(args: &CompareArgs, out: &Path) {
        super::run(args).unwrap();
        for file in ["results.json", "results.md", "loss.png", "perplexity.png"] {
            assert!(out.join(file).exists(), "{file}");
        }
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
        assert_eq!(json["runs"][1]["name"], "base");
        assert_eq!(json["runs"][0]["perplexity"]["1024"], 5.5);
    }

    #[test]
    fn bad_runs_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let err = |runs: Vec<String>| {
            super::run(&CompareArgs { runs, out: out.clone(), smooth: 1 }).unwrap_err().to_string()
        };
        assert!(err(vec!["nothing".into()]).contains("give each run as NAME=PATH"));
        let missing = dir.path().join("nowhere");
        assert!(err(vec![format!("a={}", missing.display())]).contains("does not exist"));
        let empty = dir.path().join("empty");
        std::fs::create_dir_all(&empty).unwrap();
        assert!(
            err(vec![format!("a={}", empty.display())]).contains("holds neither metrics.jsonl nor eval.json")
        );
        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, "[1, 2]").unwrap();
        assert!(err(vec![format!("a={}", bad.display())]).contains("not the JSON `weft eval --json` writes"));
        let run = dir.path().join("run");
        std::fs::create_dir_all(&run).unwrap();
        std::fs::write(run.join("metrics.jsonl"), r#"{"loss":1.0,"seconds":1.0,"step":1,"tokens":8}"#)
            .unwrap();
        let refused = super::run(&CompareArgs {
            runs: vec![format!("a={}", run.display())],
            out: run.clone(),
            smooth: 1,
        })
        .unwrap_err()
        .to_string();
        assert!(refused.contains("run"), "{refused}");
        assert!(!run.join("results.json").exists());
        let good = dir.path().join("good.json");
        std::fs::write(&good, r#"{"perplexity": {"512": 7.0}}"#).unwrap();
        assert!(
            err(vec![format!("a={}", good.display()), format!("a={}", good.display())])
                .contains("two runs are named `a`")
        );
    }
}
