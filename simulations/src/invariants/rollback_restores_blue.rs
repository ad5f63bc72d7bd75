//! Safety of blue/green deployments (issue 14): a rollback gives the routes back to
//! blue. In the entry that ends a blue/green deployment with a rollback (a stop with
//! `--auto-rollback`, or a failure with rollback on failure, read from the entry's
//! commands), once traffic had moved (some green target was open at some committed
//! state of the deployment) and before blue's termination was ordered (`TERMINATE`: the
//! deployment entered `Terminating`, after which a blue host may have begun its
//! `ApplicationStop` before any report says so), every blue target that is still a
//! member is open again on each route it is on, and no green target is open: blue takes
//! 100 % of new traffic.
//!
//! Blue still runs the old revision, so the rollback is instant and must happen in that
//! same entry; a later entry would leave a committed state where the deployment had
//! ended failed with green still serving. Once blue is being stopped there is nothing to
//! give the routes back to, and green must keep them ([`super::route_never_empty`] and
//! `traffic_only_to_validated_hosts` check that nothing stopped is reopened).

use std::collections::BTreeSet;

use fleetmesh_state::model::blue_green::{BlueGreenPhase, TargetLabel};
use fleetmesh_state::model::deployment::Deployment;
use fleetmesh_state::model::ids::DeploymentId;
use fleetmesh_transport::NodeId;

use super::route_weights::{label_of, open_weights, EntryView};
use super::Violation;

/// The rollback-restores-blue monitor.
#[derive(Debug, Default)]
pub struct RollbackRestoresBlue {
    /// Running blue/green deployments whose green had traffic at some committed state.
    moved: BTreeSet<DeploymentId>,
    /// Rollbacks checked (after traffic had moved).
    pub rollbacks_checked: u64,
    /// Blue targets seen open again after those rollbacks.
    pub blue_restored: u64,
    violation: Option<Violation>,
}

impl RollbackRestoresBlue {
    /// Checks every blue/green deployment `entry` leaves running or ended.
    pub fn check(&mut self, entry: &EntryView<'_>) {
        if self.violation.is_some() {
            return;
        }
        for deployment in entry.blue_green() {
            let id = &deployment.deployment_id;
            if !entry.ended.contains(id) {
                if green_open(entry, deployment) {
                    self.moved.insert(id.clone());
                }
                continue;
            }
            if !self.moved.contains(id) || !entry.asks_rollback(deployment) {
                continue;
            }
            self.rollbacks_checked += 1;
            if let Some(problem) = self.unrestored(entry, deployment) {
                self.violation = Some(Violation::new(format!(
                    "entry {}: deployment {id} was rolled back after traffic moved, but {problem}",
                    entry.index
                )));
                return;
            }
        }
        for id in entry.ended {
            self.moved.remove(id);
        }
    }

    /// What is wrong after the rollback: a blue member not open again, or a green target
    /// open, on some route; `None` when the routes are blue's again or blue was being
    /// stopped.
    fn unrestored(&mut self, entry: &EntryView<'_>, deployment: &Deployment) -> Option<String> {
        if deployment.blue_green.is_some_and(|run| run.phase >= BlueGreenPhase::Terminating) {
            return None;
        }
        let runs = |id: NodeId| entry.state.members.contains_key(&id);
        for name in &deployment.traffic_routes {
            let Some(route) = entry.state.routes.get(name) else { continue };
            for (id, weight) in open_weights(entry.state, route) {
                match label_of(deployment, id) {
                    Some(TargetLabel::Blue) if runs(id) => {
                        if weight == 0 {
                            return Some(format!("blue host {id} does not serve route {name}"));
                        }
                        self.blue_restored += 1;
                    }
                    Some(TargetLabel::Green) if weight > 0 => {
                        return Some(format!("green host {id} still takes new traffic on route {name}"));
                    }
                    _ => {}
                }
            }
        }
        None
    }

    /// The verdict so far.
    pub fn verdict(&self) -> Result<(), Violation> {
        self.violation.clone().map_or(Ok(()), Err)
    }
}

