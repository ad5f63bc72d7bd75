//! CodeDeploy-shaped operations: `POST /v1/deploy/<Operation>` with the AWS API's JSON
//! field names, handled on the leader. The same handlers can later sit behind
//! CodeDeploy's own wire protocol (AWS JSON 1.1, `X-Amz-Target`).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use fleetmesh_state::model::deployment::{Deployment, DeploymentCreator};
use fleetmesh_state::model::ids::{DeploymentId, RevisionId};
use fleetmesh_state::model::resources::{
    validate_name, AutoRollbackConfiguration, ComputePlatform, FileExistsBehavior, MinimumHealthyHosts,
    MinimumHealthyHostsType, TagFilter, TargetSelector, ONE_AT_A_TIME,
};
use fleetmesh_state::model::revision::{Manifest, RevisionRecord};
use fleetmesh_state::{ClusterState, Command, DeploymentGroupSpec, DeploymentSpec, Outcome};
use fleetmesh_transport::NodeId;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{Api, ApiError};
use crate::runtime::Node;

pub(super) fn router() -> Router<Arc<Api>> {
    Router::new()
        .route("/v1/deploy/{operation}", post(operation))
        .route("/v1/revisions/{revision}/distribution", get(distribution))
}

type ApiResult = Result<Json<Value>, ApiError>;

fn field<'a>(body: &'a Value, name: &str) -> Result<&'a str, ApiError> {
    body.get(name)
        .and_then(Value::as_str)
        .filter(|text| !text.is_empty())
        .ok_or_else(|| ApiError::bad_request(format!("missing {name}")))
}

fn optional<'a>(body: &'a Value, name: &str) -> Option<&'a str> {
    body.get(name).and_then(Value::as_str).filter(|text| !text.is_empty())
}

fn parse<T: for<'de> Deserialize<'de>>(value: &Value, what: &str) -> Result<T, ApiError> {
    serde_json::from_value(value.clone()).map_err(|error| ApiError::bad_request(format!("invalid {what}: {error}")))
}

