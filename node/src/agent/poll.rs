//! The poll loop every node runs: a long poll to the leader that doubles as its
//! heartbeat, and brings back the leader's address, the member list, the admin token
//! hash and this node's assignments.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use fleetmesh_transport::{NodeId, Peer};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, error, warn};

use super::search::Search;
use super::stale_voter::{Evidence, StaleVoterWatch, STALE_VOTER_HOLD};
use super::Agent;
use fleetmesh_state::Release;

use crate::runtime::protocol::{self, LeaderHint, MemberAddress, PollRequest, PollResponse, Request, Response};
use crate::runtime::{Directory, Node};

/// Redirects ("not the leader, ask X") followed back to back before a pause: stale
/// hints can point in a circle while a partitioned leader steps down.
const REDIRECTS_MAX: u32 = 3;

/// How long a candidate of the search has to answer (its poll is not held).
const SEARCH_TIMEOUT: Duration = Duration::from_secs(1);

/// Runs until shutdown.
pub(super) async fn run(agent: Arc<Agent>) {
    PollLoop::new(agent).run().await;
}

/// A node that answered a poll, and whether this node was searching for the leader
/// when it asked.
#[derive(Clone, Copy, Debug)]
struct Asked {
    peer: NodeId,
    searching: bool,
}

/// An answer to a poll: the response, its payload (the member list when it changed),
/// and who answered (`None`: this node's own leader service).
type Answer = (Response, Bytes, Option<Asked>);

/// The poll loop's state from one poll to the next.
struct PollLoop {
    agent: Arc<Agent>,
    node: Arc<Node>,
    shutdown: watch::Receiver<bool>,
    /// How long the leader may hold a poll while nothing changes.
    hold: Duration,
    /// The assignments digest of the last answer (the leader holds the poll while it
    /// matches).
    digest: String,
    /// The version of the member list this node holds.
    members_version: u64,
    stale_voter: StaleVoterWatch,
    search: Search,
    redirects: Redirects,
    /// The leader the last `NotLeader` answer named: polled instead of the leader Raft
    /// names until it fails or redirects again. openraft keeps naming the last leader it
    /// knew while no election happens, so a voter the cluster removed while it was down
    /// (it still lists itself as a voter, its pre-votes are refused) would otherwise
    /// poll that old leader forever and never meet the real one, whose answers let
    /// [`StaleVoterWatch`] see that it is stale.
    redirected: Option<LeaderHint>,
}

impl PollLoop {
    fn new(agent: Arc<Agent>) -> Self {
        let node = agent.node.clone();
        Self {
            shutdown: node.shutdown_signal(),
            hold: node.settings().timing.poll_hold,
            digest: String::new(),
            members_version: 0,
            stale_voter: StaleVoterWatch::default(),
            search: Search::new(node.id()),
            redirects: Redirects::default(),
            redirected: None,
            agent,
            node,
        }
    }

    async fn run(mut self) {
        // Until shutdown; every pass waits for an answer (a held poll) or pauses.
        loop {
            if *self.shutdown.borrow() {
                return;
            }
            let request = PollRequest {
                node: self.node.id(),
                assignments_digest: self.digest.clone(),
                members_version: self.members_version,
                hold_ms: self.hold.as_millis() as u64,
                revisions: self.agent.backend.revision_progress(),
                release: Release::this_build(),
                feature_level: Some(self.node.read_directory(|directory| directory.feature_level)),
                route_errors: self.node.route_errors(),
                member: Some(self.node.member_spec()),
            };
            let asked = if self.node.is_leader() {
                // A redirect from before this node led says nothing about what follows.
                self.redirected = None;
                self.ask_own(request).await
            } else {
                self.ask(request).await
            };
            match asked {
                Ok(answer) => self.on_answer(answer).await,
                Err(delay) => pause(&mut self.shutdown, delay).await,
            }
        }
    }

    /// The leader is a host too: its poll goes to its own leader service, without the
    /// network. On failure, the pause before the next poll.
    async fn ask_own(&mut self, request: PollRequest) -> Result<Answer, Duration> {
        let node = &self.node;
        let me = Peer { id: node.id(), addr: node.settings().listen };
        match node.call(me, Request::Poll(request), node.settings().timing.poll_timeout()).await {
            Ok((response, payload)) => Ok((response, payload, None)),
            Err(error) => {
                debug!(%error, "this node's own poll failed");
                Err(self.search.failed(&node.directory(), node.id(), None, true))
            }
        }
    }

