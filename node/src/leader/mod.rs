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
//! leader" while the node does not lead, and its task only answers queries until it does.
//!
//! The soft state (liveness, download progress, releases, queued reports, what is in
//! flight) is one value, [`core::LeaderCore`], owned by one task ([`run`]): request
//! handlers send it events and questions over a channel, and it answers or acts. Held
//! polls wait in their own request tasks, on replicated state only ([`polls`]).
//!
//! ```text
//!  Join ──▶ admission ──▶ propose AddMember ──▶ signed certificate
//!  Poll ──▶ polls ──Event::Polled──▶ leader task (liveness, progress)
//!       └──held until its inputs change──▶ assignments, peers
//!  Report ──Event::Reports──▶ leader task ──core: group commit──▶ propose ReportTargets
//!  leader task ──core: poll_action──▶ bootstrap entry, engine (plan ▶ propose),
//!                                     feature level, autopilot (voter changes)
//! ```

mod admission;
pub mod alarms;
pub mod assignments;
pub mod autopilot;
pub mod clients;
mod core;
pub mod ecs;
mod elbv2;
mod engine;
mod features;
mod keyed;
pub mod liveness;
mod member_refresh;
mod polls;
mod removal;
mod reports;
mod run;
mod seal;
pub mod shift;
mod traffic;
pub mod triggers;
mod view;
mod voters;

use std::collections::BTreeMap;
use std::sync::Arc;

pub use admission::{
    api_validity, sign_api_certificate, sign_node_certificate, CertificateError, API_CERT_LIFETIME_MAX_SECS,
    API_CERT_LIFETIME_MIN_SECS, NODE_CERT_LIFETIME_DEFAULT_SECS,
};
use bytes::Bytes;
use fleetmesh_core::rollout::{CodeDeployPlanner, WavePlanner};
use fleetmesh_model::{NodeHealth, NodeRole};
use fleetmesh_state::model::ids::RevisionId;
use fleetmesh_state::model::members::{ClusterInfo, MemberSpec};
use fleetmesh_transport::{BoxFuture, Caller, NodeId};
pub use removal::RemoveMemberError;
use tokio::sync::{mpsc, oneshot};
pub use view::{ClusterView, NodeView};

use self::liveness::Health;
use self::run::{Event, Query};
use crate::runtime::dispatch::member_of;
use crate::runtime::protocol::{Request, Response, RevisionProgress};
use crate::runtime::{Family, Node, Refusal, Service};

/// The leader's duties on one node (acting only while the node leads): the request
/// handlers' side, which talks to the leader task.
pub struct Leader {
    node: Arc<Node>,
    /// To the leader task, the owner of the leader's core.
    events: mpsc::UnboundedSender<Event>,
    /// Wakes held polls when something their answer depends on may have changed.
    poll_wakers: polls::PollWakers,
    /// What poll answers share until the state changes.
    answers: polls::AnswerCache,
    /// Routes each router reported it cannot serve (its last poll's `route_errors`):
    /// shown by `GetRoute`. One entry per node that reported any; a short lock, taken
    /// once per poll and per `GetRoute`.
    route_errors: std::sync::Mutex<BTreeMap<NodeId, BTreeMap<String, String>>>,
    /// Members whose new tags or addresses are being proposed (one update at a time each).
    member_updates: std::sync::Mutex<std::collections::BTreeSet<NodeId>>,
    /// Members told once that the instance name they report is another member's.
    instance_conflicts: std::sync::Mutex<std::collections::BTreeSet<(NodeId, String)>>,
    /// Where AWS calls go (ELBv2 target groups of traffic events; the deployments'
    /// calls go through the leader task's copy).
    aws: shift::AwsEdges,
}

impl std::fmt::Debug for Leader {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Leader").field("node", &self.node.id()).finish_non_exhaustive()
    }
}

