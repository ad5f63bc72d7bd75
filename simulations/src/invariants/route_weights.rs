//! What the blue/green invariants read off one committed entry: the open weight of each
//! target of a route, the share of it on green, which deployments to check, and whether
//! the entry asked for a rollback.
//!
//! [`open_weights`] is the one place that says how much traffic a target takes: the
//! weights routers use, which during a canary or linear blue/green deployment are not
//! the route's stored weights.

use std::collections::BTreeSet;

use fleetmesh_state::model::blue_green::TargetLabel;
use fleetmesh_state::model::deployment::Deployment;
use fleetmesh_state::model::ids::DeploymentId;
use fleetmesh_state::model::resources::AutoRollbackEvent;
use fleetmesh_state::model::routes::Route;
use fleetmesh_state::{ClusterState, Command, Proposal};
use fleetmesh_transport::NodeId;

/// The open weight of every target of `route` in `state`, in the route's order: the
/// weight routers use ([`ClusterState::effective_weights`]: the target's own, or its
/// part of a canary or linear blue/green split) while it serves, 0 while it drains or is
/// blocked (`RouteTarget::is_open`).
pub fn open_weights(state: &ClusterState, route: &Route) -> Vec<(NodeId, u64)> {
    route
        .targets
        .iter()
        .zip(state.effective_weights(route))
        .map(|(entry, weight)| (entry.target_id, if entry.is_open() { u64::from(weight) } else { 0 }))
        .collect()
}

/// Open weight on green targets and in total over every route of `deployment`, and how
/// many of those weights are rounded.
///
/// While a canary or linear split is on a route, each open target's weight is its part
/// of [`fleetmesh_state::SPLIT_WEIGHT_TOTAL`] rounded down to a whole weight
/// ([`fleetmesh_state::split_weights`]), so every such target loses less than one unit.
/// The loss depends on how many targets share a pool: at a 27 % canary, 20 green
/// targets get 1,350 each (27,000 in all) but 21 get 1,285 each (26,985), so a green
/// target joining the route lowers green's share from 27.000 % to 26.989 % although
/// nothing moved back (seed 2 of `blue-green-chaos` at 100 nodes). A fixed tolerance
/// cannot cover this (the loss grows with the fleet), so the counts of rounded weights
/// travel with the share and [`GreenShare::is_below`] only calls a fall one that
/// rounding cannot explain. (`split_weights` also raises a part below one unit to 1;
/// that needs more targets in a pool than units in its share, 1,000 at 1 %, far past
/// the fleets simulated.)
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GreenShare {
    /// Open weight on the deployment's green targets.
    pub green: u64,
    /// Open weight on every target of its routes.
    pub total: u64,
    /// Open green targets whose weight is a rounded part of a split.
    pub green_rounded: u64,
    /// Open targets not green whose weight is a rounded part of a split.
    pub other_rounded: u64,
}

impl GreenShare {
    /// The share of `deployment`'s routes in `state`.
    pub fn of(state: &ClusterState, deployment: &Deployment) -> Self {
        let mut share = Self::default();
        for route in deployment.traffic_routes.iter().filter_map(|name| state.routes.get(name)) {
            let weights = open_weights(state, route);
            let is_green = |id: NodeId| label_of(deployment, id) == Some(TargetLabel::Green);
            // `split_weights` divides a pool's share only when both pools have an open
            // target; otherwise the targets keep their own (whole) weights.
            let is_split = state.traffic_split(&route.spec.route_name).is_some()
                && route.targets.iter().any(|target| target.is_open() && is_green(target.target_id))
                && route.targets.iter().any(|target| target.is_open() && !is_green(target.target_id));
            for (id, weight) in weights {
                share.total += weight;
                let rounded = u64::from(is_split && weight > 0);
                if is_green(id) {
                    share.green += weight;
                    share.green_rounded += rounded;
                } else {
                    share.other_rounded += rounded;
                }
            }
        }
        share
    }

    /// True when green's share is below `earlier`'s by more than the rounding of split
    /// weights can explain: even the highest exact share this one can stand for (green
    /// lost a unit on each of its rounded targets, the others nothing) is below the lowest
    /// `earlier` can stand for (the others lost a unit on each rounded target, green
    /// nothing). Without a split, weights are whole and the shares compare exactly. A
    /// share of nothing open is 0.
    pub fn is_below(self, earlier: Self) -> bool {
        let highest =
            if self.total == 0 { (0, 1) } else { (self.green + self.green_rounded, self.total + self.green_rounded) };
        let lowest = if earlier.total == 0 { (0, 1) } else { (earlier.green, earlier.total + earlier.other_rounded) };
        // highest.0 / highest.1 < lowest.0 / lowest.1, without division.
        u128::from(highest.0) * u128::from(lowest.1) < u128::from(lowest.0) * u128::from(highest.1)
    }

