//! The previous release's binary, for tests that run old and new nodes in one cluster.
//!
//! A fleet upgrades fleetmesh host by host, so every release must work in a cluster with
//! the release before it. The previous release is the commit [`PREVIOUS_RELEASE`] of this
//! repository; the first test that needs it exports that commit's tree with `git archive`
//! and builds its `fleetmesh` binary with cargo into `target/compat/` (a target directory
//! of its own: a build in the main one would replace the binary under test). Later runs
//! reuse the binary. A clean build takes about as long as the workspace's own release
//! build (~8 minutes on a 2-core machine); CI pays it once per clean clone.
//!
//! When a release changes something old nodes must understand, bump [`PREVIOUS_RELEASE`]
//! to the last commit the fleet may still run.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The commit whose binary plays the previous release: the last one before feature
/// levels existed (it knows none, so it stands for every node that reports none).
pub const PREVIOUS_RELEASE: &str = "054a42fd88aac04aaba720afa4a95eaa28da70eb";

/// Why the previous release's binary is not available.
#[derive(Debug, thiserror::Error)]
pub enum CompatError {
    /// The commit is not in this clone (a shallow clone, say).
    #[error(
        "the previous release {PREVIOUS_RELEASE} is not in this clone's history \
         (run `git fetch --unshallow` or clone without --depth): {0}"
    )]
    MissingCommit(String),
    /// A step of the build failed.
    #[error("cannot build the previous release's binary: {step}: {reason}")]
    Build {
        /// What was being done.
        step: &'static str,
        /// What failed (the tool's output, shortened).
        reason: String,
    },
}

/// The workspace's root directory.
pub(crate) fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The previous release's `fleetmesh` binary, built on first use.
///
/// Concurrent callers (nextest runs tests in parallel processes) build it once: the
/// build runs under an exclusive lock on a file next to it.
///
/// # Errors
/// The commit is not in this clone, or its export or build failed.
pub fn previous_release() -> Result<PathBuf, CompatError> {
    let root = workspace().join("target").join("compat");
    let binary = root.join(format!("fleetmesh-{}", &PREVIOUS_RELEASE[..12]));
    if binary.exists() {
        return Ok(binary);
    }
    let build = |step, error: std::io::Error| CompatError::Build { step, reason: error.to_string() };
    std::fs::create_dir_all(&root).map_err(|error| build("create target/compat", error))?;
    let lock = std::fs::File::create(root.join(".lock")).map_err(|error| build("create the lock file", error))?;
    let _guard = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, errno)| build("lock target/compat", std::io::Error::from(errno)))?;
    if binary.exists() {
        // Another test process built it while this one waited for the lock.
        return Ok(binary);
    }
    let source = root.join(format!("src-{}", &PREVIOUS_RELEASE[..12]));
    export(&source)?;
    eprintln!("building the previous release {} (once per clone; several minutes)", &PREVIOUS_RELEASE[..12]);
    let target_dir = root.join("target");
    run(
        "cargo build --release -p fleetmesh",
        Command::new(env!("CARGO"))
            .args(["build", "--release", "--locked", "-p", "fleetmesh", "--target-dir"])
            .arg(&target_dir)
            .current_dir(&source),
    )?;
    std::fs::copy(target_dir.join("release").join("fleetmesh"), &binary)
        .map_err(|error| build("copy the binary", error))?;
    for dir in [&target_dir, &source] {
        // The build's own files (about 2 GiB) are not needed again: a later run reuses
        // the binary. A failure here only leaves them for the next clean.
        let _ = std::fs::remove_dir_all(dir);
    }
    Ok(binary)
}

/// Exports the previous release's tree into `source` (replacing a partial export).
fn export(source: &Path) -> Result<(), CompatError> {
    let build = |step, error: std::io::Error| CompatError::Build { step, reason: error.to_string() };
    let exists = Command::new("git")
        .args(["cat-file", "-e", &format!("{PREVIOUS_RELEASE}^{{commit}}")])
        .current_dir(workspace())
        .output()
        .map_err(|error| build("run git", error))?;
    if !exists.status.success() {
        return Err(CompatError::MissingCommit(String::from_utf8_lossy(&exists.stderr).trim().to_string()));
    }
    if source.exists() {
        std::fs::remove_dir_all(source).map_err(|error| build("remove a partial export", error))?;
    }
    std::fs::create_dir_all(source).map_err(|error| build("create the export directory", error))?;
    let archive = workspace().join("target").join("compat").join("previous.tar");
    run(
        "git archive",
        Command::new("git")
            .args(["archive", "--format=tar", "-o"])
            .arg(&archive)
            .arg(PREVIOUS_RELEASE)
            .current_dir(workspace()),
    )?;
    run("tar -x", Command::new("tar").arg("-xf").arg(&archive).arg("-C").arg(source))
}

/// Runs `command`, failing with its output's last lines.
fn run(step: &'static str, command: &mut Command) -> Result<(), CompatError> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|error| CompatError::Build { step, reason: error.to_string() })?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let tail: Vec<&str> = stderr.lines().rev().take(15).collect();
    let reason = tail.into_iter().rev().collect::<Vec<_>>().join("\n");
    Err(CompatError::Build { step, reason })
}
