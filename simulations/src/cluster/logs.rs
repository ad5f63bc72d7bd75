//! Reading what the nodes stored: a node's Raft log, and what the end-of-run checks read
//! from the voters.

use fleetmesh_consensus::raft::{LogStore, TypeConfig};
use fleetmesh_transport::NodeId;
use openraft::{Entry, RaftLogReader};

use super::{ClusterError, SimCluster};
use crate::invariants::VoterLog;

impl SimCluster {
    /// The Raft log of node `id`, read from its store.
    ///
    /// # Errors
    /// The store cannot be read.
    pub async fn log(&self, id: NodeId) -> Result<Vec<Entry<TypeConfig>>, ClusterError> {
        let durable = self.durable.get(&id).ok_or(ClusterError::NoStore(id))?;
        let mut store = LogStore::new(durable.raft.clone());
        Ok(store.try_get_log_entries(0..u64::MAX).await?)
    }

    /// What the end-of-run checks read from each of `voters`, in order: its applied
    /// index (if it runs), then its stored log.
    pub async fn voter_logs(&self, voters: &[NodeId]) -> Vec<VoterLog<ClusterError>> {
        let mut logs = Vec::with_capacity(voters.len());
        for id in voters {
            let applied_index = self.nodes.get(id).map(|sim| sim.node.state().applied_index());
            logs.push(VoterLog { id: *id, applied_index, entries: self.log(*id).await });
        }
        logs
    }
}