fn random_id(node: &Node) -> String {
    let bytes: [u8; 16] = node.random_bytes();
    let hex = hex::encode(bytes);
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

async fn commit(node: &Node, command: Command) -> Result<(), ApiError> {
    match node.propose_one(command).await? {
        Outcome::Rejected(error) => Err(error.into()),
        _ => Ok(()),
    }
}

async fn operation(State(api): State<Arc<Api>>, Path(operation): Path<String>, body: Option<Json<Value>>) -> ApiResult {
    let body = body.map(|Json(body)| body).unwrap_or_else(|| json!({}));
    let node = &api.node;
    match operation.as_str() {
        "CreateApplication" => create_application(node, &body).await,
        "GetApplication" => read(node, |state| {
            let name = field(&body, "applicationName")?;
            let application = state
                .applications
                .get(name)
                .ok_or_else(|| ApiError::not_found(format!("application {name} does not exist")))?;
            Ok(json!({ "application": application }))
        }),
        "ListApplications" => {
            read(node, |state| Ok(json!({ "applications": state.applications.keys().collect::<Vec<_>>() })))
        }
        "DeleteApplication" => {
            commit(node, Command::DeleteApplication { name: field(&body, "applicationName")?.to_string() }).await?;
            Ok(Json(json!({})))
        }
        "CreateDeploymentGroup" => create_deployment_group(node, &body).await,
        "GetDeploymentGroup" => read(node, |state| {
            let (application, group) = (field(&body, "applicationName")?, field(&body, "deploymentGroupName")?);
            let group = state.deployment_group(application, group).ok_or_else(|| {
                ApiError::not_found(format!("deployment group {group} of application {application} does not exist"))
            })?;
            let targets = state.group_targets(group);
            Ok(json!({ "deploymentGroupInfo": group, "targetNodes": targets }))
        }),
        "ListDeploymentGroups" => read(node, |state| {
            let application = field(&body, "applicationName")?;
            if !state.applications.contains_key(application) {
                return Err(ApiError::not_found(format!("application {application} does not exist")));
            }
            let groups: Vec<&String> =
                state.deployment_groups.get(application).map(|groups| groups.keys().collect()).unwrap_or_default();
            Ok(json!({ "applicationName": application, "deploymentGroups": groups }))
        }),
        "DeleteDeploymentGroup" => {
            commit(
                node,
                Command::DeleteDeploymentGroup {
                    application_name: field(&body, "applicationName")?.to_string(),
                    deployment_group_name: field(&body, "deploymentGroupName")?.to_string(),
                },
            )
            .await?;
            Ok(Json(json!({})))
        }
        "CreateDeploymentConfig" => create_deployment_config(node, &body).await,
        "GetDeploymentConfig" => read(node, |state| {
            let name = field(&body, "deploymentConfigName")?;
            let config = state
                .deployment_config(name)
                .ok_or_else(|| ApiError::not_found(format!("deployment configuration {name} does not exist")))?;
            Ok(json!({ "deploymentConfigInfo": config }))
        }),
        "ListDeploymentConfigs" => read(node, |state| {
            let mut names: Vec<String> = fleetmesh_state::model::resources::predefined_configs()
                .into_iter()
                .map(|config| config.deployment_config_name)
                .collect();
            names.extend(state.deployment_configs.keys().cloned());
            Ok(json!({ "deploymentConfigsList": names }))
        }),
        "DeleteDeploymentConfig" => {
            commit(node, Command::DeleteDeploymentConfig { name: field(&body, "deploymentConfigName")?.to_string() })
                .await?;
            Ok(Json(json!({})))
        }
        "RegisterApplicationRevision" => register_revision(node, &body).await,
        "ListApplicationRevisions" => read(node, |state| {
            let application = field(&body, "applicationName")?;
            if !state.applications.contains_key(application) {
                return Err(ApiError::not_found(format!("application {application} does not exist")));
            }
            let mut revisions: Vec<&RevisionRecord> =
                state.revisions.values().filter(|revision| revision.application_name == application).collect();
            revisions.sort_by_key(|revision| std::cmp::Reverse(revision.register_time));
            let listed: Vec<Value> = revisions.into_iter().map(revision_summary).collect();
            Ok(json!({ "revisions": listed }))
        }),
        "GetApplicationRevision" => read(node, |state| {
            let revision = revision_id(&body)?;
            let record = state
                .revisions
                .get(&revision)
                .ok_or_else(|| ApiError::not_found(format!("revision {revision} does not exist")))?;
            Ok(json!({ "revisionInfo": revision_summary(record), "manifest": record.manifest }))
        }),
        "Prefetch" => prefetch(node, &body).await,
        "CreateDeployment" => create_deployment(node, &body).await,
        "GetDeployment" => read(node, |state| {
            let deployment = deployment(state, &body)?;
            Ok(json!({ "deploymentInfo": deployment_info(deployment) }))
        }),
        "ListDeployments" => read(node, |state| {
            let application = optional(&body, "applicationName");
            let group = optional(&body, "deploymentGroupName");
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
        }),
        "ListDeploymentTargets" => read(node, |state| {
            let deployment = deployment(state, &body)?;
            Ok(json!({ "targetIds": deployment.targets.keys().map(ToString::to_string).collect::<Vec<_>>() }))
        }),
        "GetDeploymentTarget" => read(node, |state| {
            let deployment = deployment(state, &body)?;
            let target_id: NodeId = field(&body, "targetId")?
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
        }),
        "StopDeployment" => stop_deployment(node, &body).await,
        other => Err(ApiError::not_found(format!("unknown operation {other}"))),
    }
}

fn read(node: &Node, query: impl FnOnce(&ClusterState) -> Result<Value, ApiError>) -> ApiResult {
    node.state().read(query).map(Json)
}

fn revision_id(body: &Value) -> Result<RevisionId, ApiError> {
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
pub fn deployment_info(deployment: &Deployment) -> Value {
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
                        .find(|event| event.status != fleetmesh_state::model::deployment::LifecycleEventStatus::Pending
                            && event.status != fleetmesh_state::model::deployment::LifecycleEventStatus::Skipped)
                        .map(|event| json!({"name": event.lifecycle_event_name, "status": event.status}));
                    json!({"targetId": target.target_id.to_string(), "wave": target.wave, "status": target.status, "currentEvent": current})
                })
                .collect::<Vec<_>>()),
        );
    }
    info
}

