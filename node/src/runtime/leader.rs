//! What the leader does besides Raft: tracks liveness from polls, answers polls with
//! assignments (long poll), batches agent reports into proposals, commits the
//! bootstrap entry, keeps the voter count (autopilot), and runs the rollout engine.
//!
//! None of this state is replicated: it is rebuilt from scratch whenever a node becomes
//! leader (liveness starts at "heard now"; assignments are derived from the replicated
//! deployments), which is what lets a new leader resume a rollout.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use fleetmesh_state::model::ids::RevisionId;
use fleetmesh_state::{Command, PollTouches, TargetReport};
use fleetmesh_transport::NodeId;
use openraft::BasicNode;
use serde::Serialize;
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;
use tracing::{info, warn};

use super::autopilot::{self, AutopilotInput};
use super::liveness::{Health, Liveness};
use super::{Node, Timing};
use crate::assignments::Candidates;
use crate::protocol::{
    Assignments, LeaderHint, MemberAddress, PollRequest, PollResponse, Response, RevisionProgress, Role,
};

/// Longest hold the leader grants a poll, whatever the agent asks.
const POLL_HOLD_MAX: Duration = Duration::from_secs(5);

/// Period of the leader loop.
const LEADER_TICK: Duration = Duration::from_millis(100);

/// Leader-only soft state.
pub(super) struct LeaderDuties {
    timing: Timing,
    view: Mutex<Option<LeaderView>>,
    /// Nodes whose membership change is under way (autopilot runs one at a time).
    autopilot_busy: Mutex<bool>,
    /// Wakes held polls when something their answer depends on may have changed.
    poll_wakers: PollWakers,
    /// Agents' reports waiting to be committed.
    reports: ReportBatcher,
    /// The member list, encoded, and its version, with the `Versions::members` they
    /// were computed at.
    members_encoded: Mutex<Option<(u64, u64, Bytes)>>,
    /// Swarm candidates per revision, valid for one `Versions::poll_inputs`.
    swarm_candidates: Mutex<(u64, BTreeMap<RevisionId, Arc<Candidates>>)>,
}

/// One counter per poller, bumped when that poller's answer may have changed: its
/// assignments or revision holdings, or for everyone, members, voters and leadership.
/// Held polls wait on their own poller's counter rather than on every applied entry, so
/// a target that ends wakes that target's poll, not every agent's (see
/// [`watch_poll_inputs`]). One entry per node that ever polled this node: bounded by the
/// member ids ever given out.
#[derive(Default)]
struct PollWakers {
    counters: Mutex<BTreeMap<NodeId, watch::Sender<u64>>>,
}

impl PollWakers {
    /// A receiver that changes when `poller`'s answer may have.
    fn subscribe(&self, poller: NodeId) -> watch::Receiver<u64> {
        let mut counters = self.counters.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        counters.entry(poller).or_insert_with(|| watch::channel(0).0).subscribe()
    }

    /// Wakes the held polls of the pollers `touches` names (all of them, in id order,
    /// when it says so).
    fn wake(&self, touches: &PollTouches) {
        let bump = |counter: &watch::Sender<u64>| counter.send_modify(|count| *count = count.wrapping_add(1));
        let counters = self.counters.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if touches.all {
            counters.values().for_each(bump);
        } else {
            touches.nodes.iter().filter_map(|node| counters.get(node)).for_each(bump);
        }
    }
}

struct LeaderView {
    term: u64,
    liveness: Liveness,
    /// Every member's health, for planning and autopilot, while it is valid.
    health: Option<HealthSnapshot>,
    /// Download progress per revision per node, as reported in polls.
    progress: BTreeMap<RevisionId, BTreeMap<NodeId, RevisionProgress>>,
    /// Counts polls that reported a revision complete for the first time.
    completions: u64,
}

/// Every member's health as [`Liveness::health_of_all`] gives it. By the contract of
/// [`Liveness::revivals`] it stays true while the member list and the revivals count are
/// unchanged and the time is before `until`: planning runs after every applied entry,
/// and recomputing every member's health each time was 8 % of a simulated run.
struct HealthSnapshot {
    /// `Versions::members` when the member list was read.
    members: u64,
    revivals: u64,
    until: Instant,
    hosts: Arc<Vec<(NodeId, Health, Option<Instant>)>>,
    /// The planner's view made from it, with the wall-clock and monotonic times it was
    /// made at (its `dead_since` times are wall-clock times).
    fleet: Option<(fleetmesh_state::model::ids::UnixMillis, Instant, Arc<fleetmesh_core::rollout::FleetView>)>,
}

