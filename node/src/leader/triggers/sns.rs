//! The SNS sink: a trigger whose target is an SNS topic ARN publishes its message there
//! through the AWS SDK, as CodeDeploy does: the same notification JSON a webhook gets as
//! the message, CodeDeploy's subject line ([`subject`]), no signature (SNS signs what it
//! delivers itself). The webhook's headers go along as message attributes of type
//! `String`: `X-Fleetmesh-Event-Id` (the same on a redelivery: drop what you have seen),
//! `X-Fleetmesh-Event` and `X-Fleetmesh-Trigger`.
//!
//! Whom it publishes as: the group's `serviceRoleArn`, assumed through STS, as CodeDeploy
//! publishes with the group's service role; without one, the leader's own credentials
//! (the standard chain). The region is the topic's (from its ARN); the endpoint is AWS's,
//! or `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_SNS` for an SNS-compatible server.

use crate::leader::clients::ClientCache;
use fleetmesh_aws::{AwsError, AwsSettings, SdkSns};
use fleetmesh_state::model::triggers::TriggerEventType;
use fleetmesh_transport::BoxFuture;
use tracing::debug;

use super::{Delivery, DeliveryError, TriggerSink};

/// A client's key: the role it runs as (`None`: the leader's credentials) and its region.
type ClientKey = (Option<String>, String);

/// Publishes deliveries to SNS topics. A client per role and region is made at its first
/// delivery and kept: most nodes never lead with an SNS trigger set. The map is bounded
/// by the state: at most one entry per group role and topic region of the triggers set.
#[derive(Default)]
pub struct SnsSink {
    clients: ClientCache<ClientKey, SdkSns>,
}

impl SnsSink {
    /// The client for `role` in `topic_arn`'s region, made on first use.
    async fn client(
        clients: &ClientCache<ClientKey, SdkSns>,
        role: Option<String>,
        topic_arn: &str,
    ) -> Result<SdkSns, AwsError> {
        let region = fleetmesh_aws::topic_region(topic_arn).unwrap_or_default().to_string();
        let make = |(role, _region): ClientKey| async move {
            SdkSns::for_topic(&AwsSettings { role_arn: role, ..AwsSettings::default() }, topic_arn).await
        };
        clients.get_or_try_make((role, region), make).await
    }
}

impl TriggerSink for SnsSink {
    fn deliver(&self, delivery: Delivery) -> BoxFuture<'static, Result<(), DeliveryError>> {
        let clients = self.clients.clone();
        Box::pin(async move {
            let client = Self::client(&clients, delivery.role_arn.clone(), &delivery.target).await?;
            let message = String::from_utf8_lossy(&delivery.body);
            let (event_id, kind) = (delivery.event_id.to_string(), format!("{:?}", delivery.kind));
            let attributes = [
                ("X-Fleetmesh-Event-Id", event_id.as_str()),
                ("X-Fleetmesh-Event", kind.as_str()),
                ("X-Fleetmesh-Trigger", delivery.trigger_name.as_str()),
            ];
            let id = client.publish_with_attributes(&delivery.target, &delivery.subject, &message, &attributes).await?;
            debug!(trigger = %delivery.trigger_name, event = delivery.event_id, message_id = %id, "published to SNS");
            Ok(())
        })
    }
}

/// The status word CodeDeploy opens its subject with for `kind`.
fn status_word(kind: TriggerEventType) -> &'static str {
    match kind {
        TriggerEventType::DeploymentStart => "CREATED",
        TriggerEventType::InstanceStart => "STARTED",
        TriggerEventType::DeploymentSuccess | TriggerEventType::InstanceSuccess => "SUCCEEDED",
        TriggerEventType::DeploymentFailure | TriggerEventType::InstanceFailure => "FAILED",
        TriggerEventType::DeploymentStop => "STOPPED",
        TriggerEventType::DeploymentRollback => "ROLLBACK",
        TriggerEventType::DeploymentReady | TriggerEventType::InstanceReady => "READY",
    }
}

/// CodeDeploy's subject line for `kind` of `deployment_id` of `application` in `region`:
/// `SUCCEEDED: AWS CodeDeploy d-1A2B3C4D5 in us-east-1 to web` (`CREATED` when a
/// deployment starts). Instance events have the same shape; the message tells them apart
/// (`instanceId`, `instanceStatus`). SNS's limit on its length is applied at publishing
/// ([`fleetmesh_aws::clamp_subject`]).
pub fn subject(kind: TriggerEventType, deployment_id: &str, region: &str, application: &str) -> String {
    format!("{}: AWS CodeDeploy {deployment_id} in {region} to {application}", status_word(kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_read_as_codedeploys() {
        let start = subject(TriggerEventType::DeploymentStart, "d-OJSFEI0CI", "us-east-1", "Portal");
        assert_eq!(start, "CREATED: AWS CodeDeploy d-OJSFEI0CI in us-east-1 to Portal");
        let failed = subject(TriggerEventType::InstanceFailure, "d-1", "eu-west-2", "web");
        assert_eq!(failed, "FAILED: AWS CodeDeploy d-1 in eu-west-2 to web");
        let long = subject(TriggerEventType::DeploymentSuccess, "d-1", "us-east-1", &"a".repeat(100));
        assert_eq!(fleetmesh_aws::clamp_subject(&long).chars().count(), fleetmesh_aws::SUBJECT_CHARS_MAX);
    }
}
