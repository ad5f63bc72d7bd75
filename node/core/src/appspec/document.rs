//! The walk over a parsed appspec document: top-level keys, `files` and `hooks`
//! (`codedeploy.md` §1.2, §1.3, §1.5), with `permissions` delegated to `permission.rs`.
//! Rules follow the agent where bundles depend on it and are stricter only where the
//! agent would fail later anyway or do something unsafe (escaping the bundle).

use std::collections::BTreeMap;
use std::path::{Component, Path};
use std::time::Duration;

use fleetmesh_state::model::resources::FileExistsBehavior;
use serde_norway::{Mapping, Value};

use super::error::{FieldPath, Problem};
use super::fields::{describe, mapping, optional, required, sequence, text, untagged};
use super::locate::Locator;
use super::permission::read_permission;
use super::{
    AppSpec, FileMapping, HookScript, Os, DEFAULT_HOOK_TIMEOUT, EVENT_TIMEOUT_MAX, SCRIPTABLE_EVENTS,
    SCRIPT_TIMEOUT_MAX,
};

/// Reads the whole document. Non-fatal findings go to `warnings`.
pub(crate) fn read_document(
    root: &Value,
    locator: &Locator<'_>,
    warnings: &mut Vec<Problem>,
) -> Result<AppSpec, Problem> {
    let path = FieldPath::root();
    let map = mapping(root, &path, "a mapping with version, os, files and hooks")?;
    check_version(map, &path)?;
    let os = read_os(map, &path)?;
    let files = match optional(map, "files") {
        Some(value) => read_files(value, &path.key("files"))?,
        None => Vec::new(),
    };
    let permissions = match optional(map, "permissions") {
        Some(value) => {
            let list_path = path.key("permissions");
            let items = sequence(value, &list_path, "a list of permission entries")?;
            let mut permissions = Vec::with_capacity(items.len());
            for (index, item) in items.iter().enumerate() {
                permissions.push(read_permission(item, &list_path.index(index), locator, warnings)?);
            }
            permissions
        }
        None => Vec::new(),
    };
    let hooks = match optional(map, "hooks") {
        Some(value) => read_hooks(value, &path.key("hooks"), warnings)?,
        None => BTreeMap::new(),
    };
    let file_exists_behavior = match optional(map, "file_exists_behavior") {
        Some(value) => Some(read_file_exists_behavior(value, &path.key("file_exists_behavior"))?),
        None => None,
    };
    Ok(AppSpec { os, files, permissions, hooks, file_exists_behavior, warnings: Vec::new() })
}

/// `version` must be 0.0. The agent compares with the number 0.0 and the docs ask for
/// the string "0.0"; both are accepted (§1.2, §12), and so is a bare `0`, which equals
/// 0.0 in the agent's comparison.
fn check_version(map: &Mapping, path: &FieldPath) -> Result<(), Problem> {
    let Some(value) = optional(map, "version") else {
        return Err(Problem::new(path, "missing \"version\"; write \"version: 0.0\""));
    };
    let is_zero = match untagged(value) {
        Value::Number(number) => number.as_f64() == Some(0.0),
        Value::String(text) => matches!(text.trim(), "0.0" | "0"),
        _ => false,
    };
    if is_zero {
        Ok(())
    } else {
        Err(Problem::new(
            &path.key("version"),
            format!("unsupported version {}; the only appspec version is 0.0", describe(value)),
        ))
    }
}

fn read_os(map: &Mapping, path: &FieldPath) -> Result<Os, Problem> {
    let Some(value) = optional(map, "os") else {
        return Err(Problem::new(path, "missing \"os\"; write \"os: linux\""));
    };
    match untagged(value) {
        Value::String(os) if os == "linux" => Ok(Os::Linux),
        Value::String(os) if os == "windows" => Err(Problem::new(
            &path.key("os"),
            "the appspec is for windows, but this host runs linux; deploy it to windows hosts or set \"os: linux\"",
        )),
        other => Err(Problem::new(
            &path.key("os"),
            format!("unknown operating system {}; this host runs linux", describe(other)),
        )),
    }
}

