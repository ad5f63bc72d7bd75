//! The leader task: the one owner of the leader's core ([`LeaderCore`]). It runs on every
//! node and acts only while the node leads. Requests reach it as [`Event`]s over a
//! channel; it feeds them, ticks and finished work to the core, and carries out the
//! core's actions: proposals and voter changes run as tasks of their own and report back
//! here, so the loop never waits on Raft while polls and queries queue.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use fleetmesh_core::rollout::WavePlanner;
use fleetmesh_state::model::members::{ClusterInfo, MemberSpec};
use fleetmesh_state::{Command, Release, TargetReport};
use fleetmesh_transport::NodeId;
use tokio::sync::{mpsc, oneshot};
use tokio::task::{Id, JoinError, JoinSet};
use tokio::time::Instant;
use tracing::{info, warn};

use super::core::{Action, LeaderCore, TickFacts, Work};
use super::liveness::{Health, Thresholds};
use super::shift::AwsEdges;
use super::view::PollFacts;
use crate::runtime::protocol::RevisionProgress;
use crate::runtime::{Node, ProposeError};
use fleetmesh_state::model::ids::RevisionId;

/// Period of the leader's tick while it leads (time-based decisions: liveness,
/// timeouts, autopilot).
const LEADER_TICK: Duration = Duration::from_millis(100);

/// Where the answer to one sender of reports goes.
pub(super) type ReportReply = oneshot::Sender<Result<(), ProposeError>>;

/// What reaches the leader task from request handlers and the boot code. Each sender
/// has at most a few outstanding (one poll per agent, one report batch per agent, one
/// query per API request), which bounds the channel.
pub(super) enum Event {
    /// A poll arrived while this node led in `term`.
    Polled { term: u64, poll: PollFacts, at: Instant },
    /// Agents' reports to commit; the outcome goes to `reply`.
    Reports { reports: Vec<TargetReport>, reply: ReportReply },
    /// The bootstrap entry to commit once this node leads (first node only).
    Bootstrap(Box<(ClusterInfo, MemberSpec)>),
    /// A question about the leader's view.
    Query(Query),
}

/// A question about the leader's soft view, answered from the core.
pub(super) enum Query {
    /// The leader's verdict on one node.
    Health { node: NodeId, reply: oneshot::Sender<Health> },
    /// Health and reported release of each of `ids`.
    Members { ids: Vec<NodeId>, reply: oneshot::Sender<Vec<(Health, Option<Release>)>> },
    /// Per-node download progress of a revision.
    Progress { revision: RevisionId, reply: oneshot::Sender<BTreeMap<NodeId, RevisionProgress>> },
}

/// How a piece of work started by the task ended.
pub(super) enum Done {
    /// The proposal of reports, and its outcome.
    Reports(Result<(), ProposeError>),
    /// The bootstrap proposal; true when committed.
    Bootstrap(bool),
    /// The plan; when to plan again even if nothing changes.
    Plan(Option<Instant>),
    /// A feature-level proposal or a voter change.
    Other,
}

/// The I/O half of the leader task: the node, the planner, the work in flight.
pub(super) struct Shell {
    pub(super) node: Arc<Node>,
    pub(super) planner: Arc<dyn WavePlanner>,
    /// Where Lambda and ECS deployments' calls go.
    pub(super) aws: AwsEdges,
    work: JoinSet<Done>,
    kinds: BTreeMap<Id, Work>,
}

/// The leader task: runs on every node, acts only while it leads.
pub(super) async fn run(
    node: Arc<Node>,
    planner: Arc<dyn WavePlanner>,
    aws: AwsEdges,
    mut events: mpsc::UnboundedReceiver<Event>,
) {
    let timing = node.settings().timing;
    let mut core = LeaderCore::new(Thresholds {
        suspect_after: timing.suspect_after,
        dead_after: timing.dead_after,
        first_contact_after: timing.first_contact_after(),
    });
    let mut shell = Shell { node: node.clone(), planner, aws, work: JoinSet::new(), kinds: BTreeMap::new() };
    let mut shutdown = node.shutdown_signal();
    let mut changes = node.state().subscribe();
    let mut server = node.server_state();
    let mut next_tick = Instant::now();
    // Bounded by shutdown: every pass waits for an event, finished work, a change or a tick.
    loop {
        let leading = server.leadership(node.id()).1;
        if !leading {
            // Agents (most of a fleet) only answer queries here until they lead.
            core.handle_not_leading();
        }
        let mut tick = false;
        tokio::select! {
            biased;
            _ = shutdown.changed() => return,
            Some(done) = shell.work.join_next_with_id() => shell.finish(&mut core, done),
            event = events.recv() => match event {
                Some(event) => {
                    shell.handle(&mut core, event);
                    // Everything already queued, in one pass: at N = 1000 polls arrive
                    // in bursts, and a pass of the loop per poll cost more than the poll.
                    while let Ok(event) = events.try_recv() {
                        shell.handle(&mut core, event);
                    }
                }
                None => return,
            },
            () = server.changed(node.raft_host()) => {}
            // Every applied change (a report, a new deployment), so a wave starts within
            // one commit of the previous one ending.
            result = changes.changed(), if leading => match result {
                Ok(()) => tick = true,
                Err(_) => return,
            },
            () = tokio::time::sleep_until(next_tick), if leading => tick = true,
        }
        if tick {
            next_tick = Instant::now() + LEADER_TICK;
            shell.tick(&mut core);
        }
        while let Some(action) = core.poll_action(Instant::now()) {
            shell.execute(&mut core, action);
        }
    }
}

