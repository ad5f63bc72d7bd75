//! The cleanup file `<instructions dir>/<dg-id>-cleanup` (`codedeploy.md` §7.3): the
//! list of what the last install of a deployment group created, one path per line, so
//! the next install (or a rollback) removes exactly that and nothing the scripts or the
//! operator added.
//!
//! Writing: every path is appended *before* it is created, in one `write`, and the
//! file is fsync'ed at the end; a crash mid-install leaves a list that covers what
//! exists (plus perhaps one path that does not, which cleanup ignores) and at worst a
//! half-written last line, which cleanup drops. SELinux context registrations are lines
//! `semanage\0<path>`, as the agent writes them.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::error::InstallError;

/// Prefix of a line recording an SELinux file-context registration.
const SEMANAGE_PREFIX: &[u8] = b"semanage\0";

/// Appends created paths to a fresh cleanup file.
pub(crate) struct CleanupWriter {
    path: PathBuf,
    file: File,
}

impl CleanupWriter {
    /// Creates (truncating) the cleanup file at `path`.
    pub(crate) fn create(path: &Path) -> Result<Self, InstallError> {
        let file = File::create(path).map_err(|error| InstallError::io("create", path, error))?;
        Ok(Self { path: path.to_path_buf(), file })
    }

    /// Records a file, symlink or directory about to be created.
    pub(crate) fn record(&mut self, created: &Path) -> Result<(), InstallError> {
        self.append(b"", created)
    }

    /// Records an SELinux context registration for `path`.
    pub(crate) fn record_context(&mut self, path: &Path) -> Result<(), InstallError> {
        self.append(SEMANAGE_PREFIX, path)
    }

    fn append(&mut self, prefix: &[u8], path: &Path) -> Result<(), InstallError> {
        let bytes = path.as_os_str().as_bytes();
        if bytes.contains(&b'\n') {
            return Err(InstallError::NewlineInPath { path: path.to_path_buf() });
        }
        let mut line = Vec::with_capacity(prefix.len() + bytes.len() + 1);
        line.extend_from_slice(prefix);
        line.extend_from_slice(bytes);
        line.push(b'\n');
        self.file.write_all(&line).map_err(|error| InstallError::io("write", &self.path, error))
    }

    /// Flushes the list to disk.
    pub(crate) fn finish(self) -> Result<(), InstallError> {
        self.file.sync_all().map_err(|error| InstallError::io("fsync", &self.path, error))
    }
}

/// One line of a cleanup file.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum CleanupEntry {
    /// A file, symlink or directory to remove.
    Path(PathBuf),
    /// An SELinux context registration to delete.
    Context(PathBuf),
}

/// The complete lines of a cleanup file, in the order written. A last line without a
/// newline was cut off by a crash and is dropped; empty lines are skipped.
pub(crate) fn parse_entries(contents: &[u8]) -> Vec<CleanupEntry> {
    let mut lines: Vec<&[u8]> = contents.split(|byte| *byte == b'\n').collect();
    // `split` yields a last piece after the final newline: empty when the file ends
    // with one, the torn line otherwise. Either way it is not a complete line.
    lines.pop();
    lines
        .into_iter()
        .filter(|line| !line.is_empty())
        .map(|line| match line.strip_prefix(SEMANAGE_PREFIX) {
            Some(path) => CleanupEntry::Context(PathBuf::from(OsStr::from_bytes(path))),
            None => CleanupEntry::Path(PathBuf::from(OsStr::from_bytes(line))),
        })
        .collect()
}

/// Undoes the install recorded in the cleanup file at `path`, newest entry first, then
/// deletes the file. Returns how many entries were processed (0 when there is none).
///
/// Files and symlinks are removed; directories only when empty (anything else put
/// there survives); paths already gone are ignored; context registrations are deleted
/// with `semanage fcontext -d`, ignoring its failure as the agent does.
pub(crate) fn run_cleanup(path: &Path) -> Result<usize, InstallError> {
    let contents = match std::fs::read(path) {
        Ok(contents) => contents,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(error) => return Err(InstallError::io("read", path, error)),
    };
    let entries = parse_entries(&contents);
    for entry in entries.iter().rev() {
        match entry {
            CleanupEntry::Path(created) => remove_created(created)?,
            CleanupEntry::Context(labelled) => {
                // Best effort: the label registration is harmless if it lingers.
                let _ = std::process::Command::new("semanage")
                    .args([OsStr::new("fcontext"), OsStr::new("-d"), labelled.as_os_str()])
                    .output();
            }
        }
    }
    std::fs::remove_file(path).map_err(|error| InstallError::io("remove", path, error))?;
    Ok(entries.len())
}

fn remove_created(path: &Path) -> Result<(), InstallError> {
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(InstallError::io("inspect", path, error)),
    };
    let result = if metadata.is_dir() { std::fs::remove_dir(path) } else { std::fs::remove_file(path) };
    match result {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        // Someone put files in a directory we created: keep it (and them).
        Err(error) if metadata.is_dir() && error.kind() == io::ErrorKind::DirectoryNotEmpty => Ok(()),
        Err(error) => Err(InstallError::io("remove", path, error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torn_last_line_is_dropped() {
        // Parses a list whose last line lacks its newline (a crash mid-write), with a
        // context line and an empty line; asserts the torn line is gone.
        let entries = parse_entries(b"/a\n\n/a/b\nsemanage\0/a/b\n/a/c-torn");
        assert_eq!(
            entries,
            vec![
                CleanupEntry::Path("/a".into()),
                CleanupEntry::Path("/a/b".into()),
                CleanupEntry::Context("/a/b".into()),
            ]
        );
        assert!(parse_entries(b"").is_empty());
        assert!(parse_entries(b"/only-torn").is_empty());
    }

    #[test]
    fn cleanup_removes_in_reverse_and_keeps_non_empty_dirs() {
        // Records dir d, file d/f, dir e, file e/g (plus a foreign file in e and a path
        // that no longer exists); runs cleanup; asserts d is gone, e survives with only
        // the foreign file, and the cleanup file is deleted.
        let root = tempfile::tempdir().expect("temp dir");
        let at = |name: &str| root.path().join(name);
        std::fs::create_dir(at("d")).expect("mkdir d");
        std::fs::write(at("d/f"), "x").expect("write f");
        std::fs::create_dir(at("e")).expect("mkdir e");
        std::fs::write(at("e/g"), "x").expect("write g");
        std::fs::write(at("e/foreign"), "x").expect("write foreign");
        let list = at("dg-cleanup");
        let mut writer = CleanupWriter::create(&list).expect("create list");
        for name in ["d", "d/f", "gone", "e", "e/g"] {
            writer.record(&at(name)).expect("record");
        }
        writer.finish().expect("finish");
        assert_eq!(run_cleanup(&list).expect("cleanup"), 5);
        assert!(!at("d").exists());
        assert!(!at("e/g").exists());
        assert!(at("e/foreign").exists());
        assert!(!list.exists());
        assert_eq!(run_cleanup(&list).expect("second cleanup is a no-op"), 0);
    }

    #[test]
    fn paths_with_newlines_are_refused() {
        // Records a path containing a newline; asserts the refusal names it.
        let root = tempfile::tempdir().expect("temp dir");
        let mut writer = CleanupWriter::create(&root.path().join("list")).expect("create");
        let error = writer.record(Path::new("/a\nb")).expect_err("newline");
        assert!(matches!(error, InstallError::NewlineInPath { .. }));
    }
}
