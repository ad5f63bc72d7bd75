//! The observer: replays the committed Raft log into a shadow [`ClusterState`] and feeds
//! the continuous invariants with every committed proposal.
//!
//! Each round (every 10 ms of virtual time, from the scenario's waits) it reads, from
//! the node that leads, the entries that node has applied since the last round — plus
//! the last one it already read, to notice a committed entry that changed across a
//! leader change. Applying them with the same pure `ClusterState::apply` the voters run
//! gives the observer every state the cluster agreed on, in order, with no sampling:
//! the min-healthy, deadline and rollback checks run on each of them.
//!
//! Reading does not disturb the run: it happens on the scenario's task, from the
//! leader's in-memory redb, with no network traffic and no timers.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use fleetmesh_consensus::model::ids::DeploymentId;
use fleetmesh_consensus::raft::TypeConfig;
use fleetmesh_consensus::state::{ClusterState, Command, Proposal};
use fleetmesh_transport::NodeId;
use openraft::{Entry, EntryPayload};
use tokio::time::Instant;

use crate::host::disk::{InstallRecord, SimDisk};
use crate::invariants::committed_entries::fingerprint;
use crate::invariants::Monitor;

/// The replayed state and the monitor it feeds.
#[derive(Debug)]
pub struct Observer {
    next_index: Option<u64>,
    shadow: ClusterState,
    /// The continuous invariants.
    pub monitor: Monitor,
    /// Proposals replayed.
    pub proposals: u64,
    /// Per deployment, the Raft term of the last committed proposal that acted on it.
    pub last_term: BTreeMap<DeploymentId, u64>,
    /// The first index of a gap the last round found: entries the leader purged before
    /// they were read. The next round copies the leader's applied state instead.
    gap_from: Option<u64>,
    /// Entries skipped by resyncs while no deployment was running.
    pub resynced_entries: u64,
}

/// Deployments a proposal acts on.
fn touched(proposal: &Proposal) -> BTreeSet<DeploymentId> {
    let mut ids = BTreeSet::new();
    for command in &proposal.commands {
        match command {
            Command::StartTargets { deployment_id, .. }
            | Command::FailTargets { deployment_id, .. }
            | Command::StopDeployment { deployment_id, .. }
            | Command::CreateDeployment { deployment_id, .. } => {
                ids.insert(deployment_id.clone());
            }
            Command::FinishDeployment(finish) => {
                ids.insert(finish.deployment_id.clone());
            }
            Command::ReportTargets { reports } => {
                ids.extend(reports.iter().map(|report| report.deployment_id.clone()));
            }
            _ => {}
        }
    }
    ids
}

impl Observer {
    /// An observer of a cluster that has committed nothing yet.
    pub fn new(monitor: Monitor) -> Self {
        Self {
            next_index: None,
            shadow: ClusterState::default(),
            monitor,
            proposals: 0,
            last_term: BTreeMap::new(),
            gap_from: None,
            resynced_entries: 0,
        }
    }

    /// The replayed state.
    pub fn shadow(&self) -> &ClusterState {
        &self.shadow
    }

    /// The first index the next round should read: the last one read (to compare it
    /// again), or 0.
    pub fn read_from(&self) -> u64 {
        self.next_index.map_or(0, |next| next.saturating_sub(1))
    }

    /// The next index not yet replayed.
    pub fn next_index(&self) -> u64 {
        self.next_index.unwrap_or_default()
    }

    /// Replays `entries` read from `source`'s log at virtual time `now`.
    pub fn ingest(
        &mut self,
        source: NodeId,
        entries: &[Entry<TypeConfig>],
        now: Instant,
        disks: &BTreeMap<NodeId, Arc<Mutex<SimDisk>>>,
    ) {
        for entry in entries {
            let index = entry.log_id.index;
            let next = *self.next_index.get_or_insert(index);
            self.monitor.committed.record(index, fingerprint(entry), source);
            if index < next {
                continue;
            }
            if index > next {
                self.gap_from = Some(next);
                return;
            }
            self.next_index = Some(index + 1);
            if let EntryPayload::Normal(proposal) = &entry.payload {
                let term = entry.log_id.leader_id.term;
                for id in touched(proposal) {
                    self.last_term.insert(id, term);
                }
                self.replay(proposal, index, now, disks);
            }
        }
    }

    /// True when the last round found a gap that [`Self::resync`] must close.
    pub fn needs_resync(&self) -> bool {
        self.gap_from.is_some()
    }