fn revision_summary(record: &RevisionRecord) -> Value {
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

async fn create_application(node: &Node, body: &Value) -> ApiResult {
    let name = field(body, "applicationName")?.to_string();
    let platform_text = optional(body, "computePlatform").unwrap_or("Server");
    let compute_platform = ComputePlatform::parse(platform_text).ok_or_else(|| {
        ApiError::bad_request(format!("computePlatform must be Server, Lambda or ECS, got {platform_text:?}"))
    })?;
    let application_id = random_id(node);
    commit(node, Command::CreateApplication { name, application_id: application_id.clone(), compute_platform }).await?;
    Ok(Json(json!({ "applicationId": application_id })))
}

async fn create_deployment_group(node: &Node, body: &Value) -> ApiResult {
    let tag_filters: Vec<TagFilter> = match body.get("onPremisesInstanceTagFilters") {
        Some(value) if !value.is_null() => parse(value, "onPremisesInstanceTagFilters")?,
        _ => Vec::new(),
    };
    let tag_set: Vec<Vec<TagFilter>> =
        match body.get("onPremisesTagSet").and_then(|set| set.get("onPremisesTagSetList")) {
            Some(value) if !value.is_null() => parse(value, "onPremisesTagSet")?,
            _ => Vec::new(),
        };
    for filter in tag_filters.iter().chain(tag_set.iter().flatten()) {
        validate_tag_filter(filter)?;
    }
    if tag_filters.is_empty() && tag_set.iter().all(Vec::is_empty) {
        return Err(ApiError::bad_request("a deployment group needs at least one tag filter (--tag KEY=VALUE)"));
    }
    let auto_rollback: AutoRollbackConfiguration = match body.get("autoRollbackConfiguration") {
        Some(value) if !value.is_null() => parse(value, "autoRollbackConfiguration")?,
        _ => AutoRollbackConfiguration::default(),
    };
    let spec = DeploymentGroupSpec {
        application_name: field(body, "applicationName")?.to_string(),
        deployment_group_name: field(body, "deploymentGroupName")?.to_string(),
        deployment_config_name: optional(body, "deploymentConfigName").unwrap_or(ONE_AT_A_TIME).to_string(),
        target_selector: TargetSelector {
            tag_filters,
            tag_set: tag_set.into_iter().filter(|group| !group.is_empty()).collect(),
        },
        auto_rollback_configuration: auto_rollback,
        update_outdated_instances: optional(body, "outdatedInstancesStrategy") != Some("IGNORE"),
    };
    let deployment_group_id = random_id(node);
    commit(node, Command::CreateDeploymentGroup { spec, deployment_group_id: deployment_group_id.clone() }).await?;
    Ok(Json(json!({ "deploymentGroupId": deployment_group_id })))
}

fn validate_tag_filter(filter: &TagFilter) -> Result<(), ApiError> {
    use fleetmesh_state::model::resources::TagFilterType;
    let key_ok = filter.key.as_ref().is_some_and(|key| !key.is_empty() && key.len() <= 128);
    let value_ok = filter.value.as_ref().is_some_and(|value| value.len() <= 256);
    let ok = match filter.filter_type {
        TagFilterType::KeyOnly => key_ok,
        TagFilterType::ValueOnly => value_ok,
        TagFilterType::KeyAndValue => key_ok && value_ok,
    };
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "tag filter {filter:?} is incomplete or too long (key ≤ 128, value ≤ 256 characters)"
        )))
    }
}

async fn create_deployment_config(node: &Node, body: &Value) -> ApiResult {
    let name = field(body, "deploymentConfigName")?.to_string();
    validate_name("deployment configuration name", &name).map_err(ApiError::bad_request)?;
    let rule = body.get("minimumHealthyHosts").ok_or_else(|| ApiError::bad_request("missing minimumHealthyHosts"))?;
    let minimum_healthy_hosts: MinimumHealthyHosts = parse(rule, "minimumHealthyHosts")?;
    if minimum_healthy_hosts.kind == MinimumHealthyHostsType::MostConcurrency {
        return Err(ApiError::bad_request("minimumHealthyHosts type must be HOST_COUNT or FLEET_PERCENT"));
    }
    let platform_text = optional(body, "computePlatform").unwrap_or("Server");
    let compute_platform = ComputePlatform::parse(platform_text).ok_or_else(|| {
        ApiError::bad_request(format!("computePlatform must be Server, Lambda or ECS, got {platform_text:?}"))
    })?;
    let deployment_config_id = random_id(node);
    commit(
        node,
        Command::CreateDeploymentConfig {
            name,
            deployment_config_id: deployment_config_id.clone(),
            compute_platform,
            minimum_healthy_hosts,
        },
    )
    .await?;
    Ok(Json(json!({ "deploymentConfigId": deployment_config_id })))
}

async fn register_revision(node: &Node, body: &Value) -> ApiResult {
    let manifest: Manifest = parse(body.get("manifest").unwrap_or(&Value::Null), "manifest")?;
    manifest.validate().map_err(|error| ApiError::bad_request(error.to_string()))?;
    let revision_id = manifest.revision_id();
    let unique = manifest.unique_chunks();
    let seeds: Vec<NodeId> = match body.get("seeds") {
        Some(value) => parse(value, "seeds")?,
        None => Vec::new(),
    };
    let record = RevisionRecord {
        revision_id,
        application_name: field(body, "applicationName")?.to_string(),
        description: optional(body, "description").unwrap_or_default().chars().take(256).collect(),
        size_bytes: manifest.total_bytes(),
        unique_bytes: unique.iter().map(|chunk| u64::from(chunk.len())).sum(),
        chunk_count: unique.len() as u64,
        register_time: node.clock().now(),
        registered_by: optional(body, "registeredBy").unwrap_or("api").to_string(),
        seeds,
        manifest,
    };
    let summary = revision_summary(&record);
    commit(node, Command::RegisterRevision { record: Box::new(record) }).await?;
    Ok(Json(json!({ "revisionId": revision_id, "revisionInfo": summary })))
}

