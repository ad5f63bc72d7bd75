//! Tar (plain or gzip) and zip bundles as entry sequences for [`super::bundle`].
//!
//! Both readers take paths and types from the archive's own headers and never touch the
//! file system: nothing is extracted, so a hostile path can only produce an error that
//! names it. Tar: pax global headers (git archive writes one) are skipped, hard links
//! and devices refused. Zip (deflate only): types and modes come from the unix mode bits
//! in the external attributes; setuid/setgid/sticky bits are dropped, as the `unzip`
//! the CodeDeploy agent runs drops them (codedeploy.md §8.2).

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use super::bundle::{normalize_path, BundleEntry, BundleEntryKind, BundleError, Content, Visitor, SYMLINK_MODE};

/// Longest symlink target accepted from a zip entry (Linux `PATH_MAX`); the target is
/// the entry's content, so this bounds what is read into memory for it.
const SYMLINK_TARGET_BYTES_MAX: u64 = 4096;

/// Mode for zip entries without unix mode bits (archives made on Windows).
const ZIP_DEFAULT_FILE_MODE: u32 = 0o644;
/// Mode for zip directories without unix mode bits.
const ZIP_DEFAULT_DIR_MODE: u32 = 0o755;

fn archive_error(source: &Path) -> impl Fn(std::io::Error) -> BundleError + '_ {
    move |error| BundleError::Archive { path: source.to_path_buf(), detail: error.to_string() }
}

/// Visits an uncompressed tar file; when content is skipped, seeks over it.
pub(super) fn visit_tar(
    source: &Path,
    file: File,
    content: Content,
    visit: &mut Visitor<'_>,
) -> Result<(), BundleError> {
    let mut archive = tar::Archive::new(file);
    let entries = match content {
        Content::Skip => archive.entries_with_seek(),
        Content::Read => archive.entries(),
    }
    .map_err(archive_error(source))?;
    visit_tar_entries(source, entries, content, visit)
}

/// Visits a tar stream that cannot seek (a gzip decoder).
pub(super) fn visit_tar_stream<R: Read>(
    source: &Path,
    reader: R,
    content: Content,
    visit: &mut Visitor<'_>,
) -> Result<(), BundleError> {
    let mut archive = tar::Archive::new(reader);
    let entries = archive.entries().map_err(archive_error(source))?;
    visit_tar_entries(source, entries, content, visit)
}

fn visit_tar_entries<R: Read>(
    source: &Path,
    entries: tar::Entries<'_, R>,
    content: Content,
    visit: &mut Visitor<'_>,
) -> Result<(), BundleError> {
    use tar::EntryType;
    // No bound needed on this loop: it ends with the archive, and each turn consumes at
    // least one 512-byte header.
    for entry in entries {
        let mut entry = entry.map_err(archive_error(source))?;
        let entry_type = entry.header().entry_type();
        if entry_type == EntryType::XGlobalHeader {
            // Archive-wide metadata (git archive stores the commit id here), not a path.
            continue;
        }
        let raw = utf8(&entry.path_bytes())?;
        let kind = match entry_type {
            // Old V7 archives mark directories only by a trailing slash.
            EntryType::Regular if raw.ends_with('/') => BundleEntryKind::Dir,
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                BundleEntryKind::File { size: entry.size() }
            }
            EntryType::Directory => BundleEntryKind::Dir,
            EntryType::Symlink => {
                let target = entry.link_name_bytes().unwrap_or_default();
                let Ok(target) = std::str::from_utf8(&target) else {
                    return Err(BundleError::InvalidName { entry: raw });
                };
                BundleEntryKind::Symlink { target: target.to_string() }
            }
            EntryType::Link => {
                let target = entry.link_name_bytes().map(|target| String::from_utf8_lossy(&target).into_owned());
                return Err(BundleError::HardLink { entry: raw, target: target.unwrap_or_default() });
            }
            EntryType::Char => return Err(BundleError::SpecialFile { entry: raw, kind: "character device" }),
            EntryType::Block => return Err(BundleError::SpecialFile { entry: raw, kind: "block device" }),
            EntryType::Fifo => return Err(BundleError::SpecialFile { entry: raw, kind: "fifo" }),
            other => {
                let detail =
                    format!("tar entry type {:?} is not a directory, file or symlink", other.as_byte() as char);
                return Err(BundleError::Unsupported { entry: raw, detail });
            }
        };
        let Some(path) = normalize_path(&raw)? else {
            // The archive root (`./`) carries nothing a manifest keeps.
            if kind == BundleEntryKind::Dir {
                continue;
            }
            return Err(BundleError::InvalidName { entry: raw });
        };
        let mode = match kind {
            BundleEntryKind::Symlink { .. } => SYMLINK_MODE,
            _ => {
                entry.header().mode().map_err(|source| BundleError::EntryRead { entry: raw.clone(), source })? & 0o7777
            }
        };
        let reader: Option<&mut dyn Read> = match (&kind, content) {
            (BundleEntryKind::File { .. }, Content::Read) => Some(&mut entry),
            _ => None,
        };
        visit(BundleEntry { path, mode, kind }, reader)?;
    }
    Ok(())
}

