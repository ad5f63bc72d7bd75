//! The Lambda pieces of the deploy verbs: `--revision` as AWS's JSON (an AppSpec given
//! inline), and `put-lifecycle-event-hook-execution-status`.

use fleetmesh_model::{
    PutLifecycleEventHookExecutionStatusInput, PutLifecycleEventHookExecutionStatusOutput, RevisionLocation,
    RevisionRef,
};
use fleetmesh_state::model::deployment::LifecycleEventStatus;
use fleetmesh_state::model::ecs_group::EcsService;
use fleetmesh_state::model::ids::DeploymentId;

use super::parse_revision;
use crate::cli::client::ApiClient;

/// `--revision`: a revision id (from `push`), or AWS's `RevisionLocation` as JSON, e.g.
/// `{"revisionType":"AppSpecContent","appSpecContent":{"content":"..."}}`.
pub(super) fn revision_flag(text: &str) -> anyhow::Result<RevisionRef> {
    if !text.trim_start().starts_with('{') {
        return Ok(RevisionRef {
            revision_id: None,
            revision: Some(RevisionLocation::fleetmesh(parse_revision(text)?)),
        });
    }
    let location: RevisionLocation = serde_json::from_str(text).map_err(|error| {
        anyhow::anyhow!(
            "--revision: {error}; expected a revision id or JSON like \
             '{{\"revisionType\":\"AppSpecContent\",\"appSpecContent\":{{\"content\":\"version: 0.0 ...\"}}}}'"
        )
    })?;
    Ok(RevisionRef { revision_id: None, revision: Some(location) })
}

/// `put-lifecycle-event-hook-execution-status`: what a Lambda hook function calls.
pub(super) fn put_hook_status(
    client: &ApiClient,
    deployment_id: String,
    execution_id: String,
    status: &str,
) -> anyhow::Result<()> {
    let status = match status {
        "Succeeded" => LifecycleEventStatus::Succeeded,
        _ => LifecycleEventStatus::Failed,
    };
    let input = PutLifecycleEventHookExecutionStatusInput {
        deployment_id: DeploymentId(deployment_id.clone()),
        lifecycle_event_hook_execution_id: execution_id,
        status,
    };
    let answer: PutLifecycleEventHookExecutionStatusOutput =
        client.call("PutLifecycleEventHookExecutionStatus", &input)?;
    println!("recorded {status:?} for hook execution {} of {deployment_id}", answer.lifecycle_event_hook_execution_id);
    Ok(())
}

/// `--ecs-services`: AWS's shorthand `serviceName=web,clusterName=prod` or its JSON list.
pub(super) fn parse_ecs_services(text: &str) -> anyhow::Result<Vec<EcsService>> {
    if text.trim_start().starts_with('[') {
        return serde_json::from_str(text).map_err(|error| {
            anyhow::anyhow!("--ecs-services: {error}; give '[{{\"serviceName\":\"web\",\"clusterName\":\"prod\"}}]'")
        });
    }
    let (mut service_name, mut cluster_name) = (None, None);
    for pair in text.split(',').filter(|pair| !pair.is_empty()) {
        match pair.split_once('=') {
            Some(("serviceName", value)) => service_name = Some(value.to_string()),
            Some(("clusterName", value)) => cluster_name = Some(value.to_string()),
            _ => anyhow::bail!("--ecs-services: {pair:?} is neither serviceName=NAME nor clusterName=CLUSTER"),
        }
    }
    match (service_name, cluster_name) {
        (Some(service_name), Some(cluster_name)) => Ok(vec![EcsService { service_name, cluster_name }]),
        _ => anyhow::bail!("--ecs-services needs serviceName=NAME,clusterName=CLUSTER"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_revision_flag_takes_an_id_or_aws_json() {
        let id = "ab".repeat(32);
        assert!(revision_flag(&id).unwrap().revision.unwrap().revision_id.is_some());
        let json = r#"{"revisionType":"AppSpecContent","appSpecContent":{"content":"version: 0.0"}}"#;
        let location = revision_flag(json).unwrap().revision.unwrap();
        assert_eq!(location.app_spec_content.unwrap().content, "version: 0.0");
        let error = revision_flag(r#"{"revisionType":"AppSpecContent","bogus":1}"#).unwrap_err().to_string();
        assert!(error.starts_with("--revision: unknown field `bogus`"), "{error}");
        assert!(revision_flag("nothex").is_err());
    }
}
