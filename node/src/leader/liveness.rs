//! The leader's view of which nodes are alive, from their polls (pure; time passed in).
//!
//! Every node polls the leader at least once per poll-hold period, so a node that has
//! not polled for `suspect_after` is suspect and for `dead_after` is dead. A new leader
//! has heard from nobody: a node it has never heard from is suspect until it polls, and
//! dead only after `first_contact_after`, counted from when the view started. That is
//! longer than `dead_after` because an agent that was polling the old leader first waits
//! out that poll and then searches for the new one.

use std::collections::{BTreeMap, BTreeSet};
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

/// The silences after which a node is suspect or dead.
#[derive(Clone, Copy, Debug)]
pub struct Thresholds {
    /// A node heard in this view and silent this long is suspect.
    pub suspect_after: Duration,
    /// A node heard in this view and silent this long is dead.
    pub dead_after: Duration,
    /// A node never heard in this view is dead once the view is this old.
    pub first_contact_after: Duration,
}

/// Last time each node was heard from.
#[derive(Debug, Clone)]
pub struct Liveness {
    last_heard: BTreeMap<NodeId, Instant>,
    /// `last_heard` ordered by time, to find the next node to go silent in O(log n).
    by_time: BTreeSet<(Instant, NodeId)>,
    suspect_after: Duration,
    dead_after: Duration,
    first_contact_after: Duration,
    started: Instant,
    /// Counts the changes of health that polls cause (a suspect or dead node heard
    /// again); changes by the passage of time are found with [`Self::next_change`].
    revivals: u64,
}

impl Liveness {
    /// An empty view started at `now`; nodes never heard from are suspect until
    /// `first_contact_after` has passed (the grace above).
    pub fn new(now: Instant, thresholds: Thresholds) -> Self {
        let Thresholds { suspect_after, dead_after, first_contact_after } = thresholds;
        assert!(suspect_after < dead_after, "suspect threshold must be below the dead threshold");
        assert!(dead_after <= first_contact_after, "a first contact must be given at least the dead threshold");
        Self {
            last_heard: BTreeMap::new(),
            by_time: BTreeSet::new(),
            suspect_after,
            dead_after,
            first_contact_after,
            started: now,
            revivals: 0,
        }
    }

    /// Records a sign of life.
    pub fn heard(&mut self, node: NodeId, now: Instant) {
        if self.health(node, now) != Health::Alive {
            self.revivals += 1;
        }
        if let Some(before) = self.last_heard.insert(node, now) {
            self.by_time.remove(&(before, node));
        }
        self.by_time.insert((now, node));
    }

    /// A number that moves whenever a poll changed some node's health. Together with
    /// [`Self::next_change`] it tells a reader of health when to look again: the health
    /// of every node is the same as long as this number is and the time is before
    /// `next_change`.
    pub fn revivals(&self) -> u64 {
        self.revivals
    }

    /// The earliest instant after `now` at which some node's health changes if nobody
    /// polls (alive to suspect, or suspect to dead). O(log n).
    pub fn next_change(&self, now: Instant) -> Instant {
        // Nodes never heard from turn dead `first_contact_after` into the view.
        let never_heard = Some(self.started + self.first_contact_after).filter(|at| *at > now);
        let first_after = |threshold: Duration| {
            // Nodes heard at or before `now - threshold` have crossed it already.
            let crossed_until = now.checked_sub(threshold);
            let next = match crossed_until {
                Some(until) => self
                    .by_time
                    .range((std::ops::Bound::Excluded((until, NodeId(u64::MAX))), std::ops::Bound::Unbounded))
                    .next(),
                None => self.by_time.iter().next(),
            };
            next.map(|(heard, _)| *heard + threshold)
        };
        [never_heard, first_after(self.suspect_after), first_after(self.dead_after)]
            .into_iter()
            .flatten()
            .filter(|at| *at > now)
            .min()
            .unwrap_or(now + self.dead_after)
    }

