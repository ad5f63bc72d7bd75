//! [`ServerStateWatch`]: this node's vote, role, leader and voter set, changing only when
//! one of those does.

use std::time::Duration;

use fleetmesh_transport::NodeId;
use openraft::ServerState;
use tokio::sync::watch;

use super::RaftHost;

/// Follows this node's Raft server state: vote, role, leader and voter set. Unlike
/// `Raft::metrics`, which openraft sends on every pass of its loop (every tick and every
/// replication round, on every node), this changes only when one of those does, so
/// thousands of idle agents do not wake their watchers ten times a second.
pub struct ServerStateWatch {
    receiver: watch::Receiver<openraft::metrics::RaftServerMetrics<NodeId, openraft::BasicNode>>,
    /// Set when [`Self::changed`] moved to a new Raft instance; cleared by
    /// [`Self::take_replaced`].
    replaced: bool,
}

impl std::fmt::Debug for ServerStateWatch {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("ServerStateWatch").field("replaced", &self.replaced).finish_non_exhaustive()
    }
}

impl ServerStateWatch {
    /// A watch of `host`'s current instance.
    pub fn new(host: &RaftHost) -> Self {
        Self { receiver: host.raft().server_metrics(), replaced: false }
    }

    /// Waits for a change. When the Raft instance stops (shutdown, or a reset that
    /// replaced it), follows the current instance and counts that as a change.
    ///
    /// Cancel-safe: callers wait on this in `select!` beside other events, so it must not
    /// keep the switch to the new instance behind a sleep. It switches first and only
    /// then waits a little, when the host has no running instance yet. (Switching after
    /// the sleep left the leader task, woken by a query every few milliseconds, reading
    /// the stopped instance forever: a first node that never bootstrapped.)
    pub async fn changed(&mut self, host: &RaftHost) {
        if self.receiver.changed().await.is_ok() {
            return;
        }
        self.receiver = host.raft().server_metrics();
        self.replaced = true;
        if self.receiver.has_changed().is_err() {
            // The host has not started its next instance yet: the caller looks again later.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// True once after [`Self::changed`] moved to another Raft instance.
    pub fn take_replaced(&mut self) -> bool {
        std::mem::take(&mut self.replaced)
    }

    /// The current leader, as last seen.
    pub fn current_leader(&mut self) -> Option<NodeId> {
        self.receiver.borrow_and_update().current_leader
    }

    /// The term, and whether node `id` leads in it, as last seen. Read this rather than
    /// [`RaftHost::is_leader`] after a wake-up from [`Self::changed`]: openraft publishes
    /// the server state before its full metrics, so on a multi-threaded runtime a waiter
    /// can see the change here while `Raft::metrics` still shows the old state (a
    /// single-node cluster never committed its bootstrap entry that way).
    pub fn leadership(&mut self, id: NodeId) -> (u64, bool) {
        let metrics = self.receiver.borrow_and_update();
        let leads = metrics.state == ServerState::Leader && metrics.current_leader == Some(id);
        (metrics.vote.leader_id().term, leads)
    }

    /// Whether node `id`'s Raft has any use for its timer tick: voters need it for
    /// election timeouts, a leader for heartbeats and for stepping down once removed.
    /// A learner or a follower outside the voter set does nothing on a tick.
    pub fn needs_tick(&mut self, id: NodeId) -> bool {
        let metrics = self.receiver.borrow_and_update();
        metrics.membership_config.membership().voter_ids().any(|voter| voter == id)
            || matches!(metrics.state, ServerState::Leader | ServerState::Candidate)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use fleetmesh_transport::{BoxFuture, TransportError};
    use openraft::BasicNode;

    use super::*;
    use crate::raft::{RaftRequest, RaftResponse, RaftTiming, RaftTransport};

    /// A transport to nobody: a single-voter cluster never sends.
    struct Nobody;

    impl RaftTransport for Nobody {
        fn send(
            &self,
            target: NodeId,
            _addr: &str,
            _request: RaftRequest,
            _timeout: Duration,
        ) -> BoxFuture<'static, Result<RaftResponse, TransportError>> {
            let error = TransportError::Unreachable {
                peer: target,
                addr: std::net::SocketAddr::from(([127, 0, 0, 1], 9)),
                reason: "no peers in this test".to_string(),
            };
            Box::pin(async move { Err(error) })
        }
    }

    #[tokio::test]
    async fn a_watch_cancelled_every_few_milliseconds_still_follows_the_instance_that_replaced_its_own() {
        // A watch made on the dormant instance; `initialize` replaces that instance with an
        // active one, which elects this node. Waiting on `changed` is cut short every 5 ms,
        // as a `select!` with busier branches does: the watch must still see the node lead.
        // (It did not when `changed` slept before switching to the new instance.)
        let db = redb::Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .expect("in-memory redb");
        let host = RaftHost::open(NodeId(1), Arc::new(db), Arc::new(Nobody), RaftTiming::default())
            .await
            .expect("open dormant");
        let mut watch = host.server_state();
        let members = BTreeMap::from([(NodeId(1), BasicNode { addr: "127.0.0.1:9".to_string() })]);
        host.initialize(members).await.expect("initialize");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !watch.leadership(NodeId(1)).1 {
            assert!(tokio::time::Instant::now() < deadline, "the watch never saw the active instance lead");
            // Cut short on purpose: see above.
            let _ = tokio::time::timeout(Duration::from_millis(5), watch.changed(&host)).await;
        }
        host.shutdown().await;
    }
}
