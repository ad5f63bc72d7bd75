//! The leader's core: what the leader knows and decides besides Raft, as a plain value
//! that the leader task alone owns ([`super::run`]). Events go in through `handle_*`
//! (a poll, agents' reports, a tick, a finished proposal); [`LeaderCore::poll_action`]
//! says what to do next (commit reports, commit the bootstrap entry, plan, run the
//! periodic duties). It does no I/O and never waits, so its tests drive it with made-up
//! events and times.
//!
//! One piece of work of each kind is in flight at a time: one proposal of reports (the
//! reports that arrive meanwhile go into the next one: group commit), one plan, one
//! bootstrap proposal, one voter change, one feature-level proposal. Planning twice from
//! the same state would propose the same decisions twice (two repair deployments for
//! the same late joiners, say).

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use fleetmesh_state::model::ids::RevisionId;
use fleetmesh_state::model::members::{ClusterInfo, MemberSpec};
use fleetmesh_state::{Release, TargetReport};
use fleetmesh_transport::NodeId;
use tokio::time::Instant;

use super::liveness::{Health, Thresholds};
use super::view::{LeaderView, PollFacts};
use crate::runtime::protocol::RevisionProgress;

/// Reports of one proposal at most: bounds a log entry (a report carries its
/// lifecycle events and their diagnostics, a few KiB at most).
pub(super) const REPORTS_PER_PROPOSAL_MAX: usize = 256;

/// Longest the leader goes without planning, even when nothing changed: a bound on the
/// cost of any input the core fails to track (a wall-clock jump, say).
pub(super) const PLAN_RECHECK_MAX: Duration = Duration::from_secs(1);

/// How often the periodic duties (feature level, autopilot) run.
pub(super) const DUTIES_EVERY: Duration = Duration::from_millis(500);

/// Everything the rollout engine's decisions depend on, except the time: when these are
/// unchanged and no deadline has come, planning again would decide nothing new.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct PlanInputs {
    term: u64,
    applied: u64,
    revivals: u64,
    completions: u64,
}

/// What the shell tells the core at each tick: the replicated facts it cannot see.
#[derive(Clone, Copy, Debug)]
pub(super) struct TickFacts {
    /// This node, the leader.
    pub(super) me: NodeId,
    /// The current term.
    pub(super) term: u64,
    /// The last applied log index.
    pub(super) applied: u64,
    /// The bootstrap entry is committed.
    pub(super) bootstrapped: bool,
}

/// What the leader task must do next.
#[derive(Debug)]
pub(super) enum Action {
    /// Propose these agents' reports in one entry, then call
    /// [`LeaderCore::reports_committed`].
    CommitReports(Vec<TargetReport>),
    /// Propose the bootstrap entry, then call [`LeaderCore::bootstrap_done`].
    CommitBootstrap(Box<(ClusterInfo, MemberSpec)>),
    /// Plan every deployment and propose the decisions, then call
    /// [`LeaderCore::plan_done`].
    Plan,
    /// Run the periodic duties (feature level, autopilot).
    Duties,
}

/// Work that runs outside the core, one of each kind at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Work {
    /// A proposal of agents' reports.
    Reports,
    /// The bootstrap entry's proposal.
    Bootstrap,
    /// A plan and its proposal.
    Plan,
    /// A proposal raising the cluster's feature level.
    FeatureLevel,
    /// A voter change (learner catch-up, then a membership change).
    Voters,
    /// Handing the CA seal key to the voters and sealing the CA (older clusters).
    SealCa,
    /// An AWS call of a Lambda deployment, and the commit of its outcome.
    Aws,
}

