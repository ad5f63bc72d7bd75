//! Elastic Load Balancing v2: taking a host off a target group and back (a Server group
//! whose `targetGroupInfoList` names an ELBv2 target group), and the weighted forward of
//! a listener (an ECS deployment's production and test traffic).

use std::future::Future;

use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, ForwardActionConfig, TargetDescription, TargetGroupTuple,
};

use crate::error::{AwsError, AwsErrorKind};

/// A target group, as `DescribeTargetGroups` names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetGroup {
    /// Its ARN.
    pub arn: String,
    /// `instance`, `ip`, `lambda` or `alb`: which node tag gives a host's target id
    /// (`aws:instance-id` for `instance`, `aws:ip` for `ip`).
    pub target_type: String,
    /// The port its targets receive traffic on, when it has one.
    pub port: Option<u16>,
}

/// One target of a group: an instance id or an IP address, and a port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// `i-…` or an IP address.
    pub id: String,
    /// The port; `None` takes the target group's.
    pub port: Option<u16>,
}

/// The ELBv2 calls of traffic control. Implemented by [`SdkElbv2`] over the AWS SDK; the
/// simulator implements it over a simulated AWS.
pub trait Elbv2Traffic: Send + Sync {
    /// `DescribeTargetGroups` by name, or by ARN when `name` is one.
    fn target_group(&self, name: &str) -> impl Future<Output = Result<TargetGroup, AwsError>> + Send;

    /// `RegisterTargets`: the host takes traffic again (`AllowTraffic`).
    fn register(&self, group_arn: &str, target: &Target) -> impl Future<Output = Result<(), AwsError>> + Send;

    /// `DeregisterTargets`: the host gets no new connections and drains (`BlockTraffic`).
    fn deregister(&self, group_arn: &str, target: &Target) -> impl Future<Output = Result<(), AwsError>> + Send;

    /// `DescribeTargetHealth` of one target: its state (`initial`, `healthy`,
    /// `unhealthy`, `draining`, `unused`, `unavailable`), or `None` when the group does
    /// not list it.
    fn target_state(
        &self,
        group_arn: &str,
        target: &Target,
    ) -> impl Future<Output = Result<Option<String>, AwsError>> + Send;

    /// `DescribeListeners`: the target groups the listener's default forward action
    /// sends to, with their weights.
    fn listener_weights(&self, listener_arn: &str)
        -> impl Future<Output = Result<Vec<(String, i32)>, AwsError>> + Send;

    /// `ModifyListener`: one forward action over `weights` (target group ARN, weight).
    fn set_listener_weights(
        &self,
        listener_arn: &str,
        weights: &[(String, i32)],
    ) -> impl Future<Output = Result<(), AwsError>> + Send;
}

/// [`Elbv2Traffic`] over the AWS SDK for Rust.
#[derive(Clone, Debug)]
pub struct SdkElbv2 {
    client: aws_sdk_elasticloadbalancingv2::Client,
}

impl SdkElbv2 {
    /// A client for `config` ([`crate::AwsSettings::load`]).
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        Self { client: aws_sdk_elasticloadbalancingv2::Client::new(config) }
    }
}

fn description(target: &Target) -> TargetDescription {
    TargetDescription::builder().id(&target.id).set_port(target.port.map(i32::from)).build()
}

impl Elbv2Traffic for SdkElbv2 {
    async fn target_group(&self, name: &str) -> Result<TargetGroup, AwsError> {
        let request = self.client.describe_target_groups();
        let request = if name.starts_with("arn:") { request.target_group_arns(name) } else { request.names(name) };
        let output = (request.send().await).map_err(|error| AwsError::from_sdk("DescribeTargetGroups", error))?;
        let group = output.target_groups.unwrap_or_default().into_iter().next().ok_or_else(|| AwsError {
            operation: "DescribeTargetGroups",
            code: "TargetGroupNotFound".to_string(),
            message: format!("no target group is named {name}"),
            kind: AwsErrorKind::Permanent,
        })?;
        Ok(TargetGroup {
            arn: group.target_group_arn.unwrap_or_default(),
            target_type: group.target_type.map(|kind| kind.as_str().to_string()).unwrap_or_else(|| "instance".into()),
            port: group.port.and_then(|port| u16::try_from(port).ok()),
        })
    }

    async fn register(&self, group_arn: &str, target: &Target) -> Result<(), AwsError> {
        let request = self.client.register_targets().target_group_arn(group_arn);
        (request.targets(description(target)).send().await)
            .map_err(|error| AwsError::from_sdk("RegisterTargets", error))?;
        Ok(())
    }

    async fn deregister(&self, group_arn: &str, target: &Target) -> Result<(), AwsError> {
        let request = self.client.deregister_targets().target_group_arn(group_arn);
        (request.targets(description(target)).send().await)
            .map_err(|error| AwsError::from_sdk("DeregisterTargets", error))?;
        Ok(())
    }

    async fn target_state(&self, group_arn: &str, target: &Target) -> Result<Option<String>, AwsError> {
        let output = (self.client.describe_target_health().target_group_arn(group_arn).send().await)
            .map_err(|error| AwsError::from_sdk("DescribeTargetHealth", error))?;
        let found = output.target_health_descriptions.unwrap_or_default().into_iter().find(|health| {
            health.target.as_ref().is_some_and(|listed| {
                listed.id.as_deref() == Some(target.id.as_str())
                    && (target.port.is_none() || listed.port == target.port.map(i32::from))
            })
        });
        Ok(found
            .and_then(|health| health.target_health)
            .and_then(|health| health.state)
            .map(|state| state.as_str().to_string()))
    }

    async fn listener_weights(&self, listener_arn: &str) -> Result<Vec<(String, i32)>, AwsError> {
        let output = (self.client.describe_listeners().listener_arns(listener_arn).send().await)
            .map_err(|error| AwsError::from_sdk("DescribeListeners", error))?;
        let listener = output.listeners.unwrap_or_default().into_iter().next();
        let actions = listener.and_then(|listener| listener.default_actions).unwrap_or_default();
        let forward = actions.into_iter().find(|action| action.r#type == Some(ActionTypeEnum::Forward));
        let groups = forward.and_then(|action| action.forward_config).and_then(|config| config.target_groups);
        Ok(groups
            .unwrap_or_default()
            .into_iter()
            .map(|group| (group.target_group_arn.unwrap_or_default(), group.weight.unwrap_or(1)))
            .collect())
    }

    async fn set_listener_weights(&self, listener_arn: &str, weights: &[(String, i32)]) -> Result<(), AwsError> {
        let groups = weights
            .iter()
            .map(|(arn, weight)| TargetGroupTuple::builder().target_group_arn(arn).weight(*weight).build())
            .collect();
        let forward = ForwardActionConfig::builder().set_target_groups(Some(groups)).build();
        let action = Action::builder().r#type(ActionTypeEnum::Forward).forward_config(forward).build();
        (self.client.modify_listener().listener_arn(listener_arn).default_actions(action).send().await)
            .map_err(|error| AwsError::from_sdk("ModifyListener", error))?;
        Ok(())
    }
}
