//! The structures inside inputs and outputs (botocore's shapes `ApplicationInfo`,
//! `DeploymentGroupInfo`, `DeploymentConfigInfo`, `RevisionLocation`, …; the deployment
//! shapes are in `deployments.rs`), and how each is built from the replicated state. Enums that the state already spells as AWS does are reused from it.

use fleetmesh_state::model::blue_green::BlueGreenDeploymentConfiguration;
use fleetmesh_state::model::ids::{DeploymentId, RevisionId};
use fleetmesh_state::model::resources::{Application, DeploymentConfig, DeploymentGroup};
use fleetmesh_state::model::revision::RevisionRecord;
use fleetmesh_state::{ClusterState, NodeId};
use serde::{Deserialize, Serialize};

pub use fleetmesh_state::model::deployment::{
    DeploymentCreator, DeploymentOverview, DeploymentStatus, Diagnostics, ErrorCode, ErrorInformation,
    LifecycleErrorCode, LifecycleEventStatus, RollbackInfo, TargetStatus,
};
pub use fleetmesh_state::model::resources::{
    AutoRollbackConfiguration, AutoRollbackEvent, ComputePlatform, DeploymentOption, DeploymentType,
    FileExistsBehavior, MinimumHealthyHosts, MinimumHealthyHostsType, TagFilter, TagFilterType,
};
pub use fleetmesh_state::model::revision::Manifest;
pub use fleetmesh_state::model::traffic_routing::{
    TimeBasedCanary, TimeBasedLinear, TrafficRouting, TrafficRoutingConfig, TrafficRoutingType,
};

use crate::{EpochSeconds, ErrorKind, InlineAppSpec, OperationError};

/// `RevisionLocationType`: where a revision's content is. fleetmesh's own revisions are
/// in the swarm, named by their manifest's BLAKE3.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum RevisionLocationType {
    /// Pushed to the cluster (`fleetmesh deploy push`).
    #[default]
    #[serde(rename = "fleetmesh")]
    Fleetmesh,
    /// An S3 object: fetched once by the node that takes the request.
    S3,
    /// A Git commit: `owner/name` on GitHub, or any Git URL (fetched once).
    GitHub,
    /// An inline AppSpec, the older form (`string.content`): Lambda revisions.
    String,
    /// An inline AppSpec (`appSpecContent.content`): Lambda revisions.
    AppSpecContent,
}

/// `RevisionLocation`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RevisionLocation {
    /// The kind of location.
    #[serde(default)]
    pub revision_type: RevisionLocationType,
    /// For `fleetmesh`: the revision id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_id: Option<RevisionId>,
    /// For `AppSpecContent`: the document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_spec_content: Option<InlineAppSpec>,
    /// For `String`: the document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub string: Option<InlineAppSpec>,
    /// For `S3`: the object (feature level 15).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3_location: Option<Box<crate::S3Location>>,
    /// For `GitHub`: the repository and commit (feature level 15).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_hub_location: Option<Box<crate::GitHubLocation>>,
}

impl RevisionLocation {
    /// A revision pushed to the cluster.
    pub fn fleetmesh(revision_id: RevisionId) -> Self {
        Self { revision_type: RevisionLocationType::Fleetmesh, revision_id: Some(revision_id), ..Self::default() }
    }
}

/// Names a revision: `revisionId`, or AWS's `revision` location.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RevisionRef {
    /// The id.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "crate::strict::revision_id_named")]
    pub revision_id: Option<RevisionId>,
    /// AWS's form (`{"revisionType": "fleetmesh", "revisionId": ...}`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::strict::revision_location_named"
    )]
    pub revision: Option<RevisionLocation>,
}

impl RevisionRef {
    /// A revision by id.
    pub fn id(revision_id: RevisionId) -> Self {
        Self { revision_id: Some(revision_id), revision: None }
    }

