//! Writing files so that a failure never leaves a half-written file behind.
//!
//! The new contents go to a temporary file beside the target, named
//! `.weft-tmp-<pid>-<name>`, which is renamed over the target once written
//! and on disk. A crash leaves that temporary behind: readers open files by
//! name and never see it, and the next write to the same place removes the
//! ones whose process is gone ([`remove_leftovers`]).

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// The prefix of every temporary file or directory weft writes before renaming it into place.
pub const TEMP_PREFIX: &str = ".weft-tmp-";

/// Writes `path` through a temporary file in the same directory, renamed into
/// place only once `write` has succeeded and the data is on disk.
///
/// A symbolic link is followed: its target gets the new contents and the link
/// stays. Something that exists but is not a regular file (a device such as
/// `/dev/null` or `/dev/full`, a FIFO) is written in place, since renaming
/// over it would replace it; its write errors (a full disk) are still errors.
pub fn write_atomically<E: From<io::Error>>(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> Result<(), E>,
) -> Result<(), E> {
    let target = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    if let Ok(meta) = std::fs::metadata(&target)
        && !meta.is_file()
    {
        if meta.is_dir() {
            return Err(io::Error::new(io::ErrorKind::IsADirectory, "it is a directory").into());
        }
        let mut writer = BufWriter::new(File::options().write(true).open(&target)?);
        write(&mut writer)?;
        writer.flush()?;
        return Ok(());
    }
    remove_leftovers(&target);
    let tmp = temp_path(&target);
    let result = (|| {
        let mut writer = BufWriter::new(File::create(&tmp)?);
        write(&mut writer)?;
        let file = writer.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, &target)?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// `.weft-tmp-<pid>-<name>` beside `path`: this process's temporary for it.
pub(crate) fn temp_path(path: &Path) -> PathBuf {
    path.with_file_name(format!("{TEMP_PREFIX}{}-{}", std::process::id(), file_name(path)))
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// Removes the temporaries that crashed writes of `path` left beside it
/// (`.weft-tmp-<pid>-<name>`, files or directories), unless their process
/// still runs. Best effort: what cannot be removed stays.
pub fn remove_leftovers(path: &Path) {
    let name = file_name(path);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let entry_name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = leftover_pid(&entry_name, &name) else { continue };
        if pid == std::process::id() || process_runs(pid) {
            continue;
        }
        let p = entry.path();
        let _ = if p.is_dir() { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) };
    }
}

/// The process id in `.weft-tmp-<pid>-<name>` (or `.weft-old-<pid>-<name>`) when `entry` is one for `name`.
fn leftover_pid(entry: &str, name: &str) -> Option<u32> {
    let rest = entry.strip_prefix(TEMP_PREFIX).or_else(|| entry.strip_prefix(OLD_PREFIX))?;
    let (pid, rest) = rest.split_once('-')?;
    (rest == name).then(|| pid.parse().ok()).flatten()
}

/// The prefix of an old directory moved aside while its replacement is renamed in.
pub(crate) const OLD_PREFIX: &str = ".weft-old-";

/// Whether process `pid` runs, where `/proc` can tell; elsewhere every other
/// writer counts as gone.
fn process_runs(pid: u32) -> bool {
    Path::new("/proc/self").exists() && Path::new(&format!("/proc/{pid}")).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("weft-atomic-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temporary() {
        let dir = scratch("failed");
        let path = dir.join("out.bin");
        std::fs::write(&path, b"old").unwrap();
        let failed: Result<(), io::Error> = write_atomically(&path, |w| {
            w.write_all(b"partial")?;
            Err(io::Error::other("disk on fire"))
        });
        assert_eq!(failed.unwrap_err().to_string(), "disk on fire");
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        write_atomically::<io::Error>(&path, |w| w.write_all(b"new")).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_full_device_is_an_error() {
        if !Path::new("/dev/full").exists() {
            return;
        }
        let result = write_atomically::<io::Error>(Path::new("/dev/full"), |w| w.write_all(&[0; 1 << 16]));
        assert_eq!(result.unwrap_err().kind(), io::ErrorKind::StorageFull);
    }

    #[cfg(unix)]
    #[test]
    fn a_link_keeps_pointing_at_its_target_which_gets_the_contents() {
        let dir = scratch("link");
        std::fs::write(dir.join("target.bin"), b"old").unwrap();
        std::os::unix::fs::symlink("target.bin", dir.join("link.bin")).unwrap();
        write_atomically::<io::Error>(&dir.join("link.bin"), |w| w.write_all(b"new")).unwrap();
        assert!(std::fs::symlink_metadata(dir.join("link.bin")).unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read(dir.join("target.bin")).unwrap(), b"new");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn leftovers_of_gone_processes_are_removed_by_the_next_write() {
        let dir = scratch("leftovers");
        let path = dir.join("out.bin");
        // Process ids above the kernel's maximum (2^22) never run.
        let gone = dir.join(format!("{TEMP_PREFIX}4999999-out.bin"));
        let other = dir.join(format!("{TEMP_PREFIX}4999999-other.bin"));
        std::fs::write(&gone, b"half").unwrap();
        std::fs::write(&other, b"half").unwrap();
        write_atomically::<io::Error>(&path, |w| w.write_all(b"new")).unwrap();
        assert!(!gone.exists(), "the leftover of out.bin is removed");
        assert!(other.exists(), "another file's temporary is not ours to remove");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn leftover_names_are_recognised() {
        assert_eq!(leftover_pid(".weft-tmp-12-out.bin", "out.bin"), Some(12));
        assert_eq!(leftover_pid(".weft-old-12-kernels", "kernels"), Some(12));
        assert_eq!(leftover_pid(".weft-tmp-12-out.bin", "out"), None);
        assert_eq!(leftover_pid(".weft-tmp-x-out.bin", "out.bin"), None);
        assert_eq!(leftover_pid("out.bin", "out.bin"), None);
    }
}
