//! The appspec of an unpacked revision on disk: finding the file and reading it into
//! the pure model of `fleetmesh_core::appspec`.

use std::path::{Path, PathBuf};

use fleetmesh_core::appspec::{self, AppSpec, AppSpecError};

/// Why the appspec of an unpacked revision could not be read.
#[derive(Debug, thiserror::Error)]
pub enum AppSpecFileError {
    /// Neither `appspec.yml` nor `appspec.yaml` is at the revision's root.
    #[error("the revision has no appspec.yml or appspec.yaml")]
    Missing,
    /// The file exists but cannot be read.
    #[error("{name}: {source}")]
    Read {
        /// The file name (`appspec.yml` or `appspec.yaml`).
        name: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The file is not a valid appspec.
    #[error(transparent)]
    Invalid(#[from] AppSpecError),
}

/// The appspec at the root of an unpacked revision: `appspec.yml`, else `appspec.yaml`
/// (§1.1: the agent looks for `.yml` first, so it wins when both exist).
pub fn find_appspec(root: &Path) -> Option<PathBuf> {
    ["appspec.yml", "appspec.yaml"].iter().map(|name| root.join(name)).find(|path| path.is_file())
}

/// Finds, reads and parses the appspec at the root of `archive`.
///
/// # Errors
/// No appspec file, an unreadable one, or an invalid one (the message names the file,
/// line and field).
pub fn read_appspec(archive: &Path) -> Result<AppSpec, AppSpecFileError> {
    let path = find_appspec(archive).ok_or(AppSpecFileError::Missing)?;
    let name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
    let text =
        std::fs::read_to_string(&path).map_err(|source| AppSpecFileError::Read { name: name.clone(), source })?;
    Ok(appspec::parse(&name, &text)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yml_wins_over_yaml() {
        // Creates a bundle root with appspec.yaml, then adds appspec.yml; asserts which is found.
        let root = tempfile::tempdir().expect("temp dir");
        assert_eq!(find_appspec(root.path()), None);
        std::fs::write(root.path().join("appspec.yaml"), "version: 0.0\n").expect("write yaml");
        assert_eq!(find_appspec(root.path()), Some(root.path().join("appspec.yaml")));
        std::fs::write(root.path().join("appspec.yml"), "version: 0.0\n").expect("write yml");
        assert_eq!(find_appspec(root.path()), Some(root.path().join("appspec.yml")));
    }

    #[test]
    fn a_missing_or_invalid_appspec_says_which() {
        let root = tempfile::tempdir().expect("temp dir");
        assert!(matches!(read_appspec(root.path()), Err(AppSpecFileError::Missing)));
        std::fs::write(root.path().join("appspec.yml"), "version: [\n").expect("write");
        let error = read_appspec(root.path()).expect_err("invalid");
        assert!(error.to_string().starts_with("appspec.yml"), "{error}");
    }
}
