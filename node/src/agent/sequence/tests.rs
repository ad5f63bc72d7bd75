//! Scenarios for the lifecycle sequencer's core: a [`Sequencer`] in a known state, inputs
//! in, the exact drained actions asserted, one scenario per rule of its doc (§2.2, §2.5,
//! §8.1). Every input also runs `check_invariants` (test builds have debug assertions).

use fleetmesh_state::model::deployment::{
    Diagnostics, LifecycleErrorCode, LifecycleEvent, LifecycleEventStatus, TargetStatus, IN_PLACE_EVENTS,
    IN_PLACE_TRAFFIC_EVENTS,
};
use fleetmesh_state::model::ids::{DeploymentId, Hash32, UnixMillis};
use fleetmesh_state::TargetReport;
use fleetmesh_transport::NodeId;

use super::sequencer::{recover, Recovered, Sequencer, SequencerAction};
use crate::agent::backend::{JournalError, JournalRecord};
use crate::agent::hooks::EventOutcome;
use crate::runtime::protocol::DeploymentAssignment;

use LifecycleEventStatus::{Failed, InProgress, Skipped, Succeeded};

const HOST: NodeId = NodeId(4);

fn assignment(ignore_application_stop_failures: bool) -> DeploymentAssignment {
    DeploymentAssignment {
        deployment_id: DeploymentId("d-SEQ".into()),
        application_name: "app".into(),
        deployment_group_name: "web".into(),
        deployment_group_id: "g-1".into(),
        revision_id: Hash32([3; 32]),
        ignore_application_stop_failures,
        file_exists_behavior: Default::default(),
        traffic_routes: Vec::new(),
        events: Vec::new(),
        ready_before: None,
        source: None,
    }
}

fn diagnostics(code: LifecycleErrorCode, message: &str) -> Diagnostics {
    Diagnostics { error_code: code, script_name: String::new(), message: message.into(), log_tail: String::new() }
}

fn succeeded(message: &str) -> EventOutcome {
    EventOutcome { succeeded: true, diagnostics: diagnostics(LifecycleErrorCode::Success, message) }
}

fn failed(message: &str) -> EventOutcome {
    EventOutcome { succeeded: false, diagnostics: diagnostics(LifecycleErrorCode::ScriptFailed, message) }
}

fn disk_full() -> JournalError {
    JournalError::Io(std::io::Error::other("disk full"))
}

fn at(ms: u64) -> UnixMillis {
    UnixMillis(ms)
}

/// The seven in-place events, pending.
fn pending_events() -> Vec<LifecycleEvent> {
    IN_PLACE_EVENTS.iter().map(|name| LifecycleEvent::pending(name)).collect()
}

/// Event `name` as it is recorded once it ran from `start` to `end` with `outcome`.
fn ran(name: &str, status: LifecycleEventStatus, start: u64, end: u64, outcome: &EventOutcome) -> LifecycleEvent {
    LifecycleEvent {
        lifecycle_event_name: name.into(),
        status,
        start_time: Some(at(start)),
        end_time: Some(at(end)),
        diagnostics: Some(outcome.diagnostics.clone()),
    }
}

fn started(name: &str, start: u64) -> LifecycleEvent {
    LifecycleEvent { status: InProgress, start_time: Some(at(start)), ..LifecycleEvent::pending(name) }
}

fn record(
    events: Vec<LifecycleEvent>,
    status: TargetStatus,
    running: Option<&str>,
    next_seq: u64,
    ignore: bool,
) -> JournalRecord {
    JournalRecord { assignment: assignment(ignore), events, status, running: running.map(String::from), next_seq }
}

fn report(record: &JournalRecord) -> TargetReport {
    TargetReport {
        deployment_id: record.assignment.deployment_id.clone(),
        target_id: HOST,
        seq: record.next_seq,
        status: record.status,
        lifecycle_events: record.events.clone(),
    }
}

fn drain(sequencer: &mut Sequencer) -> Vec<SequencerAction> {
    std::iter::from_fn(|| sequencer.poll_action()).collect()
}

fn run_event(name: &str) -> SequencerAction {
    SequencerAction::RunEvent { name: name.into() }
}

