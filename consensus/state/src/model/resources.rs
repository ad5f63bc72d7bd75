//! Applications, deployment groups and deployment configurations, shaped like
//! CodeDeploy's (`codedeploy.md` §4, §5) so the same records can later be served over
//! CodeDeploy's own wire protocol. Field names are the AWS API's (camelCase).

use std::collections::BTreeMap;

use crate::NodeId;
use serde::{Deserialize, Serialize};

use super::blue_green::BlueGreenDeploymentConfiguration;

use super::ecs_group::is_target_group_arn;
use super::ids::{DeploymentId, RevisionId, UnixMillis};
use super::members::Actor;
pub use super::names::{validate_name, InvalidName, NAME_LEN_MAX};
use super::traffic_routing::TrafficRoutingConfig;

/// Where an application's revisions run (§4.7 `computePlatform`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum ComputePlatform {
    /// Hosts running the fleetmesh agent (CodeDeploy's EC2/On-premises).
    #[default]
    Server,
    /// AWS Lambda functions (deployment configurations from feature level 12;
    /// deployments not built yet).
    Lambda,
    /// Amazon ECS services (deployment configurations from feature level 12;
    /// deployments not built yet).
    #[serde(rename = "ECS")]
    Ecs,
}

impl ComputePlatform {
    /// Parses the CLI/API spelling.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "Server" => Some(Self::Server),
            "Lambda" => Some(Self::Lambda),
            "ECS" => Some(Self::Ecs),
            _ => None,
        }
    }
}

impl std::fmt::Display for ComputePlatform {
    /// AWS's spelling: `Server`, `Lambda`, `ECS`.
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            Self::Server => "Server",
            Self::Lambda => "Lambda",
            Self::Ecs => "ECS",
        })
    }
}

/// An application: a name under which revisions and deployment groups live.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Application {
    /// Unique name (§4.7 rules).
    pub application_name: String,
    /// Random id, like CodeDeploy's.
    pub application_id: String,
    /// Server, Lambda or ECS.
    pub compute_platform: ComputePlatform,
    /// Creation time.
    pub create_time: UnixMillis,
    /// Who created it (for audit; see [`crate::model::members::Actor`]); none when made
    /// below feature level 7 or by the cluster itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<Actor>,
    /// Its tags (`TagResource`, feature level 15); left out of the encoding while none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

/// How a tag filter matches (§5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[allow(clippy::enum_variant_names)]
pub enum TagFilterType {
    /// The key is present, any value.
    #[serde(rename = "KEY_ONLY")]
    KeyOnly,
    /// Any key has this value.
    #[serde(rename = "VALUE_ONLY")]
    ValueOnly,
    /// This key has this value.
    #[serde(rename = "KEY_AND_VALUE")]
    KeyAndValue,
}

/// One tag filter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagFilter {
    /// Tag key (ignored for VALUE_ONLY).
    #[serde(rename = "Key", default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Tag value (ignored for KEY_ONLY).
    #[serde(rename = "Value", default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// How to match.
    #[serde(rename = "Type")]
    pub filter_type: TagFilterType,
}

impl TagFilter {
    /// True when a host with `tags` matches this filter.
    pub fn matches(&self, tags: &BTreeMap<String, String>) -> bool {
        match self.filter_type {
            TagFilterType::KeyOnly => self.key.as_ref().is_some_and(|key| tags.contains_key(key)),
            TagFilterType::ValueOnly => self.value.as_ref().is_some_and(|value| tags.values().any(|v| v == value)),
            TagFilterType::KeyAndValue => match (&self.key, &self.value) {
                (Some(key), Some(value)) => tags.get(key) == Some(value),
                _ => false,
            },
        }
    }
}

/// Which hosts a deployment group targets (§5.1): either a flat list of filters OR'ed
/// together, or up to three tag groups AND'ed (a host must match a filter of every group).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetSelector {
    /// `onPremisesInstanceTagFilters`: any filter matches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tag_filters: Vec<TagFilter>,
    /// `onPremisesTagSet.onPremisesTagSetList`: every group has a matching filter.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tag_set: Vec<Vec<TagFilter>>,
}

/// Most tag groups in a tag set (§5.1).
pub const TAG_SET_GROUPS_MAX: usize = 3;
/// Most filters in one tag group (§5.1).
pub const TAG_SET_GROUP_FILTERS_MAX: usize = 10;

