//! The install instructions: what the Install step will do, decided before it does any
//! of it (`codedeploy.md` §1.3, §7.3). Planning reads the revision and the host's
//! current files but changes nothing, so every appspec conflict (two sources for one
//! destination, a file where a directory must go, DISALLOW hits) is reported before a
//! single file is copied. The plan is also written as `<dg-id>-install.json`.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};

use fleetmesh_state::model::resources::FileExistsBehavior;
use serde::Serialize;

use super::error::InstallError;
use super::resolve::under_root;
use fleetmesh_core::appspec::{AclEntry, FileMapping};

/// One step of an install, in execution order. Serialized in the agent's
/// `install.json` shape (`{"type":"copy","source":…,"destination":…}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub(crate) enum Instruction {
    /// Create one directory (its parent exists by then).
    Mkdir {
        /// The directory.
        directory: PathBuf,
    },
    /// Copy a file, or recreate a symlink, from the revision.
    Copy {
        /// Path in the unpacked revision.
        source: PathBuf,
        /// Path on the host.
        destination: PathBuf,
        /// Recreate the symlink instead of copying content.
        #[serde(skip)]
        is_symlink: bool,
        /// Replace what is at `destination` (OVERWRITE).
        #[serde(skip)]
        is_overwrite: bool,
    },
    /// Set mode bits.
    Chmod {
        /// The path.
        file: PathBuf,
        /// Octal digits, as in the appspec.
        mode: String,
        /// The bits.
        #[serde(skip)]
        bits: u32,
    },
    /// Replace the ACL with these entries plus base entries from the mode.
    Setfacl {
        /// The path.
        file: PathBuf,
        /// Entries as setfacl text.
        acl: Vec<String>,
        /// The same entries, parsed.
        #[serde(skip)]
        entries: Vec<AclEntry>,
    },
    /// Register and apply an SELinux file context.
    Semanage {
        /// The path.
        file: PathBuf,
        /// SELinux user, type and range.
        context: ContextInstruction,
    },
    /// Change owner and/or group.
    Chown {
        /// The path.
        file: PathBuf,
        /// User name.
        owner: Option<String>,
        /// Group name.
        group: Option<String>,
        /// Resolved user id.
        #[serde(skip)]
        uid: Option<u32>,
        /// Resolved group id.
        #[serde(skip)]
        gid: Option<u32>,
    },
}

/// The `context` of a semanage instruction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct ContextInstruction {
    /// SELinux user.
    pub(crate) user: Option<String>,
    /// SELinux type.
    #[serde(rename = "type")]
    pub(crate) kind: String,
    /// MLS/MCS range.
    pub(crate) range: Option<String>,
}

/// What a planned destination is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CopyKind {
    /// A regular file.
    File,
    /// A symlink, recreated as one.
    Symlink,
}

/// The install instructions and the bookkeeping needed to build them.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    /// Steps in execution order.
    pub(crate) instructions: Vec<Instruction>,
    /// Destinations this install copies to, and what goes there.
    pub(crate) copy_targets: BTreeMap<PathBuf, CopyKind>,
    /// Directories this install creates.
    pub(crate) mkdir_targets: BTreeSet<PathBuf>,
    /// Existing files kept under RETAIN: not copied, but recorded in the cleanup list as
    /// installed by this deployment (codedeploy.md §7.2), so the next install removes them.
    pub(crate) retained: Vec<PathBuf>,
    /// Every destination claimed by a source (copied or retained), to refuse duplicates.
    claimed: BTreeMap<PathBuf, PathBuf>,
}

/// Builds the copy part of a plan from the appspec's `files`.
pub(crate) struct FilePlanner<'a> {
    archive_root: &'a Path,
    install_root: &'a Path,
    behavior: FileExistsBehavior,
    plan: Plan,
}

impl<'a> FilePlanner<'a> {
    /// A planner copying from `archive_root` to destinations under `install_root`.
    pub(crate) fn new(archive_root: &'a Path, install_root: &'a Path, behavior: FileExistsBehavior) -> Self {
        Self { archive_root, install_root, behavior, plan: Plan::default() }
    }

