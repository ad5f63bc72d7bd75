//! The poll loop every node runs: a long poll to the leader that doubles as its
//! heartbeat, and brings back the leader's address, the member list, the admin token
//! hash and this node's assignments.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use fleetmesh_transport::{NodeId, Peer};
use tokio::time::Instant;
use tracing::{debug, error, warn};

use super::backoff::Backoff;
use super::stale_voter::{Evidence, StaleVoterWatch, STALE_VOTER_HOLD};
use super::Node;
use crate::protocol::{self, MemberAddress, PollRequest, Request, Response};

/// Pause between two candidates of one round of the search for a lost leader, and the
/// first pause between rounds.
const RETRY_DELAY: Duration = Duration::from_millis(250);

/// Redirects ("not the leader, ask X") followed back to back before a pause: stale
/// hints can point in a circle while a partitioned leader steps down.
const REDIRECTS_MAX: u32 = 3;

/// How long a candidate of the search has to answer (its poll is not held).
const SEARCH_TIMEOUT: Duration = Duration::from_secs(1);

/// Longest pause between rounds (see [`Search`]). An election takes well under a
/// second, so an agent finds a new leader at most about this long plus one round after
/// it is elected.
const RETRY_DELAY_MAX: Duration = Duration::from_secs(2);

/// Runs until shutdown.
pub(super) async fn run(node: Arc<Node>) {
    let mut shutdown = node.shutdown_signal();
    let mut digest = String::new();
    let mut members_version = 0u64;
    let hold = node.settings().timing.poll_hold;
    let mut stale_voter = StaleVoterWatch::default();
    let mut search = Search::new(node.id());
    // "Not the leader, ask X" answers followed since the last pause or answered poll.
    let mut redirects = 0u32;
    loop {
        if *shutdown.borrow() {
            return;
        }
        let revisions = crate::agent_runtime::revision_progress(&node);
        let request = PollRequest {
            node: node.id(),
            assignments_digest: digest.clone(),
            members_version,
            hold_ms: hold.as_millis() as u64,
            revisions,
        };
        // Who answered, and whether the node was searching for the leader when it asked.
        let (answer, asked) = if node.is_leader() {
            // The leader is a host too: answer its own poll without the network.
            (super::leader::handle_poll(&node, request).await, None)
        } else {
            let known = node.leader_hint().filter(|hint| hint.id != node.id()).map(|hint| hint.peer());
            let Some(target) = known.or_else(|| search.candidate(&node.directory(), node.id())) else {
                pause(&mut shutdown, search.failed(&node.directory(), node.id(), None, true)).await;
                continue;
            };
            let searching = known.is_none();
            // A candidate that is not the leader answers at once, and one that is need
            // not hold a searcher's poll: a dead candidate then costs a short timeout,
            // not a long poll's.
            let (request, timeout) = if searching {
                (PollRequest { hold_ms: 0, ..request }, SEARCH_TIMEOUT)
            } else {
                (request, hold + Duration::from_secs(3))
            };
            match protocol::call(node.transport().as_ref(), target, &Request::Poll(request), timeout).await {
                Ok(answer) => (answer, Some((target.id, searching))),
                Err(error) => {
                    stale_voter.clear();
                    debug!(peer = %target.id, %error, "poll failed");
                    node.update_directory(|directory| {
                        if directory.leader.is_some_and(|leader| leader.id == target.id) {
                            directory.leader = None;
                        }
                    });
                    pause(&mut shutdown, search.failed(&node.directory(), node.id(), Some(target.id), searching)).await;
                    continue;
                }
            }
        };
        let (answer, payload) = answer;
        match answer {
            Response::Poll(poll) => {
                if stale_voter.observe(Evidence::gather(&node, &poll), Instant::now()) {
                    stale_voter.clear();
                    reset_stale_voter(&node, &poll).await;
                }
                digest = poll.assignments_digest.clone();
                // A list that does not decode or match its version is not taken: the
                // node keeps its old one and asks again with the next poll.
                let members = poll.members_in_payload.and_then(|version| match shared_members(version, &payload) {
                    Ok(list) => Some((version, list)),
                    Err(error) => {
                        warn!(leader = %poll.leader.id, %error, "ignoring the member list of a poll answer");
                        None
                    }
                });
                node.update_directory(|directory| {
                    directory.leader = Some(poll.leader);
                    directory.term = poll.term;
                    directory.role = Some(poll.role);
                    directory.admin_token_hash = poll.admin_token_hash.clone();
                    directory.voters.clone_from(&poll.voters);
                    if let Some((version, list)) = &members {
                        directory.members = list.clone();
                        directory.members_version = *version;
                    }
                });
                if let Some((version, _)) = members {
                    members_version = version;
                }
                crate::agent_runtime::on_assignments(&node, &poll);
                search.found();
                redirects = 0;
            }
            Response::NotLeader { leader } => {
                stale_voter.clear();
                let (peer, searching) = asked.map_or((None, true), |(peer, searching)| (Some(peer), searching));
                let redirect = redirect(leader, node.id(), peer);
                node.update_directory(|directory| directory.leader = redirect);
                redirects += 1;
                if redirect.is_none() || redirects > REDIRECTS_MAX {
                    redirects = 0;
                    pause(&mut shutdown, search.failed(&node.directory(), node.id(), peer, searching)).await;
                }
            }
            other => {
                stale_voter.clear();
                debug!(?other, "unexpected poll answer");
                let (peer, searching) = asked.map_or((None, true), |(peer, searching)| (Some(peer), searching));
                pause(&mut shutdown, search.failed(&node.directory(), node.id(), peer, searching)).await;
            }
        }
    }
}

