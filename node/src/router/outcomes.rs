//! The latest finished run of each `--command` route's program on this router, and the
//! [`Family::Router`] service that tells agents about them: an agent at `BlockTraffic`
//! or `AllowTraffic` asks every router of its command routes until each has run the
//! program on the event's change (or a later one).
//!
//! ```text
//!  command::run ─record(route, outcome)─▶ CommandOutcomes ◀─RouteCommandOutcome{route}─ agent
//!  Router reconcile ─retain(served routes)─▶ CommandOutcomes
//! ```
//!
//! Held in memory only: a restarted router runs each program again on the route's
//! latest state (its first poll answer) and reports that run.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use fleetmesh_transport::{BoxFuture, Caller};

use crate::runtime::dispatch::member_of;
use crate::runtime::protocol::{Request, Response, RouteCommandOutcome};
use crate::runtime::{Family, Refusal, Service};

/// The latest outcome per route this router runs a program for; at most one entry per
/// route it serves (bounded by `ROUTES_MAX`), forgotten when it stops serving one.
#[derive(Debug, Default)]
pub(crate) struct CommandOutcomes {
    by_route: Mutex<BTreeMap<String, RouteCommandOutcome>>,
}

impl CommandOutcomes {
    /// Records `route`'s latest finished run, replacing the previous one.
    pub(super) fn record(&self, route: &str, outcome: RouteCommandOutcome) {
        self.by_route.lock().unwrap_or_else(PoisonError::into_inner).insert(route.to_string(), outcome);
    }

    /// Forgets the routes `keep` says this router no longer runs a program for.
    pub(super) fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.by_route.lock().unwrap_or_else(PoisonError::into_inner).retain(|route, _| keep(route));
    }

    /// `route`'s latest finished run, if any.
    pub(super) fn latest(&self, route: &str) -> Option<RouteCommandOutcome> {
        self.by_route.lock().unwrap_or_else(PoisonError::into_inner).get(route).cloned()
    }
}

impl Service for CommandOutcomes {
    fn handle(
        self: Arc<Self>,
        caller: Caller,
        request: Request,
        _payload: Bytes,
    ) -> BoxFuture<'static, Result<(Response, Bytes), Refusal>> {
        Box::pin(async move {
            match (member_of(caller), request) {
                (Some(_), Request::RouteCommandOutcome { route_name }) => {
                    Ok((Response::RouteCommandOutcome(self.latest(&route_name)), Bytes::new()))
                }
                (None, _) => Err(Refusal::Forbidden("only members may ask a router".to_string())),
                (Some(_), other) => Err(Refusal::Malformed(format!("not a router request: {other:?}"))),
            }
        })
    }
}

/// Registers `outcomes` as the node's [`Family::Router`] service.
pub(super) fn register(node: &crate::runtime::Node, outcomes: &Arc<CommandOutcomes>) {
    node.register(Family::Router, outcomes.clone());
}
