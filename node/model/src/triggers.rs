//! Triggers on the API (`triggerConfigurations`) and the message a trigger sends:
//! CodeDeploy's notification JSON for a deployment or an instance event.

use fleetmesh_state::model::deployment::{Deployment, Target};
use fleetmesh_state::model::events::DeploymentEvent;
use fleetmesh_state::model::ids::UnixMillis;
use fleetmesh_state::model::triggers::{GroupTrigger, TriggerEventType};
use fleetmesh_state::{ClusterState, NodeId};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Most characters of a trigger's secret as given.
pub const TRIGGER_SECRET_CHARS_MAX: usize = 256;

/// `TriggerConfig`, with fleetmesh's `secret`: the HMAC key of a webhook's
/// `X-Fleetmesh-Signature` (write-only: `GetDeploymentGroup` never shows it; an update
/// that leaves it out keeps it, `""` clears it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TriggerConfig {
    /// Unique in its group.
    pub trigger_name: String,
    /// An `http(s)://` URL (a webhook) or an SNS topic ARN.
    pub trigger_target_arn: String,
    /// What it sends.
    #[serde(default)]
    pub trigger_events: Vec<TriggerEventType>,
    /// The webhook's signing secret (fleetmesh's extension); refused on an SNS topic
    /// target, which SNS signs for itself (`""` is accepted there: it clears a secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl TriggerConfig {
    /// A group's trigger as the API shows it: no secret.
    pub fn shown(trigger: &GroupTrigger) -> Self {
        Self {
            trigger_name: trigger.config.trigger_name.clone(),
            trigger_target_arn: trigger.config.trigger_target_arn.clone(),
            trigger_events: trigger.config.trigger_events.clone(),
            secret: None,
        }
    }
}

/// CodeDeploy's times in notifications: epoch seconds with milliseconds, as a string.
fn seconds(at: UnixMillis) -> String {
    format!("{}.{:03}", at.0 / 1000, at.0 % 1000)
}

/// The notification `trigger_name` sends for `event` (of type `kind`), as CodeDeploy
/// writes it (`region`, `accountId`, `eventTriggerName`, then the deployment's or the
/// instance's fields), from the deployment as `state` has it now. `None` when the
/// deployment or the target is no longer in the state.
pub fn trigger_message(
    state: &ClusterState,
    trigger_name: &str,
    event: &DeploymentEvent,
    kind: TriggerEventType,
) -> Option<Value> {
    let deployment = state.deployments.get(&event.what.deployment_id)?;
    let (region, account) = match &state.cluster {
        Some(cluster) => (cluster.region().to_string(), cluster.account_id().to_string()),
        None => (
            fleetmesh_state::model::members::DEFAULT_AWS_REGION.to_string(),
            fleetmesh_state::model::members::DEFAULT_AWS_ACCOUNT_ID.to_string(),
        ),
    };
    let mut message = json!({"region": region, "accountId": account, "eventTriggerName": trigger_name});
    let fields = if kind.is_instance() {
        let target = event.what.target_id.as_deref()?.parse::<u64>().ok()?;
        let target = deployment.targets.get(&NodeId(target))?;
        instance_fields(state, deployment, target)
    } else {
        deployment_fields(deployment)
    };
    if let (Value::Object(message), Value::Object(fields)) = (&mut message, fields) {
        message.extend(fields);
    }
    Some(message)
}

fn deployment_fields(deployment: &Deployment) -> Value {
    let overview = deployment.overview();
    let mut fields = json!({
        "applicationName": deployment.application_name,
        "deploymentId": deployment.deployment_id.0,
        "deploymentGroupName": deployment.deployment_group_name,
        "createTime": seconds(deployment.create_time),
        "completeTime": deployment.complete_time.map(seconds),
        "deploymentOverview": {
            "Failed": overview.Failed.to_string(),
            "InProgress": overview.InProgress.to_string(),
            "Pending": overview.Pending.to_string(),
            "Skipped": overview.Skipped.to_string(),
            "Succeeded": overview.Succeeded.to_string(),
        },
        "status": format!("{:?}", deployment.status),
    });
    if let (Some(error), Value::Object(fields)) = (&deployment.error_information, &mut fields) {
        let code = serde_json::to_value(error.code).unwrap_or(Value::Null);
        fields.insert("errorInformation".into(), json!({"ErrorCode": code, "ErrorMessage": error.message}));
    }
    if deployment.complete_time.is_none() {
        if let Value::Object(fields) = &mut fields {
            fields.remove("completeTime");
        }
    }
    fields
}

fn instance_fields(state: &ClusterState, deployment: &Deployment, target: &Target) -> Value {
    let name = state
        .members
        .get(&target.target_id)
        .and_then(|member| member.instance_name.clone())
        .unwrap_or_else(|| format!("node-{}", target.target_id));
    let events: Vec<Value> = target
        .lifecycle_events
        .iter()
        .filter(|event| event.start_time.is_some())
        .map(|event| {
            let mut item = json!({
                "LifecycleEvent": event.lifecycle_event_name,
                "LifecycleEventStatus": format!("{:?}", event.status),
                "StartTime": event.start_time.map(seconds),
            });
            if let (Some(end), Value::Object(item)) = (event.end_time, &mut item) {
                item.insert("EndTime".into(), Value::String(seconds(end)));
            }
            item
        })
        .collect();
    json!({
        "deploymentId": deployment.deployment_id.0,
        "instanceId": crate::arn(state, &format!("instance/{name}")),
        "lastUpdatedAt": seconds(target.last_updated_at),
        "instanceStatus": format!("{:?}", target.status),
        "lifecycleEvents": events,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_seconds_with_milliseconds() {
        assert_eq!(seconds(UnixMillis(1_446_744_188_595)), "1446744188.595");
        assert_eq!(seconds(UnixMillis(5)), "0.005");
    }
}
