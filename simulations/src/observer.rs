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
    /// True while the cluster forms (see [`Self::resync`]).
    pub forming: bool,
    /// Set when the cluster was forming and entries were purged before they were read:
    /// the next round copies the leader's applied state instead.
    needs_resync: bool,
    /// Entries skipped by resyncs during formation.
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
            forming: true,
            needs_resync: false,
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
            if index > next && self.forming {
                self.needs_resync = true;
                return;
            }
            if index > next {
                self.monitor.committed.fail(format!(
                    "the observer missed entries {next}..{index}: node {source} purged them before they were read"
                ));
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

    /// True when the last round found a gap it may close with [`Self::resync`].
    pub fn needs_resync(&self) -> bool {
        self.needs_resync
    }

    /// Replaces the shadow with `state`, the leader's state applied up to `applied`.
    ///
    /// Only while the cluster forms: when thousands of nodes join, the leader commits
    /// and purges more entries at one virtual instant than one observer round can read
    /// (the observer runs between virtual instants). Those entries are membership
    /// changes, before any deployment exists, so no deployment invariant loses a state;
    /// the committed-entries check covers them only through the voters' logs at the
    /// end. After formation a gap is a violation.
    pub fn resync(&mut self, state: ClusterState, applied: u64) {
        let next = self.next_index.unwrap_or_default();
        self.resynced_entries += (applied + 1).saturating_sub(next);
        self.shadow = state;
        self.next_index = Some(applied + 1);
        self.needs_resync = false;
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
