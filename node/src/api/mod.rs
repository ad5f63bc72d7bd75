//! The HTTP/JSON API every node serves.
//!
//! Every endpoint but `/healthz` and the dashboard's files (`/ui`) needs
//! `Authorization: Bearer <admin token>`. A node answers `/healthz`, `/metrics` and
//! chunk uploads itself. Every other call is an
//! operation of the API model (`fleetmesh_model::Operation`): parsed here, then
//! answered by this node when it can (a read on a voter, anything on the leader) or
//! forwarded, typed, to the node that can (`route.rs`), so a client never has to find
//! the leader.
//!
//! ```text
//!  client ──HTTP──▶ any node ──auth──┬─ /healthz, /metrics, /v1/uploads/* (local)
//!                                    └─ /v1/deploy/<Operation>, /v1/cluster, /v1/join-tokens[/<id>],
//!                                       /v1/revisions/<id>/distribution
//!                                         ──▶ Operation ──▶ route: here, or Request::Operation to the leader
//! ```

pub mod aws;
mod cluster;
pub mod deploy;
mod drain;
mod error;
mod events;
mod legacy;
mod metrics;
mod route;
mod snapshot;
mod tls;
mod traffic;
mod ui;
mod uploads;

use std::future::Future;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
pub use error::ApiError;
use fleetmesh_model::{
    DeleteJoinTokenInput, GetClusterInput, GetRevisionDistributionInput, ListJoinTokensInput, Operation,
};
use fleetmesh_state::model::ids::RevisionId;
use fleetmesh_state::model::members::ApiTokenKind;
use serde::Deserialize;
use tracing::warn;

use crate::leader::Leader;
use crate::revision::service::RevisionService;
use crate::runtime::protocol::{ApiRequest, Request as NodeRequest, Response as NodeResponse};
use crate::runtime::{Family, Node, Refusal, Service};

/// Largest request body accepted for an operation (chunk uploads are not operations).
pub const FORWARD_BODY_BYTES_MAX: usize = 64 << 20;

/// What the API's handlers work with: the node, its leader duties (cluster view,
/// download progress) and its revision store, when it has one.
pub struct Api {
    node: Arc<Node>,
    leader: Arc<Leader>,
    revisions: Option<Arc<RevisionService>>,
    /// Clients' operations by where they were answered (`/metrics`).
    counts: route::Counts,
    /// Deployment outcomes counted from the event log (`/metrics`).
    tally: metrics::DeploymentTally,
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
        let api = Arc::new(Self {
            node: leader.node().clone(),
            leader: leader.clone(),
            revisions,
            counts: route::Counts::default(),
            tally: metrics::DeploymentTally::default(),
        });
        api.node.register(Family::Api, api.clone());
        api
    }
}

impl Service for Api {
    fn handle(
        self: Arc<Self>,
        caller: fleetmesh_transport::Caller,
        request: NodeRequest,
        _payload: Bytes,
    ) -> fleetmesh_transport::BoxFuture<'static, Result<(NodeResponse, Bytes), Refusal>> {
        Box::pin(async move {
            let none = Bytes::new();
            match (caller, request) {
                (caller, NodeRequest::Operation(request)) => Ok((self.answer_forwarded(caller, request).await, none)),
                (fleetmesh_transport::Caller::Node(_), NodeRequest::Api(api_request)) => {
                    if !self.node.is_leader() {
                        return Ok(crate::runtime::dispatch::not_leader(&self.node));
                    }
                    Ok((NodeResponse::Api(legacy::answer(self, api_request).await), none))
                }
                (_, other) => Err(Refusal::Malformed(format!("not an API request: {other:?}"))),
            }
        })
    }
}

/// Serves the API on `listener` until `shutdown` resolves: HTTPS with `tls`, plain
/// HTTP without (`--api-plaintext`, loopback only).
pub async fn serve(
    api: Arc<Api>,
    listener: tokio::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let app = public_router(api);
    let served = match tls {
        Some(config) => match tls::TlsListener::new(listener, config) {
            Ok(listener) => axum::serve(listener, app).with_graceful_shutdown(shutdown).await,
            Err(error) => Err(error),
        },
        None => axum::serve(listener, app).with_graceful_shutdown(shutdown).await,
    };
    if let Err(error) = served {
        warn!(%error, "API server stopped");
    }
}