/// True when some green target of `deployment` is open on one of its routes.
fn green_open(entry: &EntryView<'_>, deployment: &Deployment) -> bool {
    deployment.traffic_routes.iter().filter_map(|name| entry.state.routes.get(name)).any(|route| {
        open_weights(entry.state, route)
            .into_iter()
            .any(|(id, weight)| weight > 0 && label_of(deployment, id) == Some(TargetLabel::Green))
    })
}

#[cfg(test)]
mod tests {
    use fleetmesh_state::model::deployment::DeploymentStatus;
    use fleetmesh_state::model::ids::UnixMillis;
    use fleetmesh_state::model::members::Member;
    use fleetmesh_state::model::routes::TrafficState;
    use fleetmesh_state::{ClusterState, Command};

    use super::super::route_weights::tests::{blue_green_state, entry_at, entry_with, set_traffic, DEPLOYMENT};
    use super::*;

    fn stop(state: &mut ClusterState) -> Vec<Command> {
        let id = DeploymentId(DEPLOYMENT.into());
        state.deployments.get_mut(&id).expect("deployment").status = DeploymentStatus::Stopped;
        vec![Command::StopDeployment { deployment_id: id, rollback_id: Some(DeploymentId("d-TEST00002".into())) }]
    }

    #[test]
    fn a_rollback_that_leaves_blue_off_or_green_on_is_caught() {
        // Green 3 joined and blue 1 left; a stop with rollback ends the deployment.
        // Blue 1 back and green 3 draining: fine. Blue 1 still draining: a violation
        // naming host 1 (hosts 1–2 are members; a blue host that left the cluster is not
        // held to it).
        let mut state = blue_green_state();
        for id in 1..=4 {
            let address = std::net::SocketAddr::from(([10, 0, 0, id as u8], 7400));
            let member = Member {
                id: NodeId(id),
                listen: address,
                api: address,
                tags: Default::default(),
                joined_at: UnixMillis(0),
                advertise: None,
                instance_name: None,
            };
            state.members.insert(NodeId(id), member);
        }
        set_traffic(&mut state, 3, TrafficState::Serving);
        set_traffic(&mut state, 1, TrafficState::Draining);
        let mut monitor = RollbackRestoresBlue::default();
        monitor.check(&entry_at(&state, 1, &[], &[]));
        let mut restored = state.clone();
        set_traffic(&mut restored, 1, TrafficState::Serving);
        set_traffic(&mut restored, 3, TrafficState::Draining);
        let commands = stop(&mut restored);
        monitor.check(&entry_with(&restored, 2, commands, &[DEPLOYMENT], &[]));
        assert_eq!((monitor.verdict(), monitor.rollbacks_checked, monitor.blue_restored), (Ok(()), 1, 2));

        let mut monitor = RollbackRestoresBlue::default();
        monitor.check(&entry_at(&state, 1, &[], &[]));
        set_traffic(&mut state, 3, TrafficState::Draining);
        let commands = stop(&mut state);
        monitor.check(&entry_with(&state, 2, commands, &[DEPLOYMENT], &[]));
        let violation = monitor.verdict().expect_err("blue left off").to_string();
        assert!(violation.contains("blue host 1 does not serve route web"), "{violation}");

        // The same rollback once blue was being stopped (Terminating): green keeps the
        // route, no violation.
        let id = DeploymentId(DEPLOYMENT.into());
        let deployment = state.deployments.get_mut(&id).expect("deployment");
        deployment.status = DeploymentStatus::InProgress;
        if let Some(run) = deployment.blue_green.as_mut() {
            run.phase = BlueGreenPhase::Terminating;
        }
        set_traffic(&mut state, 3, TrafficState::Serving);
        let mut monitor = RollbackRestoresBlue::default();
        monitor.check(&entry_at(&state, 1, &[], &[]));
        let commands = stop(&mut state);
        monitor.check(&entry_with(&state, 2, commands, &[DEPLOYMENT], &[]));
        assert_eq!((monitor.verdict(), monitor.rollbacks_checked), (Ok(()), 1));
    }
}
