//! The decision of a traffic event on `--command` routes, without I/O: has every router
//! of every command route run the route's program on the event's change (or a later
//! one) with exit status 0, did one fail, or is the time up?
//!
//! The shell (`traffic.rs`) builds a [`CommandWait`] from the leader's answer, asks the
//! routers in [`CommandWait::to_ask`] how their latest run went, feeds each answer to
//! [`CommandWait::handle_answer`], and asks [`CommandWait::verdict`] until it is not
//! [`Verdict::Waiting`]:
//!
//! ```text
//!  leader's CommandRouteWaits ─▶ new ─▶ to_ask ─▶ (shell asks routers) ─▶ handle_answer
//!                                         ▲                                   │
//!                                         └──── Waiting ◀── verdict(now) ◀────┘
//!                                                  Succeeded(summary) | Failed(diagnostics)
//! ```
//!
//! Rules, in order: a router that ran the program on the wanted version or a later one
//! and exited non-zero fails the event at once (the first such answer wins); the event
//! succeeds once every router confirmed a successful run on the wanted version or a
//! later one; at the deadline it fails naming the routers that did not confirm and why.
//! A run on an older version, no run yet, or no answer keep the router pending. A route
//! with no router to wait for (none matches its tags, or all are down) is confirmed by
//! nobody and does not hold the event; the summary says so.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use fleetmesh_state::model::deployment::{Diagnostics, LifecycleErrorCode};
use fleetmesh_transport::NodeId;

use crate::runtime::protocol::{CommandRouteWait, RouteCommandOutcome, RpcError};

/// How long a traffic event waits for the routers of its command routes (a router
/// learns the change within a held poll's round trip and its program may take up to
/// 60 s, the router's own limit; twice that leaves room for a run already under way).
pub(super) const COMMAND_WAIT_TIMEOUT: Duration = Duration::from_secs(120);

/// Why a router did not say how its latest run went.
#[derive(Debug, thiserror::Error)]
pub(super) enum RouterAskError {
    /// This node knows no address of the router.
    #[error("node {0}'s address is unknown here")]
    NoAddress(NodeId),
    /// The question or its answer did not get through (a router of an older release
    /// refuses the question).
    #[error(transparent)]
    Rpc(#[from] RpcError),
    /// The router answered something else.
    #[error("unexpected answer {0}")]
    Unexpected(String),
}

/// One router of one route that has not confirmed yet.
#[derive(Debug)]
struct Pending {
    /// The version its run must have started from (or later).
    version: u64,
    /// The route's program, for the diagnostics.
    command: String,
    /// Why it has not confirmed, from its latest answer.
    problem: String,
}

/// What the event does next.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Ask the routers of [`CommandWait::to_ask`] again.
    Waiting,
    /// Every router confirmed; what to say in the event's diagnostics.
    Succeeded(String),
    /// A router's run failed, or time is up.
    Failed(Diagnostics),
}

/// The routers a traffic event still waits for, and how it ends.
#[derive(Debug)]
pub(super) struct CommandWait {
    /// By (route, router); shrinks as routers confirm.
    pending: BTreeMap<(String, NodeId), Pending>,
    /// Routers that confirmed, by route, in the order they did.
    confirmed: BTreeMap<String, Vec<NodeId>>,
    /// Routers not waited for because the leader holds them down, by route.
    unwaited: BTreeMap<String, Vec<NodeId>>,
    /// The first failed run on a wanted version.
    failure: Option<Diagnostics>,
    /// When the event fails if routers are still pending.
    deadline: Instant,
}

impl CommandWait {
    /// Waits for every router of `waits`, until `now + timeout`.
    pub(super) fn new(waits: &[CommandRouteWait], now: Instant, timeout: Duration) -> Self {
        let mut pending = BTreeMap::new();
        let mut confirmed = BTreeMap::new();
        let mut unwaited = BTreeMap::new();
        for wait in waits {
            confirmed.insert(wait.route_name.clone(), Vec::new());
            if !wait.routers_down.is_empty() {
                unwaited.insert(wait.route_name.clone(), wait.routers_down.clone());
            }
            for router in &wait.routers {
                let entry = Pending {
                    version: wait.version,
                    command: wait.command.clone(),
                    problem: "not asked yet".to_string(),
                };
                pending.insert((wait.route_name.clone(), *router), entry);
            }
        }
        let wait = Self { pending, confirmed, unwaited, failure: None, deadline: now + timeout };
        wait.check_invariants();
        wait
    }

