//! `BlockTraffic` and `AllowTraffic` on an agent: the leader changes the routes
//! ([`Request::Traffic`]); the agent waits for the answer, retrying across leader
//! changes. On `--command` routes it then asks every router of the route how its latest
//! run of the route's program went, until each has run it on the change (or a later
//! one) with exit status 0; a failed run fails the event ([`command_wait`]). After a
//! block it waits out the drain time so open connections finish before
//! `ApplicationStop` runs.
//!
//! ```text
//!  sequencer ─RunEvent BlockTraffic─▶ run ─Request::Traffic─▶ leader ─SetTargetTraffic─▶ Raft
//!                                      ▲                        │
//!                                      └── Traffic{drain, command routes} ◀─┘
//!   command routes: ─RouteCommandOutcome─▶ each router, until CommandWait decides
//!   then (block) sleep drain + margin
//! ```

use std::sync::Arc;
use std::time::Duration;

use fleetmesh_state::model::deployment::{Diagnostics, LifecycleErrorCode};
use fleetmesh_state::TargetReport;
use fleetmesh_transport::{NodeId, Peer};
use tokio::task::JoinSet;
use tracing::{debug, info};

use super::backend::TargetContext;
use super::command_wait::{self, CommandWait, RouterAskError, Verdict};
use super::hooks::EventOutcome;
use crate::runtime::protocol::{CommandRouteWait, Request, Response, RouteCommandOutcome, TrafficRequest};
use crate::runtime::Node;

/// How long an agent keeps asking (a leader change takes seconds; a cluster without a
/// leader this long fails the event rather than hang the deployment).
const TRAFFIC_EVENT_TIMEOUT: Duration = Duration::from_secs(300);

/// Longest a block waits while an ELBv2 target group drains the host (the leader answers
/// [`Response::TrafficDraining`] meanwhile): AWS's deregistration delay is at most an
/// hour.
const ELBV2_DRAIN_MAX: Duration = Duration::from_secs(3600);

/// One attempt's wait for the leader's answer (it commits one entry).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// First and longest pause between attempts.
const RETRY_DELAY: Duration = Duration::from_millis(100);
const RETRY_DELAY_MAX: Duration = Duration::from_secs(2);

/// Added to a block's drain time: routers learn a change from their held poll, within
/// a round trip of the commit; this covers one that was busy or between polls.
const PROPAGATION_MARGIN: Duration = Duration::from_millis(500);

/// One question to a router about its route command (it answers from memory).
const ROUTER_ASK_TIMEOUT: Duration = Duration::from_secs(2);

/// Pause between rounds of questions to the routers of command routes (a program such
/// as an nginx reload takes tens of milliseconds).
const ROUTER_ASK_INTERVAL: Duration = Duration::from_millis(200);

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
    let request = TrafficRequest { deployment_id: assignment.deployment_id.clone(), allow, report };
    let (drain_seconds, command_routes) = match ask_leader(node, context, &request).await {
        Ok(answer) => answer,
        Err(outcome) => return outcome,
    };
    let mut confirmed = String::new();
    if !command_routes.is_empty() {
        match wait_for_commands(node, context, &command_routes).await {
            Ok(summary) => confirmed = format!("; {summary}"),
            Err(outcome) => return outcome,
        }
    }
    if allow {
        info!(deployment = %assignment.deployment_id, %routes, "traffic allowed");
        return succeeded(format!("serving on route(s) {routes}{confirmed}"));
    }
    let drain = Duration::from_secs(u64::from(drain_seconds)) + PROPAGATION_MARGIN;
    info!(deployment = %assignment.deployment_id, %routes, drain_seconds, "traffic blocked; draining");
    tokio::select! {
        reason = context.interrupt.wait() => failed(format!("stopped while draining: {reason}")),
        () = tokio::time::sleep(drain) => succeeded(format!(
            "taken off route(s) {routes}; open connections had {drain_seconds} s to finish{confirmed}"
        )),
    }
}

