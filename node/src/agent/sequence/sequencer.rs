//! The lifecycle sequencer's core: which event of one target runs next, what the journal
//! and the leader are told, and when the run ends. No I/O, no clock, no async: time comes
//! in with the inputs and everything to do goes out as [`SequencerAction`]s (see
//! [`Sequencer`] for the call order).

use std::collections::VecDeque;

use fleetmesh_state::model::deployment::{
    in_place_events, Diagnostics, LifecycleErrorCode, LifecycleEvent, LifecycleEventStatus, TargetStatus,
};
use fleetmesh_state::model::ids::UnixMillis;
use fleetmesh_state::TargetReport;
use fleetmesh_transport::NodeId;
use tracing::{info, warn};
use LifecycleEventStatus::InProgress;

use crate::agent::backend::{JournalError, JournalRecord};
use crate::agent::hooks::EventOutcome;
use crate::runtime::protocol::DeploymentAssignment;

/// The events whose failure `ignore_application_stop_failures` forgives (§2.5): the
/// ones that run the last successful install's scripts before the new one goes in.
const FORGIVABLE: [&str; 3] = ["ApplicationStop", "BeforeBlockTraffic", "AfterBlockTraffic"];

/// Actions queued at once, at most: a report and the next event (or the end) after a save.
const ACTIONS_QUEUED_MAX: usize = 2;

/// What the shell does next for a [`Sequencer`], in the order drained.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum SequencerAction {
    /// Save this record durably, then pass the result to
    /// [`Sequencer::handle_journal_saved`].
    SaveJournal(Box<JournalRecord>),
    /// Queue this report for the leader.
    Report(TargetReport),
    /// Run this lifecycle event, then pass its outcome to [`Sequencer::handle_event_done`].
    RunEvent {
        /// `ApplicationStop`, `DownloadBundle`, …
        name: String,
    },
    /// The run ended with this target status: the backend may tidy up (prune old
    /// revisions). Not sent when a finished target is only reported again.
    Finished {
        /// `Succeeded` or `Failed`.
        status: TargetStatus,
    },
}

/// The result the sequencer waits for before it queues anything more.
#[derive(Debug)]
enum Awaiting {
    /// Nothing: not started yet, or the run is over once the queue is drained.
    Nothing,
    /// The save before event `index`: the event runs only once it is durable.
    SaveBeforeEvent {
        /// The event's place in the record.
        index: usize,
    },
    /// The outcome of event `index`.
    Event {
        /// The event's place in the record.
        index: usize,
    },
    /// A save whose failure is only logged: `report` goes to the leader either way, then
    /// `Finished` when `end` is set.
    SaveThenReport {
        /// The report of the record being saved.
        report: TargetReport,
        /// The run's final status, when this save ends a run.
        end: Option<TargetStatus>,
        /// What the save records, for the log line of a failure.
        what: &'static str,
    },
}