    /// Polls the leader this node knows, or the search's next candidate. On failure,
    /// the pause before the next poll.
    async fn ask(&mut self, request: PollRequest) -> Result<Answer, Duration> {
        let node = self.node.clone();
        let hint = self.redirected.or_else(|| node.leader_hint());
        let known = hint.filter(|hint| hint.id != node.id()).map(|hint| hint.peer());
        let Some(target) = known.or_else(|| self.search.candidate(&node.directory(), node.id())) else {
            return Err(self.search.failed(&node.directory(), node.id(), None, true));
        };
        let searching = known.is_none();
        if searching || self.redirected.is_some() {
            debug!(peer = %target.id, redirected = ?self.redirected.map(|hint| hint.id), searching, "polling");
        }
        // A candidate that is not the leader answers at once, and one that is need not
        // hold a searcher's poll: a dead candidate then costs a short timeout, not a
        // long poll's.
        let (request, timeout) = if searching {
            (PollRequest { hold_ms: 0, ..request }, SEARCH_TIMEOUT)
        } else {
            (request, node.settings().timing.poll_timeout())
        };
        match node.call(target, Request::Poll(request), timeout).await {
            Ok((response, payload)) => Ok((response, payload, Some(Asked { peer: target.id, searching }))),
            Err(error) if crate::runtime::removal::says_removed(&error, node.id()) => {
                node.stop_removed(target.id).await;
                Err(Duration::from_secs(1))
            }
            Err(error) => {
                self.stale_voter.clear();
                self.redirected = None;
                debug!(peer = %target.id, %error, "poll failed");
                node.update_directory(|directory| {
                    if directory.leader.is_some_and(|leader| leader.id == target.id) {
                        directory.leader = None;
                    }
                });
                Err(self.search.failed(&node.directory(), node.id(), Some(target.id), searching))
            }
        }
    }

    async fn on_answer(&mut self, (response, payload, asked): Answer) {
        // An answer from this node's own leader service counts as a search step.
        let (peer, searching) = asked.map_or((None, true), |asked| (Some(asked.peer), asked.searching));
        match response {
            Response::Poll(poll) => self.on_poll(poll, &payload).await,
            Response::NotLeader { leader } => {
                debug!(?peer, hint = ?leader.map(|hint| hint.id), "not the leader");
                self.stale_voter.clear();
                let redirect = redirect(leader, self.node.id(), peer);
                self.redirected = redirect;
                self.node.update_directory(|directory| directory.leader = redirect);
                if self.redirects.should_pause(redirect.is_some()) {
                    let delay = self.search.failed(&self.node.directory(), self.node.id(), peer, searching);
                    pause(&mut self.shutdown, delay).await;
                }
            }
            other => {
                self.stale_voter.clear();
                debug!(?other, "unexpected poll answer");
                let delay = self.search.failed(&self.node.directory(), self.node.id(), peer, searching);
                pause(&mut self.shutdown, delay).await;
            }
        }
    }

    /// A leader answered: the node takes its word on the leader, the member list and
    /// its assignments.
    async fn on_poll(&mut self, poll: Box<PollResponse>, payload: &[u8]) {
        let node = &self.node;
        if self.stale_voter.observe(Evidence::gather(node, &poll), Instant::now()) {
            self.stale_voter.clear();
            reset_stale_voter(node, &poll).await;
        }
        self.digest = poll.assignments_digest.clone();
        // A list that does not decode or match its version is not taken: the node keeps
        // its old one and asks again with the next poll.
        let members = poll.members_in_payload.and_then(|version| match shared_members(version, payload) {
            Ok(list) => Some((version, list)),
            Err(error) => {
                warn!(leader = %poll.leader.id, %error, "ignoring the member list of a poll answer");
                None
            }
        });
        node.update_directory(|directory| learn_from_poll(directory, &poll, members.as_ref()));
        if let Some((version, _)) = members {
            self.members_version = version;
        }
        self.agent.on_assignments(&poll);
        self.search.found();
        self.redirects.reset();
    }
}

/// Records in `directory` what a leader's poll answer says: the leader, its term, this
/// node's role, the admin token hash, the voters, and the member list `members`
/// (version and list) when one came with the answer.
fn learn_from_poll(directory: &mut Directory, poll: &PollResponse, members: Option<&(u64, SharedMembers)>) {
    directory.leader = Some(poll.leader);
    directory.term = poll.term;
    directory.role = Some(poll.role);
    directory.admin_token_hash.clone_from(&poll.admin_token_hash);
    directory.read_only_token_hash.clone_from(&poll.read_only_token_hash);
    directory.metrics_token_hash.clone_from(&poll.metrics_token_hash);
    directory.voters.clone_from(&poll.voters);
    directory.feature_level = poll.feature_level;
    if let Some((version, list)) = members {
        directory.members = list.clone();
        directory.members_version = *version;
    }
}

/// "Not the leader, ask X" answers followed back to back.
#[derive(Debug, Default)]
struct Redirects {
    /// Followed since the last pause or answered poll.
    followed: u32,
}

