//! Reading what the nodes stored: a node's Raft log, and what the end-of-run checks read
//! from the voters.

use fleetmesh_consensus::raft::{LogStore, TypeConfig};
use fleetmesh_transport::NodeId;
use openraft::{Entry, RaftLogReader};

use super::{ClusterError, SimCluster};
use crate::invariants::events_per_transition::VoterEvents;
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

    /// Checks the event log of every running voter of the current leader that applied
    /// as far as the observer replayed against the replayed one (after a round, so the
    /// observer is as far as the nodes): the event numbers survived snapshots and
    /// restarts alike everywhere ([`crate::invariants::events_per_transition`]).
    pub async fn check_event_logs(&self) {
        self.pump().await;
        let voters = self.leader().map(|leader| self.node(leader).voters()).unwrap_or_default();
        let logs: Vec<VoterEvents> = voters
            .into_iter()
            .filter_map(|id| self.nodes.get(&id).map(|sim| (id, sim.node.state())))
            .map(|(node, state)| VoterEvents {
                node,
                applied_index: state.applied_index(),
                events: state.read(|state| state.events.clone()),
            })
            .collect();
        self.with_observer(|observer| observer.check_event_logs(&logs));
    }
}
