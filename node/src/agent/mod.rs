//! The host agent: what a host does for a deployment, in CodeDeploy's terms
//! (`codedeploy.md` §1, §2, §7, §8), and how it hears about it.
//!
//! The agent polls the leader ([`poll`]: a long poll that doubles as its heartbeat and
//! brings back the leader's address, the member list and this host's assignments),
//! turns assignments into lifecycle runs ([`runs`] says which to start and stop;
//! [`sequence`], one task per deployment, drives the sans-I/O `Sequencer` core), journals
//! the run before every event starts and when it ends ([`journal`]), and reports
//! progress to the leader ([`reports`]). What an event does on the host is a
//! [`LifecycleBackend`]: processes, files and the chunk store in production
//! ([`host::HostBackend`]), simulated outcomes in `fleetmesh-sim`.
//!
//! ```text
//!  poll loop ──Poll──▶ leader ──answer──▶ directory (runtime), Agent::on_assignments
//!  Agent::on_assignments ──Runs::assign──▶ spawn sequence::run (one per deployment)
//!  Sequencer ──RunEvent──▶ LifecycleBackend (hooks, install, DownloadBundle ▶ revision store)
//!            ──SaveJournal (crash safety)──▶ Journal    ──Report──▶ reports ──▶ leader
//! ```
//!
//! The journal holds each event's start before it runs and its end in the next save,
//! so a host agent killed mid-event reports that event failed when it comes back (§8.1)
//! and never runs an event of a deployment twice, whichever leader asks.
//!
//! The building blocks, each independent of the network and of Raft:
//! - [`appspec_file`] finds and reads the appspec of an unpacked revision;
//! - [`hooks`] runs one lifecycle event's scripts and reports CodeDeploy diagnostics;
//! - [`install`] is the Install step: cleanup of the previous install, copy, permissions,
//!   and the per-deployment-group records of what was installed;
//! - [`script_log`] is the per-deployment `logs/scripts.log`.

pub mod appspec_file;
mod backend;
mod command_wait;
pub mod hooks;
pub mod host;
pub mod install;
mod journal;
mod poll;
mod reports;
mod runs;
pub mod script_log;
mod search;
mod sequence;
pub mod stale_voter;
mod traffic;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

pub use backend::{Journal, JournalError, JournalRecord, LifecycleBackend, MemoryJournal, TargetContext};
use tracing::{info, warn};

use crate::runtime::protocol::PollResponse;
use crate::runtime::Node;

/// How long an interrupted event has to end (its scripts get SIGTERM, then SIGKILL after
/// 5 s) and record its end, once the shutdown grace is over.
pub const INTERRUPT_WAIT: std::time::Duration = std::time::Duration::from_secs(7);

/// The host agent of one node.
pub struct Agent {
    node: Arc<Node>,
    backend: Arc<dyn LifecycleBackend>,
    /// Shared by the poll loop, which starts and cancels runs, and [`Agent::drain`];
    /// each holds it only for a few map operations, never across an await.
    runs: Mutex<runs::Runs>,
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
            runs: Mutex::new(runs::Runs::default()),
            reports: reports::ReportQueue::default(),
        });
        for report in sequence::recover(node, agent.backend.as_ref()) {
            agent.reports.push(report);
        }
        tasks.spawn(reports::send_loop(agent.clone()));
        tasks.spawn(poll::run(agent.clone()));
        agent
    }

    /// Handles a poll answer: starts runs for new assignments, stops runs whose
    /// assignment was withdrawn by a leader at least as recent (ending their running
    /// event), and passes the prefetch list and swarm peers to the backend. Once the
    /// node is stopping, nothing new starts: no run, no prefetch.
    fn on_assignments(self: &Arc<Self>, poll: &PollResponse) {
        // The router (a sibling layer) follows the routes through the node.
        self.node.publish_routes(&poll.assignments.routes);
        let started = self.runs().assign(&poll.assignments.deployments, poll.term);
        if self.runs().is_closed() {
            return;
        }
        self.backend.on_assignments(&self.node, &poll.assignments, &poll.swarm_peers);
        for runs::Start { assignment, cancelled, interrupt } in started {
            let context = TargetContext { assignment: assignment.clone(), node_id: self.node.id(), interrupt };
            let agent = self.clone();
            tokio::spawn(async move {
                sequence::run(&agent, context, cancelled).await;
            });
        }
    }

    /// Lets running lifecycle events finish before the node stops: from now on no run
    /// and no new event starts (every run is cancelled between events), and this waits
    /// until the runs end or `grace` passes. Events still running then are interrupted
    /// (their scripts' process groups ended, as on a timeout) and recorded failed with
    /// that reason; this waits [`INTERRUPT_WAIT`] more for that. An event still running
    /// after that is reported failed by the journal's recovery when the node comes back.
    pub async fn drain(&self, grace: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + grace;
        if self.runs().close() {
            info!("no new lifecycle event starts; waiting up to {grace:?} for the running ones to finish");
        }
        if self.wait_idle(deadline).await {
            return;
        }
        let interrupted = self.runs().interrupt_all(hooks::InterruptReason::ShuttingDown);
        warn!("the shutdown grace of {grace:?} is over: ending {interrupted} running lifecycle events");
        if !self.wait_idle(tokio::time::Instant::now() + INTERRUPT_WAIT).await {
            warn!("lifecycle events still run after {INTERRUPT_WAIT:?}; the journal reports them failed at the next start");
        }
    }

    /// Waits until no run is left or `deadline`; true if none is left.
    async fn wait_idle(&self, deadline: tokio::time::Instant) -> bool {
        // Bounded by the deadline.
        while tokio::time::Instant::now() < deadline {
            if !self.runs().is_busy() {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        !self.runs().is_busy()
    }

    fn runs(&self) -> MutexGuard<'_, runs::Runs> {
        self.runs.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