impl Redirects {
    /// Counts a "not the leader" answer; true when the node should pause (and the
    /// search go on) instead of following it: there is nowhere to go, or it followed
    /// [`REDIRECTS_MAX`] in a row already.
    fn should_pause(&mut self, has_redirect: bool) -> bool {
        self.followed += 1;
        if !has_redirect || self.followed > REDIRECTS_MAX {
            self.followed = 0;
            return true;
        }
        false
    }

    /// A leader answered.
    fn reset(&mut self) {
        self.followed = 0;
    }
}

/// A member list by id, one copy per process (see [`shared_members`]).
type SharedMembers = Arc<BTreeMap<NodeId, MemberAddress>>;

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
fn shared_members(version: u64, encoded: &[u8]) -> Result<SharedMembers, MemberListError> {
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

async fn pause(shutdown: &mut watch::Receiver<bool>, delay: Duration) {
    tokio::select! {
        biased;
        _ = shutdown.changed() => {}
        () = tokio::time::sleep(delay) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleetmesh_state::FeatureLevel;

    #[test]
    fn a_new_leader_gives_a_searching_agent_time_to_find_it() {
        // The leader's first-contact grace assumes the search reaches the new leader
        // within LEADER_SEARCH_ALLOWANCE after a timed-out poll: the first pause (a
        // quarter of jitter at most), then two candidates that time out, a pause after
        // each, and 2 s to spare.
        use super::super::search::RETRY_DELAY;
        use crate::runtime::settings::{Timing, LEADER_SEARCH_ALLOWANCE, POLL_ANSWER_SLACK};
        let worst = RETRY_DELAY + RETRY_DELAY / 4 + (SEARCH_TIMEOUT + RETRY_DELAY) * 2;
        assert!(worst + Duration::from_secs(2) <= LEADER_SEARCH_ALLOWANCE, "{worst:?}");
        let timing = Timing::default();
        let poll_timeout = timing.poll_hold + POLL_ANSWER_SLACK;
        assert_eq!(timing.first_contact_after(), timing.dead_after + poll_timeout + LEADER_SEARCH_ALLOWANCE);
    }

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
    fn redirects_are_followed_three_in_a_row_then_the_node_pauses() {
        // Three redirects with somewhere to go are followed; the fourth pauses and starts
        // the count again. A redirect to nowhere pauses at once; an answered poll resets.
        let mut redirects = Redirects::default();
        let followed: Vec<bool> = (0..5).map(|_| redirects.should_pause(true)).collect();
        assert_eq!(followed, [false, false, false, true, false]);
        assert!(redirects.should_pause(false), "nowhere to go");
        assert!(!redirects.should_pause(true));
        assert!(!redirects.should_pause(true));
        redirects.reset();
        assert!(!redirects.should_pause(true) && !redirects.should_pause(true) && !redirects.should_pause(true));
        assert!(redirects.should_pause(true));
    }

    #[test]
    fn a_poll_answer_sets_the_leader_term_role_and_voters_and_a_new_member_list() {
        // An answer without a list keeps the directory's list and version; one with a list
        // replaces both.
        let leader = LeaderHint { id: NodeId(2), listen: "127.0.0.2:7000".parse().expect("addr") };
        let poll = PollResponse {
            leader,
            term: 7,
            role: protocol::Role::Agent,
            members_in_payload: None,
            admin_token_hash: "hash".into(),
            read_only_token_hash: None,
            metrics_token_hash: None,
            assignments: Default::default(),
            assignments_digest: "digest".into(),
            swarm_peers: BTreeMap::new(),
            voters: vec![NodeId(2), NodeId(3)],
            feature_level: FeatureLevel::TYPED_OPERATIONS,
        };
        let old: SharedMembers = Arc::new(directory().into_iter().take(1).map(|member| (member.id, member)).collect());
        let mut book = Directory { members: old.clone(), members_version: 1, ..Directory::default() };
        learn_from_poll(&mut book, &poll, None);
        assert_eq!(book.leader.map(|hint| hint.id), Some(NodeId(2)));
        assert_eq!((book.term, book.role, book.admin_token_hash.as_str()), (7, Some(protocol::Role::Agent), "hash"));
        assert_eq!(book.voters, vec![NodeId(2), NodeId(3)]);
        assert_eq!(book.feature_level, FeatureLevel::TYPED_OPERATIONS);
        assert!(Arc::ptr_eq(&book.members, &old) && book.members_version == 1);
        let new: SharedMembers = Arc::new(directory().into_iter().map(|member| (member.id, member)).collect());
        learn_from_poll(&mut book, &poll, Some(&(9, new.clone())));
        assert!(Arc::ptr_eq(&book.members, &new) && book.members_version == 9);
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
