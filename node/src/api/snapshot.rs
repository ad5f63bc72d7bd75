//! `GET /v1/cluster/snapshot`: the replicated state as this voter applied it, for
//! `cluster snapshot save FILE` (admin token only: it holds the token hashes and the
//! sealed CA). Restored with `node --force-new-cluster --from-snapshot FILE`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use fleetmesh_state::model::members::ApiTokenKind;

use super::{bearer, Api, ApiError};

pub(super) fn router() -> Router<Arc<Api>> {
    Router::new().route("/v1/cluster/snapshot", get(save))
}

async fn save(State(api): State<Arc<Api>>, headers: HeaderMap) -> Response {
    let node = &api.node;
    if bearer(&headers).and_then(|token| node.token_kind(token)) != Some(ApiTokenKind::Admin) {
        return ApiError::new(StatusCode::FORBIDDEN, "saving the cluster state needs the admin token").into_response();
    }
    if node.state().read(|state| state.cluster.is_none()) {
        return ApiError::new(
            StatusCode::CONFLICT,
            "this node holds no replicated state (agents keep none): save the snapshot through a voter's API; \
             `cluster status` lists the voters",
        )
        .into_response();
    }
    Json(node.state().save(node.clock().now().0)).into_response()
}
