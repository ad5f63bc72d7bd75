//! Noticing that this node is a voter only in its own Raft log, and starting over.
//!
//! When a voter stays dead past the grace period, the leader's autopilot removes it from
//! the Raft membership and promotes an agent. The dead node never sees that change: it
//! comes back with a log whose last membership still lists it as a voter, so it starts
//! elections that nobody grants (its log is behind), forever, raising its own term and
//! filling every voter's log with refused vote requests. Such a node is an agent to the
//! rest of the cluster; the cure is to give it a fresh, uninitialized Raft, exactly like
//! a node that joined as an agent, which the autopilot can promote again later.
//!
//! Resetting a legitimate voter would lose a replica, so the verdict needs three facts at
//! once, continuously for [`STALE_VOTER_HOLD`]:
//! * the leader — another node — answers this node's polls with `role: agent` (the
//!   leader's *applied*, that is committed, membership does not count it as a voter);
//! * this node's own Raft membership still lists it as a voter;
//! * this node's Raft knows no leader: no leader sends it entries or heartbeats (openraft
//!   names none, or the election timer has heard none within twice the lease).
//!
//! A node being promoted fails the third fact: the leader replicates to it as a learner
//! from the start of the promotion, and its Raft then names that leader. A poll answer
//! that is not from a leader, or says `voter`, restarts the clock.
//!
//! ```text
//!  poll answer (role, leader) ─┐
//!  own Raft metrics ───────────┼─▶ StaleVoterWatch::observe(evidence, now) ─▶ reset? ─▶ Node::reset_raft
//!  time ───────────────────────┘
//! ```

use std::time::Duration;

use tokio::time::Instant;

use crate::runtime::protocol::{PollResponse, Role};
use crate::runtime::Node;

/// How long the evidence must hold without a break before the node resets its Raft
/// state. Several poll periods and far longer than an election, so a leader change or
/// a promotion in flight shows up as a break first.
pub const STALE_VOTER_HOLD: Duration = Duration::from_secs(10);

/// What one poll answer and this node's Raft metrics say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Evidence {
    /// Another node, answering as the leader, says this node is an agent.
    pub leader_says_agent: bool,
    /// This node's own Raft membership lists it as a voter.
    pub listed_as_voter: bool,
    /// This node's Raft knows a leader (or is one).
    pub has_leader_contact: bool,
}

impl Evidence {
    /// Gathers the evidence from a poll answer and `node`'s Raft metrics.
    pub fn gather(node: &Node, poll: &PollResponse) -> Self {
        // Borrowed, not cloned: this runs on every poll answer of every node.
        node.raft_host().with_metrics(|metrics| Self {
            leader_says_agent: poll.role == Role::Agent && poll.leader.id != node.id(),
            // Not `voter_ids()`: that builds the union of the joint configs on every call.
            listed_as_voter: (metrics.membership_config.membership().get_joint_config().iter())
                .any(|voters| voters.contains(&node.id())),
            // openraft keeps naming the last leader it knew while no election happens
            // (pre-vote holds a voter nobody follows back): ask the election timer too.
            has_leader_contact: metrics.current_leader.is_some() && node.raft_host().hears_leader(),
        })
    }

    /// True when the three facts of the module doc hold.
    pub fn is_stale(&self) -> bool {
        self.leader_says_agent && self.listed_as_voter && !self.has_leader_contact
    }
}

/// Tracks since when the evidence has said "stale" without a break (pure; time passed in).
#[derive(Debug, Default)]
pub struct StaleVoterWatch {
    stale_since: Option<Instant>,
}

impl StaleVoterWatch {
    /// Records the evidence seen at `now`; true when it has said "stale" continuously for
    /// [`STALE_VOTER_HOLD`]. The caller resets the Raft state, then calls [`Self::clear`].
    pub fn observe(&mut self, evidence: Evidence, now: Instant) -> bool {
        if !evidence.is_stale() {
            self.stale_since = None;
            return false;
        }
        let since = *self.stale_since.get_or_insert(now);
        now.saturating_duration_since(since) >= STALE_VOTER_HOLD
    }

    /// Forgets what was seen: anything but a poll answer from a leader breaks the streak.
    pub fn clear(&mut self) {
        self.stale_since = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STALE: Evidence = Evidence { leader_says_agent: true, listed_as_voter: true, has_leader_contact: false };

    #[tokio::test(start_paused = true)]
    async fn resets_only_after_the_evidence_held_without_a_break() {
        // Stale evidence every second: no verdict before the hold, a verdict at 10 s.
        let start = Instant::now();
        let mut watch = StaleVoterWatch::default();
        for second in 0..10 {
            assert!(!watch.observe(STALE, start + Duration::from_secs(second)), "too early at {second} s");
        }
        assert!(watch.observe(STALE, start + STALE_VOTER_HOLD));
        // A break (here: leader contact, as during a promotion) restarts the clock.
        let mut watch = StaleVoterWatch::default();
        assert!(!watch.observe(STALE, start));
        let promoted = Evidence { has_leader_contact: true, ..STALE };
        assert!(!watch.observe(promoted, start + Duration::from_secs(9)));
        assert!(!watch.observe(STALE, start + Duration::from_secs(10)));
        assert!(!watch.observe(STALE, start + Duration::from_secs(19)));
        assert!(watch.observe(STALE, start + Duration::from_secs(20)));
        watch.clear();
        assert!(!watch.observe(STALE, start + Duration::from_secs(21)));
    }

    #[test]
    fn each_fact_alone_is_not_enough() {
        // A legitimate voter (the leader says voter), an agent (not in its own
        // membership), and a learner being promoted (leader contact) are never stale.
        assert!(STALE.is_stale());
        assert!(!Evidence { leader_says_agent: false, ..STALE }.is_stale());
        assert!(!Evidence { listed_as_voter: false, ..STALE }.is_stale());
        assert!(!Evidence { has_leader_contact: true, ..STALE }.is_stale());
    }
}
