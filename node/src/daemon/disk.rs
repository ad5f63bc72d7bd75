//! The data directory's permissions: nobody else lists it, and nobody else reads a file
//! that holds a secret. A node tightens what it created itself (an older release left
//! the directory `0755` and the Raft store `0644`) and says so; a secret file that
//! others can read and that belongs to another user is an error, since changing it
//! would hide a mistake the operator should see.
//!
//! The directory stays traversable (`0711`), like CodeDeploy's `deployment-root`: hooks
//! that `runas` another user still reach the unpacked bundles, whose own modes decide.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tracing::info;

use super::DaemonError;

/// The data directory's files that hold secrets: keys, tokens, the Raft store (it holds
/// the cluster CA's key and the token hashes).
pub(super) const SECRET_FILES: [&str; 8] = [
    "node.json",
    "admin-token",
    "join-token",
    "metrics-token",
    "api-key.pem",
    crate::runtime::ca_seal::SEAL_KEY_FILE,
    "bootstrap.json",
    "raft.redb",
];

/// Mode of the data directory: the owner's, and traversable by others.
const DATA_DIR_MODE: u32 = 0o711;

/// Tightens `data_dir` and its secret files; see the module doc.
///
/// # Errors
/// A secret another user owns that others may read, or a failed `chmod`.
pub(super) fn protect(data_dir: &Path) -> Result<(), DaemonError> {
    tighten(data_dir, 0o066, DATA_DIR_MODE)?;
    for name in SECRET_FILES {
        let path = data_dir.join(name);
        if path.exists() {
            tighten(&path, 0o077, 0o600)?;
        }
    }
    Ok(())
}

/// Sets `path` to `mode` when any bit of `forbidden` is set.
fn tighten(path: &Path, forbidden: u32, mode: u32) -> Result<(), DaemonError> {
    let io = |source| DaemonError::ReadFile { path: path.to_path_buf(), source };
    let meta = std::fs::metadata(path).map_err(io)?;
    let current = meta.permissions().mode() & 0o777;
    if current & forbidden == 0 {
        return Ok(());
    }
    if meta.uid() != nix::unistd::geteuid().as_raw() {
        return Err(DaemonError::ExposedSecret { path: PathBuf::from(path), mode: current, owner: meta.uid() });
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io)?;
    info!(path = %path.display(), from = format!("{current:o}"), to = format!("{mode:o}"), "tightened permissions");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_open_directory_and_store_are_tightened_and_other_files_left_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        std::fs::create_dir(&data).expect("mkdir");
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        for (name, mode) in [("raft.redb", 0o644), ("admin-token", 0o600), ("ca.pem", 0o644)] {
            std::fs::write(data.join(name), b"x").expect("write");
            std::fs::set_permissions(data.join(name), std::fs::Permissions::from_mode(mode)).expect("chmod");
        }
        protect(&data).expect("protect");
        let mode = |path: &Path| std::fs::metadata(path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(&data), 0o711);
        assert_eq!(mode(&data.join("raft.redb")), 0o600);
        assert_eq!(mode(&data.join("admin-token")), 0o600);
        assert_eq!(mode(&data.join("ca.pem")), 0o644, "the CA certificate is public");
    }
}
