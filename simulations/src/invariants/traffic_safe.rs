//! Safety of traffic control (issue 14): a host whose install is under way never takes
//! traffic, and traffic reaches only hosts that passed `ValidateService` (in place and
//! blue/green alike: a green target runs `ApplicationStop` … `ValidateService` before
//! its `AllowTraffic`). That one deployment at a time moves a route is
//! [`super::one_deployment_per_route`].
//!
//! Checked after every committed proposal on the replayed state, for every deployment
//! the proposal touched that moves traffic (`traffic_routes`). For each of its targets
//! that is **open** on one of those routes (serving, weight above 0):
//! - if the target's `ApplicationStop` has started (it is being changed), its
//!   `ValidateService` must have succeeded — a host is taken off before it stops and put
//!   back only after it validated, whatever leaders died in between;
//! - (the same rule read the other way) an open target whose `ValidateService` did not
//!   succeed has not begun `ApplicationStop`.
//!
//! The agent's reports reach the state after the traffic change they follow (a block is committed before the agent
//! goes on; an allow is committed with the report that shows `ValidateService` done), so
//! a correct implementation never shows a violating state, under any interleaving.

use fleetmesh_state::model::deployment::{Deployment, LifecycleEventStatus, Target};
use fleetmesh_state::ClusterState;

use super::Violation;

/// The traffic-control monitor.
#[derive(Debug, Default)]
pub struct TrafficSafe {
    /// Checks of a traffic-controlled deployment made so far.
    pub checks: u64,
    /// Open targets seen in those checks.
    pub open_targets_checked: u64,
    violation: Option<Violation>,
}

fn status_of(target: &Target, name: &str) -> Option<LifecycleEventStatus> {
    target.lifecycle_events.iter().find(|event| event.lifecycle_event_name == name).map(|event| event.status)
}

impl TrafficSafe {
    /// Checks `deployment` (touched by entry `index`) against the routes of `state`.
    pub fn check(&mut self, state: &ClusterState, deployment: &Deployment, index: u64) {
        if self.violation.is_some() || deployment.traffic_routes.is_empty() {
            return;
        }
        self.checks += 1;
        for name in &deployment.traffic_routes {
            let Some(route) = state.routes.get(name) else { continue };
            for entry in route.targets.iter().filter(|entry| entry.is_open()) {
                let Some(target) = deployment.targets.get(&entry.target_id) else { continue };
                self.open_targets_checked += 1;
                let stopping = !matches!(
                    status_of(target, "ApplicationStop"),
                    None | Some(LifecycleEventStatus::Pending | LifecycleEventStatus::Skipped)
                );
                let validated = status_of(target, "ValidateService") == Some(LifecycleEventStatus::Succeeded);
                if stopping && !validated {
                    self.violation = Some(Violation::new(format!(
                        "entry {index}: host {} is open on route {name} while deployment {} changes it \
                         (ApplicationStop {:?}, ValidateService {:?})",
                        entry.target_id,
                        deployment.deployment_id,
                        status_of(target, "ApplicationStop"),
                        status_of(target, "ValidateService"),
                    )));
                    return;
                }
            }
        }
    }

    /// The verdict so far.
    pub fn verdict(&self) -> Result<(), Violation> {
        self.violation.clone().map_or(Ok(()), Err)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use fleetmesh_state::model::deployment::LifecycleEventStatus::{InProgress, Succeeded};
    use fleetmesh_state::model::ids::UnixMillis;
    use fleetmesh_state::model::routes::{Route, RouteSpec, RouteTarget, TrafficState};
    use fleetmesh_state::NodeId;

    use super::super::min_healthy::tests::deployment;
    use super::*;

    /// A state holding route `web` (port 80 → 8080, drain 1 s) whose targets `open`
    /// serve at weight 100.
    pub(crate) fn state_with_route(open: &[u64]) -> ClusterState {
        let spec = RouteSpec {
            route_name: "web".into(),
            listen_port: 80,
            target_port: 8080,
            router_tags: [("lb".to_string(), "yes".to_string())].into_iter().collect(),
            drain_seconds: 1,
            command: None,
        };
        let targets = open
            .iter()
            .map(|id| RouteTarget { target_id: NodeId(*id), weight: 100, state: TrafficState::Serving })
            .collect();
        let route = Route {
            spec,
            targets,
            create_time: UnixMillis(0),
            update_time: UnixMillis(0),
            created_by: None,
            targets_set_by: None,
            version: 1,
        };
        let mut state = ClusterState::default();
        state.routes.insert("web".into(), route);
        state
    }

    fn set_event(deployment: &mut Deployment, id: u64, name: &str, status: LifecycleEventStatus) {
        let target = deployment.targets.get_mut(&NodeId(id)).expect("target");
        let event = target.lifecycle_events.iter_mut().find(|event| event.lifecycle_event_name == name).expect("event");
        event.status = status;
    }

    #[test]
    fn a_host_open_on_its_route_while_it_stops_is_caught() {
        // Host 1 open on route web: fine while pending, fine again once ValidateService
        // succeeded; its ApplicationStop running while it is open is a violation naming
        // it.
        let mut moving = deployment(2);
        moving.traffic_routes = vec!["web".into()];
        let mut state = state_with_route(&[1]);
        state.deployments.insert(moving.deployment_id.clone(), moving.clone());
        let mut monitor = TrafficSafe::default();
        monitor.check(&state, &moving, 1);
        set_event(&mut moving, 1, "ApplicationStop", Succeeded);
        set_event(&mut moving, 1, "ValidateService", Succeeded);
        monitor.check(&state, &moving, 2);
        assert_eq!((monitor.verdict(), monitor.open_targets_checked), (Ok(()), 2));
        set_event(&mut moving, 1, "ValidateService", InProgress);
        monitor.check(&state, &moving, 3);
        let violation = monitor.verdict().expect_err("open while changing").to_string();
        assert!(violation.contains("entry 3: host 1 is open on route web"), "{violation}");
    }
}
