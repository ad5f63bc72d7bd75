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

use fleetmesh_state::{Command, Outcome};
use fleetmesh_transport::NodeId;

use super::Leader;
use crate::runtime::protocol::{Response, TrafficRequest};
use crate::runtime::ProposeError;

impl Leader {
    /// Commits `peer`'s block or allow and answers with the routes' longest drain time.
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
                    let drain_seconds = self.node.state().read(|state| {
                        let routes =
                            state.deployments.get(&deployment_id).map(|deployment| deployment.traffic_routes.clone());
                        routes
                            .unwrap_or_default()
                            .iter()
                            .filter_map(|name| state.routes.get(name))
                            .map(|route| route.spec.drain_seconds)
                            .max()
                            .unwrap_or(0)
                    });
                    Response::Traffic { drain_seconds }
                }
                Some(Outcome::Rejected(error)) => Response::TrafficRefused(error.message),
                other => Response::Error(format!("unexpected outcome of the traffic change: {other:?}")),
            },
            Err(ProposeError::NotLeader { leader }) => Response::NotLeader { leader },
            Err(error) => Response::Error(error.to_string()),
        }
    }
}