/// A fresh sequencer started at t = 100 whose save before ApplicationStop succeeded; the
/// drained actions are checked.
fn started_fresh(ignore: bool) -> Sequencer {
    let mut sequencer = Sequencer::new(HOST, &assignment(ignore), None);
    sequencer.handle_start(at(100));
    let mut events = pending_events();
    events[0] = started("ApplicationStop", 100);
    let before = record(events, TargetStatus::InProgress, Some("ApplicationStop"), 0, ignore);
    assert_eq!(drain(&mut sequencer), vec![SequencerAction::SaveJournal(Box::new(before.clone()))]);
    sequencer.handle_journal_saved(Ok(()));
    let reported = JournalRecord { next_seq: 1, ..before };
    assert_eq!(drain(&mut sequencer), vec![SequencerAction::Report(report(&reported)), run_event("ApplicationStop")]);
    sequencer
}

/// From [`started_fresh`] (ApplicationStop running), answers every save with success and
/// every event with `outcome(name)`, event `i` ending at 100 × (i + 2) ms, until the run
/// is over; returns the last actions drained.
fn run_to_end(sequencer: &mut Sequencer, outcome: impl Fn(&str) -> EventOutcome) -> Vec<SequencerAction> {
    let mut clock = 200;
    sequencer.handle_event_done(outcome("ApplicationStop"), at(clock));
    let mut last = Vec::new();
    for _ in 0..40 {
        let actions = drain(sequencer);
        if actions.is_empty() {
            return last;
        }
        for action in &actions {
            match action {
                SequencerAction::SaveJournal(_) => sequencer.handle_journal_saved(Ok(())),
                SequencerAction::RunEvent { name } => {
                    clock += 100;
                    sequencer.handle_event_done(outcome(name), at(clock));
                }
                SequencerAction::Report(_) | SequencerAction::Finished { .. } => {}
            }
        }
        last = actions;
    }
    panic!("the run did not end in 40 rounds");
}

#[test]
fn each_event_is_journalled_once_before_it_starts_and_the_end_once_more() {
    // A fresh target whose events all succeed: one save before each event (holding the
    // previous event's end), each followed by a report numbered 1..=7, then the final
    // save, report 8 and Finished(Succeeded).
    let mut sequencer = started_fresh(false);
    let outcome = succeeded("ApplicationStop ok");
    sequencer.handle_event_done(outcome.clone(), at(200));
    let mut events = pending_events();
    events[0] = ran("ApplicationStop", Succeeded, 100, 200, &outcome);
    events[1] = started("DownloadBundle", 200);
    let before = record(events, TargetStatus::InProgress, Some("DownloadBundle"), 1, false);
    assert_eq!(drain(&mut sequencer), vec![SequencerAction::SaveJournal(Box::new(before.clone()))]);
    sequencer.handle_journal_saved(Ok(()));
    let reported = JournalRecord { next_seq: 2, ..before };
    assert_eq!(drain(&mut sequencer), vec![SequencerAction::Report(report(&reported)), run_event("DownloadBundle")]);

    let outcome = |name: &str| succeeded(&format!("{name} ok"));
    let mut clock = 300;
    sequencer.handle_event_done(outcome("DownloadBundle"), at(clock));
    let mut saves = Vec::new();
    let mut reports = Vec::new();
    // Bounded: five more events and the end.
    for _ in 0..20 {
        match sequencer.poll_action() {
            Some(SequencerAction::SaveJournal(record)) => {
                saves.push(record);
                sequencer.handle_journal_saved(Ok(()));
            }
            Some(SequencerAction::Report(report)) => reports.push(report),
            Some(SequencerAction::RunEvent { name }) => {
                clock += 100;
                sequencer.handle_event_done(outcome(&name), at(clock));
            }
            Some(SequencerAction::Finished { status }) => {
                assert_eq!(status, TargetStatus::Succeeded);
                break;
            }
            None => panic!("the run stopped before Finished"),
        }
    }
    assert_eq!(sequencer.poll_action(), None);
    // DownloadBundle's end and five starts, then the end: six saves, six reports.
    assert_eq!(saves.len(), 6);
    assert_eq!(reports.iter().map(|report| report.seq).collect::<Vec<_>>(), vec![3, 4, 5, 6, 7, 8]);
    let end = saves.last().expect("the final save");
    assert_eq!((end.status, end.running.as_deref(), end.next_seq), (TargetStatus::Succeeded, None, 8));
    assert!(end.events.iter().all(|event| event.status == Succeeded), "{:?}", end.events);
    assert_eq!(end.events[6].end_time, Some(at(800)));
    assert_eq!(reports.last(), Some(&report(end)));
}

