//! Pre-vote: a voter that has not heard from a leader asks the other voters whether
//! they would vote for it before it starts a real election, and campaigns only when a
//! majority says yes.
//!
//! openraft 0.9 has no pre-vote. Its leader lease makes a voter that hears from a live
//! leader reject a vote request, but the candidate has already raised its term by then,
//! and the next AppendEntries from the leader meets that higher term, which deposes the
//! leader. A voter cut off one way (it hears nothing, its packets still arrive) raised
//! its term every election timeout and, once healed, deposed a healthy leader
//! (measured on a real network: terms 4 → 20 after a 5 s cut).
//!
//! So openraft's own election timer is off (`enable_elect: false`, see
//! [`super::raft_config`]) and [`campaign`] runs the timer instead: once the leader lease has passed without a
//! heartbeat, plus a random part of the election window (so that two voters rarely
//! campaign at once), it sends
//! [`RaftRequest::PreVote`] to every other voter, and calls `trigger().elect()` only with
//! a majority of grants. A voter grants ([`answer`]) when it has not heard from a leader
//! within the lease, is not the leader itself, and the candidate's log is at least as
//! recent as its own: what the real vote would check, without raising any term. A deaf
//! voter gets no answers and keeps its term; a voter that only cannot hear the leader
//! gets refusals from the voters that can.
//!
//! A peer of an older release cannot decode a pre-vote and counts as a refusal; it still
//! campaigns the old way, so a mixed cluster elects a leader.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fleetmesh_transport::NodeId;
use openraft::raft::VoteRequest;
use openraft::{AsyncRuntime, LogId, ServerState, Vote};
use rand::Rng;

use super::{FleetRuntime, Raft, RaftRequest, RaftResponse, RaftTiming, RaftTransport};

type Instant = <FleetRuntime as AsyncRuntime>::Instant;

/// What a voter sees of itself when it decides to campaign or to grant a pre-vote.
#[derive(Debug)]
struct View {
    leader: bool,
    vote: Vote<NodeId>,
    /// When the vote last changed or was confirmed by the leader's heartbeat.
    heard: Option<Instant>,
    /// Voters other than this node, with their addresses.
    peers: Vec<(NodeId, String)>,
    voter: bool,
}

impl View {
    async fn read(raft: &Raft, id: NodeId) -> Option<Self> {
        raft.with_raft_state(move |state| {
            let membership = state.membership_state.effective();
            Self {
                leader: state.server_state == ServerState::Leader,
                vote: *state.vote_ref(),
                heard: state.vote_last_modified(),
                peers: membership
                    .voter_ids()
                    .filter(|voter| *voter != id)
                    .filter_map(|voter| Some((voter, membership.get_node(&voter)?.addr.clone())))
                    .collect(),
                voter: membership.voter_ids().any(|voter| voter == id),
            }
        })
        .await
        .ok()
    }

    /// Whether a leader confirmed its vote within `lease` before `now`.
    fn has_live_leader(&self, now: Instant, lease: Duration) -> bool {
        self.vote.is_committed() && self.heard.is_some_and(|heard| now - heard <= lease)
    }

    /// Whether this voter has waited long enough to campaign since it last heard of a
    /// leader: `lease + jitter` when it followed one (the other voters grant their vote
    /// only once their own lease has passed, and they heard the leader's last heartbeat
    /// when this voter did), `timeout` when it never knew one.
    fn silent_for(&self, now: Instant, lease: Duration, timeout: Duration, jitter: Duration) -> bool {
        let wait = if self.vote.is_committed() { lease + jitter } else { timeout };
        self.heard.is_none_or(|heard| now - heard >= wait)
    }
}