    /// Green's share in percent, for messages.
    pub fn percent(self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.green as f64 * 100.0 / self.total as f64
        }
    }
}

/// Which fleet host `id` belongs to in `deployment`, if it is a target.
pub fn label_of(deployment: &Deployment, id: NodeId) -> Option<TargetLabel> {
    deployment.targets.get(&id).and_then(|target| target.target_label)
}

/// One committed entry as the blue/green invariants see it.
#[derive(Clone, Copy, Debug)]
pub struct EntryView<'a> {
    /// The state after the entry.
    pub state: &'a ClusterState,
    /// The entry.
    pub proposal: &'a Proposal,
    /// Its log index.
    pub index: u64,
    /// Blue/green deployments this entry ended.
    pub ended: &'a BTreeSet<DeploymentId>,
    /// Hosts the simulator had crashed when the entry was replayed (at most one observer
    /// round, 10 ms of virtual time, after it was applied).
    pub down: &'a BTreeSet<NodeId>,
}

impl<'a> EntryView<'a> {
    /// The blue/green deployments to check after this entry: those still running and
    /// those it ended.
    pub fn blue_green(&self) -> impl Iterator<Item = &'a Deployment> + '_ {
        self.state.deployments.values().filter(|deployment| {
            deployment.blue_green.is_some()
                && (!deployment.status.is_terminal() || self.ended.contains(&deployment.deployment_id))
        })
    }