fn read_file_exists_behavior(value: &Value, path: &FieldPath) -> Result<FileExistsBehavior, Problem> {
    let written = text(value, path)?;
    FileExistsBehavior::parse(&written.trim().to_ascii_uppercase())
        .ok_or_else(|| Problem::new(path, format!("unknown value {written:?}; use DISALLOW, OVERWRITE or RETAIN")))
}

fn read_files(value: &Value, path: &FieldPath) -> Result<Vec<FileMapping>, Problem> {
    let items = sequence(value, path, "a list of {source, destination} entries")?;
    let mut files = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let item_path = path.index(index);
        let map = mapping(item, &item_path, "a mapping with \"source\" and \"destination\"")?;
        let source = text(required(map, "source", &item_path)?, &item_path.key("source"))?;
        let destination = text(required(map, "destination", &item_path)?, &item_path.key("destination"))?;
        if escapes(&source) {
            return Err(Problem::new(
                &item_path.key("source"),
                format!("{source:?} leaves the bundle; sources are paths inside the revision"),
            ));
        }
        if !destination.starts_with('/') {
            return Err(Problem::new(
                &item_path.key("destination"),
                format!("must be an absolute path, found {destination:?}"),
            ));
        }
        files.push(FileMapping { source, destination });
    }
    Ok(files)
}

fn read_hooks(
    value: &Value,
    path: &FieldPath,
    warnings: &mut Vec<Problem>,
) -> Result<BTreeMap<String, Vec<HookScript>>, Problem> {
    let map = mapping(value, path, "a mapping from lifecycle event to scripts")?;
    let mut hooks = BTreeMap::new();
    for (key, scripts) in map {
        let Some(event) = untagged(key).as_str() else {
            return Err(Problem::new(path, format!("event names are text, found {}", describe(key))));
        };
        let event_path = path.key(event);
        if untagged(scripts).is_null() {
            continue; // §1.5: an event key with nothing under it is ignored.
        }
        let items = sequence(scripts, &event_path, "a list of scripts, each with \"location\"")?;
        let mut event_scripts = Vec::with_capacity(items.len());
        // Only timeouts the author wrote count toward the per-event limit: two scripts
        // left at the 3600 s default are common and run fine in CodeDeploy.
        let mut explicit_total = Duration::ZERO;
        for (index, item) in items.iter().enumerate() {
            let (script, is_explicit) = read_script(item, &event_path.index(index), warnings)?;
            if is_explicit {
                explicit_total = explicit_total.saturating_add(script.timeout);
            }
            event_scripts.push(script);
        }
        if event_scripts.is_empty() {
            continue;
        }
        if !SCRIPTABLE_EVENTS.contains(&event) {
            warnings.push(Problem::new(
                &event_path,
                format!("{event:?} is not a scriptable lifecycle event, so these scripts never run"),
            ));
        }
        if explicit_total > EVENT_TIMEOUT_MAX {
            warnings.push(Problem::new(
                &event_path,
                format!(
                    "script timeouts add up to {} s, more than the {} s CodeDeploy allows one lifecycle event",
                    explicit_total.as_secs(),
                    EVENT_TIMEOUT_MAX.as_secs()
                ),
            ));
        }
        hooks.insert(event.to_string(), event_scripts);
    }
    Ok(hooks)
}

