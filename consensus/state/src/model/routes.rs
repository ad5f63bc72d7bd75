//! Traffic routes: fleetmesh's own load balancer, as replicated.
//!
//! A route names a listen port, a target port, the nodes that route (a tag selector,
//! every pair must match) and per target a weight and a traffic state. Every router
//! node listens on `<its address>:<listen_port>` and proxies TCP to
//! `<target's address>:<target_port>` (or, with `command`, runs a program with the
//! route instead). The router itself lives in the node (`node/src/router/`); this file
//! holds only the data and its bounds.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ids::UnixMillis;
use crate::NodeId;

/// Drain time of a route when the request names none, in seconds.
pub const DRAIN_SECONDS_DEFAULT: u32 = 30;

/// Longest drain time, in seconds (an hour: longer-lived connections are better
/// closed by the application than held across a deployment).
pub const DRAIN_SECONDS_MAX: u32 = 3600;

/// Largest weight of a target. Weights are relative (a target's share of new
/// connections is its weight over the sum of the serving weights); 0..=1000 lets a
/// canary take 0.1 %.
pub const ROUTE_WEIGHT_MAX: u32 = 1000;

/// Weight a target gets when a deployment first puts it on a route (`AllowTraffic`);
/// a target that had a weight keeps it.
pub const ROUTE_WEIGHT_DEFAULT: u32 = 100;

/// Most targets of one route (each is in every router's poll answer).
pub const ROUTE_TARGETS_MAX: usize = 1000;

/// Most tag pairs of a route's router selector.
pub const ROUTER_TAGS_MAX: usize = 10;

/// Most routes in a cluster (each router's poll answer carries the ones it serves).
pub const ROUTES_MAX: usize = 1000;

/// Longest `command` path, in bytes (Linux's `PATH_MAX` is 4096; a script path is short).
pub const ROUTE_COMMAND_BYTES_MAX: usize = 1024;

/// Whether a target takes new connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrafficState {
    /// Takes new connections in proportion to its weight (none at weight 0).
    Serving,
    /// No new connections; open ones continue until the route's drain time.
    Draining,
    /// No connections at all: open ones are closed at once.
    Blocked,
}

impl TrafficState {
    /// The name the API and CLI use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Serving => "serving",
            Self::Draining => "draining",
            Self::Blocked => "blocked",
        }
    }
}

/// One target of a route.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteTarget {
    /// The target host.
    pub target_id: NodeId,
    /// Relative share of new connections, 0..=[`ROUTE_WEIGHT_MAX`]; 0 takes none
    /// (draining).
    pub weight: u32,
    /// Serving, draining or blocked.
    pub state: TrafficState,
}

impl RouteTarget {
    /// True when the target takes new connections.
    pub fn is_open(&self) -> bool {
        self.state == TrafficState::Serving && self.weight > 0
    }
}

/// What a client asks for when it creates a route.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteSpec {
    /// Name (as resource names: 1–100 of `[A-Za-z0-9._+=,@-]`).
    pub route_name: String,
    /// Port every router listens on, 1..=65535, unique among routes.
    pub listen_port: u16,
    /// Port of the targets, 1..=65535.
    pub target_port: u16,
    /// The router nodes: members whose tags hold every pair (at least one pair).
    pub router_tags: BTreeMap<String, String>,
    /// Seconds open connections to a draining target may continue, 0..=[`DRAIN_SECONDS_MAX`].
    pub drain_seconds: u32,
    /// Instead of proxying, routers run this program with the route's JSON on stdin
    /// after every change (an absolute path on the router nodes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
}

/// A route as the cluster keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Route {
    /// What was asked.
    pub spec: RouteSpec,
    /// The targets, in the order they were set; no node twice.
    pub targets: Vec<RouteTarget>,
    /// When it was created.
    pub create_time: UnixMillis,
    /// When its targets last changed.
    pub update_time: UnixMillis,
    /// Who created it (audit); none when made by the cluster itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<super::members::Actor>,
    /// Who last set its targets by hand (`SetRouteTargets`, audit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targets_set_by: Option<super::members::Actor>,
    /// Counts the entries that touched the route: 1 when created, one more for every
    /// `SetRouteTargets` and every traffic event of a deployment on it (even one that
    /// changes no target). A `--command` router reports the version it ran its program
    /// on, so a traffic event knows when every router has run it on the event's state.
    /// Routes created before this field read as 0 until their next change.
    #[serde(default)]
    pub version: u64,
}

impl Route {
    /// True when a node with `tags` routes this route.
    pub fn is_router(&self, tags: &BTreeMap<String, String>) -> bool {
        self.spec.router_tags.iter().all(|(key, value)| tags.get(key) == Some(value))
    }
}
