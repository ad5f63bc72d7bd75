//! Carrying out install instructions on the host, recording every created path in the
//! cleanup file before creating it (`codedeploy.md` §7.3).
//!
//! Copies keep the revision file's mode and modification time, and, when fleetmesh
//! runs as root, its owner (the agent copies with `preserve`); they are written under a
//! temporary name and renamed into place ([`atomic`](super::atomic)), so a failed copy
//! never leaves a truncated file. Symlinks are recreated with the same target text.
//! OVERWRITE replaces a file or symlink at the destination rather than writing through
//! it: a copy's rename replaces it in one step (the old file stays until the new one is
//! whole); a symlink copy removes it first.

use std::ffi::OsString;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use nix::unistd::geteuid;

use super::atomic::copy_file;
use super::cleanup::CleanupWriter;
use super::error::InstallError;
use super::instructions::{ContextInstruction, Instruction};
use super::permissions::full_acl;
use super::InstallReport;
use fleetmesh_core::appspec::AclEntry;

/// Runs `instructions` in order, updating `report`.
pub(crate) fn execute(
    instructions: &[Instruction],
    cleanup: &mut CleanupWriter,
    report: &mut InstallReport,
) -> Result<(), InstallError> {
    let is_root = geteuid().is_root();
    for instruction in instructions {
        match instruction {
            Instruction::Mkdir { directory } => {
                cleanup.record(directory)?;
                std::fs::create_dir(directory)
                    .map_err(|error| InstallError::io("create directory", directory, error))?;
                report.created_directories.push(directory.clone());
            }
            Instruction::Copy { source, destination, is_symlink, is_overwrite } => {
                cleanup.record(destination)?;
                if *is_overwrite {
                    if *is_symlink || is_directory(destination) {
                        // A directory cannot be replaced by a file: this fails as it did.
                        remove_existing(destination)?;
                    }
                    report.overwritten.push(destination.clone());
                }
                if *is_symlink {
                    copy_symlink(source, destination, is_root)?;
                } else {
                    copy_file(source, destination, is_root)?;
                }
                report.copied.push(destination.clone());
            }
            Instruction::Chmod { file, bits, .. } => {
                std::fs::set_permissions(file, std::fs::Permissions::from_mode(*bits))
                    .map_err(|error| InstallError::io("chmod", file, error))?;
                report.permissions_applied += 1;
            }
            Instruction::Setfacl { file, entries, .. } => {
                set_acl(file, entries)?;
                report.permissions_applied += 1;
            }
            Instruction::Semanage { file, context } => {
                let real = std::fs::canonicalize(file).map_err(|error| InstallError::io("resolve", file, error))?;
                set_context(&real, context)?;
                cleanup.record_context(&real)?;
                report.permissions_applied += 1;
            }
            Instruction::Chown { file, uid, gid, .. } => {
                std::os::unix::fs::chown(file, *uid, *gid).map_err(|error| InstallError::io("chown", file, error))?;
                report.permissions_applied += 1;
            }
        }
    }
    Ok(())
}

fn remove_existing(path: &Path) -> Result<(), InstallError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(InstallError::io("replace", path, error)),
    }
}

/// True when `path` is a directory itself (not a symlink to one).
fn is_directory(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|metadata| metadata.is_dir())
}

fn copy_symlink(source: &Path, destination: &Path, is_root: bool) -> Result<(), InstallError> {
    let target = std::fs::read_link(source).map_err(|error| InstallError::io("read link", source, error))?;
    std::os::unix::fs::symlink(&target, destination)
        .map_err(|error| InstallError::io("create link", destination, error))?;
    if is_root {
        let metadata = std::fs::symlink_metadata(source).map_err(|error| InstallError::io("inspect", source, error))?;
        std::os::unix::fs::lchown(destination, Some(metadata.uid()), Some(metadata.gid()))
            .map_err(|error| InstallError::io("chown", destination, error))?;
    }
    Ok(())
}

/// `setfacl --set <entries + base entries from the current mode> <file>`.
fn set_acl(file: &Path, entries: &[AclEntry]) -> Result<(), InstallError> {
    let mode = std::fs::metadata(file).map_err(|error| InstallError::io("inspect", file, error))?.mode();
    let full = full_acl(entries, mode).join(",");
    run_tool("setfacl", vec!["--set".into(), full.into(), file.into()])
}

/// `semanage fcontext -a [-s user] -t type [-r range] <file>`, then `restorecon -v <file>`.
fn set_context(file: &Path, context: &ContextInstruction) -> Result<(), InstallError> {
    let mut args: Vec<OsString> = vec!["fcontext".into(), "-a".into()];
    if let Some(user) = &context.user {
        args.extend(["-s".into(), user.into()]);
    }
    args.extend(["-t".into(), (&context.kind).into()]);
    if let Some(range) = &context.range {
        args.extend(["-r".into(), range.into()]);
    }
    args.push(file.into());
    run_tool("semanage", args)?;
    run_tool("restorecon", vec!["-v".into(), file.into()])
}

fn run_tool(tool: &str, args: Vec<OsString>) -> Result<(), InstallError> {
    let command_line = || {
        let mut line = tool.to_string();
        for arg in &args {
            line.push(' ');
            line.push_str(&arg.to_string_lossy());
        }
        line
    };
    let output = Command::new(tool).args(&args).output().map_err(|error| InstallError::ToolFailed {
        command: command_line(),
        status: "not started".to_string(),
        stderr: error.to_string(),
    })?;
    if output.status.success() {
        return Ok(());
    }
    Err(InstallError::ToolFailed {
        command: command_line(),
        status: output.status.to_string(),
        stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
    })
}
