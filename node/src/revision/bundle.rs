//! Reading a bundle source as a sequence of entries, whatever its format.
//!
//! A source is a directory, a `.tar`, a `.tar.gz`/`.tgz` or a `.zip` (codedeploy.md §1.1),
//! chosen by extension and otherwise by magic bytes. Each entry comes out with a
//! normalized relative path, its kind and mode, and for files a reader over the content.
//! Per-entry dangers are refused here, naming the entry: absolute paths, `..`, hard
//! links, device files and other special files, names that are not UTF-8. Checks that
//! need every entry (duplicates, single-top-directory strip, symlink escapes, the
//! appspec) belong to [`super::layout`].
//!
//! Entries come through a visitor rather than an iterator because a tar entry borrows
//! its archive: the content reader is valid only while the visitor runs.

use std::fs::{self, File};
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use fleetmesh_state::model::revision::ManifestError;

use super::chunker::ChunkingError;
use super::{archive, directory};

/// Why a bundle cannot become a revision. Every entry-level variant names the entry as
/// the bundle spells it (before any top-directory strip), so the user can find it.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// The source path does not exist.
    #[error("bundle source {} does not exist", path.display())]
    Missing {
        /// The source as given.
        path: PathBuf,
    },
    /// A file or directory of the source could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file, directory or archive on disk.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// The source is neither a directory nor a recognized archive.
    #[error(
        "{} is not a bundle: expected a directory, .tar, .tar.gz/.tgz or .zip",
        path.display()
    )]
    Format {
        /// The source as given.
        path: PathBuf,
    },
    /// The archive itself is malformed (bad header, truncated, bad zip directory).
    #[error("archive {} is malformed: {detail}", path.display())]
    Archive {
        /// The archive.
        path: PathBuf,
        /// What is wrong, from the archive reader.
        detail: String,
    },
    /// Content of an archive entry could not be read (bad compression, checksum, truncation).
    #[error("cannot read bundle entry {entry:?}: {source}")]
    EntryRead {
        /// The entry.
        entry: String,
        /// What the archive reader said.
        source: io::Error,
    },
    /// An absolute path.
    #[error("bundle entry {entry:?} has an absolute path; a bundle holds relative paths only")]
    AbsolutePath {
        /// The entry.
        entry: String,
    },
    /// A path with a `..` component.
    #[error("bundle entry {entry:?} has a '..' component; paths must stay inside the bundle")]
    ParentComponent {
        /// The entry.
        entry: String,
    },
    /// A name or symlink target that is not UTF-8 or holds a NUL byte (manifest paths
    /// and targets are UTF-8 text).
    #[error("bundle entry {entry:?} has a name or link target that is not UTF-8 or holds a NUL byte")]
    InvalidName {
        /// The entry, lossily decoded.
        entry: String,
    },
    /// A tar hard link.
    #[error(
        "bundle entry {entry:?} is a hard link to {target:?}; hard links are refused, \
         archive the file itself (tar --hard-dereference)"
    )]
    HardLink {
        /// The link.
        entry: String,
        /// What it links to.
        target: String,
    },
    /// A device file, FIFO or socket.
    #[error(
        "bundle entry {entry:?} is a {kind}; a bundle holds only directories, \
         regular files and symlinks"
    )]
    SpecialFile {
        /// The entry.
        entry: String,
        /// "block device", "character device", "fifo", "socket".
        kind: &'static str,
    },
    /// An entry this reader does not handle (encrypted zip entry, unknown tar type).
    #[error("bundle entry {entry:?} is not supported: {detail}")]
    Unsupported {
        /// The entry.
        entry: String,
        /// Why.
        detail: String,
    },
    /// The same path twice.
    #[error("bundle entry {entry:?} appears twice; every path must be unique")]
    Duplicate {
        /// The entry.
        entry: String,
    },
    /// A path under something that is not a directory (a file, or a symlink: writing
    /// through a symlinked directory is the classic archive escape).
    #[error("bundle entry {entry:?} lies under {parent:?}, which is not a directory")]
    ParentNotDirectory {
        /// The entry.
        entry: String,
        /// Its ancestor that is a file or a symlink.
        parent: String,
    },
    /// A symlink that resolves outside the bundle (or is absolute).
    #[error("bundle entry {entry:?} is a symlink to {target:?}, which resolves outside the bundle")]
    SymlinkEscape {
        /// The link.
        entry: String,
        /// Its target as stored.
        target: String,
    },
    /// A symlink that does not resolve within a bounded number of links.
    #[error("bundle entry {entry:?} is a symlink to {target:?} that does not resolve (a loop?)")]
    SymlinkLoop {
        /// The link.
        entry: String,
        /// Its target as stored.
        target: String,
    },
    /// No appspec at the bundle root (after a single top directory was stripped).
    #[error(
        "the bundle has no appspec.yml or appspec.yaml file at its root \
         (nor in its single top-level directory)"
    )]
    NoAppSpec,
    /// A file yielded more or fewer bytes than its size said.
    #[error(
        "bundle entry {entry:?} should hold {expected} bytes but {actual} were read \
         (the file changed while being read, or the archive is truncated)"
    )]
    SizeMismatch {
        /// The entry.
        entry: String,
        /// Size from the directory listing or archive header.
        expected: u64,
        /// Bytes actually read.
        actual: u64,
    },
    /// The chunking parameters cannot be used.
    #[error(transparent)]
    Chunking(#[from] ChunkingError),
    /// The caller's chunk sink refused a chunk (for example the store is full).
    #[error("the chunk sink refused a chunk: {0}")]
    Sink(Box<dyn std::error::Error + Send + Sync>),
    /// The built manifest broke a manifest rule (a bug in this module if it happens).
    #[error("the built manifest is invalid: {0}")]
    Manifest(#[from] ManifestError),
    /// The bundle reader stopped because the chunk consumer gave up; the consumer's own
    /// error is what [`super::build_manifest`] reports.
    #[error("bundle reading was interrupted because the chunk consumer stopped")]
    Interrupted,
}

/// What an entry is, as the bundle lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BundleEntryKind {
    /// A directory.
    Dir,
    /// A regular file of `size` bytes (from the listing or header; the builder checks it
    /// against what it reads).
    File { size: u64 },
    /// A symbolic link with its target as stored.
    Symlink { target: String },
}

