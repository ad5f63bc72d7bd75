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
        /// What serde found (names the field and the line/column).
        reason: String,
    },
}

impl ModelError {
    pub(crate) fn invalid_input(operation: &str, error: &serde_json::Error) -> Self {
        Self::InvalidInput { operation: operation.to_string(), reason: error.to_string() }
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
            502..=504 => Self::Unavailable,
            400..=499 => Self::BadRequest,
            _ => Self::Internal,
        }
    }
}

/// An operation's error answer: its class and a one-line reason. Over HTTP it is the
/// status and `{"error": message}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct OperationError {
    /// The class.
    pub kind: ErrorKind,
    /// One line a user can act on.
    pub message: String,
}

impl OperationError {
    /// An error of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into() }
    }
}

impl From<ModelError> for OperationError {
    fn from(error: ModelError) -> Self {
        let kind = match error {
            ModelError::UnknownOperation(_) => ErrorKind::NotFound,
            ModelError::InvalidInput { .. } => ErrorKind::BadRequest,
        };
        Self::new(kind, error.to_string())
    }
}