impl HealthSnapshot {
    fn is_valid(&self, members: u64, revivals: u64, now: Instant) -> bool {
        self.members == members && self.revivals == revivals && now < self.until
    }
}

/// Everything the rollout engine's decisions depend on, except the time: when these are
/// unchanged and no deadline has come, planning again would decide nothing new.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PlanInputs {
    term: u64,
    applied: u64,
    revivals: u64,
    completions: u64,
}

/// Longest the leader goes without planning, even when nothing changed: a bound on the
/// cost of any input this shell fails to track (a wall-clock jump, say).
const PLAN_RECHECK_MAX: Duration = Duration::from_secs(1);

impl LeaderDuties {
    pub(super) fn new(timing: &Timing) -> Self {
        Self {
            timing: *timing,
            view: Mutex::new(None),
            autopilot_busy: Mutex::new(false),
            poll_wakers: PollWakers::default(),
            reports: ReportBatcher::default(),
            members_encoded: Mutex::new(None),
            swarm_candidates: Mutex::new((0, BTreeMap::new())),
        }
    }

    fn with_view<T>(&self, term: u64, now: Instant, update: impl FnOnce(&mut LeaderView) -> T) -> T {
        let mut guard = self.view.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if guard.as_ref().is_none_or(|view| view.term != term) {
            *guard = Some(LeaderView {
                term,
                liveness: Liveness::new(now, self.timing.suspect_after, self.timing.dead_after),
                health: None,
                progress: BTreeMap::new(),
                completions: 0,
            });
        }
        update(guard.as_mut().expect("set above"))
    }

    fn clear(&self) {
        *self.view.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }
}

/// One node as `cluster status` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct NodeView {
    /// Id.
    pub id: NodeId,
    /// QUIC address.
    pub address: String,
    /// HTTP API address.
    pub api: String,
    /// voter or agent.
    pub role: Role,
    /// alive, suspect or dead.
    pub health: Health,
    /// Tags.
    pub tags: BTreeMap<String, String>,
}

/// The cluster as the leader sees it (`GET /v1/cluster`).
#[derive(Clone, Debug, Serialize)]
pub struct ClusterView {
    /// The leader.
    pub leader: Option<NodeId>,
    /// Raft term.
    pub term: u64,
    /// The cluster id.
    pub cluster_id: String,
    /// Voters the leader keeps.
    pub voters_desired: u32,
    /// Members, by id.
    pub nodes: Vec<NodeView>,
}

impl Node {
    fn term(&self) -> u64 {
        self.raft().metrics().borrow().current_term
    }

    /// The leader's liveness verdict on `node` (Alive when this node is not the leader
    /// or has no view yet).
    pub fn leader_health(&self, node: NodeId) -> Health {
        if node == self.id() {
            return Health::Alive;
        }
        let now = Instant::now();
        self.leader.with_view(self.term(), now, |view| view.liveness.health(node, now))
    }

    /// How long `node` has been dead in the leader's view.
    pub fn leader_dead_for(&self, node: NodeId) -> Option<Duration> {
        let now = Instant::now();
        self.leader.with_view(self.term(), now, |view| view.liveness.dead_for(node, now))
    }

    /// Member addresses from the replicated state.
    pub fn member_addresses(&self) -> Vec<MemberAddress> {
        self.state().read(|state| {
            state
                .members
                .values()
                .map(|member| MemberAddress { id: member.id, listen: member.listen, api: member.api })
                .collect()
        })
    }

    /// The cluster view (meaningful on the leader).
    pub fn cluster_view(&self) -> ClusterView {
        let voters = self.voters();
        let leader = self.raft().metrics().borrow().current_leader;
        let (members, cluster_id, voters_desired) = self.state().read(|state| {
            (
                state.members.values().cloned().collect::<Vec<_>>(),
                state.cluster.as_ref().map(|info| info.ca.cluster_id.clone()).unwrap_or_default(),
                state.cluster.as_ref().map_or(0, |info| info.voters_desired),
            )
        });
        let nodes = members
            .into_iter()
            .map(|member| NodeView {
                id: member.id,
                address: member.listen.to_string(),
                api: member.api.to_string(),
                role: if voters.contains(&member.id) { Role::Voter } else { Role::Agent },
                health: self.leader_health(member.id),
                tags: member.tags,
            })
            .collect();
        ClusterView { leader, term: self.term(), cluster_id, voters_desired, nodes }
    }