#[test]
fn a_failed_save_before_an_event_refuses_to_run_it() {
    // The save before ApplicationStop fails: the event fails unrun (started, no end),
    // the rest is skipped, the target fails; the end is still saved, reported and
    // finished, and no report was sent for the refused start.
    let mut sequencer = Sequencer::new(HOST, &assignment(false), None);
    sequencer.handle_start(at(100));
    assert!(matches!(drain(&mut sequencer)[..], [SequencerAction::SaveJournal(_)]));
    sequencer.handle_journal_saved(Err(disk_full()));
    let mut events: Vec<LifecycleEvent> =
        pending_events().into_iter().map(|event| LifecycleEvent { status: Skipped, ..event }).collect();
    events[0] = LifecycleEvent {
        status: Failed,
        diagnostics: Some(diagnostics(LifecycleErrorCode::UnknownError, "cannot write the agent journal: disk full")),
        ..started("ApplicationStop", 100)
    };
    let end = record(events, TargetStatus::Failed, None, 1, false);
    assert_eq!(drain(&mut sequencer), vec![SequencerAction::SaveJournal(Box::new(end.clone()))]);
    // The final save fails too: it is logged, and the report and the end still go out.
    sequencer.handle_journal_saved(Err(disk_full()));
    assert_eq!(
        drain(&mut sequencer),
        vec![SequencerAction::Report(report(&end)), SequencerAction::Finished { status: TargetStatus::Failed }]
    );
    assert_eq!(sequencer.poll_action(), None);
}

#[test]
fn the_first_failed_event_fails_the_target_and_skips_the_rest() {
    // BeforeInstall fails: it keeps its diagnostics, AfterInstall onwards are skipped,
    // nothing more runs, and the end is saved, reported (seq 4) and finished Failed.
    let mut sequencer = started_fresh(false);
    let outcome = |name: &str| if name == "BeforeInstall" { failed("exit 3") } else { succeeded("ok") };
    let last = run_to_end(&mut sequencer, outcome);
    let [SequencerAction::Report(end), SequencerAction::Finished { status }] = &last[..] else {
        panic!("the run did not end with a report and Finished: {last:?}");
    };
    assert_eq!(*status, TargetStatus::Failed);
    assert_eq!((end.status, end.seq), (TargetStatus::Failed, 4));
    let statuses: Vec<_> = end.lifecycle_events.iter().map(|event| event.status).collect();
    assert_eq!(statuses, [Succeeded, Succeeded, Failed, Skipped, Skipped, Skipped, Skipped]);
    assert_eq!(end.lifecycle_events[2], ran("BeforeInstall", Failed, 300, 400, &failed("exit 3")));
    assert_eq!(end.lifecycle_events[3], LifecycleEvent { status: Skipped, ..LifecycleEvent::pending("Install") });
    assert_eq!(sequencer.record().running, None);
}

#[test]
fn an_application_stop_failure_is_forgiven_only_when_the_deployment_says_so() {
    // Under ignore_application_stop_failures the failed ApplicationStop succeeds with its
    // message prefixed and the run goes on to DownloadBundle; without it the target fails.
    let mut forgiving = started_fresh(true);
    forgiving.handle_event_done(failed("stop.sh exited 1"), at(200));
    let [SequencerAction::SaveJournal(saved)] = &drain(&mut forgiving)[..] else { panic!("expected one save") };
    let forgiven = EventOutcome {
        succeeded: true,
        diagnostics: diagnostics(
            LifecycleErrorCode::ScriptFailed,
            "failure ignored (--ignore-application-stop-failures): stop.sh exited 1",
        ),
    };
    assert_eq!(saved.events[0], ran("ApplicationStop", Succeeded, 100, 200, &forgiven));
    assert_eq!((saved.running.as_deref(), saved.status), (Some("DownloadBundle"), TargetStatus::InProgress));

    let mut strict = started_fresh(false);
    strict.handle_event_done(failed("stop.sh exited 1"), at(200));
    let [SequencerAction::SaveJournal(saved)] = &drain(&mut strict)[..] else { panic!("expected one save") };
    assert_eq!(saved.events[0], ran("ApplicationStop", Failed, 100, 200, &failed("stop.sh exited 1")));
    assert_eq!(saved.status, TargetStatus::Failed);
    assert!(saved.events[1..].iter().all(|event| event.status == Skipped));
}

