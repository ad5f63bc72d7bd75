//! What goes wrong with an operation: a request that does not parse ([`ModelError`]),
//! and the typed error answer every operation can give ([`OperationError`]).

use serde::{Deserialize, Serialize};

/// A request that is not a valid operation.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// No operation has this name.
    #[error("unknown operation {0}")]
    UnknownOperation(String),
    /// The body is not the operation's input.
    #[error("invalid {operation} request: {reason}")]
    InvalidInput {
        /// The operation.
        operation: String,
        /// The field that is wrong, as a path (`onPremisesInstanceTagFilters[0].Key`);
        /// none when the body as a whole is (not JSON, not an object).
        field: Option<String>,
        /// What serde found (names the field and the line/column), echoed values cut short.
        reason: String,
    },
}

impl ModelError {
    /// The error serde gave for `operation`'s body, with the field it names.
    pub(crate) fn invalid_input(operation: &str, error: &serde_path_to_error::Error<serde_json::Error>) -> Self {
        let inner = error.inner().to_string();
        let parent = error.path().to_string();
        let parent = if parent == "." { String::new() } else { parent };
        // serde names a missing, unknown or repeated member in its message, not its path.
        let named = ["missing field `", "unknown field `", "duplicate field `"]
            .iter()
            .find_map(|prefix| inner.strip_prefix(prefix))
            .and_then(|rest| rest.split_once('`'))
            .map(|(member, _)| member);
        // The path ends at an unknown member already; a missing one is not in it.
        // A member of a flattened struct names itself: `revisionId: ...` (strict.rs).
        let prefixed = inner
            .split_once(": ")
            .map(|(head, _)| head)
            .filter(|head| !head.is_empty() && head.chars().all(|c| c.is_ascii_alphanumeric() || "[]._".contains(c)));
        let field = match named {
            Some(member) if parent == member || parent.ends_with(&format!(".{member}")) => Some(parent),
            Some(member) if parent.is_empty() => Some(member.to_string()),
            Some(member) => Some(format!("{parent}.{member}")),
            None if parent.is_empty() || parent.contains('?') => prefixed.map(ToString::to_string),
            None => Some(parent),
        };
        let field = field.map(|field| crate::bounds::cut(&field));
        let reason = match &field {
            Some(field) if named.is_none() && prefixed.is_none() => format!("{field}: {inner}"),
            _ => inner,
        };
        Self::InvalidInput { operation: operation.to_string(), field, reason: crate::bounds::shorten_echoes(&reason) }
    }

    /// The field that is wrong, when one is.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::UnknownOperation(_) => None,
            Self::InvalidInput { field, .. } => field.as_deref(),
        }
    }
}

/// The class of an error answer; each has its HTTP status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorKind {
    /// 400: the input is wrong.
    BadRequest,
    /// 401: no or a wrong admin token.
    Unauthorized,
    /// 404: a named resource does not exist.
    NotFound,
    /// 409: it exists already, or conflicts with the current state.
    Conflict,
    /// 410: what was asked for is no longer kept (purged events).
    Gone,
    /// 500: a fault of fleetmesh.
    Internal,
    /// 503: no leader, no quorum, or leadership changed; retry.
    Unavailable,
}

impl ErrorKind {
    /// The HTTP status.
    pub fn status(self) -> u16 {
        match self {
            Self::BadRequest => 400,
            Self::Unauthorized => 401,
            Self::NotFound => 404,
            Self::Conflict => 409,
            Self::Gone => 410,
            Self::Internal => 500,
            Self::Unavailable => 503,
        }
    }

    /// The kind of an HTTP status (unknown 4xx are bad requests, unknown 5xx internal).
    pub fn from_status(status: u16) -> Self {
        match status {
            401 | 403 => Self::Unauthorized,
            404 => Self::NotFound,
            409 => Self::Conflict,
            410 => Self::Gone,
            502..=504 => Self::Unavailable,
            400..=499 => Self::BadRequest,
            _ => Self::Internal,
        }
    }
}

/// An operation's error answer: its class and a one-line reason. Over HTTP it is the
/// status and `{"error": message}`, with `"field"` naming the input field that is
/// wrong when one is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct OperationError {
    /// The class.
    pub kind: ErrorKind,
    /// One line a user can act on.
    pub message: String,
    /// The input field that is wrong (`deploymentGroupName`), when one is. Absent in
    /// answers of releases before it (between nodes the error travels as JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// AWS's exception name for it (`UnrecognizedClientException`), when the answering
    /// node knows one better than the AWS protocol's reading of kind and field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

impl OperationError {
    /// An error of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into(), field: None, code: None }
    }

    /// A bad request because of `field`: the message is `"<field>: <reason>"`.
    pub fn invalid(field: &str, reason: impl std::fmt::Display) -> Self {
        Self {
            kind: ErrorKind::BadRequest,
            message: format!("{field}: {reason}"),
            field: Some(field.to_string()),
            code: None,
        }
    }
}

impl From<ModelError> for OperationError {
    fn from(error: ModelError) -> Self {
        let kind = match error {
            ModelError::UnknownOperation(_) => ErrorKind::NotFound,
            ModelError::InvalidInput { .. } => ErrorKind::BadRequest,
        };
        let field = error.field().map(ToString::to_string);
        Self { kind, message: error.to_string(), field, code: None }
    }
}
