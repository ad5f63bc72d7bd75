//! The read operations, answered from this node's applied state (`ClusterState`).

use fleetmesh_model::page;
use fleetmesh_model::{
    ApplicationInfo, DeploymentConfigInfo, DeploymentGroupInfo, DeploymentInfo, DeploymentTarget, DeploymentTargetType,
    EcsTarget, EpochSeconds, GetApplicationOutput, GetApplicationRevisionOutput, GetDeploymentConfigOutput,
    GetDeploymentGroupOutput, GetDeploymentOutput, GetDeploymentTargetOutput, InstanceTarget, LambdaTarget,
    ListApplicationRevisionsOutput, ListApplicationsOutput, ListDeploymentConfigsOutput, ListDeploymentGroupsOutput,
    ListDeploymentTargetsOutput, ListDeploymentsInput, ListDeploymentsOutput, Operation, Output, RevisionLocation,
    RevisionSummary, UnknownLifecycleEvent, LIST_PAGE_SIZE,
};
use fleetmesh_state::model::deployment::Deployment;
use fleetmesh_state::model::ids::DeploymentId;
use fleetmesh_state::model::revision::RevisionRecord;
use fleetmesh_state::ClusterState;
use fleetmesh_transport::NodeId;

use crate::api::ApiError;

type Answer = Option<Result<Output, ApiError>>;

/// The answer to the read `operation`.
///
/// # Errors
/// What the operation refers to does not exist, or `operation` is not a read.
pub(super) fn answer(operation: &Operation, state: &ClusterState) -> Result<Output, ApiError> {
    resources(operation, state)
        .or_else(|| revisions(operation, state))
        .or_else(|| deployments(operation, state))
        .or_else(|| super::batch::answer(operation, state))
        .or_else(|| super::instances::read(operation, state))
        .or_else(|| match operation {
            Operation::ListEvents(input) => {
                Some(fleetmesh_model::list_events(state, input).map(Output::ListEvents).map_err(ApiError::from))
            }
            _ => None,
        })
        .unwrap_or_else(|| Err(ApiError::internal(format!("{} is not a read of the state", operation.name()))))
}

/// Applications, deployment groups and deployment configurations.
fn resources(operation: &Operation, state: &ClusterState) -> Answer {
    Some(match operation {
        Operation::GetApplication(input) => {
            let name = &input.application_name;
            state
                .applications
                .get(name)
                .ok_or_else(|| ApiError::not_found(format!("application {name} does not exist")))
                .map(|application| {
                    Output::GetApplication(GetApplicationOutput { application: ApplicationInfo::from(application) })
                })
        }
        Operation::ListApplications(input) => {
            let names = state.applications.keys().cloned().collect();
            by_name(names, input.next_token.as_deref()).map(|(applications, next_token)| {
                Output::ListApplications(ListApplicationsOutput { applications, next_token })
            })
        }
        Operation::GetDeploymentGroup(input) => {
            let (application, group) = (&input.application_name, &input.deployment_group_name);
            state
                .deployment_group(application, group)
                .ok_or_else(|| {
                    ApiError::not_found(format!("deployment group {group} of application {application} does not exist"))
                })
                .map(|group| {
                    Output::GetDeploymentGroup(GetDeploymentGroupOutput {
                        deployment_group_info: DeploymentGroupInfo::from_state(group, state),
                        target_nodes: state.group_targets(group),
                    })
                })
        }
        Operation::ListDeploymentGroups(input) => {
            existing_application(&input.application_name, state).and_then(|name| {
                let groups = state.deployment_groups.get(name).map(|groups| groups.keys().cloned().collect());
                let (deployment_groups, next_token) = by_name(groups.unwrap_or_default(), input.next_token.as_deref())?;
                Ok(Output::ListDeploymentGroups(ListDeploymentGroupsOutput {
                    application_name: name.to_string(),
                    deployment_groups,
                    next_token,
                }))
            })
        }
        Operation::GetDeploymentConfig(input) => {
            let name = &input.deployment_config_name;
            state
                .deployment_config(name)
                .ok_or_else(|| ApiError::not_found(format!("deployment configuration {name} does not exist")))
                .map(|config| {
                    let deployment_config_info = DeploymentConfigInfo::from(&config);
                    Output::GetDeploymentConfig(GetDeploymentConfigOutput { deployment_config_info })
                })
        }
        Operation::ListDeploymentConfigs(input) => {
            let predefined = fleetmesh_state::model::platform_configs::predefined_configs_at(state.feature_level);
            let mut names: Vec<String> = predefined.into_iter().map(|config| config.deployment_config_name).collect();
            names.extend(state.deployment_configs.keys().cloned());
            by_name(names, input.next_token.as_deref()).map(|(deployment_configs_list, next_token)| {
                Output::ListDeploymentConfigs(ListDeploymentConfigsOutput { deployment_configs_list, next_token })
            })
        }
        _ => return None,
    })
}

