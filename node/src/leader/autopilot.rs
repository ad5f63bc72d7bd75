//! Keeps the voter count: promotes healthy agents, replaces voters dead past a grace
//! period (pure decision; the leader executes it through openraft membership changes).
//!
//! Voters are few (3 by default) because Raft replication fans out from the leader
//! and does not scale to hundreds of learners (`STACK.md` §1.4); every other node is
//! an agent. One change at a time: each takes a joint-consensus round.

use std::collections::BTreeSet;
use std::time::Duration;

use fleetmesh_transport::NodeId;

use super::liveness::Health;

/// What autopilot sees.
#[derive(Debug, Clone)]
pub struct AutopilotInput {
    /// The leader itself (never removed).
    pub leader: NodeId,
    /// Current members (voters and agents), ascending.
    pub members: Vec<NodeId>,
    /// Current voters.
    pub voters: BTreeSet<NodeId>,
    /// Health and, for dead nodes, for how long.
    pub health: Vec<(NodeId, Health, Option<Duration>)>,
    /// The voter count to keep.
    pub voters_desired: usize,
    /// How long a voter may be dead before it is replaced.
    pub grace: Duration,
    /// Members whose release does not know the cluster's feature level: never promoted,
    /// since a voter must decode every entry the cluster commits.
    pub behind: BTreeSet<NodeId>,
}

/// One membership change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoterChange {
    /// Agent to promote (added as a learner first, then made a voter).
    pub promote: Option<NodeId>,
    /// Voter to drop (it stays a member, as an agent).
    pub demote: Option<NodeId>,
}

impl VoterChange {
    /// The voter set after the change.
    pub fn apply(&self, voters: &BTreeSet<NodeId>) -> BTreeSet<NodeId> {
        let mut next = voters.clone();
        if let Some(promote) = self.promote {
            next.insert(promote);
        }
        if let Some(demote) = self.demote {
            next.remove(&demote);
        }
        next
    }
}

/// Decides the next voter change, if any.
pub fn decide(input: &AutopilotInput) -> Option<VoterChange> {
    // A voter that is no longer a member (removed while autopilot was promoting it)
    // leaves at once; the next pass restores the voter count.
    if let Some(stray) = input.voters.iter().copied().find(|id| *id != input.leader && !input.members.contains(id)) {
        return Some(VoterChange { promote: None, demote: Some(stray) });
    }
    let health_of =
        |id: NodeId| input.health.iter().find(|(node, _, _)| *node == id).map(|(_, health, dead)| (*health, *dead));
    let is_alive = |id: NodeId| matches!(health_of(id), Some((Health::Alive, _)));
    let dead_past_grace = |id: NodeId| matches!(health_of(id), Some((Health::Dead, Some(dead))) if dead >= input.grace);
    // Lowest id first: deterministic, and long-lived nodes tend to have low ids.
    let candidate = input
        .members
        .iter()
        .copied()
        .find(|id| !input.voters.contains(id) && is_alive(*id) && !input.behind.contains(id));
    let target = input.voters_desired.min(input.members.len()).max(1);
    let lost = input.voters.iter().copied().find(|id| *id != input.leader && dead_past_grace(*id));
    match (lost, candidate) {
        (Some(lost), Some(agent)) => Some(VoterChange { promote: Some(agent), demote: Some(lost) }),
        _ if input.voters.len() < target => candidate.map(|agent| VoterChange { promote: Some(agent), demote: None }),
        (Some(lost), None) if input.voters.len() > target => Some(VoterChange { promote: None, demote: Some(lost) }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(members: &[u64], voters: &[u64], dead: &[(u64, u64)]) -> AutopilotInput {
        AutopilotInput {
            leader: NodeId(1),
            members: members.iter().map(|id| NodeId(*id)).collect(),
            voters: voters.iter().map(|id| NodeId(*id)).collect(),
            health: members
                .iter()
                .map(|id| match dead.iter().find(|(node, _)| node == id) {
                    Some((_, secs)) => (NodeId(*id), Health::Dead, Some(Duration::from_secs(*secs))),
                    None => (NodeId(*id), Health::Alive, None),
                })
                .collect(),
            voters_desired: 3,
            grace: Duration::from_secs(30),
            behind: BTreeSet::new(),
        }
    }

    #[test]
    fn grows_to_the_desired_voter_count_one_at_a_time() {
        // Five members, one voter: promote the lowest agent; with three voters, stop.
        assert_eq!(
            decide(&input(&[1, 2, 3, 4, 5], &[1], &[])),
            Some(VoterChange { promote: Some(NodeId(2)), demote: None })
        );
        assert_eq!(decide(&input(&[1, 2, 3, 4, 5], &[1, 2, 3], &[])), None);
        // A two-node cluster has two voters.
        assert_eq!(decide(&input(&[1, 2], &[1, 2], &[])), None);
    }

    #[test]
    fn replaces_a_voter_dead_past_the_grace_period_only() {
        // Voter 3 dead for 10 s: wait; for 40 s: replace it with agent 4.
        assert_eq!(decide(&input(&[1, 2, 3, 4, 5], &[1, 2, 3], &[(3, 10)])), None);
        assert_eq!(
            decide(&input(&[1, 2, 3, 4, 5], &[1, 2, 3], &[(3, 40)])),
            Some(VoterChange { promote: Some(NodeId(4)), demote: Some(NodeId(3)) })
        );
        // No healthy agent: keep the dead voter (removing it would not restore fault tolerance).
        assert_eq!(decide(&input(&[1, 2, 3], &[1, 2, 3], &[(3, 40)])), None);
    }

    #[test]
    fn never_promotes_a_release_behind_the_cluster() {
        let mut behind = input(&[1, 2, 3, 4], &[1], &[]);
        behind.behind = [NodeId(2)].into();
        assert_eq!(decide(&behind), Some(VoterChange { promote: Some(NodeId(3)), demote: None }));
        behind.behind = [NodeId(2), NodeId(3), NodeId(4)].into();
        assert_eq!(decide(&behind), None, "no agent runs a release that knows the cluster's level");
    }

    #[test]
    fn a_voter_that_is_no_longer_a_member_leaves_first() {
        assert_eq!(
            decide(&input(&[1, 2, 4], &[1, 2, 3], &[])),
            Some(VoterChange { promote: None, demote: Some(NodeId(3)) })
        );
    }

    #[test]
    fn never_promotes_a_dead_agent() {
        assert_eq!(
            decide(&input(&[1, 2, 3], &[1], &[(2, 1)])),
            Some(VoterChange { promote: Some(NodeId(3)), demote: None })
        );
    }
}