#[test]
fn a_failure_of_another_event_is_never_forgiven() {
    // ignore_application_stop_failures covers ApplicationStop only: a DownloadBundle
    // failure still fails the target.
    let mut sequencer = started_fresh(true);
    let outcome = |name: &str| if name == "DownloadBundle" { failed("no peers") } else { succeeded("ok") };
    let last = run_to_end(&mut sequencer, outcome);
    assert_eq!(last.last(), Some(&SequencerAction::Finished { status: TargetStatus::Failed }));
    assert_eq!(sequencer.record().events[1].status, Failed);
}

#[test]
fn a_cancel_between_events_skips_the_rest_and_fails_the_target() {
    // Cancelled while DownloadBundle runs: DownloadBundle ends as it does, BeforeInstall
    // is skipped at the moment it would have started (end time, no start time), the rest
    // too, and the target fails; no further event runs.
    let mut sequencer = started_fresh(false);
    let stop = succeeded("stopped");
    sequencer.handle_event_done(stop.clone(), at(200));
    assert!(matches!(drain(&mut sequencer)[..], [SequencerAction::SaveJournal(_)]));
    sequencer.handle_journal_saved(Ok(()));
    assert_eq!(drain(&mut sequencer).last(), Some(&run_event("DownloadBundle")));
    sequencer.handle_cancelled();
    let download = succeeded("unpacked");
    sequencer.handle_event_done(download.clone(), at(300));
    let mut events: Vec<LifecycleEvent> =
        pending_events().into_iter().map(|event| LifecycleEvent { status: Skipped, ..event }).collect();
    events[0] = ran("ApplicationStop", Succeeded, 100, 200, &stop);
    events[1] = ran("DownloadBundle", Succeeded, 200, 300, &download);
    events[2].end_time = Some(at(300));
    let end = record(events, TargetStatus::Failed, None, 3, false);
    assert_eq!(drain(&mut sequencer), vec![SequencerAction::SaveJournal(Box::new(end.clone()))]);
    sequencer.handle_journal_saved(Ok(()));
    assert_eq!(
        drain(&mut sequencer),
        vec![SequencerAction::Report(report(&end)), SequencerAction::Finished { status: TargetStatus::Failed }]
    );
}

#[test]
fn a_cancel_before_the_start_runs_nothing_and_one_after_the_last_event_changes_nothing() {
    // Cancelled before handle_start: ApplicationStop is skipped at once, nothing runs.
    let mut sequencer = Sequencer::new(HOST, &assignment(false), None);
    sequencer.handle_cancelled();
    sequencer.handle_start(at(100));
    let [SequencerAction::SaveJournal(end)] = &drain(&mut sequencer)[..] else { panic!("expected the final save") };
    assert_eq!((end.status, end.next_seq), (TargetStatus::Failed, 1));
    assert_eq!(
        end.events[0],
        LifecycleEvent { status: Skipped, end_time: Some(at(100)), ..pending_events()[0].clone() }
    );
    assert!(end.events.iter().all(|event| event.status == Skipped));
    // Cancelled while ValidateService, the last event, runs: nothing is left to skip and
    // the target succeeds.
    let mut sequencer = started_fresh(false);
    let mut clock = 200;
    sequencer.handle_event_done(succeeded("ok"), at(clock));
    // Bounded: six more events, each a save, a report and a run.
    for _ in 0..30 {
        match sequencer.poll_action() {
            Some(SequencerAction::SaveJournal(_)) => sequencer.handle_journal_saved(Ok(())),
            Some(SequencerAction::RunEvent { name }) => {
                clock += 100;
                if name == "ValidateService" {
                    sequencer.handle_cancelled();
                }
                sequencer.handle_event_done(succeeded("ok"), at(clock));
            }
            Some(SequencerAction::Report(_)) => {}
            Some(SequencerAction::Finished { status }) => {
                assert_eq!(status, TargetStatus::Succeeded);
                return;
            }
            None => break,
        }
    }
    panic!("the run did not finish");
}