/// The page of `names` after `token`.
fn by_name(names: Vec<String>, token: Option<&str>) -> Result<(Vec<String>, Option<String>), ApiError> {
    Ok(page(names, token, LIST_PAGE_SIZE, Clone::clone)?)
}

/// `name`, if that application exists.
fn existing_application<'a>(name: &'a str, state: &ClusterState) -> Result<&'a str, ApiError> {
    if !state.applications.contains_key(name) {
        return Err(ApiError::not_found(format!("application {name} does not exist")));
    }
    Ok(name)
}

/// Registered revisions.
fn revisions(operation: &Operation, state: &ClusterState) -> Answer {
    Some(match operation {
        Operation::ListApplicationRevisions(input) => {
            existing_application(&input.application_name, state).and_then(|application| {
                let mut revisions: Vec<&RevisionRecord> =
                    state.revisions.values().filter(|revision| revision.application_name == application).collect();
                revisions.sort_by_key(|revision| std::cmp::Reverse(revision.register_time));
                let token = input.next_token.as_deref();
                let (revisions, next_token) =
                    page(revisions, token, LIST_PAGE_SIZE, |revision| revision.revision_id.to_string())?;
                let revisions = revisions.into_iter().map(RevisionSummary::from).collect();
                Ok(Output::ListApplicationRevisions(ListApplicationRevisionsOutput { revisions, next_token }))
            })
        }
        Operation::GetApplicationRevision(input) => (|| {
            let revision = input.revision.resolve_in(state, input.application_name.as_deref())?;
            let record = state
                .revisions
                .get(&revision)
                .filter(|record| input.application_name.as_ref().is_none_or(|name| *name == record.application_name))
                .ok_or_else(|| ApiError::not_found(format!("revision {revision} does not exist")))?;
            Ok(Output::GetApplicationRevision(GetApplicationRevisionOutput {
                application_name: record.application_name.clone(),
                revision: RevisionLocation::of(record),
                revision_info: RevisionSummary::from(record),
                manifest: record.manifest.clone(),
            }))
        })(),
        _ => return None,
    })
}

