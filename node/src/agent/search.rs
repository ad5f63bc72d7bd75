//! The search for a lost leader, in rounds (see [`Search`]).

use std::time::Duration;

use fleetmesh_transport::{NodeId, Peer};

use crate::runtime::backoff::Backoff;
use crate::runtime::protocol::MemberAddress;
use crate::runtime::Directory;

/// Pause between two candidates of one round of the search for a lost leader, and the
/// first pause between rounds.
pub(super) const RETRY_DELAY: Duration = Duration::from_millis(250);

/// Longest pause between rounds (see [`Search`]). An election takes well under a
/// second, so an agent finds a new leader at most about this long plus one round after
/// it is elected.
const RETRY_DELAY_MAX: Duration = Duration::from_secs(2);

/// The search for a lost leader, in rounds. A round asks every voter the leader last
/// listed, which learn the leader from Raft, then one other member, a different one each
/// round (the voter list may be stale, and any member that knows the leader names it),
/// [`RETRY_DELAY`] apart. Between rounds the pause doubles from [`RETRY_DELAY`] to
/// [`RETRY_DELAY_MAX`], with a per-node jitter: when the leader dies, every agent in the
/// fleet searches at once, and a fleet of thousands retrying every 250 ms swamps the
/// voters that are electing the next one.
#[derive(Debug)]
pub(super) struct Search {
    /// The next candidate's place in the round: the voters, then one other member.
    step: usize,
    /// The next round asks the first other member with this id or above (wrapping).
    cursor: NodeId,
    /// The leader that stopped answering: asked last in each round until a leader
    /// answers (a dead leader's address costs a timeout per try).
    lost: Option<NodeId>,
    backoff: Backoff,
}

impl Search {
    pub(super) fn new(me: NodeId) -> Self {
        Self { step: 0, cursor: NodeId(0), lost: None, backoff: Backoff::new(RETRY_DELAY, RETRY_DELAY_MAX, me) }
    }

    /// The next node to ask, if any is known. O(voters + log members): a fleet of
    /// thousands searches at once.
    pub(super) fn candidate(&self, directory: &Directory, me: NodeId) -> Option<Peer> {
        let peer = |member: &MemberAddress| Peer { id: member.id, addr: member.listen };
        if let Some(voter) = self.voters(directory, me).nth(self.step) {
            return Some(peer(voter));
        }
        Self::other(directory, me, self.cursor).or_else(|| self.voters(directory, me).next()).map(peer)
    }

    /// An attempt on `peer` found no leader; the pause before the next. A failed
    /// attempt on the leader the node believed in (`in_search` false) ends a round too.
    pub(super) fn failed(
        &mut self,
        directory: &Directory,
        me: NodeId,
        peer: Option<NodeId>,
        in_search: bool,
    ) -> Duration {
        if !in_search {
            self.lost = peer;
        }
        let other = Self::other(directory, me, self.cursor);
        let round = self.voters(directory, me).count() + usize::from(other.is_some());
        if in_search {
            self.step += 1;
            if self.step < round {
                return RETRY_DELAY;
            }
        }
        if in_search {
            // The round ended with `other`: the next one asks the member after it.
            if let Some(other) = other {
                self.cursor = NodeId(other.id.0.wrapping_add(1));
            }
        }
        self.step = 0;
        self.backoff.next_delay()
    }

    /// A leader answered: the next search starts a new round with the shortest pause.
    pub(super) fn found(&mut self) {
        self.step = 0;
        self.lost = None;
        self.backoff.reset();
    }

