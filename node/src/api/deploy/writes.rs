//! The write operations: each checks its input, then proposes one command on the leader.

use axum::Json;
use fleetmesh_state::model::deployment::DeploymentCreator;
use fleetmesh_state::model::ids::DeploymentId;
use fleetmesh_state::model::resources::{
    validate_name, AutoRollbackConfiguration, ComputePlatform, FileExistsBehavior, MinimumHealthyHosts,
    MinimumHealthyHostsType, TagFilter, TargetSelector, ONE_AT_A_TIME,
};
use fleetmesh_state::model::revision::{Manifest, RevisionRecord};
use fleetmesh_state::{Command, DeploymentGroupSpec, DeploymentSpec};
use fleetmesh_transport::NodeId;
use serde_json::{json, Value};

use super::reads::{revision_id, revision_summary};
use super::{commit, field, optional, parse, random_id, ApiResult};
use crate::api::ApiError;
use crate::runtime::Node;

pub(super) async fn create_application(node: &Node, body: &Value) -> ApiResult {
    let name = field(body, "applicationName")?.to_string();
    let platform_text = optional(body, "computePlatform").unwrap_or("Server");
    let compute_platform = ComputePlatform::parse(platform_text).ok_or_else(|| {
        ApiError::bad_request(format!("computePlatform must be Server, Lambda or ECS, got {platform_text:?}"))
    })?;
    let application_id = random_id(node);
    commit(node, Command::CreateApplication { name, application_id: application_id.clone(), compute_platform }).await?;
    Ok(Json(json!({ "applicationId": application_id })))
}

pub(super) async fn create_deployment_group(node: &Node, body: &Value) -> ApiResult {
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

pub(super) async fn create_deployment_config(node: &Node, body: &Value) -> ApiResult {
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

pub(super) async fn register_revision(node: &Node, body: &Value) -> ApiResult {
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

pub(super) async fn prefetch(node: &Node, body: &Value) -> ApiResult {
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

pub(super) async fn create_deployment(node: &Node, body: &Value) -> ApiResult {
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

pub(super) async fn stop_deployment(node: &Node, body: &Value) -> ApiResult {
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
