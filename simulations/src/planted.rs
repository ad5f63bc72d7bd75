//! The planted bugs behind `fleetmesh sim --planted-bug`: planners that break a rule on
//! purpose, so a run proves that an invariant catches them.
//! - [`OneTooMany`] (the in-place scenarios) takes one target too many out of service:
//!   `min_healthy_hosts` must catch it;
//! - [`BlueLeavesEarly`] (`blue-green-chaos`) starts blue's block events together with
//!   green's install, so blue leaves the route before green joins it:
//!   `route_never_empty` must catch it.
//!
//! They reach the real leader through its planner seam
//! ([`fleetmesh_node::leader::Leader::start_with_planner`]); production code has no
//! switch for them.

use std::sync::Arc;

use fleetmesh_core::rollout::{Action, CodeDeployPlanner, FleetView, Liveness, PlannerSettings, WavePlanner};
use fleetmesh_state::model::blue_green::TargetLabel;
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

/// CodeDeploy's planner, except that a blue/green deployment's first wave (its green
/// fleet) takes every pending blue target with it: blue runs its block events while
/// green is still installing.
#[derive(Clone, Copy, Debug, Default)]
pub struct BlueLeavesEarly;

impl WavePlanner for BlueLeavesEarly {
    fn plan(
        &self,
        deployment: &Deployment,
        group: &DeploymentGroup,
        fleet: &FleetView,
        now: UnixMillis,
        settings: &PlannerSettings,
    ) -> Vec<Action> {
        let mut actions = CodeDeployPlanner.plan(deployment, group, fleet, now, settings);
        if deployment.blue_green.is_none() {
            return actions;
        }
        for action in &mut actions {
            let Action::Start(wave) = action else { continue };
            let blue = deployment.targets.values().filter(|target| {
                target.target_label == Some(TargetLabel::Blue) && target.status == TargetStatus::Pending
            });
            wave.extend(blue.map(|target| target.target_id));
        }
        actions
    }
}

/// Which planted bug a run's leaders plan with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlantedBug {
    /// [`OneTooMany`].
    OneTooMany,
    /// [`BlueLeavesEarly`].
    BlueLeavesEarly,
}

impl PlantedBug {
    /// The planner that plants it.
    pub fn planner(self) -> Arc<dyn WavePlanner> {
        match self {
            Self::OneTooMany => Arc::new(OneTooMany),
            Self::BlueLeavesEarly => Arc::new(BlueLeavesEarly),
        }
    }
}
