//! The SELinux `context` of a `permissions` entry (`codedeploy.md` §1.4): user (`name`
//! as the agent reads it, or `user` as the docs write it), required type, and an
//! optional MLS/MCS range checked for shape. Roles are refused, as by the agent.

use serde_norway::Value;

use super::error::ValueError;
use super::error::{FieldPath, Problem};
use super::fields::{mapping, optional, required, text};

/// An SELinux file context (`context`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeLinuxContext {
    /// SELinux user (`name`, which the agent reads; `user`, which the docs show).
    pub user: Option<String>,
    /// SELinux type (required).
    pub kind: String,
    /// MLS/MCS range such as `s0-s3:c0.c5,c7`.
    pub range: Option<String>,
}

pub(crate) fn read_context(value: &Value, path: &FieldPath) -> Result<SeLinuxContext, Problem> {
    let map = mapping(value, path, "a mapping with \"type\"")?;
    if optional(map, "role").is_some() {
        return Err(Problem::new(&path.key("role"), "SELinux roles are not supported; remove role"));
    }
    let name = optional(map, "name").map(|value| text(value, &path.key("name"))).transpose()?;
    let user = optional(map, "user").map(|value| text(value, &path.key("user"))).transpose()?;
    let user = match (name, user) {
        (Some(name), Some(user)) if name != user => {
            return Err(Problem::new(
                path,
                format!("name {name:?} and user {user:?} both set the SELinux user; keep one"),
            ));
        }
        (name, user) => name.or(user),
    };
    let kind = text(required(map, "type", path)?, &path.key("type"))?;
    let range = optional(map, "range").map(|value| text(value, &path.key("range"))).transpose()?;
    if let Some(range) = &range {
        check_range(range).map_err(|message| Problem::new(&path.key("range"), message))?;
    }
    Ok(SeLinuxContext { user, kind, range })
}

/// Checks an MLS/MCS range: `s<low>[-s<high>][:<categories>]` where categories are
/// `c<n>` or `c<n>.c<m>` separated by commas, `n <= 1023`, ranges ascending.
fn check_range(range: &str) -> Result<(), ValueError> {
    let invalid = |why: &str| format!("{range:?} is not an SELinux range ({why}); write it like \"s0-s3:c0.c5,c7\"");
    let number = |part: &str, prefix: char| -> Option<u32> {
        let digits = part.strip_prefix(prefix)?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    };
    let (sensitivity, categories) = match range.split_once(':') {
        Some((sensitivity, categories)) => (sensitivity, Some(categories)),
        None => (range, None),
    };
    let (low, high) = sensitivity.split_once('-').unwrap_or((sensitivity, sensitivity));
    let (Some(low), Some(high)) = (number(low, 's'), number(high, 's')) else {
        return Err(ValueError(invalid("bad sensitivity")));
    };
    if high < low {
        return Err(ValueError(invalid("high sensitivity below low")));
    }
    let Some(categories) = categories else {
        return Ok(());
    };
    for category in categories.split(',') {
        let (first, last) = category.split_once('.').unwrap_or((category, category));
        match (number(first, 'c'), number(last, 'c')) {
            (Some(first), Some(last)) if first <= last && last <= 1023 => {}
            _ => return Err(ValueError(invalid(&format!("bad category {category:?}")))),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_checked() {
        // Feeds valid and invalid MLS ranges; asserts acceptance and refusal.
        assert!(check_range("s0").is_ok());
        assert!(check_range("s0-s3:c0.c5,c7").is_ok());
        assert!(check_range("s3-s0").is_err());
        assert!(check_range("s0:c5.c1").is_err());
        assert!(check_range("s0:c1024").is_err());
        assert!(check_range("x0").is_err());
    }
}
