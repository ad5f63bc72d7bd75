//! What can be wrong with an appspec, and where: the error a user reads when a revision
//! is refused. Every message names the file, the field path (`hooks.AfterInstall[0].timeout`)
//! and, when the YAML parser can place it, the line, so a bad bundle is fixed without
//! guessing (DESIGN.md "Bad input gets a clear error").

use std::fmt;

/// One step of a field path: a mapping key or a list index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Segment {
    /// A mapping key, e.g. `hooks`.
    Key(String),
    /// A list index, e.g. `[0]`.
    Index(usize),
}

/// Where a value sits in the document, e.g. `hooks.AfterInstall[0].timeout`. The empty
/// path is the document itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct FieldPath {
    segments: Vec<Segment>,
}

impl FieldPath {
    /// The document root.
    pub(crate) fn root() -> Self {
        Self::default()
    }

    /// This path extended by a mapping key.
    pub(crate) fn key(&self, key: &str) -> Self {
        let mut segments = self.segments.clone();
        segments.push(Segment::Key(key.to_string()));
        Self { segments }
    }

    /// This path extended by a list index.
    pub(crate) fn index(&self, index: usize) -> Self {
        let mut segments = self.segments.clone();
        segments.push(Segment::Index(index));
        Self { segments }
    }

    /// The steps from the root.
    pub(crate) fn segments(&self) -> &[Segment] {
        &self.segments
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (position, segment) in self.segments.iter().enumerate() {
            match segment {
                Segment::Key(key) if position == 0 => write!(f, "{key}")?,
                Segment::Key(key) => write!(f, ".{key}")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// A validation finding before it is placed on a line: the field and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Problem {
    /// The offending value (or, for a missing key, the mapping that lacks it).
    pub(crate) path: FieldPath,
    /// What is wrong, lowercase, saying what to write instead when that helps.
    pub(crate) message: String,
}

/// What is wrong with one value, before it is placed at a field path: the message of a
/// [`Problem`] found by a parser of one value (a mode, an ACL entry, an SELinux range).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct ValueError(pub(crate) String);

impl From<ValueError> for String {
    fn from(error: ValueError) -> Self {
        error.0
    }
}

impl Problem {
    /// A finding at `path`.
    pub(crate) fn new(path: &FieldPath, message: impl Into<String>) -> Self {
        Self { path: path.clone(), message: message.into() }
    }
}

/// Why an appspec was refused.
///
/// Rendered as `<file>[ line <n>]: [<field path>: ]<problem>`, for example
/// `appspec.yml line 7: hooks.AfterInstall[0]: missing "location"`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AppSpecError {
    /// The file holds nothing but blanks or comments.
    #[error("{file}: the file is empty; an appspec needs at least \"version: 0.0\" and \"os: linux\"")]
    Empty {
        /// The file name as given to [`parse`](super::parse).
        file: String,
    },
    /// The file is larger than any appspec has a reason to be.
    #[error("{file}: the file is {bytes} bytes, more than the {bytes_max} bytes an appspec may have")]
    TooLarge {
        /// The file name.
        file: String,
        /// Its size.
        bytes: usize,
        /// The cap, [`APPSPEC_BYTES_MAX`](super::APPSPEC_BYTES_MAX).
        bytes_max: usize,
    },
    /// The text is not YAML (the parser's own explanation follows).
    #[error("{}: not valid YAML: {message}", place(file, *line))]
    Syntax {
        /// The file name.
        file: String,
        /// 1-based line the parser stopped at, when it says.
        line: Option<usize>,
        /// The parser's explanation.
        message: String,
    },
    /// The YAML is well formed but breaks an appspec rule (`codedeploy.md` §1).
    #[error("{}: {}{problem}", place(file, *line), field_prefix(field))]
    Invalid {
        /// The file name.
        file: String,
        /// 1-based line of the offending value, when the parser can place it.
        line: Option<usize>,
        /// Field path such as `hooks.AfterInstall[0].timeout`; empty for the document.
        field: String,
        /// What is wrong and, when it helps, what to write instead.
        problem: String,
    },
}

/// `appspec.yml line 7` or just `appspec.yml`.
pub(crate) fn place(file: &str, line: Option<usize>) -> String {
    match line {
        Some(line) => format!("{file} line {line}"),
        None => file.to_string(),
    }
}

fn field_prefix(field: &str) -> String {
    if field.is_empty() {
        String::new()
    } else {
        format!("{field}: ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_render_like_the_yaml_they_point_into() {
        // Builds a nested path and a root path; asserts the dotted/indexed rendering.
        let path = FieldPath::root().key("hooks").key("AfterInstall").index(0).key("timeout");
        assert_eq!(path.to_string(), "hooks.AfterInstall[0].timeout");
        assert_eq!(FieldPath::root().to_string(), "");
        assert_eq!(FieldPath::root().key("files").index(2).to_string(), "files[2]");
    }

    #[test]
    fn errors_omit_missing_line_and_root_field() {
        // Renders an error without a line and without a field; asserts no dangling separators.
        let error = AppSpecError::Invalid {
            file: "appspec.yml".into(),
            line: None,
            field: String::new(),
            problem: "missing \"os\"".into(),
        };
        assert_eq!(error.to_string(), "appspec.yml: missing \"os\"");
    }
}
