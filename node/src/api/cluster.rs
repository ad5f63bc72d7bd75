//! `GET /v1/cluster` and join-token minting.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use fleetmesh_state::model::ids::UnixMillis;
use fleetmesh_state::model::members::JoinTokenRecord;
use fleetmesh_state::{Command, Outcome};
use fleetmesh_transport::pki::CaAuthority;
use serde::Deserialize;

use super::Api;
use super::ApiError;
use crate::leader::ClusterView;
use crate::runtime::identity::{secret_hash, JoinToken};

pub(super) fn router() -> Router<Arc<Api>> {
    Router::new().route("/v1/cluster", get(cluster)).route("/v1/join-tokens", post(create_join_token))
}

async fn cluster(State(api): State<Arc<Api>>) -> Result<Json<ClusterView>, ApiError> {
    let view = api.leader.cluster_view();
    if view.nodes.is_empty() {
        return Err(ApiError::unavailable("the cluster is still bootstrapping"));
    }
    Ok(Json(view))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JoinTokenRequest {
    #[serde(default)]
    ttl_seconds: Option<u64>,
    #[serde(default)]
    description: String,
}

async fn create_join_token(
    State(api): State<Arc<Api>>,
    Json(request): Json<JoinTokenRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let node = &api.node;
    let fingerprint = node
        .state()
        .read(|state| state.cluster.as_ref().map(|info| info.ca.fingerprint()))
        .ok_or_else(|| ApiError::unavailable("the cluster is still bootstrapping"))?
        .map_err(|error| ApiError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, error.to_string()))?;
    let token = JoinToken::generate(fingerprint);
    let expires_at = request.ttl_seconds.map(|ttl| UnixMillis(node.clock().now().0 + ttl.saturating_mul(1000)));
    let record =
        JoinTokenRecord { secret_hash: secret_hash(&token.secret), expires_at, description: request.description };
    match node.propose_one(Command::AddJoinToken { record }).await? {
        Outcome::Rejected(error) => Err(error.into()),
        _ => Ok(Json(serde_json::json!({ "token": token.to_string(), "expiresAt": expires_at }))),
    }
}