/// The answer of this node to a pre-vote `request`: `true` if it would grant the real
/// vote now without a leader to follow. Changes nothing.
pub(super) async fn answer(raft: &Raft, request: &VoteRequest<NodeId>) -> bool {
    let lease = Duration::from_millis(raft.config().election_timeout_max);
    let id = raft.metrics().borrow().id;
    let Some(view) = View::read(raft, id).await else {
        return false;
    };
    let last_log: Option<LogId<NodeId>> = raft.data_metrics().borrow().last_log;
    let now = <Instant as openraft::Instant>::now();
    let live_leader = view.has_live_leader(now, lease);
    let granted = !view.leader
        && !live_leader
        && request.vote.leader_id().get_term() >= view.vote.leader_id().get_term()
        && request.last_log_id >= last_log;
    tracing::debug!(
        candidate = ?request.vote.leader_id().voted_for(),
        term = request.vote.leader_id().get_term(),
        granted,
        leader = view.leader,
        live_leader,
        heard_ms_ago = ?view.heard.map(|heard| (now - heard).as_millis()),
        our_term = view.vote.leader_id().get_term(),
        log_ok = request.last_log_id >= last_log,
        "pre-vote answered"
    );
    granted
}

/// The election timer of one voter instance: campaigns after a silence, and only with a
/// majority of pre-vote grants. Ends when the instance shuts down.
///
/// Each tick it also stores in `hears_leader` whether a leader confirmed this voter's
/// vote within the lease (or this voter leads): what the stale-voter check reads.
pub async fn campaign(
    raft: Raft,
    transport: Arc<dyn RaftTransport>,
    timing: RaftTiming,
    hears_leader: Arc<AtomicBool>,
) {
    let id = raft.metrics().borrow().id;
    let lease = timing.election_timeout_max;
    let mut timeout = draw(timing);
    let mut last_try: Option<Instant> = None;
    loop {
        FleetRuntime::sleep(timing.heartbeat / 2).await;
        let Some(view) = View::read(&raft, id).await else { return };
        let now = <Instant as openraft::Instant>::now();
        hears_leader.store(view.leader || view.has_live_leader(now, 2 * lease), Ordering::Relaxed);
        let jitter = timeout.saturating_sub(timing.election_timeout_min);
        if view.leader || !view.voter || !view.silent_for(now, lease, timeout, jitter) {
            continue;
        }
        if last_try.is_some_and(|at| now - at < timeout) {
            continue;
        }
        last_try = Some(now);
        timeout = draw(timing);
        let granted = view.peers.is_empty() || pre_vote(&raft, id, &view, &*transport, timing).await;
        tracing::debug!(
            term = view.vote.leader_id().get_term() + 1,
            granted,
            heard_ms_ago = ?view.heard.map(|heard| (now - heard).as_millis()),
            "pre-vote campaign"
        );
        if granted && raft.trigger().elect().await.is_err() {
            return;
        }
    }
}

/// A random election timeout in the timing's range.
fn draw(timing: RaftTiming) -> Duration {
    let (low, high) = (timing.election_timeout_min, timing.election_timeout_max);
    if high <= low {
        return low;
    }
    FleetRuntime::thread_rng().gen_range(low..high)
}

/// Asks every peer voter; `true` as soon as a majority of all voters (this one
/// included) grants, without waiting for a peer that does not answer (a partitioned
/// old leader would hold every election back by the whole timeout).
async fn pre_vote(raft: &Raft, id: NodeId, view: &View, transport: &dyn RaftTransport, timing: RaftTiming) -> bool {
    let last_log_id = raft.data_metrics().borrow().last_log;
    let vote = Vote::new(view.vote.leader_id().get_term() + 1, id);
    let (answers, mut received) = tokio::sync::mpsc::channel(view.peers.len().max(1));
    for (peer, addr) in &view.peers {
        let ask = transport.send(
            *peer,
            addr,
            RaftRequest::PreVote(VoteRequest::new(vote, last_log_id)),
            timing.election_timeout_min,
        );
        let answers = answers.clone();
        FleetRuntime::spawn(async move {
            let granted = matches!(ask.await, Ok(RaftResponse::PreVote(true)));
            // The election may be decided already; a late answer is not needed.
            let _ = answers.send(granted).await;
        });
    }
    drop(answers);
    let voters = view.peers.len() + 1;
    let mut granted = 1;
    while let Some(answer) = received.recv().await {
        granted += usize::from(answer);
        if granted * 2 > voters {
            return true;
        }
    }
    granted * 2 > voters
}
