//! Peers' requests for revision content (manifests, pieces, have-sets), answered from
//! this node's revision service: the [`Family::Revision`] service of the runtime.

use std::sync::Arc;

use bytes::Bytes;
use fleetmesh_transport::{BoxFuture, Caller};

use super::RevisionService;
use crate::runtime::protocol::{Request, Response};
use crate::runtime::{Family, Node, Refusal, Service};

/// Answers [`Family::Revision`] requests on one node.
pub struct RevisionRequests {
    node: Arc<Node>,
    service: Arc<RevisionService>,
}

impl std::fmt::Debug for RevisionRequests {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("RevisionRequests").field("node", &self.node.id()).finish_non_exhaustive()
    }
}

impl RevisionRequests {
    /// Registers `service` to answer `node`'s revision requests.
    pub fn register(node: &Arc<Node>, service: Arc<RevisionService>) {
        node.register(Family::Revision, Arc::new(Self { node: node.clone(), service }));
    }
}

impl Service for RevisionRequests {
    fn handle(
        self: Arc<Self>,
        caller: Caller,
        request: Request,
        _payload: Bytes,
    ) -> BoxFuture<'static, Result<(Response, Bytes), Refusal>> {
        Box::pin(async move {
            let Caller::Node(peer) = caller else {
                return Err(Refusal::Forbidden("revision content is served to members only".to_string()));
            };
            match request {
                Request::GetManifest { revision_id } => {
                    if self.service.manifest(revision_id).is_some() {
                        return Ok(self.service.serve_manifest(revision_id));
                    }
                    // Voters hold every manifest in the replicated state.
                    let manifest = self.node.state().read(|state| {
                        state.revisions.get(&revision_id).map(|record| record.manifest.canonical_bytes())
                    });
                    Ok(match manifest {
                        Some(bytes) => (Response::Manifest, Bytes::from(bytes)),
                        None => (Response::Error(format!("no manifest for {revision_id} here")), Bytes::new()),
                    })
                }
                Request::GetPiece { revision_id, piece, chunks } => {
                    Ok(self.service.serve_piece(peer, revision_id, piece, chunks).await)
                }
                Request::GetHave { revision_id } => Ok(self.service.serve_have(revision_id)),
                other => Err(Refusal::Malformed(format!("not a revision request: {other:?}"))),
            }
        })
    }
}