    /// The node's health now. A node not heard from since this view started is
    /// suspect (not alive) until it polls: a new leader must not start work on a host it
    /// has not heard from, nor declare it dead before the first-contact threshold.
    pub fn health(&self, node: NodeId, now: Instant) -> Health {
        self.health_after(self.last_heard.get(&node).copied(), now).0
    }

    /// The health of a node last heard at `last` (`None`: never in this view), and for
    /// a dead one the instant it turned dead.
    fn health_after(&self, last: Option<Instant>, now: Instant) -> (Health, Option<Instant>) {
        let Some(last) = last else {
            let dead_at = self.started + self.first_contact_after;
            return if now >= dead_at { (Health::Dead, Some(dead_at)) } else { (Health::Suspect, None) };
        };
        let silent = now.saturating_duration_since(last);
        if silent >= self.dead_after {
            (Health::Dead, Some(last + self.dead_after))
        } else if silent >= self.suspect_after {
            (Health::Suspect, None)
        } else {
            (Health::Alive, None)
        }
    }

    /// The health of each of `members` (in increasing id order) at `now`, and for the
    /// dead ones the instant they turned dead: [`Self::health`] and [`Self::dead_at`]
    /// for all of them in one walk of the view.
    pub fn health_of_all(&self, members: &[NodeId], now: Instant) -> Vec<(NodeId, Health, Option<Instant>)> {
        debug_assert!(members.windows(2).all(|pair| pair[0] < pair[1]), "members in increasing id order");
        let mut heard = self.last_heard.iter().peekable();
        members
            .iter()
            .map(|id| {
                while heard.next_if(|(node, _)| *node < id).is_some() {}
                let last = heard.next_if(|(node, _)| *node == id).map(|(_, at)| *at);
                let (health, dead_at) = self.health_after(last, now);
                (*id, health, dead_at)
            })
            .collect()
    }

    /// For a dead node, the instant it turned dead (its silence crossed the dead
    /// threshold); `None` for a node not dead at `now`.
    pub fn dead_at(&self, node: NodeId, now: Instant) -> Option<Instant> {
        self.health_after(self.last_heard.get(&node).copied(), now).1
    }

