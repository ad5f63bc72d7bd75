//! The checks that need a whole bundle, and the canonical entry list.
//!
//! Entries arrive one by one from [`super::bundle`] in any order; [`Layout::finish`] then
//! decides, with every path known: duplicates, parents that are files or symlinks, the
//! single-top-directory strip (codedeploy.md §1.1), the appspec at the root, and
//! symlinks that resolve outside the bundle. It is pure (no I/O) so every rule is
//! tested on literal entry lists, and its output is sorted by path bytes with a
//! directory for every parent, as `Manifest::validate` requires.

use std::collections::{BTreeMap, BTreeSet};

use fleetmesh_state::model::revision::{EntryKind, ManifestEntry};

use super::bundle::BundleError;

/// Names CodeDeploy accepts for the appspec at the bundle root (codedeploy.md §1.1).
pub(crate) const APPSPEC_NAMES: [&str; 2] = ["appspec.yml", "appspec.yaml"];

/// Mode of a directory the bundle implies (a parent of an entry) but does not list.
pub(crate) const IMPLIED_DIR_MODE: u32 = 0o755;

/// Symlinks followed while resolving one target before it counts as a loop (Linux's
/// own limit, `MAXSYMLINKS`).
const SYMLINK_HOPS_MAX: usize = 40;

/// A bundle's entries, keyed by path as the bundle spells it.
#[derive(Debug, Default)]
pub(crate) struct Layout {
    entries: BTreeMap<String, (u32, EntryKind)>,
}

impl Layout {
    /// Records an entry.
    ///
    /// # Errors
    /// [`BundleError::Duplicate`] when the path is already listed.
    pub(crate) fn insert(&mut self, path: String, mode: u32, kind: EntryKind) -> Result<(), BundleError> {
        if self.entries.contains_key(&path) {
            return Err(BundleError::Duplicate { entry: path });
        }
        self.entries.insert(path, (mode, kind));
        Ok(())
    }

    /// The kind of a recorded entry, to fill in a file's chunks once they are known.
    pub(crate) fn kind_mut(&mut self, path: &str) -> Option<&mut EntryKind> {
        self.entries.get_mut(path).map(|(_, kind)| kind)
    }

    /// Applies the whole-bundle rules and returns the canonical entries.
    ///
    /// # Errors
    /// The first rule broken, naming the entry.
    pub(crate) fn finish(self) -> Result<Vec<ManifestEntry>, BundleError> {
        let mut entries = self.entries;
        add_implied_parents(&mut entries)?;
        let entries = strip_single_top_dir(entries);
        let has_appspec =
            APPSPEC_NAMES.iter().any(|name| matches!(entries.get(*name), Some((_, EntryKind::File { .. }))));
        if !has_appspec {
            return Err(BundleError::NoAppSpec);
        }
        for (path, (_, kind)) in &entries {
            if let EntryKind::Symlink { target } = kind {
                check_symlink(&entries, path, target)?;
            }
        }
        Ok(entries.into_iter().map(|(path, (mode, kind))| ManifestEntry { path, mode, kind }).collect())
    }
}

/// Adds a directory for every parent not listed; refuses a parent that is not a directory.
fn add_implied_parents(entries: &mut BTreeMap<String, (u32, EntryKind)>) -> Result<(), BundleError> {
    let mut implied = BTreeSet::new();
    for path in entries.keys() {
        let mut rest = path.as_str();
        while let Some((parent, _)) = rest.rsplit_once('/') {
            match entries.get(parent) {
                Some((_, EntryKind::Dir)) => {}
                Some(_) => {
                    return Err(BundleError::ParentNotDirectory { entry: path.clone(), parent: parent.to_string() })
                }
                None => {
                    implied.insert(parent.to_string());
                }
            }
            rest = parent;
        }
    }
    for parent in implied {
        entries.insert(parent, (IMPLIED_DIR_MODE, EntryKind::Dir));
    }
    Ok(())
}

/// Drops the top level when it is exactly one directory holding the appspec, as the
/// CodeDeploy agent does for archives that wrap their content in one folder (§1.1).
fn strip_single_top_dir(entries: BTreeMap<String, (u32, EntryKind)>) -> BTreeMap<String, (u32, EntryKind)> {
    let mut top_level = entries.iter().filter(|(path, _)| !path.contains('/'));
    let (Some((top, (_, EntryKind::Dir))), None) = (top_level.next(), top_level.next()) else {
        return entries;
    };
    let holds_appspec = APPSPEC_NAMES
        .iter()
        .any(|name| matches!(entries.get(&format!("{top}/{name}")), Some((_, EntryKind::File { .. }))));
    if !holds_appspec {
        return entries;
    }
    let prefix = format!("{top}/");
    entries
        .into_iter()
        .filter_map(|(path, value)| path.strip_prefix(&prefix).map(|rest| (rest.to_string(), value)))
        .collect()
}

