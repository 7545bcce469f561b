//! A reader that goes away (`weft inspect SPEC | head`) is never a panic:
//! the command finishes with the exit code its work earned. A write that
//! fails for another reason (a full disk behind `> file`) is an error.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};

use common::example;

/// Which of the child's streams are pipes its reader closes at once.
#[derive(Clone, Copy, Debug)]
enum Closed {
    Stdout,
    Both,
}

/// Runs `weft args` with `closed` streams' readers gone before it writes a
/// byte, and returns its exit code and what it wrote to an open stderr.
fn run_closed(args: &[&str], closed: Closed) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(args)
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("weft starts");
    drop(child.stdout.take());
    let mut stderr = String::new();
    match closed {
        Closed::Stdout => {
            if let Some(mut pipe) = child.stderr.take() {
                pipe.read_to_string(&mut stderr).expect("stderr is text");
            }
        }
        Closed::Both => drop(child.stderr.take()),
    }
    let status = child.wait().expect("weft runs");
    (status.code(), stderr)
}

fn check(args: &[&str], closed: Closed, expected_code: i32) {
    let (code, stderr) = run_closed(args, closed);
    assert_eq!(code, Some(expected_code), "weft {args:?} with {closed:?} closed; stderr:\n{stderr}");
    assert!(!stderr.contains("panicked"), "weft {args:?} panicked:\n{stderr}");
}

#[test]
fn commands_whose_reader_has_gone_finish_with_their_own_exit_code() {
    let hybrid = example("longgen-hybrid.toml");
    let roll = example("s2attn-roll.toml");
    let (hybrid, roll) = (hybrid.to_str().unwrap(), roll.to_str().unwrap());
    let cases: &[(&[&str], i32)] = &[
        (&["check", hybrid], 0),
        (&["inspect", hybrid], 0),
        (&["graph", roll, "--seq-len", "256", "--heads", "4"], 0),
        (&["mask", roll, "--seq-len", "512", "--heads", "2", "--out", "-"], 0),
        (&["compile", roll, "--seq-len", "256", "--heads", "4", "--emit", "graph", "--out", "-"], 0),
        (&["--help"], 0),
        // An error whose message has nowhere to go still fails.
        (&["check", "/no/such/spec.toml"], 1),
    ];
    for &(args, code) in cases {
        check(args, Closed::Stdout, code);
        check(args, Closed::Both, code);
    }
}

#[cfg(target_os = "linux")]
#[test]
fn a_full_disk_behind_standard_output_is_an_error() {
    let full = std::fs::File::create("/dev/full").expect("Linux has /dev/full");
    let out = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["check", example("longgen-hybrid.toml").to_str().unwrap()])
        .stdout(full)
        .output()
        .expect("weft runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{stderr}");
    assert!(
        stderr.contains("error: cannot write to standard output: No space left on device"),
        "stderr:\n{stderr}"
    );
}