    /// The (route, router) pairs to ask now, in route then router order.
    pub(super) fn to_ask(&self) -> Vec<(String, NodeId)> {
        if self.failure.is_some() {
            return Vec::new();
        }
        self.pending.keys().cloned().collect()
    }

    /// Takes `router`'s answer about `route`: its latest finished run (`None`: none
    /// yet), or why it did not answer. An answer for a pair not pending is ignored.
    pub(super) fn handle_answer(
        &mut self,
        route: &str,
        router: NodeId,
        answer: Result<Option<RouteCommandOutcome>, RouterAskError>,
    ) {
        let key = (route.to_string(), router);
        let Some(entry) = self.pending.get_mut(&key) else { return };
        match answer {
            Err(problem) => entry.problem = format!("no answer: {problem}"),
            Ok(None) => entry.problem = "has not finished a run of the command yet".to_string(),
            Ok(Some(run)) if run.route_version < entry.version => {
                entry.problem = format!("last ran it on version {}, not yet on {}", run.route_version, entry.version);
            }
            Ok(Some(run)) if run.succeeded => {
                self.pending.remove(&key);
                self.confirmed.entry(key.0).or_default().push(router);
            }
            Ok(Some(run)) => {
                if self.failure.is_none() {
                    self.failure = Some(Diagnostics {
                        error_code: LifecycleErrorCode::ScriptFailed,
                        script_name: entry.command.clone(),
                        message: format!(
                            "the command of route {route} failed on router node {router} (route version {}): {}",
                            run.route_version, run.status
                        ),
                        log_tail: run.output_tail,
                    });
                }
            }
        }
        self.check_invariants();
    }

    /// How the event stands at `now`.
    pub(super) fn verdict(&self, now: Instant) -> Verdict {
        if let Some(failure) = &self.failure {
            return Verdict::Failed(failure.clone());
        }
        if self.pending.is_empty() {
            return Verdict::Succeeded(self.summary());
        }
        if now < self.deadline {
            return Verdict::Waiting;
        }
        let missing: Vec<String> = self
            .pending
            .iter()
            .map(|((route, router), entry)| format!("route {route} on router node {router} ({})", entry.problem))
            .collect();
        Verdict::Failed(Diagnostics {
            error_code: LifecycleErrorCode::UnknownError,
            script_name: String::new(),
            message: format!(
                "routers did not confirm a successful run of the route command within {} s: {}",
                COMMAND_WAIT_TIMEOUT.as_secs(),
                missing.join("; ")
            ),
            log_tail: String::new(),
        })
    }

    /// What the routers confirmed, per route, for a successful event's diagnostics.
    fn summary(&self) -> String {
        let nodes = |ids: &[NodeId]| ids.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
        let parts: Vec<String> = self
            .confirmed
            .iter()
            .map(|(route, routers)| {
                let mut part = if routers.is_empty() {
                    format!("route {route}'s command ran on no router")
                } else {
                    format!("route {route}'s command succeeded on router node(s) {}", nodes(routers))
                };
                if let Some(down) = self.unwaited.get(route).filter(|down| !down.is_empty()) {
                    part.push_str(&format!(" (not waited for, down: node(s) {})", nodes(down)));
                }
                part
            })
            .collect();
        parts.join("; ")
    }

    /// A router is pending or confirmed for a route, never both.
    fn check_invariants(&self) {
        debug_assert!(self
            .pending
            .keys()
            .all(|(route, router)| { self.confirmed.get(route).is_some_and(|confirmed| !confirmed.contains(router)) }));
    }
}

#[cfg(test)]
mod tests;
