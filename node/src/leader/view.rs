//! The leader's soft view of the fleet: liveness from polls, download progress, and what
//! is derived from them (every member's health, the planner's fleet view, the cluster
//! view `cluster status` shows).
//!
//! None of it is replicated: it is rebuilt from scratch whenever a node becomes leader
//! (liveness starts at "heard now"), keyed by the term it belongs to.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use fleetmesh_core::rollout::{FleetView, HostView};
use fleetmesh_model::{ClusterNode, GetClusterOutput, NodeHealth, NodeRole};
use fleetmesh_state::model::ids::{RevisionId, UnixMillis};
use fleetmesh_state::Release;
use fleetmesh_transport::NodeId;
use tokio::time::Instant;

use super::liveness::{Health, Liveness};
use super::Leader;
use crate::runtime::protocol::RevisionProgress;
use crate::runtime::Timing;

/// The leader's view in one term.
pub(super) struct LeaderView {
    term: u64,
    pub(super) liveness: Liveness,
    /// Every member's health, for planning and autopilot, while it is valid.
    health: Option<HealthSnapshot>,
    /// Download progress per revision per node, as reported in polls.
    pub(super) progress: BTreeMap<RevisionId, BTreeMap<NodeId, RevisionProgress>>,
    /// Counts polls that reported a revision complete for the first time.
    pub(super) completions: u64,
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
    pub(super) hosts: Arc<Vec<(NodeId, Health, Option<Instant>)>>,
    /// The planner's view made from it, with the wall-clock and monotonic times it was
    /// made at (its `dead_since` times are wall-clock times).
    fleet: Option<(UnixMillis, Instant, Arc<FleetView>)>,
}

impl HealthSnapshot {
    fn is_valid(&self, members: u64, revivals: u64, now: Instant) -> bool {
        self.members == members && self.revivals == revivals && now < self.until
    }
}

/// The view, behind its lock, rebuilt when the term changes.
pub(super) struct ViewSlot {
    timing: Timing,
    view: Mutex<Option<LeaderView>>,
}

impl ViewSlot {
    pub(super) fn new(timing: Timing) -> Self {
        Self { timing, view: Mutex::new(None) }
    }

    /// Runs `update` on the view of `term`, made afresh when the view is of another term.
    pub(super) fn with<T>(&self, term: u64, now: Instant, update: impl FnOnce(&mut LeaderView) -> T) -> T {
        let mut guard = self.view.lock().unwrap_or_else(PoisonError::into_inner);
        if guard.as_ref().is_none_or(|view| view.term != term) {
            *guard = Some(LeaderView {
                term,
                liveness: Liveness::new(now, self.timing.suspect_after, self.timing.dead_after),
                health: None,
                progress: BTreeMap::new(),
                completions: 0,
                releases: BTreeMap::new(),
            });
        }
        update(guard.as_mut().expect("set above"))
    }

    /// Forgets the view (the node stopped leading).
    pub(super) fn clear(&self) {
        *self.view.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

/// The cluster as the leader sees it (`GetCluster`, `cluster status`): the API model's
/// type, so the CLI reads what the leader writes.
pub type ClusterView = GetClusterOutput;

/// One member in [`ClusterView`].
pub type NodeView = ClusterNode;

impl Leader {
    /// The leader's liveness verdict on `node` (Alive when this node is not the leader
    /// or has no view yet).
    pub fn health(&self, node: NodeId) -> Health {
        if node == self.node.id() {
            return Health::Alive;
        }
        let now = Instant::now();
        self.view.with(self.node.term(), now, |view| view.liveness.health(node, now))
    }

    /// How long `node` has been dead in the leader's view.
    pub fn dead_for(&self, node: NodeId) -> Option<Duration> {
        let now = Instant::now();
        self.view.with(self.node.term(), now, |view| view.liveness.dead_for(node, now))
    }

    /// The cluster view (meaningful on the leader).
    pub fn cluster_view(&self) -> ClusterView {
        let voters = self.node.voters();
        let leader = self.node.raft().metrics().borrow().current_leader;
        let (members, cluster_id, voters_desired, feature_level) = self.node.state().read(|state| {
            (
                state.members.values().cloned().collect::<Vec<_>>(),
                state.cluster.as_ref().map(|info| info.ca.cluster_id.clone()).unwrap_or_default(),
                state.cluster.as_ref().map_or(0, |info| info.voters_desired),
                state.feature_level,
            )
        });
        let releases = self.releases();
        let nodes = members
            .into_iter()
            .map(|member| NodeView {
                id: member.id,
                address: member.listen.to_string(),
                api: member.api.to_string(),
                role: if voters.contains(&member.id) { NodeRole::Voter } else { NodeRole::Agent },
                health: match self.health(member.id) {
                    Health::Alive => NodeHealth::Alive,
                    Health::Suspect => NodeHealth::Suspect,
                    Health::Dead => NodeHealth::Dead,
                },
                tags: member.tags,
                release: releases.get(&member.id).cloned(),
            })
            .collect();
        ClusterView { leader, term: self.node.term(), cluster_id, voters_desired, feature_level, nodes }
    }

    /// Every poller's release, as its last poll reported it; this node's own is this build.
    pub(super) fn releases(&self) -> BTreeMap<NodeId, Release> {
        let now = Instant::now();
        let mut releases = self.view.with(self.node.term(), now, |view| view.releases.clone());
        releases.insert(self.node.id(), Release::this_build());
        releases
    }

    /// Per-node download progress of a revision, as reported in polls.
    pub fn revision_progress(&self, revision: RevisionId) -> BTreeMap<NodeId, RevisionProgress> {
        let now = Instant::now();
        self.view.with(self.node.term(), now, |view| view.progress.get(&revision).cloned().unwrap_or_default())
    }

    /// Runs `read` on the current [`HealthSnapshot`], made afresh if it is no longer
    /// valid.
    pub(super) fn with_health<T>(&self, now: Instant, read: impl FnOnce(&mut HealthSnapshot) -> T) -> T {
        let term = self.node.term();
        let mut read = Some(read);
        // Twice at most: a view replaced between the check and the use (another task
        // moving it to a new term) is found stale on the second pass and remade.
        loop {
            let members_version = self.node.state().versions().members;
            let valid = self.view.with(term, now, |view| {
                let revivals = view.liveness.revivals();
                view.health.as_ref().is_some_and(|health| health.is_valid(members_version, revivals, now))
            });
            // Read before taking the view's lock: the state's lock is never taken inside it.
            let members: Option<Vec<NodeId>> =
                (!valid).then(|| self.node.state().read(|state| state.members.keys().copied().collect()));
            let result = self.view.with(term, now, |view| {
                if let Some(members) = members {
                    view.health = Some(HealthSnapshot {
                        members: members_version,
                        revivals: view.liveness.revivals(),
                        until: view.liveness.next_change(now),
                        hosts: Arc::new(view.liveness.health_of_all(&members, now)),
                        fleet: None,
                    });
                }
                let revivals = view.liveness.revivals();
                let health = view.health.as_mut().filter(|health| health.is_valid(members_version, revivals, now))?;
                read.take().map(|read| read(health))
            });
            if let Some(result) = result {
                return result;
            }
        }
    }

    /// The planner's view of the fleet: every member's liveness, and since when dead.
    pub fn fleet_view(&self) -> Arc<FleetView> {
        let now = Instant::now();
        let wall = self.node.clock().now();
        let me = self.node.id();
        self.with_health(now, |health| {
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
        })
    }
}
