//! `--data PATH` read into memory: pre-tokenized rows, or documents of text.
//!
//! - `*.safetensors`: `input_ids`, I32 or I64, `[S, T]`: S rows of T token ids.
//! - `*.jsonl`: one JSON object per line with a string `text` field, each a
//!   document; blank lines are skipped, any other bad line is an error
//!   naming `file:line`.
//! - a directory: walked recursively, files in path order (so the same tree
//!   always gives the same data). Hidden files and directories (`.git`) are
//!   skipped, symbolic links to directories are not followed, and an optional
//!   [`Glob`] selects files. `*.jsonl` files are read as JSONL, every other
//!   file as one document; a file that is not UTF-8 text is skipped and
//!   counted ([`Documents::skipped`]), since a tree of sources often holds a
//!   binary or two.
//! - any other file: one document of UTF-8 text.
//!
//! Empty documents are dropped: they would add nothing but a separator.

use std::path::{Path, PathBuf};

use super::{DataError, Glob};
use crate::io::TensorFile;

/// What `--data` held.
pub enum Corpus {
    Rows(TokenRows),
    Documents(Documents),
}

/// Pre-tokenized sequences: `rows` of `len` ids, row-major, not yet checked
/// against a vocabulary ([`TokenRows::check_ids`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRows {
    pub path: PathBuf,
    pub rows: usize,
    pub len: usize,
    pub ids: Vec<i64>,
}

/// Documents of text, in the order read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Documents {
    pub docs: Vec<Document>,
    /// Files of a directory skipped because they are not UTF-8 text.
    pub skipped: Vec<PathBuf>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Document {
    /// Where it came from, for messages: a file, or `file:line` for JSONL.
    pub origin: String,
    pub text: String,
}

impl Corpus {
    /// Reads `path`; `glob` selects the files of a directory (an error for a file).
    pub fn load(path: &Path, glob: Option<&Glob>) -> Result<Corpus, DataError> {
        let meta = std::fs::metadata(path).map_err(|source| DataError::Read { path: path.into(), source })?;
        if meta.is_dir() {
            return load_dir(path, glob).map(Corpus::Documents);
        }
        if !meta.is_file() {
            return Err(DataError::NotAFile { path: path.into() });
        }
        if glob.is_some() {
            return Err(DataError::GlobOnFile { path: path.into() });
        }
        match extension(path).as_deref() {
            Some("safetensors") => load_rows(path).map(Corpus::Rows),
            _ => {
                let text = read_text(path)?;
                let mut docs = Documents::default();
                add_file(&mut docs, path, text)?;
                Ok(Corpus::Documents(docs))
            }
        }
    }
}

impl TokenRows {
    /// Row `i`'s ids.
    pub fn row(&self, i: usize) -> &[i64] {
        &self.ids[i * self.len..(i + 1) * self.len]
    }

    /// Refuses ids outside `0..vocab`, naming the file, row and position.
    pub fn check_ids(&self, vocab: usize) -> Result<(), DataError> {
        let bad = self.ids.iter().position(|&id| !(0..vocab as i64).contains(&id));
        match bad {
            None => Ok(()),
            Some(at) => Err(DataError::IdOutOfRange {
                origin: format!("{} (`input_ids`), row {}", self.path.display(), at / self.len.max(1)),
                position: at % self.len.max(1),
                id: self.ids[at],
                vocab,
            }),
        }
    }
}

impl Documents {
    /// The warning for skipped files, if any, for the caller to show.
    pub fn warning(&self) -> Option<String> {
        let first = self.skipped.first()?;
        Some(format!(
            "skipped {} file{} that {} not UTF-8 text (the first: {})",
            self.skipped.len(),
            if self.skipped.len() == 1 { "" } else { "s" },
            if self.skipped.len() == 1 { "is" } else { "are" },
            first.display()
        ))
    }
}

fn extension(path: &Path) -> Option<String> {
    path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase)
}

fn load_rows(path: &Path) -> Result<TokenRows, DataError> {
    let ids = TensorFile::load(path)?.ints("input_ids")?;
    match ids.shape[..] {
        [rows, len] if rows > 0 && len > 0 => Ok(TokenRows { path: path.into(), rows, len, ids: ids.data }),
        [_, _] => Err(DataError::NoTokens {
            what: format!("{} (`input_ids` has shape {:?})", path.display(), ids.shape),
        }),
        _ => Err(DataError::RowsShape { path: path.into(), shape: ids.shape }),
    }
}

fn read_text(path: &Path) -> Result<String, DataError> {
    let bytes = std::fs::read(path).map_err(|source| DataError::Read { path: path.into(), source })?;
    String::from_utf8(bytes)
        .map_err(|e| DataError::NotUtf8 { path: path.into(), offset: e.utf8_error().valid_up_to() })
}

