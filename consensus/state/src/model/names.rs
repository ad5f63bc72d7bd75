//! Resource names (§4.7): what CodeDeploy allows in application, group, configuration
//! and instance names.

/// Longest application, group or configuration name (§4.7).
pub const NAME_LEN_MAX: usize = 100;

/// Why a resource name is refused (§4.7).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidName {
    /// The name is empty.
    #[error("{field} must not be empty")]
    Empty {
        /// Which name ("application name", …).
        field: String,
    },
    /// The name is longer than [`NAME_LEN_MAX`] characters.
    #[error("{field} {name:?} is longer than {NAME_LEN_MAX} characters")]
    TooLong {
        /// Which name.
        field: String,
        /// The name.
        name: String,
    },
    /// The name has a character CodeDeploy does not allow.
    #[error("{field} {name:?} contains {character:?}; allowed are letters, digits and ._+=,@-")]
    BadCharacter {
        /// Which name.
        field: String,
        /// The name.
        name: String,
        /// The first character not allowed.
        character: char,
    },
}

impl From<InvalidName> for String {
    fn from(error: InvalidName) -> Self {
        error.to_string()
    }
}

/// Checks a resource name against CodeDeploy's rules (§4.7): 1–100 characters from
/// `[A-Za-z0-9._+=,@-]`.
///
/// # Errors
/// The rule broken, naming the field and the offending character.
pub fn validate_name(field: &str, name: &str) -> Result<(), InvalidName> {
    if name.is_empty() {
        return Err(InvalidName::Empty { field: field.to_string() });
    }
    if name.chars().count() > NAME_LEN_MAX {
        return Err(InvalidName::TooLong { field: field.to_string(), name: name.to_string() });
    }
    if let Some(character) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || "._+=,@-".contains(*c))) {
        return Err(InvalidName::BadCharacter { field: field.to_string(), name: name.to_string(), character });
    }
    Ok(())
}
