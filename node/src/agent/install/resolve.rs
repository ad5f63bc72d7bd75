//! Mapping appspec paths onto this host: destinations and permission objects under the
//! node's install root, sources under the unpacked revision.
//!
//! `--install-root` lets several nodes share one machine (demo, tests): `/srv/app` with
//! install root `/tmp/n1/root` is `/tmp/n1/root/srv/app`, and with `/` it is the real
//! `/srv/app`. Resolution is lexical, like the agent's `File.expand_path`: `.` and
//! trailing slashes vanish, and `..` cannot climb above the root, so an appspec cannot
//! reach outside the install root or the revision.

use std::path::{Component, Path, PathBuf};

/// `path` (absolute or not; a leading `/` is the root itself) placed under `root`.
pub(crate) fn under_root(root: &Path, path: &str) -> PathBuf {
    let mut resolved = root.to_path_buf();
    let mut depth: usize = 0;
    for component in Path::new(path).components() {
        match component {
            Component::Normal(name) => {
                resolved.push(name);
                depth += 1;
            }
            Component::ParentDir => {
                if depth > 0 {
                    resolved.pop();
                    depth -= 1;
                }
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    resolved
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_land_under_the_root_and_never_above_it() {
        // Resolves destinations under a test root and under `/`; asserts the joined
        // paths, dropped `.`/trailing slashes, and `..` clamped at the root.
        let root = Path::new("/tmp/n1/root");
        assert_eq!(under_root(root, "/srv/app"), PathBuf::from("/tmp/n1/root/srv/app"));
        assert_eq!(under_root(root, "/srv/./app/"), PathBuf::from("/tmp/n1/root/srv/app"));
        assert_eq!(under_root(root, "/srv/../etc"), PathBuf::from("/tmp/n1/root/etc"));
        assert_eq!(under_root(root, "/../../etc/passwd"), PathBuf::from("/tmp/n1/root/etc/passwd"));
        assert_eq!(under_root(root, "/"), PathBuf::from("/tmp/n1/root"));
        assert_eq!(under_root(Path::new("/"), "/srv/app"), PathBuf::from("/srv/app"));
        assert_eq!(under_root(Path::new("/bundle"), "config/app.conf"), PathBuf::from("/bundle/config/app.conf"));
    }
}
