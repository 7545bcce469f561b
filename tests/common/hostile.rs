//! The hostile-input harness: run `weft` on bad input, as a careless or
//! hostile user would, and check that it refuses cleanly.
//!
//! A [`Case`] is a command line plus the files it needs, written into a fresh
//! scratch directory that is also the working directory (`{dir}` in an
//! argument is that directory). [`check_all`] runs every case and asserts, per
//! case, all of:
//! - the exit code (1 unless the case says otherwise) and a stderr that starts
//!   with `error: ` and contains each expected fragment;
//! - no panic, no hang (the process is killed after [`Case::time_limit`]) and
//!   no more than [`MAX_RSS_BYTES`] of resident memory;
//! - no file in the scratch directory created, changed or removed (a
//!   symbolic link counts as unchanged while it points where it did and its
//!   target, if a regular file, is unchanged).
//!
//! Failures of all cases are reported together, so one run shows the whole table.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The most resident memory a refused input may cost (the 2 GB).
pub const MAX_RSS_BYTES: u64 = 2 << 30;
/// The longest a refusal may take by default (the 10 s).
pub const DEFAULT_TIME_LIMIT: Duration = Duration::from_secs(10);

#[derive(Clone, Debug)]
pub struct Case {
    pub name: String,
    pub args: Vec<String>,
    pub files: Vec<(String, Vec<u8>)>,
    /// Links made after the files: (link, target, symbolic?).
    pub links: Vec<(String, String, bool)>,
    pub expect: Vec<String>,
    pub exit_code: i32,
    pub time_limit: Duration,
    pub env: Vec<(String, String)>,
    /// A sweep case (see [`Case::lenient`]).
    pub lenient: bool,
}

/// A case named `name` running `weft ARGS` (`{dir}` is the scratch directory).
pub fn case(name: &str, args: &[&str]) -> Case {
    Case {
        name: name.to_string(),
        args: args.iter().map(|a| a.to_string()).collect(),
        files: Vec::new(),
        links: Vec::new(),
        expect: Vec::new(),
        exit_code: 1,
        time_limit: DEFAULT_TIME_LIMIT,
        env: Vec::new(),
        lenient: false,
    }
}

impl Case {
    /// Writes `contents` to `path` (relative to the scratch directory) before the run.
    pub fn file(mut self, path: &str, contents: impl AsRef<[u8]>) -> Case {
        self.files.push((path.to_string(), contents.as_ref().to_vec()));
        self
    }

    /// Copies the file or directory at `from` (relative to the repository root) to `to`.
    pub fn copy(mut self, from: &str, to: &str) -> Case {
        let src = super::root().join(from);
        let mut add = |rel: String, path: &Path| {
            self.files.push((rel, std::fs::read(path).expect("fixture readable")));
        };
        if src.is_dir() {
            for entry in std::fs::read_dir(&src).expect("fixture dir readable") {
                let p = entry.expect("fixture entry").path();
                if p.is_file() {
                    add(format!("{to}/{}", p.file_name().unwrap().to_string_lossy()), &p);
                }
            }
        } else {
            add(to.to_string(), &src);
        }
        self
    }

    /// Makes `link` a symbolic link to `target` (as written: relative to the link's directory, or absolute).
    pub fn symlink(mut self, link: &str, target: &str) -> Case {
        self.links.push((link.to_string(), target.to_string(), true));
        self
    }

    /// Makes `link` a hard link to the file `target` (relative to the scratch directory).
    pub fn hard_link(mut self, link: &str, target: &str) -> Case {
        self.links.push((link.to_string(), target.to_string(), false));
        self
    }

    /// stderr must contain `fragment` (after `{dir}` is replaced).
    pub fn expect(mut self, fragment: &str) -> Case {
        self.expect.push(fragment.to_string());
        self
    }

    /// For sweeps of values that are mostly bad: success (exit 0, which may
    /// write its outputs) is allowed too; a refusal (exit 1, or 2 for a usage
    /// error) must still start with `error: `. No panic, hang, memory blow-up
    /// or change to an existing file either way.
    pub fn lenient(mut self) -> Case {
        self.lenient = true;
        self
    }

    pub fn exit_code(mut self, code: i32) -> Case {
        self.exit_code = code;
        self
    }

