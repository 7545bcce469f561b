//! Progress bars for long work, on standard error (hidden when it is not a terminal).

use indicatif::{ProgressBar, ProgressStyle};

/// Work smaller than this many mask cells finishes too fast to need a bar.
const WORTH_SHOWING: u64 = 1 << 26;

/// A bar over `rows` mask rows of `n` cells each, or a hidden one for small jobs.
pub fn rows(rows: u64, n: u64, what: &str) -> ProgressBar {
    if rows.saturating_mul(n) < WORTH_SHOWING {
        return ProgressBar::hidden();
    }
    bar(rows, "{msg} [{bar:40}] {pos}/{len} rows, {elapsed} elapsed, eta {eta}", what)
}

/// A bar over optimizer updates, starting at `done` of `total`.
pub fn steps(total: u64, done: u64) -> ProgressBar {
    let bar = bar(total, "step {pos}/{len} [{bar:30}] {msg}, {elapsed} elapsed, eta {eta}", "");
    bar.set_position(done);
    bar
}

/// A bar over the `total` forward passes `weft eval` runs at length `t`.
pub fn passes(total: u64, t: usize) -> ProgressBar {
    bar(total, "T = {msg} [{bar:40}] {pos}/{len} passes, {elapsed} elapsed, eta {eta}", &t.to_string())
}

/// A bar over the `total` tensors of a checkpoint being written.
pub fn tensors(total: u64, what: &str) -> ProgressBar {
    bar(total, "{msg} [{bar:40}] {pos}/{len} tensors, {elapsed} elapsed, eta {eta}", what)
}

/// A bar of `len` in `template` (indicatif's), with `message` as its `{msg}`.
fn bar(len: u64, template: &str, message: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    let style = ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_message(message.to_string());
    bar
}
