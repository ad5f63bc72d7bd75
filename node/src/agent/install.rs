//! The Install lifecycle step on a host (`codedeploy.md` §1.3, §1.4, §7.2, §7.3): undo
//! the deployment group's previous install, copy the revision's files per the appspec,
//! apply its permissions, and remember what was created for next time.
//!
//! ```text
//! install(plan)
//!   check owners, groups, tools ─────────────── (fail before touching anything)
//!   <dg-id>-cleanup: remove listed paths newest first, delete the list
//!   plan copies (FilePlanner) + permissions ─── (all conflicts found here)
//!   write <dg-id>-install.json
//!   execute: each mkdir/copy is appended to a fresh <dg-id>-cleanup first (a copy is
//!            written to a temporary name and renamed into place); chmod, setfacl,
//!            semanage, chown; fsync the list
//! ```
//!
//! Destinations and permission objects are absolute appspec paths resolved under the
//! node's install root. The step is synchronous (it is disk work); run it on a blocking
//! thread. Which revision's ApplicationStop scripts run next time is decided by the
//! caller with [`last_successful_install`] and its siblings.

mod atomic;
mod cleanup;
mod error;
mod execute;
mod instructions;
mod permissions;
mod records;
mod resolve;

use std::path::{Path, PathBuf};

use serde::Serialize;

pub use error::InstallError;

/// Removes what the cleanup list at `path` records (newest first) and the list itself:
/// how many entries were processed; no list, nothing to do.
///
/// # Errors
/// As [`cleanup::run_cleanup`].
pub(crate) fn remove_installed(path: &Path) -> Result<usize, InstallError> {
    cleanup::run_cleanup(path)
}
pub use records::{
    last_successful_install, most_recent_install, record_last_successful_install, record_most_recent_install,
};

use fleetmesh_core::appspec::{AppSpec, FileExistsBehavior};
use instructions::{FilePlanner, Instruction};

/// Everything the Install step needs.
#[derive(Clone, Copy, Debug)]
pub struct InstallPlan<'a> {
    /// The parsed appspec of the revision being installed.
    pub appspec: &'a AppSpec,
    /// The unpacked revision (`<deployment dir>/deployment-archive`).
    pub archive_root: &'a Path,
    /// Where absolute appspec paths land: `/` in production, a directory per node when
    /// several share a machine.
    pub install_root: &'a Path,
    /// `<root>/deployment-instructions`, holding the per-group cleanup and install files.
    pub instructions_dir: &'a Path,
    /// The deployment group's id: install state is kept per group id (§2.4).
    pub deployment_group_id: &'a str,
    /// The deployment's file-exists behavior; the appspec's `file_exists_behavior`
    /// wins when set (§1.2).
    pub file_exists_behavior: FileExistsBehavior,
}

/// What an install did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InstallReport {
    /// Entries of the previous install's cleanup list that were processed.
    pub cleaned_up: usize,
    /// Files and symlinks copied, in order.
    pub copied: Vec<PathBuf>,
    /// Directories created, in order.
    pub created_directories: Vec<PathBuf>,
    /// Existing files that were replaced (OVERWRITE); also listed in `copied`.
    pub overwritten: Vec<PathBuf>,
    /// Existing files kept as they were (RETAIN).
    pub retained: Vec<PathBuf>,
    /// chmod/setfacl/semanage/chown operations applied.
    pub permissions_applied: usize,
}

/// `install.json`, in the agent's shape.
#[derive(Serialize)]
struct InstallFile<'a> {
    instructions: &'a [Instruction],
}

/// Runs the Install step described by `plan`.
///
/// # Errors
/// [`InstallError`] naming the path or appspec entry at fault. Failures found while
/// planning (conflicts, DISALLOW, duplicate destinations, unknown owners, missing
/// tools) leave the host as the cleanup left it; a failure while executing leaves a
/// cleanup list covering everything created so far, so the next install removes it.
pub fn install(plan: &InstallPlan<'_>) -> Result<InstallReport, InstallError> {
    records::check_deployment_group_id(plan.deployment_group_id)?;
    if !plan.install_root.is_dir() {
        return Err(InstallError::InstallRootMissing { path: plan.install_root.to_path_buf() });
    }
    let ownerships = permissions::check_permissions(&plan.appspec.permissions)?;
    std::fs::create_dir_all(plan.instructions_dir)
        .map_err(|error| InstallError::io("create directory", plan.instructions_dir, error))?;
    let cleanup_path = plan.instructions_dir.join(format!("{}-cleanup", plan.deployment_group_id));
    let install_path = plan.instructions_dir.join(format!("{}-install.json", plan.deployment_group_id));

    let mut report = InstallReport { cleaned_up: cleanup::run_cleanup(&cleanup_path)?, ..InstallReport::default() };

    let behavior = plan.appspec.file_exists_behavior.unwrap_or(plan.file_exists_behavior);
    let mut planner = FilePlanner::new(plan.archive_root, plan.install_root, behavior);
    for (entry, mapping) in plan.appspec.files.iter().enumerate() {
        planner.add(entry, mapping)?;
    }
    let mut steps = planner.finish();
    permissions::add_permissions(&mut steps, &plan.appspec.permissions, &ownerships, plan.install_root)?;
    report.retained = steps.retained.clone();

    let json = serde_json::to_vec(&InstallFile { instructions: &steps.instructions })
        .map_err(|error| InstallError::io("encode", &install_path, std::io::Error::other(error)))?;
    records::write_atomically(&install_path, &json)?;

    let mut writer = cleanup::CleanupWriter::create(&cleanup_path)?;
    // A retained file counts as installed by this deployment (codedeploy.md §7.2: RETAIN
    // records the kept file, so the next install's cleanup removes it).
    for retained in &steps.retained {
        writer.record(retained)?;
    }
    let executed = execute::execute(&steps.instructions, &mut writer, &mut report);
    // Flush the list even after a failure: it is what the next install cleans up.
    let flushed = writer.finish();
    executed?;
    flushed?;
    Ok(report)
}

#[cfg(test)]
mod tests;