    /// For a dead node, how long it has been dead.
    pub fn dead_for(&self, node: NodeId, now: Instant) -> Option<Duration> {
        self.dead_at(node, now).map(|at| now.saturating_duration_since(at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Suspect after 2 s, dead after 5 s, never heard: dead 7 s into the view.
    const THRESHOLDS: Thresholds = Thresholds {
        suspect_after: Duration::from_secs(2),
        dead_after: Duration::from_secs(5),
        first_contact_after: Duration::from_secs(7),
    };

    #[tokio::test(start_paused = true)]
    async fn nodes_go_suspect_then_dead_and_recover() {
        // A node heard once, then silent: alive, suspect after 2 s, dead after 5 s;
        // one poll brings it back.
        let start = Instant::now();
        let mut view = Liveness::new(start, THRESHOLDS);
        view.heard(NodeId(2), start);
        assert_eq!(view.health(NodeId(2), start + Duration::from_secs(1)), Health::Alive);
        assert_eq!(view.health(NodeId(2), start + Duration::from_secs(3)), Health::Suspect);
        let late = start + Duration::from_secs(8);
        assert_eq!(view.health(NodeId(2), late), Health::Dead);
        assert_eq!(view.dead_for(NodeId(2), late), Some(Duration::from_secs(3)));
        view.heard(NodeId(2), late);
        assert_eq!(view.health(NodeId(2), late), Health::Alive);
        // Never heard: suspect past the dead threshold, dead once the view is as old as
        // the first-contact threshold.
        assert_eq!(view.health(NodeId(9), start + Duration::from_secs(1)), Health::Suspect);
        assert_eq!(view.health(NodeId(9), start + Duration::from_millis(6999)), Health::Suspect);
        assert_eq!(view.health(NodeId(9), start + Duration::from_secs(7)), Health::Dead);
        assert_eq!(view.dead_at(NodeId(9), start + Duration::from_secs(8)), Some(start + Duration::from_secs(7)));
        assert_eq!(view.dead_for(NodeId(9), start + Duration::from_secs(8)), Some(Duration::from_secs(1)));
    }

    #[tokio::test(start_paused = true)]
    async fn health_of_all_agrees_with_health_and_dead_at_node_by_node() {
        // Nodes 2, 4, 6 and 9 heard at 0, 1, 3 and 4 s (thresholds 2 s and 5 s), node 5
        // never; members 1..=10 asked every 500 ms up to 12 s: one walk gives what the
        // per-node lookups give.
        let start = Instant::now();
        let at = |millis: u64| start + Duration::from_millis(millis);
        let mut view = Liveness::new(start, THRESHOLDS);
        for (id, heard) in [(2, 0), (4, 1000), (6, 3000), (9, 4000)] {
            view.heard(NodeId(id), at(heard));
        }
        let members: Vec<NodeId> = (1..=10).map(NodeId).collect();
        for millis in (4000..=12_000).step_by(500) {
            let now = at(millis);
            let one_by_one: Vec<_> =
                members.iter().map(|id| (*id, view.health(*id, now), view.dead_at(*id, now))).collect();
            assert_eq!(view.health_of_all(&members, now), one_by_one, "at {millis} ms");
        }
        assert_eq!(view.dead_at(NodeId(2), at(9000)), Some(at(5000)));
        assert_eq!(view.dead_at(NodeId(6), at(7000)), None);
    }

    #[tokio::test(start_paused = true)]
    async fn health_stays_put_until_the_next_change_and_revivals_count_polls_that_change_it() {
        // Nodes heard at 0 s, 1 s and 3 s, thresholds 2 s / 5 s / 7 s. Step through time 100 ms
        // at a time: whenever `next_change` says nothing changes yet, every health must be
        // as it was, and at `next_change` at least one must differ.
        let start = Instant::now();
        let at = |millis: u64| start + Duration::from_millis(millis);
        let mut view = Liveness::new(start, THRESHOLDS);
        view.heard(NodeId(1), at(0));
        view.heard(NodeId(2), at(1000));
        view.heard(NodeId(3), at(3000));
        let ids = [NodeId(1), NodeId(2), NodeId(3), NodeId(4)];
        let healths = |view: &Liveness, now: Instant| ids.map(|id| view.health(id, now));
        let mut now = at(3000);
        let mut changes = 0;
        while now < at(12_000) {
            let next = view.next_change(now);
            assert!(next > now);
            let before = healths(&view, now);
            let mut probe = now;
            while probe + Duration::from_millis(100) < next {
                probe += Duration::from_millis(100);
                assert_eq!(healths(&view, probe), before, "health changed before next_change");
            }
            if next < at(12_000) {
                assert_ne!(healths(&view, next), before, "nothing changed at next_change");
                changes += 1;
            }
            now = next;
        }
        // After 3 s: node 1 dead at 5 s, node 2 dead at 6 s, node 3 suspect at 5 s and
        // dead at 8 s, node 4 (never heard) dead at 7 s: four distinct instants.
        assert_eq!(changes, 4, "distinct instants at which something changed");

        // A poll from a dead node changes its health; one from an alive node does not.
        let revivals = view.revivals();
        view.heard(NodeId(1), at(12_000));
        assert_eq!(view.revivals(), revivals + 1);
        assert_eq!(view.health(NodeId(1), at(12_000)), Health::Alive);
        view.heard(NodeId(1), at(12_500));
        assert_eq!(view.revivals(), revivals + 1);
        // The index follows the new time: node 1 next goes suspect at 14.5 s.
        assert_eq!(view.next_change(at(12_500)), at(14_500));
    }
}
