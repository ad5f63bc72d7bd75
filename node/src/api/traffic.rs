//! The traffic route operations: the writes propose one route command on the leader
//! and answer the route as applied; the reads answer from this node's applied state.

use fleetmesh_model::{
    CreateRouteInput, Empty, ListRoutesOutput, RouteInfo, RouteNameInput, RouterError, SetRouteTargetsInput,
};
use fleetmesh_state::model::members::Actor;
use fleetmesh_state::model::routes::{RouteSpec, RouteTarget, DRAIN_SECONDS_DEFAULT};
use fleetmesh_state::{ClusterState, Command, Outcome};

use super::{Api, ApiError};

/// `CreateRoute`. The input's bounds were checked (`Operation::check`); `apply` checks
/// what depends on the state (name and listen port free).
pub(super) async fn create_route(
    api: &Api,
    input: CreateRouteInput,
    by: Option<&Actor>,
) -> Result<RouteInfo, ApiError> {
    let port = |field: &str, value: u32| {
        u16::try_from(value).ok().filter(|port| *port > 0).ok_or_else(|| ApiError::invalid(field, "not a port"))
    };
    let spec = RouteSpec {
        route_name: input.route_name.clone(),
        listen_port: port("listenPort", input.listen_port)?,
        target_port: port("targetPort", input.target_port)?,
        router_tags: input.router_tags,
        drain_seconds: input.drain_seconds.unwrap_or(DRAIN_SECONDS_DEFAULT),
        command: input.command,
    };
    commit(api, Command::CreateRoute { spec }, by).await?;
    read_route(api, &input.route_name)
}

/// `DeleteRoute`.
pub(super) async fn delete_route(api: &Api, input: RouteNameInput, by: Option<&Actor>) -> Result<Empty, ApiError> {
    commit(api, Command::DeleteRoute { route_name: input.route_name }, by).await?;
    Ok(Empty {})
}

/// `SetRouteTargets`: all of the route's targets at once.
pub(super) async fn set_route_targets(
    api: &Api,
    input: SetRouteTargetsInput,
    by: Option<&Actor>,
) -> Result<RouteInfo, ApiError> {
    let targets = input
        .targets
        .iter()
        .map(|target| RouteTarget { target_id: target.target_id, weight: target.weight, state: target.state })
        .collect();
    commit(api, Command::SetRouteTargets { route_name: input.route_name.clone(), targets }, by).await?;
    read_route(api, &input.route_name)
}

/// `GetRoute`: the route from the leader's applied state, and the errors its routers
/// reported.
pub(super) fn get_route(api: &Api, route_name: &str) -> Result<RouteInfo, ApiError> {
    let mut route = read_route(api, route_name)?;
    route.router_errors = api
        .leader
        .route_errors(route_name)
        .into_iter()
        .map(|(node_id, error)| RouterError { node_id, error })
        .collect();
    Ok(route)
}

/// A route from this node's applied state.
pub(super) fn read_route(api: &Api, route_name: &str) -> Result<RouteInfo, ApiError> {
    api.node.state().read(|state| route_info(state, route_name))
}

/// `ListRoutes`, from this node's applied state.
pub(super) fn list_routes(api: &Api) -> ListRoutesOutput {
    api.node.state().read(|state| ListRoutesOutput {
        routes: state.routes.values().map(|route| RouteInfo::from_state(route, state)).collect(),
    })
}

fn route_info(state: &ClusterState, route_name: &str) -> Result<RouteInfo, ApiError> {
    state
        .routes
        .get(route_name)
        .map(|route| RouteInfo::from_state(route, state))
        .ok_or_else(|| ApiError::not_found(format!("route {route_name} does not exist")))
}

async fn commit(api: &Api, command: Command, by: Option<&Actor>) -> Result<(), ApiError> {
    match api.node.propose_one_by(command, by).await? {
        Outcome::Rejected(error) => Err(error.into()),
        _ => Ok(()),
    }
}
