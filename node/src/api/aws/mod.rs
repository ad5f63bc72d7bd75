//! CodeDeploy's own protocol on every node's API port: AWS JSON 1.1 (`POST /`,
//! `X-Amz-Target: CodeDeploy_20141006.<Operation>`), signed with SigV4 by the cluster's
//! access keys, so the AWS CLI, boto3 and the SDKs drive fleetmesh unchanged.
//!
//! ```text
//!  POST / ──▶ target ──▶ SigV4: Signed ──▶ Operation (fleetmesh_model::aws::parse)
//!               │                 │
//!               │                 ├─ this node answers and holds the seal key (a voter):
//!               │                 │    verify here ──▶ answer here
//!               │                 └─ else: forward the operation with the signature, the
//!               │                      body and the target; the leader checks all three
//!               └─ Authorization: Bearer <token> works too (the fleetmesh CLI's token)
//!  answer ──▶ {"__type": "<AWS exception>", "message": …} or the output, revisions
//!             pushed to the cluster shown as objects of the bucket `fleetmesh`
//! ```
//!
//! Who checks a signature: only a voter can open a key's secret (sealed under the CA
//! seal key, like the CA's private key), so an agent sends the canonical request and the
//! signature on to the leader, which verifies them and that the operation it is asked to
//! run is the one signed (`check_forwarded`).

mod keys;

use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use fleetmesh_model::sigv4::{self, AuthError, RequestParts, SignedRequest};
use fleetmesh_model::{aws, Access, Operation, OperationError};
use fleetmesh_state::model::members::Actor;
use fleetmesh_state::FeatureLevel;
pub(super) use keys::{create_access_key, delete_access_key};

use super::{Api, ApiError};

/// The protocol's content type.
const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
/// Largest body of a request of the protocol (CodeDeploy's inputs are a few KiB).
pub const WIRE_BODY_BYTES_MAX: usize = 1 << 20;

/// An error answer of the protocol.
#[derive(Debug)]
struct WireError {
    status: u16,
    name: String,
    message: String,
}

impl WireError {
    fn of(operation: &str, error: &OperationError) -> Self {
        Self { status: aws::status(error), name: aws::exception(operation, error), message: error.message.clone() }
    }

    fn auth(error: &AuthError) -> Self {
        Self { status: 403, name: error.exception().to_string(), message: error.to_string() }
    }
}

impl IntoResponse for WireError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "__type": self.name, "message": fleetmesh_model::bounds::shorten_echoes(&self.message) });
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST);
        (status, [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))], body.to_string()).into_response()
    }
}

/// An access key's error as the operations give it: 403 and AWS's name.
fn auth_refusal(error: &AuthError) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, error.to_string()).with_code(error.exception())
}

/// `POST /`: one operation of the protocol.
pub(super) async fn handle(
    State(api): State<Arc<Api>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match answer(&api, &method, &uri, &headers, body).await {
        Ok(json) => {
            ([(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))], json.to_string()).into_response()
        }
        Err(error) => error.into_response(),
    }
}