#[test]
fn a_cancel_while_the_start_is_being_saved_lets_that_event_run() {
    // The cancel arrives between the save before BeforeInstall and its result: the event
    // was already decided, so it runs; the cancel skips the events after it.
    let mut sequencer = started_fresh(false);
    sequencer.handle_event_done(succeeded("ok"), at(200));
    drain(&mut sequencer);
    sequencer.handle_journal_saved(Ok(()));
    drain(&mut sequencer);
    sequencer.handle_event_done(succeeded("ok"), at(300));
    drain(&mut sequencer);
    sequencer.handle_cancelled();
    sequencer.handle_journal_saved(Ok(()));
    assert_eq!(drain(&mut sequencer).last(), Some(&run_event("BeforeInstall")));
    sequencer.handle_event_done(succeeded("ok"), at(400));
    let [SequencerAction::SaveJournal(end)] = &drain(&mut sequencer)[..] else { panic!("expected the final save") };
    let statuses: Vec<_> = end.events.iter().map(|event| event.status).collect();
    assert_eq!(statuses, [Succeeded, Succeeded, Succeeded, Skipped, Skipped, Skipped, Skipped]);
    assert_eq!(end.status, TargetStatus::Failed);
}

#[test]
fn a_finished_target_is_only_reported_again() {
    // A terminal record re-sent by a new leader: one save with the next report number,
    // then its report; nothing runs and no Finished follows (the run ended long ago).
    // A failed save is logged and the report still goes.
    let mut events = pending_events();
    for event in &mut events {
        event.status = Succeeded;
    }
    let journaled = record(events, TargetStatus::Succeeded, None, 8, false);
    let mut sequencer = Sequencer::new(HOST, &assignment(false), Some(journaled.clone()));
    sequencer.handle_start(at(5000));
    let again = JournalRecord { next_seq: 9, ..journaled };
    assert_eq!(drain(&mut sequencer), vec![SequencerAction::SaveJournal(Box::new(again.clone()))]);
    sequencer.handle_journal_saved(Err(disk_full()));
    assert_eq!(drain(&mut sequencer), vec![SequencerAction::Report(report(&again))]);
    assert_eq!(sequencer.poll_action(), None);
}

#[test]
fn a_journalled_run_resumes_at_its_first_pending_event() {
    // A record whose first three events succeeded and that names no running event: the
    // run goes on with Install, numbering its reports after the record's.
    let mut events = pending_events();
    for event in &mut events[..3] {
        event.status = Succeeded;
    }
    let journaled = record(events, TargetStatus::InProgress, None, 5, false);
    let mut sequencer = Sequencer::new(HOST, &assignment(false), Some(journaled));
    sequencer.handle_start(at(900));
    let [SequencerAction::SaveJournal(saved)] = &drain(&mut sequencer)[..] else { panic!("expected one save") };
    assert_eq!((saved.running.as_deref(), saved.next_seq), (Some("Install"), 5));
    assert_eq!(saved.events[3], started("Install", 900));
    sequencer.handle_journal_saved(Ok(()));
    let actions = drain(&mut sequencer);
    assert!(matches!(&actions[..], [SequencerAction::Report(report), _] if report.seq == 6), "{actions:?}");
    assert_eq!(actions[1], run_event("Install"));
}