async fn prefetch(node: &Node, body: &Value) -> ApiResult {
    let revision = revision_id(body)?;
    let targets = node.state().read(|state| -> Result<Vec<NodeId>, ApiError> {
        let record = state
            .revisions
            .get(&revision)
            .ok_or_else(|| ApiError::not_found(format!("revision {revision} does not exist")))?;
        if body.get("allNodes").and_then(Value::as_bool).unwrap_or(false) {
            return Ok(state.members.keys().copied().collect());
        }
        let group_name = field(body, "deploymentGroupName")?;
        let group = state.deployment_group(&record.application_name, group_name).ok_or_else(|| {
            ApiError::not_found(format!(
                "deployment group {group_name} of application {} does not exist",
                record.application_name
            ))
        })?;
        Ok(state.group_targets(group))
    })?;
    commit(node, Command::RequestPrefetch { revision_id: revision, targets: targets.clone() }).await?;
    Ok(Json(json!({ "revisionId": revision, "targets": targets })))
}

async fn create_deployment(node: &Node, body: &Value) -> ApiResult {
    let auto_rollback_configuration = match body.get("autoRollbackConfiguration") {
        Some(value) if !value.is_null() => Some(parse(value, "autoRollbackConfiguration")?),
        _ => None,
    };
    let behavior_text = optional(body, "fileExistsBehavior").unwrap_or("DISALLOW");
    let file_exists_behavior = FileExistsBehavior::parse(behavior_text).ok_or_else(|| {
        ApiError::bad_request(format!(
            "fileExistsBehavior must be DISALLOW, OVERWRITE or RETAIN, got {behavior_text:?}"
        ))
    })?;
    let spec = DeploymentSpec {
        application_name: field(body, "applicationName")?.to_string(),
        deployment_group_name: field(body, "deploymentGroupName")?.to_string(),
        revision_id: revision_id(body)?,
        deployment_config_name: optional(body, "deploymentConfigName").map(ToString::to_string),
        description: optional(body, "description").unwrap_or_default().chars().take(256).collect(),
        ignore_application_stop_failures: body
            .get("ignoreApplicationStopFailures")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        file_exists_behavior,
        auto_rollback_configuration,
        creator: DeploymentCreator::User,
        targets: None,
    };
    let deployment_id = DeploymentId::from_random(node.random_bytes());
    commit(node, Command::CreateDeployment { spec, deployment_id: deployment_id.clone() }).await?;
    Ok(Json(json!({ "deploymentId": deployment_id })))
}

async fn stop_deployment(node: &Node, body: &Value) -> ApiResult {
    let id = DeploymentId(field(body, "deploymentId")?.to_string());
    let rollback = body.get("autoRollbackEnabled").and_then(Value::as_bool).unwrap_or(false);
    let rollback_id = rollback.then(|| DeploymentId::from_random(node.random_bytes()));
    commit(node, Command::StopDeployment { deployment_id: id.clone(), rollback_id: rollback_id.clone() }).await?;
    let rollback_info =
        node.state().read(|state| state.deployments.get(&id).and_then(|deployment| deployment.rollback_info.clone()));
    let message = match (&rollback_info, rollback) {
        (Some(info), true) => format!("stopped {id}; {}", info.rollback_message),
        _ => format!("stopped {id}; targets already running finish their current lifecycle event"),
    };
    Ok(Json(json!({ "status": "Pending", "statusMessage": message, "rollbackInfo": rollback_info })))
}

async fn distribution(State(api): State<Arc<Api>>, Path(revision): Path<String>) -> ApiResult {
    let node = &api.node;
    let revision: RevisionId = revision
        .parse()
        .map_err(|_| ApiError::bad_request(format!("revision id {revision:?} is not 64 hex digits")))?;
    let (size, holders, members) = node.state().read(|state| {
        let record = state.revisions.get(&revision);
        (
            record.map(|record| record.unique_bytes),
            state.revision_holders.get(&revision).cloned().unwrap_or_default(),
            state.members.keys().copied().collect::<Vec<_>>(),
        )
    });
    let size = size.ok_or_else(|| ApiError::not_found(format!("revision {revision} does not exist")))?;
    let progress = api.leader.revision_progress(revision);
    let nodes: Vec<Value> = members
        .into_iter()
        .filter_map(|id| {
            let reported = progress.get(&id);
            let complete = holders.contains(&id) || reported.is_some_and(|progress| progress.complete);
            let bytes_held = if complete { size } else { reported.map_or(0, |progress| progress.bytes_held) };
            (reported.is_some() || complete).then(|| json!({ "id": id, "bytesHeld": bytes_held, "complete": complete }))
        })
        .collect();
    Ok(Json(json!({ "revisionId": revision, "size": size, "nodes": nodes })))
}
