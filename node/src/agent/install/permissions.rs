//! Which installed paths each `permissions` entry applies to, and the instructions that
//! apply it (`codedeploy.md` §1.4).
//!
//! Rules, as the agent applies them:
//! - only paths this install copied or created are touched (retained and foreign files
//!   never are);
//! - an `object` that is a copied file gets the entry itself (if `type` includes
//!   `file`), and then `pattern` must be `**` and `except` empty;
//! - an `object` that is a directory (created now or already there) matches this
//!   install's files/directories strictly below it: `**` matches all of them, any other
//!   pattern only names directly inside `object`; `except` globs skip names directly
//!   inside `object`; `*` is the only wildcard;
//! - one path may be matched by one entry only;
//! - per path: chmod, then setfacl, then semanage/restorecon, then chown.
//!
//! Symlinks the install recreated are left alone: chmod and setfacl would act on what
//! they point to, which may not be ours.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use nix::unistd::{Group, User};

use super::error::InstallError;
use super::instructions::{ContextInstruction, CopyKind, Instruction, Plan};
use super::resolve::under_root;
use fleetmesh_core::appspec::{AclEntry, AclTag, ObjectType, Permission};

/// Owner and group ids of one entry, looked up before anything is changed on disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Ownership {
    uid: Option<u32>,
    gid: Option<u32>,
}

/// Looks up owners and groups and checks the needed commands exist, one result per
/// entry, so an install that cannot finish fails before the previous install is
/// cleaned up.
pub(crate) fn check_permissions(permissions: &[Permission]) -> Result<Vec<Ownership>, InstallError> {
    let mut ownerships = Vec::with_capacity(permissions.len());
    for (entry, permission) in permissions.iter().enumerate() {
        let uid = match &permission.owner {
            Some(name) => match User::from_name(name) {
                Ok(Some(user)) => Some(user.uid.as_raw()),
                Ok(None) | Err(_) => return Err(InstallError::UnknownUser { entry, name: name.clone() }),
            },
            None => None,
        };
        let gid = match &permission.group {
            Some(name) => match Group::from_name(name) {
                Ok(Some(group)) => Some(group.gid.as_raw()),
                Ok(None) | Err(_) => return Err(InstallError::UnknownGroup { entry, name: name.clone() }),
            },
            None => None,
        };
        if !permission.acls.is_empty() && !is_installed("setfacl") {
            return Err(InstallError::ToolMissing {
                entry,
                field: "acls",
                tool: "setfacl",
                package: "the acl package",
            });
        }
        if permission.context.is_some() {
            for tool in ["semanage", "restorecon"] {
                if !is_installed(tool) {
                    return Err(InstallError::ToolMissing {
                        entry,
                        field: "context",
                        tool,
                        package: "the SELinux policy utilities (policycoreutils)",
                    });
                }
            }
        }
        ownerships.push(Ownership { uid, gid });
    }
    Ok(ownerships)
}

/// True when `tool` is an executable file on `PATH`.
pub(crate) fn is_installed(tool: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path).any(|directory| {
        std::fs::metadata(directory.join(tool))
            .is_ok_and(|metadata| metadata.is_file() && metadata.permissions().mode() & 0o111 != 0)
    })
}

/// Appends the permission instructions of every entry to `plan`.
pub(crate) fn add_permissions(
    plan: &mut Plan,
    permissions: &[Permission],
    ownerships: &[Ownership],
    install_root: &Path,
) -> Result<(), InstallError> {
    let mut assigned: BTreeMap<PathBuf, usize> = BTreeMap::new();
    for (entry, permission) in permissions.iter().enumerate() {
        let object = under_root(install_root, &permission.object);
        let mut targets = Vec::new();
        if let Some(kind) = plan.copy_targets.get(&object) {
            if permission.applies_to(ObjectType::File) {
                if permission.pattern != "**" || !permission.except.is_empty() {
                    return Err(InstallError::PatternOnFile { entry, object });
                }
                if *kind == CopyKind::File {
                    targets.push(object.clone());
                }
            }
        } else if plan.mkdir_targets.contains(&object) || object.is_dir() {
            if permission.applies_to(ObjectType::File) {
                let files = plan.copy_targets.iter().filter(|(_, kind)| **kind == CopyKind::File);
                targets.extend(files.map(|(path, _)| path).filter(|path| matches(permission, &object, path)).cloned());
            }
            if permission.applies_to(ObjectType::Directory) {
                let directories = plan.mkdir_targets.iter().filter(|path| matches(permission, &object, path));
                targets.extend(directories.cloned());
            }
        }
        let ownership = ownerships.get(entry).copied().unwrap_or_default();
        for target in targets {
            if let Some(first) = assigned.insert(target.clone(), entry) {
                return Err(InstallError::PermissionsTwice { path: target, first, second: entry });
            }
            if permission.has_default_acl() && plan.copy_targets.contains_key(&target) {
                return Err(InstallError::DefaultAclOnFile { entry, path: target });
            }
            push_instructions(&mut plan.instructions, permission, ownership, target);
        }
    }
    Ok(())
}

fn push_instructions(
    instructions: &mut Vec<Instruction>,
    permission: &Permission,
    ownership: Ownership,
    file: PathBuf,
) {
    if let Some(bits) = permission.mode {
        instructions.push(Instruction::Chmod { file: file.clone(), mode: format!("{bits:04o}"), bits });
    }
    if !permission.acls.is_empty() {
        let acl = permission.acls.iter().map(ToString::to_string).collect();
        instructions.push(Instruction::Setfacl { file: file.clone(), acl, entries: permission.acls.clone() });
    }
    if let Some(context) = &permission.context {
        let context =
            ContextInstruction { user: context.user.clone(), kind: context.kind.clone(), range: context.range.clone() };
        instructions.push(Instruction::Semanage { file: file.clone(), context });
    }
    if permission.owner.is_some() || permission.group.is_some() {
        instructions.push(Instruction::Chown {
            file,
            owner: permission.owner.clone(),
            group: permission.group.clone(),
            uid: ownership.uid,
            gid: ownership.gid,
        });
    }
}

