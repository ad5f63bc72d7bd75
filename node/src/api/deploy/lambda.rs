//! The API side of Lambda deployments: a deployment's AppSpec, read and checked before
//! anything is proposed (an inline document is registered as a revision in the same
//! entry as the deployment), and the hooks' `PutLifecycleEventHookExecutionStatus`.

use fleetmesh_core::appspec::lambda_ecs::{parse_ecs, parse_lambda};
use fleetmesh_model::{
    Manifest, PutLifecycleEventHookExecutionStatusInput, PutLifecycleEventHookExecutionStatusOutput, RevisionRef,
};
use fleetmesh_state::model::ids::UnixMillis;
use fleetmesh_state::model::members::Actor;
use fleetmesh_state::model::resources::ComputePlatform;
use fleetmesh_state::model::revision::{RevisionRecord, MANIFEST_FORMAT};
use fleetmesh_state::model::shift::ShiftSpec;
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
    let (platform, stored) = node.state().read(|state| {
        let platform = state.applications.get(&spec.application_name).map(|app| app.compute_platform);
        let stored = state.revisions.get(&spec.revision_id).and_then(|record| record.app_spec.clone());
        (platform, stored)
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
    spec.shift = Some(read_appspec(platform, &content)?);
    Ok(inline.map(|content| inline_record(node, &spec.application_name, content, by)))
}

/// What an AppSpec of `platform` moves.
fn read_appspec(platform: ComputePlatform, content: &str) -> Result<ShiftSpec, ApiError> {
    let invalid = |error: fleetmesh_core::appspec::lambda_ecs::PlatformAppSpecError| {
        ApiError::invalid("revision", error.to_string())
    };
    match platform {
        ComputePlatform::Ecs => {
            // Checked fully, so a bad document gets its own error; the deployment is then
            // refused by the state machine: ECS deployments are not built yet.
            parse_ecs(content).map_err(invalid)?;
            Ok(ShiftSpec {
                function_name: String::new(),
                alias: String::new(),
                current_version: 0,
                target_version: 0,
                hooks: Vec::new(),
            })
        }
        _ => {
            let appspec = parse_lambda(content).map_err(invalid)?;
            Ok(ShiftSpec {
                function_name: appspec.function_name,
                alias: appspec.alias,
                current_version: appspec.current_version,
                target_version: appspec.target_version,
                hooks: appspec.hooks.into_iter().map(|hook| (hook.event.to_string(), hook.function_name)).collect(),
            })
        }
    }
}

/// The revision record of an AppSpec given inline.
fn inline_record(node: &Node, application_name: &str, content: &str, by: Option<&Actor>) -> RevisionRecord {
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
