//! ACL entries of a `permissions` entry (`codedeploy.md` §1.4): the setfacl-style
//! spellings the agent accepts, normalized, with base entries refused (the mode sets
//! those, and the Install step derives them when it calls `setfacl --set`).

use std::fmt;

use serde_norway::Value;

use super::error::ValueError;
use super::error::{FieldPath, Problem};
use super::fields::{text_list, untagged};

/// Which ACL entry class an entry sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AclTag {
    /// A named user (`u:alice:rw`).
    User,
    /// A named group (`g:web:r`).
    Group,
    /// The mask (`m::rx`).
    Mask,
    /// Others; only valid as a default entry (`d:o::r`).
    Other,
}

/// One ACL entry, checked and normalized (`[default:]user:alice:rw-`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AclEntry {
    /// A default entry (`d:` or `default:`), inherited by new files in a directory.
    pub is_default: bool,
    /// The entry class.
    pub tag: AclTag,
    /// User or group name; empty for masks, others and default base entries.
    pub qualifier: String,
    /// Read, write, execute.
    pub permissions: [bool; 3],
}

impl fmt::Display for AclEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_default {
            f.write_str("default:")?;
        }
        let tag = match self.tag {
            AclTag::User => "user",
            AclTag::Group => "group",
            AclTag::Mask => "mask",
            AclTag::Other => "other",
        };
        let [read, write, execute] = self.permissions;
        let bit = |on: bool, letter: char| if on { letter } else { '-' };
        write!(f, "{tag}:{}:{}{}{}", self.qualifier, bit(read, 'r'), bit(write, 'w'), bit(execute, 'x'))
    }
}

pub(crate) fn read_acls(value: &Value, path: &FieldPath) -> Result<Vec<AclEntry>, Problem> {
    let is_list = matches!(untagged(value), Value::Sequence(_));
    let entries = text_list(value, path)?;
    entries
        .iter()
        .enumerate()
        .map(|(index, entry)| {
            let at = if is_list { path.index(index) } else { path.clone() };
            parse_acl_entry(entry).map_err(|message| Problem::new(&at, message))
        })
        .collect()
}

/// Parses one setfacl-style entry: `[d[efault]:][u[ser]|g[roup]|m[ask]|o[ther]:][name]:perms`
/// where a two-part entry `name:perms` names a user, and perms are `rwx`/`-` letters or
/// one octal digit. Base entries (`u::`, `g::`, `o::`) are refused: the mode sets them.
pub(crate) fn parse_acl_entry(entry: &str) -> Result<AclEntry, ValueError> {
    let parts: Vec<&str> = entry.split(':').collect();
    if !(2..=4).contains(&parts.len()) {
        return Err(ValueError(format!(
            "{entry:?} is not an ACL entry; write it like \"u:alice:rw\" or \"d:g:web:rx\""
        )));
    }
    let is_default_word = |part: &str| part == "d" || part == "default";
    let (is_default, rest) = match parts.as_slice() {
        [first, rest @ ..] if parts.len() == 4 => {
            if !is_default_word(first) {
                return Err(ValueError(format!("{entry:?} has four parts, so the first must be d or default")));
            }
            (true, rest)
        }
        [first, rest @ ..] if parts.len() == 3 && is_default_word(first) => (true, rest),
        all => (false, all),
    };
    let tag_of = |part: &str| match part {
        "u" | "user" => Some(AclTag::User),
        "g" | "group" => Some(AclTag::Group),
        "m" | "mask" => Some(AclTag::Mask),
        "o" | "other" => Some(AclTag::Other),
        _ => None,
    };
    let (tag, qualifier, permissions) = match rest {
        [tag, qualifier, permissions] => {
            let Some(tag) = tag_of(tag) else {
                return Err(ValueError(format!("{entry:?} has an unknown entry type {tag:?}; use u, g, m or o")));
            };
            (tag, *qualifier, *permissions)
        }
        // Two parts: `m:perms`, `o:perms`, or a user name.
        [name, permissions] => match tag_of(name) {
            Some(tag @ (AclTag::Mask | AclTag::Other)) => (tag, "", *permissions),
            _ => (AclTag::User, *name, *permissions),
        },
        _ => return Err(ValueError(format!("{entry:?} is not an ACL entry; write it like \"u:alice:rw\""))),
    };
    if matches!(tag, AclTag::Mask | AclTag::Other) && !qualifier.is_empty() {
        return Err(ValueError(format!("{entry:?}: mask and other entries take no name")));
    }
    let is_base = match tag {
        AclTag::User | AclTag::Group => qualifier.is_empty(),
        AclTag::Other => true,
        AclTag::Mask => false,
    };
    if is_base && !is_default {
        return Err(ValueError(format!(
            "{entry:?} is a base entry; set owner, group and other permissions with mode instead"
        )));
    }
    let permissions =
        parse_acl_permissions(permissions).map_err(|message| ValueError(format!("{entry:?}: {message}")))?;
    Ok(AclEntry { is_default, tag, qualifier: qualifier.to_string(), permissions })
}

