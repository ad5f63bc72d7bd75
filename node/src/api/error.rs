//! API errors: an HTTP status and `{"error": "..."}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use fleetmesh_model::{ErrorKind, ModelError, OperationError};
use fleetmesh_state::{ApplyError, ApplyErrorKind};

use crate::runtime::ProposeError;

/// An error answer.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// One-line reason.
    pub message: String,
}

impl ApiError {
    /// Any status.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into() }
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// 500: a fault of fleetmesh.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// 503.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }

    /// The JSON body.
    pub fn body(&self) -> String {
        serde_json::json!({ "error": self.message }).to_string()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, [(axum::http::header::CONTENT_TYPE, "application/json")], self.body()).into_response()
    }
}

impl From<ApplyError> for ApiError {
    fn from(error: ApplyError) -> Self {
        let status = match error.kind {
            ApplyErrorKind::NotFound => StatusCode::NOT_FOUND,
            ApplyErrorKind::AlreadyExists | ApplyErrorKind::Conflict => StatusCode::CONFLICT,
            ApplyErrorKind::Invalid => StatusCode::BAD_REQUEST,
        };
        Self::new(status, error.message)
    }
}

impl From<ProposeError> for ApiError {
    fn from(error: ProposeError) -> Self {
        match error {
            ProposeError::NotLeader { .. } => Self::unavailable("leadership changed during the request; retry"),
            ProposeError::NoQuorum(reason) => Self::unavailable(format!("no quorum: {reason}")),
            ProposeError::FeatureLevel { .. } => Self::new(StatusCode::CONFLICT, error.to_string()),
            ProposeError::Fatal(reason) => Self::new(StatusCode::INTERNAL_SERVER_ERROR, reason),
        }
    }
}

impl From<OperationError> for ApiError {
    fn from(error: OperationError) -> Self {
        let status = StatusCode::from_u16(error.kind.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        Self::new(status, error.message)
    }
}

impl From<ApiError> for OperationError {
    fn from(error: ApiError) -> Self {
        Self::new(ErrorKind::from_status(error.status.as_u16()), error.message)
    }
}

impl From<ModelError> for ApiError {
    fn from(error: ModelError) -> Self {
        OperationError::from(error).into()
    }
}
