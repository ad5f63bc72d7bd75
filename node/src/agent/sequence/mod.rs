//! The in-place lifecycle of one target, in CodeDeploy's order (§2.2): ApplicationStop,
//! DownloadBundle, BeforeInstall, Install, AfterInstall, ApplicationStart,
//! ValidateService; with traffic control the block events come first and the allow
//! events last (`BlockTraffic` and `AllowTraffic` are the leader's, see
//! [`super::traffic`]). The first failure fails the target and skips the rest, except
//! an ApplicationStop (or Before/AfterBlockTraffic) failure under
//! `--ignore-application-stop-failures` (§2.5).
//!
//! The journal is saved (durably) before each event starts and once when the run ends;
//! each save also queues a report for the leader.
//!
//! The decisions are the [`Sequencer`] core's (no I/O); [`run`] is its shell, one task
//! per target, and [`recover`] the journal's recovery when the agent starts (§8.1):
//!
//! ```text
//!  journal record ─┐                      ┌─▶ SaveJournal ─▶ Journal::save ─▶ handle_journal_saved
//!  assignment ─────┼─▶ Sequencer ─poll───▶├─▶ Report ──────▶ report queue
//!  cancel ─────────┘       ▲              ├─▶ RunEvent ────▶ LifecycleBackend ─▶ handle_event_done
//!                          └──────────────└─▶ Finished ────▶ LifecycleBackend::finished
//! ```

mod sequencer;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use fleetmesh_state::TargetReport;
use tokio::sync::watch;
use tracing::warn;

use super::backend::{LifecycleBackend, TargetContext};
use super::{traffic, Agent};
use crate::agent::hooks::EventOutcome;
use crate::runtime::Node;
use sequencer::{Sequencer, SequencerAction};

/// Fails the events that were running when the agent died, and returns the reports to
/// send (§8.1; the decision is [`sequencer::recover`]). A record that cannot be saved is
/// still reported.
pub(super) fn recover(node: &Node, backend: &dyn LifecycleBackend) -> Vec<TargetReport> {
    let mut reports = Vec::new();
    for record in backend.journal().load_all() {
        let Some(recovered) = sequencer::recover(record, node.id(), node.clock().now()) else { continue };
        let deployment = &recovered.record.assignment.deployment_id;
        if let Err(error) = backend.journal().save(&recovered.record) {
            warn!(%error, "cannot record the recovery of {deployment}");
        }
        warn!(%deployment, event = %recovered.interrupted, "recovered an interrupted lifecycle event as failed");
        reports.push(recovered.report);
    }
    reports
}

/// Runs (or resumes, or re-reports) one target: drives a [`Sequencer`] until its run is
/// over. `cancelled` turning true stops the run between events.
pub(super) async fn run(agent: &Arc<Agent>, context: TargetContext, mut cancelled: watch::Receiver<bool>) {
    let node = &agent.node;
    let backend = agent.backend.as_ref();
    let journaled = backend.journal().load(&context.assignment.deployment_id);
    let mut sequencer = Sequencer::new(node.id(), &context.assignment, journaled);
    if *cancelled.borrow_and_update() {
        sequencer.handle_cancelled();
    }
    sequencer.handle_start(node.clock().now());
    // Bounded: the core queues a save and a report per event of a fixed list of seven
    // (thirteen with traffic control), plus the end of the run.
    let mut last_report = None;
    while let Some(action) = sequencer.poll_action() {
        match action {
            SequencerAction::SaveJournal(record) => sequencer.handle_journal_saved(backend.journal().save(&record)),
            SequencerAction::Report(report) => {
                last_report = Some(report.clone());
                agent.reports.push(report);
            }
            SequencerAction::RunEvent { name } => {
                let outcome = match name.as_str() {
                    "BlockTraffic" => traffic::run(node, &context, false, last_report.clone()).await,
                    "AllowTraffic" => traffic::run(node, &context, true, last_report.clone()).await,
                    "ApplicationStop" if is_terminate(&context) => terminate(backend, node, &context).await,
                    _ => run_event(backend, node, &context, &name).await,
                };
                if *cancelled.borrow_and_update() {
                    sequencer.handle_cancelled();
                }
                sequencer.handle_event_done(outcome, node.clock().now());
            }
            SequencerAction::Finished { status } => backend.finished(&context, status),
        }
    }
}

/// True when `context` is a blue target under `TERMINATE`: its events are the block
/// events and then `ApplicationStop`.
fn is_terminate(context: &TargetContext) -> bool {
    let events = &context.assignment.events;
    events.iter().any(|event| event == "AfterBlockTraffic")
        && events.last().is_some_and(|last| last == "ApplicationStop")
}

/// `TERMINATE`'s `ApplicationStop` on a blue host: the last install's script, then its
/// installed files are removed (the node stays a member; fleetmesh deletes no machine).
async fn terminate(backend: &dyn LifecycleBackend, node: &Arc<Node>, context: &TargetContext) -> EventOutcome {
    let mut outcome = run_event(backend, node, context, "ApplicationStop").await;
    if !outcome.succeeded {
        return outcome;
    }
    match backend.remove_installed_files(context) {
        Ok(removed) => {
            tracing::info!(deployment = %context.assignment.deployment_id, removed, "original fleet terminated: installed files removed");
            let note = format!("TERMINATE: removed the {removed} installed path(s) of the last install");
            outcome.diagnostics.message = if outcome.diagnostics.message.is_empty() {
                note
            } else {
                format!("{}; {note}", outcome.diagnostics.message)
            };
        }
        Err(error) => {
            outcome.succeeded = false;
            outcome.diagnostics.error_code = fleetmesh_state::model::deployment::LifecycleErrorCode::UnknownError;
            outcome.diagnostics.message =
                format!("TERMINATE: ApplicationStop ran, but removing the installed files failed: {error}");
        }
    }
    outcome
}

/// Runs lifecycle event `name` on the host.
async fn run_event(
    backend: &dyn LifecycleBackend,
    node: &Arc<Node>,
    context: &TargetContext,
    name: &str,
) -> EventOutcome {
    match name {
        "DownloadBundle" => backend.download_bundle(node, context).await,
        "Install" => backend.install(node, context).await,
        event => backend.run_hooks(node, context, event).await,
    }
}