/// One entry of a bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BundleEntry {
    /// Normalized relative path: `/` separators, no empty, `.` or `..` components.
    pub(crate) path: String,
    /// Permission bits (masked to 0o7777; 0o777 for symlinks).
    pub(crate) mode: u32,
    /// Directory, file or symlink.
    pub(crate) kind: BundleEntryKind,
}

/// Whether the visitor wants file content (the build) or only the listing (the size pass).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Content {
    /// Pass a reader for each file.
    Read,
    /// Pass no reader; archives skip content as cheaply as their format allows.
    Skip,
}

/// The visitor called once per entry, with a content reader for files when asked.
pub(crate) type Visitor<'v> = dyn FnMut(BundleEntry, Option<&mut dyn Read>) -> Result<(), BundleError> + 'v;

/// Mode given to symlinks whatever the source says: Linux ignores symlink modes, and a
/// fixed value keeps manifests equal across source formats.
pub(crate) const SYMLINK_MODE: u32 = 0o777;

/// The formats a bundle source can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BundleFormat {
    /// A directory on disk.
    Directory,
    /// An uncompressed tar archive.
    Tar,
    /// A gzip-compressed tar archive.
    TarGz,
    /// A zip archive.
    Zip,
}

impl BundleFormat {
    /// Decides the format of `source`: a directory, else by extension, else by magic bytes.
    ///
    /// # Errors
    /// [`BundleError::Missing`], [`BundleError::Io`] or [`BundleError::Format`].
    pub(crate) fn detect(source: &Path) -> Result<Self, BundleError> {
        // `metadata` follows a symlink the user passed as the source itself; entries
        // inside the bundle are never followed.
        let metadata = fs::metadata(source).map_err(|error| match error.kind() {
            io::ErrorKind::NotFound => BundleError::Missing { path: source.to_path_buf() },
            _ => BundleError::Io { path: source.to_path_buf(), source: error },
        })?;
        if metadata.is_dir() {
            return Ok(Self::Directory);
        }
        let name = source.file_name().map(|name| name.to_string_lossy().to_lowercase());
        match name.as_deref() {
            Some(name) if name.ends_with(".tar") => return Ok(Self::Tar),
            Some(name) if name.ends_with(".tar.gz") || name.ends_with(".tgz") => return Ok(Self::TarGz),
            Some(name) if name.ends_with(".zip") => return Ok(Self::Zip),
            _ => {}
        }
        let mut head = Vec::with_capacity(512);
        File::open(source)
            .and_then(|file| file.take(512).read_to_end(&mut head))
            .map_err(|error| BundleError::Io { path: source.to_path_buf(), source: error })?;
        Self::sniff(&head).ok_or_else(|| BundleError::Format { path: source.to_path_buf() })
    }

