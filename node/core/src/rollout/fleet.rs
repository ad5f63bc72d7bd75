//! The leader's liveness view of the fleet, as the rollout planner reads it.
//!
//! Liveness is not replicated: each leader builds it from heartbeats. The planner only
//! reads it, so a new leader that rebuilds the view resumes a rollout from the
//! replicated deployment record alone.

use std::collections::BTreeMap;

use fleetmesh_state::model::ids::UnixMillis;
use fleetmesh_state::NodeId;

/// Whether a host answers heartbeats, as the leader sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Liveness {
    /// Heartbeats arrive on time.
    Alive,
    /// Heartbeats are late: the planner neither starts nor gives up on the host.
    Suspect,
    /// Heartbeats stopped: pending targets on it fail at once, in-flight ones after
    /// [`PlannerSettings::host_lost_after_ms`](super::PlannerSettings::host_lost_after_ms).
    Dead,
}

/// What the leader knows about one host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostView {
    /// Current liveness.
    pub liveness: Liveness,
    /// When the host was first seen dead in its current dead spell; `None` when it is
    /// not dead or the leader does not know since when.
    pub dead_since: Option<UnixMillis>,
}

impl HostView {
    /// An alive host.
    pub fn alive() -> Self {
        Self { liveness: Liveness::Alive, dead_since: None }
    }

    /// A suspect host.
    pub fn suspect() -> Self {
        Self { liveness: Liveness::Suspect, dead_since: None }
    }

    /// A host dead since `since`.
    pub fn dead_since(since: UnixMillis) -> Self {
        Self { liveness: Liveness::Dead, dead_since: Some(since) }
    }
}

/// The leader's liveness view: one entry per host it knows.
///
/// A host absent from the map counts as [`Liveness::Dead`] with an unknown start. A
/// leader that has just been elected must therefore list every member it has not yet
/// heard from as [`Liveness::Suspect`] until its first heartbeat round completes;
/// otherwise the planner fails pending targets on hosts that are merely unknown yet.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FleetView {
    /// Hosts by id.
    pub hosts: BTreeMap<NodeId, HostView>,
}

impl FleetView {
    /// A view in which every host of `hosts` is alive.
    pub fn all_alive(hosts: impl IntoIterator<Item = NodeId>) -> Self {
        Self { hosts: hosts.into_iter().map(|id| (id, HostView::alive())).collect() }
    }

    /// The liveness of `host`; [`Liveness::Dead`] when the view does not list it.
    pub fn liveness(&self, host: NodeId) -> Liveness {
        self.hosts.get(&host).map_or(Liveness::Dead, |view| view.liveness)
    }

    /// When `host`'s current dead spell began, if it is dead and the view knows since
    /// when.
    pub fn dead_since(&self, host: NodeId) -> Option<UnixMillis> {
        self.hosts.get(&host).filter(|view| view.liveness == Liveness::Dead).and_then(|view| view.dead_since)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_hosts_are_dead_with_unknown_start() {
        // A view listing hosts 1 (alive), 2 (suspect) and 3 (dead since 50): asserts
        // each reads back as listed and that the unlisted host 4 reads as dead with no
        // known start, as the planner's contract says.
        let mut view = FleetView::all_alive([NodeId(1)]);
        view.hosts.insert(NodeId(2), HostView::suspect());
        view.hosts.insert(NodeId(3), HostView::dead_since(UnixMillis(50)));
        assert_eq!(view.liveness(NodeId(1)), Liveness::Alive);
        assert_eq!(view.liveness(NodeId(2)), Liveness::Suspect);
        assert_eq!(view.liveness(NodeId(3)), Liveness::Dead);
        assert_eq!(view.dead_since(NodeId(3)), Some(UnixMillis(50)));
        assert_eq!(view.liveness(NodeId(4)), Liveness::Dead);
        assert_eq!(view.dead_since(NodeId(4)), None);
        assert_eq!(view.dead_since(NodeId(1)), None);
    }
}
