//! Which deployment a deployment group last installed on this host (`codedeploy.md`
//! §2.4, §8.3): `<dg-id>_most_recent_install` (written after DownloadBundle) and
//! `<dg-id>_last_successful_install` (written when the Install step finishes, not when
//! the deployment succeeds). Each holds the absolute deployment directory. The
//! lifecycle executor reads them to pick whose ApplicationStop/BlockTraffic scripts run.
//!
//! Writes are atomic (temporary file, fsync, rename, fsync of the directory), so a
//! crash leaves either the old record or the new one, never a torn path.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::error::InstallError;

const LAST_SUCCESSFUL: &str = "_last_successful_install";
const MOST_RECENT: &str = "_most_recent_install";

/// Checks that a deployment group id can be part of a file name.
pub(crate) fn check_deployment_group_id(id: &str) -> Result<(), InstallError> {
    if id.is_empty() || id == "." || id == ".." || id.contains(['/', '\0']) {
        return Err(InstallError::BadDeploymentGroupId { id: id.to_string() });
    }
    Ok(())
}

/// The deployment directory of the group's last finished Install step on this host,
/// or `None` when there is none (first deployment of this group here). The directory
/// may since have been removed; the caller checks.
pub fn last_successful_install(instructions_dir: &Path, deployment_group_id: &str) -> Option<PathBuf> {
    read_record(instructions_dir, deployment_group_id, LAST_SUCCESSFUL)
}

/// The deployment directory of the group's most recent download on this host.
pub fn most_recent_install(instructions_dir: &Path, deployment_group_id: &str) -> Option<PathBuf> {
    read_record(instructions_dir, deployment_group_id, MOST_RECENT)
}

/// Records `deployment_dir` as the group's last successful install; call it when the
/// Install step has finished.
///
/// # Errors
/// A bad group id, or the record cannot be written.
pub fn record_last_successful_install(
    instructions_dir: &Path,
    deployment_group_id: &str,
    deployment_dir: &Path,
) -> Result<(), InstallError> {
    write_record(instructions_dir, deployment_group_id, LAST_SUCCESSFUL, deployment_dir)
}

/// Records `deployment_dir` as the group's most recent install; call it after
/// DownloadBundle.
///
/// # Errors
/// A bad group id, or the record cannot be written.
pub fn record_most_recent_install(
    instructions_dir: &Path,
    deployment_group_id: &str,
    deployment_dir: &Path,
) -> Result<(), InstallError> {
    write_record(instructions_dir, deployment_group_id, MOST_RECENT, deployment_dir)
}

fn read_record(instructions_dir: &Path, deployment_group_id: &str, suffix: &str) -> Option<PathBuf> {
    check_deployment_group_id(deployment_group_id).ok()?;
    let contents = std::fs::read(instructions_dir.join(format!("{deployment_group_id}{suffix}"))).ok()?;
    let path = contents.strip_suffix(b"\n").unwrap_or(&contents);
    (!path.is_empty()).then(|| PathBuf::from(OsStr::from_bytes(path)))
}

fn write_record(
    instructions_dir: &Path,
    deployment_group_id: &str,
    suffix: &str,
    deployment_dir: &Path,
) -> Result<(), InstallError> {
    check_deployment_group_id(deployment_group_id)?;
    std::fs::create_dir_all(instructions_dir)
        .map_err(|error| InstallError::io("create directory", instructions_dir, error))?;
    let path = instructions_dir.join(format!("{deployment_group_id}{suffix}"));
    write_atomically(&path, deployment_dir.as_os_str().as_bytes())
}

/// Replaces `path` with `contents` atomically and durably.
pub(crate) fn write_atomically(path: &Path, contents: &[u8]) -> Result<(), InstallError> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    let write = || -> io::Result<()> {
        let mut file = File::create(&temporary)?;
        file.write_all(contents)?;
        file.sync_all()
    };
    write().map_err(|error| InstallError::io("write", &temporary, error))?;
    std::fs::rename(&temporary, path).map_err(|error| InstallError::io("replace", path, error))?;
    if let Some(directory) = path.parent() {
        File::open(directory)
            .and_then(|directory| directory.sync_all())
            .map_err(|error| InstallError::io("fsync", directory, error))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_per_deployment_group() {
        // Writes last-successful and most-recent records for one group, overwrites one;
        // asserts reads return the latest, another group has none, and files match §8.3.
        let dir = tempfile::tempdir().expect("temp dir");
        let instructions = dir.path().join("deployment-instructions");
        assert_eq!(last_successful_install(&instructions, "dg-1"), None);
        record_most_recent_install(&instructions, "dg-1", Path::new("/root/dg-1/d-A")).expect("write");
        record_last_successful_install(&instructions, "dg-1", Path::new("/root/dg-1/d-A")).expect("write");
        record_last_successful_install(&instructions, "dg-1", Path::new("/root/dg-1/d-B")).expect("overwrite");
        assert_eq!(last_successful_install(&instructions, "dg-1"), Some(PathBuf::from("/root/dg-1/d-B")));
        assert_eq!(most_recent_install(&instructions, "dg-1"), Some(PathBuf::from("/root/dg-1/d-A")));
        assert_eq!(last_successful_install(&instructions, "dg-2"), None);
        let raw = std::fs::read_to_string(instructions.join("dg-1_last_successful_install")).expect("read");
        assert_eq!(raw, "/root/dg-1/d-B");
        assert!(!instructions.join("dg-1_last_successful_install.tmp").exists());
    }

    #[test]
    fn unsafe_group_ids_are_refused() {
        // Uses ids that would escape or break file names; asserts each is refused.
        let dir = tempfile::tempdir().expect("temp dir");
        for id in ["", ".", "..", "a/b", "../x", "a\0b"] {
            let result = record_last_successful_install(dir.path(), id, Path::new("/x"));
            assert!(matches!(result, Err(InstallError::BadDeploymentGroupId { .. })), "{id:?}");
            assert_eq!(last_successful_install(dir.path(), id), None);
        }
    }
}