    pub fn time_limit(mut self, limit: Duration) -> Case {
        self.time_limit = limit;
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Case {
        self.env.push((key.to_string(), value.to_string()));
        self
    }
}

/// What one run did.
#[derive(Debug)]
pub struct Outcome {
    pub code: Option<i32>,
    pub stderr: String,
    pub elapsed: Duration,
    pub killed: bool,
    pub max_rss_bytes: u64,
    /// Files created, changed or removed in the scratch directory.
    pub changed: Vec<String>,
}

/// Runs `case` in a fresh scratch directory named after it.
pub fn run(case: &Case) -> Outcome {
    let dir = super::scratch(&format!("hostile/{}", slug(&case.name)));
    for (rel, contents) in &case.files {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("scratch subdir");
        }
        std::fs::write(&path, contents).expect("scratch file");
    }
    for (link, target, symbolic) in &case.links {
        let path = dir.join(link);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("scratch subdir");
        }
        if *symbolic {
            std::os::unix::fs::symlink(target, &path).expect("symbolic link");
        } else {
            std::fs::hard_link(dir.join(target), &path).expect("hard link");
        }
    }
    let before = snapshot(&dir);
    let dir_text = dir.to_string_lossy().into_owned();
    let args: Vec<String> = case.args.iter().map(|a| a.replace("{dir}", &dir_text)).collect();
    let no_cache = dir.join("no-such-dir/tuning.toml");
    let mut cmd = Command::new(weft_binary());
    cmd.args(&args)
        .current_dir(&dir)
        .env("WEFT_TUNING_CACHE", &no_cache)
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in &case.env {
        cmd.env(k, v.replace("{dir}", &dir_text));
    }
    let start = Instant::now();
    let mut child = cmd.spawn().expect("weft starts");
    // Read stderr on a thread so a chatty child never blocks on a full pipe.
    let mut err_pipe = child.stderr.take().expect("stderr piped");
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = std::io::Read::read_to_end(&mut err_pipe, &mut buf);
        buf
    });
    let pid = child.id() as libc::pid_t;
    let (status, rusage, killed) = wait_with_limit(pid, case.time_limit);
    let elapsed = start.elapsed();
    // The child is reaped by wait4; keep std from waiting on it again.
    std::mem::forget(child);
    let stderr = String::from_utf8_lossy(&reader.join().unwrap_or_default()).into_owned();
    let code = if libc::WIFEXITED(status) { Some(libc::WEXITSTATUS(status)) } else { None };
    let after = snapshot(&dir);
    let mut changed = Vec::new();
    for (path, bytes) in &before {
        match after.get(path) {
            None => changed.push(format!("removed {path}")),
            Some(b) if b != bytes => changed.push(format!("changed {path}")),
            _ => {}
        }
    }
    for path in after.keys().filter(|p| !before.contains_key(*p)) {
        changed.push(format!("created {path}"));
    }
    Outcome { code, stderr, elapsed, killed, max_rss_bytes: rusage.ru_maxrss as u64 * 1024, changed }
}

/// The binary under test: cargo's, or `WEFT_HOSTILE_BIN` when set (a copy
/// taken right after the build, where a target directory is shared and
/// another build may relink cargo's while the tests run).
fn weft_binary() -> PathBuf {
    std::env::var_os("WEFT_HOSTILE_BIN")
        .map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_weft")), PathBuf::from)
}

/// Waits for `pid`, killing it after `limit`; returns its status, resource use and whether it was killed.
fn wait_with_limit(pid: libc::pid_t, limit: Duration) -> (i32, libc::rusage, bool) {
    let start = Instant::now();
    let mut killed = false;
    loop {
        let mut status = 0;
        // SAFETY: a zeroed rusage is a valid value for wait4 to fill in.
        let mut rusage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: pid is our own child; status and rusage are valid pointers.
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut rusage) };
        if r == pid {
            return (status, rusage, killed);
        }
        assert!(r == 0, "wait4 failed: {}", std::io::Error::last_os_error());
        if !killed && start.elapsed() > limit {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            killed = true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Every file and directory under `dir`, by relative path, with its bytes (a
/// directory's path ends in `/` and has none); a symbolic
/// link as where it points, then its target's bytes if that is a regular
/// file (never a device's endless stream), and not followed into directories.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack: Vec<PathBuf> = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for entry in entries.flatten() {
            let p = entry.path();
            let rel = p.strip_prefix(dir).unwrap_or(&p).to_string_lossy().into_owned();
            let Ok(kind) = entry.file_type() else { continue };
            let mut bytes = Vec::new();
            if kind.is_symlink() {
                let target = std::fs::read_link(&p).unwrap_or_default();
                bytes.extend_from_slice(format!("-> {}\n", target.display()).as_bytes());
            } else if kind.is_dir() {
                // Directories count too, so that an empty one left behind shows.
                files.insert(format!("{rel}/"), Vec::new());
                stack.push(p);
                continue;
            }
            if std::fs::metadata(&p).is_ok_and(|m| m.is_file()) {
                bytes.extend(std::fs::read(&p).unwrap_or_default());
            }
            files.insert(rel, bytes);
        }
    }
    files
}