impl TargetSelector {
    /// True when a host with `tags` is a target.
    pub fn matches(&self, tags: &BTreeMap<String, String>) -> bool {
        if !self.tag_set.is_empty() {
            return self.tag_set.iter().all(|group| group.iter().any(|filter| filter.matches(tags)));
        }
        self.tag_filters.iter().any(|filter| filter.matches(tags))
    }
}

/// Events that trigger an automatic rollback (§7.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[allow(clippy::enum_variant_names)]
pub enum AutoRollbackEvent {
    /// The deployment failed.
    #[serde(rename = "DEPLOYMENT_FAILURE")]
    DeploymentFailure,
    /// An alarm stopped it (alarms are not built yet).
    #[serde(rename = "DEPLOYMENT_STOP_ON_ALARM")]
    DeploymentStopOnAlarm,
    /// An operator stopped it with rollback requested.
    #[serde(rename = "DEPLOYMENT_STOP_ON_REQUEST")]
    DeploymentStopOnRequest,
}

/// `autoRollbackConfiguration`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutoRollbackConfiguration {
    /// Whether automatic rollback is on.
    pub enabled: bool,
    /// Which events trigger it.
    #[serde(default)]
    pub events: Vec<AutoRollbackEvent>,
}

impl AutoRollbackConfiguration {
    /// Rollback on failure, the usual setting of `--auto-rollback`.
    pub fn on_failure() -> Self {
        Self { enabled: true, events: vec![AutoRollbackEvent::DeploymentFailure] }
    }

    /// True when `event` triggers a rollback.
    pub fn triggers_on(&self, event: AutoRollbackEvent) -> bool {
        self.enabled && self.events.contains(&event)
    }
}

/// In-place or blue/green (§5.3). Only in-place is built; the type leaves room.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeploymentType {
    /// Stop, install and restart on the same hosts, in waves.
    #[default]
    #[serde(rename = "IN_PLACE")]
    InPlace,
    /// Install on a replacement fleet, then reroute traffic.
    #[serde(rename = "BLUE_GREEN")]
    BlueGreen,
}

/// Whether a deployment moves traffic (§5.3): with traffic control, each target is
/// taken off its group's routes before it stops and put back after it validates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeploymentOption {
    /// Targets are not taken off any route (no block or allow events).
    #[default]
    #[serde(rename = "WITHOUT_TRAFFIC_CONTROL")]
    WithoutTrafficControl,
    /// Targets leave the group's routes before `ApplicationStop` and rejoin after
    /// `ValidateService` (the Before/Block/AfterBlockTraffic and
    /// Before/Allow/AfterAllowTraffic events).
    #[serde(rename = "WITH_TRAFFIC_CONTROL")]
    WithTrafficControl,
}

/// Most target groups (routes) a deployment group names, as AWS allows (§5.3).
pub const TARGET_GROUPS_MAX: usize = 10;

/// A target group of `loadBalancerInfo`: in fleetmesh, its name names a traffic route.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetGroupInfo {
    /// The route's name.
    pub name: String,
}

/// `loadBalancerInfo` (§5.3): the routes a group's targets are taken off and put back
/// on. fleetmesh reads only `targetGroupInfoList`; Classic load balancers and ECS
/// target-group pairs are AWS's own.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancerInfo {
    /// The target groups, each naming a route (at most [`TARGET_GROUPS_MAX`]).
    #[serde(default)]
    pub target_group_info_list: Vec<TargetGroupInfo>,
    /// An ECS group's target group pair (level 14).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_group_pair_info_list: Vec<crate::model::ecs_group::TargetGroupPairInfo>,
}

impl LoadBalancerInfo {
    /// The names of the routes, in order.
    pub fn route_names(&self) -> Vec<String> {
        let names = self.target_group_info_list.iter().map(|group| &group.name);
        names.filter(|name| !is_target_group_arn(name)).cloned().collect()
    }

    /// The ELBv2 target groups, by ARN, in order (level 14).
    pub fn elbv2_target_groups(&self) -> Vec<String> {
        let names = self.target_group_info_list.iter().map(|group| &group.name);
        names.filter(|name| is_target_group_arn(name)).cloned().collect()
    }
}

/// What happens to the installed files of a host that already has a file at a
/// destination (§1.3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum FileExistsBehavior {
    /// Fail the Install event (the default).
    #[default]
    #[serde(rename = "DISALLOW")]
    Disallow,
    /// Replace the file.
    #[serde(rename = "OVERWRITE")]
    Overwrite,
    /// Keep the file on disk.
    #[serde(rename = "RETAIN")]
    Retain,
}

