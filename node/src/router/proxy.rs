//! One proxied route on this node: listen on `<advertised IP>:<listen port>`, and for
//! each new connection pick a target by weight (`pick.rs`), connect (skipping targets
//! that fail), then copy bytes both ways until either side closes, the target is
//! blocked, or its drain time after it stopped serving runs out.
//!
//! ```text
//!  client ─accept─▶ pick ─connect (1 s each, ≤ 4 targets)─▶ copy_bidirectional
//!                    ▲                                          │ route changes:
//!        route (watch) ─────────────────────────────────────────┘ blocked → close,
//!                                                                 draining/0 → close after drain
//! ```

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use fleetmesh_model::RouteInfo;
use fleetmesh_state::model::routes::TrafficState;
use fleetmesh_state::NodeId;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{debug, error, info};

use super::pick;
use crate::runtime::Node;

/// How long a connect to one target may take before the next target is tried: long
/// enough for a loaded host on the same network, short enough that a client waits at
/// most a few seconds when several targets are down.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Most open connections per route on one router. Each holds two sockets and two 8 KiB
/// copy buffers; a direction that turns bulk swaps its buffer for a pipe (at most
/// `relay::SPLICED_DIRECTIONS_MAX` = 1,024 in the process: 2 file descriptors and up
/// to 64 KiB of kernel pages each while bytes are in flight). So 10,000 cost at most
/// about 160 MiB of buffers + 64 MiB of pipe pages, and 22,048 file descriptors.
/// Beyond it new connections are closed at once.
const CONNECTIONS_MAX: usize = 10_000;

/// Pause before trying again to listen on a port that was taken.
const BIND_RETRY: Duration = Duration::from_secs(1);

/// Pause after a failed accept (out of file descriptors), so the loop does not spin.
const ACCEPT_PAUSE: Duration = Duration::from_millis(50);

/// Routes `route` on `address` until the task is aborted (the route is deleted, its
/// listen port changes, or this node stops routing it) or the sender is dropped.
/// Aborting it drops the listener and every connection.
pub(super) async fn run(mut route: watch::Receiver<Arc<RouteInfo>>, address: IpAddr, node: Arc<Node>) {
    let (name, port) = {
        let info = route.borrow_and_update();
        (info.route_name.clone(), info.listen_port)
    };
    let listen = SocketAddr::new(address, port);
    let Some(listener) = bind(&mut route, listen, &name, &node).await else { return };
    info!(route = %name, %listen, "routing traffic");
    serve_listener(listener, route).await;
}

/// Proxies `route` on an already bound `listener`: accepts clients, picks a target per
/// new connection by the route's latest weights and copies bytes both ways, applying
/// drain and block to open connections as the route changes. Returns when the route's
/// sender is dropped; aborting the task drops the listener and every connection.
///
/// This is what a router node runs once it has bound the route's listen port; it needs
/// no node, so `bench_router` measures this very code in-process.
pub async fn serve_listener(listener: TcpListener, mut route: watch::Receiver<Arc<RouteInfo>>) {
    let name = route.borrow_and_update().route_name.clone();
    let mut connections = JoinSet::new();
    // Until aborted or the route's sender is gone; each pass handles one event.
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((client, _)) if connections.len() < CONNECTIONS_MAX => {
                    connections.spawn(serve(client, route.clone()));
                }
                Ok((client, peer)) => {
                    debug!(route = %name, %peer, "too many open connections; closing a new one");
                    drop(client);
                }
                Err(error) => {
                    debug!(route = %name, %error, "accept failed");
                    tokio::time::sleep(ACCEPT_PAUSE).await;
                }
            },
            Some(_) = connections.join_next() => {}
            changed = route.changed() => if changed.is_err() { return },
        }
    }
}

