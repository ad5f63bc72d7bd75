//! The leader loop: runs on every node and acts only while the node leads. It commits
//! the bootstrap entry, runs the rollout engine after every change of its inputs and at
//! its deadlines, and keeps the voter count (autopilot).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use fleetmesh_state::model::ids::{RevisionId, UnixMillis};
use fleetmesh_state::Command;
use fleetmesh_transport::NodeId;
use openraft::BasicNode;
use tokio::time::Instant;
use tracing::{info, warn};

use super::autopilot::{self, AutopilotInput, VoterChange};
use super::Leader;

/// Period of the leader loop.
const LEADER_TICK: Duration = Duration::from_millis(100);

/// Longest the leader goes without planning, even when nothing changed: a bound on the
/// cost of any input this shell fails to track (a wall-clock jump, say).
const PLAN_RECHECK_MAX: Duration = Duration::from_secs(1);

/// How often autopilot checks the voter set.
const AUTOPILOT_EVERY: Duration = Duration::from_millis(500);

/// Everything the rollout engine's decisions depend on, except the time: when these are
/// unchanged and no deadline has come, planning again would decide nothing new.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PlanInputs {
    term: u64,
    applied: u64,
    revivals: u64,
    completions: u64,
}

/// Why a voter change did not happen.
#[derive(Debug, thiserror::Error)]
enum VoterChangeError {
    /// The node to promote is not a member.
    #[error("node {0} is not a member")]
    NotMember(NodeId),
    /// The learner did not catch up in time.
    #[error("node {0} did not catch up within 20 s")]
    CatchUp(NodeId),
    /// openraft refused the change.
    #[error("{0}")]
    Raft(String),
    /// The change did not commit in time.
    #[error("membership change timed out")]
    Timeout,
    /// Another change stayed in progress.
    #[error("membership change kept conflicting with one in progress")]
    Conflict,
}

