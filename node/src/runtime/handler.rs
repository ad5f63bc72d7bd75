//! Answers requests from peers: decodes the node protocol and dispatches.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use fleetmesh_transport::{BoxFuture, Caller, Handler, Message};

use super::{join, leader, Node};
use crate::protocol::{encode_response, Request, Response};

/// The transport [`Handler`] of a node. Created before the node (the transport needs
/// it to start), then bound to the node with [`NodeHandler::bind`]; until then every
/// request is refused as "starting".
#[derive(Default)]
pub struct NodeHandler {
    node: OnceLock<Arc<Node>>,
}

impl std::fmt::Debug for NodeHandler {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("NodeHandler").finish_non_exhaustive()
    }
}

impl NodeHandler {
    /// A handler not yet bound to a node.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Binds the node; later calls are ignored.
    pub fn bind(&self, node: Arc<Node>) {
        let _ = self.node.set(node);
    }
}

impl Handler for NodeHandler {
    fn handle(&self, caller: Caller, message: Message) -> BoxFuture<'static, Result<Message, String>> {
        let node = self.node.get().cloned();
        Box::pin(async move {
            let Some(node) = node else { return Err("the node is still starting; retry".to_string()) };
            let request: Request = serde_json::from_slice(&message.header)
                .map_err(|error| format!("unsupported or malformed request: {error}"))?;
            if let Caller::Node(peer) = caller {
                if node.state().read(|state| state.removed.contains(&peer)) {
                    return Err(format!("node {peer} was removed from the cluster"));
                }
            }
            let (response, payload) = dispatch(&node, caller, request, message.payload).await?;
            Ok(encode_response(&response, payload))
        })
    }
}

async fn dispatch(
    node: &Arc<Node>,
    caller: Caller,
    request: Request,
    _payload: Bytes,
) -> Result<(Response, Bytes), String> {
    let none = Bytes::new();
    match (caller, request) {
        (_, Request::Join(join_request)) => Ok((Response::Join(join::admit(node, join_request).await), none)),
        (Caller::Joiner, _) => Err("only join requests are accepted without a cluster certificate".to_string()),
        (Caller::Node(_), Request::Raft(raft_request)) => {
            Ok((Response::Raft(fleetmesh_consensus::raft::serve(&node.raft(), raft_request).await), none))
        }
        // A member speaks only for itself: its certificate names it.
        (Caller::Node(peer), Request::Poll(poll)) if poll.node != peer => {
            Err(format!("node {peer} polled as node {}", poll.node))
        }
        (Caller::Node(_), Request::Poll(poll)) => Ok(leader::handle_poll(node, poll).await),
        (Caller::Node(peer), Request::Report(reports)) if reports.iter().any(|report| report.target_id != peer) => {
            Err(format!("node {peer} reported progress for another node"))
        }
        (Caller::Node(_), Request::Report(reports)) => Ok((leader::handle_report(node, reports).await, none)),
        (Caller::Node(_), Request::Api(api_request)) => {
            if !node.is_leader() {
                return Ok((Response::NotLeader { leader: node.leader_hint() }, none));
            }
            Ok((Response::Api(crate::api::handle_forwarded(node.clone(), api_request).await), none))
        }
        (
            Caller::Node(peer),
            request @ (Request::GetManifest { .. } | Request::GetPiece { .. } | Request::GetHave { .. }),
        ) => crate::swarm_service::handle(node, peer, request).await,
    }
}
