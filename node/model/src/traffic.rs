//! fleetmesh's traffic routes (no CodeDeploy counterpart; AWS's would be an ELB target
//! group): `CreateRoute`, `GetRoute`, `ListRoutes`, `DeleteRoute`, `SetRouteTargets`,
//! and [`RouteInfo`], the one shape of a route that `get-route --json` prints, a
//! `--command` router gets on stdin and routers get in their poll answers.

use std::collections::BTreeMap;

use fleetmesh_state::model::routes::{Route, TrafficState};
use fleetmesh_state::{ClusterState, NodeId};
use serde::{Deserialize, Serialize};

/// `CreateRoute`: a route without targets (give them with `SetRouteTargets`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[serde(deny_unknown_fields)]
pub struct CreateRouteInput {
    /// Name: 1–100 characters of `[A-Za-z0-9._+=,@-]`.
    pub route_name: String,
    /// Port every router listens on, 1–65535, unique among the cluster's routes.
    pub listen_port: u32,
    /// Port the targets serve on, 1–65535.
    pub target_port: u32,
    /// The router nodes: members whose tags hold every pair (1–10 pairs).
    pub router_tags: BTreeMap<String, String>,
    /// Seconds open connections to a draining target may continue, 0–3600 (default 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_seconds: Option<u32>,
    /// Instead of proxying, routers run this program (an absolute path on the router
    /// nodes) with the route's [`RouteInfo`] JSON on stdin after every change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
}

/// `GetRoute` and `DeleteRoute`: a route by name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[serde(deny_unknown_fields)]
pub struct RouteNameInput {
    /// The route.
    pub route_name: String,
}

/// `ListRoutes` takes nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListRoutesInput {}

/// One target as `SetRouteTargets` takes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[serde(deny_unknown_fields)]
pub struct RouteTargetInput {
    /// The target host's node id.
    pub target_id: NodeId,
    /// Relative share of new connections, 0–1000 (0: no new connections).
    pub weight: u32,
    /// `serving` (default), `draining` or `blocked`.
    #[serde(default = "serving")]
    pub state: TrafficState,
}

fn serving() -> TrafficState {
    TrafficState::Serving
}

/// `SetRouteTargets`: replaces all of a route's targets (an operator's manual override).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[serde(deny_unknown_fields)]
pub struct SetRouteTargetsInput {
    /// The route.
    pub route_name: String,
    /// The targets, at most 1000, each node once.
    pub targets: Vec<RouteTargetInput>,
}

/// A route's target, resolved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteTargetInfo {
    /// The target host's node id.
    pub target_id: NodeId,
    /// Where routers connect: the host's advertised IP and the route's target port
    /// (`IP:PORT`, `[IPv6]:PORT`); empty when the node is no longer a member or has no
    /// usable address (routers skip it).
    pub address: String,
    /// Relative share of new connections: the target's own weight (0–1000), or while a
    /// canary or linear blue/green deployment shifts the route (`trafficSplit`), the
    /// weight routers use for it, the open targets' weights summing to 100,000.
    pub weight: u32,
    /// `serving`, `draining` or `blocked`.
    pub state: TrafficState,
}

/// A route, as `GetRoute` answers and `get-route --json` prints it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteInfo {
    /// Name.
    pub route_name: String,
    /// Port the routers listen on.
    pub listen_port: u16,
    /// Port of the targets.
    pub target_port: u16,
    /// The members that route it now (their tags match `routerTags`), in id order.
    pub routers: Vec<NodeId>,
    /// The targets, in the order they were set.
    pub targets: Vec<RouteTargetInfo>,
    /// The router selector.
    pub router_tags: BTreeMap<String, String>,
    /// Seconds open connections to a draining target may continue.
    pub drain_seconds: u32,
    /// The program routers run instead of proxying, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Routers that cannot serve the route (a listen port in use), as their polls
    /// reported it to the leader; only in `GetRoute`'s answer, left out while none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub router_errors: Vec<RouterError>,
    /// Who created it (audit, see docs/security.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// Who last set its targets by hand (audit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targets_set_by: Option<String>,
    /// The route's change counter (1 when created, one more per `SetRouteTargets` and
    /// per traffic event on it): a `--command` router reports the version it ran its
    /// program on. Left
    /// out while 0 (a route from before the counter, or a leader of an older release).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub version: u64,
    /// A canary or linear blue/green deployment shifting this route now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_split: Option<RouteSplitInfo>,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

/// A router that cannot serve a route.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouterError {
    /// The router node.
    pub node_id: NodeId,
    /// Why, e.g. `cannot listen on 10.0.0.5:80: Address already in use (os error 98)`.
    pub error: String,
}

impl RouteInfo {
    /// `route` with its routers and its targets' addresses resolved in `state`.
    pub fn from_state(route: &Route, state: &ClusterState) -> Self {
        let spec = &route.spec;
        let split = state.traffic_split(&spec.route_name);
        let targets = route
            .targets
            .iter()
            .zip(state.effective_weights(route))
            .map(|(target, weight)| RouteTargetInfo {
                target_id: target.target_id,
                address: state
                    .members
                    .get(&target.target_id)
                    .map(|member| member.address())
                    // A member recorded with a wildcard listen address and no advertised
                    // one (it joined before level 8) cannot be reached: no address.
                    .filter(|address| !address.is_unspecified())
                    .map(|address| std::net::SocketAddr::new(address, spec.target_port).to_string())
                    .unwrap_or_default(),
                weight,
                state: target.state,
            })
            .collect();
        Self {
            route_name: spec.route_name.clone(),
            listen_port: spec.listen_port,
            target_port: spec.target_port,
            routers: state.routers_of(route),
            targets,
            router_tags: spec.router_tags.clone(),
            drain_seconds: spec.drain_seconds,
            command: spec.command.clone(),
            router_errors: Vec::new(),
            created_by: route.created_by.as_ref().map(ToString::to_string),
            targets_set_by: route.targets_set_by.as_ref().map(ToString::to_string),
            version: route.version,
            traffic_split: split.map(|split| RouteSplitInfo {
                deployment_id: split.deployment_id.to_string(),
                green_percent: split.green_percent,
            }),
        }
    }
}

/// A route's split between a blue/green deployment's two fleets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteSplitInfo {
    /// The deployment.
    pub deployment_id: String,
    /// Green's percentage of new connections.
    pub green_percent: u32,
}

/// `ListRoutes`'s answer, by name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListRoutesOutput {
    /// Every route.
    pub routes: Vec<RouteInfo>,
}