/// The leader's core (see the module documentation). `R` is where the answer to one
/// sender of reports goes (a channel in the shell, a number in tests).
pub(super) struct LeaderCore<R> {
    thresholds: Thresholds,
    /// The view of the term this node leads (or was last asked about).
    view: Option<LeaderView>,
    /// Each sender's reports waiting for the next proposal, with its answer.
    reports: VecDeque<(Vec<TargetReport>, R)>,
    /// The answers of the senders whose reports are being proposed.
    reports_in_flight: Option<Vec<R>>,
    /// Cluster facts of a bootstrap not yet committed (first node only).
    bootstrap: Option<(ClusterInfo, MemberSpec)>,
    /// The kinds of work in flight.
    busy: std::collections::BTreeSet<Work>,
    /// The inputs and start time of the plan in flight.
    planning: Option<(PlanInputs, Instant)>,
    /// The inputs of the last plan and when to plan again with no change.
    planned: Option<(PlanInputs, Instant)>,
    last_duties: Option<Instant>,
    due: Due,
}

/// What the last tick found due.
#[derive(Debug, Default, Clone, Copy)]
struct Due {
    bootstrap: bool,
    plan: Option<PlanInputs>,
    duties: bool,
}

impl<R> LeaderCore<R> {
    /// A core with no view yet; liveness uses these thresholds.
    pub(super) fn new(thresholds: Thresholds) -> Self {
        Self {
            thresholds,
            view: None,
            reports: VecDeque::new(),
            reports_in_flight: None,
            bootstrap: None,
            busy: std::collections::BTreeSet::new(),
            planning: None,
            planned: None,
            last_duties: None,
            due: Due::default(),
        }
    }

    /// The view of `term`, made afresh (started `now`, nobody heard) when it is of another term.
    pub(super) fn view(&mut self, term: u64, now: Instant) -> &mut LeaderView {
        match self.view.take() {
            Some(view) if view.term == term => self.view.insert(view),
            _ => self.view.insert(LeaderView::new(term, now, self.thresholds)),
        }
    }

    /// A poll arrived at `at` while this node led in `term`.
    pub(super) fn handle_poll(&mut self, term: u64, poll: PollFacts, at: Instant) {
        self.view(term, at).record_poll(poll, at);
    }

    /// A sender's reports, to commit with the others that arrive meanwhile.
    pub(super) fn handle_reports(&mut self, reports: Vec<TargetReport>, reply: R) {
        self.reports.push_back((reports, reply));
    }

    /// The bootstrap entry to commit once this node leads (first node only).
    pub(super) fn handle_bootstrap(&mut self, info: ClusterInfo, first: MemberSpec) {
        self.bootstrap = Some((info, first));
    }

    /// This node does not lead (any more): its view and planning history go. Work in
    /// flight still reports back.
    pub(super) fn handle_not_leading(&mut self) {
        self.view = None;
        self.planned = None;
        self.due = Due::default();
    }

    /// A tick while this node leads with its state current: notes what is due.
    pub(super) fn handle_tick(&mut self, facts: TickFacts, now: Instant) {
        let view = self.view(facts.term, now);
        view.liveness.heard(facts.me, now);
        let inputs = PlanInputs {
            term: facts.term,
            applied: facts.applied,
            revivals: view.liveness.revivals(),
            completions: view.completions,
        };
        self.due.bootstrap = !facts.bootstrapped && self.bootstrap.is_some();
        // Plan after every change of the engine's inputs and at its deadlines, not on
        // every tick: a plan is O(targets), and most ticks change nothing.
        let plan_due = self.planned.is_none_or(|(last, recheck_at)| last != inputs || now >= recheck_at);
        self.due.plan = plan_due.then_some(inputs);
        if self.last_duties.is_none_or(|last| now.duration_since(last) >= DUTIES_EVERY) {
            self.last_duties = Some(now);
            self.due.duties = true;
        }
    }