/// Deployments and their targets.
fn deployments(operation: &Operation, state: &ClusterState) -> Answer {
    Some(match operation {
        Operation::GetDeployment(input) => deployment(state, &input.deployment_id).and_then(|deployment| {
            let rollback = deployment
                .rollback_info
                .as_ref()
                .and_then(|info| info.rollback_deployment_id.as_ref())
                .and_then(|id| state.deployments.get(id));
            let mut deployment_info = DeploymentInfo::from_state(deployment).map_err(corrupt)?.with_rollback(rollback);
            // Where the revision came from (an S3 object, a Git commit), as it was registered.
            deployment_info.revision = RevisionLocation::in_state(state, deployment.revision_id);
            Ok(Output::GetDeployment(GetDeploymentOutput { deployment_info }))
        }),
        Operation::ListDeployments(input) => list_deployments(input, state).map(Output::ListDeployments),
        Operation::ListDeploymentTargets(input) => deployment(state, &input.deployment_id).and_then(|deployment| {
            let lambda = deployment.shift.iter().map(|run| run.spec.target_id());
            let target_ids = deployment.targets.keys().map(ToString::to_string).chain(lambda).collect();
            let (target_ids, next_token) = page(target_ids, input.next_token.as_deref(), LIST_PAGE_SIZE, Clone::clone)?;
            Ok(Output::ListDeploymentTargets(ListDeploymentTargetsOutput { target_ids, next_token }))
        }),
        Operation::GetDeploymentTarget(input) => (|| {
            let deployment = deployment(state, &input.deployment_id)?;
            let ecs_target = EcsTarget::from_state(deployment).map_err(corrupt)?;
            let lambda_target = LambdaTarget::from_state(deployment).map_err(corrupt)?;
            let platform = ecs_target.as_ref().map(|target| (&target.target_id, DeploymentTargetType::EcsTarget));
            let platform = platform
                .or(lambda_target.as_ref().map(|target| (&target.target_id, DeploymentTargetType::LambdaTarget)));
            if let Some((target_id, deployment_target_type)) = platform {
                if *target_id != input.target_id {
                    return Err(ApiError::not_found(format!(
                        "{} is not a target of {}; its target is {target_id}",
                        input.target_id, deployment.deployment_id
                    )));
                }
                return Ok(Output::GetDeploymentTarget(GetDeploymentTargetOutput {
                    deployment_target: DeploymentTarget {
                        deployment_target_type,
                        instance_target: None,
                        lambda_target,
                        ecs_target,
                    },
                }));
            }
            let target_id: NodeId = input
                .target_id
                .trim_start_matches("node-")
                .parse()
                .map_err(|_| ApiError::invalid("targetId", "must be a node id (7 or node-7)"))?;
            let target = deployment.targets.get(&target_id).ok_or_else(|| {
                ApiError::not_found(format!("node {target_id} is not a target of {}", deployment.deployment_id))
            })?;
            let instance_target = InstanceTarget::from_state(deployment, target).map_err(corrupt)?;
            Ok(Output::GetDeploymentTarget(GetDeploymentTargetOutput {
                deployment_target: DeploymentTarget {
                    deployment_target_type: DeploymentTargetType::InstanceTarget,
                    instance_target: Some(instance_target),
                    lambda_target: None,
                    ecs_target: None,
                },
            }))
        })(),
        _ => return None,
    })
}

/// `ListDeployments`: newest first, filtered by application, group, status and creation time.
fn list_deployments(input: &ListDeploymentsInput, state: &ClusterState) -> Result<ListDeploymentsOutput, ApiError> {
    let application = input.application_name.as_deref().filter(|name| !name.is_empty());
    let group = input.deployment_group_name.as_deref().filter(|name| !name.is_empty());
    let deployments = state
        .deployment_order
        .iter()
        .rev()
        .filter(|id| {
            state.deployments.get(*id).is_some_and(|deployment| {
                application.is_none_or(|name| deployment.application_name == name)
                    && group.is_none_or(|name| deployment.deployment_group_name == name)
                    && (input.include_only_statuses.is_empty()
                        || input.include_only_statuses.contains(&deployment.status))
                    && input
                        .create_time_range
                        .is_none_or(|range| range.contains(EpochSeconds::from(deployment.create_time)))
            })
        })
        .cloned()
        .collect();
    let (deployments, next_token) =
        page(deployments, input.next_token.as_deref(), LIST_PAGE_SIZE, ToString::to_string)?;
    Ok(ListDeploymentsOutput { deployments, next_token })
}

fn deployment<'a>(state: &'a ClusterState, id: &DeploymentId) -> Result<&'a Deployment, ApiError> {
    state.deployments.get(id).ok_or_else(|| ApiError::not_found(format!("deployment {id} does not exist")))
}

/// A deployment record this release cannot show (an event name that is not CodeDeploy's).
fn corrupt(error: UnknownLifecycleEvent) -> ApiError {
    ApiError::internal(format!("the deployment record holds a lifecycle event this release does not know: {error}"))
}