    /// Per-node download progress of a revision, as reported in polls.
    pub fn revision_progress(&self, revision: RevisionId) -> BTreeMap<NodeId, RevisionProgress> {
        let now = Instant::now();
        self.leader.with_view(self.term(), now, |view| view.progress.get(&revision).cloned().unwrap_or_default())
    }

    /// Runs `read` on the current [`HealthSnapshot`], made afresh if it is no longer
    /// valid.
    fn with_health<T>(&self, now: Instant, read: impl FnOnce(&mut HealthSnapshot) -> T) -> T {
        let term = self.term();
        let mut read = Some(read);
        // Twice at most: a view replaced between the check and the use (another task
        // moving it to a new term) is found stale on the second pass and remade.
        loop {
            let members_version = self.state().versions().members;
            let valid = self.leader.with_view(term, now, |view| {
                let revivals = view.liveness.revivals();
                view.health.as_ref().is_some_and(|health| health.is_valid(members_version, revivals, now))
            });
            // Read before taking the view's lock: the state's lock is never taken inside it.
            let members: Option<Vec<NodeId>> =
                (!valid).then(|| self.state().read(|state| state.members.keys().copied().collect()));
            let result = self.leader.with_view(term, now, |view| {
                if let Some(members) = members {
                    view.health = Some(HealthSnapshot {
                        members: members_version,
                        revivals: view.liveness.revivals(),
                        until: view.liveness.next_change(now),
                        hosts: Arc::new(view.liveness.health_of_all(&members, now)),
                        fleet: None,
                    });
                }
                let revivals = view.liveness.revivals();
                let health = view.health.as_mut().filter(|health| health.is_valid(members_version, revivals, now))?;
                read.take().map(|read| read(health))
            });
            if let Some(result) = result {
                return result;
            }
        }
    }

    /// The planner's view of the fleet: every member's liveness, and since when dead.
    pub fn fleet_view(&self) -> Arc<fleetmesh_core::rollout::FleetView> {
        use fleetmesh_core::rollout::{FleetView, HostView};
        let now = Instant::now();
        let wall = self.clock().now();
        self.with_health(now, |health| {
            if let Some((made_wall, made, fleet)) = &health.fleet {
                // A dead host's `dead_since` is a wall-clock time: reuse the view only if
                // the wall clock moved with the monotonic one since it was made.
                let wall_moved = i128::from(wall.0) - i128::from(made_wall.0);
                let moved = now.duration_since(*made).as_millis() as i128;
                if (wall_moved - moved).abs() <= 1 {
                    return fleet.clone();
                }
            }
            let hosts = health
                .hosts
                .iter()
                .map(|(id, health, dead_at)| {
                    let host = match health {
                        _ if *id == self.id() => HostView::alive(),
                        Health::Alive => HostView::alive(),
                        Health::Suspect => HostView::suspect(),
                        Health::Dead => {
                            let dead_for = dead_at.map_or(0, |at| now.duration_since(at).as_millis() as u64);
                            HostView::dead_since(fleetmesh_state::model::ids::UnixMillis(
                                wall.0.saturating_sub(dead_for),
                            ))
                        }
                    };
                    (*id, host)
                })
                .collect();
            let fleet = Arc::new(FleetView { hosts });
            health.fleet = Some((wall, now, fleet.clone()));
            fleet
        })
    }

    fn plan_inputs(&self) -> PlanInputs {
        let term = self.term();
        let applied = self.state().applied_index();
        let (revivals, completions) =
            self.leader.with_view(term, Instant::now(), |view| (view.liveness.revivals(), view.completions));
        PlanInputs { term, applied, revivals, completions }
    }

