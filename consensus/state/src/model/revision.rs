//! Revisions: the canonical manifest of a bundle, and its record in the cluster state.
//!
//! A manifest lists every path of the bundle (directories, files with their chunk
//! lists, symlinks) in byte order of the path. Its canonical bytes are its JSON
//! serialization (struct fields in declaration order, entries sorted), and the
//! revision id is BLAKE3 of those bytes. Only the manifest goes through Raft; chunk
//! bytes travel through the swarm.

use std::collections::BTreeSet;

use crate::NodeId;
use serde::{Deserialize, Serialize};

use super::ids::{ChunkHash, RevisionId, UnixMillis};
use super::members::Actor;

/// Manifest format written by this release.
pub const MANIFEST_FORMAT: u32 = 1;

/// How file content was cut into chunks; part of the manifest so old revisions
/// re-chunk identically if the defaults change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkingParams {
    /// Always `fastcdc-v2020` in format 1.
    pub algorithm: String,
    /// Smallest chunk in bytes (except a file's last).
    pub min_bytes: u32,
    /// Target average chunk size in bytes.
    pub avg_bytes: u32,
    /// Largest chunk in bytes.
    pub max_bytes: u32,
}

/// One chunk of a file: its hash and length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ChunkRef(pub ChunkHash, pub u32);

impl ChunkRef {
    /// The chunk's hash.
    pub fn hash(&self) -> ChunkHash {
        self.0
    }

    /// The chunk's length in bytes.
    pub fn len(&self) -> u32 {
        self.1
    }

    /// True for a zero-length chunk (never produced by the chunker).
    pub fn is_empty(&self) -> bool {
        self.1 == 0
    }
}

/// What a path is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum EntryKind {
    /// A directory.
    Dir,
    /// A regular file, as a list of chunks.
    File {
        /// Bytes in the file (sum of chunk lengths).
        size: u64,
        /// Chunks in file order.
        chunks: Vec<ChunkRef>,
    },
    /// A symbolic link; its target stays inside the bundle.
    Symlink {
        /// Link target as stored.
        target: String,
    },
}

/// One path of a bundle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// Relative path with `/` separators, no `.`/`..` components, no leading `/`.
    pub path: String,
    /// Unix permission bits (0o7777 at most).
    pub mode: u32,
    /// Directory, file or symlink.
    #[serde(flatten)]
    pub kind: EntryKind,
}

/// The canonical description of a revision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`MANIFEST_FORMAT`].
    pub format: u32,
    /// Chunker settings.
    pub chunking: ChunkingParams,
    /// Every path, sorted by path bytes, unique.
    pub entries: Vec<ManifestEntry>,
}

/// Why a manifest is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// Unknown format number.
    #[error("manifest format {0} is not supported (this node reads format {MANIFEST_FORMAT})")]
    Format(u32),
    /// A path that is empty, absolute, has `.`/`..` or empty components.
    #[error("bundle entry {0:?} is not a clean relative path (absolute paths and '..' are refused)")]
    Path(String),
    /// Entries out of order or repeated.
    #[error("bundle entry {0:?} is out of order or listed twice")]
    Order(String),
    /// A file's size does not equal the sum of its chunks.
    #[error("bundle entry {0:?}: size does not match its chunks")]
    Size(String),
    /// A symlink resolves outside the bundle.
    #[error("bundle entry {path:?} is a symlink to {target:?}, which points outside the bundle")]
    SymlinkEscape {
        /// The link.
        path: String,
        /// Its target.
        target: String,
    },
    /// A path's parent is not a directory of the bundle.
    #[error("bundle entry {0:?} lies under a path that is not a directory of the bundle")]
    Parent(String),
    /// No appspec.yml / appspec.yaml at the root.
    #[error("the bundle has no appspec.yml or appspec.yaml at its root")]
    NoAppSpec,
    /// Mode bits beyond 0o7777.
    #[error("bundle entry {0:?} has invalid mode bits")]
    Mode(String),
}

/// True when `path` is a clean relative path: non-empty components, none `.` or `..`.
pub fn is_clean_relative_path(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && !path.contains('\0')
        && path.split('/').all(|part| !part.is_empty() && part != "." && part != "..")
}

/// Resolves a symlink target written at `link_path` lexically; `None` when it leaves
/// the bundle root (or is absolute).
pub fn resolve_symlink(link_path: &str, target: &str) -> Option<String> {
    if target.starts_with('/') || target.is_empty() {
        return None;
    }
    let mut parts: Vec<&str> = link_path.split('/').collect();
    parts.pop();
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            other => parts.push(other),
        }
    }
    Some(parts.join("/"))
}