/// The member list numbered `version` by the leader, decoded from `encoded` unless this
/// process already holds it, as one copy per process. In the simulator thousands of
/// nodes share a process: each holding its own copy of the same list made memory
/// O(N²), about 3 GiB of 7.7 at N = 6000, and each decoding it made time O(N²). A
/// production process runs one node and holds its one list.
///
/// # Errors
/// `encoded` is not a JSON member list, or not the list `version` names.
fn shared_members(version: u64, encoded: &[u8]) -> Result<Arc<BTreeMap<NodeId, MemberAddress>>, String> {
    type Lists = BTreeMap<u64, Weak<BTreeMap<NodeId, MemberAddress>>>;
    static LISTS: Mutex<Lists> = Mutex::new(BTreeMap::new());
    let mut lists = LISTS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(list) = lists.get(&version).and_then(Weak::upgrade) {
        return Ok(list);
    }
    let actual = protocol::members_version(encoded);
    if actual != version {
        return Err(format!(
            "the list of {} bytes is version {actual:016x}, not {version:016x} as announced",
            encoded.len()
        ));
    }
    let members: Vec<MemberAddress> =
        serde_json::from_slice(encoded).map_err(|error| format!("the member list does not decode: {error}"))?;
    // Lists nobody holds any more go; a process holds a few at most.
    lists.retain(|_, list| list.strong_count() > 0);
    let list = Arc::new(members.into_iter().map(|member| (member.id, member)).collect());
    lists.insert(version, Arc::downgrade(&list));
    Ok(list)
}

/// Where a "not the leader" answer from `peer` sends node `me` next: nowhere if the
/// hint names `me`, or `peer` itself (a deposed leader whose Raft still names itself);
/// following such a hint at once would spin.
fn redirect(
    hint: Option<crate::protocol::LeaderHint>,
    me: NodeId,
    peer: Option<NodeId>,
) -> Option<crate::protocol::LeaderHint> {
    hint.filter(|hint| hint.id != me && Some(hint.id) != peer)
}

/// Gives a node that is a voter only in its own log a fresh Raft state (see
/// [`super::stale_voter`]); if that fails the node cannot work and shuts down.
async fn reset_stale_voter(node: &Arc<Node>, poll: &crate::protocol::PollResponse) {
    warn!(
        leader = %poll.leader.id,
        term = poll.term,
        "this node's Raft log lists it as a voter, but the leader has answered for {} s that it is an agent \
         and no leader replicates to it: it was replaced while it was down; resetting its Raft state to continue as an agent",
        STALE_VOTER_HOLD.as_secs()
    );
    if let Err(reason) = node.reset_raft().await {
        error!(%reason, "the Raft state could not be reset; stopping the node");
        node.shutdown().await;
    }
}

/// The search for a lost leader, in rounds. A round asks every voter the leader last
/// listed, which learn the leader from Raft, then one other member, a different one each
/// round (the voter list may be stale, and any member that knows the leader names it),
/// [`RETRY_DELAY`] apart. Between rounds the pause doubles from [`RETRY_DELAY`] to
/// [`RETRY_DELAY_MAX`], with a per-node jitter: when the leader dies, every agent in the
/// fleet searches at once, and a fleet of thousands retrying every 250 ms swamps the
/// voters that are electing the next one.
#[derive(Debug)]
struct Search {
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
    fn new(me: NodeId) -> Self {
        Self { step: 0, cursor: NodeId(0), lost: None, backoff: Backoff::new(RETRY_DELAY, RETRY_DELAY_MAX, me) }
    }

    /// The next node to ask, if any is known. O(voters + log members): a fleet of
    /// thousands searches at once.
    fn candidate(&self, directory: &super::Directory, me: NodeId) -> Option<Peer> {
        let peer = |member: &MemberAddress| Peer { id: member.id, addr: member.listen };
        if let Some(voter) = self.voters(directory, me).nth(self.step) {
            return Some(peer(voter));
        }
        Self::other(directory, me, self.cursor).or_else(|| self.voters(directory, me).next()).map(peer)
    }

