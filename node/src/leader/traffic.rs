//! Traffic events of targets: an agent at `BlockTraffic` or `AllowTraffic` asks the
//! leader, which commits the change to the deployment's routes
//! ([`Command::SetTargetTraffic`]) and answers once it is applied; routers learn it
//! from their next (held) poll answer.
//!
//! The agent's latest report travels with the request and is committed in the same
//! entry, first: `apply` refuses to allow traffic to a target whose `ValidateService`
//! has not succeeded, and must see the report that says it did. Blocking and allowing
//! are idempotent, so an agent that retries after a leader change (the first leader
//! may have committed before it died) changes nothing twice.
//!
//! For the deployment's `--command` routes the answer also names, per route, the
//! version that includes the change and the routers that must run the route's program
//! on it ([`CommandRouteWait`]); the agent then asks those routers itself. Routers the
//! leader holds dead are left out (and named): they run the program on the latest state
//! when they are back, and a lost router host must not block every deployment.

use fleetmesh_state::{ClusterState, Command, Outcome};
use fleetmesh_transport::NodeId;

use super::liveness::Health;
use super::Leader;
use crate::runtime::protocol::{CommandRouteWait, Response, TrafficRequest};
use crate::runtime::ProposeError;

impl Leader {
    /// Commits `peer`'s block or allow and answers with the routes' longest drain time
    /// and the command routes' waits.
    pub(super) async fn handle_traffic(&self, peer: NodeId, request: TrafficRequest) -> Response {
        let TrafficRequest { deployment_id, allow, report } = request;
        if report.as_ref().is_some_and(|report| report.target_id != peer || report.deployment_id != deployment_id) {
            return Response::Error(format!("node {peer} sent a report of another target with its traffic event"));
        }
        let mut commands: Vec<Command> =
            report.into_iter().map(|report| Command::ReportTargets { reports: vec![report] }).collect();
        commands.push(Command::SetTargetTraffic { deployment_id: deployment_id.clone(), target_id: peer, allow });
        match self.node.propose(commands).await {
            Ok(mut outcomes) => match outcomes.pop() {
                Some(Outcome::Done) => {
                    if let Err(answer) = self.move_elbv2(peer, &deployment_id, allow).await {
                        return answer.into();
                    }
                    let (drain_seconds, waits) = self.node.state().read(|state| {
                        let routes = state
                            .deployments
                            .get(&deployment_id)
                            .map(|deployment| deployment.traffic_routes.clone())
                            .unwrap_or_default();
                        (drain_seconds_of(state, &routes), command_waits(state, &routes))
                    });
                    Response::Traffic { drain_seconds, command_routes: self.without_dead_routers(waits).await }
                }
                Some(Outcome::Rejected(error)) => Response::TrafficRefused(error.message),
                other => Response::Error(format!("unexpected outcome of the traffic change: {other:?}")),
            },
            Err(ProposeError::NotLeader { leader }) => Response::NotLeader { leader },
            Err(error) => Response::Error(error.to_string()),
        }
    }

    /// `waits` with the routers this leader holds dead moved to `routers_down`.
    async fn without_dead_routers(&self, mut waits: Vec<CommandRouteWait>) -> Vec<CommandRouteWait> {
        for wait in &mut waits {
            let mut alive = Vec::with_capacity(wait.routers.len());
            for router in std::mem::take(&mut wait.routers) {
                if self.health(router).await == Health::Dead {
                    wait.routers_down.push(router);
                } else {
                    alive.push(router);
                }
            }
            wait.routers = alive;
        }
        waits
    }
}

/// The longest drain time of `routes`, in seconds.
fn drain_seconds_of(state: &ClusterState, routes: &[String]) -> u32 {
    routes.iter().filter_map(|name| state.routes.get(name)).map(|route| route.spec.drain_seconds).max().unwrap_or(0)
}

/// For each of `routes` that runs a command: its version now and its routers (members
/// whose tags match, in id order), all of them to be waited for.
fn command_waits(state: &ClusterState, routes: &[String]) -> Vec<CommandRouteWait> {
    routes
        .iter()
        .filter_map(|name| state.routes.get(name))
        .filter_map(|route| Some((route, route.spec.command.clone()?)))
        .map(|(route, command)| CommandRouteWait {
            route_name: route.spec.route_name.clone(),
            command,
            version: route.version,
            routers: state.routers_of(route),
            routers_down: Vec::new(),
        })
        .collect()
}
