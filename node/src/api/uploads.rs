//! Chunk uploads from `fleetmesh deploy push` (placeholder until the chunk store lands).

use std::sync::Arc;

use axum::Router;

use crate::runtime::Node;

pub(super) fn router() -> Router<Arc<Node>> {
    Router::new()
}
