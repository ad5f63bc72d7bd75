//! What the end-of-run checks read from one voter: how far it applied, and its stored
//! Raft log. The cluster gathers these
//! ([`SimCluster::voter_logs`](crate::cluster::SimCluster::voter_logs)); the checks only
//! read them, so they know nothing of how a cluster runs.

use fleetmesh_consensus::raft::TypeConfig;
use fleetmesh_transport::NodeId;
use openraft::Entry;

/// One voter as the end-of-run checks see it. `E` is why its log could not be read.
#[derive(Debug)]
pub struct VoterLog<E> {
    /// The voter.
    pub id: NodeId,
    /// The last index its state machine applied; `None` when the node is not running.
    pub applied_index: Option<u64>,
    /// Every entry its store still holds, in index order, or why it could not be read.
    pub entries: Result<Vec<Entry<TypeConfig>>, E>,
}
