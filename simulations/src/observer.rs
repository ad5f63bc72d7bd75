//! The observer: replays the committed Raft log into a shadow [`ClusterState`] and feeds
//! the continuous invariants with every committed proposal.
//!
//! Every node's state machine has an apply tap ([`fleetmesh_consensus::raft::ApplyTap`])
//! that copies each entry it applies (hence committed) into a queue. Each round (every
//! 10 ms of virtual time, from the scenario's waits) the observer drains the queue:
//! every copy is fingerprinted, so two nodes that applied different entries at one
//! index are caught; the first copy of each index is replayed, in index order, with
//! the same pure `ClusterState::apply` the voters run. That gives the observer every
//! state the cluster agreed on, in order, with no sampling: the min-healthy, deadline
//! and rollback checks run on each of them.
//!
//! Taps see entries as they are applied, so a leader that snapshots and purges its log
//! faster than a round reads it (thousands of agents joining at one virtual instant)
//! loses the observer nothing. An earlier version read the leader's log each round and
//! missed entries purged in between at N = 3000.
//!
//! Observing does not disturb the run: the tap is a copy into a queue, and the rounds
//! run on the scenario's task, with no network traffic and no timers.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use fleetmesh_consensus::raft::TypeConfig;
use fleetmesh_state::model::ids::DeploymentId;
use fleetmesh_state::{ClusterState, Command, Proposal};
use fleetmesh_transport::NodeId;
use openraft::{Entry, EntryPayload};
use tokio::time::Instant;

use crate::host::disk::{InstallRecord, SimDisk};
use crate::invariants::committed_entries::fingerprint;
use crate::invariants::events_per_transition::{self, VoterEvents};
use crate::invariants::route_weights::EntryView;
use crate::invariants::trigger_cursors::DeliveryTry;
use crate::invariants::{Monitor, Violation};

/// Entries the apply taps copied, with the node that applied each.
pub type AppliedQueue = Arc<Mutex<Vec<(NodeId, Entry<TypeConfig>)>>>;

/// The replayed state and the monitor it feeds.
#[derive(Debug)]
pub struct Observer {
    next_index: Option<u64>,
    /// Entries applied somewhere, past a gap: waiting for the indexes before them.
    pending: BTreeMap<u64, Entry<TypeConfig>>,
    shadow: ClusterState,
    /// The continuous invariants.
    pub monitor: Monitor,
    /// Proposals replayed.
    pub proposals: u64,
    /// Per deployment, the Raft term of the last committed proposal that acted on it.
    pub last_term: BTreeMap<DeploymentId, u64>,
    /// Nodes the simulator has crashed now (set before each round; the blue/green
    /// route check excuses a route whose hosts are all down).
    down: BTreeSet<NodeId>,
    /// Per entry not replayed yet: the trigger deliveries tried when a node first
    /// applied it (see [`crate::trigger_sink`]).
    marks: BTreeMap<u64, u64>,
    /// Trigger deliveries tried so far.
    tries: u64,
}

