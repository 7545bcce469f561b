//! Messages and tables on standard output and standard error that never panic.
//!
//! `println!` and `eprintln!` panic when a write fails, and a write fails
//! whenever the reader has gone: `weft inspect SPEC | head`, or
//! `weft train … 2>&1 | grep -m1 loss`. A reader that stops reading is its
//! own choice, not an error, and it must never cost a run its result files.
//! So every message goes through [`outln!`], [`out!`] and [`errln!`]:
//! - a closed pipe drops the text, and the work goes on;
//! - any other failure (a full disk behind `> log`) drops the text too, and
//!   is kept: `main` reports the first one and exits non-zero, so that a
//!   truncated redirect never passes for a whole one.
//!
//! Result files (`--out`) are written by [`crate::output`], which reports
//! every error where it happens.

use std::fmt;
use std::io::{self, Write};
use std::sync::Mutex;

/// The first write that failed for a reason other than a closed pipe.
static FAILURE: Mutex<Option<String>> = Mutex::new(None);

/// Which stream a message goes to.
#[derive(Clone, Copy)]
pub enum Stream {
    Out,
    Err,
}

/// Writes `args` (and a newline when `newline`) to `stream`, keeping any
/// failure but a closed pipe for [`failure`].
pub fn write(stream: Stream, args: fmt::Arguments, newline: bool) {
    let result = match stream {
        Stream::Out => write_to(&mut io::stdout().lock(), args, newline),
        Stream::Err => write_to(&mut io::stderr().lock(), args, newline),
    };
    if let Err(err) = result
        && err.kind() != io::ErrorKind::BrokenPipe
    {
        let name = match stream {
            Stream::Out => "standard output",
            Stream::Err => "standard error",
        };
        let mut failure = FAILURE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        failure.get_or_insert_with(|| format!("cannot write to {name}: {err}"));
    }
}

fn write_to(w: &mut impl Write, args: fmt::Arguments, newline: bool) -> io::Result<()> {
    w.write_fmt(args)?;
    if newline {
        w.write_all(b"\n")?;
    }
    // Progress lines without a newline (`generate`'s tokens) must show now.
    w.flush()
}

/// The first failed write that was not a closed pipe, if any.
pub fn failure() -> Option<String> {
    FAILURE.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
}

/// `println!` that survives a closed pipe (see the module's doc).
macro_rules! outln {
    () => {
        $crate::console::write($crate::console::Stream::Out, format_args!(""), true)
    };
    ($($arg:tt)*) => {
        $crate::console::write($crate::console::Stream::Out, format_args!($($arg)*), true)
    };
}

/// `print!` that survives a closed pipe.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::console::write($crate::console::Stream::Out, format_args!($($arg)*), false)
    };
}

/// `eprintln!` that survives a closed pipe.
macro_rules! errln {
    () => {
        $crate::console::write($crate::console::Stream::Err, format_args!(""), true)
    };
    ($($arg:tt)*) => {
        $crate::console::write($crate::console::Stream::Err, format_args!($($arg)*), true)
    };
}
