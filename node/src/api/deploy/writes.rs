//! The write operations: each checks its input, then proposes one command on the leader.

// Most characters of a description kept (longer ones are refused by `Operation::check`).
use fleetmesh_model::bounds::DESCRIPTION_CHARS_MAX;
use fleetmesh_model::{ContinueDeploymentInput, DeploymentStyle, Empty, TargetInstances};
use fleetmesh_model::{
    CreateApplicationInput, CreateApplicationOutput, CreateDeploymentConfigInput, CreateDeploymentConfigOutput,
    CreateDeploymentGroupInput, CreateDeploymentGroupOutput, CreateDeploymentInput, CreateDeploymentOutput,
    OutdatedInstancesStrategy, PrefetchInput, PrefetchOutput, RegisterPushedRevisionInput,
    RegisterPushedRevisionOutput, RevisionSummary, StopDeploymentInput, StopDeploymentOutput, StopStatus,
};
use fleetmesh_state::model::deployment::DeploymentCreator;
use fleetmesh_state::model::ids::DeploymentId;
use fleetmesh_state::model::instances::{Tag, TaggedResource};
use fleetmesh_state::model::members::Actor;
use fleetmesh_state::model::platform_configs::{ECS_ALL_AT_ONCE, LAMBDA_ALL_AT_ONCE, NO_MINIMUM};
use fleetmesh_state::model::resources::{
    ComputePlatform, DeploymentOption, DeploymentType, MinimumHealthyHosts, MinimumHealthyHostsType, TargetSelector,
    ONE_AT_A_TIME,
};
use fleetmesh_state::model::revision::RevisionRecord;
use fleetmesh_state::model::traffic_routing::TrafficRoutingConfig;
use fleetmesh_state::{Command, DeploymentGroupSpec, DeploymentSpec, DeploymentWaitType, Outcome};
use fleetmesh_transport::NodeId;

use super::{commit, random_id, required};
use crate::api::ApiError;
use crate::runtime::Node;

pub(super) async fn create_application(
    node: &Node,
    input: CreateApplicationInput,
    by: Option<&Actor>,
) -> Result<CreateApplicationOutput, ApiError> {
    let name = required("applicationName", &input.application_name)?.to_string();
    let compute_platform = input.compute_platform.unwrap_or_default();
    let application_id = random_id(node);
    let resource = TaggedResource::Application { application_name: name.clone() };
    let create = Command::CreateApplication { name, application_id: application_id.clone(), compute_platform };
    commit_tagged(node, create, resource, input.tags, by).await?;
    Ok(CreateApplicationOutput { application_id })
}

pub(super) async fn create_deployment_group(
    node: &Node,
    input: CreateDeploymentGroupInput,
    by: Option<&Actor>,
) -> Result<CreateDeploymentGroupOutput, ApiError> {
    let resource = TaggedResource::DeploymentGroup {
        application_name: input.application_name.clone(),
        deployment_group_name: input.deployment_group_name.clone(),
    };
    let tags = input.tags.clone();
    let spec = group_spec(node, input)?;
    let deployment_group_id = random_id(node);
    let create = Command::CreateDeploymentGroup { spec, deployment_group_id: deployment_group_id.clone() };
    commit_tagged(node, create, resource, tags, by).await?;
    Ok(CreateDeploymentGroupOutput { deployment_group_id })
}

/// Proposes `create` and, in the same entry, the tags of what it creates (checked by
/// `Operation::check` already, so they are not refused once it is).
async fn commit_tagged(
    node: &Node,
    create: Command,
    resource: TaggedResource,
    tags: Option<Vec<Tag>>,
    by: Option<&Actor>,
) -> Result<(), ApiError> {
    let tags = tags.unwrap_or_default();
    if tags.is_empty() {
        return commit(node, create, by).await;
    }
    let commands = vec![create, Command::TagResource { resource, add: tags, remove: Vec::new() }];
    let outcomes = node.propose_by(commands, by).await?;
    match outcomes.into_iter().find_map(|outcome| match outcome {
        Outcome::Rejected(error) => Some(error),
        _ => None,
    }) {
        Some(error) => Err(error.into()),
        None => Ok(()),
    }
}

