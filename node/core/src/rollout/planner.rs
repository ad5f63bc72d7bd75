//! The planner as a seam: the leader's engine asks a [`WavePlanner`] what to do, and
//! production always answers with [`CodeDeployPlanner`], the rules of [`plan`].
//!
//! The seam exists so that tests and the simulator can run the real engine with a
//! planner of their own — a deliberately wrong one, to prove that the property checks
//! and the simulator's invariants notice a planner that breaks the minimum-healthy-hosts
//! rule — without a switch in production code. The next deployment types (blue/green,
//! canary, linear) are the next implementations.

use std::fmt;

use fleetmesh_state::model::deployment::Deployment;
use fleetmesh_state::model::ids::UnixMillis;
use fleetmesh_state::model::resources::DeploymentGroup;

use super::{plan, Action, FleetView, PlannerSettings};

/// Decides what to do now for one deployment (see [`plan`] for the contract).
pub trait WavePlanner: Send + Sync + fmt::Debug {
    /// The actions for `deployment` now; `[]` means nothing until an input changes.
    fn plan(
        &self,
        deployment: &Deployment,
        group: &DeploymentGroup,
        fleet: &FleetView,
        now: UnixMillis,
        settings: &PlannerSettings,
    ) -> Vec<Action>;
}

/// CodeDeploy's in-place rules: [`plan`].
#[derive(Clone, Copy, Debug, Default)]
pub struct CodeDeployPlanner;

impl WavePlanner for CodeDeployPlanner {
    fn plan(
        &self,
        deployment: &Deployment,
        group: &DeploymentGroup,
        fleet: &FleetView,
        now: UnixMillis,
        settings: &PlannerSettings,
    ) -> Vec<Action> {
        plan(deployment, group, fleet, now, settings)
    }
}