    /// An attempt on `peer` found no leader; the pause before the next. A failed
    /// attempt on the leader the node believed in (`in_search` false) ends a round too.
    fn failed(&mut self, directory: &super::Directory, me: NodeId, peer: Option<NodeId>, in_search: bool) -> Duration {
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
    fn found(&mut self) {
        self.step = 0;
        self.lost = None;
        self.backoff.reset();
    }

    /// The listed voters that are known members, but `me`, in the leader's order, the
    /// lost leader last.
    fn voters<'a>(&self, directory: &'a super::Directory, me: NodeId) -> impl Iterator<Item = &'a MemberAddress> {
        let lost = self.lost;
        let listed = move |id: &&NodeId| **id != me;
        let others = directory.voters.iter().filter(listed).filter(move |id| Some(**id) != lost);
        let last = directory.voters.iter().filter(listed).filter(move |id| Some(**id) == lost);
        others.chain(last).filter_map(|id| directory.members.get(id))
    }

    /// The first member from `cursor` on, wrapping around, that is neither a listed voter
    /// nor `me`.
    fn other(directory: &super::Directory, me: NodeId, cursor: NodeId) -> Option<&MemberAddress> {
        let eligible = |member: &&MemberAddress| member.id != me && !directory.voters.contains(&member.id);
        let from = directory.members.range(cursor..).map(|(_, member)| member).find(eligible);
        from.or_else(|| directory.members.range(..cursor).map(|(_, member)| member).find(eligible))
    }
}

async fn pause(shutdown: &mut tokio::sync::watch::Receiver<bool>, delay: Duration) {
    tokio::select! {
        biased;
        _ = shutdown.changed() => {}
        () = tokio::time::sleep(delay) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn directory(voters: &[u64]) -> super::super::Directory {
        let member = |id: u64| {
            let addr = format!("127.0.0.{id}:7000").parse().expect("addr");
            (NodeId(id), MemberAddress { id: NodeId(id), listen: addr, api: addr })
        };
        super::super::Directory {
            members: Arc::new((1..=8).map(member).collect()),
            voters: voters.iter().copied().map(NodeId).collect(),
            ..Default::default()
        }
    }

    /// The candidates of one round and the pauses after each failed attempt.
    fn round(search: &mut Search, directory: &super::super::Directory, me: NodeId) -> Vec<(u64, Duration)> {
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
    fn nodes_of_one_process_share_one_copy_of_a_member_list() {
        let list: Vec<MemberAddress> = directory(&[]).members.values().cloned().collect();
        let encode = |list: &[MemberAddress]| serde_json::to_vec(list).expect("encodes");
        let (all, some) = (encode(&list), encode(&list[..3]));
        let (all_version, some_version) = (protocol::members_version(&all), protocol::members_version(&some));
        let first = shared_members(all_version, &all).expect("valid");
        // The second node's copy is not even decoded: garbage bytes get the shared list.
        let second = shared_members(all_version, b"not decoded").expect("shared");
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!(first.len(), 8);
        let other = shared_members(some_version, &some).expect("valid");
        assert_eq!(other.len(), 3);
        assert!(!Arc::ptr_eq(&first, &other));
    }

    #[test]
    fn a_member_list_that_is_not_the_announced_version_is_refused() {
        let list: Vec<MemberAddress> = directory(&[]).members.values().take(2).cloned().collect();
        let encoded = serde_json::to_vec(&list).expect("encodes");
        let error = shared_members(0xdead_beef, &encoded).expect_err("wrong version");
        assert!(error.contains("not 00000000deadbeef"), "{error}");
        let garbage = b"[{\"id\":";
        let error = shared_members(protocol::members_version(garbage), garbage).expect_err("truncated");
        assert!(error.contains("does not decode"), "{error}");
    }

    #[test]
    fn a_hint_back_to_the_asker_or_the_answerer_is_no_redirect() {
        let hint = |id: u64| {
            Some(crate::protocol::LeaderHint { id: NodeId(id), listen: "127.0.0.1:7000".parse().expect("addr") })
        };
        assert_eq!(redirect(hint(5), NodeId(1), Some(NodeId(3))).map(|hint| hint.id), Some(NodeId(5)));
        assert!(redirect(hint(1), NodeId(1), Some(NodeId(3))).is_none(), "names the asker");
        assert!(redirect(hint(3), NodeId(1), Some(NodeId(3))).is_none(), "names the node that said it does not lead");
        assert!(redirect(None, NodeId(1), Some(NodeId(3))).is_none());
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