fn parse_acl_permissions(text: &str) -> Result<[bool; 3], ValueError> {
    if let [digit @ b'0'..=b'7'] = text.as_bytes() {
        let bits = digit - b'0';
        return Ok([bits & 4 != 0, bits & 2 != 0, bits & 1 != 0]);
    }
    let mut permissions = [false; 3];
    for letter in text.chars() {
        match letter {
            'r' => permissions[0] = true,
            'w' => permissions[1] = true,
            'x' => permissions[2] = true,
            '-' => {}
            other => {
                return Err(ValueError(format!("{other:?} is not a permission; use r, w, x, - or one octal digit")))
            }
        }
    }
    Ok(permissions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acl_entries_parse_and_normalize() {
        // Parses the accepted spellings; asserts the normalized setfacl text.
        let render = |entry: &str| parse_acl_entry(entry).map(|entry| entry.to_string());
        assert_eq!(render("u:alice:rw"), Ok("user:alice:rw-".to_string()));
        assert_eq!(render("alice:5"), Ok("user:alice:r-x".to_string()));
        assert_eq!(render("g:web:r-x"), Ok("group:web:r-x".to_string()));
        assert_eq!(render("m::rx"), Ok("mask::r-x".to_string()));
        assert_eq!(render("d:u:bob:rwx"), Ok("default:user:bob:rwx".to_string()));
        assert_eq!(render("d:u::rwx"), Ok("default:user::rwx".to_string()));
        assert_eq!(render("default:o::r"), Ok("default:other::r--".to_string()));
    }

    #[test]
    fn acl_base_and_malformed_entries_are_refused() {
        // Feeds base entries and malformed ones; asserts each is refused with its reason.
        let base = "is a base entry; set owner, group and other permissions with mode instead";
        assert_eq!(parse_acl_entry("u::rwx"), Err(ValueError(format!("\"u::rwx\" {base}"))));
        assert_eq!(parse_acl_entry("g::r"), Err(ValueError(format!("\"g::r\" {base}"))));
        assert_eq!(parse_acl_entry("o::r"), Err(ValueError(format!("\"o::r\" {base}"))));
        assert_eq!(parse_acl_entry("o:r"), Err(ValueError(format!("\"o:r\" {base}"))));
        assert_eq!(
            parse_acl_entry("u:alice:rwz"),
            Err(ValueError("\"u:alice:rwz\": 'z' is not a permission; use r, w, x, - or one octal digit".to_string()))
        );
        assert!(parse_acl_entry("x:y:z:w:v").is_err());
        assert!(parse_acl_entry("q:alice:rw:x").is_err());
        assert!(parse_acl_entry("m:alice:rw").is_err());
    }
}