fn public_router(api: Arc<Api>) -> Router {
    Router::new()
        .route("/metrics", get(metrics::render))
        .route("/v1/events", get(events::stream))
        .merge(uploads::router())
        .merge(snapshot::router())
        .merge(operations_router(api.clone()))
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .layer(middleware::from_fn_with_state(api.clone(), require_token))
        .route("/healthz", get(healthz))
        // The dashboard's files hold no data: the page sends the token on its own calls.
        .merge(ui::router())
        // The AWS protocol authenticates each request itself (SigV4 or the bearer token).
        .route("/", post(aws::handle))
        .layer(middleware::map_response(error::json_errors))
        .layer(middleware::from_fn(drain::drain_unread))
        .with_state(api)
}

/// The operations' HTTP routes (also what a tunnelled request of an older release runs).
fn operations_router<S>(api: Arc<Api>) -> Router<S> {
    Router::new()
        .route("/v1/deploy/{operation}", post(deploy_operation))
        .route("/v1/cluster", get(get_cluster))
        .route("/v1/join-tokens", post(create_join_token).get(list_join_tokens))
        .route("/v1/join-tokens/{token_id}", delete(delete_join_token))
        .route("/v1/revisions/{revision}/distribution", get(distribution))
        .layer(middleware::map_response(error::json_errors))
        .with_state(api)
}

