//! The check every command runs before it writes: an output path must not be
//! one of the command's inputs, lie inside an input directory (a checkpoint,
//! an adapter), or, for an output directory that is replaced whole, hold an
//! input or files weft did not write.
//!
//! Paths are compared as the file system resolves them: canonical paths (an
//! output that does not exist yet by its nearest existing ancestor), so that
//! `./x`, `x` and a symbolic link to `x` are the same; and, on Unix, device
//! and inode, so that a hard link to an input (or to a file inside an input
//! directory) is that input too.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

/// Files visited at most inside one input directory when collecting its files' identities.
const MAX_FILES_PER_INPUT_DIR: usize = 10_000;

/// Something a command reads.
#[derive(Clone, Copy, Debug)]
pub struct Input<'a> {
    pub path: &'a Path,
    /// What it is to the user, e.g. `spec`, `input tensors`, `input checkpoint`.
    pub what: &'static str,
}

/// What an output path names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputKind {
    /// One file, replaced atomically (or a device such as `/dev/null`, written in place).
    File,
    /// Text: one file as [`OutputKind::File`], or standard output when the path is `-`.
    Text,
    /// A directory replaced whole; an existing one may hold only files ending in these extensions.
    Directory { extensions: &'static [&'static str] },
}

/// Something a command writes.
#[derive(Clone, Copy, Debug)]
pub struct Output<'a> {
    pub path: &'a Path,
    /// What is written, e.g. `logits`, `the mask`, `kernels`.
    pub what: &'static str,
    /// The flag that named the path, e.g. `--out`.
    pub flag: &'static str,
    pub kind: OutputKind,
}

/// Why an output path is refused.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("cannot write {what} to {output}: the directory {parent} does not exist ({flag})")]
    NoParent { what: &'static str, output: PathBuf, parent: PathBuf, flag: &'static str },
    #[error("refusing to write {what} to {output}: it is the {input_what} {input} ({flag})")]
    IsInput {
        what: &'static str,
        output: PathBuf,
        input_what: &'static str,
        input: PathBuf,
        flag: &'static str,
    },
    #[error("refusing to write {what} to {output}: it is inside the {input_what} {input} ({flag})")]
    InsideInput {
        what: &'static str,
        output: PathBuf,
        input_what: &'static str,
        input: PathBuf,
        flag: &'static str,
    },
    #[error(
        "refusing to write {what} to {output}: it is the file {inner} of the {input_what} {input}, \
         under another name ({flag})"
    )]
    LinkIntoInput {
        what: &'static str,
        output: PathBuf,
        inner: PathBuf,
        input_what: &'static str,
        input: PathBuf,
        flag: &'static str,
    },
    #[error(
        "refusing to replace {output} with {what}: it holds the {input_what} {input}, which would be \
         lost ({flag})"
    )]
    HoldsInput {
        what: &'static str,
        output: PathBuf,
        input_what: &'static str,
        input: PathBuf,
        flag: &'static str,
    },
    #[error(
        "refusing to replace {output} with {what}: it holds {found}, which weft did not write; give a \
         new or empty directory ({flag})"
    )]
    HoldsOtherFiles { what: &'static str, output: PathBuf, found: String, flag: &'static str },
    #[error("cannot write {what} to standard output ({flag} -): {needed}")]
    NotText { what: &'static str, needed: &'static str, flag: &'static str },
    #[error("refusing to write {what} to {output}: it is a directory ({flag})")]
    IsDirectory { what: &'static str, output: PathBuf, flag: &'static str },
    #[error("refusing to write {what} to {output}: it is a file, not a directory ({flag})")]
    NotDirectory { what: &'static str, output: PathBuf, flag: &'static str },
}