impl Shell {
    fn handle(&mut self, core: &mut LeaderCore<ReportReply>, event: Event) {
        match event {
            Event::Polled { term, poll, at } => core.handle_poll(term, poll, at),
            Event::Reports { reports, reply } => core.handle_reports(reports, reply),
            Event::Bootstrap(bootstrap) => {
                let (info, first) = *bootstrap;
                core.handle_bootstrap(info, first);
            }
            Event::Query(query) => self.answer(core, query),
        }
    }

    /// Answers `query` from the view of the current term. A caller that gave up no
    /// longer listens, so a failed send is dropped.
    fn answer(&self, core: &mut LeaderCore<ReportReply>, query: Query) {
        let (term, me, now) = (self.node.term(), self.node.id(), Instant::now());
        match query {
            Query::Health { node, reply } => {
                // The caller gave up (see above).
                let _ = reply.send(core.health(term, me, node, now));
            }
            Query::Members { ids, reply } => {
                let members = ids
                    .into_iter()
                    .map(|id| {
                        let release = match id == me {
                            true => Some(Release::this_build()),
                            false => core.releases(term, now).get(&id).cloned(),
                        };
                        (core.health(term, me, id, now), release)
                    })
                    .collect();
                // The caller gave up (see above).
                let _ = reply.send(members);
            }
            Query::Progress { revision, reply } => {
                // The caller gave up (see above).
                let _ = reply.send(core.revision_progress(term, revision, now));
            }
        }
    }

    /// A tick: tells the core the replicated facts, if this node leads with its state
    /// current (elected, but entries of earlier terms may still be unapplied: the apply
    /// of this term's first entry ticks again).
    fn tick(&mut self, core: &mut LeaderCore<ReportReply>) {
        let node = &self.node;
        if node.is_shutting_down() {
            return;
        }
        if !node.is_leader() {
            core.handle_not_leading();
            return;
        }
        if !node.leads_with_current_state() {
            return;
        }
        let facts = TickFacts {
            me: node.id(),
            term: node.term(),
            applied: node.state().applied_index(),
            bootstrapped: node.state().read(|state| state.cluster.is_some()),
        };
        core.handle_tick(facts, Instant::now());
    }

    fn execute(&mut self, core: &mut LeaderCore<ReportReply>, action: Action) {
        let node = self.node.clone();
        match action {
            Action::CommitReports(reports) => self.spawn(Work::Reports, async move {
                Done::Reports(node.propose_one(Command::ReportTargets { reports }).await.map(|_| ()))
            }),
            Action::CommitBootstrap(bootstrap) => self.spawn(Work::Bootstrap, async move {
                let (info, first) = *bootstrap;
                match node.propose_bootstrap(info, first).await {
                    Ok(_) => {
                        info!("cluster bootstrapped");
                        Done::Bootstrap(true)
                    }
                    Err(error) => {
                        warn!(%error, "could not commit the bootstrap entry yet");
                        Done::Bootstrap(false)
                    }
                }
            }),
            Action::Plan => self.plan(core),
            Action::Duties => {
                self.raise_feature_level(core);
                self.start_autopilot(core);
                self.seal_ca(core);
            }
        }
    }

    /// Runs `work` as a task of its own; its end comes back through [`Self::finish`].
    pub(super) fn spawn(&mut self, kind: Work, work: impl std::future::Future<Output = Done> + Send + 'static) {
        let handle = self.work.spawn(work);
        self.kinds.insert(handle.id(), kind);
    }

    fn finish(&mut self, core: &mut LeaderCore<ReportReply>, done: Result<(Id, Done), JoinError>) {
        let (id, done) = match done {
            Ok((id, done)) => (id, Some(done)),
            Err(error) => {
                warn!(%error, "a piece of the leader's work ended abnormally");
                (error.id(), None)
            }
        };
        let Some(kind) = self.kinds.remove(&id) else { return };
        match (kind, done) {
            (Work::Reports, done) => {
                let replies = core.reports_committed();
                if let Some(Done::Reports(committed)) = done {
                    for reply in replies {
                        // A sender that gave up no longer listens; its reports are
                        // committed anyway.
                        let _ = reply.send(committed.clone());
                    }
                }
                // Otherwise the replies drop, and their senders learn that the leader
                // stopped before committing.
            }
            (Work::Bootstrap, done) => core.bootstrap_done(matches!(done, Some(Done::Bootstrap(true)))),
            (Work::Plan, Some(Done::Plan(deadline))) => core.plan_done(deadline),
            (Work::Plan, _) => core.plan_done(Some(Instant::now())),
            (kind, _) => core.end(kind),
        }
    }
}