/// True when `path` (strictly below `object`) is selected by the entry's pattern and
/// not excluded by `except`.
fn matches(permission: &Permission, object: &Path, path: &Path) -> bool {
    let Ok(relative) = path.strip_prefix(object) else {
        return false;
    };
    let mut components = relative.components();
    let Some(first) = components.next() else {
        return false; // the object itself
    };
    let single_name = components.next().is_none().then(|| first.as_os_str().to_string_lossy());
    let is_selected = permission.pattern == "**"
        || single_name.as_deref().is_some_and(|name| glob_matches(&permission.pattern, name));
    let is_excepted =
        single_name.as_deref().is_some_and(|name| permission.except.iter().any(|pattern| glob_matches(pattern, name)));
    is_selected && !is_excepted
}

/// Simple glob: `*` matches any run of characters (none included), everything else
/// matches itself.
pub(crate) fn glob_matches(pattern: &str, name: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    let (mut p, mut n) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    // Each pass advances `n`, or moves `p` forward over a star, or resumes after the
    // last star with `n` one further: O(pattern × name) steps at most.
    while n < name.len() {
        if p < pattern.len() && pattern[p] == '*' {
            backtrack = Some((p, n));
            p += 1;
        } else if p < pattern.len() && pattern[p] == name[n] {
            p += 1;
            n += 1;
        } else if let Some((star, matched)) = backtrack {
            p = star + 1;
            n = matched + 1;
            backtrack = Some((star, matched + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

/// The complete ACL `setfacl --set` needs: the appspec's entries plus base entries
/// derived from `mode` (the appspec may not set those, §1.4), a mask when named
/// entries need one, and the default base entries when default entries are present.
pub(crate) fn full_acl(entries: &[AclEntry], mode: u32) -> Vec<String> {
    let digit = |shift: u32| {
        let bits = (mode >> shift) & 7;
        [bits & 4 != 0, bits & 2 != 0, bits & 1 != 0]
    };
    let (owner, group, other) = (digit(6), digit(3), digit(0));
    let base = |is_default: bool, tag: AclTag, permissions: [bool; 3]| AclEntry {
        is_default,
        tag,
        qualifier: String::new(),
        permissions,
    };
    let mut acl: Vec<AclEntry> = entries.to_vec();
    acl.push(base(false, AclTag::User, owner));
    acl.push(base(false, AclTag::Group, group));
    acl.push(base(false, AclTag::Other, other));
    let has = |acl: &[AclEntry], is_default: bool, test: &dyn Fn(&AclEntry) -> bool| {
        acl.iter().any(|entry| entry.is_default == is_default && test(entry))
    };
    let is_named = |entry: &AclEntry| !entry.qualifier.is_empty();
    let is_mask = |entry: &AclEntry| entry.tag == AclTag::Mask;
    if has(&acl, false, &is_named) && !has(&acl, false, &is_mask) {
        acl.push(base(false, AclTag::Mask, group));
    }
    if acl.iter().any(|entry| entry.is_default) {
        let is_base_of = |tag: AclTag| move |entry: &AclEntry| entry.tag == tag && entry.qualifier.is_empty();
        for (tag, permissions) in [(AclTag::User, owner), (AclTag::Group, group), (AclTag::Other, other)] {
            if !has(&acl, true, &is_base_of(tag)) {
                acl.push(base(true, tag, permissions));
            }
        }
        if has(&acl, true, &is_named) && !has(&acl, true, &is_mask) {
            let default_group = acl
                .iter()
                .find(|entry| entry.is_default && entry.tag == AclTag::Group && entry.qualifier.is_empty())
                .map_or(group, |entry| entry.permissions);
            acl.push(base(true, AclTag::Mask, default_group));
        }
    }
    acl.iter().map(ToString::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleetmesh_core::appspec::parse;

    #[test]
    fn simple_globs_match_like_the_agent() {
        // Matches names against star patterns; asserts hits, misses and empty stars.
        assert!(glob_matches("*.sh", "start.sh"));
        assert!(glob_matches("*", "anything"));
        assert!(glob_matches("a*b*c", "aXXbYc"));
        assert!(glob_matches("a*", "a"));
        assert!(glob_matches("exact", "exact"));
        assert!(!glob_matches("*.sh", "start.py"));
        assert!(!glob_matches("a*b", "ab-c"));
        assert!(!glob_matches("", "x"));
    }

    #[test]
    fn full_acl_adds_base_mask_and_default_entries() {
        // Builds the ACL for a named user on a 0750 directory with one default entry;
        // asserts the base entries from the mode, the mask, and the default bases.
        let spec = parse(
            "appspec.yml",
            "version: 0.0\nos: linux\npermissions:\n  - object: /x\n    acls: [\"u:alice:rw\", \"d:g:web:rx\"]\n",
        )
        .expect("parse");
        let acl = full_acl(&spec.permissions[0].acls, 0o750);
        assert_eq!(
            acl,
            [
                "user:alice:rw-",
                "default:group:web:r-x",
                "user::rwx",
                "group::r-x",
                "other::---",
                "mask::r-x",
                "default:user::rwx",
                "default:group::r-x",
                "default:other::---",
                "default:mask::r-x",
            ]
        );
    }
}