/// Checks that writing `output` loses none of `inputs` (see the module docs).
/// Standard output (`-`) is allowed for text and refused for the rest, which
/// would otherwise become a file named `-`; inputs that do not exist are
/// skipped, since the command fails reading them before it writes.
pub fn check_output(output: &Output, inputs: &[Input]) -> Result<(), OutputError> {
    if output.path == Path::new("-") {
        let needed = match output.kind {
            OutputKind::Text => return Ok(()),
            OutputKind::File => "give a file name",
            OutputKind::Directory { .. } => "give a directory",
        };
        return Err(OutputError::NotText { what: output.what, needed, flag: output.flag });
    }
    let out_path = resolve(output.path);
    let out_meta = std::fs::metadata(output.path).ok();
    let out_id = out_meta.as_ref().and_then(file_id);
    for input in inputs {
        let Ok(in_path) = std::fs::canonicalize(input.path) else { continue };
        let Ok(in_meta) = std::fs::metadata(&in_path) else { continue };
        let same_file = out_id.is_some() && out_id == file_id(&in_meta);
        if out_path == in_path || same_file {
            return Err(OutputError::IsInput {
                what: output.what,
                output: output.path.to_path_buf(),
                input_what: input.what,
                input: input.path.to_path_buf(),
                flag: output.flag,
            });
        }
        if in_meta.is_dir() && out_path.starts_with(&in_path) {
            return Err(OutputError::InsideInput {
                what: output.what,
                output: output.path.to_path_buf(),
                input_what: input.what,
                input: input.path.to_path_buf(),
                flag: output.flag,
            });
        }
        if let OutputKind::Directory { .. } = output.kind
            && in_path.starts_with(&out_path)
        {
            return Err(OutputError::HoldsInput {
                what: output.what,
                output: output.path.to_path_buf(),
                input_what: input.what,
                input: input.path.to_path_buf(),
                flag: output.flag,
            });
        }
        if in_meta.is_dir()
            && let Some(id) = out_id
            && let Some(inner) = files_by_id(&in_path).remove(&id)
        {
            return Err(OutputError::LinkIntoInput {
                what: output.what,
                output: output.path.to_path_buf(),
                inner,
                input_what: input.what,
                input: input.path.to_path_buf(),
                flag: output.flag,
            });
        }
    }
    // Found now, not after the work: the directory the output goes into must exist.
    let parent = match output.path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        return Err(OutputError::NoParent {
            what: output.what,
            output: output.path.to_path_buf(),
            parent: parent.to_path_buf(),
            flag: output.flag,
        });
    }
    let Some(meta) = out_meta else { return Ok(()) };
    match output.kind {
        OutputKind::File | OutputKind::Text if meta.is_dir() => Err(OutputError::IsDirectory {
            what: output.what,
            output: output.path.to_path_buf(),
            flag: output.flag,
        }),
        OutputKind::File | OutputKind::Text => Ok(()),
        OutputKind::Directory { .. } if !meta.is_dir() => Err(OutputError::NotDirectory {
            what: output.what,
            output: output.path.to_path_buf(),
            flag: output.flag,
        }),
        OutputKind::Directory { extensions } => match foreign_entry(output.path, extensions) {
            Some(found) => Err(OutputError::HoldsOtherFiles {
                what: output.what,
                output: output.path.to_path_buf(),
                found,
                flag: output.flag,
            }),
            None => Ok(()),
        },
    }
}

/// `path` as the file system resolves it: canonical if it exists, else its
/// nearest existing ancestor's canonical path with the rest appended.
fn resolve(path: &Path) -> PathBuf {
    if let Ok(canonical) = std::fs::canonicalize(path) {
        return canonical;
    }
    // The usual case, a new file in an existing directory: that directory
    // resolves `..` after a link the way the kernel will.
    if let Some(name) = path.file_name() {
        let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        if let Ok(canonical) = std::fs::canonicalize(parent) {
            return canonical.join(name);
        }
    }
    let absolute = match std::env::current_dir() {
        Ok(cwd) if path.is_relative() => cwd.join(path),
        _ => path.to_path_buf(),
    };
    // Drop `.` and fold `..` into the part before it.
    let mut lexical = PathBuf::new();
    for component in absolute.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                lexical.pop();
            }
            other => lexical.push(other),
        }
    }
    let mut rest = Vec::new();
    let mut base = lexical.as_path();
    loop {
        if let Ok(canonical) = std::fs::canonicalize(base) {
            return rest.iter().rev().fold(canonical, |p, c| p.join(c));
        }
        match (base.file_name(), base.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name.to_os_string());
                base = parent;
            }
            _ => return lexical,
        }
    }
}

/// Device and inode: the file itself, whatever names it has.
#[cfg(unix)]
fn file_id(meta: &std::fs::Metadata) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    Some((meta.dev(), meta.ino()))
}

#[cfg(not(unix))]
fn file_id(_: &std::fs::Metadata) -> Option<(u64, u64)> {
    None
}

/// The files under `dir` (following no links), by identity; at most
/// [`MAX_FILES_PER_INPUT_DIR`] of them, since a checkpoint holds a handful.
fn files_by_id(dir: &Path) -> HashMap<(u64, u64), PathBuf> {
    let mut found = HashMap::new();
    let mut stack = vec![dir.to_path_buf()];
    let mut visited = 0;
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for entry in entries.flatten() {
            visited += 1;
            if visited > MAX_FILES_PER_INPUT_DIR {
                return found;
            }
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(entry.path());
            } else if let Some(id) = file_id(&meta) {
                found.insert(id, entry.path());
            }
        }
    }
    found
}

