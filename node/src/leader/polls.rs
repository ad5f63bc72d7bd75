//! Answering agents' long polls: each poll is a heartbeat (liveness) and a progress
//! report (downloads), and its answer carries the poller's assignments, its swarm peers
//! and, when the poller's copy is stale, the member list.
//!
//! A poll whose answer would not change is held until something it depends on changes
//! or its hold time passes. What it depends on is tracked per poller ([`PollWakers`]),
//! so an applied entry wakes only the polls it concerns.

use fleetmesh_state::model::members::ApiTokenKind;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use fleetmesh_state::model::ids::RevisionId;
use fleetmesh_state::PollTouches;
use fleetmesh_transport::NodeId;
use tokio::sync::watch;
use tokio::time::Instant;

use super::assignments::{self, Candidates};
use super::run::Event;
use super::view::PollFacts;
use super::Leader;
use crate::runtime::dispatch::not_leader;
use crate::runtime::protocol::{self, Assignments, LeaderHint, PollRequest, PollResponse, Response, Role};

/// Longest hold the leader grants a poll, whatever the agent asks.
const POLL_HOLD_MAX: Duration = Duration::from_secs(5);

/// One counter per poller, bumped when that poller's answer may have changed: its
/// assignments or revision holdings, or for everyone, members, voters and leadership.
/// Held polls wait on their own poller's counter rather than on every applied entry, so
/// a target that ends wakes that target's poll, not every agent's (see
/// [`watch_poll_inputs`]). One entry per node that ever polled this node: bounded by the
/// member ids ever given out.
#[derive(Default)]
pub(super) struct PollWakers {
    counters: Mutex<BTreeMap<NodeId, watch::Sender<u64>>>,
}

impl PollWakers {
    /// A receiver that changes when `poller`'s answer may have.
    fn subscribe(&self, poller: NodeId) -> watch::Receiver<u64> {
        let mut counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        counters.entry(poller).or_insert_with(|| watch::channel(0).0).subscribe()
    }

    /// Wakes the held polls of the pollers `touches` names (all of them, in id order,
    /// when it says so).
    fn wake(&self, touches: &PollTouches) {
        let bump = |counter: &watch::Sender<u64>| counter.send_modify(|count| *count = count.wrapping_add(1));
        let counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        if touches.all {
            counters.values().for_each(bump);
        } else {
            touches.nodes.iter().filter_map(|node| counters.get(node)).for_each(bump);
        }
    }
}

/// What poll answers share until the state they were made from changes: the member list
/// encoded once, and the swarm candidates per revision.
#[derive(Default)]
pub(super) struct AnswerCache {
    /// The member list, encoded, and its version, with the `Versions::members` they
    /// were computed at.
    members_encoded: Mutex<Option<(u64, u64, Bytes)>>,
    /// Swarm candidates per revision, valid for one `Versions::poll_inputs`.
    swarm_candidates: Mutex<(u64, BTreeMap<RevisionId, Arc<Candidates>>)>,
}

impl Leader {
    /// Answers an agent's long poll; the payload carries the member list when the
    /// poller's is out of date.
    pub(super) async fn handle_poll(&self, poll: PollRequest) -> (Response, Bytes) {
        let node = &self.node;
        if !node.is_leader() {
            return not_leader(node);
        }
        let arrived = Instant::now();
        self.record_route_errors(poll.node, &poll.route_errors);
        let facts = PollFacts { node: poll.node, release: poll.release.clone(), revisions: poll.revisions.clone() };
        // Fails only once the leader task ended, at shutdown; the answer below still goes.
        let _ = self.events.send(Event::Polled { term: node.term(), poll: facts, at: arrived });
        let deadline = arrived + Duration::from_millis(poll.hold_ms).min(POLL_HOLD_MAX);
        let mut wake = self.poll_wakers.subscribe(poll.node);
        // Bounded by the deadline: at most one iteration per change of the poll's inputs.
        loop {
            // The cheap part first: most wake-ups change nothing for this poller, and the
            // full answer (swarm peers) costs O(targets).
            let (assignments, level) = node.state().read(|state| {
                let level = state.cluster.is_some().then_some(state.feature_level);
                (assignments::for_node(state, poll.node), level)
            });
            let digest = assignments.digest();
            // One read of the state for both; a leader's state is bootstrapped.
            let level = level.unwrap_or_else(|| node.cluster_feature_level());
            let level_changed = poll.feature_level.is_some_and(|known| known != level);
            let changed =
                digest != poll.assignments_digest || self.members_encoded().0 != poll.members_version || level_changed;
            if changed || Instant::now() >= deadline || !node.is_leader() {
                let (answer, payload) = self.poll_answer(&poll, assignments, digest);
                return (Response::Poll(Box::new(answer)), payload);
            }
            tokio::select! {
                biased;
                result = wake.changed() => if result.is_err() { return not_leader(node) },
                () = tokio::time::sleep_until(deadline) => {}
            }
        }
    }

