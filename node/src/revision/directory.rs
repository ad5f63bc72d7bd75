//! A directory on disk as a bundle: a sorted walk that never follows a symlink.
//!
//! Symlinks inside the bundle are reported as symlinks (their targets are checked by
//! [`super::layout`]), so a link to `/etc` or `..` can never pull outside content into a
//! revision, and a link to a directory inside is not walked twice.

use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::bundle::{BundleEntry, BundleEntryKind, BundleError, Content, Visitor, SYMLINK_MODE};

/// Walks a directory in sorted order without following any symlink inside it.
pub(super) fn visit_directory(root: &Path, content: Content, visit: &mut Visitor<'_>) -> Result<(), BundleError> {
    // Directories still to list, as (path on disk, bundle path). An explicit stack keeps
    // deep trees off the call stack; depth is bounded by the OS path length anyway.
    let mut pending: Vec<(PathBuf, String)> = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = pending.pop() {
        let io_error = |path: &Path| {
            let path = path.to_path_buf();
            move |source| BundleError::Io { path, source }
        };
        let mut children = fs::read_dir(&dir)
            .and_then(|listing| {
                listing.map(|child| child.map(|child| child.file_name())).collect::<io::Result<Vec<_>>>()
            })
            .map_err(io_error(&dir))?;
        children.sort();
        let mut subdirs = Vec::new();
        for name in children {
            let disk_path = dir.join(&name);
            let Some(name) = name.to_str() else {
                return Err(BundleError::InvalidName { entry: disk_path.to_string_lossy().into_owned() });
            };
            let path = if prefix.is_empty() { name.to_string() } else { format!("{prefix}/{name}") };
            let metadata = fs::symlink_metadata(&disk_path).map_err(io_error(&disk_path))?;
            let file_type = metadata.file_type();
            let mode = metadata.permissions().mode() & 0o7777;
            if file_type.is_dir() {
                visit(BundleEntry { path: path.clone(), mode, kind: BundleEntryKind::Dir }, None)?;
                subdirs.push((disk_path, path));
            } else if file_type.is_symlink() {
                let target = fs::read_link(&disk_path).map_err(io_error(&disk_path))?;
                let Some(target) = target.to_str() else {
                    return Err(BundleError::InvalidName { entry: path });
                };
                let kind = BundleEntryKind::Symlink { target: target.to_string() };
                visit(BundleEntry { path, mode: SYMLINK_MODE, kind }, None)?;
            } else if file_type.is_file() {
                // Opened even when content is skipped, so the size pass already names an
                // unreadable file.
                let mut file = File::open(&disk_path).map_err(io_error(&disk_path))?;
                let kind = BundleEntryKind::File { size: metadata.len() };
                let reader: Option<&mut dyn Read> = match content {
                    Content::Read => Some(&mut file),
                    Content::Skip => None,
                };
                visit(BundleEntry { path, mode, kind }, reader)?;
            } else {
                return Err(BundleError::SpecialFile { entry: path, kind: special_kind(file_type) });
            }
        }
        // Reversed so the stack pops subdirectories in sorted order.
        pending.extend(subdirs.into_iter().rev());
    }
    Ok(())
}

/// Names a file type that is neither a directory, a regular file nor a symlink.
fn special_kind(file_type: fs::FileType) -> &'static str {
    if file_type.is_block_device() {
        "block device"
    } else if file_type.is_char_device() {
        "character device"
    } else if file_type.is_fifo() {
        "fifo"
    } else if file_type.is_socket() {
        "socket"
    } else {
        "special file"
    }
}

#[cfg(test)]
mod tests {
    use super::super::bundle::visit_entries;
    use super::*;

    #[test]
    fn directory_walk_is_sorted_and_refuses_a_fifo_by_name() {
        // Builds a directory with nested files, a symlink and a FIFO; asserts entries come
        // out in sorted order with the symlink unfollowed, then that the FIFO is refused.
        let dir = tempfile::tempdir().expect("tempdir");
        fs::create_dir(dir.path().join("b")).expect("mkdir");
        fs::write(dir.path().join("b/z"), b"z").expect("write");
        fs::write(dir.path().join("a"), b"a").expect("write");
        std::os::unix::fs::symlink("/etc", dir.path().join("c")).expect("symlink");
        let mut seen = Vec::new();
        visit_entries(dir.path(), Content::Skip, &mut |entry, _| {
            seen.push((entry.path, entry.kind));
            Ok(())
        })
        .expect("walk");
        assert_eq!(
            seen,
            vec![
                ("a".to_string(), BundleEntryKind::File { size: 1 }),
                ("b".to_string(), BundleEntryKind::Dir),
                ("c".to_string(), BundleEntryKind::Symlink { target: "/etc".into() }),
                ("b/z".to_string(), BundleEntryKind::File { size: 1 }),
            ]
        );
        nix::unistd::mkfifo(&dir.path().join("b/pipe"), nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
        let refused = visit_entries(dir.path(), Content::Skip, &mut |_, _| Ok(()));
        assert!(matches!(refused, Err(BundleError::SpecialFile { entry, kind: "fifo" }) if entry == "b/pipe"));
    }
}