/// One target's in-place lifecycle (§2.2): ApplicationStop, DownloadBundle,
/// BeforeInstall, Install, AfterInstall, ApplicationStart, ValidateService.
///
/// Rules, in the order they apply:
/// - a target whose journal record is already terminal (a leader change re-sent its
///   assignment) is saved and reported again, with a fresh report number, and nothing
///   runs;
/// - the journal is saved durably before each event starts and once when the run ends
///   (one save per event: an event's end travels in the next save), and each save queues
///   a report with the next number;
/// - a save before an event that fails refuses to run it: the event and the target fail
///   and the rest is skipped (without a durable journal, crash safety is gone);
/// - the first failed event fails the target and skips the rest, except an
///   ApplicationStop failure under `ignore_application_stop_failures`, which succeeds
///   with its message prefixed (§2.5);
/// - a cancel (assignment withdrawn, shutdown drain) takes effect between events: the
///   next event and the rest are skipped and the target fails.
///
/// Call order: [`Self::new`], then [`Self::handle_cancelled`] if the run is already
/// cancelled, then [`Self::handle_start`]; then drain [`Self::poll_action`] until it
/// returns `None`, performing each action in order. A `SaveJournal` must be answered with
/// [`Self::handle_journal_saved`] and a `RunEvent` with [`Self::handle_event_done`]
/// before the next poll (nothing is queued behind them). `handle_cancelled` may come at
/// any time; it acts at the next point between events. `None` from `poll_action` after
/// `handle_start` means the run is over.
#[derive(Debug)]
pub(super) struct Sequencer {
    /// This host, the target reports name.
    target: NodeId,
    /// From the assignment being run (§2.5).
    ignore_application_stop_failures: bool,
    /// The record as the next save writes it.
    record: JournalRecord,
    awaiting: Awaiting,
    is_started: bool,
    is_cancelled: bool,
    /// Set when this core ended the run (not for a re-report of a finished target).
    has_finished: bool,
    /// The number of the last report queued, to check that numbers only increase.
    last_report_seq: Option<u64>,
    actions: VecDeque<SequencerAction>,
}

impl Sequencer {
    /// A sequencer for `assignment` on host `target`, resuming `journaled` (this host's
    /// journal record of the deployment) if there is one, else starting with every
    /// in-place event pending.
    pub(super) fn new(target: NodeId, assignment: &DeploymentAssignment, journaled: Option<JournalRecord>) -> Self {
        let mut record = journaled.unwrap_or_else(|| JournalRecord {
            assignment: assignment.clone(),
            events: if assignment.events.is_empty() {
                in_place_events(!assignment.traffic_routes.is_empty())
                    .iter()
                    .map(|name| LifecycleEvent::pending(name))
                    .collect()
            } else {
                assignment.events.iter().map(|name| LifecycleEvent::pending(name)).collect()
            },
            status: TargetStatus::InProgress,
            running: None,
            next_seq: 0,
        });
        if record.status == TargetStatus::Ready {
            // Paused at a ready point: the new assignment says whether it still holds.
            record.assignment.ready_before.clone_from(&assignment.ready_before);
        }
        Self {
            target,
            ignore_application_stop_failures: assignment.ignore_application_stop_failures,
            record,
            awaiting: Awaiting::Nothing,
            is_started: false,
            is_cancelled: false,
            has_finished: false,
            last_report_seq: None,
            actions: VecDeque::new(),
        }
    }

    /// The record as the next save writes it.
    #[cfg(test)]
    pub(super) fn record(&self) -> &JournalRecord {
        &self.record
    }

    /// The next thing to do, or `None` while a save or an event is outstanding (a
    /// contract violation) or once the run is over.
    pub(super) fn poll_action(&mut self) -> Option<SequencerAction> {
        self.actions.pop_front()
    }

    /// Starts the run at `now`: re-reports a finished target, or saves the journal
    /// before the first pending event (or ends a run with none left).
    ///
    /// # Panics
    /// Called twice.
    pub(super) fn handle_start(&mut self, now: UnixMillis) {
        assert!(!self.is_started, "handle_start called twice");
        self.is_started = true;
        let deployment = &self.record.assignment.deployment_id;
        if self.record.status.is_terminal() {
            // Already done here (a leader change re-sent the assignment): report again
            // only. The save keeps the report's number: without it a restart would send a
            // report the leader already took, which it ignores as stale.
            let report = self.next_report();
            self.save_then_report(report, None, "the re-sent report");
        } else if self.record.status == TargetStatus::Ready && self.holds_at_next_event() {
            // Still waiting (the assignment was sent again before the pause was
            // committed): report the pause again only.
            let report = self.next_report();
            self.save_then_report(report, None, "the re-sent ready report");
        } else if let Some(index) = self.record.events.iter().position(|event| event.status == InProgress) {
            // A record still showing an event in progress (its recovery could not be
            // saved, or the run that started it ended abnormally): that event was
            // interrupted. Going on with the next pending event would run it on a
            // revision DownloadBundle never unpacked, and leave this one InProgress.
            let name = self.record.events[index].lifecycle_event_name.clone();
            warn!(%deployment, event = %name, "the journal shows an event still running; it is reported failed");
            fail_interrupted(&mut self.record.events[index], now);
            self.record.running = None;
            self.fail_target();
            self.finish();
        } else {
            if self.record.status == TargetStatus::Ready {
                info!(%deployment, "resuming after the ready point");
                self.record.status = TargetStatus::InProgress;
            } else {
                info!(%deployment, revision = %self.record.assignment.revision_id, "starting the lifecycle");
            }
            self.advance(now);
        }
        self.debug_check();
    }

