//! `PlanDeployment` (`create-deployment --dry-run`, issue 14 item 5): the waves and
//! bakes a `CreateDeployment` of the same input would run now. It applies the
//! `CreateDeployment` command to a copy of this node's applied state (so every refusal
//! is the real one: no such group, a deployment already running, …), then runs the
//! planner on the copy's record ([`rollout::dry_run`]) with every matching host alive.
//! Nothing is proposed and the node's state is not touched.

use fleetmesh_core::rollout::{self, FleetView, PlannedEnd, PlannedStep};
use fleetmesh_model::{PlanDeploymentInput, PlanDeploymentOutput, PlannedStepInfo};
use fleetmesh_state::model::ids::DeploymentId;
use fleetmesh_state::{Command, Outcome, Proposal};

use super::writes::deployment_spec;
use crate::api::ApiError;
use crate::runtime::Node;

/// Plans `input` on a copy of the applied state.
///
/// # Errors
/// What `CreateDeployment` would answer for the same input.
pub(super) fn plan_deployment(node: &Node, input: PlanDeploymentInput) -> Result<PlanDeploymentOutput, ApiError> {
    let spec = deployment_spec(input)?;
    let deployment_id = DeploymentId::from_random(node.random_bytes());
    let now = node.clock().now();
    let settings = node.settings().planner;
    let mut copy = node.state().read(Clone::clone);
    let (application, group_name) = (spec.application_name.clone(), spec.deployment_group_name.clone());
    let command = Command::CreateDeployment { spec, deployment_id: deployment_id.clone() };
    let response = copy.apply(&Proposal::new(now, vec![command]));
    if let Some(Outcome::Rejected(error)) = response.outcomes.first() {
        return Err(error.clone().into());
    }
    let deployment = copy
        .deployments
        .get(&deployment_id)
        .ok_or_else(|| ApiError::internal("the planned deployment was not created on the copy"))?;
    let group = copy
        .deployment_group(&application, &group_name)
        .ok_or_else(|| ApiError::internal("the planned deployment's group is missing on the copy"))?;
    let fleet = FleetView::all_alive(deployment.targets.keys().copied());
    let answer = rollout::dry_run(deployment, group, &fleet, now, &settings);
    let mut wave = 0;
    let steps = answer
        .steps
        .into_iter()
        .map(|step| match step {
            PlannedStep::Wave(targets) => {
                wave += 1;
                PlannedStepInfo {
                    wave: Some(wave),
                    target_ids: Some(targets.iter().map(ToString::to_string).collect()),
                    ..PlannedStepInfo::default()
                }
            }
            PlannedStep::Bake(ms) => PlannedStepInfo { bake_seconds: Some(ms as f64 / 1000.0), ..Default::default() },
            PlannedStep::Traffic(words) => PlannedStepInfo { traffic: Some(words), ..Default::default() },
        })
        .collect();
    let (outcome, error_information) = match answer.end {
        PlannedEnd::Finished { succeeded: true, .. } => ("Succeeded", None),
        PlannedEnd::Finished { succeeded: false, error } => ("Failed", error),
        PlannedEnd::Stalled => ("Stalled", None),
    };
    Ok(PlanDeploymentOutput {
        deployment_config_name: deployment.deployment_config_name.clone(),
        steps,
        outcome: outcome.to_string(),
        error_information,
    })
}
