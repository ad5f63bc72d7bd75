//! Answers peers' requests for revision content (manifests, pieces, have-sets) from
//! this node's revision service.

use std::sync::Arc;

use bytes::Bytes;
use fleetmesh_transport::NodeId;

use crate::protocol::{Request, Response};
use crate::runtime::Node;

/// Answers a manifest, piece or have-set request from `peer`.
pub(crate) async fn handle(node: &Arc<Node>, peer: NodeId, request: Request) -> Result<(Response, Bytes), String> {
    let service = node.agent.get().and_then(|agent| agent.revisions().cloned());
    match request {
        Request::GetManifest { revision_id } => {
            if let Some(service) = &service {
                if service.manifest(revision_id).is_some() {
                    return Ok(service.serve_manifest(revision_id));
                }
            }
            // Voters hold every manifest in the replicated state.
            let manifest = node
                .state()
                .read(|state| state.revisions.get(&revision_id).map(|record| record.manifest.canonical_bytes()));
            Ok(match manifest {
                Some(bytes) => (Response::Manifest, Bytes::from(bytes)),
                None => (Response::Error(format!("no manifest for {revision_id} here")), Bytes::new()),
            })
        }
        Request::GetPiece { revision_id, piece, chunks } => match service {
            Some(service) => Ok(service.serve_piece(peer, revision_id, piece, chunks).await),
            None => Ok((Response::Error("this node stores no chunks".into()), Bytes::new())),
        },
        Request::GetHave { revision_id } => match service {
            Some(service) => Ok(service.serve_have(revision_id)),
            None => Ok((Response::Error("this node stores no chunks".into()), Bytes::new())),
        },
        other => Err(format!("not a revision request: {other:?}")),
    }
}