    /// The member list, encoded, and its version ([`protocol::members_version`]),
    /// recomputed only after an applied entry that may have changed the list (it is
    /// asked on every poll answer, and encoding thousands of addresses is O(members)).
    /// Every answer that carries the list shares these bytes.
    fn members_encoded(&self) -> (u64, Bytes) {
        let changes = self.node.state().versions().members;
        let mut cached = self.answers.members_encoded.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((at, version, encoded)) = &*cached {
            if *at == changes {
                return (*version, encoded.clone());
            }
        }
        let encoded = Bytes::from(serde_json::to_vec(&self.node.member_addresses()).expect("addresses serialize"));
        let version = protocol::members_version(&encoded);
        *cached = Some((changes, version, encoded.clone()));
        (version, encoded)
    }

    /// Who can serve `revision`, recomputed only after the poll inputs changed.
    fn swarm_candidates(&self, revision: RevisionId) -> Arc<Candidates> {
        let version = self.node.state().versions().poll_inputs;
        let mut cache = self.answers.swarm_candidates.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.0 != version {
            *cache = (version, BTreeMap::new());
        }
        cache
            .1
            .entry(revision)
            .or_insert_with(|| Arc::new(self.node.state().read(|state| Candidates::of(state, revision))))
            .clone()
    }

    /// Builds the answer to `poll`, whose assignments are already computed.
    ///
    /// Swarm peers go only where they can be used: for revisions the poller reports
    /// fetching, and for revisions it does not report when its assignments changed
    /// (a new assignment, a restarted or a lost answer). A poller that holds a copy, or
    /// whose fetch already has peers and whose poll only timed out, gets none: at
    /// N = 1000 encoding peers for every held poll was most of the answers' cost.
    fn poll_answer(&self, poll: &PollRequest, assignments: Assignments, digest: String) -> (PollResponse, Bytes) {
        let (poller, members_version) = (poll.node, poll.members_version);
        let reassigned = digest != poll.assignments_digest;
        let wants_peers = |revision: RevisionId| {
            poll.revisions
                .iter()
                .find(|progress| progress.revision_id == revision)
                .map_or(reassigned, |progress| !progress.complete)
        };
        let node = &self.node;
        let leader = LeaderHint { id: node.id(), listen: node.settings().listen };
        let (version, members) = self.members_encoded();
        let stale = version != members_version;
        let voters = node.voters();
        let role = if voters.contains(&poller) { Role::Voter } else { Role::Agent };
        let swarm_peers = assignments::swarm_peers(
            poller,
            &assignments,
            wants_peers,
            |revision| self.swarm_candidates(revision),
            |chosen| {
                node.state().read(|state| {
                    chosen
                        .iter()
                        .filter_map(|id| state.members.get(id))
                        .map(|member| protocol::MemberAddress { id: member.id, listen: member.listen, api: member.api })
                        .collect()
                })
            },
        );
        let answer = PollResponse {
            leader,
            term: node.term(),
            role,
            members_in_payload: stale.then_some(version),
            admin_token_hash: node.admin_token_hash(),
            read_only_token_hash: node.token_hash(ApiTokenKind::ReadOnly),
            metrics_token_hash: node.token_hash(ApiTokenKind::Metrics),
            assignments_digest: digest,
            assignments,
            swarm_peers,
            voters: voters.into_iter().collect(),
            feature_level: node.state().read(|state| state.feature_level),
        };
        (answer, if stale { members } else { Bytes::new() })
    }
}

/// Wakes held polls whose answers may have changed: every poll when leadership changes,
/// and after applied entries the pollers they concern (see [`PollTouches`]: active
/// deployments, which of their targets are pending or in progress, revision holders,
/// prefetch requests, members, voters). Lifecycle progress inside a target concerns
/// nobody. One task per node does this work, instead of every held poll recomputing its
/// answer after every applied entry; it takes the touches on followers too, so they do
/// not pile up.
pub(super) async fn watch_poll_inputs(leader: Arc<Leader>) {
    let node = &leader.node;
    let mut shutdown = node.shutdown_signal();
    let mut changes = node.state().subscribe();
    let mut server = node.server_state();
    let mut last_leadership = None;
    // Bounded by shutdown: every pass waits for an applied entry or a leadership change.
    loop {
        let leadership = server.leadership(node.id());
        let mut touches = node.state().take_poll_touches();
        if last_leadership != Some(leadership) {
            last_leadership = Some(leadership);
            touches.add_all();
        }
        if !touches.is_empty() {
            leader.poll_wakers.wake(&touches);
        }
        tokio::select! {
            biased;
            _ = shutdown.changed() => return,
            result = changes.changed() => if result.is_err() { return },
            () = server.changed(node.raft_host()) => {}
        }
    }
}
