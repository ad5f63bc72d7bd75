//! A deployment group's AWS resources (feature level 14): an ECS group's service and
//! the target group pair with the listeners that move its traffic (§5.3), and the ELBv2
//! target groups a Server group names by ARN.

use serde::{Deserialize, Serialize};

use crate::model::resources::TargetGroupInfo;

/// `ecsServices[]`: a service under the `CODE_DEPLOY` deployment controller.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EcsService {
    /// The service's name.
    pub service_name: String,
    /// Its cluster's name.
    pub cluster_name: String,
}

/// `trafficRoute`: the listeners of one kind of traffic.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrafficRoute {
    /// Listener ARNs (exactly one).
    #[serde(default)]
    pub listener_arns: Vec<String>,
}

/// `targetGroupPairInfo`: the two ELBv2 target groups an ECS service's original and
/// replacement task sets sit behind, the production listener and an optional test one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetGroupPairInfo {
    /// Exactly two target groups, by name.
    #[serde(default)]
    pub target_groups: Vec<TargetGroupInfo>,
    /// The production listener.
    #[serde(default)]
    pub prod_traffic_route: TrafficRoute,
    /// The test listener, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_traffic_route: Option<TrafficRoute>,
}

impl TargetGroupPairInfo {
    /// The production listener's ARN.
    pub fn prod_listener(&self) -> Option<&str> {
        self.prod_traffic_route.listener_arns.first().map(String::as_str)
    }

    /// The test listener's ARN, if the pair names one.
    pub fn test_listener(&self) -> Option<&str> {
        self.test_traffic_route.as_ref().and_then(|route| route.listener_arns.first()).map(String::as_str)
    }
}

/// Why an ECS group's service or pair is refused: a sentence naming the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidEcsGroup(pub String);

/// Checks an ECS group's service and pair as AWS does: one service, one pair of two
/// distinct target groups, one production listener, at most one test listener.
///
/// # Errors
/// What is missing or extra.
pub fn check_ecs_group(services: &[EcsService], pairs: &[TargetGroupPairInfo]) -> Result<(), InvalidEcsGroup> {
    let refuse = |message: String| Err(InvalidEcsGroup(message));
    let [service] = services else {
        return refuse(format!(
            "an ECS deployment group names exactly one service in ecsServices (it names {})",
            services.len()
        ));
    };
    if service.service_name.is_empty() || service.cluster_name.is_empty() {
        return refuse("ecsServices[0] needs serviceName and clusterName".to_string());
    }
    let [pair] = pairs else {
        return refuse(format!(
            "an ECS deployment group names exactly one pair in loadBalancerInfo.targetGroupPairInfoList (it names {})",
            pairs.len()
        ));
    };
    match pair.target_groups.as_slice() {
        [a, b] if !a.name.is_empty() && a.name != b.name && !b.name.is_empty() => {}
        _ => return refuse("targetGroupPairInfoList[0].targetGroups names two different target groups".to_string()),
    }
    if pair.prod_traffic_route.listener_arns.len() != 1 || pair.prod_listener().is_some_and(str::is_empty) {
        return refuse(
            "targetGroupPairInfoList[0].prodTrafficRoute.listenerArns names exactly one listener".to_string(),
        );
    }
    if pair.test_traffic_route.as_ref().is_some_and(|route| route.listener_arns.len() > 1) {
        return refuse(
            "targetGroupPairInfoList[0].testTrafficRoute.listenerArns names at most one listener".to_string(),
        );
    }
    Ok(())
}

/// True when a `targetGroupInfoList` name is an ELBv2 target group's ARN
/// (`arn:<partition>:elasticloadbalancing:<region>:<account>:targetgroup/<name>/<id>`):
/// fleetmesh's own routes are named there too, and a route name has no `:`.
pub fn is_target_group_arn(name: &str) -> bool {
    let parts: Vec<&str> = name.splitn(6, ':').collect();
    matches!(parts.as_slice(), ["arn", _, "elasticloadbalancing", _, _, rest] if rest.starts_with("targetgroup/"))
}
