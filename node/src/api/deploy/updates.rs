//! `UpdateApplication` and `UpdateDeploymentGroup` on the leader: the group's request as
//! it stands, the update's members over it, checked as a `CreateDeploymentGroup` would
//! be, proposed whole (`Command::UpdateDeploymentGroup`).

use fleetmesh_model::{
    CreateDeploymentGroupInput, DeploymentGroupInfo, Empty, Operation, UpdateApplicationInput,
    UpdateDeploymentGroupInput, UpdateDeploymentGroupOutput,
};
use fleetmesh_state::model::members::Actor;
use fleetmesh_state::Command;

use super::{commit, writes};
use crate::api::ApiError;
use crate::runtime::Node;

/// Renames an application.
pub(super) async fn update_application(
    node: &Node,
    input: UpdateApplicationInput,
    by: Option<&Actor>,
) -> Result<Empty, ApiError> {
    let command = Command::UpdateApplication {
        application_name: input.application_name,
        new_application_name: input.new_application_name,
    };
    commit(node, command, by).await?;
    Ok(Empty {})
}

/// Changes a group's settings and, with `newDeploymentGroupName`, its name.
pub(super) async fn update_deployment_group(
    node: &Node,
    input: UpdateDeploymentGroupInput,
    by: Option<&Actor>,
) -> Result<UpdateDeploymentGroupOutput, ApiError> {
    let (application, current) = (input.application_name.clone(), input.current_deployment_group_name.clone());
    let now = node.state().read(|state| {
        state.deployment_group(&application, &current).map(|group| DeploymentGroupInfo::from_state(group, state))
    });
    let now = now.ok_or_else(|| {
        ApiError::not_found(format!("deployment group {current} of application {application} does not exist"))
    })?;
    let merged = input.apply_to(CreateDeploymentGroupInput::from(now));
    // The merged group passes the bounds a new one would.
    let operation = Operation::CreateDeploymentGroup(merged);
    operation.check()?;
    let Operation::CreateDeploymentGroup(merged) = operation else {
        return Err(ApiError::internal("the merged group is not a CreateDeploymentGroup input"));
    };
    let spec = writes::group_spec(node, merged)?;
    commit(node, Command::UpdateDeploymentGroup { current_deployment_group_name: current, spec }, by).await?;
    Ok(UpdateDeploymentGroupOutput::default())
}
