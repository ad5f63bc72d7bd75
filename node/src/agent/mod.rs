//! The host agent: what a host does for a deployment, in CodeDeploy's terms
//! (`codedeploy.md` §1, §2, §7, §8), and how it hears about it.
//!
//! The agent polls the leader ([`poll`]: a long poll that doubles as its heartbeat and
//! brings back the leader's address, the member list and this host's assignments),
//! turns assignments into lifecycle runs ([`sequence`], one per deployment), journals
//! every event before it starts and after it ends ([`journal`]), and reports progress
//! to the leader ([`reports`]). What an event does on the host is a
//! [`LifecycleBackend`]: processes, files and the chunk store in production
//! ([`host::HostBackend`]), simulated outcomes in `fleetmesh-sim`.
//!
//! ```text
//!  poll loop ──Poll──▶ leader ──answer──▶ directory (runtime), Agent::on_assignments
//!  Agent::on_assignments ──spawn──▶ sequence::run (one per deployment)
//!  sequence ──events──▶ LifecycleBackend (hooks, install, DownloadBundle ▶ revision store)
//!           ──journal (crash safety)──▶ reports ──Report──▶ leader
//! ```
//!
//! Every event is journalled before it starts and after it ends, so a host agent
//! killed mid-event reports that event failed when it comes back (§8.1) and never runs
//! an event of a deployment twice, whichever leader asks.
//!
//! The building blocks, each independent of the network and of Raft:
//! - [`appspec_file`] finds and reads the appspec of an unpacked revision;
//! - [`hooks`] runs one lifecycle event's scripts and reports CodeDeploy diagnostics;
//! - [`install`] is the Install step: cleanup of the previous install, copy, permissions,
//!   and the per-deployment-group records of what was installed;
//! - [`script_log`] is the per-deployment `logs/scripts.log`.

pub mod appspec_file;
mod backend;
pub mod hooks;
pub mod host;
pub mod install;
mod journal;
mod poll;
mod reports;
pub mod script_log;
mod search;
mod sequence;
pub mod stale_voter;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

pub use backend::{Journal, JournalError, JournalRecord, LifecycleBackend, MemoryJournal, TargetContext};
use fleetmesh_state::model::ids::DeploymentId;
use tokio::sync::watch;
use tracing::info;

use crate::runtime::protocol::{DeploymentAssignment, PollResponse};
use crate::runtime::Node;

/// One deployment running on this host.
struct Running {
    cancel: watch::Sender<bool>,
    assigned_term: u64,
}

/// The host agent of one node.
pub struct Agent {
    node: Arc<Node>,
    backend: Arc<dyn LifecycleBackend>,
    running: Mutex<BTreeMap<DeploymentId, Running>>,
    reports: reports::ReportQueue,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Agent").field("node", &self.node.id()).finish_non_exhaustive()
    }
}

impl Agent {
    /// Starts the agent of `node` with `backend`: recovers interrupted runs from the
    /// journal, then spawns the poll loop and the report sender into `tasks`.
    pub fn start(
        node: &Arc<Node>,
        backend: Arc<dyn LifecycleBackend>,
        tasks: &mut tokio::task::JoinSet<()>,
    ) -> Arc<Self> {
        let agent = Arc::new(Self {
            node: node.clone(),
            backend,
            running: Mutex::new(BTreeMap::new()),
            reports: reports::ReportQueue::default(),
        });
        for report in sequence::recover(node, agent.backend.as_ref()) {
            agent.reports.push(report);
        }
        tasks.spawn(reports::send_loop(agent.clone()));
        tasks.spawn(poll::run(agent.clone()));
        agent
    }

    /// Handles a poll answer: starts runs for new assignments, cancels runs whose
    /// assignment was withdrawn by a leader at least as recent, and passes the prefetch
    /// list and swarm peers to the backend.
    fn on_assignments(self: &Arc<Self>, poll: &PollResponse) {
        self.backend.on_assignments(&self.node, &poll.assignments, &poll.swarm_peers);
        let assigned: BTreeMap<DeploymentId, &DeploymentAssignment> = poll
            .assignments
            .deployments
            .iter()
            .map(|assignment| (assignment.deployment_id.clone(), assignment))
            .collect();
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
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
            let context = TargetContext { assignment: assignment.clone(), node_id: self.node.id() };
            let agent = self.clone();
            tokio::spawn(async move {
                sequence::run(&agent, context, cancelled).await;
            });
        }
    }

    /// Lets running lifecycle events finish before the node stops: no new event starts
    /// (every run is cancelled between events) and this waits until the runs end or
    /// `grace` passes. An event still running after that is reported failed by the
    /// journal's recovery when the node comes back.
    pub async fn drain(&self, grace: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + grace;
        {
            let running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
            if running.values().any(|run| !run.cancel.is_closed()) {
                info!("waiting up to {grace:?} for running lifecycle events to finish");
            }
            for run in running.values() {
                run.cancel.send_replace(true);
            }
        }
        // Bounded by the grace period.
        while tokio::time::Instant::now() < deadline {
            let busy =
                self.running.lock().unwrap_or_else(PoisonError::into_inner).values().any(|run| !run.cancel.is_closed());
            if !busy {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}