/// The group `input` asks for, defaults filled in for the application's platform.
///
/// # Errors
/// Tags given to a group without hosts, or none given to one with hosts; a name missing.
pub(super) fn group_spec(node: &Node, input: CreateDeploymentGroupInput) -> Result<DeploymentGroupSpec, ApiError> {
    let tag_filters = input.on_premises_instance_tag_filters.unwrap_or_default();
    let tag_set = input.on_premises_tag_set.map(|set| set.on_premises_tag_set_list).unwrap_or_default();
    let platform = node.state().read(|state| {
        state.applications.get(&input.application_name).map_or(ComputePlatform::Server, |app| app.compute_platform)
    });
    let hostless = platform != ComputePlatform::Server;
    if hostless && !(tag_filters.is_empty() && tag_set.iter().all(Vec::is_empty)) {
        return Err(ApiError::invalid(
            "onPremisesInstanceTagFilters",
            format!("application {} is for {platform}: its groups have no hosts, give no tags", input.application_name),
        ));
    }
    // Each filter's bounds were checked with the input (`Operation::check`).
    if !hostless && tag_filters.is_empty() && tag_set.iter().all(Vec::is_empty) {
        return Err(ApiError::invalid(
            "onPremisesInstanceTagFilters",
            "a deployment group needs at least one tag filter (--tag KEY=VALUE)",
        ));
    }
    // AWS: an ECS group is blue/green with traffic control; that is the default there.
    let style = input.deployment_style.unwrap_or(if platform == ComputePlatform::Ecs {
        DeploymentStyle {
            deployment_type: DeploymentType::BlueGreen,
            deployment_option: DeploymentOption::WithTrafficControl,
        }
    } else {
        DeploymentStyle::default()
    });
    let spec = DeploymentGroupSpec {
        application_name: required("applicationName", &input.application_name)?.to_string(),
        deployment_group_name: required("deploymentGroupName", &input.deployment_group_name)?.to_string(),
        deployment_config_name: input
            .deployment_config_name
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| default_config(platform).to_string()),
        target_selector: TargetSelector {
            tag_filters,
            tag_set: tag_set.into_iter().filter(|group| !group.is_empty()).collect(),
        },
        auto_rollback_configuration: input.auto_rollback_configuration.unwrap_or_default(),
        update_outdated_instances: input.outdated_instances_strategy != Some(OutdatedInstancesStrategy::Ignore),
        deployment_option: style.deployment_option,
        load_balancer_info: input.load_balancer_info.as_ref().map(Into::into),
        deployment_type: style.deployment_type,
        blue_green_deployment_configuration: input.blue_green_deployment_configuration,
        service_role_arn: input.service_role_arn.filter(|role| !role.is_empty()),
        ecs_services: input.ecs_services.unwrap_or_default(),
        trigger_configurations: super::trigger_secrets::seal_triggers(
            node,
            input.trigger_configurations.unwrap_or_default(),
        )?,
        alarm_configuration: input.alarm_configuration,
    };
    Ok(spec)
}

/// A new group's configuration when none is named: CodeDeploy's default per platform.
fn default_config(platform: ComputePlatform) -> &'static str {
    match platform {
        ComputePlatform::Server => ONE_AT_A_TIME,
        ComputePlatform::Lambda => LAMBDA_ALL_AT_ONCE,
        ComputePlatform::Ecs => ECS_ALL_AT_ONCE,
    }
}