    /// True when this entry asks for `deployment` to be rolled back: a stop with
    /// `--auto-rollback`, or a failure when its rollback configuration covers failures.
    /// Read from the commands, not from what `apply` did with them.
    pub fn asks_rollback(&self, deployment: &Deployment) -> bool {
        let id = &deployment.deployment_id;
        self.proposal.commands.iter().any(|command| match command {
            Command::StopDeployment { deployment_id, rollback_id } => deployment_id == id && rollback_id.is_some(),
            Command::FinishDeployment(finish) => {
                finish.deployment_id == *id
                    && !finish.succeeded
                    && deployment.auto_rollback_configuration.triggers_on(AutoRollbackEvent::DeploymentFailure)
            }
            _ => false,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use fleetmesh_state::model::blue_green::{BlueGreenPhase, BlueGreenRun};
    use fleetmesh_state::model::ids::UnixMillis;
    use fleetmesh_state::model::resources::AutoRollbackConfiguration;
    use fleetmesh_state::model::routes::{RouteTarget, TrafficState};

    use super::super::min_healthy::tests::deployment;
    use super::super::traffic_safe::tests::state_with_route;
    use super::*;

    /// The blue/green deployment of [`blue_green_state`].
    pub(crate) const DEPLOYMENT: &str = "d-TEST00001";

    /// A state with route `web` (blue hosts 1 and 2 serving at weight 100) and a running
    /// blue/green deployment [`DEPLOYMENT`] on it: blue 1–2, green 3–4, installing, with
    /// rollback on failure.
    pub(crate) fn blue_green_state() -> ClusterState {
        fleet_state(2, 2)
    }

    /// [`blue_green_state`] with `blue` blue hosts (1 to `blue`, serving) and `green`
    /// green ones after them.
    fn fleet_state(blue: u64, green: u64) -> ClusterState {
        let mut state = state_with_route(&(1..=blue).collect::<Vec<_>>());
        let mut moving = deployment(blue + green);
        moving.traffic_routes = vec!["web".into()];
        moving.auto_rollback_configuration = AutoRollbackConfiguration::on_failure();
        for (id, target) in &mut moving.targets {
            target.target_label = Some(if id.0 <= blue { TargetLabel::Blue } else { TargetLabel::Green });
        }
        moving.blue_green = Some(BlueGreenRun {
            configuration: Default::default(),
            phase: BlueGreenPhase::Installing,
            phase_since: UnixMillis(0),
            ready_continued: false,
            termination_continued: false,
            green_percent: None,
        });
        state.deployments.insert(moving.deployment_id.clone(), moving);
        state
    }

    /// Sets host `id`'s entry on route `web` (added when absent).
    pub(crate) fn set_traffic(state: &mut ClusterState, id: u64, to: TrafficState) {
        let route = state.routes.get_mut("web").expect("route web");
        match route.targets.iter_mut().find(|target| target.target_id == NodeId(id)) {
            Some(target) => target.state = to,
            None => route.targets.push(RouteTarget { target_id: NodeId(id), weight: 100, state: to }),
        }
    }

    /// An entry at `index` of `commands` that ended `ended` while hosts `down` were down
    /// (leaked: a test lives shorter than the process).
    pub(crate) fn entry_with<'a>(
        state: &'a ClusterState,
        index: u64,
        commands: Vec<Command>,
        ended: &[&str],
        down: &[u64],
    ) -> EntryView<'a> {
        let proposal: &'a Proposal = Box::leak(Box::new(Proposal::new(UnixMillis(0), commands)));
        let ended: &'a BTreeSet<DeploymentId> =
            Box::leak(Box::new(ended.iter().map(|id| DeploymentId((*id).into())).collect()));
        let down: &'a BTreeSet<NodeId> = Box::leak(Box::new(down.iter().map(|id| NodeId(*id)).collect()));
        EntryView { state, proposal, index, ended, down }
    }

    /// An entry at `index` with no commands that ended `ended` while `down` were down.
    pub(crate) fn entry_at<'a>(state: &'a ClusterState, index: u64, ended: &[&str], down: &[u64]) -> EntryView<'a> {
        entry_with(state, index, Vec::new(), ended, down)
    }

    #[test]
    fn green_share_compares_ratios_and_counts_only_open_weight() {
        // Blue 1–2 serve: green's share is 0. Green 3 joins: a third. Blue 1 drains:
        // a half. Asserts each share is above the one before, and nothing open is 0.
        let mut state = blue_green_state();
        let id = DeploymentId(DEPLOYMENT.into());
        let share = |state: &ClusterState| GreenShare::of(state, &state.deployments[&id]);
        let none = share(&state);
        set_traffic(&mut state, 3, TrafficState::Serving);
        let third = share(&state);
        set_traffic(&mut state, 1, TrafficState::Draining);
        let half = share(&state);
        assert_eq!(
            (none.green, none.total, third.green, third.total, half.green, half.total),
            (0, 200, 100, 300, 100, 200)
        );
        assert!(none.is_below(third) && third.is_below(half) && !half.is_below(third));
        assert!(!GreenShare::default().is_below(none) && GreenShare::default().is_below(half));
    }

    #[test]
    fn rounding_of_split_weights_is_not_a_fall_and_a_step_back_is() {
        // A 27 % canary on 50 blue hosts while green joins, as in blue-green-chaos seed 2
        // at 100 nodes: 20 green get 27,000 of 100,000, 21 get 26,985 (1,285 each,
        // rounded down). Asserts the second share is not below the first, while a step
        // back to 26 % as the 21st joins is, and so is the same step at 1,000 targets
        // (500 blue, 500 green), where rounding can take up to 500 units per pool.
        let at = |blue: u64, green: u64, joined: u64, percent: u32| {
            let mut state = fleet_state(blue, green);
            for id in blue + 1..=blue + joined {
                set_traffic(&mut state, id, TrafficState::Serving);
            }
            let moving = state.deployments.get_mut(&DeploymentId(DEPLOYMENT.into())).expect("deployment");
            let run = moving.blue_green.as_mut().expect("a blue/green run");
            (run.phase, run.green_percent) = (BlueGreenPhase::Rerouting, Some(percent));
            GreenShare::of(&state, &state.deployments[&DeploymentId(DEPLOYMENT.into())])
        };
        let (twenty, twenty_one) = (at(50, 21, 20, 27), at(50, 21, 21, 27));
        assert_eq!((twenty.green, twenty.total, twenty_one.green, twenty_one.total), (27_000, 100_000, 26_985, 99_985));
        assert_eq!((twenty_one.green_rounded, twenty_one.other_rounded), (21, 50));
        assert!(!twenty_one.is_below(twenty) && !twenty.is_below(twenty_one));
        assert!(at(50, 21, 21, 26).is_below(twenty));
        assert!(at(500, 500, 500, 26).is_below(at(500, 500, 499, 27)));
        assert!(!at(500, 500, 500, 27).is_below(at(500, 500, 499, 27)));
    }
}