    /// The revision named.
    ///
    /// # Errors
    /// None named, or a location of a kind fleetmesh does not serve yet.
    pub fn resolve(&self) -> Result<RevisionId, OperationError> {
        if let Some(id) = self.revision_id {
            return Ok(id);
        }
        if let Some(content) = self.inline_content()? {
            return Ok(RevisionRecord::content_id(content));
        }
        match &self.revision {
            Some(RevisionLocation {
                revision_id: Some(id), revision_type: RevisionLocationType::Fleetmesh, ..
            }) => Ok(*id),
            Some(RevisionLocation { revision_type, .. }) if *revision_type != RevisionLocationType::Fleetmesh => {
                Err(OperationError::new(
                    ErrorKind::BadRequest,
                    format!("revisionType {revision_type:?} is not served yet; push the revision and name its id"),
                ))
            }
            _ => Err(OperationError::new(ErrorKind::BadRequest, "missing revisionId")),
        }
    }

    /// The AppSpec given inline (`AppSpecContent` or `String`), if the location is one.
    ///
    /// # Errors
    /// An inline location without its document, or with an empty one.
    pub fn inline_content(&self) -> Result<Option<&str>, OperationError> {
        let Some(location) = &self.revision else { return Ok(None) };
        let (member, inline) = match location.revision_type {
            RevisionLocationType::AppSpecContent => ("appSpecContent", &location.app_spec_content),
            RevisionLocationType::String => ("string", &location.string),
            _ => return Ok(None),
        };
        match inline {
            Some(inline) if !inline.content.trim().is_empty() => Ok(Some(inline.content.as_str())),
            _ => Err(OperationError::new(
                ErrorKind::BadRequest,
                format!(
                    "revision.{member}.content: give the AppSpec document (revisionType {:?})",
                    location.revision_type
                ),
            )),
        }
    }
}

/// `ApplicationInfo`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationInfo {
    /// Random id.
    pub application_id: String,
    /// Name.
    pub application_name: String,
    /// Created.
    pub create_time: EpochSeconds,
    /// Server, Lambda or ECS.
    pub compute_platform: ComputePlatform,
    /// Who created it (fleetmesh's audit extension: `admin-token:<id>`, ...); absent
    /// when it was made before feature level 7 or by the cluster itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
}

impl From<&Application> for ApplicationInfo {
    fn from(application: &Application) -> Self {
        Self {
            application_id: application.application_id.clone(),
            application_name: application.application_name.clone(),
            create_time: application.create_time.into(),
            compute_platform: application.compute_platform,
            created_by: application.created_by.as_ref().map(ToString::to_string),
        }
    }
}

/// `onPremisesTagSet`: tag groups, AND'ed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[serde(deny_unknown_fields)]
pub struct OnPremisesTagSet {
    /// Up to three groups; a host matches when it matches a filter of every group.
    #[serde(default, deserialize_with = "crate::strict::tag_groups_strict")]
    pub on_premises_tag_set_list: Vec<Vec<TagFilter>>,
}

/// `DeploymentStyle`. Either member may be left out of an input: `IN_PLACE` and
/// `WITHOUT_TRAFFIC_CONTROL` are the defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[serde(deny_unknown_fields)]
pub struct DeploymentStyle {
    /// In place or blue/green.
    #[serde(default)]
    pub deployment_type: DeploymentType,
    /// `WITH_TRAFFIC_CONTROL` or `WITHOUT_TRAFFIC_CONTROL`.
    #[serde(default)]
    pub deployment_option: DeploymentOption,
}

/// `LoadBalancerInfo`: each target group of `targetGroupInfoList` names a fleetmesh route;
/// an ECS group's `targetGroupPairInfoList` names ELBv2 target groups and listeners.
/// Classic load balancers (`elbInfoList`) are refused as unknown members.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[serde(deny_unknown_fields)]
pub struct LoadBalancerInfo {
    /// The routes, by name (at most 10).
    #[serde(default)]
    pub target_group_info_list: Vec<TargetGroupInfo>,
    /// An ECS group's target group pair (level 14).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_group_pair_info_list: Vec<fleetmesh_state::model::ecs_group::TargetGroupPairInfo>,
}

/// `TargetGroupInfo`: a route's name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[serde(deny_unknown_fields)]
pub struct TargetGroupInfo {
    /// The route.
    pub name: String,
}

impl From<&fleetmesh_state::model::resources::LoadBalancerInfo> for LoadBalancerInfo {
    fn from(info: &fleetmesh_state::model::resources::LoadBalancerInfo) -> Self {
        let target_group_info_list = info.target_group_info_list.iter().map(|group| group.name.clone());
        let target_group_info_list = target_group_info_list.map(|name| TargetGroupInfo { name }).collect();
        Self { target_group_info_list, target_group_pair_info_list: info.target_group_pair_info_list.clone() }
    }
}