    /// Plans one `files` entry (§1.3): a file source goes to `destination/<name>`, a
    /// directory source's contents go into `destination`; missing directories are
    /// created level by level.
    pub(crate) fn add(&mut self, entry: usize, mapping: &FileMapping) -> Result<(), InstallError> {
        let source = under_root(self.archive_root, &mapping.source);
        let metadata = std::fs::symlink_metadata(&source).map_err(|error| match error.kind() {
            io::ErrorKind::NotFound => {
                InstallError::SourceMissing { entry, source_path: mapping.source.clone(), resolved: source.clone() }
            }
            _ => InstallError::io("inspect", &source, error),
        })?;
        let destination = under_root(self.install_root, &mapping.destination);
        if metadata.is_dir() {
            self.add_missing_ancestors(&destination)?;
            self.add_directory(entry, &source, &destination)
        } else {
            let Some(name) = source.file_name() else {
                return Err(InstallError::UnsupportedFileType { entry, path: source });
            };
            let target = destination.join(name);
            self.add_missing_ancestors(&target)?;
            self.add_entry(entry, &source, &metadata, &target)
        }
    }

    /// The finished plan.
    pub(crate) fn finish(self) -> Plan {
        self.plan
    }

    /// Plans `mkdir` for each missing ancestor of `path` below the install root, top
    /// down. Directories that exist (on disk or earlier in this plan) are not recorded.
    fn add_missing_ancestors(&mut self, path: &Path) -> Result<(), InstallError> {
        let mut missing = Vec::new();
        let mut ancestor = path.parent();
        // Bounded by the depth of `path`.
        while let Some(directory) = ancestor {
            if directory == self.install_root || !directory.starts_with(self.install_root) {
                break;
            }
            if self.is_planned_or_existing_dir(directory)? {
                break;
            }
            missing.push(directory.to_path_buf());
            ancestor = directory.parent();
        }
        for directory in missing.into_iter().rev() {
            self.add_mkdir(directory)?;
        }
        Ok(())
    }