impl Manifest {
    /// The canonical bytes: what the revision id hashes.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a manifest always serializes")
    }

    /// BLAKE3 of the canonical bytes.
    pub fn revision_id(&self) -> RevisionId {
        RevisionId::of(&self.canonical_bytes())
    }

    /// Total bytes of file content.
    pub fn total_bytes(&self) -> u64 {
        self.files().map(|(_, size, _)| size).sum()
    }

    /// Files as (path, size, chunks).
    pub fn files(&self) -> impl Iterator<Item = (&str, u64, &[ChunkRef])> {
        self.entries.iter().filter_map(|entry| match &entry.kind {
            EntryKind::File { size, chunks } => Some((entry.path.as_str(), *size, chunks.as_slice())),
            _ => None,
        })
    }

    /// Distinct chunks in first-appearance order: the unit the swarm moves.
    pub fn unique_chunks(&self) -> Vec<ChunkRef> {
        let mut seen = BTreeSet::new();
        let mut unique = Vec::new();
        for (_, _, chunks) in self.files() {
            for chunk in chunks {
                if seen.insert(chunk.hash()) {
                    unique.push(*chunk);
                }
            }
        }
        unique
    }

    /// Checks the structural rules every manifest obeys, whoever built it.
    ///
    /// # Errors
    /// The first rule broken, naming the entry.
    pub fn validate(&self) -> Result<(), ManifestError> {
        if self.format != MANIFEST_FORMAT {
            return Err(ManifestError::Format(self.format));
        }
        let mut dirs: BTreeSet<&str> = BTreeSet::new();
        let mut previous: Option<&str> = None;
        let mut has_appspec = false;
        for entry in &self.entries {
            let path = entry.path.as_str();
            if !is_clean_relative_path(path) {
                return Err(ManifestError::Path(path.to_string()));
            }
            if previous.is_some_and(|before| before >= path) {
                return Err(ManifestError::Order(path.to_string()));
            }
            previous = Some(path);
            if entry.mode > 0o7777 {
                return Err(ManifestError::Mode(path.to_string()));
            }
            if let Some((parent, _)) = path.rsplit_once('/') {
                if !dirs.contains(parent) {
                    return Err(ManifestError::Parent(path.to_string()));
                }
            }
            match &entry.kind {
                EntryKind::Dir => {
                    dirs.insert(path);
                }
                EntryKind::File { size, chunks } => {
                    let sum: u64 = chunks.iter().map(|chunk| u64::from(chunk.len())).sum();
                    if sum != *size || chunks.iter().any(ChunkRef::is_empty) {
                        return Err(ManifestError::Size(path.to_string()));
                    }
                    if path == "appspec.yml" || path == "appspec.yaml" {
                        has_appspec = true;
                    }
                }
                EntryKind::Symlink { target } => {
                    if resolve_symlink(path, target).is_none() {
                        return Err(ManifestError::SymlinkEscape { path: path.to_string(), target: target.clone() });
                    }
                }
            }
        }
        if !has_appspec {
            return Err(ManifestError::NoAppSpec);
        }
        Ok(())
    }
}

/// A registered revision, as the cluster state keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RevisionRecord {
    /// BLAKE3 of the manifest.
    pub revision_id: RevisionId,
    /// The application it was pushed to.
    pub application_name: String,
    /// Free text from the pusher.
    pub description: String,
    /// Bytes of file content.
    pub size_bytes: u64,
    /// Bytes of distinct chunks (what a host without any of them downloads).
    pub unique_bytes: u64,
    /// Distinct chunks.
    pub chunk_count: u64,
    /// When it was registered.
    pub register_time: UnixMillis,
    /// Who pushed it (the API caller's description).
    pub registered_by: String,
    /// The API caller who registered it (for audit); set when applied, whatever the
    /// command carries; none below feature level 7.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<Actor>,
    /// Nodes that held every chunk when it was registered (the first seeds).
    pub seeds: Vec<NodeId>,
    /// The manifest itself (empty for an AppSpec-content revision).
    pub manifest: Manifest,
    /// An AppSpec given inline (AWS's `AppSpecContent` and `String` revisions, feature
    /// level 13): the whole revision of a Lambda deployment. Its id is
    /// [`RevisionRecord::content_id`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_spec: Option<String>,
    /// Where the cluster fetched the bundle from (an S3 object or a Git commit; feature
    /// level 15); none for a pushed bundle. A later registration of the same content
    /// from elsewhere replaces it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<RevisionSource>,
}

/// Where a revision's bundle came from, when a node fetched it for the cluster
/// (`revisionType` `S3` or `GitHub`): what hooks see as `BUNDLE_*` (codedeploy.md §1.5).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum RevisionSource {
    /// An S3 object.
    #[serde(rename_all = "camelCase")]
    S3 {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
        /// `tar`, `tgz`, `zip`, `YAML` or `JSON`.
        bundle_type: String,
        /// The object's ETag when it was read (no quotes).
        e_tag: String,
        /// Its version id, in a versioned bucket.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version: Option<String>,
    },
    /// A Git commit.
    #[serde(rename_all = "camelCase")]
    Git {
        /// The repository as given (`owner/name` for GitHub, or a Git URL).
        repository: String,
        /// The full commit id.
        commit_id: String,
    },
}

