//! A Git commit as a bundle directory (`revisionType: GitHub`, or any Git URL): the node
//! that takes the request clones the repository bare with gix, checks that the commit
//! is there, and writes the commit's tree into a directory that then becomes a revision
//! like any pushed directory. Transports: `git://`, `ssh://` (through the `ssh`
//! program) and local paths; HTTPS is not built in (gix's HTTPS client would bring a
//! second TLS stack, aws-lc).

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

/// Why a commit could not be read.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// The commit id is not 40 hexadecimal digits.
    #[error("commitId {0:?} is not a full commit id (40 hexadecimal digits)")]
    CommitId(String),
    /// The repository could not be cloned (Git's reason).
    #[error("cannot clone {repository}: {reason}")]
    Clone {
        /// The repository as given.
        repository: String,
        /// What gix said.
        reason: String,
    },
    /// The repository has no such commit (reachable from its branches and tags).
    #[error("{repository} has no commit {commit}: {reason}")]
    NoCommit {
        /// The repository as given.
        repository: String,
        /// The commit asked for.
        commit: String,
        /// What gix said.
        reason: String,
    },
    /// The commit's tree could not be read or written out.
    #[error("cannot write out commit {commit}: {reason}")]
    Tree {
        /// The commit.
        commit: String,
        /// What failed.
        reason: String,
    },
}

/// The URL gix clones for `repository`: `owner/name` is a GitHub repository, anything
/// else is a Git URL or path as given.
pub fn clone_url(repository: &str) -> String {
    let github = repository.split('/').count() == 2
        && !repository.contains(':')
        && !repository.starts_with('.')
        && !repository.starts_with('/');
    if github {
        format!("https://github.com/{repository}.git")
    } else {
        repository.to_string()
    }
}

/// Clones `repository` bare under `scratch`, then writes the tree of `commit` into
/// `scratch/tree`, which it returns. Blocking (network and disk); setting `interrupt`
/// stops the fetch at its next step (the caller's timeout does).
///
/// # Errors
/// [`GitError`], naming the repository or commit and Git's reason.
pub fn checkout(repository: &str, commit: &str, scratch: &Path, interrupt: &AtomicBool) -> Result<PathBuf, GitError> {
    if commit.len() != 40 || !commit.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return Err(GitError::CommitId(commit.to_string()));
    }
    let id = gix::ObjectId::from_hex(commit.to_ascii_lowercase().as_bytes())
        .map_err(|_| GitError::CommitId(commit.to_string()))?;
    let cloned = |reason: String| GitError::Clone { repository: repository.to_string(), reason };
    let url = clone_url(repository);
    if url.starts_with("https://") || url.starts_with("http://") {
        return Err(cloned(format!(
            "{url}: this release has no HTTPS transport for Git; give a git:// or ssh:// URL or a path \
             (docs/aws-protocol.md)"
        )));
    }
    let mut prepare =
        gix::prepare_clone_bare(url.as_str(), scratch.join("repo")).map_err(|error| cloned(error.to_string()))?;
    let (repo, _) = prepare.fetch_only(gix::progress::Discard, interrupt).map_err(|error| cloned(error.to_string()))?;
    let missing =
        |reason: String| GitError::NoCommit { repository: repository.to_string(), commit: commit.to_string(), reason };
    let found = repo.find_object(id).map_err(|error| missing(error.to_string()))?;
    let tree = found
        .try_into_commit()
        .and_then(|commit| commit.tree())
        .map_err(|error| missing(format!("not a commit: {error}")))?;
    let dest = scratch.join("tree");
    std::fs::create_dir_all(&dest).map_err(|error| write_error(commit, &error))?;
    write_tree(&repo, &tree, &dest, commit)?;
    Ok(dest)
}

fn write_error(commit: &str, error: &dyn std::fmt::Display) -> GitError {
    GitError::Tree { commit: commit.to_string(), reason: error.to_string() }
}

/// Writes `tree`'s entries under `dir`: files with mode 0755 when executable, else
/// 0644; symlinks as symlinks; subtrees as directories. Submodules are left out (their
/// content is another repository's).
fn write_tree(repo: &gix::Repository, tree: &gix::Tree<'_>, dir: &Path, commit: &str) -> Result<(), GitError> {
    use std::os::unix::fs::PermissionsExt;
    for entry in tree.iter() {
        let entry = entry.map_err(|error| write_error(commit, &error))?;
        let name = entry.filename().to_string();
        if name.is_empty() || name == "." || name == ".." || name.contains('/') {
            return Err(write_error(commit, &format!("tree entry {name:?} is not a file name")));
        }
        let path = dir.join(&name);
        let mode = entry.mode();
        if mode.is_commit() {
            continue;
        }
        let object = repo.find_object(entry.oid().to_owned()).map_err(|error| write_error(commit, &error))?;
        if mode.is_tree() {
            std::fs::create_dir(&path).map_err(|error| write_error(commit, &error))?;
            let subtree = object.try_into_tree().map_err(|error| write_error(commit, &error))?;
            write_tree(repo, &subtree, &path, commit)?;
        } else if mode.is_link() {
            let target = String::from_utf8(object.data.clone())
                .map_err(|_| write_error(commit, &format!("symlink {name:?} does not point at a UTF-8 path")))?;
            std::os::unix::fs::symlink(target, &path).map_err(|error| write_error(commit, &error))?;
        } else {
            std::fs::write(&path, &object.data).map_err(|error| write_error(commit, &error))?;
            let bits = if mode.is_executable() { 0o755 } else { 0o644 };
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(bits))
                .map_err(|error| write_error(commit, &error))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{checkout, clone_url, AtomicBool, GitError};

    #[test]
    fn owner_and_name_is_github_and_anything_else_is_a_url() {
        assert_eq!(clone_url("acme/shop"), "https://github.com/acme/shop.git");
        assert_eq!(clone_url("git://127.0.0.1:9418/shop.git"), "git://127.0.0.1:9418/shop.git");
        assert_eq!(clone_url("/srv/git/shop.git"), "/srv/git/shop.git");
        assert_eq!(clone_url("git@example.com:acme/shop.git"), "git@example.com:acme/shop.git");
    }

    #[test]
    fn https_is_refused_naming_the_repository_before_any_network() {
        let error = checkout("acme/shop", &"a".repeat(40), &std::env::temp_dir(), &AtomicBool::new(false)).unwrap_err();
        assert!(matches!(&error, GitError::Clone { repository, .. } if repository == "acme/shop"), "{error}");
        assert!(error.to_string().contains("no HTTPS transport"), "{error}");
    }

    #[test]
    fn a_short_or_non_hex_commit_id_is_refused_before_any_clone() {
        let scratch = std::env::temp_dir();
        for commit in ["abc123", "z".repeat(40).as_str(), ""] {
            assert!(
                matches!(
                    checkout("/nonexistent", commit, &scratch, &AtomicBool::new(false)),
                    Err(GitError::CommitId(_))
                ),
                "{commit}"
            );
        }
    }
}
