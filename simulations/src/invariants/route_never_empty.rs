//! Safety of blue/green deployments (issue 14): while one runs, each of its routes keeps
//! some open weight — a target serving with weight above 0 — unless every host on the
//! route is down.
//!
//! Blue serves until green has joined (green's allow events come before blue's block
//! events, and a rollback gives blue the route back in the entry that ends the
//! deployment), so a correct implementation never empties a route that had traffic,
//! whatever crashes and partitions do: the check reads committed route state, which no
//! crash changes. A route with no open weight when the deployment was created (the
//! first deployment onto an empty route) has nothing to keep and is not checked.
//!
//! Only blue/green deployments are held to it: an in-place deployment with traffic
//! control may take every target off at once when its configuration allows that (a
//! `HOST_COUNT` minimum of 0).
//!
//! Checked after every committed entry, on every running blue/green deployment and on
//! those the entry ended.

use std::collections::{BTreeMap, BTreeSet};

use fleetmesh_state::model::deployment::Deployment;
use fleetmesh_state::model::ids::DeploymentId;
use fleetmesh_state::ClusterState;

use super::route_weights::{open_weights, EntryView};
use super::Violation;

/// The route-never-empty monitor.
#[derive(Debug, Default)]
pub struct RouteNeverEmpty {
    /// Per blue/green deployment, its routes that had open weight at its creation.
    guarded: BTreeMap<DeploymentId, BTreeSet<String>>,
    /// Route checks made (one route after one entry).
    pub checks: u64,
    /// The smallest open weight seen on a guarded route.
    pub least_open_weight: Option<u64>,
    violation: Option<Violation>,
}

impl RouteNeverEmpty {
    /// Records which routes of `deployment`, just created in `state`, had traffic.
    pub fn created(&mut self, state: &ClusterState, deployment: &Deployment) {
        if deployment.blue_green.is_none() {
            return;
        }
        let open: BTreeSet<String> = deployment
            .traffic_routes
            .iter()
            .filter(|name| {
                state
                    .routes
                    .get(*name)
                    .is_some_and(|route| open_weights(state, route).iter().map(|(_, weight)| weight).sum::<u64>() > 0)
            })
            .cloned()
            .collect();
        self.guarded.insert(deployment.deployment_id.clone(), open);
    }

    /// Checks the routes of every blue/green deployment `entry` leaves running or ended.
    pub fn check(&mut self, entry: &EntryView<'_>) {
        if self.violation.is_some() {
            return;
        }
        for deployment in entry.blue_green() {
            let Some(routes) = self.guarded.get(&deployment.deployment_id) else { continue };
            for name in routes {
                let Some(route) = entry.state.routes.get(name) else { continue };
                self.checks += 1;
                let weights = open_weights(entry.state, route);
                let open: u64 = weights.iter().map(|(_, weight)| weight).sum();
                self.least_open_weight = Some(self.least_open_weight.map_or(open, |least| least.min(open)));
                let all_down = !weights.is_empty() && weights.iter().all(|(id, _)| entry.down.contains(id));
                if open == 0 && !all_down {
                    let states: Vec<String> = route
                        .targets
                        .iter()
                        .map(|target| format!("{} {} w{}", target.target_id, target.state.as_str(), target.weight))
                        .collect();
                    self.violation = Some(Violation::new(format!(
                        "entry {}: route {name} has no open weight while blue/green deployment {} runs ({:?}); \
                         targets: {}",
                        entry.index,
                        deployment.deployment_id,
                        deployment.blue_green.map(|run| run.phase),
                        states.join(", ")
                    )));
                    return;
                }
            }
        }
        for id in entry.ended {
            self.guarded.remove(id);
        }
    }

    /// The verdict so far.
    pub fn verdict(&self) -> Result<(), Violation> {
        self.violation.clone().map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use fleetmesh_state::model::routes::TrafficState;

    use super::super::route_weights::tests::{blue_green_state, entry_at, set_traffic, DEPLOYMENT};
    use super::*;

    #[test]
    fn blue_leaving_before_green_joins_is_caught_unless_every_host_is_down() {
        // Blue hosts 1 and 2 serve route web, green 3 and 4 install. Blue 1 drains: fine.
        // Blue 2 drains too while green is not on the route: a violation naming the
        // route, unless hosts 1 and 2 are both down.
        let mut state = blue_green_state();
        let mut monitor = RouteNeverEmpty::default();
        monitor.created(&state, &state.deployments[&DeploymentId(DEPLOYMENT.into())]);
        set_traffic(&mut state, 1, TrafficState::Draining);
        monitor.check(&entry_at(&state, 5, &[], &[]));
        assert_eq!(monitor.verdict(), Ok(()));
        set_traffic(&mut state, 2, TrafficState::Draining);
        monitor.check(&entry_at(&state, 6, &[], &[1, 2]));
        assert_eq!(monitor.verdict(), Ok(()), "every host on the route is down");
        monitor.check(&entry_at(&state, 7, &[], &[1]));
        let violation = monitor.verdict().expect_err("route emptied").to_string();
        assert!(violation.contains("entry 7: route web has no open weight"), "{violation}");
    }
}
