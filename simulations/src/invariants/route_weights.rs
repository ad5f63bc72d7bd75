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

/// How far green's share may fall between two entries without counting as a move
/// backwards, in parts per million: 100 (0.01 percentage point), above the rounding of
/// split weights ([`fleetmesh_state::SPLIT_WEIGHT_TOTAL`] is 100,000 and a route has
/// few targets here) and far below any real step (at least 1 %).
pub const SHARE_TOLERANCE_PER_MILLION: u128 = 100;

/// Open weight on green targets and in total over every route of `deployment`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GreenShare {
    /// Open weight on the deployment's green targets.
    pub green: u64,
    /// Open weight on every target of its routes.
    pub total: u64,
}

impl GreenShare {
    /// The share of `deployment`'s routes in `state`.
    pub fn of(state: &ClusterState, deployment: &Deployment) -> Self {
        let mut share = Self::default();
        for route in deployment.traffic_routes.iter().filter_map(|name| state.routes.get(name)) {
            for (id, weight) in open_weights(state, route) {
                share.total += weight;
                if label_of(deployment, id) == Some(TargetLabel::Green) {
                    share.green += weight;
                }
            }
        }
        share
    }

    /// True when green's share is below `earlier`'s by more than
    /// [`SHARE_TOLERANCE_PER_MILLION`] (a share of nothing open is 0). The tolerance
    /// covers the rounding of split weights (each target's weight is rounded down, so a
    /// share can move by a few parts in 100,000 when a target joins).
    pub fn is_below(self, earlier: Self) -> bool {
        let ratio = |share: Self| if share.total == 0 { (0, 1) } else { (share.green, share.total) };
        let ((green, total), (earlier_green, earlier_total)) = (ratio(self), ratio(earlier));
        let (green, total, earlier_green, earlier_total) =
            (u128::from(green), u128::from(total), u128::from(earlier_green), u128::from(earlier_total));
        let million = 1_000_000u128;
        // green/total < earlier_green/earlier_total − tolerance/million, without division.
        green * earlier_total * million + SHARE_TOLERANCE_PER_MILLION * total * earlier_total
            < earlier_green * total * million
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
        let mut state = state_with_route(&[1, 2]);
        let mut moving = deployment(4);
        moving.traffic_routes = vec!["web".into()];
        moving.auto_rollback_configuration = AutoRollbackConfiguration::on_failure();
        for (id, target) in &mut moving.targets {
            target.target_label = Some(if id.0 <= 2 { TargetLabel::Blue } else { TargetLabel::Green });
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
}
