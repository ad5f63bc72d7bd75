//! The API side of Lambda and ECS deployments: a deployment's AppSpec, read and checked before
//! anything is proposed (an inline document is registered as a revision in the same
//! entry as the deployment), and the hooks' `PutLifecycleEventHookExecutionStatus`.

use fleetmesh_core::appspec::lambda_ecs::{parse_ecs, parse_lambda};
use fleetmesh_model::{
    Manifest, PutLifecycleEventHookExecutionStatusInput, PutLifecycleEventHookExecutionStatusOutput, RevisionRef,
};
use fleetmesh_state::model::ids::UnixMillis;
use fleetmesh_state::model::members::Actor;
use fleetmesh_state::model::resources::{ComputePlatform, DeploymentGroup};
use fleetmesh_state::model::revision::{RevisionRecord, MANIFEST_FORMAT};
use fleetmesh_state::model::shift::{EcsSpec, EcsTaskSet, LambdaSpec, ShiftSpec};
use fleetmesh_state::{Command, DeploymentSpec};

use super::commit;
use crate::api::ApiError;
use crate::runtime::Node;

/// For a deployment on a Lambda or ECS application: reads its AppSpec (given inline in
/// `revision`, or the registered revision's), fills in what the deployment moves, and
/// returns the revision to register first when the document was given inline. Nothing
/// for a Server application.
///
/// # Errors
/// The AppSpec's error, with CodeDeploy's code (`INVALID_LAMBDA_CONFIGURATION`,
/// `INVALID_ECS_SERVICE`); an inline document for a Server application.
pub(super) fn prepare(
    node: &Node,
    revision: &RevisionRef,
    spec: &mut DeploymentSpec,
    by: Option<&Actor>,
) -> Result<Option<RevisionRecord>, ApiError> {
    let inline = revision.inline_content()?;
    let (platform, stored, group) = node.state().read(|state| {
        let platform = state.applications.get(&spec.application_name).map(|app| app.compute_platform);
        let stored = state.revisions.get(&spec.revision_id).and_then(|record| record.app_spec.clone());
        let group = state.deployment_group(&spec.application_name, &spec.deployment_group_name).cloned();
        (platform, stored, group)
    });
    let Some(platform) = platform.filter(|platform| *platform != ComputePlatform::Server) else {
        if inline.is_some() {
            return Err(ApiError::invalid(
                "revision",
                format!(
                    "application {} is for Server (or does not exist): deploy a pushed bundle by its id, not an \
                     AppSpec given inline",
                    spec.application_name
                ),
            ));
        }
        return Ok(None);
    };
    let Some(content) = inline.map(str::to_string).or(stored) else {
        return Err(ApiError::invalid(
            "revision",
            format!(
                "application {} is for {platform}: give its AppSpec inline (--revision \
                 '{{\"revisionType\":\"AppSpecContent\",\"appSpecContent\":{{\"content\":\"...\"}}}}')",
                spec.application_name
            ),
        ));
    };
    spec.shift = Some(read_appspec(platform, &content, group.as_ref())?);
    Ok(inline.map(|content| inline_record(node, &spec.application_name, content, by)))
}

/// What an AppSpec of `platform` moves; an ECS deployment's service, target groups and
/// listeners come from its `group`.
fn read_appspec(
    platform: ComputePlatform,
    content: &str,
    group: Option<&DeploymentGroup>,
) -> Result<ShiftSpec, ApiError> {
    let invalid = |error: fleetmesh_core::appspec::lambda_ecs::PlatformAppSpecError| {
        ApiError::invalid("revision", error.to_string())
    };
    if platform != ComputePlatform::Ecs {
        let appspec = parse_lambda(content).map_err(invalid)?;
        return Ok(ShiftSpec::Lambda(LambdaSpec {
            function_name: appspec.function_name,
            alias: appspec.alias,
            current_version: appspec.current_version,
            target_version: appspec.target_version,
            hooks: appspec.hooks.into_iter().map(|hook| (hook.event.to_string(), hook.function_name)).collect(),
        }));
    }
    let appspec = parse_ecs(content).map_err(invalid)?;
    let Some(group) = group else {
        return Err(ApiError::not_found("the deployment group does not exist"));
    };
    let pair = group.load_balancer_info.as_ref().and_then(|info| info.target_group_pair_info_list.first());
    let (Some(service), Some(pair)) = (group.ecs_services.first(), pair) else {
        return Err(ApiError::invalid(
            "deploymentGroupName",
            format!("group {} names no ECS service and target group pair", group.deployment_group_name),
        ));
    };
    let (subnets, security_groups, assign_public_ip) = appspec
        .network
        .map(|network| (network.subnets, network.security_groups, network.assign_public_ip))
        .unwrap_or_default();
    Ok(ShiftSpec::Ecs(Box::new(EcsSpec {
        cluster: service.cluster_name.clone(),
        service: service.service_name.clone(),
        task_set: EcsTaskSet {
            task_definition: appspec.task_definition,
            container_name: appspec.container_name,
            container_port: appspec.container_port,
            platform_version: appspec.platform_version,
            subnets,
            security_groups,
            assign_public_ip,
            capacity_providers: (appspec.capacity_provider_strategy.into_iter())
                .map(|item| (item.capacity_provider, item.base, item.weight))
                .collect(),
        },
        target_groups: pair.target_groups.iter().map(|group| group.name.clone()).collect(),
        prod_listener: pair.prod_listener().unwrap_or_default().to_string(),
        test_listener: pair.test_listener().map(str::to_string),
        hooks: appspec.hooks.into_iter().map(|hook| (hook.event.to_string(), hook.function_name)).collect(),
        termination_wait_ms: 0,
        rollback: None,
    })))
}

/// The revision record of an AppSpec given inline.
pub(super) fn inline_record(node: &Node, application_name: &str, content: &str, by: Option<&Actor>) -> RevisionRecord {
    RevisionRecord {
        revision_id: RevisionRecord::content_id(content),
        application_name: application_name.to_string(),
        description: "AppSpec given inline".to_string(),
        size_bytes: content.len() as u64,
        unique_bytes: 0,
        chunk_count: 0,
        register_time: UnixMillis(node.clock().now().0),
        registered_by: by.map_or_else(|| "api".to_string(), ToString::to_string),
        created_by: None,
        seeds: Vec::new(),
        manifest: Manifest { format: MANIFEST_FORMAT, chunking: crate::revision::chunking(), entries: Vec::new() },
        app_spec: Some(content.to_string()),
        source: None,
    }
}

pub(super) async fn put_hook_status(
    node: &Node,
    input: PutLifecycleEventHookExecutionStatusInput,
    by: Option<&Actor>,
) -> Result<PutLifecycleEventHookExecutionStatusOutput, ApiError> {
    let command = Command::PutLifecycleEventHookExecutionStatus {
        deployment_id: input.deployment_id,
        execution_id: input.lifecycle_event_hook_execution_id.clone(),
        status: input.status,
    };
    commit(node, command, by).await?;
    Ok(PutLifecycleEventHookExecutionStatusOutput {
        lifecycle_event_hook_execution_id: input.lifecycle_event_hook_execution_id,
    })
}