#[test]
fn recovery_fails_the_event_that_was_running_and_skips_the_rest() {
    // §8.1: the agent died during Install (saved before it with next_seq 4). Recovery
    // fails Install with an explanation, skips the rest, fails the target and numbers the
    // report 6 — past 5, the number of Install's own start report, which the leader may
    // have taken (a report with 5 would be ignored as stale); the re-report after the
    // next poll carries 7.
    let mut events = pending_events();
    for event in &mut events[..3] {
        event.status = Succeeded;
    }
    events[3] = started("Install", 700);
    let journaled = record(events, TargetStatus::InProgress, Some("Install"), 4, false);
    let Some(Recovered { record: saved, report: sent, interrupted }) = recover(journaled, HOST, at(9000)) else {
        panic!("a running event is recovered");
    };
    assert_eq!(interrupted, "Install");
    let statuses: Vec<_> = saved.events.iter().map(|event| event.status).collect();
    assert_eq!(statuses, [Succeeded, Succeeded, Succeeded, Failed, Skipped, Skipped, Skipped]);
    let install = &saved.events[3];
    assert_eq!((install.start_time, install.end_time), (Some(at(700)), Some(at(9000))));
    let message = install.diagnostics.as_ref().map(|diagnostics| diagnostics.message.as_str());
    assert_eq!(
        message,
        Some("the host agent restarted while Install was running; the event is reported failed and not run again")
    );
    assert_eq!((saved.status, saved.running.as_deref(), saved.next_seq), (TargetStatus::Failed, None, 6));
    assert_eq!(sent, report(&saved));
    // Then the leader re-sends the assignment: the finished record is reported with 7.
    let mut sequencer = Sequencer::new(HOST, &assignment(false), Some(saved));
    sequencer.handle_start(at(9100));
    assert!(matches!(&drain(&mut sequencer)[..], [SequencerAction::SaveJournal(record)] if record.next_seq == 7));
    sequencer.handle_journal_saved(Ok(()));
    assert!(matches!(&drain(&mut sequencer)[..], [SequencerAction::Report(report)] if report.seq == 7));
}

#[test]
fn recovery_leaves_a_record_without_a_running_event_alone() {
    // Finished and not-yet-started records name no running event: nothing to recover.
    let finished = record(pending_events(), TargetStatus::Succeeded, None, 8, false);
    assert_eq!(recover(finished, HOST, at(1)), None);
    let fresh = record(pending_events(), TargetStatus::InProgress, None, 0, false);
    assert_eq!(recover(fresh, HOST, at(1)), None);
}

#[test]
#[should_panic(expected = "handle_event_done while no event runs")]
fn an_outcome_without_a_running_event_is_a_contract_violation() {
    // The shell must only answer a RunEvent it drained.
    let mut sequencer = Sequencer::new(HOST, &assignment(false), None);
    sequencer.handle_start(at(1));
    drain(&mut sequencer);
    sequencer.handle_event_done(succeeded("ok"), at(2));
}

#[test]
fn a_record_still_showing_an_event_in_progress_fails_it_instead_of_running_the_next() {
    // A record whose recovery was never saved: DownloadBundle InProgress (and named
    // running). The run must not go on to BeforeInstall (it would find no unpacked
    // revision and fail with a false "no appspec.yml"): DownloadBundle fails as
    // interrupted, the rest is skipped, and nothing runs.
    let mut events = pending_events();
    events[0].status = Succeeded;
    events[1] = started("DownloadBundle", 300);
    let journaled = record(events, TargetStatus::InProgress, Some("DownloadBundle"), 2, false);
    let mut sequencer = Sequencer::new(HOST, &assignment(false), Some(journaled));
    sequencer.handle_start(at(900));
    let [SequencerAction::SaveJournal(saved)] = &drain(&mut sequencer)[..] else { panic!("expected one save") };
    let statuses: Vec<_> = saved.events.iter().map(|event| event.status).collect();
    assert_eq!(statuses, [Succeeded, Failed, Skipped, Skipped, Skipped, Skipped, Skipped]);
    assert_eq!((saved.status, saved.running.as_deref()), (TargetStatus::Failed, None));
    let message = saved.events[1].diagnostics.as_ref().map(|diagnostics| diagnostics.message.clone());
    assert_eq!(
        message.as_deref(),
        Some(
            "the host agent restarted while DownloadBundle was running; the event is reported failed and not run again"
        )
    );
    sequencer.handle_journal_saved(Ok(()));
    let actions = drain(&mut sequencer);
    assert!(
        matches!(
            &actions[..],
            [SequencerAction::Report(_), SequencerAction::Finished { status: TargetStatus::Failed }]
        ),
        "{actions:?}"
    );
}