impl FileExistsBehavior {
    /// Parses the appspec/CLI spelling.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "DISALLOW" => Some(Self::Disallow),
            "OVERWRITE" => Some(Self::Overwrite),
            "RETAIN" => Some(Self::Retain),
            _ => None,
        }
    }
}

/// What a deployment group knows about one host it has deployed to (§4.2 "instance
/// health" and "revision health").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceRecord {
    /// The revision the host's last finished attempt installed, if that attempt
    /// succeeded; the previous one otherwise.
    pub revision_id: Option<RevisionId>,
    /// Healthy after a success, unhealthy after a failure.
    pub healthy: bool,
    /// The deployment that last acted on the host.
    pub last_deployment_id: DeploymentId,
}

/// True for a type's default value (`skip_serializing_if` of optional settings).
pub(crate) fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

impl DeploymentGroup {
    /// The routes a deployment of this group moves traffic on: the load balancer's
    /// target groups when the group deploys with traffic control, else none.
    pub fn traffic_routes(&self) -> Vec<String> {
        match (&self.deployment_option, &self.load_balancer_info) {
            (DeploymentOption::WithTrafficControl, Some(info)) => info.route_names(),
            _ => Vec::new(),
        }
    }

    /// The ELBv2 target groups a deployment of this group takes targets off and puts
    /// back on, when it deploys with traffic control.
    pub fn elbv2_target_groups(&self) -> Vec<String> {
        match (&self.deployment_option, &self.load_balancer_info) {
            (DeploymentOption::WithTrafficControl, Some(info)) => info.elbv2_target_groups(),
            _ => Vec::new(),
        }
    }
}

/// A deployment group: a set of target hosts, a deployment configuration and rollback
/// settings, under an application.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentGroup {
    /// Owning application.
    pub application_name: String,
    /// Name, unique within the application.
    pub deployment_group_name: String,
    /// Random id; hosts key their install state by it (§2.4: a recreated group starts
    /// fresh).
    pub deployment_group_id: String,
    /// Default configuration for its deployments.
    pub deployment_config_name: String,
    /// Which hosts are targets.
    pub target_selector: TargetSelector,
    /// Rollback settings, overridable per deployment.
    pub auto_rollback_configuration: AutoRollbackConfiguration,
    /// In-place (blue/green later).
    pub deployment_style: DeploymentType,
    /// With or without traffic control (feature level 9; absent reads as without).
    #[serde(default, skip_serializing_if = "is_default")]
    pub deployment_option: DeploymentOption,
    /// The routes its targets are taken off and put back on (feature level 9).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer_info: Option<LoadBalancerInfo>,
    /// Blue/green settings (feature level 10; only with `deployment_style` blue/green).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blue_green_deployment_configuration: Option<BlueGreenDeploymentConfiguration>,
    /// The IAM role the leader assumes for the group's AWS calls (feature level 13).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_role_arn: Option<String>,
    /// The ECS service an ECS group deploys (level 14).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ecs_services: Vec<crate::model::ecs_group::EcsService>,
    /// Whether hosts that join later get the last successful revision (§5.1).
    pub update_outdated_instances: bool,
    /// The revision of the last deployment that succeeded (CodeDeploy's target revision).
    pub target_revision: Option<RevisionId>,
    /// That deployment.
    pub last_successful_deployment_id: Option<DeploymentId>,
    /// The deployment running now, if any (one at a time per group).
    pub active_deployment_id: Option<DeploymentId>,
    /// Per host: what the group last did there.
    pub instances: BTreeMap<NodeId, InstanceRecord>,
    /// Creation time.
    pub create_time: UnixMillis,
    /// Who created it (for audit; see [`crate::model::members::Actor`]); none when made
    /// below feature level 7 or by the cluster itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<Actor>,
    /// Its tags (`TagResource`, feature level 15); left out of the encoding while none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Its triggers and their delivery cursors (feature level 17); left out while none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub triggers: Vec<crate::model::triggers::GroupTrigger>,
    /// The alarms its deployments are gated on (feature level 18).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarm_configuration: Option<crate::model::alarms::AlarmConfiguration>,
}

/// `minimumHealthyHosts` (§4.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MinimumHealthyHosts {
    /// How `value` is read.
    #[serde(rename = "type")]
    pub kind: MinimumHealthyHostsType,
    /// A count, or a percentage 0–99.
    pub value: u32,
}

