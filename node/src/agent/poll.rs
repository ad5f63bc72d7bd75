//! The poll loop every node runs: a long poll to the leader that doubles as its
//! heartbeat, and brings back the leader's address, the member list, the admin token
//! hash and this node's assignments.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use fleetmesh_transport::{NodeId, Peer};
use tokio::time::Instant;
use tracing::{debug, error, warn};

use super::search::Search;
use super::stale_voter::{Evidence, StaleVoterWatch, STALE_VOTER_HOLD};
use super::Agent;
use crate::runtime::protocol::{self, LeaderHint, MemberAddress, PollRequest, PollResponse, Request, Response};
use crate::runtime::Node;

/// Redirects ("not the leader, ask X") followed back to back before a pause: stale
/// hints can point in a circle while a partitioned leader steps down.
const REDIRECTS_MAX: u32 = 3;

/// How long a candidate of the search has to answer (its poll is not held).
const SEARCH_TIMEOUT: Duration = Duration::from_secs(1);

/// Runs until shutdown.
pub(super) async fn run(agent: Arc<Agent>) {
    let node = agent.node.clone();
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
        let revisions = agent.backend.revision_progress();
        let request = PollRequest {
            node: node.id(),
            assignments_digest: digest.clone(),
            members_version,
            hold_ms: hold.as_millis() as u64,
            revisions,
        };
        // Who answered, and whether the node was searching for the leader when it asked.
        let (answer, asked) = if node.is_leader() {
            // The leader is a host too: its poll goes to its own leader service, without
            // the network.
            let me = Peer { id: node.id(), addr: node.settings().listen };
            match node.call(me, Request::Poll(request), hold + Duration::from_secs(3)).await {
                Ok(answer) => (answer, None),
                Err(error) => {
                    debug!(%error, "this node's own poll failed");
                    pause(&mut shutdown, search.failed(&node.directory(), node.id(), None, true)).await;
                    continue;
                }
            }
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
            match node.call(target, Request::Poll(request), timeout).await {
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
                agent.on_assignments(&poll);
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

/// Why a member list that came with a poll answer was not taken.
#[derive(Debug, thiserror::Error)]
enum MemberListError {
    /// The bytes hash to another version than the answer announced.
    #[error("the list of {bytes} bytes is version {actual:016x}, not {announced:016x} as announced")]
    Version {
        /// Length of the list as received.
        bytes: usize,
        /// The version the bytes hash to.
        actual: u64,
        /// The version the answer announced.
        announced: u64,
    },
    /// The bytes are not a JSON member list.
    #[error("the member list does not decode: {0}")]
    Decode(serde_json::Error),
}

/// The member list numbered `version` by the leader, decoded from `encoded` unless this
/// process already holds it, as one copy per process. In the simulator thousands of
/// nodes share a process: each holding its own copy of the same list made memory
/// O(N²), about 3 GiB of 7.7 at N = 6000, and each decoding it made time O(N²). A
/// production process runs one node and holds its one list.
///
/// # Errors
/// `encoded` is not a JSON member list, or not the list `version` names.
fn shared_members(version: u64, encoded: &[u8]) -> Result<Arc<BTreeMap<NodeId, MemberAddress>>, MemberListError> {
    type Lists = BTreeMap<u64, Weak<BTreeMap<NodeId, MemberAddress>>>;
    static LISTS: Mutex<Lists> = Mutex::new(BTreeMap::new());
    let mut lists = LISTS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(list) = lists.get(&version).and_then(Weak::upgrade) {
        return Ok(list);
    }
    let actual = protocol::members_version(encoded);
    if actual != version {
        return Err(MemberListError::Version { bytes: encoded.len(), actual, announced: version });
    }
    let members: Vec<MemberAddress> = serde_json::from_slice(encoded).map_err(MemberListError::Decode)?;
    // Lists nobody holds any more go; a process holds a few at most.
    lists.retain(|_, list| list.strong_count() > 0);
    let list = Arc::new(members.into_iter().map(|member| (member.id, member)).collect());
    lists.insert(version, Arc::downgrade(&list));
    Ok(list)
}

/// Where a "not the leader" answer from `peer` sends node `me` next: nowhere if the
/// hint names `me`, or `peer` itself (a deposed leader whose Raft still names itself);
/// following such a hint at once would spin.
fn redirect(hint: Option<LeaderHint>, me: NodeId, peer: Option<NodeId>) -> Option<LeaderHint> {
    hint.filter(|hint| hint.id != me && Some(hint.id) != peer)
}

/// Gives a node that is a voter only in its own log a fresh Raft state (see
/// [`super::stale_voter`]); if that fails the node cannot work and shuts down.
async fn reset_stale_voter(node: &Node, poll: &PollResponse) {
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

    /// Members 1..=8 at 127.0.0.<id>.
    fn directory() -> Vec<MemberAddress> {
        (1..=8)
            .map(|id| {
                let addr = format!("127.0.0.{id}:7000").parse().expect("addr");
                MemberAddress { id: NodeId(id), listen: addr, api: addr }
            })
            .collect()
    }

    #[test]
    fn nodes_of_one_process_share_one_copy_of_a_member_list() {
        let list = directory();
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
        let list: Vec<MemberAddress> = directory().into_iter().take(2).collect();
        let encoded = serde_json::to_vec(&list).expect("encodes");
        let error = shared_members(0xdead_beef, &encoded).expect_err("wrong version");
        assert!(error.to_string().contains("not 00000000deadbeef"), "{error}");
        let garbage = b"[{\"id\":";
        let error = shared_members(protocol::members_version(garbage), garbage).expect_err("truncated");
        assert!(error.to_string().contains("does not decode"), "{error}");
    }

    #[test]
    fn a_hint_back_to_the_asker_or_the_answerer_is_no_redirect() {
        let hint = |id: u64| Some(LeaderHint { id: NodeId(id), listen: "127.0.0.1:7000".parse().expect("addr") });
        assert_eq!(redirect(hint(5), NodeId(1), Some(NodeId(3))).map(|hint| hint.id), Some(NodeId(5)));
        assert!(redirect(hint(1), NodeId(1), Some(NodeId(3))).is_none(), "names the asker");
        assert!(redirect(hint(3), NodeId(1), Some(NodeId(3))).is_none(), "names the node that said it does not lead");
        assert!(redirect(None, NodeId(1), Some(NodeId(3))).is_none());
    }
}
