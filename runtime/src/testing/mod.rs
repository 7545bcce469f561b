//! Opening the GPU in tests: the one place that decides whether a GPU test
//! runs, is skipped, or fails for want of an adapter.
//!
//! Every GPU test, in this crate's `tests/` and in the `weft` binary's (which
//! run GPU commands), gets its device here, or asks [`gpu_available`]:
//!
//! - with an adapter, the test runs;
//! - without one, the test returns early and says so, unless
//!   `WEFT_REQUIRE_GPU=1` ([`REQUIRE_GPU`]), which makes it panic with the
//!   adapter error instead. `.ci/run` sets it, so CI fails without lavapipe.
//!
//! A skip is written straight to the process's stderr, not through
//! `eprintln!`, which the test harness captures: plain `cargo test` shows the
//! first skip's reason, once per test binary, and one numbered line per
//! skipped test (`skipped (no GPU adapter, 3 in this binary): <test>`), so
//! the last line of a binary counts its skipped tests. The harness itself
//! reports those tests as `ok`.
//!
//! Known driver quirks that tests expect are listed in [`expectations`].

pub mod expectations;

use std::io::Write;
use std::panic::Location;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use crate::{Executor, Gpu};

/// The environment variable that turns "no adapter" from a skip into a failure.
pub const REQUIRE_GPU: &str = "WEFT_REQUIRE_GPU";

static SKIPPED: AtomicUsize = AtomicUsize::new(0);
static ANNOUNCED: Mutex<bool> = Mutex::new(false);

/// Whether [`REQUIRE_GPU`] is set to anything but empty, `0` or `false`.
pub fn gpu_required() -> bool {
    std::env::var(REQUIRE_GPU).is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false"))
}

/// The device for a GPU test, or `None` when there is no adapter (the test
/// then returns; the skip is reported and counted). Panics with the adapter
/// error instead when [`REQUIRE_GPU`] is set.
#[track_caller]
pub fn gpu() -> Option<Gpu> {
    match Gpu::new() {
        Ok(gpu) => Some(gpu),
        Err(e) => {
            skip(&e.to_string());
            None
        }
    }
}

/// [`gpu`], wrapped in an executor; logs the adapter (shown with `--nocapture`).
#[track_caller]
pub fn executor() -> Option<Executor> {
    let gpu = gpu()?;
    eprintln!("adapter: {}", gpu.adapter_description());
    Some(Executor::new(gpu))
}

/// For tests that run a GPU command of the `weft` binary: whether this
/// process can open an adapter the way the binary does (same environment,
/// same [`Gpu::new`]), probed once per test binary. `false` is a reported,
/// counted skip; with [`REQUIRE_GPU`] set, no adapter panics instead.
#[track_caller]
pub fn gpu_available() -> bool {
    static PROBE: OnceLock<Result<(), String>> = OnceLock::new();
    match PROBE.get_or_init(|| Gpu::new().map(drop).map_err(|e| e.to_string())) {
        Ok(()) => true,
        Err(e) => {
            skip(e);
            false
        }
    }
}

/// How many GPU tests this test binary has skipped so far.
pub fn skipped() -> usize {
    SKIPPED.load(Ordering::SeqCst)
}

/// Reports one skipped test, or panics if skipping is not allowed.
#[track_caller]
fn skip(error: &str) {
    if gpu_required() {
        panic!("{REQUIRE_GPU} is set, but no GPU adapter can be opened: {error}");
    }
    let at = Location::caller();
    let thread = std::thread::current();
    let test = match thread.name() {
        Some(name) if name != "main" => format!("{name} ({}:{})", at.file(), at.line()),
        _ => format!("{}:{}", at.file(), at.line()),
    };
    let mut announced = ANNOUNCED.lock().unwrap_or_else(|e| e.into_inner());
    let count = SKIPPED.fetch_add(1, Ordering::SeqCst) + 1;
    // Straight to the stream: the harness captures `eprintln!` of passing tests.
    let mut err = std::io::stderr().lock();
    if !*announced {
        *announced = true;
        let _ = writeln!(
            err,
            "no GPU adapter: skipping GPU tests (set {REQUIRE_GPU}=1 to fail instead): {error}"
        );
    }
    let _ = writeln!(err, "skipped (no GPU adapter, {count} in this binary): {test}");
}
