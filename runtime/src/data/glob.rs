//! File globs for `--data-glob`, small enough not to need a crate: `*` (any
//! run of characters but `/`), `**` (any run, `/` included), `?` (one
//! character but `/`) and one level of `{a,b}` alternatives. A pattern
//! without `/` matches a file's name wherever it is (`*.rs`); one with `/`
//! matches its path relative to the directory (`src/**/*.rs`).

use super::DataError;

#[derive(Clone, Debug)]
pub struct Glob {
    text: String,
    /// The pattern with its `{a,b}` alternatives expanded, as characters.
    alternatives: Vec<Vec<char>>,
    /// Whether it matches relative paths (it has a `/`) or file names.
    whole_path: bool,
}

impl Glob {
    pub fn new(text: &str) -> Result<Glob, DataError> {
        let bad = |reason: &str| DataError::Glob { glob: text.to_string(), reason: reason.to_string() };
        if text.is_empty() {
            return Err(bad("it is empty"));
        }
        if text.contains(['[', ']']) {
            return Err(bad("character classes `[...]` are not supported; use `?` or `{a,b}`"));
        }
        let alternatives = match (text.find('{'), text.find('}')) {
            (None, None) => vec![text.to_string()],
            (Some(open), Some(close)) if open < close => {
                let (head, rest) = (&text[..open], &text[open + 1..]);
                let (body, tail) = (&rest[..close - open - 1], &rest[close - open..]);
                if body.contains('{') || tail.contains(['{', '}']) {
                    return Err(bad("only one `{a,b}` group is supported"));
                }
                body.split(',').map(|alt| format!("{head}{alt}{tail}")).collect()
            }
            _ => return Err(bad("unbalanced `{` or `}`")),
        };
        Ok(Glob {
            text: text.to_string(),
            alternatives: alternatives.iter().map(|a| a.chars().collect()).collect(),
            whole_path: text.contains('/'),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the file at `relative` (`/`-separated, under the walked directory) matches.
    pub fn matches(&self, relative: &str) -> bool {
        let subject =
            if self.whole_path { relative } else { relative.rsplit('/').next().unwrap_or(relative) };
        let subject: Vec<char> = subject.chars().collect();
        self.alternatives.iter().any(|pattern| matches(pattern, &subject))
    }
}

/// Backtracking wildcard match; patterns are short, so the worst case is fine.
fn matches(pattern: &[char], subject: &[char]) -> bool {
    match pattern {
        [] => subject.is_empty(),
        ['*', '*', rest @ ..] => {
            // `**/` may also match nothing, so `src/**/*.rs` takes `src/a.rs`.
            let rest_after_slash = rest.strip_prefix(&['/']);
            (0..=subject.len()).any(|i| matches(rest, &subject[i..]))
                || rest_after_slash.is_some_and(|r| matches(r, subject))
        }
        ['*', rest @ ..] => {
            let run = subject.iter().take_while(|&&c| c != '/').count();
            (0..=run).any(|i| matches(rest, &subject[i..]))
        }
        ['?', rest @ ..] => subject.first().is_some_and(|&c| c != '/') && matches(rest, &subject[1..]),
        [c, rest @ ..] => subject.first() == Some(c) && matches(rest, &subject[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_paths_and_alternatives() {
        let rs = Glob::new("*.rs").unwrap();
        assert!(rs.matches("lib.rs") && rs.matches("a/b/lib.rs"));
        assert!(!rs.matches("lib.rsx") && !rs.matches("a/lib.toml"));
        let src = Glob::new("src/**/*.rs").unwrap();
        assert!(src.matches("src/a.rs") && src.matches("src/x/y/a.rs"));
        assert!(!src.matches("lib/src/a.rs"));
        let top = Glob::new("src/*.rs").unwrap();
        assert!(top.matches("src/a.rs") && !top.matches("src/x/a.rs"));
        let alt = Glob::new("*.{rs,md}").unwrap();
        assert!(alt.matches("README.md") && alt.matches("x/main.rs") && !alt.matches("a.txt"));
        let q = Glob::new("?.txt").unwrap();
        assert!(q.matches("a.txt") && !q.matches("ab.txt"));
        assert!(Glob::new("*").unwrap().matches("anything/at/all"));
    }

    #[test]
    fn unsupported_globs_are_errors() {
        for (glob, reason) in [
            ("", "empty"),
            ("[ab].rs", "character classes"),
            ("*.{rs", "unbalanced"),
            ("}{", "unbalanced"),
            ("{a,b}/{c,d}", "one `{a,b}` group"),
        ] {
            let err = Glob::new(glob).unwrap_err().to_string();
            assert!(err.contains(reason), "{glob}: {err}");
            assert!(err.starts_with(&format!("invalid file glob `{glob}`")), "{err}");
        }
    }
}