    /// The listed voters that are known members, but `me`, in the leader's order, the
    /// lost leader last.
    fn voters<'a>(&self, directory: &'a Directory, me: NodeId) -> impl Iterator<Item = &'a MemberAddress> {
        let lost = self.lost;
        let listed = move |id: &&NodeId| **id != me;
        let others = directory.voters.iter().filter(listed).filter(move |id| Some(**id) != lost);
        let last = directory.voters.iter().filter(listed).filter(move |id| Some(**id) == lost);
        others.chain(last).filter_map(|id| directory.members.get(id))
    }

    /// The first member from `cursor` on, wrapping around, that is neither a listed voter
    /// nor `me`.
    fn other(directory: &Directory, me: NodeId, cursor: NodeId) -> Option<&MemberAddress> {
        let eligible = |member: &&MemberAddress| member.id != me && !directory.voters.contains(&member.id);
        let from = directory.members.range(cursor..).map(|(_, member)| member).find(eligible);
        from.or_else(|| directory.members.range(..cursor).map(|(_, member)| member).find(eligible))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// A directory of members 1..=8 at 127.0.0.<id>, with `voters` listed.
    pub(crate) fn directory(voters: &[u64]) -> Directory {
        let member = |id: u64| {
            let addr = format!("127.0.0.{id}:7000").parse().expect("addr");
            (NodeId(id), MemberAddress { id: NodeId(id), listen: addr, api: addr })
        };
        Directory {
            members: Arc::new((1..=8).map(member).collect()),
            voters: voters.iter().copied().map(NodeId).collect(),
            ..Default::default()
        }
    }

    /// The candidates of one round and the pauses after each failed attempt.
    fn round(search: &mut Search, directory: &Directory, me: NodeId) -> Vec<(u64, Duration)> {
        let mut asked = Vec::new();
        loop {
            let peer = search.candidate(directory, me).expect("a candidate");
            let pause = search.failed(directory, me, Some(peer.id), true);
            asked.push((peer.id.0, pause));
            if pause != RETRY_DELAY || asked.len() > 20 {
                return asked;
            }
        }
    }

    #[test]
    fn a_round_asks_the_voters_then_one_other_member_and_the_pause_grows_between_rounds() {
        // Voter 42 is not a known member and 3 is the asker: neither is asked.
        let directory = directory(&[7, 3, 42]);
        let me = NodeId(3);
        let mut search = Search::new(me);
        let first = round(&mut search, &directory, me);
        let second = round(&mut search, &directory, me);
        let third = round(&mut search, &directory, me);
        let ids = |round: &[(u64, Duration)]| round.iter().map(|(id, _)| *id).collect::<Vec<_>>();
        assert_eq!(ids(&first), vec![7, 1]);
        assert_eq!(ids(&second), vec![7, 2]);
        assert_eq!(ids(&third), vec![7, 4]);
        let end = |round: &[(u64, Duration)]| round.last().map(|(_, pause)| *pause).expect("a pause");
        assert!(end(&first) < end(&second) && end(&second) < end(&third), "{first:?} {second:?} {third:?}");
        assert!(end(&third) >= Duration::from_secs(1));
        // A leader answered: the next round starts with the voters and the short pause.
        search.found();
        let again = round(&mut search, &directory, me);
        assert_eq!(again[0].0, 7);
        assert!(end(&again) < RETRY_DELAY + RETRY_DELAY / 4 + Duration::from_millis(1), "{again:?}");
    }

    #[test]
    fn without_a_voter_list_the_search_walks_the_members_and_wraps_around() {
        let directory = directory(&[]);
        let me = NodeId(1);
        let mut search = Search::new(me);
        let asked: Vec<u64> = (0..9).map(|_| round(&mut search, &directory, me)[0].0).collect();
        assert_eq!(asked, vec![2, 3, 4, 5, 6, 7, 8, 2, 3]);
    }

    #[test]
    fn a_lost_leader_ends_the_round_with_a_growing_pause_and_is_asked_last() {
        let directory = directory(&[7, 8]);
        let me = NodeId(1);
        let mut search = Search::new(me);
        let first = search.failed(&directory, me, Some(NodeId(7)), false);
        let second = search.failed(&directory, me, Some(NodeId(7)), false);
        assert!(first >= RETRY_DELAY && second >= 2 * RETRY_DELAY, "{first:?} {second:?}");
        // The lost leader, voter 7, is asked last in the round; then the other member.
        assert_eq!(round(&mut search, &directory, me).iter().map(|(id, _)| *id).collect::<Vec<_>>(), vec![8, 7, 2]);
        search.found();
        assert_eq!(search.candidate(&directory, me).map(|peer| peer.id), Some(NodeId(7)));
    }
}
