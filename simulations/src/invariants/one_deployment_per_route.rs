//! Safety of traffic control (issue 14): one deployment at a time moves a route. No two
//! running (non-terminal) deployments name the same route in `traffic_routes`, whatever
//! groups they belong to: two movers would undo each other's blocks and allows, and a
//! blue/green deployment would take another deployment's hosts for its blue fleet.
//!
//! Checked after every committed proposal that touched a deployment moving traffic (the
//! only entries that can start one: a deployment that moves a route is created by one).

use std::collections::BTreeMap;

use fleetmesh_state::model::deployment::Deployment;
use fleetmesh_state::model::ids::DeploymentId;
use fleetmesh_state::ClusterState;

use super::Violation;

/// The one-deployment-per-route monitor.
#[derive(Debug, Default)]
pub struct OneDeploymentPerRoute {
    /// Checks made.
    pub checks: u64,
    violation: Option<Violation>,
}

impl OneDeploymentPerRoute {
    /// Checks the running deployments of `state` after entry `index` touched `deployment`.
    pub fn check(&mut self, state: &ClusterState, deployment: &Deployment, index: u64) {
        if self.violation.is_some() || deployment.traffic_routes.is_empty() {
            return;
        }
        self.checks += 1;
        let mut movers: BTreeMap<&str, &DeploymentId> = BTreeMap::new();
        for running in state.active_deployments() {
            for name in &running.traffic_routes {
                if let Some(other) = movers.insert(name.as_str(), &running.deployment_id) {
                    self.violation = Some(Violation::new(format!(
                        "entry {index}: deployments {other} and {} both move route {name}",
                        running.deployment_id
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
mod tests {
    use super::super::min_healthy::tests::deployment;
    use super::*;

    #[test]
    fn two_running_deployments_on_one_route_are_caught() {
        // Deployment 1 moves route web: fine alone. A second running deployment naming
        // web: a violation naming both and the route.
        let mut state = ClusterState::default();
        let mut first = deployment(2);
        first.traffic_routes = vec!["web".into()];
        state.deployments.insert(first.deployment_id.clone(), first.clone());
        let mut monitor = OneDeploymentPerRoute::default();
        monitor.check(&state, &first, 3);
        assert_eq!(monitor.verdict(), Ok(()));
        let mut other = deployment(1);
        other.deployment_id = DeploymentId("d-TEST00002".into());
        other.traffic_routes = vec!["web".into()];
        state.deployments.insert(other.deployment_id.clone(), other.clone());
        monitor.check(&state, &other, 4);
        let violation = monitor.verdict().expect_err("two movers").to_string();
        assert!(
            violation.contains("entry 4: deployments d-TEST00001 and d-TEST00002 both move route web"),
            "{violation}"
        );
    }
}