/// Resolves `link`'s target the way the kernel would inside the bundle, following the
/// bundle's own symlinks on the way, and refuses it if any step leaves the root.
///
/// A purely lexical check is not enough: with `a/up -> ..`, the target `a/up/../x` looks
/// inside the bundle but `a/up/..` is the bundle's parent.
fn check_symlink(entries: &BTreeMap<String, (u32, EntryKind)>, link: &str, target: &str) -> Result<(), BundleError> {
    let escape = || BundleError::SymlinkEscape { entry: link.to_string(), target: target.to_string() };
    if target.starts_with('/') || target.is_empty() {
        return Err(escape());
    }
    // Resolution starts in the link's directory.
    let mut resolved: Vec<String> = link.split('/').map(str::to_string).collect();
    resolved.pop();
    let mut pending: Vec<String> = target.split('/').rev().map(str::to_string).collect();
    let mut hops = 0;
    while let Some(part) = pending.pop() {
        match part.as_str() {
            "" | "." => {}
            ".." => {
                if resolved.pop().is_none() {
                    return Err(escape());
                }
            }
            name => {
                resolved.push(name.to_string());
                if let Some((_, EntryKind::Symlink { target: next })) = entries.get(&resolved.join("/")) {
                    hops += 1;
                    if hops > SYMLINK_HOPS_MAX {
                        return Err(BundleError::SymlinkLoop { entry: link.to_string(), target: target.to_string() });
                    }
                    if next.starts_with('/') {
                        return Err(escape());
                    }
                    resolved.pop();
                    pending.extend(next.split('/').rev().map(str::to_string));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> EntryKind {
        EntryKind::File { size: 0, chunks: Vec::new() }
    }

    fn link(target: &str) -> EntryKind {
        EntryKind::Symlink { target: target.to_string() }
    }

    fn layout(entries: &[(&str, EntryKind)]) -> Layout {
        let mut layout = Layout::default();
        for (path, kind) in entries {
            layout.insert((*path).to_string(), 0o644, kind.clone()).expect("distinct paths");
        }
        layout
    }

    fn paths(entries: &[ManifestEntry]) -> Vec<&str> {
        entries.iter().map(|entry| entry.path.as_str()).collect()
    }

    #[test]
    fn parents_are_implied_and_output_is_byte_sorted() {
        // Lists only deep files in archive order; asserts implied parent directories are
        // added (mode 0755) and the result is in path byte order ("a-b" before "a/b").
        let finished = layout(&[("a/b/c", file()), ("a-b", file()), ("appspec.yml", file())]).finish().expect("valid");
        assert_eq!(paths(&finished), ["a", "a-b", "a/b", "a/b/c", "appspec.yml"]);
        assert_eq!(finished[0].mode, IMPLIED_DIR_MODE);
        assert_eq!(finished[0].kind, EntryKind::Dir);
    }

    #[test]
    fn duplicates_and_paths_under_files_or_symlinks_are_refused() {
        // Inserts a path twice, then a file under a file and a file under a symlink;
        // asserts each is refused naming the entry (and the offending parent).
        let mut twice = layout(&[("appspec.yml", file())]);
        assert!(
            matches!(twice.insert("appspec.yml".into(), 0o644, file()), Err(BundleError::Duplicate { entry }) if entry == "appspec.yml")
        );
        let under_file = layout(&[("appspec.yml", file()), ("f", file()), ("f/x", file())]).finish();
        assert!(
            matches!(under_file, Err(BundleError::ParentNotDirectory { entry, parent }) if entry == "f/x" && parent == "f")
        );
        let under_link = layout(&[("appspec.yml", file()), ("l", link("/etc")), ("l/passwd", file())]).finish();
        assert!(matches!(under_link, Err(BundleError::ParentNotDirectory { entry, .. }) if entry == "l/passwd"));
    }

    #[test]
    fn single_top_directory_with_appspec_is_stripped() {
        // Wraps a bundle in one top directory; asserts that level is removed. Then asserts
        // nothing is stripped when the top directory lacks the appspec or has a sibling.
        let wrapped = layout(&[("app", EntryKind::Dir), ("app/appspec.yml", file()), ("app/bin/run", file())])
            .finish()
            .expect("valid");
        assert_eq!(paths(&wrapped), ["appspec.yml", "bin", "bin/run"]);
        let no_appspec = layout(&[("app/x", file())]).finish();
        assert!(matches!(no_appspec, Err(BundleError::NoAppSpec)));
        let sibling = layout(&[("app/appspec.yml", file()), ("README", file())]).finish();
        assert!(matches!(sibling, Err(BundleError::NoAppSpec)));
    }

    #[test]
    fn appspec_must_be_a_root_file() {
        // Offers an appspec that is a directory, then one that is a symlink; asserts both
        // are refused, and that appspec.yaml alone is accepted.
        assert!(matches!(layout(&[("appspec.yml", EntryKind::Dir)]).finish(), Err(BundleError::NoAppSpec)));
        assert!(matches!(layout(&[("x", file()), ("appspec.yml", link("x"))]).finish(), Err(BundleError::NoAppSpec)));
        assert!(layout(&[("appspec.yaml", file())]).finish().is_ok());
    }

    #[test]
    fn symlinks_must_resolve_inside_the_bundle() {
        // Builds symlinks that stay inside (sibling, parent, dangling, through another
        // link) and ones that escape (absolute, too many `..`, `..` through a link to the
        // root, a loop); asserts only the escaping ones are refused, naming the link.
        let inside = layout(&[
            ("appspec.yml", file()),
            ("a/sib", link("../appspec.yml")),
            ("a/dot", link(".")),
            ("a/dangling", link("nowhere/yet")),
            ("cur", link("a/dot/sib")),
        ]);
        assert!(inside.finish().is_ok());
        let cases = [("abs", link("/etc/passwd")), ("up", link("../outside")), ("deep", link("a/../../outside"))];
        for (name, kind) in cases {
            let refused = layout(&[("appspec.yml", file()), ("a", EntryKind::Dir), (name, kind)]).finish();
            assert!(
                matches!(refused, Err(BundleError::SymlinkEscape { ref entry, .. }) if entry == name),
                "{name}: {refused:?}"
            );
        }
        let through = layout(&[("appspec.yml", file()), ("a/root", link("..")), ("x", link("a/root/../etc"))]).finish();
        assert!(matches!(through, Err(BundleError::SymlinkEscape { entry, .. }) if entry == "x"));
        let looped = layout(&[("appspec.yml", file()), ("p", link("q")), ("q", link("p"))]).finish();
        assert!(matches!(looped, Err(BundleError::SymlinkLoop { .. })));
    }
}