    /// True when the assignment pauses the run before its next pending event.
    fn holds_at_next_event(&self) -> bool {
        let next = self.record.events.iter().find(|event| event.status == LifecycleEventStatus::Pending);
        match (next, &self.record.assignment.ready_before) {
            (Some(event), Some(hold)) => event.lifecycle_event_name == *hold,
            _ => false,
        }
    }

    /// Stops the run at the next point between events: the event running now (if any)
    /// ends as it will, the ones after it are skipped and the target fails.
    pub(super) fn handle_cancelled(&mut self) {
        self.is_cancelled = true;
        self.debug_check();
    }

    /// The result of the last `SaveJournal`.
    ///
    /// # Panics
    /// No save is outstanding, or its action was not drained yet.
    pub(super) fn handle_journal_saved(&mut self, saved: Result<(), JournalError>) {
        assert!(self.actions.is_empty(), "handle_journal_saved before SaveJournal was drained");
        match std::mem::replace(&mut self.awaiting, Awaiting::Nothing) {
            Awaiting::SaveBeforeEvent { index } => match saved {
                Ok(()) => {
                    let report = self.next_report();
                    self.queue(SequencerAction::Report(report));
                    let name = self.record.events[index].lifecycle_event_name.clone();
                    self.queue(SequencerAction::RunEvent { name });
                    self.awaiting = Awaiting::Event { index };
                }
                Err(error) => self.refuse_event(index, &error),
            },
            Awaiting::SaveThenReport { report, end, what } => {
                let deployment = &self.record.assignment.deployment_id;
                if let Err(error) = saved {
                    warn!(%error, %deployment, "cannot record {what}");
                }
                if let Some(status) = end {
                    info!(%deployment, ?status, "lifecycle finished");
                }
                self.queue(SequencerAction::Report(report));
                if let Some(status) = end {
                    self.queue(SequencerAction::Finished { status });
                }
            }
            other => panic!("handle_journal_saved while awaiting {other:?}"),
        }
        self.debug_check();
    }

    /// The outcome of the last `RunEvent`, which ended at `now`.
    ///
    /// # Panics
    /// No event is outstanding, or its action was not drained yet.
    pub(super) fn handle_event_done(&mut self, outcome: EventOutcome, now: UnixMillis) {
        assert!(self.actions.is_empty(), "handle_event_done before RunEvent was drained");
        let Awaiting::Event { index } = std::mem::replace(&mut self.awaiting, Awaiting::Nothing) else {
            panic!("handle_event_done while no event runs");
        };
        let event = &mut self.record.events[index];
        event.end_time = Some(now);
        self.record.running = None;
        let ignored = !outcome.succeeded
            && FORGIVABLE.contains(&event.lifecycle_event_name.as_str())
            && self.ignore_application_stop_failures;
        let mut diagnostics = outcome.diagnostics;
        if outcome.succeeded || ignored {
            event.status = LifecycleEventStatus::Succeeded;
            if ignored {
                diagnostics.message =
                    format!("failure ignored (--ignore-application-stop-failures): {}", diagnostics.message);
            }
            event.diagnostics = Some(diagnostics);
            // No save here: the next event's start (or the end of the run) saves this
            // event's end in the same record, microseconds later, so a target costs one
            // durable save per event instead of two. A crash in between finds this event
            // still marked running and reports it failed, as for a crash during it.
            self.advance(now);
        } else {
            event.status = LifecycleEventStatus::Failed;
            event.diagnostics = Some(diagnostics);
            self.fail_target();
            self.finish();
        }
        self.debug_check();
    }

