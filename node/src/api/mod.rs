//! The HTTP/JSON API every node serves.
//!
//! Every endpoint but `/healthz` needs `Authorization: Bearer <admin token>`. A node
//! answers `/healthz`, `/metrics` and chunk uploads itself; every other call is
//! handled by the leader: a follower forwards it over the cluster's mutual-TLS
//! transport and relays the answer, so a client never has to find the leader.
//!
//! ```text
//!  client ──HTTP──▶ any node ──auth──┬─ /healthz, /metrics, /v1/uploads/* (local)
//!                                    └─ everything else ──▶ leader_router (here, or on the leader via Request::Api)
//! ```

mod cluster;
pub mod deploy;
mod error;
mod metrics;
mod uploads;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
pub use error::ApiError;
use tower::ServiceExt;
use tracing::warn;

use crate::leader::Leader;
use crate::revision::service::RevisionService;
use crate::runtime::identity::{hashes_equal, secret_hash};
use crate::runtime::protocol::{ApiRequest, ApiResponse, Request as NodeRequest, Response as NodeResponse};
use crate::runtime::{Family, Node, Refusal, Service};

/// Largest request body accepted for forwarding (chunk uploads are not forwarded).
pub const FORWARD_BODY_BYTES_MAX: usize = 64 << 20;

/// What the API's handlers work with: the node, its leader duties (cluster view,
/// download progress) and its revision store, when it has one.
pub struct Api {
    node: Arc<Node>,
    leader: Arc<Leader>,
    revisions: Option<Arc<RevisionService>>,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Api").field("node", &self.node.id()).finish_non_exhaustive()
    }
}

impl Api {
    /// The API of `leader`'s node, registered to answer operations forwarded by other
    /// nodes ([`Family::Api`]).
    pub fn start(leader: &Arc<Leader>, revisions: Option<Arc<RevisionService>>) -> Arc<Self> {
        let api = Arc::new(Self { node: leader.node().clone(), leader: leader.clone(), revisions });
        api.node.register(Family::Api, api.clone());
        api
    }
}

impl Service for Api {
    fn handle(
        self: Arc<Self>,
        caller: fleetmesh_transport::Caller,
        request: NodeRequest,
        _payload: axum::body::Bytes,
    ) -> fleetmesh_transport::BoxFuture<'static, Result<(NodeResponse, axum::body::Bytes), Refusal>> {
        Box::pin(async move {
            let none = axum::body::Bytes::new();
            match (caller, request) {
                (fleetmesh_transport::Caller::Node(_), NodeRequest::Api(api_request)) => {
                    if !self.node.is_leader() {
                        return Ok(crate::runtime::dispatch::not_leader(&self.node));
                    }
                    Ok((NodeResponse::Api(handle_forwarded(self, api_request).await), none))
                }
                (_, other) => Err(Refusal::Malformed(format!("not an API request: {other:?}"))),
            }
        })
    }
}

/// Serves the API on `listener` until `shutdown` resolves.
pub async fn serve(
    api: Arc<Api>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let app = public_router(api);
    if let Err(error) = axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
        warn!(%error, "API server stopped");
    }
}

fn public_router(api: Arc<Api>) -> Router {
    Router::new()
        .route("/metrics", get(metrics::render))
        .merge(uploads::router())
        .fallback(forward_or_handle)
        .layer(middleware::from_fn_with_state(api.clone(), require_token))
        .route("/healthz", get(healthz))
        .with_state(api)
}

/// Routes handled by the leader (directly, or for a forwarded request).
fn leader_router(api: Arc<Api>) -> Router {
    Router::new().merge(cluster::router()).merge(deploy::router()).with_state(api)
}

async fn healthz(State(api): State<Arc<Api>>) -> impl IntoResponse {
    let node = &api.node;
    axum::Json(serde_json::json!({
        "status": "ok",
        "node": node.id(),
        "leader": node.leader_hint().map(|hint| hint.id),
    }))
}

/// The bearer token of a request, if any.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim)
}

async fn require_token(State(api): State<Arc<Api>>, headers: HeaderMap, request: Request, next: Next) -> Response {
    let offered = bearer(&headers);
    let expected = api.node.admin_token_hash();
    if expected.is_empty() {
        return ApiError::unavailable("this node has not learned the cluster's admin token yet; retry in a moment")
            .into_response();
    }
    match offered {
        Some(token) if hashes_equal(&secret_hash(token), &expected) => next.run(request).await,
        Some(_) => ApiError::new(StatusCode::UNAUTHORIZED, "the admin token is wrong").into_response(),
        None => ApiError::new(StatusCode::UNAUTHORIZED, "missing Authorization: Bearer <admin token>").into_response(),
    }
}