pub(super) async fn create_deployment_config(
    node: &Node,
    input: CreateDeploymentConfigInput,
    by: Option<&Actor>,
) -> Result<CreateDeploymentConfigOutput, ApiError> {
    let name = required("deploymentConfigName", &input.deployment_config_name)?.to_string();
    // The routing config's own rules were checked with the input (`Operation::check`).
    let compute_platform = input.compute_platform.unwrap_or_default();
    let mut traffic_routing_config = input.traffic_routing_config;
    let minimum_healthy_hosts = match (input.minimum_healthy_hosts, traffic_routing_config) {
        (Some(_), _) if compute_platform != ComputePlatform::Server => {
            return Err(ApiError::invalid(
                "minimumHealthyHosts",
                format!("applies only to the Server compute platform, not {compute_platform}"),
            ))
        }
        // AWS: a Lambda or ECS configuration without routing shifts all at once.
        (None, routing) if compute_platform != ComputePlatform::Server => {
            traffic_routing_config = Some(routing.unwrap_or(TrafficRoutingConfig::ALL_AT_ONCE));
            NO_MINIMUM
        }
        (Some(rule), _) if rule.kind == MinimumHealthyHostsType::MostConcurrency => {
            return Err(ApiError::invalid("minimumHealthyHosts.type", "must be HOST_COUNT or FLEET_PERCENT"));
        }
        (Some(rule), _) => rule,
        // Issue 14: with steps and no minimum, OneAtATime's rule (one host at a time).
        (None, Some(_)) => MinimumHealthyHosts { kind: MinimumHealthyHostsType::MostConcurrency, value: 1 },
        (None, None) => {
            return Err(ApiError::invalid(
                "minimumHealthyHosts",
                "missing; give minimumHealthyHosts, trafficRoutingConfig or both",
            ))
        }
    };
    let deployment_config_id = random_id(node);
    let command = Command::CreateDeploymentConfig {
        name,
        deployment_config_id: deployment_config_id.clone(),
        compute_platform,
        minimum_healthy_hosts,
        traffic_routing_config,
    };
    commit(node, command, by).await?;
    Ok(CreateDeploymentConfigOutput { deployment_config_id })
}

pub(super) async fn register_revision(
    node: &Node,
    input: RegisterPushedRevisionInput,
    by: Option<&Actor>,
) -> Result<RegisterPushedRevisionOutput, ApiError> {
    let manifest = input.manifest;
    manifest.validate().map_err(|error| ApiError::invalid("manifest", error))?;
    let revision_id = manifest.revision_id();
    let unique = manifest.unique_chunks();
    let record = RevisionRecord {
        revision_id,
        application_name: required("applicationName", &input.application_name)?.to_string(),
        description: input.description.unwrap_or_default().chars().take(DESCRIPTION_CHARS_MAX).collect(),
        size_bytes: manifest.total_bytes(),
        unique_bytes: unique.iter().map(|chunk| u64::from(chunk.len())).sum(),
        chunk_count: unique.len() as u64,
        register_time: node.clock().now(),
        registered_by: input.registered_by.filter(|by| !by.is_empty()).unwrap_or_else(|| "api".to_string()),
        seeds: input.seeds,
        created_by: None,
        manifest,
        app_spec: None,
        source: None,
    };
    let revision_info = RevisionSummary::from(&record);
    commit(node, Command::RegisterRevision { record: Box::new(record) }, by).await?;
    Ok(RegisterPushedRevisionOutput { revision_id, revision_info })
}

pub(super) async fn prefetch(
    node: &Node,
    input: PrefetchInput,
    by: Option<&Actor>,
) -> Result<PrefetchOutput, ApiError> {
    let revision = input.revision.resolve()?;
    let targets = node.state().read(|state| -> Result<Vec<NodeId>, ApiError> {
        let record = state
            .revisions
            .get(&revision)
            .ok_or_else(|| ApiError::not_found(format!("revision {revision} does not exist")))?;
        if input.all_nodes {
            return Ok(state.members.keys().copied().collect());
        }
        let group_name = required("deploymentGroupName", input.deployment_group_name.as_deref().unwrap_or_default())?;
        let group = state.deployment_group(&record.application_name, group_name).ok_or_else(|| {
            ApiError::not_found(format!(
                "deployment group {group_name} of application {} does not exist",
                record.application_name
            ))
        })?;
        Ok(state.group_targets(group))
    })?;
    commit(node, Command::RequestPrefetch { revision_id: revision, targets: targets.clone() }, by).await?;
    Ok(PrefetchOutput { revision_id: revision, targets })
}