/// Deployments a proposal acts on.
fn touched(proposal: &Proposal) -> BTreeSet<DeploymentId> {
    let mut ids = BTreeSet::new();
    for command in &proposal.commands {
        match command {
            Command::StartTargets { deployment_id, .. }
            | Command::FailTargets { deployment_id, .. }
            | Command::StopDeployment { deployment_id, .. }
            | Command::SetTargetTraffic { deployment_id, .. }
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
            pending: BTreeMap::new(),
            shadow: ClusterState::default(),
            monitor,
            proposals: 0,
            last_term: BTreeMap::new(),
            down: BTreeSet::new(),
            marks: BTreeMap::new(),
            tries: 0,
        }
    }

    /// Takes in the trigger deliveries tried since the last round, in order, and the
    /// entries applied meanwhile with how many had been tried when each was first
    /// applied (checked against the cursors as the entries are replayed).
    pub fn deliveries(&mut self, tries: &[DeliveryTry], marks: BTreeMap<u64, u64>) {
        self.tries += tries.len() as u64;
        self.monitor.trigger_cursors.record(tries);
        let next = self.next_index.unwrap_or_default();
        for (index, mark) in marks.into_iter().filter(|(index, _)| *index >= next) {
            self.marks.entry(index).or_insert(mark);
        }
    }

    /// Records which nodes are down for the entries of the next round.
    pub fn set_down(&mut self, down: BTreeSet<NodeId>) {
        self.down = down;
    }

    /// The replayed state.
    pub fn shadow(&self) -> &ClusterState {
        &self.shadow
    }

    /// The next index not yet replayed.
    pub fn next_index(&self) -> u64 {
        self.next_index.unwrap_or_default()
    }

    /// Entries applied somewhere that wait for an earlier index nobody was seen to
    /// apply; at the end of a run, a nonzero count is a violation (see
    /// [`Self::final_check`]).
    pub fn unreplayed(&self) -> usize {
        self.pending.len()
    }

    /// Takes in entries the apply taps copied (each with the node that applied it) at
    /// virtual time `now`: fingerprints every copy and replays each index once, in
    /// order.
    pub fn ingest(
        &mut self,
        applied: Vec<(NodeId, Entry<TypeConfig>)>,
        now: Instant,
        disks: &BTreeMap<NodeId, Arc<Mutex<SimDisk>>>,
    ) {
        for (source, entry) in applied {
            let index = entry.log_id.index;
            self.monitor.committed.record(index, fingerprint(&entry), source);
            if self.next_index.is_none_or(|next| index >= next) {
                self.pending.entry(index).or_insert(entry);
            }
        }
        // The first entry ever applied (the bootstrap membership) starts the sequence.
        let Some(mut next) = self.next_index.or_else(|| self.pending.keys().next().copied()) else { return };
        while let Some(entry) = self.pending.remove(&next) {
            next += 1;
            if let EntryPayload::Normal(proposal) = &entry.payload {
                let term = entry.log_id.leader_id.term;
                for id in touched(proposal) {
                    self.last_term.insert(id, term);
                }
                self.replay(proposal, entry.log_id.index, now, disks);
            }
        }
        self.next_index = Some(next);
    }

    /// The end-of-run check of the replay itself: every entry applied anywhere was
    /// replayed, none waits for an index no node applied.
    pub fn final_check(&mut self) {
        if let Some(first) = self.pending.keys().next() {
            let next = self.next_index();
            self.monitor.committed.fail(Violation::new(format!(
                "entries from {first} on were applied, but no node was seen applying entry {next} before them"
            )));
        }
    }

    fn replay(&mut self, proposal: &Proposal, index: u64, now: Instant, disks: &BTreeMap<NodeId, Arc<Mutex<SimDisk>>>) {
        self.proposals += 1;
        let touched = touched(proposal);
        let active_before: BTreeSet<DeploymentId> = touched
            .iter()
            .filter(|id| self.shadow.deployments.get(*id).is_some_and(|deployment| !deployment.status.is_terminal()))
            .cloned()
            .collect();
        let blue_green_before: BTreeSet<DeploymentId> = self
            .shadow
            .active_deployments()
            .filter(|deployment| deployment.blue_green.is_some())
            .map(|deployment| deployment.deployment_id.clone())
            .collect();
        let known = self.shadow.deployment_order.len();
        self.apply_checked(proposal, index);
        let created: Vec<DeploymentId> = self.shadow.deployment_order[known..].to_vec();
        let monitor = &mut self.monitor;
        monitor.runaway.created(created.len(), now);
        for id in &created {
            let deployment = &self.shadow.deployments[id];
            monitor.min_healthy.created(&self.shadow, deployment);
            monitor.deadline.created(id, now);
            monitor.rollbacks.created(&self.shadow, deployment);
            monitor.route_never_empty.created(&self.shadow, deployment);
        }
        for id in touched.iter().chain(&created) {
            let Some(deployment) = self.shadow.deployments.get(id) else { continue };
            monitor.min_healthy.check(deployment, index);
            let was_open = active_before.contains(id) || created.contains(id);
            if was_open {
                // Not a deployment that had ended before this entry (a host's late report
                // to it, refused): its hosts may since serve for another deployment, in
                // another role (found by the simulator: blue-green-chaos seed 68 at 5
                // nodes, a blue host of a finished deployment green in the next one).
                monitor.traffic.check(&self.shadow, deployment, index);
                monitor.one_per_route.check(&self.shadow, deployment, index);
            }
            if was_open && deployment.status.is_terminal() {
                monitor.deadline.ended(id, now);
                monitor.rollbacks.ended(&self.shadow, deployment, disks);
            }
        }
        let ended: BTreeSet<DeploymentId> = blue_green_before
            .into_iter()
            .filter(|id| self.shadow.deployments.get(id).is_some_and(|deployment| deployment.status.is_terminal()))
            .collect();
        let entry = EntryView { state: &self.shadow, proposal, index, ended: &ended, down: &self.down };
        monitor.check_blue_green(&entry);
    }

    /// Applies `proposal` (entry `index`) to the shadow one command at a time, which
    /// is what applying it whole does, checking the events each command appends; then
    /// checks the trigger cursors of the state it leads to.
    fn apply_checked(&mut self, proposal: &Proposal, index: u64) {
        let monitor = &mut self.monitor;
        if let [command] = &proposal.commands[..] {
            let recording = events_per_transition::recording(&self.shadow);
            self.shadow.apply(proposal);
            monitor.events.check(&self.shadow, recording, index, command);
        } else {
            for command in &proposal.commands {
                let recording = events_per_transition::recording(&self.shadow);
                let one = Proposal {
                    at: proposal.at,
                    level: proposal.level,
                    commands: vec![command.clone()],
                    by: proposal.by.clone(),
                };
                self.shadow.apply(&one);
                monitor.events.check(&self.shadow, recording, index, command);
            }
        }
        let mark = self.marks.remove(&index).unwrap_or(self.tries);
        monitor.trigger_cursors.check(&self.shadow, index, mark);
    }

    /// The end-of-run events check ([`crate::invariants::events_per_transition`]) on
    /// the replayed state and the voters' event logs.
    pub fn check_event_logs(&mut self, voters: &[VoterEvents]) {
        let index = self.next_index().saturating_sub(1);
        self.monitor.events.final_check(&self.shadow, index, voters);
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

    fn blank(term: u64, index: u64) -> Entry<TypeConfig> {
        Entry { log_id: LogId::new(CommittedLeaderId::new(term, NodeId(1)), index), payload: EntryPayload::Blank }
    }

    #[test]
    fn entries_from_several_nodes_replay_once_each_in_index_order() {
        // Node 1 applies 0–3 and node 2 applies 0–1 later; node 3's copy of 5 arrives
        // before anyone's copy of 4. Asserts each index is replayed once, 5 waits for
        // 4, and that once 4 arrives both are replayed and nothing is left waiting.
        let disks = BTreeMap::new();
        let now = Instant::now();
        let mut observer = Observer::new(Monitor::new(Duration::from_secs(60)));
        let from = |node: u64, indexes: std::ops::Range<u64>| -> Vec<(NodeId, Entry<TypeConfig>)> {
            indexes.map(|index| (NodeId(node), blank(1, index))).collect()
        };
        observer.ingest(from(1, 0..4), now, &disks);
        assert_eq!(observer.next_index(), 4);
        observer.ingest([from(2, 0..2), from(3, 5..6)].concat(), now, &disks);
        assert_eq!((observer.next_index(), observer.unreplayed()), (4, 1));
        observer.ingest(from(1, 4..6), now, &disks);
        assert_eq!((observer.next_index(), observer.unreplayed()), (6, 0));
        observer.final_check();
        assert_eq!(observer.monitor.committed.verdict(), Ok(()));
    }

    #[test]
    fn two_nodes_applying_different_entries_at_one_index_is_a_violation() {
        // Node 2 applies entry 1 of term 2 where node 1 applied entry 1 of term 1:
        // asserts the committed-entries monitor names the index and both nodes.
        let disks = BTreeMap::new();
        let now = Instant::now();
        let mut observer = Observer::new(Monitor::new(Duration::from_secs(60)));
        observer.ingest(vec![(NodeId(1), blank(1, 0)), (NodeId(1), blank(1, 1))], now, &disks);
        observer.ingest(vec![(NodeId(2), blank(1, 0)), (NodeId(2), blank(2, 1))], now, &disks);
        let violation = observer.monitor.committed.verdict().expect_err("entry 1 differs").to_string();
        assert!(
            violation.contains("entry 1 changed") && violation.contains("node 1") && violation.contains("node 2"),
            "{violation}"
        );
    }

    #[test]
    fn an_index_nobody_applied_is_reported_at_the_end() {
        // Entries 0 and 2 arrive, 1 never does: asserts the final check fails naming 1.
        let disks = BTreeMap::new();
        let now = Instant::now();
        let mut observer = Observer::new(Monitor::new(Duration::from_secs(60)));
        observer.ingest(vec![(NodeId(1), blank(1, 0)), (NodeId(1), blank(1, 2))], now, &disks);
        observer.final_check();
        let violation = observer.monitor.committed.verdict().expect_err("entry 1 is missing").to_string();
        assert!(violation.contains("entry 1"), "{violation}");
    }
}
