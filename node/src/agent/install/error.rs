//! Why an Install step failed. Each variant names the path or appspec entry at fault,
//! so the Install event's diagnostics tell the operator what to change.

use std::io;
use std::path::PathBuf;

/// Why [`install`](super::install) (or a record update) failed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The deployment group id cannot name files in the instructions directory.
    #[error(
        "deployment group id {id:?} cannot name a file; it must be non-empty, not '.' or '..', without '/' or NUL"
    )]
    BadDeploymentGroupId {
        /// The id as given.
        id: String,
    },
    /// `--install-root` points nowhere.
    #[error("install root {} is not a directory; create it or pass an existing --install-root", path.display())]
    InstallRootMissing {
        /// The install root.
        path: PathBuf,
    },
    /// A filesystem operation failed.
    #[error("cannot {action} {}: {error}", path.display())]
    Io {
        /// What was being done (`copy to`, `remove`, `write`…).
        action: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The operating system's reason.
        #[source]
        error: io::Error,
    },
    /// A `files` source is not in the revision.
    #[error("files[{entry}].source: {source_path:?} does not exist in the revision (looked for {})", resolved.display())]
    SourceMissing {
        /// Index of the `files` entry.
        entry: usize,
        /// The source as written.
        source_path: String,
        /// Where it was looked for.
        resolved: PathBuf,
    },
    /// The revision holds something that is not a file, directory or symlink.
    #[error("files[{entry}]: {} is not a regular file, directory or symlink", path.display())]
    UnsupportedFileType {
        /// Index of the `files` entry.
        entry: usize,
        /// The offending path in the revision.
        path: PathBuf,
    },
    /// DISALLOW and a file is already where one would be installed (§1.3).
    #[error(
        "a specified file already exists at this location: {}; remove it, or set file_exists_behavior to \
         OVERWRITE or RETAIN",
        path.display()
    )]
    FileExists {
        /// The existing path.
        path: PathBuf,
    },
    /// OVERWRITE, but a directory is where a file would go.
    #[error("a directory exists at {}, where {} would be installed; remove the directory", path.display(), from.display())]
    DirectoryInTheWay {
        /// The existing directory.
        path: PathBuf,
        /// The revision file meant for that path.
        from: PathBuf,
    },
    /// A file (not a directory) is where the install needs a directory.
    #[error("{} is not a directory, but files are installed below it; remove it or change the destination", path.display())]
    NotADirectory {
        /// The path that should be a directory.
        path: PathBuf,
    },
    /// Two sources resolve to one destination file (§1.3).
    #[error(
        "two source files, {} and {}, are installed at the same destination {}; remove one from the appspec",
        first.display(),
        second.display(),
        destination.display()
    )]
    DuplicateDestination {
        /// The shared destination.
        destination: PathBuf,
        /// The first source.
        first: PathBuf,
        /// The second source.
        second: PathBuf,
    },
    /// A file would be installed where this same install creates a directory (§1.3).
    #[error("{} would be installed at {}, where this install also creates a directory", from.display(), destination.display())]
    FileOverDirectory {
        /// The contested path.
        destination: PathBuf,
        /// The revision file meant for it.
        from: PathBuf,
    },
    /// A permission whose object is a file uses a pattern or except list (§1.4).
    #[error("permissions[{entry}]: object {} is a file, so pattern must be \"**\" and except empty", object.display())]
    PatternOnFile {
        /// Index of the `permissions` entry.
        entry: usize,
        /// The object.
        object: PathBuf,
    },
    /// Default ACL entries would be set on a file (§1.4).
    #[error("permissions[{entry}].acls: default (d:) entries apply to directories only, but {} is a file", path.display())]
    DefaultAclOnFile {
        /// Index of the `permissions` entry.
        entry: usize,
        /// The file.
        path: PathBuf,
    },
    /// Two permission entries match the same path (§1.4 "specified more than once").
    #[error(
        "permissions[{second}]: {} already gets permissions from permissions[{first}]; a path may be set by one entry only",
        path.display()
    )]
    PermissionsTwice {
        /// The path.
        path: PathBuf,
        /// The entry that matched first.
        first: usize,
        /// The entry that matched again.
        second: usize,
    },
    /// `owner` names no user on this host.
    #[error("permissions[{entry}].owner: user {name:?} does not exist on this host")]
    UnknownUser {
        /// Index of the `permissions` entry.
        entry: usize,
        /// The user name.
        name: String,
    },
    /// `group` names no group on this host.
    #[error("permissions[{entry}].group: group {name:?} does not exist on this host")]
    UnknownGroup {
        /// Index of the `permissions` entry.
        entry: usize,
        /// The group name.
        name: String,
    },
    /// `acls` or `context` need a command this host lacks.
    #[error("permissions[{entry}].{field} needs the {tool} command, which is not installed on this host; install {package} or remove {field}")]
    ToolMissing {
        /// Index of the `permissions` entry.
        entry: usize,
        /// `acls` or `context`.
        field: &'static str,
        /// The missing command.
        tool: &'static str,
        /// The package that usually provides it.
        package: &'static str,
    },
    /// `setfacl`, `semanage` or `restorecon` failed.
    #[error("{command} failed ({status}): {stderr}")]
    ToolFailed {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// A path contains a newline, which the one-path-per-line cleanup file cannot hold.
    #[error("{} contains a newline, which the cleanup file cannot record; rename it in the revision", path.display())]
    NewlineInPath {
        /// The path.
        path: PathBuf,
    },
}

impl InstallError {
    /// An [`InstallError::Io`] for `action` on `path`.
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, error: io::Error) -> Self {
        Self::Io { action, path: path.into(), error }
    }
}
