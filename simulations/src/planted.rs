//! The planted bug behind `fleetmesh sim --planted-bug`: a planner that breaks the
//! minimum-healthy-hosts rule on purpose, so a run proves that the `min_healthy`
//! invariant catches a planner that takes one target too many out of service.
//!
//! It reaches the real leader through its planner seam
//! ([`fleetmesh_node::leader::Leader::start_with_planner`]); production code has no
//! switch for it.

use fleetmesh_core::rollout::{Action, CodeDeployPlanner, FleetView, Liveness, PlannerSettings, WavePlanner};
use fleetmesh_state::model::deployment::{Deployment, TargetStatus};
use fleetmesh_state::model::ids::UnixMillis;
use fleetmesh_state::model::resources::DeploymentGroup;

/// CodeDeploy's planner, except that every wave it starts takes one more pending target
/// on a live host with it.
#[derive(Clone, Copy, Debug, Default)]
pub struct OneTooMany;

impl WavePlanner for OneTooMany {
    fn plan(
        &self,
        deployment: &Deployment,
        group: &DeploymentGroup,
        fleet: &FleetView,
        now: UnixMillis,
        settings: &PlannerSettings,
    ) -> Vec<Action> {
        let mut actions = CodeDeployPlanner.plan(deployment, group, fleet, now, settings);
        for action in &mut actions {
            let Action::Start(wave) = action else { continue };
            if wave.is_empty() {
                continue;
            }
            let extra = deployment.targets.values().find(|target| {
                target.status == TargetStatus::Pending
                    && !wave.contains(&target.target_id)
                    && fleet.liveness(target.target_id) == Liveness::Alive
            });
            if let Some(extra) = extra {
                wave.push(extra.target_id);
            }
        }
        actions
    }
}