    /// Closes a gap: replaces the shadow with `state`, `source`'s state applied up to
    /// `applied`.
    ///
    /// With thousands of nodes the leader can commit, snapshot and purge more entries at
    /// one virtual instant than one observer round reads (the observer runs between
    /// virtual instants), e.g. when every agent reports at once. That loses nothing the
    /// deployment invariants check when no deployment was running before the gap and
    /// none was created in it: every deployment record is then the same on both sides
    /// (terminal ones never change), so the gap only held membership, health and
    /// holder updates, and the voters' logs are still compared at the end. Otherwise
    /// the gap is a violation (states of a running deployment went unchecked).
    pub fn resync(&mut self, source: NodeId, state: ClusterState, applied: u64) {
        let Some(from) = self.gap_from.take() else { return };
        let running = self.shadow.deployments.values().any(|deployment| !deployment.status.is_terminal());
        if running || state.deployment_order != self.shadow.deployment_order {
            self.monitor.committed.fail(format!(
                "the observer missed entries {from}..={applied} while a deployment ran: node {source} purged them \
                 before they were read"
            ));
        } else {
            self.resynced_entries += (applied + 1).saturating_sub(from);
        }
        self.shadow = state;
        self.next_index = Some(applied + 1);
    }

    fn replay(&mut self, proposal: &Proposal, index: u64, now: Instant, disks: &BTreeMap<NodeId, Arc<Mutex<SimDisk>>>) {
        self.proposals += 1;
        let touched = touched(proposal);
        let active_before: BTreeSet<DeploymentId> = touched
            .iter()
            .filter(|id| self.shadow.deployments.get(*id).is_some_and(|deployment| !deployment.status.is_terminal()))
            .cloned()
            .collect();
        let known = self.shadow.deployment_order.len();
        self.shadow.apply(proposal);
        let created: Vec<DeploymentId> = self.shadow.deployment_order[known..].to_vec();
        let monitor = &mut self.monitor;
        monitor.runaway.created(created.len(), now);
        for id in &created {
            let deployment = &self.shadow.deployments[id];
            monitor.min_healthy.created(&self.shadow, deployment);
            monitor.deadline.created(id, now);
            monitor.rollbacks.created(&self.shadow, deployment);
        }
        for id in touched.iter().chain(&created) {
            let Some(deployment) = self.shadow.deployments.get(id) else { continue };
            monitor.min_healthy.check(deployment, index);
            let was_open = active_before.contains(id) || created.contains(id);
            if was_open && deployment.status.is_terminal() {
                monitor.deadline.ended(id, now);
                monitor.rollbacks.ended(&self.shadow, deployment, disks);
            }
        }
    }

    /// Checks installs and open deployments against the replayed state.
    pub fn check_round(&mut self, installs: Vec<InstallRecord>, now: Instant) {
        self.monitor.installs.check(&self.shadow, installs);
        self.monitor.deadline.check_open(&self.shadow, now);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use openraft::{CommittedLeaderId, LogId};

    use super::*;

    fn blank(index: u64) -> Entry<TypeConfig> {
        Entry { log_id: LogId::new(CommittedLeaderId::new(1, NodeId(1)), index), payload: EntryPayload::Blank }
    }

    #[test]
    fn a_purge_gap_resyncs_when_no_deployment_ran_and_is_a_violation_otherwise() {
        // An observer reads entries 1–2, then finds 10 (3–9 purged): asserts it asks for
        // a resync, that copying a leader state with no deployment skips 3..=12 without
        // a violation and continues at 13, and that a second gap across which a
        // deployment was created is reported as a committed-entries violation.
        let disks = BTreeMap::new();
        let now = Instant::now();
        let mut observer = Observer::new(Monitor::new(Duration::from_secs(60)));
        observer.ingest(NodeId(1), &[blank(1), blank(2)], now, &disks);
        assert!(!observer.needs_resync());
        observer.ingest(NodeId(1), &[blank(2), blank(10)], now, &disks);
        assert!(observer.needs_resync());
        observer.resync(NodeId(1), ClusterState::default(), 12);
        assert!(!observer.needs_resync());
        assert_eq!(observer.resynced_entries, 10);
        assert_eq!(observer.next_index(), 13);
        assert_eq!(observer.monitor.committed.verdict(), Ok(()));
        observer.ingest(NodeId(1), &[blank(12), blank(20)], now, &disks);
        let mut leader_state = ClusterState::default();
        leader_state.deployment_order.push(DeploymentId("d-CREATED01".into()));
        observer.resync(NodeId(1), leader_state, 25);
        let violation = observer.monitor.committed.verdict().expect_err("a deployment was created in the gap");
        assert!(violation.contains("13..=25"), "{violation}");
        assert_eq!(observer.next_index(), 26);
    }
}
