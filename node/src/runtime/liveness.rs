//! The leader's view of which nodes are alive, from their polls (pure; time passed in).
//!
//! Every node polls the leader at least once per poll-hold period, so a node that has
//! not polled for `suspect_after` is suspect and for `dead_after` is dead. A new leader
//! starts everyone at "heard now": it rebuilds its view within a few poll periods
//! rather than declaring the whole cluster dead on its first tick.

use std::collections::BTreeMap;
use std::time::Duration;

use fleetmesh_transport::NodeId;
use serde::Serialize;
use tokio::time::Instant;

/// alive / suspect / dead, as `cluster status` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// Polled recently.
    Alive,
    /// Missed a few polls.
    Suspect,
    /// Silent for longer than the dead threshold.
    Dead,
}

/// Last time each node was heard from.
#[derive(Debug, Clone)]
pub struct Liveness {
    last_heard: BTreeMap<NodeId, Instant>,
    suspect_after: Duration,
    dead_after: Duration,
    started: Instant,
}

impl Liveness {
    /// An empty view; nodes never heard from count as heard at `now` (the grace above).
    pub fn new(now: Instant, suspect_after: Duration, dead_after: Duration) -> Self {
        assert!(suspect_after < dead_after, "suspect threshold must be below the dead threshold");
        Self { last_heard: BTreeMap::new(), suspect_after, dead_after, started: now }
    }

    /// Records a sign of life.
    pub fn heard(&mut self, node: NodeId, now: Instant) {
        self.last_heard.insert(node, now);
    }

    /// Forgets a node that left.
    pub fn forget(&mut self, node: NodeId) {
        self.last_heard.remove(&node);
    }

    /// How long since `node` was heard from (since the view started if never).
    pub fn silent_for(&self, node: NodeId, now: Instant) -> Duration {
        let last = self.last_heard.get(&node).copied().unwrap_or(self.started);
        now.saturating_duration_since(last)
    }

    /// The node's health now. A node not heard from since this view started is
    /// suspect (not alive) until it polls: a new leader must not start work on a host it
    /// has not heard from, nor declare it dead before the dead threshold.
    pub fn health(&self, node: NodeId, now: Instant) -> Health {
        let silent = self.silent_for(node, now);
        if silent >= self.dead_after {
            Health::Dead
        } else if silent >= self.suspect_after || !self.last_heard.contains_key(&node) {
            Health::Suspect
        } else {
            Health::Alive
        }
    }

    /// For a dead node, how long it has been dead (silent beyond the dead threshold).
    pub fn dead_for(&self, node: NodeId, now: Instant) -> Option<Duration> {
        self.silent_for(node, now).checked_sub(self.dead_after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn nodes_go_suspect_then_dead_and_recover() {
        // A node heard once, then silent: alive, suspect after 2 s, dead after 5 s;
        // one poll brings it back.
        let start = Instant::now();
        let mut view = Liveness::new(start, Duration::from_secs(2), Duration::from_secs(5));
        view.heard(NodeId(2), start);
        assert_eq!(view.health(NodeId(2), start + Duration::from_secs(1)), Health::Alive);
        assert_eq!(view.health(NodeId(2), start + Duration::from_secs(3)), Health::Suspect);
        let late = start + Duration::from_secs(8);
        assert_eq!(view.health(NodeId(2), late), Health::Dead);
        assert_eq!(view.dead_for(NodeId(2), late), Some(Duration::from_secs(3)));
        view.heard(NodeId(2), late);
        assert_eq!(view.health(NodeId(2), late), Health::Alive);
        // Never heard: suspect, then dead counted from the start of the view.
        assert_eq!(view.health(NodeId(9), start + Duration::from_secs(1)), Health::Suspect);
        assert_eq!(view.health(NodeId(9), start + Duration::from_secs(6)), Health::Dead);
    }
}