    /// When planning must run again with no change of its inputs: at the first host
    /// whose health changes with time, at the planner's own `deadline` (wall clock),
    /// and at the latest after [`PLAN_RECHECK_MAX`].
    fn recheck_at(&self, deadline: Option<fleetmesh_state::model::ids::UnixMillis>, now: Instant) -> Instant {
        let health = self.leader.with_view(self.term(), now, |view| view.liveness.next_change(now));
        let wall = self.clock().now();
        let deadline = deadline.map(|at| now + Duration::from_millis(at.0.saturating_sub(wall.0)));
        [Some(now + PLAN_RECHECK_MAX), Some(health), deadline].into_iter().flatten().min().unwrap_or(now)
    }

    /// `RecordRevisionHolder` commands for nodes whose polls report a complete revision
    /// the replicated state does not list them as holding.
    pub(crate) fn new_revision_holders(&self) -> Vec<Command> {
        let now = Instant::now();
        let complete: Vec<(RevisionId, NodeId)> = self.leader.with_view(self.term(), now, |view| {
            view.progress
                .iter()
                .flat_map(|(revision, nodes)| {
                    nodes.iter().filter(|(_, progress)| progress.complete).map(move |(node, _)| (*revision, *node))
                })
                .collect()
        });
        self.state().read(|state| {
            complete
                .into_iter()
                .filter(|(revision, node)| {
                    state.revisions.contains_key(revision)
                        && !state.revision_holders.get(revision).is_some_and(|holders| holders.contains(node))
                })
                .map(|(revision_id, node)| Command::RecordRevisionHolder { revision_id, node })
                .collect()
        })
    }

    /// The member list, encoded, and its version ([`crate::protocol::members_version`]),
    /// recomputed only after an applied entry that may have changed the list (it is
    /// asked on every poll answer, and encoding thousands of addresses is O(members)).
    /// Every answer that carries the list shares these bytes.
    fn members_encoded(&self) -> (u64, Bytes) {
        let changes = self.state().versions().members;
        let mut cached = self.leader.members_encoded.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((at, version, encoded)) = &*cached {
            if *at == changes {
                return (*version, encoded.clone());
            }
        }
        let encoded = Bytes::from(serde_json::to_vec(&self.member_addresses()).expect("addresses serialize"));
        let version = crate::protocol::members_version(&encoded);
        *cached = Some((changes, version, encoded.clone()));
        (version, encoded)
    }

    fn members_version(&self) -> u64 {
        self.members_encoded().0
    }

    /// Who can serve `revision`, recomputed only after the poll inputs changed.
    pub(crate) fn swarm_candidates(&self, revision: RevisionId) -> Arc<Candidates> {
        let version = self.state().versions().poll_inputs;
        let mut cache = self.leader.swarm_candidates.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.0 != version {
            *cache = (version, BTreeMap::new());
        }
        cache
            .1
            .entry(revision)
            .or_insert_with(|| Arc::new(self.state().read(|state| Candidates::of(state, revision))))
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
        let leader = LeaderHint { id: self.id(), listen: self.settings().listen };
        let (version, members) = self.members_encoded();
        let stale = version != members_version;
        let voters = self.voters();
        let role = if voters.contains(&poller) { Role::Voter } else { Role::Agent };
        let swarm_peers = crate::assignments::swarm_peers(self, poller, &assignments, wants_peers);
        let answer = PollResponse {
            leader,
            term: self.term(),
            role,
            members_in_payload: stale.then_some(version),
            admin_token_hash: self.admin_token_hash(),
            assignments_digest: digest,
            assignments,
            swarm_peers,
            voters: voters.into_iter().collect(),
        };
        (answer, if stale { members } else { Bytes::new() })
    }
}

/// Answers an agent's long poll; the payload carries the member list when the
/// poller's is out of date.
pub(super) async fn handle_poll(node: &Arc<Node>, poll: PollRequest) -> (Response, Bytes) {
    let not_leader = || (Response::NotLeader { leader: node.leader_hint() }, Bytes::new());
    if !node.is_leader() {
        return not_leader();
    }
    let term = node.term();
    let arrived = Instant::now();
    node.leader.with_view(term, arrived, |view| {
        view.liveness.heard(poll.node, arrived);
        for progress in &poll.revisions {
            let before = view.progress.entry(progress.revision_id).or_default().insert(poll.node, progress.clone());
            if progress.complete && !before.is_some_and(|before| before.complete) {
                view.completions += 1;
            }
        }
    });
    let deadline = arrived + Duration::from_millis(poll.hold_ms).min(POLL_HOLD_MAX);
    let mut wake = node.leader.poll_wakers.subscribe(poll.node);
    // Bounded by the deadline: at most one iteration per change of the poll's inputs.
    loop {
        // The cheap part first: most wake-ups change nothing for this poller, and the
        // full answer (swarm peers) costs O(targets).
        let assignments = crate::assignments::for_node(node, poll.node);
        let digest = assignments.digest();
        let changed = digest != poll.assignments_digest || node.members_version() != poll.members_version;
        if changed || Instant::now() >= deadline || !node.is_leader() {
            let (answer, payload) = node.poll_answer(&poll, assignments, digest);
            return (Response::Poll(Box::new(answer)), payload);
        }
        tokio::select! {
            biased;
            result = wake.changed() => if result.is_err() { return not_leader() },
            () = tokio::time::sleep_until(deadline) => {}
        }
    }
}

