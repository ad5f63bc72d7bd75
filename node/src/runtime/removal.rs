//! Removed members: which ids this node refuses, and what a node does when it learns
//! that it was removed itself.
//!
//! Node ids are never reused, so "removed" needs no list of its own: a voter knows the
//! removed ids from the replicated state (`ClusterState::removed`); every node, agents
//! included, knows the member list from the leader's poll answers, and an id below the
//! highest member id that is not a member can only be a member that was removed. The
//! transport asks [`Node::is_revoked`] during every handshake.
//!
//! A removed node that still runs is refused at every handshake. When a peer refuses
//! it that way (or a voter answers that it was removed), it writes `DIR/removed`, logs
//! one line saying what happened and stops with an error; started again on that data
//! directory it refuses to start, saying the same. The host comes back by joining
//! afresh: an empty `--data-dir` and a join token.

use std::path::{Path, PathBuf};

use fleetmesh_transport::revocation::is_revoked_by_peer;
use fleetmesh_transport::{NodeId, TransportError};

use super::protocol::RpcError;
use super::Node;

/// The file a removed node leaves in its data directory.
pub fn removed_marker(data_dir: &Path) -> PathBuf {
    data_dir.join("removed")
}

/// True when `error`, the answer to a request of node `me`, says that `me` was removed
/// from the cluster: the peer refused its certificate as revoked, or refused the request
/// because it was removed.
pub fn says_removed(error: &RpcError, me: NodeId) -> bool {
    match error {
        RpcError::Transport(TransportError::Refused { reason, .. }) => {
            reason.contains(&format!("node {me} was removed from the cluster"))
        }
        RpcError::Transport(TransportError::Unreachable { reason, .. } | TransportError::Broken { reason, .. }) => {
            is_revoked_by_peer(reason)
        }
        _ => false,
    }
}

impl Node {
    /// True when member `id` was removed from the cluster, as far as this node knows
    /// (see the module documentation). Never true for this node itself or for an id
    /// above every member this node knows of (a node that joined since).
    pub fn is_revoked(&self, id: NodeId) -> bool {
        if id == self.id() {
            return false;
        }
        if self.state().read(|state| state.removed.contains(&id)) {
            return true;
        }
        self.read_directory(|directory| {
            !directory.members.contains_key(&id)
                && directory.members.keys().next_back().is_some_and(|highest| id < *highest)
        })
    }

    /// Stops this node for good: `peer` says it was removed from the cluster. Writes
    /// the marker that keeps it from starting again on this data directory.
    pub async fn stop_removed(&self, peer: NodeId) {
        let me = self.id();
        let message = format!(
            "this node (node {me}) was removed from the cluster (node {peer} refused it): it stops and will not \
             start again from this data directory; to bring this host back, start it with an empty --data-dir \
             and --join with a join token"
        );
        tracing::error!("{message}");
        if let Some(data_dir) = &self.settings().data_dir {
            if let Err(error) = super::identity::write_private_file(&removed_marker(data_dir), message.as_bytes()) {
                tracing::warn!(%error, "cannot write the removal marker");
            }
        }
        self.shutdown().await;
    }
}