/// Adds `path`'s documents: JSONL lines, or the whole text.
fn add_file(docs: &mut Documents, path: &Path, text: String) -> Result<(), DataError> {
    if extension(path).as_deref() == Some("jsonl") {
        return add_jsonl(docs, path, &text);
    }
    if !text.is_empty() {
        docs.docs.push(Document { origin: path.display().to_string(), text });
    }
    Ok(())
}

fn add_jsonl(docs: &mut Documents, path: &Path, text: &str) -> Result<(), DataError> {
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |message: String| DataError::Jsonl { path: path.into(), line: index + 1, message };
        let value: serde_json::Value = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
        let text = match value.get("text") {
            Some(serde_json::Value::String(text)) => text,
            Some(other) => return Err(bad(format!("`text` must be a string, found {}", kind(other)))),
            None if value.is_object() => return Err(bad("the object has no `text` field".into())),
            None => {
                return Err(bad(format!(
                    "expected a JSON object with a `text` field, found {}",
                    kind(&value)
                )));
            }
        };
        if !text.is_empty() {
            docs.docs
                .push(Document { origin: format!("{}:{}", path.display(), index + 1), text: text.clone() });
        }
    }
    Ok(())
}

fn kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

fn load_dir(root: &Path, glob: Option<&Glob>) -> Result<Documents, DataError> {
    let mut files = Vec::new();
    walk(root, "", glob, &mut files)?;
    // Sorted by relative path, `/`-separated, whatever order the directory listed them in.
    files.sort();
    let mut docs = Documents::default();
    for (_, path) in &files {
        let bytes = std::fs::read(path).map_err(|source| DataError::Read { path: path.clone(), source })?;
        match String::from_utf8(bytes) {
            Ok(text) => add_file(&mut docs, path, text)?,
            Err(_) => docs.skipped.push(path.clone()),
        }
    }
    if files.is_empty() {
        return Err(DataError::NoFiles { path: root.into(), glob: glob.map(|g| g.as_str().to_string()) });
    }
    Ok(docs)
}