/// Wakes held polls whose answers may have changed: every poll when leadership changes,
/// and after applied entries the pollers they concern (see [`PollTouches`]: active
/// deployments, which of their targets are pending or in progress, revision holders,
/// prefetch requests, members, voters). Lifecycle progress inside a target concerns
/// nobody. One task per node does this work, instead of every held poll recomputing its
/// answer after every applied entry; it takes the touches on followers too, so they do
/// not pile up.
pub(super) async fn watch_poll_inputs(node: Arc<Node>) {
    let mut shutdown = node.shutdown_signal();
    let mut changes = node.state().subscribe();
    let mut server = super::ServerStateWatch::new(&node);
    let mut last_leadership = None;
    loop {
        let leadership = server.leadership(node.id());
        let mut touches = node.state().take_poll_touches();
        if last_leadership != Some(leadership) {
            last_leadership = Some(leadership);
            touches.add_all();
        }
        if !touches.is_empty() {
            node.leader.poll_wakers.wake(&touches);
        }
        tokio::select! {
            biased;
            _ = shutdown.changed() => return,
            result = changes.changed() => if result.is_err() { return },
            () = server.changed(&node) => {}
        }
    }
}

/// Reports of one proposal at most: bounds a log entry (a report carries its
/// lifecycle events and their diagnostics, a few KiB at most).
const REPORTS_PER_PROPOSAL_MAX: usize = 256;

/// Agents' reports waiting to be committed together (group commit). While one proposal
/// of reports is in flight, the reports that arrive wait and go into the next one, so a
/// wave of many agents costs a few log entries per lifecycle step, not one per agent.
#[derive(Default)]
struct ReportBatcher {
    queue: Mutex<ReportQueue>,
}

/// Where the committing proposal's result goes, for one sender of reports.
type ReportAnswer = oneshot::Sender<Result<(), super::ProposeError>>;

/// One sender's reports and its answer.
type QueuedReports = (Vec<TargetReport>, ReportAnswer);

#[derive(Default)]
struct ReportQueue {
    /// Each sender's reports, and where its answer goes.
    waiting: std::collections::VecDeque<QueuedReports>,
    /// A flush task is running; it takes what is queued before it stops.
    flushing: bool,
}

impl ReportBatcher {
    fn lock(&self) -> std::sync::MutexGuard<'_, ReportQueue> {
        self.queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues `reports`; true when the caller must start the flush task.
    fn enqueue(&self, reports: Vec<TargetReport>, answer: ReportAnswer) -> bool {
        let mut queue = self.lock();
        queue.waiting.push_back((reports, answer));
        !std::mem::replace(&mut queue.flushing, true)
    }

    /// The next proposal's worth of queued senders (whole senders, at least one, up to
    /// [`REPORTS_PER_PROPOSAL_MAX`] reports); when none are queued, ends the flush.
    fn next_batch(&self) -> Vec<QueuedReports> {
        let mut queue = self.lock();
        let mut batch = Vec::new();
        let mut reports = 0;
        while let Some((front, _)) = queue.waiting.front() {
            if !batch.is_empty() && reports + front.len() > REPORTS_PER_PROPOSAL_MAX {
                break;
            }
            reports += front.len();
            batch.extend(queue.waiting.pop_front());
        }
        if batch.is_empty() {
            queue.flushing = false;
        }
        batch
    }
}

