//! The `permissions` section (`codedeploy.md` §1.4): what each entry means and the
//! checks the agent makes when it reads one. Applying permissions to files is the
//! Install step's job (`agent::install`); this module only reads and validates.
//!
//! YAML trap (§1.4, §12): the agent reads YAML 1.1, where a bare `mode: 0644` is the
//! octal number 420, which it then applies as the mode digits "420" (silently wrong),
//! and a bare `0755` is 493, which it rejects. fleetmesh reads the digits as written, so
//! a bare `0644` is 0644 (`rw-r--r--`), which is what every author means; because the
//! two agents disagree on that one spelling, the parser adds a warning suggesting
//! `"0644"` or `644`, which both read the same way. A YAML 1.2 octal literal (`0o644`)
//! or a hex one is refused rather than guessed at.

use serde_norway::Value;

use super::acl::{read_acls, AclEntry};
use super::error::ValueError;
use super::error::{FieldPath, Problem};
use super::fields::{describe, mapping, optional, required, text, text_list, untagged};
use super::locate::Locator;
use super::selinux::{read_context, SeLinuxContext};

/// The kinds of filesystem object a permission entry applies to (`type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ObjectType {
    /// Regular files (and the symlinks the install copied).
    File,
    /// Directories.
    Directory,
}

/// One `permissions` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Permission {
    /// Absolute path (under the install root) of a copied file, or of a directory whose
    /// installed contents the entry applies to.
    pub object: String,
    /// `**` (default: everything below `object`) or a simple glob where `*` is the only
    /// special character, matched against names directly inside `object`.
    pub pattern: String,
    /// Simple globs matched like `pattern`; matching names are skipped.
    pub except: Vec<String>,
    /// Object kinds the entry applies to; both by default.
    pub types: Vec<ObjectType>,
    /// User name to `chown` to.
    pub owner: Option<String>,
    /// Group name to `chown` to.
    pub group: Option<String>,
    /// Mode bits including setuid/setgid/sticky (at most `0o7777`).
    pub mode: Option<u32>,
    /// Extra ACL entries, applied with `setfacl --set` (base entries come from the mode).
    pub acls: Vec<AclEntry>,
    /// SELinux file context, applied with `semanage fcontext -a` and `restorecon`.
    pub context: Option<SeLinuxContext>,
}

impl Permission {
    /// True when the entry applies to objects of `kind`.
    pub fn applies_to(&self, kind: ObjectType) -> bool {
        self.types.contains(&kind)
    }

    /// True when some ACL entry is a default (`d:`) entry, which only directories take.
    pub fn has_default_acl(&self) -> bool {
        self.acls.iter().any(|entry| entry.is_default)
    }
}

/// Reads one `permissions` entry at `path`; pushes non-fatal findings to `warnings`.
pub(crate) fn read_permission(
    value: &Value,
    path: &FieldPath,
    locator: &Locator<'_>,
    warnings: &mut Vec<Problem>,
) -> Result<Permission, Problem> {
    let map = mapping(value, path, "a mapping with \"object\"")?;
    let object = text(required(map, "object", path)?, &path.key("object"))?.trim().to_string();
    if object.is_empty() {
        return Err(Problem::new(&path.key("object"), "must not be empty"));
    }
    if !object.starts_with('/') {
        return Err(Problem::new(&path.key("object"), format!("must be an absolute path, found {object:?}")));
    }
    let pattern = match optional(map, "pattern") {
        Some(value) => text(value, &path.key("pattern"))?,
        None => "**".to_string(),
    };
    if pattern != "**" && pattern.contains('/') {
        warnings.push(Problem::new(
            &path.key("pattern"),
            format!("{pattern:?} contains '/', so it matches nothing: patterns match names directly inside the object"),
        ));
    }
    let except = match optional(map, "except") {
        Some(value) => text_list(value, &path.key("except"))?,
        None => Vec::new(),
    };
    let types = match optional(map, "type") {
        Some(value) => read_types(value, &path.key("type"))?,
        None => vec![ObjectType::File, ObjectType::Directory],
    };
    let owner = optional(map, "owner").map(|value| text(value, &path.key("owner"))).transpose()?;
    let group = optional(map, "group").map(|value| text(value, &path.key("group"))).transpose()?;
    let mode = match optional(map, "mode") {
        Some(value) => Some(read_mode(value, &path.key("mode"), locator, warnings)?),
        None => None,
    };
    let acls = match optional(map, "acls") {
        Some(value) => read_acls(value, &path.key("acls"))?,
        None => Vec::new(),
    };
    if acls.iter().any(|entry| entry.is_default) && !types.contains(&ObjectType::Directory) {
        return Err(Problem::new(
            &path.key("acls"),
            "default (d:) entries apply to directories only, but type excludes directory",
        ));
    }
    let context = optional(map, "context").map(|value| read_context(value, &path.key("context"))).transpose()?;
    Ok(Permission { object, pattern, except, types, owner, group, mode, acls, context })
}

