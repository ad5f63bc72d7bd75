//! The `BatchGet*` reads: each the `Get*` of every item named, from the same applied
//! state, in the order asked; and `ListAccessKeys`.

use fleetmesh_model::{
    AccessKeyInfo, ApplicationInfo, BatchGetApplicationRevisionsInput, BatchGetApplicationRevisionsOutput,
    BatchGetApplicationsOutput, BatchGetDeploymentGroupsOutput, BatchGetDeploymentTargetsOutput,
    BatchGetDeploymentsOutput, DeploymentGroupInfo, DeploymentInput, GetDeploymentTargetInput, ListAccessKeysOutput,
    Operation, Output, RevisionInfo, RevisionLocation, RevisionRef, RevisionSummary,
};
use fleetmesh_state::ClusterState;

use crate::api::ApiError;

/// The answer to a batch read (or `ListAccessKeys`); `None` for other operations.
pub(super) fn answer(operation: &Operation, state: &ClusterState) -> Option<Result<Output, ApiError>> {
    Some(match operation {
        Operation::BatchGetApplications(input) => input
            .application_names
            .iter()
            .map(|name| {
                state
                    .applications
                    .get(name)
                    .map(ApplicationInfo::from)
                    .ok_or_else(|| ApiError::not_found(format!("application {name} does not exist")))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|applications_info| Output::BatchGetApplications(BatchGetApplicationsOutput { applications_info })),
        Operation::BatchGetDeploymentGroups(input) => (|| {
            let application = &input.application_name;
            if !state.applications.contains_key(application) {
                return Err(ApiError::not_found(format!("application {application} does not exist")));
            }
            let (mut found, mut missing) = (Vec::new(), Vec::new());
            for name in &input.deployment_group_names {
                match state.deployment_group(application, name) {
                    Some(group) => found.push(DeploymentGroupInfo::from_state(group, state)),
                    None => missing.push(name.as_str()),
                }
            }
            let error_message = (!missing.is_empty()).then(|| {
                format!("deployment groups of application {application} that do not exist: {}", missing.join(", "))
            });
            Ok(Output::BatchGetDeploymentGroups(BatchGetDeploymentGroupsOutput {
                deployment_groups_info: found,
                error_message,
            }))
        })(),
        Operation::BatchGetDeployments(input) => (|| {
            let mut deployments_info = Vec::new();
            for id in input.deployment_ids.iter().filter(|id| state.deployments.contains_key(id)) {
                let get = Operation::GetDeployment(DeploymentInput { deployment_id: id.clone() });
                if let Output::GetDeployment(output) = super::reads::answer(&get, state)? {
                    deployments_info.push(output.deployment_info);
                }
            }
            Ok(Output::BatchGetDeployments(BatchGetDeploymentsOutput { deployments_info }))
        })(),
        Operation::BatchGetDeploymentTargets(input) => (|| {
            let mut deployment_targets = Vec::new();
            for target_id in &input.target_ids {
                let get = Operation::GetDeploymentTarget(GetDeploymentTargetInput {
                    deployment_id: input.deployment_id.clone(),
                    target_id: target_id.clone(),
                });
                if let Output::GetDeploymentTarget(output) = super::reads::answer(&get, state)? {
                    deployment_targets.push(output.deployment_target);
                }
            }
            Ok(Output::BatchGetDeploymentTargets(BatchGetDeploymentTargetsOutput { deployment_targets }))
        })(),
        Operation::BatchGetApplicationRevisions(input) => revisions(input, state),
        Operation::ListAccessKeys(_) => {
            let keys = state.cluster.as_ref().map(|cluster| cluster.access_keys.as_slice()).unwrap_or_default();
            let access_keys = keys
                .iter()
                .map(|key| AccessKeyInfo {
                    access_key_id: key.access_key_id.clone(),
                    create_time: key.created_at.into(),
                    created_by: key.created_by.as_ref().map(ToString::to_string),
                })
                .collect();
            Ok(Output::ListAccessKeys(ListAccessKeysOutput { access_keys }))
        }
        _ => return None,
    })
}

/// `BatchGetApplicationRevisions`: the revisions of the application that exist, in the
/// order asked, and which do not.
fn revisions(input: &BatchGetApplicationRevisionsInput, state: &ClusterState) -> Result<Output, ApiError> {
    let application = &input.application_name;
    if !state.applications.contains_key(application) {
        return Err(ApiError::not_found(format!("application {application} does not exist")));
    }
    let (mut revisions, mut missing) = (Vec::new(), Vec::new());
    for location in &input.revisions {
        let named = RevisionRef { revision_id: None, revision: Some(location.clone()) };
        let id = match named.resolve_in(state, Some(application)) {
            Ok(id) => id,
            Err(error) if error.kind == fleetmesh_model::ErrorKind::NotFound => {
                missing.push(error.message);
                continue;
            }
            Err(error) => return Err(error.into()),
        };
        match state.revisions.get(&id).filter(|record| record.application_name == *application) {
            Some(record) => revisions.push(RevisionInfo {
                revision_location: RevisionLocation::of(record),
                generic_revision_info: RevisionSummary::from(record),
            }),
            None => missing.push(id.to_string()),
        }
    }
    let error_message = (!missing.is_empty())
        .then(|| format!("revisions of application {application} that do not exist: {}", missing.join(", ")));
    Ok(Output::BatchGetApplicationRevisions(BatchGetApplicationRevisionsOutput {
        application_name: application.clone(),
        error_message,
        revisions,
    }))
}