impl Leader {
    /// Starts the leader's duties on `node`: registers the [`Family::Leader`] requests and
    /// spawns the leader task and the poll waker into `tasks`.
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
        Self::start_with(node, tasks, planner, shift::AwsEdges::sdk())
    }

    /// [`Leader::start_with_planner`] with AWS calls going to `aws` instead of AWS: the
    /// seam through which the simulator stands in a simulated AWS.
    pub fn start_with(
        node: &Arc<Node>,
        tasks: &mut tokio::task::JoinSet<()>,
        planner: Arc<dyn WavePlanner>,
        aws: shift::AwsEdges,
    ) -> Arc<Self> {
        Self::start_with_trigger_sink(node, tasks, planner, aws, Arc::new(triggers::ByTarget::production()))
    }

    /// [`Leader::start_with`] with trigger deliveries going to `trigger_sink` instead of
    /// webhooks and SNS: the seam through which the simulator records (and fails) them.
    pub fn start_with_trigger_sink(
        node: &Arc<Node>,
        tasks: &mut tokio::task::JoinSet<()>,
        planner: Arc<dyn WavePlanner>,
        aws: shift::AwsEdges,
        trigger_sink: Arc<dyn triggers::TriggerSink>,
    ) -> Arc<Self> {
        let (events, received) = mpsc::unbounded_channel();
        let leader = Arc::new(Self {
            node: node.clone(),
            events,
            poll_wakers: polls::PollWakers::default(),
            answers: polls::AnswerCache::default(),
            route_errors: std::sync::Mutex::default(),
            member_updates: std::sync::Mutex::default(),
            instance_conflicts: std::sync::Mutex::default(),
            aws: aws.clone(),
        });
        node.register(Family::Leader, leader.clone());
        tasks.spawn(run::run(node.clone(), planner, aws, received));
        tasks.spawn(polls::watch_poll_inputs(leader.clone()));
        tasks.spawn(triggers::run(node.clone(), trigger_sink));
        tasks.spawn(alarms::run(node.clone(), alarms::Probes::real()));
        leader
    }

    /// The node these duties run on.
    pub fn node(&self) -> &Arc<Node> {
        &self.node
    }

    /// Records the bootstrap entry to propose once this node leads (first node only).
    pub fn set_pending_bootstrap(&self, info: ClusterInfo, first: MemberSpec) {
        // Fails only once the leader task ended, at shutdown, when nothing will lead.
        let _ = self.events.send(Event::Bootstrap(Box::new((info, first))));
    }

    /// Asks the leader task; `None` once it ended (shutdown).
    async fn ask<T>(&self, query: impl FnOnce(oneshot::Sender<T>) -> Query) -> Option<T> {
        let (reply, answer) = oneshot::channel();
        self.events.send(Event::Query(query(reply))).ok()?;
        answer.await.ok()
    }

    /// The leader's liveness verdict on `node` (from a fresh view, where everyone not
    /// heard yet is suspect, when this node does not lead).
    pub async fn health(&self, node: NodeId) -> Health {
        self.ask(|reply| Query::Health { node, reply }).await.unwrap_or(Health::Suspect)
    }

    /// The routers that reported they cannot serve `route`, with the reasons, in node
    /// id order (meaningful on the leader).
    pub fn route_errors(&self, route: &str) -> Vec<(NodeId, String)> {
        let errors = self.route_errors.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        errors.iter().filter_map(|(node, routes)| Some((*node, routes.get(route)?.clone()))).collect()
    }

    /// Records the route errors `node` reported in a poll.
    fn record_route_errors(&self, node: NodeId, reported: &BTreeMap<String, String>) {
        let mut errors = self.route_errors.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if reported.is_empty() {
            errors.remove(&node);
        } else {
            errors.insert(node, reported.clone());
        }
    }

    /// Per-node download progress of a revision, as reported in polls.
    pub async fn revision_progress(&self, revision: RevisionId) -> BTreeMap<NodeId, RevisionProgress> {
        self.ask(|reply| Query::Progress { revision, reply }).await.unwrap_or_default()
    }

    /// The cluster view (meaningful on the leader).
    pub async fn cluster_view(&self) -> ClusterView {
        let node = &self.node;
        let voters = node.voters();
        let leader = node.raft().metrics().borrow().current_leader;
        let (members, cluster_id, voters_desired, feature_level) = node.state().read(|state| {
            (
                state.members.values().cloned().collect::<Vec<_>>(),
                state.cluster.as_ref().map(|info| info.ca.cluster_id.clone()).unwrap_or_default(),
                state.cluster.as_ref().map_or(0, |info| info.voters_desired),
                state.feature_level,
            )
        });
        let ids = members.iter().map(|member| member.id).collect();
        let facts = self.ask(|reply| Query::Members { ids, reply }).await.unwrap_or_default();
        let nodes = members
            .into_iter()
            .zip(facts.into_iter().map(Some).chain(std::iter::repeat(None)))
            .map(|(member, facts)| {
                let (health, release) = facts.unwrap_or((Health::Suspect, None));
                NodeView {
                    id: member.id,
                    address: member.listen.to_string(),
                    api: member.api.to_string(),
                    role: if voters.contains(&member.id) { NodeRole::Voter } else { NodeRole::Agent },
                    health: match health {
                        Health::Alive => NodeHealth::Alive,
                        Health::Suspect => NodeHealth::Suspect,
                        Health::Dead => NodeHealth::Dead,
                    },
                    tags: member.tags,
                    release,
                    instance_name: member.instance_name,
                }
            })
            .collect();
        ClusterView { leader, term: node.term(), cluster_id, voters_desired, feature_level, nodes }
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
                (Some(_), Request::Poll(poll)) => {
                    if self.node.is_leader() {
                        self.refresh_member(poll.node, poll.member.as_ref());
                    }
                    Ok(self.handle_poll(poll).await)
                }
                (Some(peer), Request::Report(reports)) if reports.iter().any(|report| report.target_id != peer) => {
                    Err(Refusal::Forbidden(format!("node {peer} reported progress for another node")))
                }
                (Some(_), Request::Report(reports)) => Ok((self.handle_report(reports).await, none)),
                (Some(peer), Request::SignApiCertificate(request)) => {
                    Ok((self.answer_certificate_request(peer, &request), none))
                }
                (Some(peer), Request::Traffic(request)) => Ok((self.handle_traffic(peer, request).await, none)),
                (Some(peer), Request::HoldCaSealKey { key }) => Ok((self.hold_seal_key(peer, &key), none)),
                (Some(peer), Request::SignNodeCertificate(request)) => {
                    Ok((self.answer_node_certificate_request(peer, &request), none))
                }
                (None, _) => {
                    Err(Refusal::Forbidden("only join requests are accepted without a cluster certificate".to_string()))
                }
                (Some(_), other) => Err(Refusal::Malformed(format!("not a leader request: {other:?}"))),
            }
        })
    }
}
