//! The in-place lifecycle of one target, in CodeDeploy's order (§2.2): ApplicationStop,
//! DownloadBundle, BeforeInstall, Install, AfterInstall, ApplicationStart,
//! ValidateService. The first failure fails the target and skips the rest, except an
//! ApplicationStop failure under `--ignore-application-stop-failures` (§2.5).
//!
//! The journal is saved (durably) before each event starts and once when the run ends;
//! each save also queues a report for the leader.

use std::sync::Arc;

use fleetmesh_state::model::deployment::{
    Diagnostics, LifecycleErrorCode, LifecycleEvent, LifecycleEventStatus, TargetStatus, IN_PLACE_EVENTS,
};
use fleetmesh_state::TargetReport;
use tokio::sync::watch;
use tracing::{info, warn};

use super::backend::{JournalRecord, LifecycleBackend, TargetContext};
use super::Agent;
use crate::agent::hooks::EventOutcome;
use crate::runtime::Node;

fn report_of(record: &mut JournalRecord, node: &Node) -> TargetReport {
    record.next_seq += 1;
    TargetReport {
        deployment_id: record.assignment.deployment_id.clone(),
        target_id: node.id(),
        seq: record.next_seq,
        status: record.status,
        lifecycle_events: record.events.clone(),
    }
}

fn skip_rest(events: &mut [LifecycleEvent]) {
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

/// Fails the events that were running when the agent died, and returns the reports to
/// send (§8.1: a host agent killed mid-event reports that event failed when it comes
/// back, so no target stays InProgress forever and nothing runs twice).
pub(super) fn recover(node: &Node, backend: &dyn LifecycleBackend) -> Vec<TargetReport> {
    let mut reports = Vec::new();
    for mut record in backend.journal().load_all() {
        let Some(running) = record.running.take() else { continue };
        let now = node.clock().now();
        for event in record.events.iter_mut().filter(|event| event.lifecycle_event_name == running) {
            event.status = LifecycleEventStatus::Failed;
            event.end_time = Some(now);
            event.diagnostics = Some(unknown_error(format!(
                "the host agent restarted while {running} was running; the event is reported failed and not run again"
            )));
        }
        skip_rest(&mut record.events);
        record.status = TargetStatus::Failed;
        let report = report_of(&mut record, node);
        if let Err(error) = backend.journal().save(&record) {
            warn!(%error, "cannot record the recovery of {}", record.assignment.deployment_id);
        }
        warn!(deployment = %record.assignment.deployment_id, event = %running, "recovered an interrupted lifecycle event as failed");
        reports.push(report);
    }
    reports
}

/// Runs (or resumes, or re-reports) one target.
pub(super) async fn run(agent: &Arc<Agent>, context: TargetContext, mut cancelled: watch::Receiver<bool>) {
    let node = &agent.node;
    let backend = agent.backend.as_ref();
    let deployment = context.assignment.deployment_id.clone();
    let mut record = backend.journal().load(&deployment).unwrap_or_else(|| JournalRecord {
        assignment: context.assignment.clone(),
        events: IN_PLACE_EVENTS.iter().map(|name| LifecycleEvent::pending(name)).collect(),
        status: TargetStatus::InProgress,
        running: None,
        next_seq: 0,
    });
    if record.status.is_terminal() {
        // Already done here (a leader change re-sent the assignment): report again only.
        agent.reports.push(report_of(&mut record, node));
        // The save keeps the report's sequence number: without it a restart would send a
        // report the leader already took, which it ignores as stale; nothing else is lost.
        if let Err(error) = backend.journal().save(&record) {
            warn!(%error, %deployment, "cannot record the re-sent report");
        }
        return;
    }
    info!(%deployment, revision = %context.assignment.revision_id, "starting the lifecycle");
    // Bounded: one pass over a fixed list of seven events.
    for index in 0..record.events.len() {
        if record.events[index].status != LifecycleEventStatus::Pending {
            continue;
        }
        if *cancelled.borrow_and_update() {
            let now = node.clock().now();
            record.events[index].status = LifecycleEventStatus::Skipped;
            record.events[index].end_time = Some(now);
            skip_rest(&mut record.events);
            record.status = TargetStatus::Failed;
            info!(%deployment, "stopped before {}", record.events[index].lifecycle_event_name);
            break;
        }
        let name = record.events[index].lifecycle_event_name.clone();
        record.events[index].status = LifecycleEventStatus::InProgress;
        record.events[index].start_time = Some(node.clock().now());
        record.running = Some(name.clone());
        if let Err(error) = backend.journal().save(&record) {
            // Without a durable journal, crash safety is gone: refuse to run the event.
            record.events[index].status = LifecycleEventStatus::Failed;
            record.events[index].diagnostics = Some(unknown_error(format!("cannot write the agent journal: {error}")));
            record.running = None;
            skip_rest(&mut record.events);
            record.status = TargetStatus::Failed;
            break;
        }
        agent.reports.push(report_of(&mut record, node));
        let outcome: EventOutcome = match name.as_str() {
            "DownloadBundle" => backend.download_bundle(node, &context).await,
            "Install" => backend.install(node, &context).await,
            event => backend.run_hooks(node, &context, event).await,
        };
        let event = &mut record.events[index];
        event.end_time = Some(node.clock().now());
        record.running = None;
        let ignored =
            !outcome.succeeded && name == "ApplicationStop" && context.assignment.ignore_application_stop_failures;
        if outcome.succeeded || ignored {
            event.status = LifecycleEventStatus::Succeeded;
            let mut diagnostics = outcome.diagnostics;
            if ignored {
                diagnostics.message =
                    format!("failure ignored (--ignore-application-stop-failures): {}", diagnostics.message);
            }
            event.diagnostics = Some(diagnostics);
        } else {
            event.status = LifecycleEventStatus::Failed;
            event.diagnostics = Some(outcome.diagnostics);
            skip_rest(&mut record.events);
            record.status = TargetStatus::Failed;
        }
        if record.status == TargetStatus::Failed {
            break;
        }
        // No save or report here: the next event's start (or the end of the run, right
        // below) saves and reports this event's end in the same record, microseconds
        // later, so a target costs one durable save per event instead of two. A crash in
        // between finds this event still marked running and reports it failed, as for a
        // crash during the event.
    }
    if record.status == TargetStatus::InProgress {
        record.status = TargetStatus::Succeeded;
    }
    let report = report_of(&mut record, node);
    if let Err(error) = backend.journal().save(&record) {
        warn!(%error, %deployment, "cannot record the end of the lifecycle");
    }
    info!(%deployment, status = ?record.status, "lifecycle finished");
    agent.reports.push(report);
    backend.finished(&context, record.status);
}