    /// True when `directory` is already a directory (on disk or planned); an error when
    /// something else is in the way.
    fn is_planned_or_existing_dir(&self, directory: &Path) -> Result<bool, InstallError> {
        if self.plan.mkdir_targets.contains(directory) {
            return Ok(true);
        }
        if let Some(from) = self.plan.claimed.get(directory) {
            return Err(InstallError::FileOverDirectory { destination: directory.to_path_buf(), from: from.clone() });
        }
        match std::fs::metadata(directory) {
            Ok(metadata) if metadata.is_dir() => Ok(true),
            Ok(_) => Err(InstallError::NotADirectory { path: directory.to_path_buf() }),
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                // A dangling symlink is "missing" to metadata() but still blocks mkdir.
                match std::fs::symlink_metadata(directory) {
                    Ok(_) => Err(InstallError::NotADirectory { path: directory.to_path_buf() }),
                    Err(_) => Ok(false),
                }
            }
            Err(error) => Err(InstallError::io("inspect", directory, error)),
        }
    }

    fn add_mkdir(&mut self, directory: PathBuf) -> Result<(), InstallError> {
        check_newline(&directory)?;
        if self.plan.mkdir_targets.insert(directory.clone()) {
            self.plan.instructions.push(Instruction::Mkdir { directory });
        }
        Ok(())
    }

    /// Copies the contents of the revision directory `source` into `destination`, in
    /// name order (deterministic plans).
    fn add_directory(&mut self, entry: usize, source: &Path, destination: &Path) -> Result<(), InstallError> {
        if !self.is_planned_or_existing_dir(destination)? {
            self.add_mkdir(destination.to_path_buf())?;
        }
        let listing = std::fs::read_dir(source).map_err(|error| InstallError::io("list", source, error))?;
        let mut children = Vec::new();
        for child in listing {
            let child = child.map_err(|error| InstallError::io("list", source, error))?;
            children.push(child.file_name());
        }
        children.sort();
        // Recursion depth is bounded by the revision's directory depth; symlinks are
        // recreated, never followed, so there are no cycles.
        for name in children {
            let child_source = source.join(&name);
            let child_destination = destination.join(&name);
            let metadata = std::fs::symlink_metadata(&child_source)
                .map_err(|error| InstallError::io("inspect", &child_source, error))?;
            if metadata.is_dir() {
                self.add_directory(entry, &child_source, &child_destination)?;
            } else {
                self.add_entry(entry, &child_source, &metadata, &child_destination)?;
            }
        }
        Ok(())
    }

    /// Plans one file or symlink, applying the file-exists behavior (§1.3).
    fn add_entry(
        &mut self,
        entry: usize,
        source: &Path,
        metadata: &std::fs::Metadata,
        destination: &Path,
    ) -> Result<(), InstallError> {
        let kind = if metadata.file_type().is_symlink() {
            CopyKind::Symlink
        } else if metadata.is_file() {
            CopyKind::File
        } else {
            return Err(InstallError::UnsupportedFileType { entry, path: source.to_path_buf() });
        };
        check_newline(destination)?;
        if let Some(first) = self.plan.claimed.get(destination) {
            return Err(InstallError::DuplicateDestination {
                destination: destination.to_path_buf(),
                first: first.clone(),
                second: source.to_path_buf(),
            });
        }
        if self.plan.mkdir_targets.contains(destination) {
            return Err(InstallError::FileOverDirectory {
                destination: destination.to_path_buf(),
                from: source.to_path_buf(),
            });
        }
        self.plan.claimed.insert(destination.to_path_buf(), source.to_path_buf());
        let existing = match std::fs::symlink_metadata(destination) {
            Ok(existing) => Some(existing),
            Err(error) if error.kind() == io::ErrorKind::NotFound => None,
            Err(error) => return Err(InstallError::io("inspect", destination, error)),
        };
        let is_overwrite = match (existing, self.behavior) {
            (None, _) => false,
            (Some(_), FileExistsBehavior::Disallow) => {
                return Err(InstallError::FileExists { path: destination.to_path_buf() });
            }
            (Some(_), FileExistsBehavior::Retain) => {
                self.plan.retained.push(destination.to_path_buf());
                return Ok(());
            }
            (Some(existing), FileExistsBehavior::Overwrite) if existing.is_dir() => {
                return Err(InstallError::DirectoryInTheWay {
                    path: destination.to_path_buf(),
                    from: source.to_path_buf(),
                });
            }
            (Some(_), FileExistsBehavior::Overwrite) => true,
        };
        self.plan.copy_targets.insert(destination.to_path_buf(), kind);
        self.plan.instructions.push(Instruction::Copy {
            source: source.to_path_buf(),
            destination: destination.to_path_buf(),
            is_symlink: kind == CopyKind::Symlink,
            is_overwrite,
        });
        Ok(())
    }
}

fn check_newline(path: &Path) -> Result<(), InstallError> {
    if path.as_os_str().as_encoded_bytes().contains(&b'\n') {
        return Err(InstallError::NewlineInPath { path: path.to_path_buf() });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instructions_serialize_in_the_agent_shape() {
        // Serializes a copy, a mkdir and a chmod; asserts the JSON the agent writes.
        let instructions = vec![
            Instruction::Mkdir { directory: "/srv".into() },
            Instruction::Copy {
                source: "/b/a".into(),
                destination: "/srv/a".into(),
                is_symlink: false,
                is_overwrite: true,
            },
            Instruction::Chmod { file: "/srv/a".into(), mode: "0644".into(), bits: 0o644 },
        ];
        let json = serde_json::to_string(&serde_json::json!({ "instructions": instructions })).expect("json");
        assert_eq!(
            json,
            r#"{"instructions":[{"directory":"/srv","type":"mkdir"},{"destination":"/srv/a","source":"/b/a","type":"copy"},{"file":"/srv/a","mode":"0644","type":"chmod"}]}"#
        );
    }
}
