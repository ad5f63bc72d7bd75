//! The Raft network adapter: openraft's RPCs over whatever [`RaftTransport`] the node
//! provides (QUIC in production, the simulated network in `fleetmesh-sim`).

use std::time::Duration;

use fleetmesh_transport::{BoxFuture, NodeId, TransportError};
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::BasicNode;
use serde::{Deserialize, Serialize};

use super::{Raft, TypeConfig};

/// A Raft RPC on the wire.
#[derive(Debug, Serialize, Deserialize)]
pub enum RaftRequest {
    /// Log replication and heartbeats.
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    /// Elections.
    Vote(VoteRequest<NodeId>),
    /// One chunk of a snapshot.
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    /// Would the peer vote for this candidate now (see `prevote`)? Changes nothing.
    PreVote(VoteRequest<NodeId>),
}

/// The answer to a [`RaftRequest`].
#[derive(Debug, Serialize, Deserialize)]
pub enum RaftResponse {
    /// Answer to AppendEntries.
    AppendEntries(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    /// Answer to Vote.
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    /// Answer to InstallSnapshot.
    InstallSnapshot(Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>),
    /// Answer to PreVote: granted or not.
    PreVote(bool),
}

/// Hands Raft RPCs to the network. The node implements it by wrapping them in its own
/// envelope, so this crate does not know the node's protocol.
pub trait RaftTransport: Send + Sync + 'static {
    /// Sends `request` to `target` at `addr` and awaits the answer.
    fn send(
        &self,
        target: NodeId,
        addr: &str,
        request: RaftRequest,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<RaftResponse, TransportError>>;
}

/// Answers a Raft RPC that arrived from a peer.
pub async fn serve(raft: &Raft, request: RaftRequest) -> RaftResponse {
    match request {
        RaftRequest::AppendEntries(request) => RaftResponse::AppendEntries(raft.append_entries(request).await),
        RaftRequest::Vote(request) => RaftResponse::Vote(raft.vote(request).await),
        RaftRequest::InstallSnapshot(request) => RaftResponse::InstallSnapshot(raft.install_snapshot(request).await),
        RaftRequest::PreVote(request) => RaftResponse::PreVote(super::prevote::answer(raft, &request).await),
    }
}

/// Creates one [`Network`] per peer for openraft.
pub struct NetworkFactory {
    transport: std::sync::Arc<dyn RaftTransport>,
}

impl NetworkFactory {
    /// A factory sending through `transport`.
    pub fn new(transport: std::sync::Arc<dyn RaftTransport>) -> Self {
        Self { transport }
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = Network;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Self::Network {
        Network { transport: self.transport.clone(), target, addr: node.addr.clone() }
    }
}

/// The connection to one peer, as openraft sees it.
pub struct Network {
    transport: std::sync::Arc<dyn RaftTransport>,
    target: NodeId,
    addr: String,
}

type Rpc<E> = RPCError<NodeId, BasicNode, E>;

impl Network {
    async fn call<E: std::error::Error>(
        &self,
        request: RaftRequest,
        option: &RPCOption,
    ) -> Result<RaftResponse, Rpc<E>> {
        self.transport.send(self.target, &self.addr, request, option.hard_ttl()).await.map_err(|error| match error {
            // Unreachable makes openraft back off instead of retrying at once.
            TransportError::Unreachable { .. } => RPCError::Unreachable(Unreachable::new(&error)),
            other => RPCError::Network(NetworkError::new(&other)),
        })
    }

    fn unexpected<E: std::error::Error>(&self) -> Rpc<E> {
        RPCError::Network(NetworkError::new(&std::io::Error::other("mismatched raft response")))
    }
}

impl RaftNetwork<TypeConfig> for Network {
    async fn append_entries(
        &mut self,
        request: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, Rpc<RaftError<NodeId>>> {
        match self.call(RaftRequest::AppendEntries(request), &option).await? {
            RaftResponse::AppendEntries(result) => {
                result.map_err(|error| RPCError::RemoteError(RemoteError::new(self.target, error)))
            }
            _ => Err(self.unexpected()),
        }
    }

    async fn install_snapshot(
        &mut self,
        request: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, Rpc<RaftError<NodeId, InstallSnapshotError>>> {
        match self.call(RaftRequest::InstallSnapshot(request), &option).await? {
            RaftResponse::InstallSnapshot(result) => {
                result.map_err(|error| RPCError::RemoteError(RemoteError::new(self.target, error)))
            }
            _ => Err(self.unexpected()),
        }
    }

    async fn vote(
        &mut self,
        request: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, Rpc<RaftError<NodeId>>> {
        match self.call(RaftRequest::Vote(request), &option).await? {
            RaftResponse::Vote(result) => {
                result.map_err(|error| RPCError::RemoteError(RemoteError::new(self.target, error)))
            }
            _ => Err(self.unexpected()),
        }
    }
}