/// How a minimum-healthy-hosts value is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MinimumHealthyHostsType {
    /// An absolute number of hosts.
    #[serde(rename = "HOST_COUNT")]
    HostCount,
    /// A percentage of the targets, rounded up to a count at deployment start.
    #[serde(rename = "FLEET_PERCENT")]
    FleetPercent,
    /// CodeDeployDefault.OneAtATime's own rule (reported as MOST_CONCURRENCY 1): one at
    /// a time, every host but the last must succeed.
    #[serde(rename = "MOST_CONCURRENCY")]
    MostConcurrency,
}

/// A deployment configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentConfig {
    /// Name (§4.7).
    pub deployment_config_name: String,
    /// Random id (fixed for predefined configs).
    pub deployment_config_id: String,
    /// Platform it applies to.
    pub compute_platform: ComputePlatform,
    /// The in-place health rule. `MOST_CONCURRENCY` (OneAtATime's rule) only for the
    /// predefined config, or as the default of a config with a routing config.
    pub minimum_healthy_hosts: MinimumHealthyHosts,
    /// Canary or linear steps (§4.6; for Server, the waves of an in-place deployment),
    /// as the user gave them; checked when created. Needs feature level 9.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_routing_config: Option<TrafficRoutingConfig>,
    /// Creation time (0 for predefined configs).
    pub create_time: UnixMillis,
    /// Who created it (for audit; see [`crate::model::members::Actor`]); none when made
    /// below feature level 7 or by the cluster itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<Actor>,
}

/// Names of the predefined Server configurations (§4.1).
pub const ONE_AT_A_TIME: &str = "CodeDeployDefault.OneAtATime";
/// Half the fleet at a time.
pub const HALF_AT_A_TIME: &str = "CodeDeployDefault.HalfAtATime";
/// Everything at once.
pub const ALL_AT_ONCE: &str = "CodeDeployDefault.AllAtOnce";
/// Prefix reserved for predefined configurations.
pub const PREDEFINED_PREFIX: &str = "CodeDeployDefault.";

/// The predefined Server deployment configurations.
pub fn predefined_configs() -> Vec<DeploymentConfig> {
    let config = |name: &str, id: &str, kind, value| DeploymentConfig {
        deployment_config_name: name.to_string(),
        deployment_config_id: id.to_string(),
        compute_platform: ComputePlatform::Server,
        minimum_healthy_hosts: MinimumHealthyHosts { kind, value },
        traffic_routing_config: None,
        create_time: UnixMillis(0),
        created_by: None,
    };
    vec![
        config(ONE_AT_A_TIME, "predefined-one-at-a-time", MinimumHealthyHostsType::MostConcurrency, 1),
        config(HALF_AT_A_TIME, "predefined-half-at-a-time", MinimumHealthyHostsType::FleetPercent, 50),
        config(ALL_AT_ONCE, "predefined-all-at-once", MinimumHealthyHostsType::HostCount, 0),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn filter(key: Option<&str>, value: Option<&str>, filter_type: TagFilterType) -> TagFilter {
        TagFilter { key: key.map(str::to_string), value: value.map(str::to_string), filter_type }
    }

    #[test]
    fn flat_filters_are_ored() {
        let selector = TargetSelector {
            tag_filters: vec![
                filter(Some("role"), Some("web"), TagFilterType::KeyAndValue),
                filter(Some("canary"), None, TagFilterType::KeyOnly),
            ],
            tag_set: vec![],
        };
        assert!(selector.matches(&tags(&[("role", "web")])));
        assert!(selector.matches(&tags(&[("canary", "")])));
        assert!(!selector.matches(&tags(&[("role", "db")])));
    }

    #[test]
    fn tag_set_groups_are_anded() {
        let selector = TargetSelector {
            tag_filters: vec![],
            tag_set: vec![
                vec![filter(Some("role"), Some("web"), TagFilterType::KeyAndValue)],
                vec![filter(None, Some("prod"), TagFilterType::ValueOnly)],
            ],
        };
        assert!(selector.matches(&tags(&[("role", "web"), ("env", "prod")])));
        assert!(!selector.matches(&tags(&[("role", "web"), ("env", "dev")])));
    }

    #[test]
    fn names_follow_codedeploy_rules() {
        assert!(validate_name("application name", "my-app_1.0+x=y,z@w").is_ok());
        assert!(validate_name("application name", "").is_err());
        assert!(validate_name("application name", "has space").unwrap_err().to_string().contains("' '"));
        assert!(validate_name("application name", &"a".repeat(101)).is_err());
    }
}
