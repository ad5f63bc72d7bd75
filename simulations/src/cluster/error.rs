//! Why a cluster operation failed: a node could not boot, the cluster could not form, a
//! wait or a proposal ran out of virtual time, or a node's store cannot be read. A
//! violated invariant is not among them: that is a verdict
//! ([`Violation`](crate::invariants::Violation)), not a failure to run.

use std::time::Duration;

use fleetmesh_consensus::host::HostError;
use fleetmesh_node::runtime::ProposeError;
use fleetmesh_state::Outcome;
use fleetmesh_transport::NodeId;

/// A cluster operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// A node's in-memory Raft store could not be created.
    #[error(transparent)]
    Store(#[from] redb::DatabaseError),
    /// A node could not start, or the first node could not initialize Raft.
    #[error(transparent)]
    Node(#[from] HostError),
    /// The first node could not propose the other members.
    #[error(transparent)]
    Propose(#[from] ProposeError),
    /// A member was not added as itself while the cluster formed.
    #[error("node {id} was added as {outcome:?}")]
    MemberNotAdded {
        /// The member.
        id: NodeId,
        /// What its `AddMember` command returned.
        outcome: Outcome,
    },
    /// A monitor halted the run (see [`crate::invariants::runaway`]) during a wait.
    #[error("the run was halted while waiting for {what}: the cluster ran away")]
    Halted {
        /// What the wait was for.
        what: String,
    },
    /// A wait ran out of virtual time.
    #[error("timed out after {timeout:?} of virtual time waiting for {what}")]
    TimedOut {
        /// What the wait was for.
        what: String,
        /// The virtual time it allowed.
        timeout: Duration,
    },
    /// No leader committed a proposal in time.
    #[error("no leader committed the command within {timeout:?}: {last}")]
    NotCommitted {
        /// The virtual time the proposal allowed.
        timeout: Duration,
        /// The last refusal, or `no leader`.
        last: String,
    },
    /// The node was never started, so it has no store.
    #[error("no store for node {0}")]
    NoStore(NodeId),
    /// A node's stored Raft log could not be read.
    #[error(transparent)]
    LogRead(#[from] openraft::StorageError<NodeId>),
}
