//! Serving revision content to peers (placeholder until the swarm lands).

use std::sync::Arc;

use bytes::Bytes;

use crate::protocol::{Request, Response};
use crate::runtime::Node;

/// Answers manifest, piece and have-set requests.
pub(crate) async fn handle(_node: &Arc<Node>, _request: Request) -> Result<(Response, Bytes), String> {
    Ok((Response::Error("this node does not serve revisions yet".to_string()), Bytes::new()))
}
