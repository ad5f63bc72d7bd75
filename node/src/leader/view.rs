//! The leader's soft view of the fleet in one term: liveness from polls, download
//! progress, each poller's release, and what is derived from them (every member's
//! health, the planner's fleet view).
//!
//! None of it is replicated: it is rebuilt from scratch whenever a node becomes leader
//! (liveness starts at "heard now"). It belongs to the leader's core ([`super::core`]),
//! which the leader task alone owns, so nothing here locks.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use fleetmesh_core::rollout::{FleetView, HostView};
use fleetmesh_model::{ClusterNode, GetClusterOutput};
use fleetmesh_state::model::ids::{RevisionId, UnixMillis};
use fleetmesh_state::Release;
use fleetmesh_transport::NodeId;
use tokio::time::Instant;

use super::liveness::{Health, Liveness, Thresholds};
use crate::runtime::protocol::RevisionProgress;

/// The cluster as the leader sees it (`GetCluster`, `cluster status`): the API model's
/// type, so the CLI reads what the leader writes.
pub type ClusterView = GetClusterOutput;

/// One member in [`ClusterView`].
pub type NodeView = ClusterNode;

/// The leader's view in one term.
pub(super) struct LeaderView {
    pub(super) term: u64,
    pub(super) liveness: Liveness,
    /// Every member's health, for planning and autopilot, while it is valid.
    health: Option<HealthSnapshot>,
    /// Download progress per revision per node, as reported in polls.
    pub(super) progress: BTreeMap<RevisionId, BTreeMap<NodeId, RevisionProgress>>,
    /// Counts polls that reported a revision complete for the first time.
    pub(super) completions: u64,
    /// Revisions nodes reported complete that the rollout engine has not yet seen
    /// recorded as held in the replicated state (see `engine::new_revision_holders`):
    /// the engine plans after every applied entry, and scanning every node's progress
    /// each time was O(fleet) per entry (6 % of a simulated run at 5,000 nodes).
    pub(super) unrecorded: BTreeSet<(RevisionId, NodeId)>,
    /// Each poller's release, as its last poll reported it.
    pub(super) releases: BTreeMap<NodeId, Release>,
}

/// Every member's health as [`Liveness::health_of_all`] gives it. By the contract of
/// [`Liveness::revivals`] it stays true while the member list and the revivals count are
/// unchanged and the time is before `until`: planning runs after every applied entry,
/// and recomputing every member's health each time was 8 % of a simulated run.
pub(super) struct HealthSnapshot {
    /// `Versions::members` when the member list was read.
    members: u64,
    revivals: u64,
    until: Instant,
    /// Each member, its health and, when dead, the instant it turned dead.
    pub(super) hosts: Arc<Vec<(NodeId, Health, Option<Instant>)>>,
    /// The planner's view made from it, with the wall-clock and monotonic times it was
    /// made at (its `dead_since` times are wall-clock times).
    fleet: Option<(UnixMillis, Instant, Arc<FleetView>)>,
}

/// What one poll told the leader besides "I am alive".
#[derive(Debug, Clone)]
pub(super) struct PollFacts {
    pub(super) node: NodeId,
    pub(super) release: Release,
    pub(super) revisions: Vec<RevisionProgress>,
}

impl LeaderView {
    /// A fresh view of `term` started at `now`, having heard from nobody.
    pub(super) fn new(term: u64, now: Instant, thresholds: Thresholds) -> Self {
        Self {
            term,
            liveness: Liveness::new(now, thresholds),
            health: None,
            progress: BTreeMap::new(),
            completions: 0,
            unrecorded: BTreeSet::new(),
            releases: BTreeMap::new(),
        }
    }

    /// Records a poll that arrived at `at`: a sign of life, the poller's release and
    /// its download progress.
    pub(super) fn record_poll(&mut self, poll: PollFacts, at: Instant) {
        self.liveness.heard(poll.node, at);
        if self.releases.get(&poll.node) != Some(&poll.release) {
            self.releases.insert(poll.node, poll.release);
        }
        for progress in poll.revisions {
            let (complete, revision_id) = (progress.complete, progress.revision_id);
            let before = self.progress.entry(progress.revision_id).or_default().insert(poll.node, progress);
            if complete && !before.is_some_and(|before| before.complete) {
                self.completions += 1;
                self.unrecorded.insert((revision_id, poll.node));
            }
        }
    }

    /// The current [`HealthSnapshot`] of the members, made afresh when it is no longer
    /// valid (`members` is asked only then).
    pub(super) fn health(
        &mut self,
        members_version: u64,
        now: Instant,
        members: impl FnOnce() -> Vec<NodeId>,
    ) -> &mut HealthSnapshot {
        let revivals = self.liveness.revivals();
        let snapshot = match self.health.take() {
            Some(health) if health.members == members_version && health.revivals == revivals && now < health.until => {
                health
            }
            _ => HealthSnapshot {
                members: members_version,
                revivals,
                until: self.liveness.next_change(now),
                hosts: Arc::new(self.liveness.health_of_all(&members(), now)),
                fleet: None,
            },
        };
        self.health.insert(snapshot)
    }

    /// The planner's view of the fleet: every member's liveness, and since when dead
    /// (wall-clock `wall`); `me`, the leader, is always alive.
    pub(super) fn fleet_view(
        &mut self,
        me: NodeId,
        members_version: u64,
        now: Instant,
        wall: UnixMillis,
        members: impl FnOnce() -> Vec<NodeId>,
    ) -> Arc<FleetView> {
        let health = self.health(members_version, now, members);
        if let Some((made_wall, made, fleet)) = &health.fleet {
            // A dead host's `dead_since` is a wall-clock time: reuse the view only if
            // the wall clock moved with the monotonic one since it was made.
            let wall_moved = i128::from(wall.0) - i128::from(made_wall.0);
            let moved = now.duration_since(*made).as_millis() as i128;
            if (wall_moved - moved).abs() <= 1 {
                return fleet.clone();
            }
        }
        let hosts = health
            .hosts
            .iter()
            .map(|(id, health, dead_at)| {
                let host = match health {
                    _ if *id == me => HostView::alive(),
                    Health::Alive => HostView::alive(),
                    Health::Suspect => HostView::suspect(),
                    Health::Dead => {
                        let dead_for = dead_at.map_or(0, |at| now.duration_since(at).as_millis() as u64);
                        HostView::dead_since(UnixMillis(wall.0.saturating_sub(dead_for)))
                    }
                };
                (*id, host)
            })
            .collect();
        let fleet = Arc::new(FleetView { hosts });
        health.fleet = Some((wall, now, fleet.clone()));
        fleet
    }
}
