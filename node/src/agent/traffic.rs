//! `BlockTraffic` and `AllowTraffic` on an agent: the leader changes the routes
//! ([`Request::Traffic`]); the agent waits for the answer, retrying across leader
//! changes, and after a block waits out the drain time so open connections finish
//! before `ApplicationStop` runs.
//!
//! ```text
//!  sequencer ─RunEvent BlockTraffic─▶ run ─Request::Traffic─▶ leader ─SetTargetTraffic─▶ Raft
//!                                      ▲                        │
//!                                      └── Traffic{drain} ◀─────┘   then sleep drain + margin
//! ```

use std::sync::Arc;
use std::time::Duration;

use fleetmesh_state::model::deployment::{Diagnostics, LifecycleErrorCode};
use fleetmesh_state::TargetReport;
use fleetmesh_transport::Peer;
use tracing::{debug, info};

use super::backend::TargetContext;
use super::hooks::EventOutcome;
use crate::runtime::protocol::{Request, Response, TrafficRequest};
use crate::runtime::Node;

/// How long an agent keeps asking (a leader change takes seconds; a cluster without a
/// leader this long fails the event rather than hang the deployment).
const TRAFFIC_EVENT_TIMEOUT: Duration = Duration::from_secs(300);

/// One attempt's wait for the leader's answer (it commits one entry).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// First and longest pause between attempts.
const RETRY_DELAY: Duration = Duration::from_millis(100);
const RETRY_DELAY_MAX: Duration = Duration::from_secs(2);

/// Added to a block's drain time: routers learn a change from their held poll, within
/// a round trip of the commit; this covers one that was busy or between polls.
const PROPAGATION_MARGIN: Duration = Duration::from_millis(500);

/// Runs `BlockTraffic` (`allow` false) or `AllowTraffic` for `context`'s target.
/// `report` is the target's latest report, committed with the change.
pub(super) async fn run(
    node: &Arc<Node>,
    context: &TargetContext,
    allow: bool,
    report: Option<TargetReport>,
) -> EventOutcome {
    let assignment = &context.assignment;
    let routes = assignment.traffic_routes.join(", ");
    let request = || TrafficRequest { deployment_id: assignment.deployment_id.clone(), allow, report: report.clone() };
    let give_up = tokio::time::Instant::now() + TRAFFIC_EVENT_TIMEOUT;
    let mut delay = RETRY_DELAY;
    let mut last_problem = String::from("no leader answered");
    let drain_seconds = loop {
        if let Some(reason) = context.interrupt.reason() {
            return failed(format!("not done: {reason}"));
        }
        if tokio::time::Instant::now() >= give_up {
            return failed(format!(
                "the leader did not confirm the change to route(s) {routes} in {} s: {last_problem}",
                TRAFFIC_EVENT_TIMEOUT.as_secs()
            ));
        }
        let leader = if node.is_leader() {
            Some(Peer { id: node.id(), addr: node.settings().listen })
        } else {
            node.leader_hint().filter(|hint| hint.id != node.id()).map(|hint| hint.peer())
        };
        if let Some(leader) = leader {
            match node.call(leader, Request::Traffic(request()), ATTEMPT_TIMEOUT).await {
                Ok((Response::Traffic { drain_seconds }, _)) => break drain_seconds,
                Ok((Response::TrafficRefused(message), _)) => {
                    return failed(format!("the cluster refused the change to route(s) {routes}: {message}"))
                }
                Ok((other, _)) => last_problem = format!("{other:?}"),
                Err(error) => last_problem = error.to_string(),
            }
        }
        debug!(deployment = %assignment.deployment_id, problem = %last_problem, "traffic change not confirmed yet; retrying");
        tokio::select! {
            reason = context.interrupt.wait() => return failed(format!("not done: {reason}")),
            () = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(RETRY_DELAY_MAX);
    };
    if allow {
        info!(deployment = %assignment.deployment_id, %routes, "traffic allowed");
        return succeeded(format!("serving on route(s) {routes}"));
    }
    let drain = Duration::from_secs(u64::from(drain_seconds)) + PROPAGATION_MARGIN;
    info!(deployment = %assignment.deployment_id, %routes, drain_seconds, "traffic blocked; draining");
    tokio::select! {
        reason = context.interrupt.wait() => failed(format!("stopped while draining: {reason}")),
        () = tokio::time::sleep(drain) => succeeded(format!(
            "taken off route(s) {routes}; open connections had {drain_seconds} s to finish"
        )),
    }
}

fn succeeded(message: String) -> EventOutcome {
    EventOutcome { succeeded: true, diagnostics: diagnostics(LifecycleErrorCode::Success, message) }
}

fn failed(message: String) -> EventOutcome {
    EventOutcome { succeeded: false, diagnostics: diagnostics(LifecycleErrorCode::UnknownError, message) }
}

fn diagnostics(error_code: LifecycleErrorCode, message: String) -> Diagnostics {
    Diagnostics { error_code, script_name: String::new(), message, log_tail: String::new() }
}
