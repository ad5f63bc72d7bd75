//! The read operations, answered from this node's applied state (`ClusterState`).

use fleetmesh_state::model::deployment::{Deployment, LifecycleEventStatus};
use fleetmesh_state::model::ids::{DeploymentId, RevisionId};
use fleetmesh_state::model::revision::RevisionRecord;
use fleetmesh_state::ClusterState;
use fleetmesh_transport::NodeId;
use serde_json::{json, Value};

use super::{field, optional};
use crate::api::ApiError;

type Answer = Option<Result<Value, ApiError>>;

/// The answer to the read operation `operation`, or `None` when there is no such read.
pub(super) fn answer(operation: &str, body: &Value, state: &ClusterState) -> Answer {
    resources(operation, body, state)
        .or_else(|| revisions(operation, body, state))
        .or_else(|| deployments(operation, body, state))
}

/// Applications, deployment groups and deployment configurations.
fn resources(operation: &str, body: &Value, state: &ClusterState) -> Answer {
    Some(match operation {
        "GetApplication" => field(body, "applicationName").and_then(|name| {
            let application = state
                .applications
                .get(name)
                .ok_or_else(|| ApiError::not_found(format!("application {name} does not exist")))?;
            Ok(json!({ "application": application }))
        }),
        "ListApplications" => Ok(json!({ "applications": state.applications.keys().collect::<Vec<_>>() })),
        "GetDeploymentGroup" => (|| {
            let (application, group) = (field(body, "applicationName")?, field(body, "deploymentGroupName")?);
            let group = state.deployment_group(application, group).ok_or_else(|| {
                ApiError::not_found(format!("deployment group {group} of application {application} does not exist"))
            })?;
            let targets = state.group_targets(group);
            Ok(json!({ "deploymentGroupInfo": group, "targetNodes": targets }))
        })(),
        "ListDeploymentGroups" => existing_application(body, state).map(|application| {
            let groups: Vec<&String> =
                state.deployment_groups.get(application).map(|groups| groups.keys().collect()).unwrap_or_default();
            json!({ "applicationName": application, "deploymentGroups": groups })
        }),
        "GetDeploymentConfig" => field(body, "deploymentConfigName").and_then(|name| {
            let config = state
                .deployment_config(name)
                .ok_or_else(|| ApiError::not_found(format!("deployment configuration {name} does not exist")))?;
            Ok(json!({ "deploymentConfigInfo": config }))
        }),
        "ListDeploymentConfigs" => {
            let mut names: Vec<String> = fleetmesh_state::model::resources::predefined_configs()
                .into_iter()
                .map(|config| config.deployment_config_name)
                .collect();
            names.extend(state.deployment_configs.keys().cloned());
            Ok(json!({ "deploymentConfigsList": names }))
        }
        _ => return None,
    })
}

/// The `applicationName` of the request, if that application exists.
fn existing_application<'a>(body: &'a Value, state: &ClusterState) -> Result<&'a str, ApiError> {
    let application = field(body, "applicationName")?;
    if !state.applications.contains_key(application) {
        return Err(ApiError::not_found(format!("application {application} does not exist")));
    }
    Ok(application)
}

/// Registered revisions.
fn revisions(operation: &str, body: &Value, state: &ClusterState) -> Answer {
    Some(match operation {
        "ListApplicationRevisions" => existing_application(body, state).map(|application| {
            let mut revisions: Vec<&RevisionRecord> =
                state.revisions.values().filter(|revision| revision.application_name == application).collect();
            revisions.sort_by_key(|revision| std::cmp::Reverse(revision.register_time));
            let listed: Vec<Value> = revisions.into_iter().map(revision_summary).collect();
            json!({ "revisions": listed })
        }),
        "GetApplicationRevision" => revision_id(body).and_then(|revision| {
            let record = state
                .revisions
                .get(&revision)
                .ok_or_else(|| ApiError::not_found(format!("revision {revision} does not exist")))?;
            Ok(json!({ "revisionInfo": revision_summary(record), "manifest": record.manifest }))
        }),
        _ => return None,
    })
}