impl RevisionSource {
    /// The hook environment CodeDeploy's agent sets for such a revision:
    /// `BUNDLE_BUCKET`, `BUNDLE_KEY`, `BUNDLE_ETAG` and, when versioned, `BUNDLE_VERSION`
    /// for S3; `BUNDLE_COMMIT` for Git.
    pub fn hook_env(&self) -> Vec<(&'static str, String)> {
        match self {
            Self::S3 { bucket, key, e_tag, version, .. } => {
                let mut env = vec![
                    ("BUNDLE_BUCKET", bucket.clone()),
                    ("BUNDLE_KEY", key.clone()),
                    ("BUNDLE_ETAG", e_tag.clone()),
                ];
                env.extend(version.clone().map(|version| ("BUNDLE_VERSION", version)));
                env
            }
            Self::Git { commit_id, .. } => vec![("BUNDLE_COMMIT", commit_id.clone())],
        }
    }
}

impl RevisionRecord {
    /// The id of an AppSpec-content revision: BLAKE3 of the document, in its own domain
    /// so it never equals a manifest's.
    pub fn content_id(content: &str) -> RevisionId {
        let mut bytes = b"fleetmesh appspec content\0".to_vec();
        bytes.extend_from_slice(content.as_bytes());
        RevisionId::of(&bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> ChunkingParams {
        ChunkingParams { algorithm: "fastcdc-v2020".into(), min_bytes: 16, avg_bytes: 64, max_bytes: 256 }
    }

    fn file(path: &str, chunks: Vec<ChunkRef>) -> ManifestEntry {
        let size = chunks.iter().map(|c| u64::from(c.len())).sum();
        ManifestEntry { path: path.into(), mode: 0o644, kind: EntryKind::File { size, chunks } }
    }

    fn manifest(entries: Vec<ManifestEntry>) -> Manifest {
        Manifest { format: MANIFEST_FORMAT, chunking: params(), entries }
    }

    #[test]
    fn clean_paths() {
        assert!(is_clean_relative_path("a/b.txt"));
        for bad in ["", "/etc/passwd", "a/../b", "./a", "a//b", "a/"] {
            assert!(!is_clean_relative_path(bad), "{bad}");
        }
    }

    #[test]
    fn symlinks_resolve_lexically() {
        assert_eq!(resolve_symlink("a/link", "../b").as_deref(), Some("b"));
        assert_eq!(resolve_symlink("link", "../etc/passwd"), None);
        assert_eq!(resolve_symlink("a/link", "/etc/passwd"), None);
        assert_eq!(resolve_symlink("a/b/link", "../../c").as_deref(), Some("c"));
    }

    #[test]
    fn validate_accepts_a_bundle_and_names_bad_entries() {
        let chunk = ChunkRef(ChunkHash::of(b"x"), 1);
        let good = manifest(vec![
            file("appspec.yml", vec![chunk]),
            ManifestEntry { path: "bin".into(), mode: 0o755, kind: EntryKind::Dir },
            file("bin/run", vec![chunk, chunk]),
            ManifestEntry { path: "link".into(), mode: 0o777, kind: EntryKind::Symlink { target: "bin/run".into() } },
        ]);
        assert_eq!(good.validate(), Ok(()));
        assert_eq!(good.unique_chunks().len(), 1);
        assert_eq!(good.total_bytes(), 3);

        let escape = manifest(vec![
            file("appspec.yml", vec![chunk]),
            ManifestEntry { path: "x".into(), mode: 0o777, kind: EntryKind::Symlink { target: "../../etc".into() } },
        ]);
        assert!(matches!(escape.validate(), Err(ManifestError::SymlinkEscape { .. })));
        assert_eq!(manifest(vec![file("index.html", vec![chunk])]).validate(), Err(ManifestError::NoAppSpec));
        let orphan = manifest(vec![file("appspec.yml", vec![chunk]), file("missing/x", vec![chunk])]);
        assert_eq!(orphan.validate(), Err(ManifestError::Parent("missing/x".into())));
    }

    #[test]
    fn revision_id_is_stable_for_equal_manifests() {
        let chunk = ChunkRef(ChunkHash::of(b"x"), 1);
        let a = manifest(vec![file("appspec.yml", vec![chunk])]);
        let b = manifest(vec![file("appspec.yml", vec![chunk])]);
        assert_eq!(a.revision_id(), b.revision_id());
    }
}
