//! Why a command changed nothing ([`ApplyError`]), by class.

use serde::{Deserialize, Serialize};

/// Why a command changed nothing. `kind` tells the API which HTTP status to use.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ApplyError {
    /// Class of error.
    pub kind: ApplyErrorKind,
    /// What is wrong, naming the offending value.
    pub message: String,
}

/// Classes of apply errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ApplyErrorKind {
    /// A named thing does not exist (404).
    NotFound,
    /// It exists already (409).
    AlreadyExists,
    /// The state does not allow it now (409).
    Conflict,
    /// The request itself is invalid (400).
    Invalid,
}

impl ApplyError {
    /// A NotFound error.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self { kind: ApplyErrorKind::NotFound, message: message.into() }
    }

    /// An AlreadyExists error.
    pub fn exists(message: impl Into<String>) -> Self {
        Self { kind: ApplyErrorKind::AlreadyExists, message: message.into() }
    }

    /// A Conflict error.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self { kind: ApplyErrorKind::Conflict, message: message.into() }
    }

    /// An Invalid error.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self { kind: ApplyErrorKind::Invalid, message: message.into() }
    }
}
