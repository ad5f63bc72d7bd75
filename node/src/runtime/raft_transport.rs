//! Raft RPCs through the node's transport, in the node protocol's envelope.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use fleetmesh_consensus::raft::{RaftRequest, RaftResponse, RaftTransport};
use fleetmesh_transport::{BoxFuture, NodeId, Peer, Transport, TransportError};

use super::protocol::{self, Request, Response, RpcError};

/// Sends Raft RPCs through the node's transport in the node protocol's envelope.
pub(super) struct RaftOverTransport {
    transport: Arc<dyn Transport>,
}

impl RaftOverTransport {
    pub(super) fn new(transport: Arc<dyn Transport>) -> Self {
        Self { transport }
    }
}

impl RaftTransport for RaftOverTransport {
    fn send(
        &self,
        target: NodeId,
        addr: &str,
        request: RaftRequest,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<RaftResponse, TransportError>> {
        let transport = self.transport.clone();
        let addr = addr.parse::<SocketAddr>();
        Box::pin(async move {
            let addr = addr.map_err(|error| TransportError::Unreachable {
                peer: target,
                addr: SocketAddr::from(([0, 0, 0, 0], 0)),
                reason: format!("bad raft address: {error}"),
            })?;
            let peer = Peer { id: target, addr };
            match protocol::call(transport.as_ref(), peer, &Request::Raft(request), timeout).await {
                Ok((Response::Raft(response), _)) => Ok(response),
                Ok((other, _)) => {
                    Err(TransportError::Refused { peer: target, reason: format!("unexpected answer {other:?}") })
                }
                Err(RpcError::Transport(error)) => Err(error),
                Err(error) => Err(TransportError::Refused { peer: target, reason: error.to_string() }),
            }
        })
    }
}