impl From<&LoadBalancerInfo> for fleetmesh_state::model::resources::LoadBalancerInfo {
    fn from(info: &LoadBalancerInfo) -> Self {
        use fleetmesh_state::model::resources::TargetGroupInfo as Stored;
        let target_group_info_list = info.target_group_info_list.iter().map(|group| group.name.clone());
        let target_group_info_list = target_group_info_list.map(|name| Stored { name }).collect();
        Self { target_group_info_list, target_group_pair_info_list: info.target_group_pair_info_list.clone() }
    }
}

impl Default for DeploymentStyle {
    /// In place, without traffic control: what every deployment was before blue/green.
    fn default() -> Self {
        Self { deployment_type: DeploymentType::InPlace, deployment_option: DeploymentOption::WithoutTrafficControl }
    }
}

/// `OutdatedInstancesStrategy`: what happens to hosts that join while a group deploys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OutdatedInstancesStrategy {
    /// They get the group's revision in a follow-up deployment.
    Update,
    /// They are left as they are.
    Ignore,
}

/// `LastDeploymentInfo`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LastDeploymentInfo {
    /// The deployment.
    pub deployment_id: DeploymentId,
    /// Its status.
    pub status: DeploymentStatus,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<EpochSeconds>,
    /// When it was created.
    pub create_time: EpochSeconds,
}

impl LastDeploymentInfo {
    fn of(id: Option<&DeploymentId>, state: &ClusterState) -> Option<Self> {
        let deployment = state.deployments.get(id?)?;
        Some(Self {
            deployment_id: deployment.deployment_id.clone(),
            status: deployment.status,
            end_time: deployment.complete_time.map(Into::into),
            create_time: deployment.create_time.into(),
        })
    }
}

/// `DeploymentGroupInfo`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentGroupInfo {
    /// Application.
    pub application_name: String,
    /// Random id, kept for the group's life (hooks get it as `DEPLOYMENT_GROUP_ID`).
    pub deployment_group_id: String,
    /// Name.
    pub deployment_group_name: String,
    /// Default configuration of its deployments.
    pub deployment_config_name: String,
    /// Tag filters, any of which selects a host.
    #[serde(default)]
    pub on_premises_instance_tag_filters: Vec<TagFilter>,
    /// Tag groups, every one of which must select a host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_premises_tag_set: Option<OnPremisesTagSet>,
    /// Rollback settings.
    pub auto_rollback_configuration: AutoRollbackConfiguration,
    /// In place or blue/green.
    pub deployment_style: DeploymentStyle,
    /// The routes its deployments take targets off and put back on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer_info: Option<LoadBalancerInfo>,
    /// Blue/green settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blue_green_deployment_configuration: Option<BlueGreenDeploymentConfiguration>,
    /// Late joiners get the revision or not.
    pub outdated_instances_strategy: OutdatedInstancesStrategy,
    /// The revision its last successful deployment installed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_revision: Option<RevisionLocation>,
    /// Its last successful deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_deployment: Option<LastDeploymentInfo>,
    /// Its running deployment (fleetmesh runs one at a time per group).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempted_deployment: Option<LastDeploymentInfo>,
    /// Server, for groups of hosts.
    pub compute_platform: ComputePlatform,
    /// The IAM role assumed for the group's AWS calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_role_arn: Option<String>,
    /// An ECS group's service.
    #[serde(default, rename = "ecsServices", skip_serializing_if = "Vec::is_empty")]
    pub ecs_services: Vec<fleetmesh_state::model::ecs_group::EcsService>,
    /// Its triggers (secrets never shown).
    #[serde(default)]
    pub trigger_configurations: Vec<crate::triggers::TriggerConfig>,
    /// The alarms that stop its deployments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarm_configuration: Option<fleetmesh_state::model::alarms::AlarmConfiguration>,
    /// Who created it (fleetmesh's audit extension: `admin-token:<id>`, ...); absent
    /// when it was made before feature level 7 or by the cluster itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
}

