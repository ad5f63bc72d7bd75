//! Copying one revision file into place atomically (issue 13): the bytes go to a new
//! temporary file in the destination's directory, which gets the source's mode, times
//! and (as root) owner, is flushed to disk, and is then renamed over the destination.
//! A full disk, a file size limit or a crash mid-copy therefore never leaves a
//! truncated file under the destination's name: there is the old file (OVERWRITE), no
//! file, or the whole new one. A failed copy removes its temporary file; a crash can
//! leave one behind, named `.<name>.fleetmesh-<pid>-<n>` next to the destination.

use std::fs::{File, FileTimes, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::error::InstallError;

/// How many names are tried before giving up on finding a free temporary name.
const NAME_ATTEMPTS: u32 = 16;

/// Numbers temporary names within this process.
static NEXT_TEMPORARY: AtomicU64 = AtomicU64::new(0);

/// Copies the regular file `source` to `destination`, replacing whatever file or
/// symlink is there in one rename.
pub(crate) fn copy_file(source: &Path, destination: &Path, is_root: bool) -> Result<(), InstallError> {
    copy_file_with(source, destination, is_root, |from, to| io::copy(from, to).map(drop))
}

/// [`copy_file`] with the byte copy given (tests make it fail halfway).
fn copy_file_with<C>(source: &Path, destination: &Path, is_root: bool, copy: C) -> Result<(), InstallError>
where
    C: FnOnce(&mut File, &mut File) -> io::Result<()>,
{
    let metadata = std::fs::metadata(source).map_err(|error| InstallError::io("inspect", source, error))?;
    let mut from = File::open(source).map_err(|error| InstallError::io("copy to", destination, error))?;
    let (temporary, mut to) = create_temporary(destination)?;
    let written = copy(&mut from, &mut to)
        .map_err(|error| InstallError::io("copy to", destination, error))
        .and_then(|()| finish(&mut to, &metadata, source, destination, is_root));
    drop(to);
    let renamed = written.and_then(|()| {
        std::fs::rename(&temporary, destination).map_err(|error| InstallError::io("copy to", destination, error))
    });
    if renamed.is_err() {
        remove_temporary(&temporary);
    }
    renamed
}

/// Gives the copied bytes the source's mode, times and (as root) owner, in the order
/// the direct copy did, and flushes them to disk.
fn finish(
    file: &mut File,
    metadata: &Metadata,
    source: &Path,
    destination: &Path,
    is_root: bool,
) -> Result<(), InstallError> {
    file.set_permissions(metadata.permissions()).map_err(|error| InstallError::io("copy to", destination, error))?;
    let times = FileTimes::new()
        .set_modified(metadata.modified().map_err(|error| InstallError::io("inspect", source, error))?)
        .set_accessed(metadata.accessed().map_err(|error| InstallError::io("inspect", source, error))?);
    file.set_times(times).map_err(|error| InstallError::io("set times of", destination, error))?;
    if is_root {
        std::os::unix::fs::fchown(&*file, Some(metadata.uid()), Some(metadata.gid()))
            .map_err(|error| InstallError::io("chown", destination, error))?;
    }
    file.sync_data().map_err(|error| InstallError::io("copy to", destination, error))
}

/// Creates a new, owner-only file next to `destination` under a name no other file has.
fn create_temporary(destination: &Path) -> Result<(PathBuf, File), InstallError> {
    let (Some(directory), Some(name)) = (destination.parent(), destination.file_name()) else {
        return Err(InstallError::io("copy to", destination, io::Error::other("the destination has no file name")));
    };
    let mut last_error = io::Error::other("no temporary name was tried");
    for _ in 0..NAME_ATTEMPTS {
        let number = NEXT_TEMPORARY.fetch_add(1, Ordering::Relaxed);
        let mut temporary_name = std::ffi::OsString::from(".");
        temporary_name.push(name);
        temporary_name.push(format!(".fleetmesh-{}-{number}", std::process::id()));
        let temporary = directory.join(temporary_name);
        match OpenOptions::new().write(true).create_new(true).mode(0o600).open(&temporary) {
            Ok(file) => return Ok((temporary, file)),
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => last_error = error,
            Err(error) => return Err(InstallError::io("copy to", destination, error)),
        }
    }
    Err(InstallError::io("copy to", destination, last_error))
}

/// Removes a temporary file after a failed copy.
fn remove_temporary(temporary: &Path) {
    if let Err(error) = std::fs::remove_file(temporary) {
        tracing::warn!(path = %temporary.display(), %error, "could not remove the temporary file of a failed copy");
    }
}

/// Reads at most `limit` bytes through, then fails as a full disk would.
#[cfg(test)]
fn fail_after(limit: u64) -> impl FnOnce(&mut File, &mut File) -> io::Result<()> {
    move |from, to| {
        io::copy(&mut io::Read::take(from, limit), to)?;
        Err(io::Error::from_raw_os_error(28)) // ENOSPC
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names in `directory`, sorted.
    fn names(directory: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(directory)
            .expect("read dir")
            .map(|entry| entry.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_copy_failing_halfway_leaves_no_file_and_no_temporary() {
        // Copies a 64 KiB file with a copy that writes 4 KiB and then reports ENOSPC;
        // asserts the error names the destination and the directory holds no new file.
        let dir = tempfile::tempdir().expect("temp dir");
        let source = dir.path().join("source");
        std::fs::write(&source, vec![7u8; 64 * 1024]).expect("source");
        let target_dir = dir.path().join("target");
        std::fs::create_dir(&target_dir).expect("target dir");
        let destination = target_dir.join("app.bin");
        let error = copy_file_with(&source, &destination, false, fail_after(4096)).expect_err("copy fails");
        assert!(error.to_string().contains("app.bin"), "{error}");
        assert!(error.to_string().contains("No space left on device"), "{error}");
        assert_eq!(names(&target_dir), Vec::<String>::new());
    }

    #[test]
    fn a_copy_failing_halfway_keeps_the_old_file() {
        // Overwrites an existing file with a copy that fails halfway; asserts the old
        // contents are intact and no temporary remains.
        let dir = tempfile::tempdir().expect("temp dir");
        let source = dir.path().join("source");
        std::fs::write(&source, vec![7u8; 64 * 1024]).expect("source");
        let target_dir = dir.path().join("target");
        std::fs::create_dir(&target_dir).expect("target dir");
        let destination = target_dir.join("app.bin");
        std::fs::write(&destination, "old").expect("old file");
        copy_file_with(&source, &destination, false, fail_after(4096)).expect_err("copy fails");
        assert_eq!(std::fs::read_to_string(&destination).expect("old file"), "old");
        assert_eq!(names(&target_dir), ["app.bin"]);
    }

    #[test]
    fn a_copy_replaces_a_symlink_and_keeps_mode_and_time() {
        // Copies a 0750 file over a symlink to another file; asserts the symlink itself
        // was replaced (its target untouched), the mode and mtime came along, and the
        // file is whole.
        let dir = tempfile::tempdir().expect("temp dir");
        let source = dir.path().join("source");
        std::fs::write(&source, "new contents").expect("source");
        std::fs::set_permissions(&source, std::os::unix::fs::PermissionsExt::from_mode(0o750)).expect("chmod");
        let elsewhere = dir.path().join("elsewhere");
        std::fs::write(&elsewhere, "keep me").expect("elsewhere");
        let destination = dir.path().join("link");
        std::os::unix::fs::symlink(&elsewhere, &destination).expect("symlink");
        copy_file(&source, &destination, false).expect("copy");
        let copied = std::fs::symlink_metadata(&destination).expect("copied");
        assert!(copied.is_file());
        assert_eq!(copied.mode() & 0o7777, 0o750);
        assert_eq!(copied.mtime(), std::fs::metadata(&source).expect("source").mtime());
        assert_eq!(std::fs::read_to_string(&destination).expect("read"), "new contents");
        assert_eq!(std::fs::read_to_string(&elsewhere).expect("read"), "keep me");
    }
}
