//! HTTP requests tunnelled to the leader (`Request::Api`): how releases before feature
//! level 3 forward API calls. A node of this release relays a client's request this way
//! while the cluster is below level 3 (its leader may not know typed operations), and
//! answers such requests from nodes of those releases.

use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tower::ServiceExt;

use super::route::call_leader;
use super::{Api, ApiError, FORWARD_BODY_BYTES_MAX};
use crate::runtime::identity::{hashes_equal, secret_hash};
use crate::runtime::protocol::{ApiRequest, ApiResponse, Request as NodeRequest, Response as NodeResponse};

/// Relays `request` to the leader and its answer back, as they are.
pub(super) async fn relay(api: &Api, request: ApiRequest) -> Response {
    let answer = call_leader(
        &api.node,
        || NodeRequest::Api(request.clone()),
        |response| match response {
            NodeResponse::Api(answer) => Ok(answer),
            other => Err(Box::new(other)),
        },
    )
    .await;
    match answer {
        Ok(answer) => response(answer),
        Err(error) => error.into_response(),
    }
}

fn response(answer: ApiResponse) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_GATEWAY);
    (status, [(axum::http::header::CONTENT_TYPE, "application/json")], answer.body).into_response()
}

/// Runs an HTTP request tunnelled by a node of an older release on this node (the
/// leader), after checking the client's token again.
pub(super) async fn answer(api: Arc<Api>, request: ApiRequest) -> ApiResponse {
    if !hashes_equal(&secret_hash(&request.token), &api.node.admin_token_hash()) {
        return ApiResponse {
            status: 401,
            body: ApiError::new(StatusCode::UNAUTHORIZED, "the admin token is wrong").body(),
        };
    }
    let built = axum::http::Request::builder()
        .method(request.method.as_str())
        .uri(request.uri.as_str())
        .header(axum::http::header::CONTENT_TYPE, "application/json")
        .header(axum::http::header::AUTHORIZATION, format!("Bearer {}", request.token))
        .extension(super::Relayed)
        .body(Body::from(request.body));
    let Ok(http_request) = built else {
        return ApiResponse { status: 400, body: ApiError::bad_request("malformed forwarded request").body() };
    };
    let response = match super::operations_router(api).oneshot(http_request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let status = response.status().as_u16();
    let body = match to_bytes(response.into_body(), FORWARD_BODY_BYTES_MAX).await {
        Ok(body) => String::from_utf8_lossy(&body).into_owned(),
        Err(error) => ApiError::internal(format!("cannot read the answer: {error}")).body(),
    };
    ApiResponse { status, body }
}
