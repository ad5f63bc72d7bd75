//! The leader's duties: what a node does while it is the Raft leader, besides Raft.
//!
//! It tracks liveness from agents' polls and answers them with assignments (long poll),
//! admits joining nodes, batches agents' reports into proposals, commits the bootstrap
//! entry, keeps the voter count (autopilot), and runs the rollout engine's shell around
//! the pure planner of `fleetmesh-core`.
//!
//! None of this state is replicated: it is rebuilt from scratch whenever a node becomes
//! leader (liveness starts at "heard now"; assignments are derived from the replicated
//! deployments), which is what lets a new leader resume a rollout. Every node runs the
//! [`Leader`] service; it answers its request family ([`Family::Leader`]) with "not the
//! leader" while the node does not lead, and its loop sleeps until it does.
//!
//! ```text
//!  Join ──▶ admission ──▶ propose AddMember ──▶ signed certificate
//!  Poll ──▶ polls (liveness, progress) ──held until its inputs change──▶ assignments, peers
//!  Report ──▶ reports (group commit) ──▶ propose ReportTargets
//!  run loop ──▶ bootstrap entry, engine (plan ▶ propose), feature level, autopilot (voter changes)
//! ```

mod admission;
pub mod assignments;
pub mod autopilot;
mod engine;
mod features;
pub mod liveness;
mod polls;
mod reports;
mod run;
mod view;

use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use fleetmesh_core::rollout::{CodeDeployPlanner, WavePlanner};
use fleetmesh_state::model::members::{ClusterInfo, MemberSpec};
use fleetmesh_transport::{BoxFuture, Caller};
pub use view::{ClusterView, NodeView};

use crate::runtime::dispatch::member_of;
use crate::runtime::protocol::{Request, Response};
use crate::runtime::{Family, Node, Refusal, Service};

/// The leader's duties on one node (acting only while the node leads).
pub struct Leader {
    node: Arc<Node>,
    view: view::ViewSlot,
    /// A voter change is under way (autopilot runs one at a time).
    autopilot_busy: Mutex<bool>,
    /// Wakes held polls when something their answer depends on may have changed.
    poll_wakers: polls::PollWakers,
    /// What poll answers share until the state changes.
    answers: polls::AnswerCache,
    /// Agents' reports waiting to be committed.
    reports: reports::ReportBatcher,
    /// Cluster facts of a bootstrap not yet committed (first node only).
    pending_bootstrap: Mutex<Option<(ClusterInfo, MemberSpec)>>,
    /// What decides each deployment's next step: CodeDeploy's rules in production.
    planner: Arc<dyn WavePlanner>,
}

impl std::fmt::Debug for Leader {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Leader").field("node", &self.node.id()).finish_non_exhaustive()
    }
}

impl Leader {
    /// Starts the leader's duties on `node`: registers the [`Family::Leader`] requests and
    /// spawns the leader loop and the poll waker into `tasks`.
    pub fn start(node: &Arc<Node>, tasks: &mut tokio::task::JoinSet<()>) -> Arc<Self> {
        Self::start_with_planner(node, tasks, Arc::new(CodeDeployPlanner))
    }

    /// [`Leader::start`] with another planner: the seam through which the simulator runs
    /// the real engine with a planted bug, to prove its invariants catch one.
    pub fn start_with_planner(
        node: &Arc<Node>,
        tasks: &mut tokio::task::JoinSet<()>,
        planner: Arc<dyn WavePlanner>,
    ) -> Arc<Self> {
        let leader = Arc::new(Self {
            node: node.clone(),
            view: view::ViewSlot::new(node.settings().timing),
            autopilot_busy: Mutex::new(false),
            poll_wakers: polls::PollWakers::default(),
            answers: polls::AnswerCache::default(),
            reports: reports::ReportBatcher::default(),
            pending_bootstrap: Mutex::new(None),
            planner,
        });
        node.register(Family::Leader, leader.clone());
        tasks.spawn(run::run(leader.clone()));
        tasks.spawn(polls::watch_poll_inputs(leader.clone()));
        leader
    }

    /// The node these duties run on.
    pub fn node(&self) -> &Arc<Node> {
        &self.node
    }

    /// Records the bootstrap entry to propose once this node leads (first node only).
    pub fn set_pending_bootstrap(&self, info: ClusterInfo, first: MemberSpec) {
        *self.pending_bootstrap.lock().unwrap_or_else(PoisonError::into_inner) = Some((info, first));
    }
}

impl Service for Leader {
    fn handle(
        self: Arc<Self>,
        caller: Caller,
        request: Request,
        _payload: Bytes,
    ) -> BoxFuture<'static, Result<(Response, Bytes), Refusal>> {
        Box::pin(async move {
            let none = Bytes::new();
            match (member_of(caller), request) {
                (_, Request::Join(join)) => Ok((Response::Join(self.admit(join).await), none)),
                // A member speaks only for itself: its certificate names it.
                (Some(peer), Request::Poll(poll)) if poll.node != peer => {
                    Err(Refusal::Forbidden(format!("node {peer} polled as node {}", poll.node)))
                }
                (Some(_), Request::Poll(poll)) => Ok(self.handle_poll(poll).await),
                (Some(peer), Request::Report(reports)) if reports.iter().any(|report| report.target_id != peer) => {
                    Err(Refusal::Forbidden(format!("node {peer} reported progress for another node")))
                }
                (Some(_), Request::Report(reports)) => Ok((self.handle_report(reports).await, none)),
                (None, _) => {
                    Err(Refusal::Forbidden("only join requests are accepted without a cluster certificate".to_string()))
                }
                (Some(_), other) => Err(Refusal::Malformed(format!("not a leader request: {other:?}"))),
            }
        })
    }
}
