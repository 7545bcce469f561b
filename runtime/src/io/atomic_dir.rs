//! Writing a directory of files whole or not at all.
//!
//! The files go into a temporary sibling directory, `.weft-tmp-<pid>-<name>`,
//! which replaces the target only once every file is written and on disk. On
//! an error the temporary directory is removed and the old directory, if any,
//! is untouched. An old directory is first moved aside as
//! `.weft-old-<pid>-<name>` and removed after the new one is in place; a crash
//! between the two renames leaves it there, and the next write to the same
//! place removes both kinds of leftovers (see [`super::atomic`]).

use std::fs::File;
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};

use super::atomic::{OLD_PREFIX, remove_leftovers, temp_path};

/// The directory being written: [`DirWriter::file`] adds one file.
pub struct DirWriter {
    staging: PathBuf,
}

impl DirWriter {
    /// Writes the file `name` (a plain file name, no directories) of the new directory.
    pub fn file<E: From<io::Error>>(
        &mut self,
        name: &str,
        write: impl FnOnce(&mut BufWriter<File>) -> Result<(), E>,
    ) -> Result<(), E> {
        let plain = Path::new(name).file_name().is_some_and(|n| n == name);
        if !plain || name.starts_with('.') {
            let message = format!("`{name}` is not a plain file name");
            return Err(io::Error::new(io::ErrorKind::InvalidInput, message).into());
        }
        let mut writer = BufWriter::new(File::create(self.staging.join(name))?);
        write(&mut writer)?;
        writer.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        Ok(())
    }
}

/// Writes the directory `dir` with `write`, replacing what was there (see the module docs).
pub fn write_dir_atomically<E: From<io::Error>>(
    dir: &Path,
    write: impl FnOnce(&mut DirWriter) -> Result<(), E>,
) -> Result<(), E> {
    // A link to a directory: the directory it names is replaced, the link stays.
    let resolved = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let dir = resolved.as_path();
    if dir.file_name().is_none() {
        let message = format!("{} names no directory that can be replaced", dir.display());
        return Err(io::Error::new(io::ErrorKind::InvalidInput, message).into());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    remove_leftovers(dir);
    let staging = temp_path(dir);
    if staging.exists() {
        std::fs::remove_dir_all(&staging)?;
    }
    std::fs::create_dir(&staging)?;
    let mut writer = DirWriter { staging: staging.clone() };
    let result = write(&mut writer).and_then(|()| Ok(replace(&staging, dir)?));
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    result
}

/// Renames `staging` to `dir`, moving an old `dir` aside first and removing it after.
fn replace(staging: &Path, dir: &Path) -> io::Result<()> {
    if std::fs::symlink_metadata(dir).is_err() {
        return std::fs::rename(staging, dir);
    }
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let old = dir.with_file_name(format!("{OLD_PREFIX}{}-{name}", std::process::id()));
    std::fs::rename(dir, &old)?;
    if let Err(e) = std::fs::rename(staging, dir) {
        // Put the old directory back, so that a failure changes nothing.
        let _ = std::fs::rename(&old, dir);
        return Err(e);
    }
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("weft-atomic-dir-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// Fails the way a full disk does, after part of the data went out.
    struct FullDisk;
    impl Write for FullDisk {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from(io::ErrorKind::StorageFull))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_write_failure_leaves_the_old_directory_whole_and_no_temporary() {
        let root = scratch("fail");
        let out = root.join("kernels");
        std::fs::create_dir(&out).unwrap();
        std::fs::write(out.join("old.spv"), b"old").unwrap();
        let result = write_dir_atomically::<io::Error>(&out, |d| {
            d.file("a.spv", |w| w.write_all(b"first kernel"))?;
            d.file("b.spv", |w| {
                w.write_all(b"half")?;
                FullDisk.write_all(b"the rest")
            })
        });
        assert_eq!(result.unwrap_err().kind(), io::ErrorKind::StorageFull);
        assert_eq!(listing(&out), ["old.spv"]);
        assert_eq!(std::fs::read(out.join("old.spv")).unwrap(), b"old");
        assert_eq!(listing(&root), ["kernels"], "no temporary left beside it");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_new_directory_replaces_the_old_one_whole() {
        let root = scratch("replace");
        let out = root.join("kernels");
        std::fs::create_dir(&out).unwrap();
        std::fs::write(out.join("stale.spv"), b"old").unwrap();
        write_dir_atomically::<io::Error>(&out, |d| d.file("a.spv", |w| w.write_all(b"new"))).unwrap();
        assert_eq!(listing(&out), ["a.spv"]);
        assert_eq!(listing(&root), ["kernels"]);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn leftovers_of_a_crash_are_removed_and_names_must_be_plain() {
        let root = scratch("leftovers");
        let out = root.join("kernels");
        std::fs::create_dir_all(root.join(".weft-tmp-4999999-kernels")).unwrap();
        std::fs::create_dir_all(root.join(".weft-old-4999999-kernels")).unwrap();
        let bad = write_dir_atomically::<io::Error>(&out, |d| d.file("../escape", |w| w.write_all(b"x")));
        assert_eq!(bad.unwrap_err().kind(), io::ErrorKind::InvalidInput);
        assert_eq!(listing(&root), Vec::<String>::new());
        write_dir_atomically::<io::Error>(&out, |d| d.file("a.wgsl", |w| w.write_all(b"x"))).unwrap();
        assert_eq!(listing(&root), ["kernels"]);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