/// One script, and whether its timeout was written (not defaulted).
fn read_script(value: &Value, path: &FieldPath, warnings: &mut Vec<Problem>) -> Result<(HookScript, bool), Problem> {
    let map = mapping(value, path, "a mapping with \"location\"")?;
    let location = text(required(map, "location", path)?, &path.key("location"))?.trim().to_string();
    if location.is_empty() {
        return Err(Problem::new(&path.key("location"), "must not be empty"));
    }
    if escapes(&location) {
        return Err(Problem::new(
            &path.key("location"),
            format!("{location:?} leaves the bundle; scripts are paths inside the revision"),
        ));
    }
    let location = match location.strip_prefix('/') {
        // The agent joins the location to the bundle root, so `/scripts/a.sh` runs
        // `<bundle>/scripts/a.sh` there too; keep such bundles working, but say so.
        Some(relative) => {
            warnings.push(Problem::new(
                &path.key("location"),
                format!("{location:?} is read relative to the bundle root; drop the leading '/'"),
            ));
            relative.trim_start_matches('/').to_string()
        }
        None => location,
    };
    let (timeout, is_explicit) = match optional(map, "timeout") {
        Some(value) => (read_timeout(value, &path.key("timeout"))?, true),
        None => (DEFAULT_HOOK_TIMEOUT, false),
    };
    let runas = match optional(map, "runas") {
        Some(value) => Some(text(value, &path.key("runas"))?.trim().to_string()).filter(|user| !user.is_empty()),
        None => None,
    };
    if optional(map, "sudo").is_some_and(|sudo| untagged(sudo).as_bool() == Some(true)) {
        warnings
            .push(Problem::new(&path.key("sudo"), "sudo is ignored: scripts run as the fleetmesh user, or as runas"));
    }
    Ok((HookScript { location, timeout, runas }, is_explicit))
}

/// `timeout`: a positive whole number of seconds, as a number or as text, at most
/// [`SCRIPT_TIMEOUT_MAX`] (§1.5).
fn read_timeout(value: &Value, path: &FieldPath) -> Result<Duration, Problem> {
    let timeout = read_seconds(value, path)?;
    if timeout > SCRIPT_TIMEOUT_MAX {
        return Err(Problem::new(
            path,
            format!(
                "{} s is more than the {} s CodeDeploy allows one script",
                timeout.as_secs(),
                SCRIPT_TIMEOUT_MAX.as_secs()
            ),
        ));
    }
    Ok(timeout)
}

/// A positive whole number of seconds, as a number or as text.
fn read_seconds(value: &Value, path: &FieldPath) -> Result<Duration, Problem> {
    let non_positive = |shown: &str| Problem::new(path, format!("must be a positive number of seconds, found {shown}"));
    match untagged(value) {
        Value::Number(number) => match number.as_u64() {
            Some(0) => Err(non_positive("0")),
            Some(seconds) => Ok(Duration::from_secs(seconds)),
            None if number.as_i64().is_some() => Err(non_positive(&number.to_string())),
            None => Err(Problem::new(path, format!("must be a whole number of seconds, found {number}"))),
        },
        Value::String(written) => match written.trim().parse::<i128>() {
            Ok(seconds) if seconds <= 0 => Err(non_positive(&format!("{written:?}"))),
            Ok(seconds) => u64::try_from(seconds)
                .map(Duration::from_secs)
                .map_err(|_| Problem::new(path, format!("{written:?} seconds is too long"))),
            Err(_) => Err(Problem::new(path, format!("must be a number of seconds, found {written:?}"))),
        },
        other => Err(Problem::new(path, format!("must be a number of seconds, found {}", describe(other)))),
    }
}

/// True when a bundle-relative path climbs above the bundle root (`../x`, `a/../../x`).
/// A leading `/` does not escape: the agent joins it to the bundle root (§1.3).
fn escapes(relative: &str) -> bool {
    let mut depth: usize = 0;
    for component in Path::new(relative.trim_start_matches('/')).components() {
        match component {
            Component::ParentDir => match depth.checked_sub(1) {
                Some(up) => depth = up,
                None => return true,
            },
            Component::Normal(_) => depth += 1,
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_paths_are_detected() {
        // Feeds paths that stay inside and paths that leave the bundle; asserts which is which.
        assert!(!escapes("scripts/a.sh"));
        assert!(!escapes("/scripts/a.sh"));
        assert!(!escapes("a/../b"));
        assert!(!escapes("/"));
        assert!(escapes("../a"));
        assert!(escapes("a/../../b"));
        assert!(escapes("/../etc/passwd"));
    }
}
