//! Answering requests from peers: the runtime decodes the node protocol, answers Raft
//! itself, and hands every other request to the service that registered its family.
//!
//! Services live in the layers above (the leader, the revision store, the API); they
//! register with [`Node::register`] when they start, and the runtime never names them.
//! A request for a family nobody registered is refused with a reason. The same path
//! serves a node's requests to itself ([`Node::call`] with its own id), so the leader's
//! own agent polls and reports exactly as every other agent does.
//!
//! ```text
//!  transport ─▶ NodeHandler ─▶ Node::dispatch ─┬─ Raft ──────────────▶ openraft
//!  Node::call(self) ───────────────────────────┤─ Join, Poll, Report ▶ Family::Leader
//!                                              ├─ Get{Manifest,Piece,Have} ▶ Family::Revision
//!                                              ├─ Api ───────────────▶ Family::Api
//!                                              └─ RouteCommandOutcome ▶ Family::Router
//! ```

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use fleetmesh_transport::{BoxFuture, Caller, Handler, Message, NodeId, Peer, Refused, TransportError};

use super::protocol::{self, encode_response, Request, Response, RpcError};
use super::Node;

/// The request families a service above the runtime answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Family {
    /// Joins, polls and reports: the leader's duties.
    Leader,
    /// Manifests, pieces and have-sets: the revision store.
    Revision,
    /// Forwarded API operations.
    Api,
    /// Questions to this node as a router (how its route commands ran).
    Router,
}

impl Family {
    const COUNT: usize = 4;

    fn index(self) -> usize {
        match self {
            Self::Leader => 0,
            Self::Revision => 1,
            Self::Api => 2,
            Self::Router => 3,
        }
    }

    /// The family of `request`; `None` for Raft, which the runtime answers itself.
    pub fn of(request: &Request) -> Option<Self> {
        match request {
            Request::Raft(_) => None,
            Request::Join(_)
            | Request::Poll(_)
            | Request::Report(_)
            | Request::SignApiCertificate(_)
            | Request::HoldCaSealKey { .. }
            | Request::SignNodeCertificate(_)
            | Request::Traffic(_) => Some(Self::Leader),
            Request::GetManifest { .. } | Request::GetPiece { .. } | Request::GetHave { .. } => Some(Self::Revision),
            Request::Api(_) | Request::Operation(_) => Some(Self::Api),
            Request::RouteCommandOutcome { .. } => Some(Self::Router),
        }
    }
}

/// Why a request got no answer from this node; travels back to the caller as the
/// transport's refusal.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum Refusal {
    /// The node is still starting (its handler is not bound yet).
    #[error("the node is still starting; retry")]
    Starting,
    /// The request did not decode.
    #[error("unsupported or malformed request: {0}")]
    Malformed(String),
    /// The caller may not make this request.
    #[error("{0}")]
    Forbidden(String),
    /// No service of this node answers the request's family.
    #[error("this node does not serve {0:?} requests")]
    Unserved(Family),
}

/// A service of a layer above the runtime: answers the requests of one [`Family`].
pub trait Service: Send + Sync + 'static {
    /// Answers `request` from `caller`, with its payload; the answer's payload travels
    /// beside it.
    fn handle(
        self: Arc<Self>,
        caller: Caller,
        request: Request,
        payload: Bytes,
    ) -> BoxFuture<'static, Result<(Response, Bytes), Refusal>>;
}

/// The services registered on one node, one per family at most.
#[derive(Default)]
pub(super) struct Services {
    slots: [OnceLock<Arc<dyn Service>>; Family::COUNT],
}

impl Node {
    /// Registers the service that answers `family`. A family is served by one service
    /// for the node's life; a second registration is refused and logged (a wiring bug).
    pub fn register(&self, family: Family, service: Arc<dyn Service>) {
        if self.services.slots[family.index()].set(service).is_err() {
            tracing::error!(?family, "a second service registered for one request family; keeping the first");
        }
    }

    /// Answers one request from `caller`: Raft here, the rest by the registered service.
    ///
    /// # Errors
    /// The caller may not make the request, or no service serves its family.
    pub async fn dispatch(
        &self,
        caller: Caller,
        request: Request,
        payload: Bytes,
    ) -> Result<(Response, Bytes), Refusal> {
        match (caller, &request) {
            (_, Request::Join(_)) => {}
            (Caller::Joiner, _) => {
                return Err(Refusal::Forbidden(
                    "only join requests are accepted without a cluster certificate".to_string(),
                ))
            }
            (Caller::Node(peer), _) if self.state().read(|state| state.removed.contains(&peer)) => {
                return Err(Refusal::Forbidden(format!("node {peer} was removed from the cluster")));
            }
            _ => {}
        }
        let Some(family) = Family::of(&request) else {
            let Request::Raft(raft_request) = request else { unreachable!("only Raft has no family") };
            return Ok((Response::Raft(self.raft.serve(raft_request).await), Bytes::new()));
        };
        let service = self.services.slots[family.index()].get().cloned().ok_or(Refusal::Unserved(family))?;
        service.handle(caller, request, payload).await
    }

    /// Sends `request` to `peer` and awaits the answer within `timeout`. A request to
    /// this node itself does not touch the network: it goes through [`Node::dispatch`]
    /// as a peer's would.
    ///
    /// # Errors
    /// The transport failed, the peer refused, or the answer did not decode.
    pub async fn call(&self, peer: Peer, request: Request, timeout: Duration) -> Result<(Response, Bytes), RpcError> {
        if peer.id != self.id() {
            return protocol::call(self.transport().as_ref(), peer, &request, timeout).await;
        }
        let refused = |reason: String| RpcError::Transport(TransportError::Refused { peer: peer.id, reason });
        match tokio::time::timeout(timeout, self.dispatch(Caller::Node(self.id()), request, Bytes::new())).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(refusal)) => Err(refused(refusal.to_string())),
            Err(_) => Err(RpcError::Transport(TransportError::Timeout { peer: peer.id, timeout })),
        }
    }
}

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

    /// Binds the node. A handler serves one node for its life: a second bind is a
    /// wiring bug, refused and logged.
    pub fn bind(&self, node: Arc<Node>) {
        if let Err(node) = self.node.set(node) {
            tracing::error!(node = %node.id(), "a transport handler was bound twice; keeping the first node");
        }
    }
}

impl Handler for NodeHandler {
    fn handle(&self, caller: Caller, message: Message) -> BoxFuture<'static, Result<Message, Refused>> {
        let node = self.node.get().cloned();
        Box::pin(async move {
            let refused = |refusal: Refusal| Refused::new(refusal.to_string());
            let node = node.ok_or_else(|| refused(Refusal::Starting))?;
            let request: Request = serde_json::from_slice(&message.header)
                .map_err(|error| refused(Refusal::Malformed(error.to_string())))?;
            let (response, payload) = node.dispatch(caller, request, message.payload).await.map_err(refused)?;
            Ok(encode_response(&response, payload))
        })
    }
}

/// Answers "not the leader" with this node's best hint: the answer of every leader-only
/// request on a node that does not lead.
pub fn not_leader(node: &Node) -> (Response, Bytes) {
    (Response::NotLeader { leader: node.leader_hint() }, Bytes::new())
}

/// The id a [`Caller`] speaks for, when it is a member.
pub fn member_of(caller: Caller) -> Option<NodeId> {
    match caller {
        Caller::Node(id) => Some(id),
        Caller::Joiner => None,
    }
}