/// Handles a request on the leader, or forwards it there.
async fn forward_or_handle(State(api): State<Arc<Api>>, request: Request) -> Response {
    let node = api.node.clone();
    if node.is_leader() {
        return run_leader_router(api, request).await;
    }
    let method = request.method().to_string();
    let uri = request.uri().path_and_query().map(ToString::to_string).unwrap_or_else(|| "/".to_string());
    let token = bearer(request.headers()).unwrap_or_default().to_string();
    let body = match to_bytes(request.into_body(), FORWARD_BODY_BYTES_MAX).await {
        Ok(body) => String::from_utf8_lossy(&body).into_owned(),
        Err(error) => return ApiError::bad_request(format!("cannot read the request body: {error}")).into_response(),
    };
    let api_request = ApiRequest { method, uri, body, token };
    // Bounded: one retry after a NotLeader hint.
    let mut hint = node.leader_hint().filter(|hint| hint.id != node.id());
    for _ in 0..2 {
        let Some(leader) = hint else { break };
        let call = node.call(leader.peer(), NodeRequest::Api(api_request.clone()), Duration::from_secs(120)).await;
        match call {
            Ok((NodeResponse::Api(answer), _)) => return api_response(answer),
            Ok((NodeResponse::NotLeader { leader }, _)) => hint = leader.filter(|next| next.id != node.id()),
            Ok((other, _)) => return ApiError::unavailable(format!("the leader answered {other:?}")).into_response(),
            Err(error) => {
                return ApiError::unavailable(format!("cannot reach the leader (node {}): {error}", leader.id))
                    .into_response()
            }
        }
    }
    ApiError::unavailable("no leader is elected (no quorum of voters is reachable); retry later").into_response()
}

/// Calls the leader's API from this node (locally when it is the leader) and returns
/// its JSON answer.
///
/// # Errors
/// No leader, or the leader's error answer.
pub(crate) async fn call_leader(
    api: &Arc<Api>,
    method: &str,
    uri: &str,
    body: String,
    token: &str,
) -> Result<serde_json::Value, ApiError> {
    let request = ApiRequest { method: method.to_string(), uri: uri.to_string(), body, token: token.to_string() };
    let node = &api.node;
    let answer = if node.is_leader() {
        handle_forwarded(api.clone(), request).await
    } else {
        let leader = node
            .leader_hint()
            .filter(|hint| hint.id != node.id())
            .ok_or_else(|| ApiError::unavailable("no leader is elected; retry later"))?;
        match node.call(leader.peer(), NodeRequest::Api(request), Duration::from_secs(120)).await {
            Ok((NodeResponse::Api(answer), _)) => answer,
            Ok((other, _)) => return Err(ApiError::unavailable(format!("the leader answered {other:?}"))),
            Err(error) => return Err(ApiError::unavailable(format!("cannot reach the leader: {error}"))),
        }
    };
    let value: serde_json::Value = serde_json::from_str(&answer.body).unwrap_or_default();
    if (200..300).contains(&answer.status) {
        Ok(value)
    } else {
        let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_GATEWAY);
        Err(ApiError::new(status, value["error"].as_str().unwrap_or("the leader refused the request").to_string()))
    }
}

async fn run_leader_router(api: Arc<Api>, request: Request) -> Response {
    match leader_router(api).oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

fn api_response(answer: ApiResponse) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_GATEWAY);
    (status, [(axum::http::header::CONTENT_TYPE, "application/json")], answer.body).into_response()
}

/// Runs a forwarded API call on this node (the leader), after checking the client's
/// token again.
async fn handle_forwarded(api: Arc<Api>, request: ApiRequest) -> ApiResponse {
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
        .body(Body::from(request.body));
    let Ok(http_request) = built else {
        return ApiResponse { status: 400, body: ApiError::bad_request("malformed forwarded request").body() };
    };
    let response = run_leader_router(api, http_request).await;
    let status = response.status().as_u16();
    let body = to_bytes(response.into_body(), FORWARD_BODY_BYTES_MAX).await.unwrap_or_default();
    ApiResponse { status, body: String::from_utf8_lossy(&body).into_owned() }
}