    /// The next thing to do, if any; call until `None` after every event.
    pub(super) fn poll_action(&mut self, now: Instant) -> Option<Action> {
        if !self.reports.is_empty() && self.begin(Work::Reports) {
            let (reports, replies) = self.next_reports();
            self.reports_in_flight = Some(replies);
            return Some(Action::CommitReports(reports));
        }
        if std::mem::take(&mut self.due.bootstrap) && !self.busy.contains(&Work::Bootstrap) {
            if let Some(bootstrap) = self.bootstrap.clone() {
                self.busy.insert(Work::Bootstrap);
                return Some(Action::CommitBootstrap(Box::new(bootstrap)));
            }
        }
        if let Some(inputs) = self.due.plan {
            if self.begin(Work::Plan) {
                self.due.plan = None;
                self.planning = Some((inputs, now));
                return Some(Action::Plan);
            }
        }
        if std::mem::take(&mut self.due.duties) {
            return Some(Action::Duties);
        }
        None
    }

    /// Marks `work` as started; false when one of its kind is already in flight.
    pub(super) fn begin(&mut self, work: Work) -> bool {
        self.busy.insert(work)
    }

    /// Marks `work` as ended.
    pub(super) fn end(&mut self, work: Work) {
        self.busy.remove(&work);
    }

    /// The next proposal's worth of queued senders: whole senders, at least one, up to
    /// [`REPORTS_PER_PROPOSAL_MAX`] reports.
    fn next_reports(&mut self) -> (Vec<TargetReport>, Vec<R>) {
        let (mut reports, mut replies) = (Vec::new(), Vec::new());
        while let Some((front, _)) = self.reports.front() {
            if !replies.is_empty() && reports.len() + front.len() > REPORTS_PER_PROPOSAL_MAX {
                break;
            }
            if let Some((sent, reply)) = self.reports.pop_front() {
                reports.extend(sent);
                replies.push(reply);
            }
        }
        (reports, replies)
    }

    /// The proposal of reports ended: the answers of the senders it carried, each to get
    /// its outcome.
    pub(super) fn reports_committed(&mut self) -> Vec<R> {
        self.end(Work::Reports);
        self.reports_in_flight.take().unwrap_or_default()
    }

    /// The bootstrap proposal ended; `committed` says whether it went in.
    pub(super) fn bootstrap_done(&mut self, committed: bool) {
        self.end(Work::Bootstrap);
        if committed {
            self.bootstrap = None;
        }
    }

    /// The plan ended. `deadline` is when planning must run again even if nothing
    /// changes (the planner's earliest deadline, or the plan's start when its decisions
    /// were not committed); the core also replans when some host's health changes with
    /// time, and after [`PLAN_RECHECK_MAX`] at the latest.
    pub(super) fn plan_done(&mut self, deadline: Option<Instant>) {
        self.end(Work::Plan);
        let Some((inputs, started)) = self.planning.take() else { return };
        let Some(view) = self.view.as_ref().filter(|view| view.term == inputs.term) else { return };
        let health = view.liveness.next_change(started);
        let recheck_at = [Some(started + PLAN_RECHECK_MAX), Some(health), deadline].into_iter().flatten().min();
        self.planned = recheck_at.map(|at| (inputs, at));
    }

    /// The leader's verdict on `node` in `term` (alive for itself).
    pub(super) fn health(&mut self, term: u64, me: NodeId, node: NodeId, now: Instant) -> Health {
        if node == me {
            return Health::Alive;
        }
        self.view(term, now).liveness.health(node, now)
    }

    /// Per-node download progress of `revision`, as reported in polls.
    pub(super) fn revision_progress(
        &mut self,
        term: u64,
        revision: RevisionId,
        now: Instant,
    ) -> BTreeMap<NodeId, RevisionProgress> {
        self.view(term, now).progress.get(&revision).cloned().unwrap_or_default()
    }

    /// Every poller's release, as its last poll reported it.
    pub(super) fn releases(&mut self, term: u64, now: Instant) -> &BTreeMap<NodeId, Release> {
        &self.view(term, now).releases
    }
}

#[cfg(test)]
mod tests;
