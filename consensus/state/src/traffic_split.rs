//! Green's share of a route during a canary or linear blue/green deployment: the
//! weights routers really use ([`ClusterState::effective_weights`]), derived from the
//! route's targets and the deployment's committed `green_percent`, never stored apart.
//!
//! While a stepped blue/green deployment runs, its route's new connections split in two
//! pools: green (the deployment's green targets) gets `green_percent` of them, every
//! other target the rest; inside a pool, the targets' own weights decide. A pool with no
//! open target (serving, weight above 0) gives its share to the other, so a dead or
//! blocked fleet never takes the route down.

use std::collections::BTreeSet;

use crate::model::blue_green::TargetLabel;
use crate::model::deployment::Deployment;
use crate::model::ids::{DeploymentId, UnixMillis};
use crate::model::routes::{Route, RouteTarget, TrafficState, ROUTE_WEIGHT_MAX};
use crate::{ClusterState, NodeId};

/// The sum of a route's effective weights while it is split: shares are exact to
/// 1/100,000 of the connections.
pub const SPLIT_WEIGHT_TOTAL: u64 = 100_000;

/// A route's split: the deployment, green's percentage, and its green targets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrafficSplit {
    /// The blue/green deployment shifting the route.
    pub deployment_id: DeploymentId,
    /// Green's share of new connections, 0–100.
    pub green_percent: u32,
    /// The deployment's green targets.
    pub green: BTreeSet<NodeId>,
}

impl ClusterState {
    /// The split of route `name` now: a running blue/green deployment on it with a
    /// committed `green_percent` (one deployment at a time changes a route).
    pub fn traffic_split(&self, name: &str) -> Option<TrafficSplit> {
        self.active_deployments().find_map(|deployment| split_of(deployment, name))
    }

    /// The weights routers use for `route`'s targets, in its order: the targets' own
    /// weights, or while it is split, weights summing to [`SPLIT_WEIGHT_TOTAL`] over
    /// the open targets that give green its percentage.
    pub fn effective_weights(&self, route: &Route) -> Vec<u32> {
        match self.traffic_split(&route.spec.route_name) {
            Some(split) => split_weights(&route.targets, &split, SPLIT_WEIGHT_TOTAL),
            None => route.targets.iter().map(|target| target.weight).collect(),
        }
    }

    /// When stepped blue/green deployment `id` ends with traffic where it is (no
    /// rollback): its split becomes the routes' own weights, scaled to at most
    /// [`ROUTE_WEIGHT_MAX`], so traffic does not move when the split goes away.
    pub(crate) fn freeze_split(&mut self, id: &DeploymentId, at: UnixMillis) {
        let Some(deployment) = self.deployments.get(id) else { return };
        let names = deployment.traffic_routes.clone();
        let splits: Vec<(String, TrafficSplit)> =
            names.iter().filter_map(|name| Some((name.clone(), split_of(deployment, name)?))).collect();
        for (name, split) in splits {
            let Some(route) = self.routes.get_mut(&name) else { continue };
            let weights = split_weights(&route.targets, &split, u64::from(ROUTE_WEIGHT_MAX));
            for (target, weight) in route.targets.iter_mut().zip(weights) {
                target.weight = weight;
            }
            route.version += 1;
            route.update_time = at;
        }
        if let Some(run) = self.deployments.get_mut(id).and_then(|deployment| deployment.blue_green.as_mut()) {
            run.green_percent = None;
        }
    }
}

/// The split `deployment` puts on route `name`, if any.
fn split_of(deployment: &Deployment, name: &str) -> Option<TrafficSplit> {
    let green_percent = deployment.blue_green?.green_percent?;
    if !deployment.traffic_routes.iter().any(|route| route == name) {
        return None;
    }
    let green = deployment
        .targets
        .values()
        .filter(|target| target.target_label == Some(TargetLabel::Green))
        .map(|target| target.target_id)
        .collect();
    Some(TrafficSplit { deployment_id: deployment.deployment_id.clone(), green_percent, green })
}