/// Commits agents' lifecycle reports, together with the others that arrive while a
/// proposal of reports is in flight. Each sender gets the answer of the proposal that
/// carried its reports.
pub(super) async fn handle_report(node: &Arc<Node>, reports: Vec<TargetReport>) -> Response {
    let (answer, answered) = oneshot::channel();
    if node.leader.reports.enqueue(reports, answer) {
        // A task of its own, not this request's: a request whose caller gave up is
        // dropped, and the reports of the others queued behind it must still go.
        let node = node.clone();
        tokio::spawn(async move { flush_reports(&node).await });
    }
    match answered.await {
        Ok(Ok(())) => Response::Ack,
        Ok(Err(super::ProposeError::NotLeader { leader })) => Response::NotLeader { leader },
        Ok(Err(error)) => Response::Error(error.to_string()),
        Err(_) => Response::Error("the leader stopped before committing the reports".into()),
    }
}

async fn flush_reports(node: &Arc<Node>) {
    loop {
        let batch = node.leader.reports.next_batch();
        if batch.is_empty() {
            return;
        }
        let (reports, answers): (Vec<Vec<TargetReport>>, Vec<ReportAnswer>) = batch.into_iter().unzip();
        let reports = reports.into_iter().flatten().collect();
        let committed = node.propose_one(Command::ReportTargets { reports }).await.map(|_| ());
        for answer in answers {
            // A sender that gave up no longer listens; its reports are committed anyway.
            let _ = answer.send(committed.clone());
        }
    }
}

/// The leader loop: runs on every node, acts only while it leads.
pub(super) async fn run(node: Arc<Node>) {
    let mut shutdown = node.shutdown_signal();
    let mut changes = node.state().subscribe();
    let mut server = super::ServerStateWatch::new(&node);
    let mut last_autopilot = Instant::now();
    let mut planned: Option<(PlanInputs, Instant)> = None;
    loop {
        // A node that does not lead has nothing to do until that changes: agents (most
        // of a fleet) sleep here instead of ticking.
        while !server.leadership(node.id()).1 {
            node.leader.clear();
            planned = None;
            tokio::select! {
                biased;
                _ = shutdown.changed() => return,
                () = server.changed(&node) => {}
            }
        }
        // Wake on every applied change (a report, a new deployment) so a wave starts
        // within one commit of the previous one ending, and at least every tick for
        // time-based decisions (liveness, timeouts).
        tokio::select! {
            biased;
            _ = shutdown.changed() => return,
            _ = changes.changed() => {}
            () = tokio::time::sleep(LEADER_TICK) => {}
        }
        if *shutdown.borrow() {
            return;
        }
        if !node.is_leader() {
            node.leader.clear();
            continue;
        }
        if !node.leads_with_current_state() {
            // Elected, but entries of earlier terms may still be unapplied; the apply
            // of this term's first entry wakes the loop.
            continue;
        }
        let now = Instant::now();
        node.leader.with_view(node.term(), now, |view| view.liveness.heard(node.id(), now));
        commit_bootstrap(&node).await;
        // Plan after every change of the engine's inputs and at its deadlines, not on
        // every tick: a plan is O(targets), and most ticks change nothing.
        let inputs = node.plan_inputs();
        if planned.is_none_or(|(last, recheck_at)| last != inputs || now >= recheck_at) {
            let deadline = crate::rollout_engine::tick(&node).await;
            planned = Some((inputs, node.recheck_at(deadline, now)));
        }
        if now.duration_since(last_autopilot) >= Duration::from_millis(500) {
            last_autopilot = now;
            start_autopilot(&node);
        }
    }
}

async fn commit_bootstrap(node: &Arc<Node>) {
    if node.state().read(|state| state.cluster.is_some()) {
        return;
    }
    let pending = node.pending_bootstrap.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    let Some((info, first)) = pending else { return };
    match node.propose_one(Command::Bootstrap { info, first }).await {
        Ok(_) => {
            info!("cluster bootstrapped");
            node.pending_bootstrap.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        }
        Err(error) => warn!(%error, "could not commit the bootstrap entry yet"),
    }
}