fn read_types(value: &Value, path: &FieldPath) -> Result<Vec<ObjectType>, Problem> {
    let mut types = Vec::new();
    let names = text_list(value, path)?;
    let is_list = matches!(untagged(value), Value::Sequence(_));
    for (index, name) in names.iter().enumerate() {
        let kind = match name.as_str() {
            "file" => ObjectType::File,
            "directory" => ObjectType::Directory,
            other => {
                let at = if is_list { path.index(index) } else { path.clone() };
                return Err(Problem::new(&at, format!("unknown object type {other:?}; use file or directory")));
            }
        };
        if !types.contains(&kind) {
            types.push(kind);
        }
    }
    Ok(types)
}

/// Reads `mode` as octal digits: 1–4 of them after left-padding to 3 with zeros, the
/// fourth being setuid/setgid/sticky (§1.4). See the module doc for the YAML 1.1 trap.
pub(crate) fn read_mode(
    value: &Value,
    path: &FieldPath,
    locator: &Locator<'_>,
    warnings: &mut Vec<Problem>,
) -> Result<u32, Problem> {
    let digits = match untagged(value) {
        Value::String(text) => {
            let digits = text.trim().to_string();
            let is_bare = locator.raw_scalar(path).is_some_and(|raw| !raw.starts_with(['"', '\'']));
            if is_bare && digits.len() > 1 && digits.starts_with('0') && digits.bytes().all(|b| b.is_ascii_digit()) {
                warnings.push(Problem::new(
                    path,
                    format!(
                        "bare {digits} is read as the octal digits {digits}, but the CodeDeploy agent reads it as a \
                         YAML 1.1 octal number; write \"{digits}\" or {} so both agree",
                        digits.trim_start_matches('0')
                    ),
                ));
            }
            digits
        }
        Value::Number(number) => {
            // YAML already turned the text into a number; take the digits as written so
            // `644` stays "644" and `0o644`/`0x1a4` are refused instead of reinterpreted.
            let raw = locator.raw_scalar(path).map(str::to_string).unwrap_or_else(|| number.to_string());
            if !raw.bytes().all(|b| b.is_ascii_digit()) || raw.is_empty() {
                return Err(Problem::new(
                    path,
                    format!("{raw} is not a mode; write the octal digits, for example \"644\" or \"0755\""),
                ));
            }
            raw
        }
        other => {
            return Err(Problem::new(path, format!("expected octal digits such as \"644\", found {}", describe(other))))
        }
    };
    parse_mode_digits(&digits).map_err(|message| Problem::new(path, message))
}

/// `"644"` → `0o644`; `"12"` → `0o012`; `"4755"` → `0o4755`.
pub(crate) fn parse_mode_digits(digits: &str) -> Result<u32, ValueError> {
    if digits.is_empty() {
        return Err(ValueError("must not be empty; write octal digits such as \"644\"".to_string()));
    }
    if digits.len() > 4 {
        return Err(ValueError(format!("{digits:?} has {} digits; a mode has 1 to 4 octal digits", digits.len())));
    }
    if let Some(bad) = digits.chars().find(|c| !('0'..='7').contains(c)) {
        return Err(ValueError(format!(
            "{digits:?} is not an octal mode: {bad:?} is not a digit 0-7 (symbolic modes are not supported)"
        )));
    }
    u32::from_str_radix(digits, 8).map_err(|error| ValueError(format!("{digits:?} is not an octal mode: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_digits_follow_the_agent_rules() {
        // Feeds the §1.4 cases; asserts padding, the setuid digit and the exact refusals.
        assert_eq!(parse_mode_digits("644"), Ok(0o644));
        assert_eq!(parse_mode_digits("12"), Ok(0o012));
        assert_eq!(parse_mode_digits("4755"), Ok(0o4755));
        assert_eq!(parse_mode_digits("0644"), Ok(0o644));
        assert_eq!(
            parse_mode_digits("07555"),
            Err(ValueError("\"07555\" has 5 digits; a mode has 1 to 4 octal digits".to_string()))
        );
        assert_eq!(
            parse_mode_digits("0958"),
            Err(ValueError(
                "\"0958\" is not an octal mode: '9' is not a digit 0-7 (symbolic modes are not supported)".to_string()
            ))
        );
        assert!(parse_mode_digits("u+x").is_err());
    }
}