/// Collects `(relative path, path)` of the files under `dir` that `glob` selects.
fn walk(
    dir: &Path,
    prefix: &str,
    glob: Option<&Glob>,
    files: &mut Vec<(String, PathBuf)>,
) -> Result<(), DataError> {
    let read_err = |source| DataError::Read { path: dir.into(), source };
    for entry in std::fs::read_dir(dir).map_err(read_err)? {
        let entry = entry.map_err(read_err)?;
        let name = entry.file_name();
        // A name that is not UTF-8 cannot be matched or shown faithfully; such files are rare.
        let Some(name) = name.to_str() else { continue };
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        let relative = if prefix.is_empty() { name.to_string() } else { format!("{prefix}/{name}") };
        let kind = entry.file_type().map_err(|source| DataError::Read { path: path.clone(), source })?;
        if kind.is_dir() {
            walk(&path, &relative, glob, files)?;
        } else if (kind.is_file() || (kind.is_symlink() && path.is_file()))
            && glob.is_none_or(|g| g.matches(&relative))
        {
            files.push((relative, path));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::io::{HostTensor, save};

    fn write(dir: &Path, relative: &str, contents: &[u8]) -> PathBuf {
        let path = dir.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, contents).unwrap();
        path
    }

    fn documents(corpus: Corpus) -> Documents {
        match corpus {
            Corpus::Documents(docs) => docs,
            Corpus::Rows(_) => panic!("expected documents"),
        }
    }

    fn texts(docs: &Documents) -> Vec<&str> {
        docs.docs.iter().map(|d| d.text.as_str()).collect()
    }

    #[test]
    fn a_text_file_is_one_document() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "a.txt", b"hello\nworld\n");
        let docs = documents(Corpus::load(&path, None).unwrap());
        assert_eq!(texts(&docs), ["hello\nworld\n"]);
        assert_eq!(docs.docs[0].origin, path.display().to_string());
        let bad = write(dir.path(), "b.txt", b"ok\xff");
        let err = Corpus::load(&bad, None).err().unwrap().to_string();
        assert_eq!(err, format!("{} is not UTF-8 text (invalid byte at offset 2)", bad.display()));
        let glob = Glob::new("*.txt").unwrap();
        let err = Corpus::load(&path, Some(&glob)).err().unwrap().to_string();
        assert!(err.contains("a file glob selects files in a directory"), "{err}");
    }

    #[test]
    fn jsonl_lines_are_documents_and_bad_lines_name_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "d.jsonl", b"{\"text\": \"one\", \"id\": 3}\n\n{\"text\": \"two\"}\n");
        let docs = documents(Corpus::load(&path, None).unwrap());
        assert_eq!(texts(&docs), ["one", "two"]);
        assert_eq!(docs.docs[1].origin, format!("{}:3", path.display()));
        for (line, expected) in [
            ("{\"text\": 3}", "`text` must be a string, found a number"),
            ("{\"body\": \"x\"}", "the object has no `text` field"),
            ("[1]", "expected a JSON object with a `text` field, found an array"),
            ("{\"text\": ", "EOF while parsing"),
        ] {
            let path = write(dir.path(), "bad.jsonl", format!("{{\"text\": \"ok\"}}\n{line}\n").as_bytes());
            let err = Corpus::load(&path, None).err().unwrap().to_string();
            assert!(err.starts_with(&format!("{}:2: ", path.display())), "{err}");
            assert!(err.contains(expected), "{err}");
        }
    }

    #[test]
    fn a_directory_is_walked_in_path_order_with_a_glob() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "b/z.rs", b"z");
        write(dir.path(), "a.rs", b"a");
        write(dir.path(), "b/a.rs", b"ba");
        write(dir.path(), "b/notes.md", b"md");
        write(dir.path(), ".git/x.rs", b"hidden");
        write(dir.path(), "bin.rs", b"\xff\xfe");
        write(dir.path(), "empty.rs", b"");
        write(dir.path(), "c/d.jsonl", b"{\"text\": \"j\"}\n");
        let glob = Glob::new("*.rs").unwrap();
        let docs = documents(Corpus::load(dir.path(), Some(&glob)).unwrap());
        assert_eq!(texts(&docs), ["a", "ba", "z"]);
        assert_eq!(docs.skipped, [dir.path().join("bin.rs")]);
        let warning = docs.warning().unwrap();
        assert!(warning.starts_with("skipped 1 file that is not UTF-8 text (the first: "), "{warning}");
        let all = documents(Corpus::load(dir.path(), None).unwrap());
        assert_eq!(texts(&all), ["a", "ba", "md", "z", "j"]);
        let none = Glob::new("*.py").unwrap();
        let err = Corpus::load(dir.path(), Some(&none)).err().unwrap().to_string();
        assert_eq!(err, format!("no file under {} matches the glob `*.py`", dir.path().display()));
    }

    #[test]
    fn safetensors_rows_are_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ids.safetensors");
        let bytes: Vec<u8> = [1i32, 2, 3, 4, 5, 9].iter().flat_map(|v| v.to_le_bytes()).collect();
        let view = safetensors::tensor::TensorView::new(safetensors::Dtype::I32, vec![2, 3], &bytes).unwrap();
        std::fs::write(&path, safetensors::serialize([("input_ids", view)], None).unwrap()).unwrap();
        let Corpus::Rows(rows) = Corpus::load(&path, None).unwrap() else { panic!("expected rows") };
        assert_eq!((rows.rows, rows.len, rows.row(1)), (2, 3, &[4i64, 5, 9][..]));
        assert!(rows.check_ids(10).is_ok());
        let err = rows.check_ids(9).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "{} (`input_ids`), row 1, position 2: id 9 is not a token id of this model (vocab_size 9)",
                path.display()
            )
        );
        // A float tensor, or the wrong rank, is refused naming the file.
        let mut tensors = BTreeMap::new();
        tensors.insert("input_ids".to_string(), HostTensor { shape: vec![4], data: vec![0.0; 4] });
        save(&path, &tensors).unwrap();
        let err = Corpus::load(&path, None).err().unwrap().to_string();
        assert!(err.contains("is F32; expected I32 or I64"), "{err}");
        let bytes: Vec<u8> = [1i64, 2].iter().flat_map(|v| v.to_le_bytes()).collect();
        let view = safetensors::tensor::TensorView::new(safetensors::Dtype::I64, vec![2], &bytes).unwrap();
        std::fs::write(&path, safetensors::serialize([("input_ids", view)], None).unwrap()).unwrap();
        let err = Corpus::load(&path, None).err().unwrap().to_string();
        assert!(err.contains("has shape [2]; expected [S, T]"), "{err}");
    }

    #[test]
    fn missing_paths_and_devices_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let err = Corpus::load(&missing, None).err().unwrap().to_string();
        assert!(err.starts_with(&format!("cannot read {}", missing.display())), "{err}");
        if Path::new("/dev/null").exists() {
            let err = Corpus::load(Path::new("/dev/null"), None).err().unwrap().to_string();
            assert_eq!(err, "/dev/null is neither a regular file nor a directory");
        }
    }
}