pub(super) async fn create_deployment(
    node: &Node,
    input: CreateDeploymentInput,
    by: Option<&Actor>,
) -> Result<CreateDeploymentOutput, ApiError> {
    let revision = input.revision.clone();
    let mut spec = deployment_spec(input)?;
    let inline = super::lambda::prepare(node, &revision, &mut spec, by)?;
    let deployment_id = DeploymentId::from_random(node.random_bytes());
    let create = Command::CreateDeployment { spec, deployment_id: deployment_id.clone() };
    let Some(record) = inline else {
        commit(node, create, by).await?;
        return Ok(CreateDeploymentOutput { deployment_id });
    };
    // The inline revision and the deployment in one entry: a refused deployment leaves
    // the revision registered, as `register-application-revision` would have.
    let outcomes = node.propose_by(vec![Command::RegisterRevision { record: Box::new(record) }, create], by).await?;
    if let Some(Outcome::Rejected(error)) = outcomes.into_iter().find(|outcome| matches!(outcome, Outcome::Rejected(_)))
    {
        return Err(error.into());
    }
    Ok(CreateDeploymentOutput { deployment_id })
}

/// The command's spec for a user's `CreateDeployment` (also what `PlanDeployment` plans).
pub(super) fn deployment_spec(input: CreateDeploymentInput) -> Result<DeploymentSpec, ApiError> {
    Ok(DeploymentSpec {
        application_name: required("applicationName", &input.application_name)?.to_string(),
        deployment_group_name: required("deploymentGroupName", &input.deployment_group_name)?.to_string(),
        revision_id: input.revision.resolve()?,
        deployment_config_name: input.deployment_config_name.filter(|name| !name.is_empty()),
        description: input.description.unwrap_or_default().chars().take(DESCRIPTION_CHARS_MAX).collect(),
        ignore_application_stop_failures: input.ignore_application_stop_failures,
        file_exists_behavior: input.file_exists_behavior.unwrap_or_default(),
        auto_rollback_configuration: input.auto_rollback_configuration,
        creator: DeploymentCreator::User,
        targets: None,
        target_instances: match input.target_instances {
            Some(TargetInstances { tag_filters: Some(filters) }) if !filters.is_empty() => {
                Some(TargetSelector { tag_filters: filters, tag_set: Vec::new() })
            }
            Some(_) => {
                return Err(ApiError::invalid(
                    "targetInstances.tagFilters",
                    "give at least one tag filter for the green fleet (--target-instances \
                     '{\"tagFilters\":[{\"Key\":\"fleet\",\"Value\":\"green\",\"Type\":\"KEY_AND_VALUE\"}]}')",
                ))
            }
            None => None,
        },
        shift: None,
        alarm_configuration: input.override_alarm_configuration,
    })
}

pub(super) async fn continue_deployment(
    node: &Node,
    input: ContinueDeploymentInput,
    by: Option<&Actor>,
) -> Result<Empty, ApiError> {
    let wait_type = input.deployment_wait_type.unwrap_or(DeploymentWaitType::ReadyWait);
    commit(node, Command::ContinueDeployment { deployment_id: input.deployment_id, wait_type }, by).await?;
    Ok(Empty {})
}

pub(super) async fn stop_deployment(
    node: &Node,
    input: StopDeploymentInput,
    by: Option<&Actor>,
) -> Result<StopDeploymentOutput, ApiError> {
    let configuration = node.state().read(|state| {
        state.deployments.get(&input.deployment_id).map(|deployment| deployment.auto_rollback_configuration.clone())
    });
    let rollback = input.rolls_back(&configuration.unwrap_or_default());
    let id = input.deployment_id;
    let rollback_id = rollback.then(|| DeploymentId::from_random(node.random_bytes()));
    commit(node, Command::StopDeployment { deployment_id: id.clone(), rollback_id: rollback_id.clone() }, by).await?;
    let rollback_info =
        node.state().read(|state| state.deployments.get(&id).and_then(|deployment| deployment.rollback_info.clone()));
    let status_message = match (&rollback_info, rollback) {
        (Some(info), true) => format!("stopped {id}; {}", info.rollback_message),
        _ => format!("stopped {id}; targets already running finish their current lifecycle event"),
    };
    Ok(StopDeploymentOutput { status: StopStatus::Pending, status_message, rollback_info })
}
