//! Writing a revision's tree from the chunk store, all or nothing.
//!
//! The tree is written into a staging directory next to the destination (same file
//! system), flushed, then renamed into place, so a crash at any moment leaves either no
//! destination or a complete one, never a half-written tree that could pass for the
//! revision (DESIGN.md "Non-negotiables"). Every chunk is verified as it is read (the
//! store does it) and its length and every file's size are checked against the
//! manifest. One chunk is in memory at a time.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use fleetmesh_state::model::ids::ChunkHash;
use fleetmesh_state::model::revision::{EntryKind, Manifest, ManifestEntry, ManifestError};

use super::store::{ChunkStore, StoreError};

/// Mode of the destination directory itself (the bundle root has no manifest entry).
const ROOT_DIR_MODE: u32 = 0o755;

/// Why a revision could not be written out.
#[derive(Debug, thiserror::Error)]
pub enum MaterializeError {
    /// The manifest breaks a manifest rule; nothing was written.
    #[error("refusing to materialize an invalid manifest: {0}")]
    Manifest(#[from] ManifestError),
    /// The destination already exists; materialize never overwrites.
    #[error("destination {} already exists; materialize into a fresh path", path.display())]
    DestinationExists {
        /// The destination.
        path: PathBuf,
    },
    /// A chunk of a file could not be read (missing, or corrupt and now deleted).
    #[error("bundle entry {entry:?}: {source}")]
    Chunk {
        /// The file being written.
        entry: String,
        /// The store's error.
        source: StoreError,
    },
    /// A chunk's bytes have another length than the manifest says.
    #[error("bundle entry {entry:?}: chunk {hash} holds {actual} bytes, the manifest says {expected}")]
    ChunkLength {
        /// The file being written.
        entry: String,
        /// The chunk.
        hash: ChunkHash,
        /// Length in the manifest.
        expected: u32,
        /// Length read.
        actual: usize,
    },
    /// A file's chunks do not add up to its size.
    #[error("bundle entry {entry:?}: wrote {actual} bytes, the manifest says {expected}")]
    FileSize {
        /// The file.
        entry: String,
        /// Size in the manifest.
        expected: u64,
        /// Bytes written.
        actual: u64,
    },
    /// The file system failed.
    #[error("cannot write {}: {source}", path.display())]
    Io {
        /// The path being written.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
}

impl MaterializeError {
    /// True when a chunk the manifest names is not in the store (never held, or
    /// lost after it was): fetching the revision again can cure it, unlike the
    /// other errors.
    pub fn is_missing_chunk(&self) -> bool {
        matches!(self, Self::Chunk { source: StoreError::Missing(_), .. })
    }
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> MaterializeError + '_ {
    move |source| MaterializeError::Io { path: path.to_path_buf(), source }
}

/// Writes the tree `manifest` describes, with content from `store`, at `dest_dir`.
///
/// `dest_dir` must not exist; its parent must. Staging happens in `.<name>.partial` next
/// to it, which a previous crashed call may have left and which is removed first; one
/// caller at a time per destination. On success the tree is flushed to disk (each file
/// and directory) before the rename, and the rename itself is flushed. On error nothing is left behind.
///
/// # Errors
/// [`MaterializeError`], naming the entry or path at fault.
pub fn materialize(manifest: &Manifest, store: &ChunkStore, dest_dir: &Path) -> Result<(), MaterializeError> {
    // Paired check: the manifest was validated when it was built and when it was
    // committed; validation here is what makes the joins below stay inside the staging
    // directory (clean relative paths, parents are directories, not symlinks).
    manifest.validate()?;
    if fs::symlink_metadata(dest_dir).is_ok() {
        return Err(MaterializeError::DestinationExists { path: dest_dir.to_path_buf() });
    }
    let staging = staging_path(dest_dir)?;
    if fs::symlink_metadata(&staging).is_ok() {
        remove_tree(&staging).map_err(io_error(&staging))?;
    }
    fs::create_dir(&staging).map_err(io_error(&staging))?;
    let written = write_tree(manifest, store, &staging).and_then(|()| {
        // Everything must be on disk before the rename makes it visible: every file was
        // flushed as it was written; flush the directories (their entries) here. Not
        // `syncfs`: it flushes every dirty page of the whole file system, other
        // processes' included, and took 0.3–1 s per call on a shared test machine.
        sync_directories(manifest, &staging)?;
        fs::rename(&staging, dest_dir).map_err(io_error(dest_dir))
    });
    if let Err(error) = written {
        if let Err(cleanup) = remove_tree(&staging) {
            tracing::warn!(path = %staging.display(), %cleanup, "cannot remove a materialize staging directory");
        }
        return Err(error);
    }
    let parent = dest_dir.parent().unwrap_or(Path::new("."));
    File::open(parent).and_then(|directory| directory.sync_all()).map_err(io_error(parent))
}

/// `.<name>.partial` beside the destination.
fn staging_path(dest_dir: &Path) -> Result<PathBuf, MaterializeError> {
    let Some(name) = dest_dir.file_name() else {
        let source = io::Error::new(io::ErrorKind::InvalidInput, "the destination has no final name component");
        return Err(MaterializeError::Io { path: dest_dir.to_path_buf(), source });
    };
    let mut staging = std::ffi::OsString::from(".");
    staging.push(name);
    staging.push(".partial");
    Ok(dest_dir.with_file_name(staging))
}

/// Writes every entry under `root` (which exists and is empty).
fn write_tree(manifest: &Manifest, store: &ChunkStore, root: &Path) -> Result<(), MaterializeError> {
    // Entries are sorted, so a directory comes before everything inside it.
    for entry in &manifest.entries {
        let path = root.join(&entry.path);
        match &entry.kind {
            EntryKind::Dir => fs::create_dir(&path).map_err(io_error(&path))?,
            EntryKind::File { .. } => write_file(entry, store, &path)?,
            EntryKind::Symlink { target } => std::os::unix::fs::symlink(target, &path).map_err(io_error(&path))?,
        }
    }
    // Directory modes last, deepest first, so a read-only directory does not block the
    // writes into it.
    for entry in manifest.entries.iter().rev() {
        if entry.kind == EntryKind::Dir {
            let path = root.join(&entry.path);
            fs::set_permissions(&path, fs::Permissions::from_mode(entry.mode)).map_err(io_error(&path))?;
        }
    }
    fs::set_permissions(root, fs::Permissions::from_mode(ROOT_DIR_MODE)).map_err(io_error(root))
}

/// Writes one file chunk by chunk, checking lengths, then sets its mode.
fn write_file(entry: &ManifestEntry, store: &ChunkStore, path: &Path) -> Result<(), MaterializeError> {
    let EntryKind::File { size, chunks } = &entry.kind else {
        unreachable!("write_file is called for files only");
    };
    // Owner-only until complete; `create_new` never follows or reuses an existing path.
    let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(io_error(path))?;
    let mut written: u64 = 0;
    for chunk in chunks {
        let bytes =
            store.get(chunk.hash()).map_err(|source| MaterializeError::Chunk { entry: entry.path.clone(), source })?;
        if bytes.len() != chunk.len() as usize {
            return Err(MaterializeError::ChunkLength {
                entry: entry.path.clone(),
                hash: chunk.hash(),
                expected: chunk.len(),
                actual: bytes.len(),
            });
        }
        file.write_all(&bytes).map_err(io_error(path))?;
        written += bytes.len() as u64;
    }
    if written != *size {
        return Err(MaterializeError::FileSize { entry: entry.path.clone(), expected: *size, actual: written });
    }
    file.set_permissions(fs::Permissions::from_mode(entry.mode)).map_err(io_error(path))?;
    file.sync_all().map_err(io_error(path))
}

/// Flushes every directory of the tree (deepest first, the root last), so the names of
/// the files and symlinks in them are durable.
fn sync_directories(manifest: &Manifest, root: &Path) -> Result<(), MaterializeError> {
    let directories = manifest.entries.iter().rev().filter(|entry| entry.kind == EntryKind::Dir);
    for path in directories.map(|entry| root.join(&entry.path)).chain(std::iter::once(root.to_path_buf())) {
        File::open(&path).and_then(|directory| directory.sync_all()).map_err(io_error(&path))?;
    }
    Ok(())
}

/// Removes a tree that may hold directories without write permission (a staging tree
/// whose modes were already applied when the previous attempt stopped).
fn remove_tree(root: &Path) -> io::Result<()> {
    let mut pending = vec![root.to_path_buf()];
    // Bounded by the number of directories in the tree.
    while let Some(dir) = pending.pop() {
        if fs::symlink_metadata(&dir)?.is_dir() {
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))?;
            for child in fs::read_dir(&dir)? {
                let child = child?;
                if child.file_type()?.is_dir() {
                    pending.push(child.path());
                }
            }
        }
    }
    if fs::symlink_metadata(root)?.is_dir() {
        fs::remove_dir_all(root)
    } else {
        fs::remove_file(root)
    }
}

#[cfg(test)]
mod tests;