    /// Starts the next pending event at `now`, skips the rest if cancelled, or ends the
    /// run when none is left.
    fn advance(&mut self, now: UnixMillis) {
        let next = self.record.events.iter().position(|event| event.status == LifecycleEventStatus::Pending);
        let Some(index) = next else {
            self.finish();
            return;
        };
        if !self.is_cancelled && self.holds_at_next_event() {
            // A ready point: the target is installed and waits for the leader (a later
            // assignment without the hold resumes here).
            info!(deployment = %self.record.assignment.deployment_id, "ready; waiting for the deployment to go on");
            self.record.status = TargetStatus::Ready;
            let report = self.next_report();
            self.save_then_report(report, None, "the ready point");
            return;
        }
        let event = &mut self.record.events[index];
        if self.is_cancelled {
            event.status = LifecycleEventStatus::Skipped;
            event.end_time = Some(now);
            info!(deployment = %self.record.assignment.deployment_id, "stopped before {}", event.lifecycle_event_name);
            self.fail_target();
            self.finish();
            return;
        }
        event.status = LifecycleEventStatus::InProgress;
        event.start_time = Some(now);
        self.record.running = Some(event.lifecycle_event_name.clone());
        self.queue(SequencerAction::SaveJournal(Box::new(self.record.clone())));
        self.awaiting = Awaiting::SaveBeforeEvent { index };
    }

    /// The save before event `index` failed: the event fails without running.
    fn refuse_event(&mut self, index: usize, error: &JournalError) {
        let event = &mut self.record.events[index];
        event.status = LifecycleEventStatus::Failed;
        event.diagnostics = Some(unknown_error(format!("cannot write the agent journal: {error}")));
        self.record.running = None;
        self.fail_target();
        self.finish();
    }

    /// Skips every pending event and fails the target.
    fn fail_target(&mut self) {
        skip_pending(&mut self.record.events);
        self.record.status = TargetStatus::Failed;
    }

    /// Ends the run: the final status, one save, its report, then `Finished`.
    fn finish(&mut self) {
        if self.record.status == TargetStatus::InProgress {
            self.record.status = TargetStatus::Succeeded;
        }
        self.has_finished = true;
        let report = self.next_report();
        self.save_then_report(report, Some(self.record.status), "the end of the lifecycle");
    }

    fn save_then_report(&mut self, report: TargetReport, end: Option<TargetStatus>, what: &'static str) {
        self.queue(SequencerAction::SaveJournal(Box::new(self.record.clone())));
        self.awaiting = Awaiting::SaveThenReport { report, end, what };
    }

    /// The report of the record as it is, with the next number (which the record keeps).
    fn next_report(&mut self) -> TargetReport {
        let report = report_of(&mut self.record, self.target);
        assert!(self.last_report_seq.is_none_or(|last| last < report.seq), "report numbers must increase");
        self.last_report_seq = Some(report.seq);
        report
    }

    fn queue(&mut self, action: SequencerAction) {
        self.actions.push_back(action);
    }

    fn debug_check(&self) {
        if cfg!(debug_assertions) {
            self.check_invariants();
        }
    }