/// Deployments and their targets.
fn deployments(operation: &str, body: &Value, state: &ClusterState) -> Answer {
    Some(match operation {
        "GetDeployment" => {
            deployment(state, body).map(|deployment| json!({ "deploymentInfo": deployment_info(deployment) }))
        }
        "ListDeployments" => {
            let application = optional(body, "applicationName");
            let group = optional(body, "deploymentGroupName");
            let ids: Vec<&DeploymentId> = state
                .deployment_order
                .iter()
                .rev()
                .filter(|id| {
                    state.deployments.get(*id).is_some_and(|deployment| {
                        application.is_none_or(|name| deployment.application_name == name)
                            && group.is_none_or(|name| deployment.deployment_group_name == name)
                    })
                })
                .collect();
            Ok(json!({ "deployments": ids }))
        }
        "ListDeploymentTargets" => deployment(state, body).map(
            |deployment| json!({ "targetIds": deployment.targets.keys().map(ToString::to_string).collect::<Vec<_>>() }),
        ),
        "GetDeploymentTarget" => deployment_target(body, state),
        _ => return None,
    })
}

fn deployment_target(body: &Value, state: &ClusterState) -> Result<Value, ApiError> {
    let deployment = deployment(state, body)?;
    let target_id: NodeId = field(body, "targetId")?
        .trim_start_matches("node-")
        .parse()
        .map_err(|_| ApiError::bad_request("targetId must be a node id"))?;
    let target = deployment.targets.get(&target_id).ok_or_else(|| {
        ApiError::not_found(format!("node {target_id} is not a target of {}", deployment.deployment_id))
    })?;
    Ok(json!({ "deploymentTarget": {
        "deploymentTargetType": "InstanceTarget",
        "instanceTarget": {
            "deploymentId": deployment.deployment_id,
            "targetId": target.target_id.to_string(),
            "status": target.status,
            "lastUpdatedAt": target.last_updated_at,
            "wave": target.wave,
            "lifecycleEvents": target.lifecycle_events,
        }
    }}))
}

pub(super) fn revision_id(body: &Value) -> Result<RevisionId, ApiError> {
    let text = body
        .get("revisionId")
        .or_else(|| body.get("revision").and_then(|revision| revision.get("revisionId")))
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request("missing revisionId"))?;
    text.parse().map_err(|_| ApiError::bad_request(format!("revision id {text:?} is not 64 hex digits")))
}

fn deployment<'a>(state: &'a ClusterState, body: &Value) -> Result<&'a Deployment, ApiError> {
    let id = field(body, "deploymentId")?;
    state
        .deployments
        .get(&DeploymentId(id.to_string()))
        .ok_or_else(|| ApiError::not_found(format!("deployment {id} does not exist")))
}

/// `deploymentInfo` in the AWS shape: the record without its targets, plus the overview.
fn deployment_info(deployment: &Deployment) -> Value {
    let mut info = serde_json::to_value(deployment).unwrap_or_default();
    if let Some(object) = info.as_object_mut() {
        object.remove("targets");
        object.insert("deploymentOverview".into(), json!(deployment.overview()));
        object.insert("revision".into(), json!({ "revisionType": "fleetmesh", "revisionId": deployment.revision_id }));
        object.insert(
            "targetWaves".into(),
            json!(deployment
                .targets
                .values()
                .map(|target| {
                    let current = target
                        .lifecycle_events
                        .iter()
                        .rev()
                        .find(|event| event.status != LifecycleEventStatus::Pending
                            && event.status != LifecycleEventStatus::Skipped)
                        .map(|event| json!({"name": event.lifecycle_event_name, "status": event.status}));
                    json!({"targetId": target.target_id.to_string(), "wave": target.wave, "status": target.status, "currentEvent": current})
                })
                .collect::<Vec<_>>()),
        );
    }
    info
}

pub(super) fn revision_summary(record: &RevisionRecord) -> Value {
    json!({
        "revisionId": record.revision_id,
        "applicationName": record.application_name,
        "description": record.description,
        "sizeBytes": record.size_bytes,
        "uniqueBytes": record.unique_bytes,
        "chunkCount": record.chunk_count,
        "registerTime": record.register_time,
        "registeredBy": record.registered_by,
        "seeds": record.seeds,
        "files": record.manifest.files().count(),
    })
}