/// Visits a zip file in central-directory order.
pub(super) fn visit_zip(
    source: &Path,
    file: File,
    content: Content,
    visit: &mut Visitor<'_>,
) -> Result<(), BundleError> {
    let zip_error =
        |error: zip::result::ZipError| BundleError::Archive { path: source.to_path_buf(), detail: error.to_string() };
    let mut archive = zip::ZipArchive::new(BufReader::new(file)).map_err(zip_error)?;
    for index in 0..archive.len() {
        let (raw, kind, mode) = {
            let entry = archive.by_index_data(index).map_err(zip_error)?;
            let raw = match entry.name() {
                Ok(name) => name.into_owned(),
                Err(_) => {
                    return Err(BundleError::InvalidName {
                        entry: String::from_utf8_lossy(entry.name_raw()).into_owned(),
                    })
                }
            };
            if entry.encrypted() {
                return Err(BundleError::Unsupported {
                    entry: raw,
                    detail: "encrypted zip entries are not supported".into(),
                });
            }
            let unix_mode = entry.unix_mode();
            let kind = zip_kind(&raw, unix_mode, entry.size())?;
            let mode = match (&kind, unix_mode) {
                (BundleEntryKind::Symlink { .. }, _) => SYMLINK_MODE,
                (_, Some(mode)) => mode & 0o7777,
                (BundleEntryKind::Dir, None) => ZIP_DEFAULT_DIR_MODE,
                (_, None) => ZIP_DEFAULT_FILE_MODE,
            };
            (raw, kind, mode)
        };
        let Some(path) = normalize_path(&raw)? else {
            if kind == BundleEntryKind::Dir {
                continue;
            }
            return Err(BundleError::InvalidName { entry: raw });
        };
        let read_error = |source| BundleError::EntryRead { entry: raw.clone(), source };
        match kind {
            BundleEntryKind::Symlink { .. } => {
                let mut file = archive.by_index(index).map_err(|error| read_error(error.into()))?;
                let mut target = Vec::new();
                (&mut file).take(SYMLINK_TARGET_BYTES_MAX).read_to_end(&mut target).map_err(read_error)?;
                let Ok(target) = String::from_utf8(target) else {
                    return Err(BundleError::InvalidName { entry: raw });
                };
                let kind = BundleEntryKind::Symlink { target };
                visit(BundleEntry { path, mode, kind }, None)?;
            }
            BundleEntryKind::File { .. } if content == Content::Read => {
                let mut file = archive.by_index(index).map_err(|error| read_error(error.into()))?;
                visit(BundleEntry { path, mode, kind }, Some(&mut file))?;
            }
            _ => visit(BundleEntry { path, mode, kind }, None)?,
        }
    }
    Ok(())
}

/// The kind of a zip entry from its name and unix mode bits.
fn zip_kind(raw: &str, unix_mode: Option<u32>, size: u64) -> Result<BundleEntryKind, BundleError> {
    const TYPE_MASK: u32 = 0o170000;
    if raw.ends_with('/') {
        return Ok(BundleEntryKind::Dir);
    }
    let special = |kind| Err(BundleError::SpecialFile { entry: raw.to_string(), kind });
    match unix_mode.map(|mode| mode & TYPE_MASK) {
        None | Some(0) | Some(0o100000) => Ok(BundleEntryKind::File { size }),
        Some(0o040000) => Ok(BundleEntryKind::Dir),
        Some(0o120000) if size > SYMLINK_TARGET_BYTES_MAX => Err(BundleError::Unsupported {
            entry: raw.to_string(),
            detail: format!("symlink target of {size} bytes is longer than {SYMLINK_TARGET_BYTES_MAX}"),
        }),
        // The target is read from the content by the caller.
        Some(0o120000) => Ok(BundleEntryKind::Symlink { target: String::new() }),
        Some(0o020000) => special("character device"),
        Some(0o060000) => special("block device"),
        Some(0o010000) => special("fifo"),
        Some(0o140000) => special("socket"),
        Some(other) => Err(BundleError::Unsupported {
            entry: raw.to_string(),
            detail: format!("unknown file type bits {other:o}"),
        }),
    }
}

/// Archive names and link targets are text in a manifest; anything else is refused.
fn utf8(bytes: &[u8]) -> Result<String, BundleError> {
    std::str::from_utf8(bytes)
        .map(str::to_string)
        .map_err(|_| BundleError::InvalidName { entry: String::from_utf8_lossy(bytes).into_owned() })
}