async fn healthz(State(api): State<Arc<Api>>) -> impl IntoResponse {
    let node = &api.node;
    Json(serde_json::json!({
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
    if api.node.admin_token_hash().is_empty() {
        return ApiError::unavailable("this node has not learned the cluster's admin token yet; retry in a moment")
            .into_response();
    }
    let Some(offered) = bearer(&headers) else {
        return ApiError::new(StatusCode::UNAUTHORIZED, "missing Authorization: Bearer <admin token>").into_response();
    };
    let kind = api.node.token_kind(offered);
    let path = request.uri().path();
    let allowed = match kind {
        // The metrics token scrapes and does nothing else.
        Some(ApiTokenKind::Metrics) if path != "/metrics" => {
            Err(ApiError::new(StatusCode::FORBIDDEN, "the metrics token may only read /metrics"))
        }
        Some(ApiTokenKind::Metrics) => Ok(()),
        _ => may_call(kind, is_read(request.method(), path)),
    };
    match allowed {
        Ok(()) => next.run(request).await,
        Err(refused) => refused.into_response(),
    }
}

/// True for requests that change nothing: `GET`s and the `Get*`/`List*` operations.
fn is_read(method: &Method, path: &str) -> bool {
    if method == Method::GET {
        return true;
    }
    let operation = path.strip_prefix("/v1/deploy/").unwrap_or_default();
    method == Method::POST
        && (operation.starts_with("Get") || operation.starts_with("List") || operation.starts_with("BatchGet"))
}

/// Whether a caller holding a token of `kind` may make a call that `reads` only.
pub(super) fn may_call(kind: Option<ApiTokenKind>, reads: bool) -> Result<(), ApiError> {
    match kind {
        Some(ApiTokenKind::Admin) => Ok(()),
        Some(ApiTokenKind::ReadOnly) if reads => Ok(()),
        Some(ApiTokenKind::ReadOnly) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "the read-only token may only read; use the admin token to change",
        )),
        Some(ApiTokenKind::Metrics) => {
            Err(ApiError::new(StatusCode::FORBIDDEN, "the metrics token may only read /metrics"))
        }
        None => Err(ApiError::new(StatusCode::UNAUTHORIZED, "the admin token is wrong")),
    }
}

/// Options of a read, from the query string.
#[derive(Debug, Default, Deserialize)]
struct ReadOptions {
    /// Confirm leadership with a quorum before reading (see `route.rs`).
    #[serde(default)]
    consistent: bool,
}

/// An HTTP request as it came, for relaying it to a leader of an older release.
pub(super) struct Incoming {
    pub(super) method: Method,
    pub(super) uri: Uri,
    pub(super) headers: HeaderMap,
    pub(super) body: Bytes,
}

/// Answers `operation` (parsed from `incoming`) and renders the answer.
pub(super) async fn respond(
    api: &Arc<Api>,
    operation: Operation,
    consistent: bool,
    mut incoming: Incoming,
) -> Response {
    if let Err(error) = operation.check() {
        return ApiError::from(error).into_response();
    }
    let operation = match route::for_cluster_level(api, operation) {
        Ok(operation) => operation,
        Err(error) => return error.into_response(),
    };
    if let Operation::CreateJoinToken(input) = &operation {
        // A relayed request carries the input as `for_cluster_level` settled it.
        if let Ok(body) = serde_json::to_vec(input) {
            incoming.body = Bytes::from(body);
        }
    }
    let token = bearer(&incoming.headers).unwrap_or_default().to_string();
    match route::answer(api, operation, consistent, &token).await {
        Some(Ok(output)) => Json(output.to_json()).into_response(),
        Some(Err(error)) => error.into_response(),
        None => {
            let request = ApiRequest {
                method: incoming.method.to_string(),
                uri: incoming.uri.path_and_query().map(ToString::to_string).unwrap_or_else(|| "/".to_string()),
                body: String::from_utf8_lossy(&incoming.body).into_owned(),
                token,
            };
            legacy::relay(api, request).await
        }
    }
}

/// Marks a request that a member relayed from its own client (an older release's
/// tunnel): the member already settled what only a node may set.
#[derive(Clone, Copy, Debug)]
pub(super) struct Relayed;

// axum takes each part of a request as its own argument; bundling them would only hide
// what the handler reads.
#[allow(clippy::too_many_arguments)]
async fn deploy_operation(
    State(api): State<Arc<Api>>,
    relayed: Option<axum::Extension<Relayed>>,
    Path(name): Path<String>,
    Query(options): Query<ReadOptions>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let operation = match Operation::parse(&name, &body) {
        Ok(Operation::RegisterPushedRevision(input)) if relayed.is_none() => {
            match uploads::settle_registration(&api, input) {
                Ok(input) => Operation::RegisterPushedRevision(input),
                Err(error) => return error.into_response(),
            }
        }
        Ok(operation) => operation,
        Err(error) => return ApiError::from(error).into_response(),
    };
    // A relayed request (to a leader of an older release) carries the settled input.
    let body = match &operation {
        Operation::RegisterPushedRevision(input) => serde_json::to_vec(input).map(Bytes::from).unwrap_or(body),
        _ => body,
    };
    respond(&api, operation, options.consistent, Incoming { method, uri, headers, body }).await
}

async fn get_cluster(State(api): State<Arc<Api>>, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let incoming = Incoming { method, uri, headers, body: Bytes::new() };
    respond(&api, Operation::GetCluster(GetClusterInput {}), false, incoming).await
}

async fn create_join_token(
    State(api): State<Arc<Api>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match Operation::parse("CreateJoinToken", &body) {
        Ok(operation) => respond(&api, operation, false, Incoming { method, uri, headers, body }).await,
        Err(error) => ApiError::from(error).into_response(),
    }
}

async fn list_join_tokens(
    State(api): State<Arc<Api>>,
    Query(options): Query<ReadOptions>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let incoming = Incoming { method, uri, headers, body: Bytes::new() };
    respond(&api, Operation::ListJoinTokens(ListJoinTokensInput {}), options.consistent, incoming).await
}

async fn delete_join_token(
    State(api): State<Arc<Api>>,
    Path(token_id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let operation = Operation::DeleteJoinToken(DeleteJoinTokenInput { token_id });
    respond(&api, operation, false, Incoming { method, uri, headers, body: Bytes::new() }).await
}

async fn distribution(
    State(api): State<Arc<Api>>,
    Path(revision): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let Ok(revision_id) = revision.parse::<RevisionId>() else {
        let echoed = fleetmesh_model::bounds::echo(&revision);
        return ApiError::invalid("revisionId", format!("{echoed} is not 64 hex digits")).into_response();
    };
    let operation = Operation::GetRevisionDistribution(GetRevisionDistributionInput { revision_id });
    respond(&api, operation, false, Incoming { method, uri, headers, body: Bytes::new() }).await
}
