//! The built-in traffic router: every node whose tags match a route's router selector
//! serves that route. In proxy mode it listens on `<advertised IP>:<listen port>` and
//! proxies TCP to the route's targets by weight (`proxy.rs`, choices in `pick.rs`); in
//! `--command` mode it runs the route's program with the route's JSON after every change
//! instead (`command.rs`), and answers agents asking how its latest run went
//! (`outcomes.rs`, the [`Family::Router`](crate::runtime::Family) service).
//!
//! Routers learn their routes the way agents learn their deployments: from the leader's
//! poll answers (agents hold no replicated state), which carry the routes a node serves
//! with its targets' addresses resolved and change as soon as a route command commits.
//! The agent's poll loop publishes them on the node ([`Node::publish_routes`]); this
//! layer subscribes and reconciles: one task per route, started, updated in place (new
//! targets, weights, states) or stopped (route deleted, or the node no longer matches).
//!
//! ```text
//!  leader poll answer ─▶ agent ─▶ Node::publish_routes ─▶ watch ─▶ Router::run
//!     reconcile: route new → spawn proxy::run / command::run; changed → send; gone → abort
//! ```
//!
//! Owns no replicated state and nothing on disk; a restarted router learns its routes
//! from its first poll answer.

mod command;
mod outcomes;
mod pick;
mod proxy;
// The splice relay measured in docs/benchmarks.md is withdrawn from production: with it,
// a draining connection was sometimes closed before its drain time (e2e traffic, 1 run
// in 4 failed; 8 of 8 passed with tokio's copy). Kept with its tests until that is found.
#[cfg(test)]
#[allow(dead_code)]
mod relay;

pub use proxy::serve_listener;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use fleetmesh_model::RouteInfo;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tracing::info;

use self::outcomes::CommandOutcomes;
use crate::runtime::Node;

/// How a route is served here; a route whose mode changes is restarted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Proxy on this listen port.
    Proxy(u16),
    /// Run the route's program.
    Command,
}

impl Mode {
    fn of(route: &RouteInfo) -> Self {
        if route.command.is_some() {
            Self::Command
        } else {
            Self::Proxy(route.listen_port)
        }
    }
}

/// One route being served: its latest state and the task serving it, aborted (with
/// its listener and connections) when this is dropped.
struct Served {
    mode: Mode,
    route: watch::Sender<Arc<RouteInfo>>,
    task: JoinHandle<()>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The router of one node.
pub struct Router;

impl Router {
    /// Starts following `node`'s routes in `tasks`, and registers the service that
    /// tells agents how this node's route commands ran.
    pub fn start(node: &Arc<Node>, tasks: &mut JoinSet<()>) {
        let outcomes = Arc::new(CommandOutcomes::default());
        outcomes::register(node, &outcomes);
        tasks.spawn(run(node.clone(), outcomes));
    }
}

/// Follows the node's routes until shutdown.
async fn run(node: Arc<Node>, outcomes: Arc<CommandOutcomes>) {
    let mut routes = node.routes();
    let mut shutdown = node.shutdown_signal();
    let address = node.settings().advertise;
    let mut served = BTreeMap::new();
    // Until shutdown; one reconcile per change of the routes.
    loop {
        let wanted = routes.borrow_and_update().clone();
        node.retain_route_errors(|name| wanted.iter().any(|route| route.route_name == name));
        reconcile(&mut served, &wanted, address, &node, &outcomes);
        tokio::select! {
            _ = shutdown.changed() => return,
            changed = routes.changed() => if changed.is_err() { return },
        }
    }
}

/// Makes `served` match `wanted`: stops what is gone, updates what changed in place,
/// starts what is new or changed mode (listen port or command).
fn reconcile(
    served: &mut BTreeMap<String, Served>,
    wanted: &[RouteInfo],
    address: IpAddr,
    node: &Arc<Node>,
    outcomes: &Arc<CommandOutcomes>,
) {
    // An outcome is the latest run of a program this router still runs for the route.
    outcomes.retain(|name| wanted.iter().any(|route| route.route_name == name && Mode::of(route) == Mode::Command));
    served.retain(|name, _| {
        let keep = wanted.iter().any(|route| &route.route_name == name);
        if !keep {
            info!(route = %name, "no longer routing this route here");
        }
        keep
    });
    for route in wanted {
        let mode = Mode::of(route);
        match served.get(&route.route_name) {
            Some(current) if current.mode == mode => {
                current.route.send_if_modified(|old| {
                    let changed = **old != *route;
                    if changed {
                        *old = Arc::new(route.clone());
                    }
                    changed
                });
            }
            _ => {
                // The old task (another mode or port) is aborted before the new one starts.
                served.remove(&route.route_name);
                let (sender, receiver) = watch::channel(Arc::new(route.clone()));
                let task = match mode {
                    Mode::Proxy(_) => tokio::spawn(proxy::run(receiver, address, node.clone())),
                    Mode::Command => tokio::spawn(command::run(receiver, outcomes.clone())),
                };
                served.insert(route.route_name.clone(), Served { mode, route: sender, task });
            }
        }
    }
}
