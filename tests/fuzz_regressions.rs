//! Replays the fuzz corpora and regression inputs (`fuzz/corpus/<target>/`,
//! `fuzz/regressions/<target>/`) through the fuzz targets' own code, so CI
//! checks every input the fuzzer kept or crashed on without running the
//! fuzzer (see `fuzz/README.md`).

#[path = "../fuzz/src/targets.rs"]
mod targets;

mod common;

use std::path::Path;

/// Calls `target` on every file of `fuzz/{corpus,regressions}/<name>/`; returns how many.
fn replay(name: &str, target: fn(&[u8])) -> usize {
    let mut n = 0;
    for kind in ["corpus", "regressions"] {
        let dir = common::root().join("fuzz").join(kind).join(name);
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        let mut paths: Vec<_> = entries.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect();
        paths.sort();
        for path in paths {
            let data = std::fs::read(&path).unwrap();
            let result = std::panic::catch_unwind(|| target(&data));
            assert!(result.is_ok(), "fuzz target `{name}` panicked on {}", rel(&path));
            n += 1;
        }
    }
    n
}

fn rel(path: &Path) -> String {
    path.strip_prefix(common::root()).unwrap_or(path).display().to_string()
}

#[test]
fn spec_inputs() {
    assert!(replay("spec", targets::spec) >= 6);
}

#[test]
fn sexpr_inputs() {
    assert!(replay("sexpr", targets::sexpr) >= 6);
}

#[test]
fn model_config_inputs() {
    assert!(replay("model_config", targets::model_config) >= 1);
}

#[test]
fn safetensors_inputs() {
    assert!(replay("safetensors", targets::safetensors) >= 3);
}

#[test]
fn adapter_config_inputs() {
    assert!(replay("adapter_config", targets::adapter_config) >= 1);
}