/// Drives a sequencer started without a journal through its whole run, answering every
/// save with success and every event with `outcome(name)`; the events run, in order.
fn run_all(sequencer: &mut Sequencer, outcome: impl Fn(&str) -> EventOutcome) -> Vec<String> {
    let (mut clock, mut ran) = (100, Vec::new());
    sequencer.handle_start(at(clock));
    for _ in 0..100 {
        let actions = drain(sequencer);
        if actions.is_empty() {
            break;
        }
        for action in actions {
            match action {
                SequencerAction::SaveJournal(_) => sequencer.handle_journal_saved(Ok(())),
                SequencerAction::RunEvent { name } => {
                    clock += 100;
                    sequencer.handle_event_done(outcome(&name), at(clock));
                    ran.push(name);
                }
                SequencerAction::Report(_) | SequencerAction::Finished { .. } => {}
            }
        }
    }
    ran
}

#[test]
fn with_traffic_control_the_block_events_come_first_and_the_allow_events_last() {
    // An assignment naming routes runs the thirteen events of §2.2 in order; under
    // ignore_application_stop_failures a failed BeforeBlockTraffic or AfterBlockTraffic
    // is forgiven like ApplicationStop, and without it the first one fails the target.
    let traffic = |ignore| DeploymentAssignment { traffic_routes: vec!["web".into()], ..assignment(ignore) };
    let mut sequencer = Sequencer::new(HOST, &traffic(false), None);
    let ran = run_all(&mut sequencer, |_| succeeded("ok"));
    assert_eq!(ran, IN_PLACE_TRAFFIC_EVENTS);
    assert_eq!(sequencer.record().status, TargetStatus::Succeeded);

    let block_scripts_fail = |name: &str| {
        if name.ends_with("BlockTraffic") && name != "BlockTraffic" {
            failed("old script exited 1")
        } else {
            succeeded("ok")
        }
    };
    let mut forgiving = Sequencer::new(HOST, &traffic(true), None);
    assert_eq!(run_all(&mut forgiving, block_scripts_fail), IN_PLACE_TRAFFIC_EVENTS);
    assert_eq!(forgiving.record().status, TargetStatus::Succeeded);
    let mut strict = Sequencer::new(HOST, &traffic(false), None);
    assert_eq!(run_all(&mut strict, block_scripts_fail), ["BeforeBlockTraffic"]);
    assert_eq!(strict.record().status, TargetStatus::Failed);
    assert!(strict.record().events[1..].iter().all(|event| event.status == Skipped));
}

#[test]
fn a_green_target_pauses_ready_before_the_allow_events_and_resumes_when_released() {
    // A blue/green green target: the assignment's own event list, held before
    // BeforeAllowTraffic. The run ends Ready after ValidateService; the same assignment
    // sent again only re-reports; one without the hold runs the allow events.
    use fleetmesh_state::model::blue_green::{GREEN_EVENTS, GREEN_HOLD};
    let held = DeploymentAssignment {
        traffic_routes: vec!["web".into()],
        events: GREEN_EVENTS.iter().map(|name| (*name).to_string()).collect(),
        ready_before: Some(GREEN_HOLD.into()),
        source: None,
        ..assignment(false)
    };
    let mut first = Sequencer::new(HOST, &held, None);
    assert_eq!(run_all(&mut first, |_| succeeded("ok")), GREEN_EVENTS[..7]);
    assert_eq!(first.record().status, TargetStatus::Ready);
    let mut again = Sequencer::new(HOST, &held, Some(first.record().clone()));
    assert!(run_all(&mut again, |_| succeeded("ok")).is_empty(), "still held: nothing runs");
    assert!(again.record().next_seq > first.record().next_seq, "the pause is reported again");
    let released = DeploymentAssignment { ready_before: None, ..held };
    let mut resumed = Sequencer::new(HOST, &released, Some(again.record().clone()));
    assert_eq!(run_all(&mut resumed, |_| succeeded("ok")), GREEN_EVENTS[7..]);
    assert_eq!(resumed.record().status, TargetStatus::Succeeded);
    assert!(resumed.record().events.iter().all(|event| event.status == Succeeded));
}
