//! Deployment-group triggers (`triggerConfigurations`, [`crate::FeatureLevel::TRIGGERS`]):
//! which of a group's events go where, and how far delivery has got.
//!
//! A trigger's delivery cursor ([`GroupTrigger::delivered_through`]) is part of the
//! replicated state: the leader delivers the events after it, in order, and commits the
//! cursor past them ([`crate::Command::AdvanceTriggerCursor`]). A leader killed between a
//! delivery and its commit leaves the cursor behind, so the next leader delivers that
//! event again, with the same event number: delivery is at least once, in order per
//! trigger, and never skips an event the cursor has not passed.

use serde::{Deserialize, Serialize};

use super::events::{EventBody, EventType};

/// Most triggers a group holds (CodeDeploy's limit, `codedeploy.md` §6.3).
pub const TRIGGERS_MAX: usize = 10;

/// Most characters of a trigger's name.
pub const TRIGGER_NAME_CHARS_MAX: usize = 128;

/// Most characters of a trigger's target (a URL or an SNS topic ARN).
pub const TRIGGER_TARGET_CHARS_MAX: usize = 2048;

/// Most characters of a sealed trigger secret (a 256-byte secret sealed is ~560).
pub const SEALED_TRIGGER_SECRET_CHARS_MAX: usize = 1024;

/// CodeDeploy's `TriggerEventType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum TriggerEventType {
    /// The deployment started (`InProgress`).
    DeploymentStart,
    /// It succeeded.
    DeploymentSuccess,
    /// It failed.
    DeploymentFailure,
    /// It was stopped.
    DeploymentStop,
    /// A rollback deployment was started for it.
    DeploymentRollback,
    /// A blue/green deployment's replacement is ready for traffic (`Ready`).
    DeploymentReady,
    /// A target started.
    InstanceStart,
    /// A target succeeded.
    InstanceSuccess,
    /// A target failed.
    InstanceFailure,
    /// A blue/green target is ready for traffic.
    InstanceReady,
}

impl TriggerEventType {
    /// The trigger event `event` of the log is, if any: deployment and target status
    /// changes to the statuses CodeDeploy notifies, and the link from a deployment to
    /// the rollback started for it.
    pub fn of(event: &EventBody) -> Option<Self> {
        let status = event.status.as_deref();
        match (event.kind, status) {
            (EventType::DeploymentStatusChanged, Some("InProgress")) => Some(Self::DeploymentStart),
            (EventType::DeploymentStatusChanged, Some("Succeeded")) => Some(Self::DeploymentSuccess),
            (EventType::DeploymentStatusChanged, Some("Failed")) => Some(Self::DeploymentFailure),
            (EventType::DeploymentStatusChanged, Some("Stopped")) => Some(Self::DeploymentStop),
            (EventType::DeploymentStatusChanged, Some("Ready")) => Some(Self::DeploymentReady),
            (EventType::RollbackLinked, _)
                if event.message.as_deref().is_some_and(|message| message.starts_with("rolled back by")) =>
            {
                Some(Self::DeploymentRollback)
            }
            (EventType::TargetStatusChanged, Some("InProgress")) => Some(Self::InstanceStart),
            (EventType::TargetStatusChanged, Some("Succeeded")) => Some(Self::InstanceSuccess),
            (EventType::TargetStatusChanged, Some("Failed")) => Some(Self::InstanceFailure),
            (EventType::TargetStatusChanged, Some("Ready")) => Some(Self::InstanceReady),
            _ => None,
        }
    }

    /// True for the events about one target (`Instance*`).
    pub fn is_instance(self) -> bool {
        matches!(self, Self::InstanceStart | Self::InstanceSuccess | Self::InstanceFailure | Self::InstanceReady)
    }
}

/// CodeDeploy's `TriggerConfig`, with the secret sealed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TriggerConfig {
    /// Unique in its group.
    pub trigger_name: String,
    /// An `http://` or `https://` URL (a webhook) or an SNS topic ARN.
    pub trigger_target_arn: String,
    /// The events it sends.
    pub trigger_events: Vec<TriggerEventType>,
    /// The webhook's HMAC key, sealed with the CA seal key (fleetmesh's extension;
    /// without one the cluster's webhook secret signs). In a spec, `Some("")` clears the
    /// trigger's secret and `None` keeps the one it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_secret: Option<String>,
}

impl TriggerConfig {
    /// True when the target is a webhook URL (else an SNS topic ARN).
    pub fn is_webhook(&self) -> bool {
        is_webhook_url(&self.trigger_target_arn)
    }
}

/// A trigger of a group and how far its delivery has got.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupTrigger {
    /// What it is.
    pub config: TriggerConfig,
    /// Every event numbered up to this one was delivered or is not for this trigger.
    pub delivered_through: u64,
}

/// Where a trigger's delivery has got ([`crate::Command::AdvanceTriggerCursor`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TriggerCursor {
    /// Application.
    pub application_name: String,
    /// The group's id (stable across renames).
    pub deployment_group_id: String,
    /// The trigger's name.
    pub trigger_name: String,
    /// The last event number delivered (or not for this trigger).
    pub delivered_through: u64,
}

/// What a trigger's secret is sealed to (the seal's associated data).
pub fn secret_seal_context(cluster_id: &str) -> Vec<u8> {
    format!("fleetmesh-trigger-secret:{cluster_id}").into_bytes()
}

/// The label the cluster's webhook secret is derived under from the CA seal key.
pub fn webhook_secret_label(cluster_id: &str) -> Vec<u8> {
    format!("fleetmesh-webhook-secret:{cluster_id}").into_bytes()
}

/// True for `http://HOST...` and `https://HOST...`.
pub fn is_webhook_url(target: &str) -> bool {
    let rest = target.strip_prefix("https://").or_else(|| target.strip_prefix("http://"));
    rest.is_some_and(|rest| {
        let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
        !host.is_empty() && !target.chars().any(char::is_whitespace)
    })
}

/// True for `arn:<partition>:sns:<region>:<account>:<topic>`.
pub fn is_sns_topic_arn(target: &str) -> bool {
    let parts: Vec<&str> = target.splitn(6, ':').collect();
    matches!(parts.as_slice(), ["arn", partition, "sns", region, account, topic]
        if !partition.is_empty() && !region.is_empty() && !account.is_empty() && !topic.is_empty()
            && !topic.contains(':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_webhook_urls_or_sns_topic_arns() {
        assert!(is_webhook_url("http://127.0.0.1:9000/hook") && is_webhook_url("https://example.com"));
        assert!(!is_webhook_url("http://") && !is_webhook_url("ftp://x") && !is_webhook_url("https://a b"));
        assert!(is_sns_topic_arn("arn:aws:sns:us-east-1:123456789012:deploys"));
        assert!(!is_sns_topic_arn("arn:aws:sqs:us-east-1:123456789012:q"));
        assert!(!is_sns_topic_arn("arn:aws:sns:us-east-1:123456789012:") && !is_sns_topic_arn("arn:aws:sns"));
    }
}