    /// The format from the first bytes of a file, if they are recognizable.
    fn sniff(head: &[u8]) -> Option<Self> {
        if head.starts_with(&[0x1f, 0x8b]) {
            Some(Self::TarGz)
        } else if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
            Some(Self::Zip)
        } else if head.get(257..262) == Some(b"ustar") {
            Some(Self::Tar)
        } else {
            None
        }
    }
}

/// Calls `visit` for every entry of the bundle at `source`, in the source's order
/// (sorted for directories, archive order otherwise).
///
/// # Errors
/// The first entry refused (naming it), an I/O error naming the file, or the visitor's
/// own error, which stops the walk.
pub(crate) fn visit_entries(source: &Path, content: Content, visit: &mut Visitor<'_>) -> Result<(), BundleError> {
    let open = || File::open(source).map_err(|error| BundleError::Io { path: source.to_path_buf(), source: error });
    match BundleFormat::detect(source)? {
        BundleFormat::Directory => directory::visit_directory(source, content, visit),
        BundleFormat::Tar => archive::visit_tar(source, open()?, content, visit),
        BundleFormat::TarGz => {
            // Multi-member: pigz and concatenated streams are one archive, as for `tar -z`.
            let decoder = flate2::read::MultiGzDecoder::new(BufReader::new(open()?));
            archive::visit_tar_stream(source, decoder, content, visit)
        }
        BundleFormat::Zip => archive::visit_zip(source, open()?, content, visit),
    }
}

/// Normalizes an archive path: drops empty and `.` components (`./a//b/` is `a/b`).
/// Returns `None` for the archive root itself (`.` or `./`).
///
/// # Errors
/// Absolute paths, `..` components and NUL bytes, naming the entry.
pub(crate) fn normalize_path(raw: &str) -> Result<Option<String>, BundleError> {
    if raw.starts_with('/') {
        return Err(BundleError::AbsolutePath { entry: raw.to_string() });
    }
    if raw.contains('\0') {
        return Err(BundleError::InvalidName { entry: raw.to_string() });
    }
    let mut parts = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(BundleError::ParentComponent { entry: raw.to_string() }),
            other => parts.push(other),
        }
    }
    Ok((!parts.is_empty()).then(|| parts.join("/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_normalize_or_are_refused_by_name() {
        // Feeds archive-style paths; asserts `.`/empty components are dropped, the root
        // disappears, and absolute, `..` and NUL paths are refused naming the entry.
        assert_eq!(normalize_path("./a//b/").expect("clean").as_deref(), Some("a/b"));
        assert_eq!(normalize_path("./").expect("root"), None);
        assert!(
            matches!(normalize_path("/etc/passwd"), Err(BundleError::AbsolutePath { entry }) if entry == "/etc/passwd")
        );
        assert!(
            matches!(normalize_path("a/../../b"), Err(BundleError::ParentComponent { entry }) if entry == "a/../../b")
        );
        assert!(matches!(normalize_path("a\0b"), Err(BundleError::InvalidName { .. })));
    }

    #[test]
    fn formats_come_from_extension_then_magic_bytes() {
        // Writes files with and without known extensions; asserts the extension wins when
        // present, magic bytes decide otherwise, and unknown content is refused.
        let dir = tempfile::tempdir().expect("tempdir");
        let write = |name: &str, bytes: &[u8]| {
            let path = dir.path().join(name);
            fs::write(&path, bytes).expect("write");
            path
        };
        let mut ustar = vec![0u8; 512];
        ustar[257..262].copy_from_slice(b"ustar");
        assert_eq!(BundleFormat::detect(&write("b.TGZ", b"")).ok(), Some(BundleFormat::TarGz));
        assert_eq!(BundleFormat::detect(&write("b.tar", b"")).ok(), Some(BundleFormat::Tar));
        assert_eq!(BundleFormat::detect(&write("b.zip", b"")).ok(), Some(BundleFormat::Zip));
        assert_eq!(BundleFormat::detect(&write("g", &[0x1f, 0x8b, 8])).ok(), Some(BundleFormat::TarGz));
        assert_eq!(BundleFormat::detect(&write("z", b"PK\x03\x04rest")).ok(), Some(BundleFormat::Zip));
        assert_eq!(BundleFormat::detect(&write("t", &ustar)).ok(), Some(BundleFormat::Tar));
        assert_eq!(BundleFormat::detect(dir.path()).ok(), Some(BundleFormat::Directory));
        assert!(matches!(BundleFormat::detect(&write("n.txt", b"hello")), Err(BundleError::Format { .. })));
        assert!(matches!(BundleFormat::detect(&dir.path().join("absent")), Err(BundleError::Missing { .. })));
    }
}
