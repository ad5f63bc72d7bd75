//! API errors: an HTTP status and `{"error": "..."}`, with `"field"` naming the input
//! field that is wrong when one is. Every error answer is JSON: the answers axum and
//! its extractors give themselves (unknown method, a body too large, bad JSON for a
//! `Json` extractor, a bad path or query) are rewritten by [`json_errors`].

use axum::body::{to_bytes, Body};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use fleetmesh_model::{bounds, ErrorKind, ModelError, OperationError};
use fleetmesh_state::{ApplyError, ApplyErrorKind};

use crate::runtime::ProposeError;

/// An error answer.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// One-line reason.
    pub message: String,
    /// The input field that is wrong, when one is.
    pub field: Option<String>,
    /// AWS's exception name, when it is known better than from status and field
    /// (`fleetmesh_model::aws::exception`).
    pub code: Option<String>,
}

impl ApiError {
    /// Any status.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into(), field: None, code: None }
    }

    /// 400 because of `field`: the message is `"<field>: <reason>"`.
    pub fn invalid(field: &str, reason: impl std::fmt::Display) -> Self {
        OperationError::invalid(field, reason).into()
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// This error with AWS's exception name `code`.
    pub fn with_code(mut self, code: &str) -> Self {
        self.code = Some(code.to_string());
        self
    }

    /// 500: a fault of fleetmesh.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// 503.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }

    /// This leader cannot seal `what` now: 503 while the cluster bootstraps or the seal
    /// key has not reached it (retry), 500 when the key file is unreadable.
    pub fn sealer_unavailable(error: &crate::runtime::ca_seal::CaKeyError, what: &str) -> Self {
        use crate::runtime::ca_seal::CaKeyError;
        match error {
            CaKeyError::NoCa => Self::unavailable("the cluster is still bootstrapping; retry"),
            CaKeyError::NoSealKey => {
                Self::unavailable(format!("this leader holds no CA seal key yet to seal {what} with; retry"))
            }
            other => Self::internal(other.to_string()),
        }
    }

    /// The JSON body (the message cut to `bounds::MESSAGE_CHARS_MAX` characters).
    pub fn body(&self) -> String {
        let error = match self.message.char_indices().nth(bounds::MESSAGE_CHARS_MAX) {
            Some((end, _)) => format!("{}…", &self.message[..end]),
            None => self.message.clone(),
        };
        match &self.field {
            Some(field) => serde_json::json!({ "error": error, "field": field }),
            None => serde_json::json!({ "error": error }),
        }
        .to_string()
    }
}

/// A write reached a node that no longer leads (openraft refused it, or dropped its
/// uncommitted entry): nothing of it was applied.
pub(super) const LEADERSHIP_CHANGED: &str = "leadership changed during the request; retry";

/// No leader is known to send an operation to: nothing was sent.
pub(super) const NO_LEADER: &str = "no leader is elected (no quorum of voters is reachable); retry later";

/// The leader a node knew could not be connected to (it died, or moved): nothing was sent.
pub(super) const LEADER_UNREACHABLE: &str = "cannot connect to the leader, nothing was sent";

/// A consistent read whose node could not confirm it leads: nothing was read.
pub(super) const LEADERSHIP_UNCONFIRMED: &str = "cannot confirm this node still leads (retry)";

impl ApiError {
    /// Whether this answer says only that leadership was moving, with nothing applied:
    /// the same operation can be sent again, to whichever node leads next. True of
    /// answers forwarded from another node too (they keep their message).
    pub(super) fn is_leader_change(&self) -> bool {
        self.status == StatusCode::SERVICE_UNAVAILABLE
            && (self.message == LEADERSHIP_CHANGED
                || self.message == NO_LEADER
                || self.message.starts_with(LEADERSHIP_UNCONFIRMED)
                || self.message.starts_with(LEADER_UNREACHABLE))
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
            ProposeError::NotLeader { .. } => Self::unavailable(LEADERSHIP_CHANGED),
            ProposeError::NoQuorum(reason) => Self::unavailable(format!("no quorum: {reason}")),
            ProposeError::FeatureLevel { .. } => Self::new(StatusCode::CONFLICT, error.to_string()),
            ProposeError::Fatal(reason) => Self::new(StatusCode::INTERNAL_SERVER_ERROR, reason),
        }
    }
}

impl From<OperationError> for ApiError {
    fn from(error: OperationError) -> Self {
        let status = StatusCode::from_u16(error.kind.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        Self { status, message: error.message, field: error.field, code: error.code }
    }
}

impl From<ApiError> for OperationError {
    fn from(error: ApiError) -> Self {
        let mut answer = Self::new(ErrorKind::from_status(error.status.as_u16()), error.message);
        answer.field = error.field;
        answer.code = error.code;
        answer
    }
}

impl From<ModelError> for ApiError {
    fn from(error: ModelError) -> Self {
        OperationError::from(error).into()
    }
}

/// Most bytes of a non-JSON error answer read to repeat its text.
const REWRITTEN_BODY_BYTES_MAX: usize = 4096;

/// Rewrites an error answer that is not JSON (axum's own: 404/405 of the router, 413
/// of the body limit, 400/415/422 of an extractor) as `{"error": "<its text>"}`, status
/// and other headers kept. Answers that are JSON already, and successes, pass as they are.
pub(super) async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json") || value.starts_with("application/x-amz-json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = to_bytes(body, REWRITTEN_BODY_BYTES_MAX).await.map(|bytes| String::from_utf8_lossy(&bytes).into_owned());
    let text = text.unwrap_or_default();
    let text = text.trim();
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("request refused").to_string()
    } else {
        bounds::shorten_echoes(text)
    };
    let body = ApiError::new(status, message).body();
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}