/// The leader loop: runs on every node, acts only while it leads.
pub(super) async fn run(leader: Arc<Leader>) {
    let node = leader.node.clone();
    let mut shutdown = node.shutdown_signal();
    let mut changes = node.state().subscribe();
    let mut server = node.server_state();
    let mut last_autopilot = Instant::now();
    let mut planned: Option<(PlanInputs, Instant)> = None;
    // Bounded by shutdown: every pass waits for a change, a leadership change or a tick.
    loop {
        // A node that does not lead has nothing to do until that changes: agents (most
        // of a fleet) sleep here instead of ticking.
        while !server.leadership(node.id()).1 {
            leader.view.clear();
            planned = None;
            tokio::select! {
                biased;
                _ = shutdown.changed() => return,
                () = server.changed(node.raft_host()) => {}
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
        if node.is_shutting_down() {
            return;
        }
        if !node.is_leader() {
            leader.view.clear();
            continue;
        }
        if !node.leads_with_current_state() {
            // Elected, but entries of earlier terms may still be unapplied; the apply
            // of this term's first entry wakes the loop.
            continue;
        }
        let now = Instant::now();
        leader.view.with(node.term(), now, |view| view.liveness.heard(node.id(), now));
        leader.commit_bootstrap().await;
        // Plan after every change of the engine's inputs and at its deadlines, not on
        // every tick: a plan is O(targets), and most ticks change nothing.
        let inputs = leader.plan_inputs();
        if planned.is_none_or(|(last, recheck_at)| last != inputs || now >= recheck_at) {
            let deadline = super::engine::tick(&leader).await;
            planned = Some((inputs, leader.recheck_at(deadline, now)));
        }
        if now.duration_since(last_autopilot) >= AUTOPILOT_EVERY {
            last_autopilot = now;
            leader.raise_feature_level().await;
            leader.start_autopilot();
        }
    }
}

impl Leader {
    fn plan_inputs(&self) -> PlanInputs {
        let term = self.node.term();
        let applied = self.node.state().applied_index();
        let (revivals, completions) =
            self.view.with(term, Instant::now(), |view| (view.liveness.revivals(), view.completions));
        PlanInputs { term, applied, revivals, completions }
    }

    /// When planning must run again with no change of its inputs: at the first host
    /// whose health changes with time, at the planner's own `deadline` (wall clock),
    /// and at the latest after [`PLAN_RECHECK_MAX`].
    fn recheck_at(&self, deadline: Option<UnixMillis>, now: Instant) -> Instant {
        let health = self.view.with(self.node.term(), now, |view| view.liveness.next_change(now));
        let wall = self.node.clock().now();
        let deadline = deadline.map(|at| now + Duration::from_millis(at.0.saturating_sub(wall.0)));
        [Some(now + PLAN_RECHECK_MAX), Some(health), deadline].into_iter().flatten().min().unwrap_or(now)
    }

    /// `RecordRevisionHolder` commands for nodes whose polls report a complete revision
    /// the replicated state does not list them as holding.
    pub(super) fn new_revision_holders(&self) -> Vec<Command> {
        let now = Instant::now();
        let complete: Vec<(RevisionId, NodeId)> = self.view.with(self.node.term(), now, |view| {
            view.progress
                .iter()
                .flat_map(|(revision, nodes)| {
                    nodes.iter().filter(|(_, progress)| progress.complete).map(move |(node, _)| (*revision, *node))
                })
                .collect()
        });
        self.node.state().read(|state| {
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

    async fn commit_bootstrap(&self) {
        if self.node.state().read(|state| state.cluster.is_some()) {
            return;
        }
        let pending = self.pending_bootstrap.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let Some((info, first)) = pending else { return };
        match self.node.propose_one(Command::Bootstrap { info, first }).await {
            Ok(_) => {
                info!("cluster bootstrapped");
                self.pending_bootstrap.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
            }
            Err(error) => warn!(%error, "could not commit the bootstrap entry yet"),
        }
    }

    fn start_autopilot(self: &Arc<Self>) {
        let node = &self.node;
        let Some(voters_desired) = node.state().read(|state| state.cluster.as_ref().map(|info| info.voters_desired))
        else {
            return;
        };
        let voters: BTreeSet<NodeId> = node.voters();
        let now = Instant::now();
        let hosts = self.with_health(now, |health| health.hosts.clone());
        let members = hosts.iter().map(|(id, _, _)| *id).collect();
        let health = hosts
            .iter()
            .map(|(id, health, dead_at)| (*id, *health, dead_at.map(|at| now.duration_since(at))))
            .collect();
        let mut input = AutopilotInput {
            leader: node.id(),
            members,
            voters: voters.clone(),
            health,
            voters_desired: voters_desired as usize,
            grace: node.settings().timing.voter_grace,
            behind: BTreeSet::new(),
        };
        let mut change = autopilot::decide(&input);
        // Most passes change nothing; the releases are looked at only when a promotion
        // is due, and then for every member, so the choice skips those behind.
        if change.as_ref().and_then(|change| change.promote).is_some() {
            input.behind = self.behind_cluster_level();
            change = autopilot::decide(&input);
        }
        let Some(change) = change else { return };
        {
            let mut busy = self.autopilot_busy.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if *busy {
                return;
            }
            *busy = true;
        }
        let leader = self.clone();
        tokio::spawn(async move {
            if let Err(error) = leader.change_voters(&change, &voters).await {
                warn!(?change, %error, "voter change failed; will retry");
            }
            *leader.autopilot_busy.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = false;
        });
    }

    async fn change_voters(&self, change: &VoterChange, voters: &BTreeSet<NodeId>) -> Result<(), VoterChangeError> {
        let raft = self.node.raft();
        if let Some(promote) = change.promote {
            let listen = self
                .node
                .state()
                .read(|state| state.members.get(&promote).map(|member| member.listen))
                .ok_or(VoterChangeError::NotMember(promote))?;
            info!(node = %promote, "adding a learner to restore the voter count");
            tokio::time::timeout(
                Duration::from_secs(20),
                raft.add_learner(promote, BasicNode { addr: listen.to_string() }, true),
            )
            .await
            .map_err(|_| VoterChangeError::CatchUp(promote))?
            .map_err(|error| VoterChangeError::Raft(error.to_string()))?;
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
                Ok(Err(error)) => return Err(VoterChangeError::Raft(error.to_string())),
                Err(_) => return Err(VoterChangeError::Timeout),
            }
        }
        Err(VoterChangeError::Conflict)
    }
}