fn slug(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect()
}

/// Why `outcome` does not meet `case`'s expectations, if it does not.
pub fn problems(case: &Case, outcome: &Outcome) -> Vec<String> {
    let mut p = Vec::new();
    if outcome.killed {
        p.push(format!("hung: killed after {:.1} s", outcome.elapsed.as_secs_f64()));
    }
    let succeeded = case.lenient && outcome.code == Some(0);
    let code_ok =
        if case.lenient { matches!(outcome.code, Some(0..=2)) } else { outcome.code == Some(case.exit_code) };
    if !code_ok {
        p.push(format!("exit code {:?}, expected {}", outcome.code, case.exit_code));
    }
    if outcome.stderr.contains("panicked") || outcome.stderr.contains("RUST_BACKTRACE") {
        p.push("panicked".to_string());
    }
    if !succeeded && !outcome.stderr.starts_with("error: ") {
        p.push("stderr does not start with `error: `".to_string());
    }
    for fragment in &case.expect {
        let dir = super::scratch_path(&format!("hostile/{}", slug(&case.name)));
        let fragment = fragment.replace("{dir}", &dir.to_string_lossy());
        if !outcome.stderr.contains(&fragment) {
            p.push(format!("stderr lacks {fragment:?}"));
        }
    }
    if outcome.max_rss_bytes > MAX_RSS_BYTES {
        p.push(format!("used {} MiB", outcome.max_rss_bytes >> 20));
    }
    // Running as root, a rename onto a device replaces the device node itself
    // (it happened once on the development machine: /dev/null became a file).
    for device in ["/dev/null", "/dev/full"] {
        if !is_char_device(device) {
            p.push(format!("{device} is no longer a character device"));
        }
    }
    // A successful sweep case may create its outputs; nothing may change or vanish.
    p.extend(outcome.changed.iter().filter(|c| !(succeeded && c.starts_with("created "))).cloned());
    p
}

/// With this variable set to a file path, [`check_all`] appends one Markdown
/// table row per case to it (`tests/make_hostile_matrix.sh` builds
/// `docs/hostile-input.md` from them).
pub const MATRIX_ENV: &str = "WEFT_HOSTILE_MATRIX";

/// Runs every case and fails with one report listing each case that misbehaved.
pub fn check_all(cases: &[Case]) {
    let mut report = String::new();
    for case in cases {
        let outcome = run(case);
        let p = problems(case, &outcome);
        record(case, &outcome, &p);
        if !p.is_empty() {
            report.push_str(&format!(
                "\n- {}: weft {}\n    {}\n    stderr: {}",
                case.name,
                case.args.join(" "),
                p.join("; "),
                outcome.stderr.trim_end().replace('\n', "\n            ")
            ));
        }
    }
    assert!(report.is_empty(), "hostile inputs misbehaved:{report}");
}

/// Appends `case`'s row to the matrix file, if [`MATRIX_ENV`] names one.
fn record(case: &Case, outcome: &Outcome, problems: &[String]) {
    let Some(path) = std::env::var_os(MATRIX_ENV) else { return };
    let group = std::thread::current().name().unwrap_or("?").to_string();
    let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
    let args: Vec<String> = case.args.iter().map(|a| shorten(a)).collect();
    let dir = super::scratch_path(&format!("hostile/{}", slug(&case.name)));
    let first_line = outcome.stderr.lines().next().unwrap_or("").trim_start_matches("error: ");
    let first_line = first_line.replace(&*dir.to_string_lossy(), "{dir}");
    let verdict = if problems.is_empty() { "ok".to_string() } else { problems.join("; ") };
    let row = format!(
        "| {} | {} | `weft {}` | {} | {:.2} | {} | {} | {} |\n",
        cell(&group),
        cell(&case.name),
        cell(&args.join(" ")),
        outcome.code.map_or("signal".to_string(), |c| c.to_string()),
        outcome.elapsed.as_secs_f64(),
        outcome.max_rss_bytes >> 20,
        cell(&shorten(&first_line)),
        cell(&verdict),
    );
    use std::io::Write;
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
        let _ = f.write_all(row.as_bytes());
    }
}

/// `text` cut to 120 characters, for table cells (generated inputs can be huge).
fn shorten(text: &str) -> String {
    if text.chars().count() <= 120 {
        return text.to_string();
    }
    let head: String = text.chars().take(117).collect();
    format!("{head}...")
}

fn is_char_device(path: &str) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_char_device())
}