/// Asks the leader to commit `request` until it answers, refuses, or the event's time
/// is up: the routes' longest drain time and the command routes to wait for.
async fn ask_leader(
    node: &Arc<Node>,
    context: &TargetContext,
    request: &TrafficRequest,
) -> Result<(u32, Vec<CommandRouteWait>), EventOutcome> {
    let assignment = &context.assignment;
    let routes = assignment.traffic_routes.join(", ");
    let started = tokio::time::Instant::now();
    let mut give_up = started + TRAFFIC_EVENT_TIMEOUT;
    let mut delay = RETRY_DELAY;
    let mut last_problem = String::from("no leader answered");
    // Bounded by TRAFFIC_EVENT_TIMEOUT (ELBV2_DRAIN_MAX while a target group drains).
    loop {
        if let Some(reason) = context.interrupt.reason() {
            return Err(failed(format!("not done: {reason}")));
        }
        if tokio::time::Instant::now() >= give_up {
            return Err(failed(format!(
                "the leader did not confirm the change to route(s) {routes} in {} s: {last_problem}",
                started.elapsed().as_secs()
            )));
        }
        let leader = if node.is_leader() {
            Some(Peer { id: node.id(), addr: node.settings().listen })
        } else {
            node.leader_hint().filter(|hint| hint.id != node.id()).map(|hint| hint.peer())
        };
        if let Some(leader) = leader {
            match node.call(leader, Request::Traffic(request.clone()), ATTEMPT_TIMEOUT).await {
                Ok((Response::Traffic { drain_seconds, command_routes }, _)) => {
                    return Ok((drain_seconds, command_routes))
                }
                Ok((Response::TrafficRefused(message), _)) => {
                    return Err(failed(format!("the cluster refused the change to route(s) {routes}: {message}")))
                }
                Ok((Response::TrafficDraining(message), _)) => {
                    // The leader answers: the wait is for AWS, not for a leader.
                    let now = tokio::time::Instant::now();
                    give_up = (now + TRAFFIC_EVENT_TIMEOUT).min(started + ELBV2_DRAIN_MAX).max(give_up);
                    last_problem = message;
                }
                Ok((other, _)) => last_problem = format!("{other:?}"),
                Err(error) => last_problem = error.to_string(),
            }
        }
        debug!(deployment = %assignment.deployment_id, problem = %last_problem, "traffic change not confirmed yet; retrying");
        tokio::select! {
            reason = context.interrupt.wait() => return Err(failed(format!("not done: {reason}"))),
            () = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(RETRY_DELAY_MAX);
    }
}

/// Asks the routers of `waits` until [`CommandWait`] decides: what they confirmed, or
/// the failed event.
async fn wait_for_commands(
    node: &Arc<Node>,
    context: &TargetContext,
    waits: &[CommandRouteWait],
) -> Result<String, EventOutcome> {
    let mut wait = CommandWait::new(waits, std::time::Instant::now(), command_wait::COMMAND_WAIT_TIMEOUT);
    // Bounded by COMMAND_WAIT_TIMEOUT: the verdict fails the event at the deadline.
    loop {
        let mut asks = JoinSet::new();
        for (route, router) in wait.to_ask() {
            let node = node.clone();
            asks.spawn(async move {
                let answer = ask_router(&node, &route, router).await;
                (route, router, answer)
            });
        }
        while let Some(joined) = asks.join_next().await {
            if let Ok((route, router, answer)) = joined {
                wait.handle_answer(&route, router, answer);
            }
        }
        match wait.verdict(std::time::Instant::now()) {
            Verdict::Succeeded(summary) => return Ok(summary),
            Verdict::Failed(diagnostics) => return Err(EventOutcome { succeeded: false, diagnostics }),
            Verdict::Waiting => {}
        }
        tokio::select! {
            reason = context.interrupt.wait() => return Err(failed(format!("not done: {reason}"))),
            () = tokio::time::sleep(ROUTER_ASK_INTERVAL) => {}
        }
    }
}

/// `router`'s latest finished run of `route`'s program, or why it did not say.
async fn ask_router(
    node: &Arc<Node>,
    route: &str,
    router: NodeId,
) -> Result<Option<RouteCommandOutcome>, RouterAskError> {
    let address = if router == node.id() {
        Some(node.settings().listen)
    } else {
        node.read_directory(|directory| directory.members.get(&router).map(|member| member.listen)).or_else(|| {
            node.member_addresses().into_iter().find(|member| member.id == router).map(|member| member.listen)
        })
    };
    let address = address.ok_or(RouterAskError::NoAddress(router))?;
    let request = Request::RouteCommandOutcome { route_name: route.to_string() };
    match node.call(Peer { id: router, addr: address }, request, ROUTER_ASK_TIMEOUT).await? {
        (Response::RouteCommandOutcome(outcome), _) => Ok(outcome),
        (other, _) => Err(RouterAskError::Unexpected(format!("{other:?}"))),
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