async fn answer(
    api: &Arc<Api>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
) -> Result<serde_json::Value, WireError> {
    let body = to_bytes(body, WIRE_BODY_BYTES_MAX).await.map_err(|_| WireError {
        status: 413,
        name: "SerializationException".into(),
        message: format!("the body is larger than {WIRE_BODY_BYTES_MAX} bytes"),
    })?;
    let target = headers.get("x-amz-target").and_then(|value| value.to_str().ok()).unwrap_or_default().to_string();
    let level = api.node.cluster_feature_level();
    if level < FeatureLevel::AWS_PROTOCOL {
        return Err(WireError {
            status: 400,
            name: "UnknownOperationException".into(),
            message: format!(
                "the AWS protocol needs cluster feature level {}, and the cluster runs at level {level}: upgrade every \
                 voter to this release first",
                FeatureLevel::AWS_PROTOCOL
            ),
        });
    }
    let operation_name = target.strip_prefix(aws::TARGET_PREFIX).unwrap_or(&target).to_string();
    let credential = credential(method, uri, headers, &body, &target).map_err(|error| WireError::auth(&error))?;
    let operation = aws::parse(&target, &body).map_err(|error| WireError::of(&operation_name, &error))?;
    operation.check().map_err(|error| WireError::of(&operation_name, &error))?;
    let answered = match credential {
        Credential::Token(token) => {
            super::may_call(api.node.token_kind(&token), operation.access() != Access::Write)
                .map_err(|error| WireError::of(&operation_name, &error.into()))?;
            super::route::answer(api, operation, false, &token).await.unwrap_or_else(|| {
                Err(ApiError::unavailable(
                    "the leader runs a release without the AWS protocol; retry after the upgrade",
                ))
            })
        }
        Credential::Signed(signed) => answer_signed(api, operation, signed).await,
    };
    let output = answered.map_err(|error| WireError::of(&operation_name, &error.into()))?;
    let mut json = output.to_json();
    aws::revisions_out(&mut json);
    Ok(json)
}

/// Who the client is.
enum Credential {
    /// The fleetmesh CLI's bearer token.
    Token(String),
    /// A SigV4 signature, with what it binds.
    Signed(Box<SignedRequest>),
}

fn credential(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    target: &str,
) -> Result<Credential, AuthError> {
    if let Some(token) = super::bearer(headers) {
        return Ok(Credential::Token(token.to_string()));
    }
    let parts = RequestParts {
        method: method.as_str(),
        path: uri.path(),
        query: uri.query().unwrap_or_default(),
        headers: headers.iter().map(|(name, value)| (name.as_str(), value.as_bytes())).collect(),
        body,
    };
    let signed = sigv4::signed(&parts)?;
    let body = String::from_utf8(body.to_vec()).map_err(|_| AuthError::Invalid("the body is not UTF-8".into()))?;
    Ok(Credential::Signed(Box::new(SignedRequest { signed, target: target.to_string(), body })))
}

/// Answers a signed operation: here when this node answers it and can open the key's
/// secret, else on the leader, which checks the signature itself.
async fn answer_signed(
    api: &Arc<Api>,
    operation: Operation,
    signed: Box<SignedRequest>,
) -> Result<fleetmesh_model::Output, ApiError> {
    // Boxed: the operation futures are deep, and nesting them in the retry loop's
    // closure passes the compiler's layout depth limit.
    super::route::through_leader_changes(|| Box::pin(answer_signed_once(api, operation.clone(), signed.clone()))).await
}

/// One try of [`answer_signed`].
async fn answer_signed_once(
    api: &Arc<Api>,
    operation: Operation,
    signed: Box<SignedRequest>,
) -> Result<fleetmesh_model::Output, ApiError> {
    if api.answers(&operation, false) && keys::verifies_here(&api.node) {
        let by = keys::verify_here(&api.node, &signed.signed).map_err(|error| auth_refusal(&error))?;
        return api.answer_here(operation, false, Some(&by)).await;
    }
    api.forward_as(operation, false, "", Some(signed)).await
}

/// Checks a signed operation a member forwarded: the signature binds the body and
/// target it came with, they parse to `operation`, and the signature is the key's.
///
/// # Errors
/// 403 with AWS's name when any of the three fails.
pub(super) fn check_forwarded(api: &Api, signed: &SignedRequest, operation: &Operation) -> Result<Actor, ApiError> {
    let body = signed.body.as_bytes();
    let same = sigv4::binds(&signed.signed, &signed.target, body)
        && aws::parse(&signed.target, body).is_ok_and(|parsed| parsed == *operation);
    if !same {
        return Err(auth_refusal(&AuthError::Invalid(
            "the forwarded operation is not the one the client signed".into(),
        )));
    }
    keys::verify_here(&api.node, &signed.signed).map_err(|error| auth_refusal(&error))
}