/// A listener on `listen`, retrying every [`BIND_RETRY`] while the port is taken. The
/// first failure is logged as an error, the recovery once; `None` when the route went
/// away meanwhile.
async fn bind(
    route: &mut watch::Receiver<Arc<RouteInfo>>,
    listen: SocketAddr,
    name: &str,
    node: &Node,
) -> Option<TcpListener> {
    let mut failing = false;
    // Until bound or the route is gone; one try per BIND_RETRY.
    loop {
        match TcpListener::bind(listen).await {
            Ok(listener) => {
                if failing {
                    info!(route = %name, %listen, "the listen port is free again");
                    node.set_route_error(name, None);
                }
                return Some(listener);
            }
            Err(bind_error) => {
                if !failing {
                    error!(
                        route = %name, %listen, error = %bind_error,
                        "cannot listen for route {name} on {listen}: {bind_error}; is another program or route \
                         using the port? Retrying every {BIND_RETRY:?} without logging again"
                    );
                    failing = true;
                    node.set_route_error(name, Some(format!("cannot listen on {listen}: {bind_error}")));
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(BIND_RETRY) => {}
            changed = route.changed() => if changed.is_err() { return None },
        }
    }
}

/// What an open connection to `target` does after a route change.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// The target still serves: keep it (and forget any drain deadline).
    Keep,
    /// Draining, weight 0 or removed from the route: close after the drain time.
    Drain,
    /// Blocked: close now.
    Close,
}

fn verdict(route: &RouteInfo, target: NodeId) -> Verdict {
    match route.targets.iter().find(|candidate| candidate.target_id == target) {
        Some(found) if found.state == TrafficState::Blocked => Verdict::Close,
        Some(found) if found.state == TrafficState::Serving && found.weight > 0 => Verdict::Keep,
        _ => Verdict::Drain,
    }
}

/// Proxies one client connection (see the module's diagram).
async fn serve(mut client: TcpStream, mut route: watch::Receiver<Arc<RouteInfo>>) {
    let info = route.borrow_and_update().clone();
    let Some((target, mut upstream)) = connect(&info, rand::random::<u64>()).await else {
        debug!(route = %info.route_name, "no target accepted the connection; closing it");
        return;
    };
    // Small writes (request lines, RPCs) go out at once; a failure only costs latency.
    let _ = client.set_nodelay(true);
    // The same for the target's side.
    let _ = upstream.set_nodelay(true);
    let copy = tokio::io::copy_bidirectional(&mut client, &mut upstream);
    tokio::pin!(copy);
    let mut drain_until: Option<Instant> = None;
    // Until the copy ends or the target may no longer be served; one pass per change.
    loop {
        let deadline = drain_until;
        tokio::select! {
            _ = &mut copy => return,
            changed = route.changed() => {
                if changed.is_err() {
                    return;
                }
                let info = route.borrow_and_update().clone();
                match verdict(&info, target) {
                    Verdict::Keep => drain_until = None,
                    Verdict::Drain => {
                        let drain = Duration::from_secs(u64::from(info.drain_seconds));
                        drain_until.get_or_insert_with(|| Instant::now() + drain);
                    }
                    Verdict::Close => return,
                }
            }
            () = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => return,
        }
    }
}

/// A connection to the first target of [`pick::order`] that accepts one within
/// [`CONNECT_TIMEOUT`]; `None` when none does.
async fn connect(info: &RouteInfo, roll: u64) -> Option<(NodeId, TcpStream)> {
    for index in pick::order(&info.targets, roll) {
        let target = &info.targets[index];
        let Ok(address) = target.address.parse::<SocketAddr>() else { continue };
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(address)).await {
            Ok(Ok(stream)) => return Some((target.target_id, stream)),
            Ok(Err(error)) => debug!(route = %info.route_name, %address, %error, "target refused; trying the next"),
            Err(_) => debug!(route = %info.route_name, %address, "target did not answer in time; trying the next"),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleetmesh_model::RouteTargetInfo;

    #[test]
    fn open_connections_keep_drain_or_close_by_their_targets_state() {
        let target = |id, weight, state| RouteTargetInfo {
            target_id: NodeId(id),
            address: format!("127.0.0.{id}:80"),
            weight,
            state,
        };
        let route = RouteInfo {
            route_name: "web".into(),
            listen_port: 9000,
            target_port: 80,
            routers: vec![NodeId(1)],
            targets: vec![
                target(1, 10, TrafficState::Serving),
                target(2, 0, TrafficState::Serving),
                target(3, 10, TrafficState::Draining),
                target(4, 10, TrafficState::Blocked),
            ],
            router_tags: Default::default(),
            drain_seconds: 30,
            command: None,
            router_errors: Vec::new(),
            created_by: None,
            targets_set_by: None,
            version: 1,
            traffic_split: None,
        };
        let verdicts: Vec<Verdict> = (1..=5).map(|id| verdict(&route, NodeId(id))).collect();
        assert_eq!(verdicts, [Verdict::Keep, Verdict::Drain, Verdict::Drain, Verdict::Close, Verdict::Drain]);
    }
}