    /// Checks the rules the core keeps between inputs: a bounded queue; an outstanding
    /// save before an event, or an outstanding event, names an in-progress event of an
    /// in-progress target as the running one; a run this core ended is terminal, with no
    /// event pending; report numbers never go back.
    ///
    /// Not checked: that a finished run names no running event. A record loaded while
    /// still naming one (its recovery could not be saved) keeps that name until a save
    /// before an event replaces it, as it always has.
    ///
    /// # Panics
    /// A rule is broken (a bug in this core).
    pub(super) fn check_invariants(&self) {
        assert!(self.actions.len() <= ACTIONS_QUEUED_MAX, "{} actions queued", self.actions.len());
        if let Awaiting::SaveBeforeEvent { index } | Awaiting::Event { index } = self.awaiting {
            let event = &self.record.events[index];
            assert_eq!(event.status, LifecycleEventStatus::InProgress, "the running event is not in progress");
            assert_eq!(self.record.running.as_deref(), Some(event.lifecycle_event_name.as_str()));
            assert_eq!(self.record.status, TargetStatus::InProgress, "an event runs for a finished target");
        }
        if self.has_finished {
            assert!(self.record.status.is_terminal(), "a finished run is {:?}", self.record.status);
            let pending = self.record.events.iter().any(|event| event.status == LifecycleEventStatus::Pending);
            assert!(!pending, "a finished run has pending events");
        }
        if let Some(last) = self.last_report_seq {
            assert!(self.record.next_seq >= last, "the record's report number went back");
        }
    }
}

/// What recovery makes of a journal record found when the agent starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Recovered {
    /// The record to save: the interrupted event failed, the rest skipped, the target
    /// failed.
    pub(super) record: JournalRecord,
    /// The report to send whether or not the save succeeds.
    pub(super) report: TargetReport,
    /// The event that was running.
    pub(super) interrupted: String,
}

/// Fails the event that was running on host `target` when the agent died, at `now`
/// (§8.1: a host agent killed mid-event reports that event failed when it comes back, so
/// no target stays InProgress forever and nothing runs twice). `None` when the record
/// names no running event.
pub(super) fn recover(mut record: JournalRecord, target: NodeId, now: UnixMillis) -> Option<Recovered> {
    let interrupted = record.running.take()?;
    for event in record.events.iter_mut().filter(|event| event.lifecycle_event_name == interrupted) {
        fail_interrupted(event, now);
    }
    skip_pending(&mut record.events);
    record.status = TargetStatus::Failed;
    // The record saved before the event keeps the number before that event's start
    // report, which the leader may have taken: skip it, so the failure supersedes the
    // start instead of being ignored as stale until a re-report.
    record.next_seq += 1;
    let report = report_of(&mut record, target);
    Some(Recovered { record, report, interrupted })
}

/// The report of `record` from host `target`, numbered with the record's next number.
///
/// The record saved before an event keeps the number before that event's report;
/// [`recover`] skips that number, so its report supersedes the event's start report.
fn report_of(record: &mut JournalRecord, target: NodeId) -> TargetReport {
    record.next_seq += 1;
    TargetReport {
        deployment_id: record.assignment.deployment_id.clone(),
        target_id: target,
        seq: record.next_seq,
        status: record.status,
        lifecycle_events: record.events.clone(),
    }
}

/// Fails `event`, which was running when the host agent stopped, at `now`.
fn fail_interrupted(event: &mut LifecycleEvent, now: UnixMillis) {
    let name = &event.lifecycle_event_name;
    let message =
        format!("the host agent restarted while {name} was running; the event is reported failed and not run again");
    event.status = LifecycleEventStatus::Failed;
    event.end_time = Some(now);
    event.diagnostics = Some(unknown_error(message));
}

fn skip_pending(events: &mut [LifecycleEvent]) {
    for event in events.iter_mut().filter(|event| event.status == LifecycleEventStatus::Pending) {
        event.status = LifecycleEventStatus::Skipped;
    }
}

fn unknown_error(message: String) -> Diagnostics {
    Diagnostics {
        error_code: LifecycleErrorCode::UnknownError,
        script_name: String::new(),
        message,
        log_tail: String::new(),
    }
}