impl DeploymentGroupInfo {
    /// The group as the API shows it, with its deployments looked up in `state`.
    pub fn from_state(group: &DeploymentGroup, state: &ClusterState) -> Self {
        let selector = &group.target_selector;
        let compute_platform = state
            .applications
            .get(&group.application_name)
            .map(|application| application.compute_platform)
            .unwrap_or_default();
        Self {
            application_name: group.application_name.clone(),
            deployment_group_id: group.deployment_group_id.clone(),
            deployment_group_name: group.deployment_group_name.clone(),
            deployment_config_name: group.deployment_config_name.clone(),
            on_premises_instance_tag_filters: selector.tag_filters.clone(),
            on_premises_tag_set: (!selector.tag_set.is_empty())
                .then(|| OnPremisesTagSet { on_premises_tag_set_list: selector.tag_set.clone() }),
            auto_rollback_configuration: group.auto_rollback_configuration.clone(),
            deployment_style: DeploymentStyle {
                deployment_type: group.deployment_style,
                deployment_option: group.deployment_option,
            },
            load_balancer_info: group.load_balancer_info.as_ref().map(LoadBalancerInfo::from),
            blue_green_deployment_configuration: group.blue_green_deployment_configuration,
            outdated_instances_strategy: if group.update_outdated_instances {
                OutdatedInstancesStrategy::Update
            } else {
                OutdatedInstancesStrategy::Ignore
            },
            target_revision: group.target_revision.map(|id| RevisionLocation::in_state(state, id)),
            last_successful_deployment: LastDeploymentInfo::of(group.last_successful_deployment_id.as_ref(), state),
            last_attempted_deployment: LastDeploymentInfo::of(group.active_deployment_id.as_ref(), state),
            compute_platform,
            service_role_arn: group.service_role_arn.clone(),
            ecs_services: group.ecs_services.clone(),
            trigger_configurations: group.triggers.iter().map(crate::triggers::TriggerConfig::shown).collect(),
            alarm_configuration: group.alarm_configuration.clone(),
            created_by: group.created_by.as_ref().map(ToString::to_string),
        }
    }
}

/// `DeploymentConfigInfo`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentConfigInfo {
    /// Random id (fixed for the predefined ones).
    pub deployment_config_id: String,
    /// Name.
    pub deployment_config_name: String,
    /// The rule for in-place waves; absent for Lambda and ECS, which shift traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_healthy_hosts: Option<MinimumHealthyHosts>,
    /// Created (zero for the predefined ones).
    pub create_time: EpochSeconds,
    /// Its platform.
    pub compute_platform: ComputePlatform,
    /// Canary or linear steps, as given (minutes stay minutes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_routing_config: Option<TrafficRoutingConfig>,
    /// Who created it (fleetmesh's audit extension: `admin-token:<id>`, ...); absent
    /// when it was made before feature level 7 or by the cluster itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
}

impl From<&DeploymentConfig> for DeploymentConfigInfo {
    fn from(config: &DeploymentConfig) -> Self {
        Self {
            deployment_config_id: config.deployment_config_id.clone(),
            deployment_config_name: config.deployment_config_name.clone(),
            minimum_healthy_hosts: (config.compute_platform == ComputePlatform::Server)
                .then_some(config.minimum_healthy_hosts),
            create_time: config.create_time.into(),
            compute_platform: config.compute_platform,
            traffic_routing_config: config.traffic_routing_config,
            created_by: config.created_by.as_ref().map(ToString::to_string),
        }
    }
}

/// How much of a revision one node holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeHolding {
    /// The node.
    pub id: NodeId,
    /// Bytes of the revision it holds.
    pub bytes_held: u64,
    /// True once it holds all of it.
    pub complete: bool,
}

/// `TimeRange`: both ends inclusive, either may be open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeRange {
    /// From.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<EpochSeconds>,
    /// To.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<EpochSeconds>,
}

impl TimeRange {
    /// True when `at` lies within the range.
    pub fn contains(&self, at: EpochSeconds) -> bool {
        self.start.is_none_or(|start| at >= start) && self.end.is_none_or(|end| at <= end)
    }
}

/// `StopStatus`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StopStatus {
    /// Targets still finish their current event.
    Pending,
    /// Nothing more will run.
    Succeeded,
}