fn start_autopilot(node: &Arc<Node>) {
    let Some(voters_desired) = node.state().read(|state| state.cluster.as_ref().map(|info| info.voters_desired)) else {
        return;
    };
    let voters: BTreeSet<NodeId> = node.voters();
    let now = Instant::now();
    let hosts = node.with_health(now, |health| health.hosts.clone());
    let members = hosts.iter().map(|(id, _, _)| *id).collect();
    let health =
        hosts.iter().map(|(id, health, dead_at)| (*id, *health, dead_at.map(|at| now.duration_since(at)))).collect();
    let input = AutopilotInput {
        leader: node.id(),
        members,
        voters: voters.clone(),
        health,
        voters_desired: voters_desired as usize,
        grace: node.settings().timing.voter_grace,
    };
    let Some(change) = autopilot::decide(&input) else { return };
    {
        let mut busy = node.leader.autopilot_busy.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if *busy {
            return;
        }
        *busy = true;
    }
    let node = node.clone();
    tokio::spawn(async move {
        if let Err(error) = change_voters(&node, &change, &voters).await {
            warn!(?change, %error, "voter change failed; will retry");
        }
        *node.leader.autopilot_busy.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = false;
    });
}

async fn change_voters(
    node: &Arc<Node>,
    change: &autopilot::VoterChange,
    voters: &BTreeSet<NodeId>,
) -> anyhow::Result<()> {
    let raft = node.raft();
    if let Some(promote) = change.promote {
        let listen = node
            .state()
            .read(|state| state.members.get(&promote).map(|member| member.listen))
            .ok_or_else(|| anyhow::anyhow!("node {promote} is not a member"))?;
        info!(node = %promote, "adding a learner to restore the voter count");
        tokio::time::timeout(
            Duration::from_secs(20),
            raft.add_learner(promote, BasicNode { addr: listen.to_string() }, true),
        )
        .await
        .map_err(|_| anyhow::anyhow!("node {promote} did not catch up within 20 s"))??;
    }
    let next = change.apply(voters);
    // Right after a leader change the previous membership entry may not be committed
    // yet (openraft answers InProgress): retry briefly.
    for attempt in 0..20u32 {
        match tokio::time::timeout(Duration::from_secs(10), raft.change_membership(next.clone(), false)).await {
            Ok(Ok(_)) => {
                info!(voters = ?next, "voter set changed");
                return Ok(());
            }
            Ok(Err(error)) if error.to_string().contains("in progress") && attempt < 19 => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok(Err(error)) => return Err(error.into()),
            Err(_) => anyhow::bail!("membership change timed out"),
        }
    }
    anyhow::bail!("membership change kept conflicting with one in progress")
}

#[cfg(test)]
mod tests {
    use fleetmesh_state::model::deployment::TargetStatus;
    use fleetmesh_state::model::ids::DeploymentId;

    use super::*;

    fn reports(target: u64, count: usize) -> Vec<TargetReport> {
        (0..count)
            .map(|index| TargetReport {
                deployment_id: DeploymentId(format!("d-{index}")),
                target_id: NodeId(target),
                seq: 1,
                status: TargetStatus::InProgress,
                lifecycle_events: Vec::new(),
            })
            .collect()
    }

    #[test]
    fn reports_that_arrive_during_a_flush_go_together_within_the_bound() {
        // The first sender starts the flush; later ones only queue. A batch takes whole
        // senders up to the bound (one oversized sender still goes alone), and the flush
        // ends when the queue is empty, so the next sender starts a new one.
        let batcher = ReportBatcher::default();
        let mut answers = Vec::new();
        let mut enqueue = |target: u64, count: usize| {
            let (answer, answered) = oneshot::channel();
            answers.push(answered);
            batcher.enqueue(reports(target, count), answer)
        };
        assert!(enqueue(1, 1), "the first sender flushes");
        assert!(!enqueue(2, REPORTS_PER_PROPOSAL_MAX - 1));
        assert!(!enqueue(3, 1));
        assert!(!enqueue(4, REPORTS_PER_PROPOSAL_MAX + 5));
        let sizes = |batch: &[QueuedReports]| batch.iter().map(|(reports, _)| reports.len()).collect::<Vec<_>>();
        assert_eq!(sizes(&batcher.next_batch()), vec![1, REPORTS_PER_PROPOSAL_MAX - 1]);
        assert_eq!(sizes(&batcher.next_batch()), vec![1]);
        assert_eq!(sizes(&batcher.next_batch()), vec![REPORTS_PER_PROPOSAL_MAX + 5]);
        assert!(batcher.next_batch().is_empty(), "the queue is drained");
        assert!(enqueue(5, 1), "a drained queue ended the flush; the next sender starts one");
    }
}
