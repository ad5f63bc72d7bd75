//! The host agent's runtime: turns the leader's assignments into lifecycle runs and
//! their progress into reports.
//!
//! ```text
//!  poll answer ──assignments──▶ AgentRuntime ──spawn──▶ sequence::run (one per deployment)
//!                                   ▲                          │ events via LifecycleBackend
//!                                   └── journal (crash safety) ◀┘ reports ──▶ report sender ──▶ leader
//! ```
//!
//! Every event is journalled before it starts and after it ends, so a host agent
//! killed mid-event reports that event failed when it comes back (§8.1) and never runs
//! an event of a deployment twice, whichever leader asks.

mod backend;
pub mod host;
mod journal;
mod reports;
mod sequence;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

pub use backend::{Journal, JournalRecord, LifecycleBackend, MemoryJournal, TargetContext};
use fleetmesh_state::model::ids::DeploymentId;
use tokio::sync::watch;
use tracing::info;

use crate::protocol::{DeploymentAssignment, PollResponse, RevisionProgress};
use crate::runtime::Node;

/// One deployment running on this host.
struct Running {
    cancel: watch::Sender<bool>,
    assigned_term: u64,
}

/// The agent of one node.
pub struct AgentRuntime {
    backend: Arc<dyn LifecycleBackend>,
    running: Mutex<BTreeMap<DeploymentId, Running>>,
    reports: reports::ReportQueue,
}

impl std::fmt::Debug for AgentRuntime {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("AgentRuntime").finish_non_exhaustive()
    }
}

impl AgentRuntime {
    /// The revision service, on hosts that store chunks.
    pub fn revisions(&self) -> Option<&Arc<crate::revision_service::RevisionService>> {
        self.backend.revisions()
    }
}

/// The agent of `node`, if started.
pub fn agent_of(node: &Node) -> Option<Arc<AgentRuntime>> {
    node.agent.get().cloned()
}

/// Starts the agent of `node` with `backend`: recovers interrupted runs from the
/// journal, then spawns the report sender.
pub fn start_with(node: &Arc<Node>, backend: Arc<dyn LifecycleBackend>, tasks: &mut tokio::task::JoinSet<()>) {
    let agent = Arc::new(AgentRuntime {
        backend,
        running: Mutex::new(BTreeMap::new()),
        reports: reports::ReportQueue::default(),
    });
    if node.agent.set(agent.clone()).is_err() {
        tracing::error!("the host agent was started twice");
        return;
    }
    for report in sequence::recover(node, agent.backend.as_ref()) {
        agent.reports.push(report);
    }
    tasks.spawn(reports::send_loop(node.clone(), agent));
}

/// Starts the production agent (processes, files, the chunk store) for a node with a
/// data directory.
pub(crate) fn start(node: &Arc<Node>, tasks: &mut tokio::task::JoinSet<()>) {
    match host::HostBackend::open(node) {
        Ok(backend) => start_with(node, Arc::new(backend), tasks),
        Err(error) => tracing::error!(%error, "the host agent cannot start; this node will not run deployments"),
    }
}

/// Progress of revisions this node fetches, for the poll.
pub(crate) fn revision_progress(node: &Node) -> Vec<RevisionProgress> {
    agent_of(node).map(|agent| agent.backend.revision_progress()).unwrap_or_default()
}

/// Handles a poll answer: starts runs for new assignments, cancels runs whose
/// assignment was withdrawn by a leader at least as recent, and passes the prefetch
/// list and swarm peers to the backend.
pub(crate) fn on_assignments(node: &Arc<Node>, poll: &PollResponse) {
    let Some(agent) = agent_of(node) else { return };
    agent.backend.on_assignments(node, &poll.assignments, &poll.swarm_peers);
    let assigned: BTreeMap<DeploymentId, &DeploymentAssignment> =
        poll.assignments.deployments.iter().map(|assignment| (assignment.deployment_id.clone(), assignment)).collect();
    let mut running = agent.running.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    running.retain(|id, run| {
        let finished = run.cancel.is_closed();
        if !assigned.contains_key(id) && poll.term >= run.assigned_term && !finished {
            info!(deployment = %id, "assignment withdrawn: stopping after the current lifecycle event");
            run.cancel.send_replace(true);
        }
        !finished
    });
    for (id, assignment) in assigned {
        if running.contains_key(&id) {
            continue;
        }
        let (cancel, cancelled) = watch::channel(false);
        running.insert(id.clone(), Running { cancel, assigned_term: poll.term });
        let context = TargetContext { assignment: assignment.clone(), node_id: node.id() };
        let node = node.clone();
        let agent = agent.clone();
        tokio::spawn(async move {
            sequence::run(&node, &agent, context, cancelled).await;
        });
    }
}

/// Lets running lifecycle events finish before the node stops: no new event starts
/// (every run is cancelled between events) and this waits until the runs end or
/// `grace` passes. An event still running after that is reported failed by the
/// journal's recovery when the node comes back.
pub async fn drain(node: &Node, grace: std::time::Duration) {
    let Some(agent) = agent_of(node) else { return };
    let deadline = tokio::time::Instant::now() + grace;
    {
        let running = agent.running.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if running.values().any(|run| !run.cancel.is_closed()) {
            info!("waiting up to {grace:?} for running lifecycle events to finish");
        }
        for run in running.values() {
            run.cancel.send_replace(true);
        }
    }
    // Bounded by the grace period.
    while tokio::time::Instant::now() < deadline {
        let busy = agent
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .any(|run| !run.cancel.is_closed());
        if !busy {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