/// `targets`' weights under `split`, the open ones summing to about `total`: green's
/// open targets share `green_percent` of it by their weights, the others the rest. A
/// target with a share above 0 keeps a weight of at least 1; closed targets keep their
/// own weight (their state already keeps connections away). When either pool has no
/// open target, the weights are the targets' own.
pub fn split_weights(targets: &[RouteTarget], split: &TrafficSplit, total: u64) -> Vec<u32> {
    let open = |target: &RouteTarget| target.state == TrafficState::Serving && target.weight > 0;
    let is_green = |target: &RouteTarget| split.green.contains(&target.target_id);
    let pool_sum = |green: bool| -> u64 {
        targets
            .iter()
            .filter(|target| open(target) && is_green(target) == green)
            .map(|target| u64::from(target.weight))
            .sum()
    };
    let (green_sum, blue_sum) = (pool_sum(true), pool_sum(false));
    if green_sum == 0 || blue_sum == 0 {
        return targets.iter().map(|target| target.weight).collect();
    }
    let green_percent = u64::from(split.green_percent.min(100));
    targets
        .iter()
        .map(|target| {
            if !open(target) {
                return target.weight;
            }
            let (share, sum) =
                if is_green(target) { (green_percent, green_sum) } else { (100 - green_percent, blue_sum) };
            if share == 0 {
                return 0;
            }
            let weight = u64::from(target.weight) * share * total / (100 * sum);
            u32::try_from(weight.max(1)).unwrap_or(u32::MAX)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(id: u64, weight: u32, state: TrafficState) -> RouteTarget {
        RouteTarget { target_id: NodeId(id), weight, state }
    }

    fn split(percent: u32, green: &[u64]) -> TrafficSplit {
        TrafficSplit {
            deployment_id: DeploymentId("d-1".into()),
            green_percent: percent,
            green: green.iter().map(|id| NodeId(*id)).collect(),
        }
    }

    #[test]
    fn green_gets_its_percentage_whatever_the_fleet_sizes() {
        // Three blue at 100, one green at 100: a 25 % canary gives green 25,000 of 100,000.
        let targets: Vec<RouteTarget> = (1..=4).map(|id| target(id, 100, TrafficState::Serving)).collect();
        let weights = split_weights(&targets, &split(25, &[4]), SPLIT_WEIGHT_TOTAL);
        assert_eq!(weights, vec![25_000, 25_000, 25_000, 25_000]);
        let weights = split_weights(&targets, &split(10, &[4]), SPLIT_WEIGHT_TOTAL);
        assert_eq!(weights, vec![30_000, 30_000, 30_000, 10_000]);
        // Blue's own weights still divide blue's share.
        let targets = vec![
            target(1, 300, TrafficState::Serving),
            target(2, 100, TrafficState::Serving),
            target(3, 7, TrafficState::Serving),
        ];
        assert_eq!(split_weights(&targets, &split(50, &[3]), SPLIT_WEIGHT_TOTAL), vec![37_500, 12_500, 50_000]);
    }

    #[test]
    fn a_pool_without_open_targets_gives_its_share_away_and_closed_targets_stay_closed() {
        // Green not on the route yet (draining, or absent): blue keeps everything.
        let targets = vec![target(1, 100, TrafficState::Serving), target(2, 100, TrafficState::Draining)];
        assert_eq!(split_weights(&targets, &split(40, &[2]), SPLIT_WEIGHT_TOTAL), vec![100, 100]);
        // Blue blocked: green takes every connection.
        let targets = vec![target(1, 100, TrafficState::Blocked), target(2, 50, TrafficState::Serving)];
        assert_eq!(split_weights(&targets, &split(40, &[2]), SPLIT_WEIGHT_TOTAL), vec![100, 50]);
        // At 100 % blue gets no new connection, but a tiny share still gets one weight.
        let targets = vec![target(1, 100, TrafficState::Serving), target(2, 100, TrafficState::Serving)];
        assert_eq!(split_weights(&targets, &split(100, &[2]), SPLIT_WEIGHT_TOTAL), vec![0, 100_000]);
        let many: Vec<RouteTarget> = (1..=1000).map(|id| target(id, 1, TrafficState::Serving)).collect();
        let weights = split_weights(&many, &split(1, &[1000]), 1000);
        assert_eq!((weights[0], weights[999]), (1, 10));
    }
}