/// The first entry of `dir` that is not a file ending in one of `extensions`
/// (nor a leftover temporary of weft's), if any.
fn foreign_entry(dir: &Path, extensions: &[&str]) -> Option<String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => return Some(format!("entries that cannot be listed ({e})")),
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let ours = name.starts_with(super::atomic::TEMP_PREFIX)
                || Path::new(&name).extension().is_some_and(|e| extensions.iter().any(|x| e == *x));
            !(ours && entry.file_type().is_ok_and(|t| t.is_file()))
        })
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names.first().map(|first| match names.len() {
        1 => first.clone(),
        n => format!("{first} and {} other entries", n - 1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("weft-guard-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("model")).unwrap();
        std::fs::write(dir.join("spec.toml"), b"spec").unwrap();
        std::fs::write(dir.join("model/model.safetensors"), b"weights").unwrap();
        std::fs::canonicalize(dir).unwrap()
    }

    fn file(path: &Path) -> Output<'_> {
        Output { path, what: "logits", flag: "--out", kind: OutputKind::File }
    }

    fn kernels(path: &Path) -> Output<'_> {
        Output { path, what: "kernels", flag: "--out", kind: OutputKind::Directory { extensions: &["spv"] } }
    }

    fn inputs(dir: &Path) -> [(PathBuf, &'static str); 2] {
        [(dir.join("spec.toml"), "spec"), (dir.join("model"), "input checkpoint")]
    }

    fn check(output: &Output, dir: &Path) -> Result<(), OutputError> {
        let owned = inputs(dir);
        let list: Vec<Input> = owned.iter().map(|(path, what)| Input { path, what }).collect();
        check_output(output, &list)
    }

    #[test]
    fn a_missing_directory_is_refused_before_the_work() {
        let dir = scratch("parent");
        let err = check(&file(&dir.join("missing/logits.safetensors")), &dir).unwrap_err();
        assert!(matches!(err, OutputError::NoParent { .. }), "{err}");
        assert!(err.to_string().ends_with("missing does not exist (--out)"), "{err}");
        assert!(check(&file(&dir.join("logits.safetensors")), &dir).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_input_by_any_name_is_refused() {
        let dir = scratch("names");
        let spec = dir.join("spec.toml");
        let dotted = dir.join("model/../././spec.toml");
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(&spec, dir.join("link.toml")).unwrap();
            std::fs::hard_link(&spec, dir.join("hard.toml")).unwrap();
            std::fs::hard_link(dir.join("model/model.safetensors"), dir.join("hard.safetensors")).unwrap();
        }
        for path in [spec.clone(), dotted, dir.join("link.toml"), dir.join("hard.toml")] {
            if !path.exists() {
                continue;
            }
            let err = check(&file(&path), &dir).unwrap_err();
            assert!(matches!(err, OutputError::IsInput { .. }), "{}: {err}", path.display());
        }
        if dir.join("hard.safetensors").exists() {
            let err = check(&file(&dir.join("hard.safetensors")), &dir).unwrap_err();
            assert!(matches!(err, OutputError::LinkIntoInput { .. }), "{err}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_output_inside_an_input_directory_is_refused_even_where_nothing_exists_yet() {
        let dir = scratch("inside");
        let out = dir.join("model/model.safetensors");
        let err = check(&file(&out), &dir).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "refusing to write logits to {}: it is inside the input checkpoint {} (--out)",
                out.display(),
                dir.join("model").display()
            )
        );
        #[cfg(unix)]
        {
            // `link/..` is the link target's parent, not the link's.
            std::fs::create_dir_all(dir.join("model/sub")).unwrap();
            std::os::unix::fs::symlink(dir.join("model/sub"), dir.join("to-sub")).unwrap();
            let via_link = dir.join("to-sub/../x.bin");
            assert!(matches!(check(&file(&via_link), &dir), Err(OutputError::InsideInput { .. })));
        }
        let deep = dir.join("model/new/sub/../x.bin");
        assert!(matches!(check(&file(&deep), &dir), Err(OutputError::InsideInput { .. })));
        assert!(matches!(check(&file(&dir.join("new/x.bin")), &dir), Err(OutputError::NoParent { .. })));
        assert!(check(&file(&dir.join("x.bin")), &dir).is_ok());
        // `-` is standard output for text, and a refusal for anything else.
        let stdout = |kind| Output { path: Path::new("-"), what: "logits", flag: "--out", kind };
        assert!(check(&stdout(OutputKind::Text), &dir).is_ok());
        let refused = check(&stdout(OutputKind::File), &dir).unwrap_err().to_string();
        assert_eq!(refused, "cannot write logits to standard output (--out -): give a file name");
        let refused = check(&stdout(OutputKind::Directory { extensions: &[] }), &dir).unwrap_err();
        assert!(refused.to_string().ends_with("give a directory"), "{refused}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_output_directory_may_hold_only_what_weft_wrote() {
        let dir = scratch("dirs");
        assert!(matches!(check(&kernels(&dir), &dir), Err(OutputError::HoldsInput { .. })));
        let out = dir.join("kernels");
        assert!(check(&kernels(&out), &dir).is_ok(), "a new directory");
        std::fs::create_dir(&out).unwrap();
        std::fs::write(out.join("a.spv"), b"old").unwrap();
        assert!(check(&kernels(&out), &dir).is_ok(), "a previous output");
        std::fs::write(out.join("notes.txt"), b"mine").unwrap();
        let err = check(&kernels(&out), &dir).unwrap_err();
        assert!(err.to_string().contains("it holds notes.txt, which weft did not write"), "{err}");
        assert!(matches!(check(&file(&out), &dir), Err(OutputError::IsDirectory { .. })));
        let spec = dir.join("spec.toml");
        let not_dir = check_output(&kernels(&spec), &[]).unwrap_err();
        assert!(matches!(not_dir, OutputError::NotDirectory { .. }), "{not_dir}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
