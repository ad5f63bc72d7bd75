//! Each operation's input (`<Operation>Input`) and output (`<Operation>Output`), with
//! botocore's member names. Members fleetmesh does not use yet are not declared, and
//! a request naming a member the input does not declare is refused with the member
//! named (`deny_unknown_fields`; the shapes of the replicated state are read through
//! `strict.rs`), so nothing asked for is silently ignored. fleetmesh's extensions
//! (`revisionId`, `seeds`, `registeredBy`, `allNodes`, …) are declared members.
//! Bounds on the values are checked by `Operation::check` (`bounds.rs`).

use fleetmesh_state::model::blue_green::BlueGreenDeploymentConfiguration;
use fleetmesh_state::model::ids::{DeploymentId, RevisionId};
use fleetmesh_state::NodeId;
use serde::{Deserialize, Serialize};

use crate::blue_green::TargetInstances;
use crate::deployments::{DeploymentInfo, DeploymentTarget};
use crate::shapes::{
    ApplicationInfo, AutoRollbackConfiguration, ComputePlatform, DeploymentConfigInfo, DeploymentGroupInfo,
    DeploymentStyle, FileExistsBehavior, LoadBalancerInfo, Manifest, MinimumHealthyHosts, NodeHolding,
    OnPremisesTagSet, OutdatedInstancesStrategy, RevisionLocation, RevisionRef, RollbackInfo, StopStatus, TagFilter,
    TrafficRoutingConfig,
};
use crate::sources::RevisionSummary;

/// The output of operations that answer nothing (the deletes).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Empty {}

/// `CreateApplication`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[serde(deny_unknown_fields)]
pub struct CreateApplicationInput {
    /// Unique name.
    pub application_name: String,
    /// Server (default), Lambda or ECS.
    #[serde(default)]
    pub compute_platform: Option<ComputePlatform>,
    /// Tags of the application (level 15; `ListTagsForResource` shows them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<crate::instances::Tag>>,
}

/// `CreateApplication`'s answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateApplicationOutput {
    /// The new application's id.
    pub application_id: String,
}

/// `GetApplication`, `DeleteApplication`: operations on one application.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[serde(deny_unknown_fields)]
pub struct ApplicationInput {
    /// The application.
    pub application_name: String,
}

/// `GetApplication`.
pub type GetApplicationInput = ApplicationInput;
/// `DeleteApplication`.
pub type DeleteApplicationInput = ApplicationInput;

/// `GetApplication`'s answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GetApplicationOutput {
    /// The application.
    pub application: ApplicationInfo,
}

/// `CreateDeploymentGroup`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[serde(deny_unknown_fields)]
pub struct CreateDeploymentGroupInput {
    /// Application.
    pub application_name: String,
    /// Name, unique in the application.
    pub deployment_group_name: String,
    /// Default `CodeDeployDefault.OneAtATime`.
    #[serde(default)]
    pub deployment_config_name: Option<String>,
    /// Hosts matching any of these are targets.
    #[serde(default, deserialize_with = "crate::strict::tag_filters_strict")]
    pub on_premises_instance_tag_filters: Option<Vec<TagFilter>>,
    /// Hosts matching a filter of every group are targets.
    #[serde(default)]
    pub on_premises_tag_set: Option<OnPremisesTagSet>,
    /// Rollback settings (off by default).
    #[serde(default, deserialize_with = "crate::strict::rollback_strict")]
    pub auto_rollback_configuration: Option<AutoRollbackConfiguration>,
    /// Late joiners (default `UPDATE`).
    #[serde(default)]
    pub outdated_instances_strategy: Option<OutdatedInstancesStrategy>,
    /// In place or blue/green, with or without traffic control (blue/green needs it).
    #[serde(default)]
    pub deployment_style: Option<DeploymentStyle>,
    /// The routes (`targetGroupInfoList` names) targets leave and rejoin with traffic
    /// control.
    #[serde(default)]
    pub load_balancer_info: Option<LoadBalancerInfo>,
    /// Blue/green settings (only with `deploymentType` `BLUE_GREEN`).
    #[serde(default)]
    pub blue_green_deployment_configuration: Option<BlueGreenDeploymentConfiguration>,
    /// The IAM role the leader assumes (STS) for the group's AWS calls; without one they
    /// run with the leader's own credentials.
    #[serde(default)]
    pub service_role_arn: Option<String>,
    /// An ECS group's service: exactly one (level 14).
    #[serde(default, rename = "ecsServices")]
    pub ecs_services: Option<Vec<fleetmesh_state::model::ecs_group::EcsService>>,
    /// Tags of the group (level 15; `ListTagsForResource` shows them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<crate::instances::Tag>>,
    /// Where its events go (level 17).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger_configurations: Option<Vec<crate::triggers::TriggerConfig>>,
    /// Alarms that stop its deployments (level 18).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarm_configuration: Option<fleetmesh_state::model::alarms::AlarmConfiguration>,
}

/// `CreateDeploymentGroup`'s answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateDeploymentGroupOutput {
    /// The new group's id.
    pub deployment_group_id: String,
}

/// `GetDeploymentGroup`, `DeleteDeploymentGroup`: one group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[serde(deny_unknown_fields)]
pub struct DeploymentGroupInput {
    /// Application.
    pub application_name: String,
    /// Group.
    pub deployment_group_name: String,
}

/// `GetDeploymentGroup`.
pub type GetDeploymentGroupInput = DeploymentGroupInput;
/// `DeleteDeploymentGroup`.
pub type DeleteDeploymentGroupInput = DeploymentGroupInput;

/// `GetDeploymentGroup`'s answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetDeploymentGroupOutput {
    /// The group.
    pub deployment_group_info: DeploymentGroupInfo,
    /// The nodes its tags select now (fleetmesh).
    pub target_nodes: Vec<NodeId>,
}

/// `CreateDeploymentConfig`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[serde(deny_unknown_fields)]
pub struct CreateDeploymentConfigInput {
    /// Unique name.
    pub deployment_config_name: String,
    /// The rule (`HOST_COUNT` or `FLEET_PERCENT`); required unless
    /// `traffic_routing_config` is given, which defaults it to OneAtATime's rule.
    #[serde(default, deserialize_with = "crate::strict::minimum_healthy_hosts_strict")]
    pub minimum_healthy_hosts: Option<MinimumHealthyHosts>,
    /// Server (default).
    #[serde(default)]
    pub compute_platform: Option<ComputePlatform>,
    /// Canary or linear steps (AWS's shape; for Server, fleetmesh sizes in-place waves
    /// with it). Needs feature level 9.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::strict::traffic_routing_strict"
    )]
    pub traffic_routing_config: Option<TrafficRoutingConfig>,
}

/// `CreateDeploymentConfig`'s answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateDeploymentConfigOutput {
    /// The new configuration's id.
    pub deployment_config_id: String,
}

/// `GetDeploymentConfig`, `DeleteDeploymentConfig`: one configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[serde(deny_unknown_fields)]
pub struct DeploymentConfigInput {
    /// Its name.
    pub deployment_config_name: String,
}

/// `GetDeploymentConfig`.
pub type GetDeploymentConfigInput = DeploymentConfigInput;
/// `DeleteDeploymentConfig`.
pub type DeleteDeploymentConfigInput = DeploymentConfigInput;

/// `GetDeploymentConfig`'s answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetDeploymentConfigOutput {
    /// The configuration.
    pub deployment_config_info: DeploymentConfigInfo,
}

/// `RegisterPushedRevision`: a revision pushed to the node that answers (the revision is
/// its manifest; `push` sends the chunks first). Before feature level 15 it was called
/// `RegisterApplicationRevision`, the name AWS gives registration by location.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[serde(deny_unknown_fields)]
pub struct RegisterPushedRevisionInput {
    /// Application.
    pub application_name: String,
    /// Free text, at most 256 characters.
    #[serde(default)]
    pub description: Option<String>,
    /// The revision's files and chunks (unknown members refused at any depth).
    #[serde(deserialize_with = "crate::strict::manifest_strict")]
    pub manifest: Manifest,
    /// Nodes that hold every chunk.
    #[serde(default)]
    pub seeds: Vec<NodeId>,
    /// Who registers it (default `api`).
    #[serde(default)]
    pub registered_by: Option<String>,
}

/// `RegisterPushedRevision`'s answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegisterPushedRevisionOutput {
    /// The revision id.
    pub revision_id: RevisionId,
    /// What was registered.
    pub revision_info: RevisionSummary,
}

/// `GetApplicationRevision`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[serde(deny_unknown_fields)]
pub struct GetApplicationRevisionInput {
    /// The application (checked when given).
    #[serde(default)]
    pub application_name: Option<String>,
    /// The revision.
    #[serde(flatten)]
    pub revision: RevisionRef,
}

/// `GetApplicationRevision`'s answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetApplicationRevisionOutput {
    /// Application.
    pub application_name: String,
    /// The revision's location.
    pub revision: RevisionLocation,
    /// What is known about it.
    pub revision_info: RevisionSummary,
    /// Its files and chunks.
    pub manifest: Manifest,
}

/// `Prefetch` (fleetmesh): spread a revision before deploying it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[serde(deny_unknown_fields)]
pub struct PrefetchInput {
    /// The revision.
    #[serde(flatten)]
    pub revision: RevisionRef,
    /// To the hosts of this group.
    #[serde(default)]
    pub deployment_group_name: Option<String>,
    /// To every node instead.
    #[serde(default)]
    pub all_nodes: bool,
}

/// `Prefetch`'s answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PrefetchOutput {
    /// The revision.
    pub revision_id: RevisionId,
    /// The nodes asked to fetch it.
    pub targets: Vec<NodeId>,
}

/// `GetRevisionDistribution` (fleetmesh; also `GET /v1/revisions/{id}/distribution`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[serde(deny_unknown_fields)]
pub struct GetRevisionDistributionInput {
    /// The revision.
    pub revision_id: RevisionId,
}

/// `GetRevisionDistribution`'s answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetRevisionDistributionOutput {
    /// The revision.
    pub revision_id: RevisionId,
    /// Its unique bytes.
    pub size: u64,
    /// Nodes that hold some of it.
    pub nodes: Vec<NodeHolding>,
}

/// `CreateDeployment`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[serde(deny_unknown_fields)]
pub struct CreateDeploymentInput {
    /// Application.
    pub application_name: String,
    /// Group.
    pub deployment_group_name: String,
    /// The revision.
    #[serde(flatten)]
    pub revision: RevisionRef,
    /// Overrides the group's configuration.
    #[serde(default)]
    pub deployment_config_name: Option<String>,
    /// Free text, at most 256 characters.
    #[serde(default)]
    pub description: Option<String>,
    /// Continue past ApplicationStop failures.
    #[serde(default)]
    pub ignore_application_stop_failures: bool,
    /// What Install does with existing files (default `DISALLOW`).
    #[serde(default)]
    pub file_exists_behavior: Option<FileExistsBehavior>,
    /// Overrides the group's rollback settings.
    #[serde(default, deserialize_with = "crate::strict::rollback_strict")]
    pub auto_rollback_configuration: Option<AutoRollbackConfiguration>,
    /// Blue/green: the green fleet (default: the group's hosts not on its routes).
    #[serde(default)]
    pub target_instances: Option<TargetInstances>,
    /// Alarms for this deployment instead of its group's (level 18).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub override_alarm_configuration: Option<fleetmesh_state::model::alarms::AlarmConfiguration>,
}

/// `PlanDeployment` (fleetmesh's extension behind `create-deployment --dry-run`): the
/// waves and bakes a `CreateDeployment` of the same input would run now, assuming every
/// matching host stays alive and every target succeeds. Read-only: nothing is proposed.
pub type PlanDeploymentInput = CreateDeploymentInput;

/// `CreateDeployment`'s answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateDeploymentOutput {
    /// The new deployment.
    pub deployment_id: DeploymentId,
}

/// `GetDeployment`: one deployment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[serde(deny_unknown_fields)]
pub struct DeploymentInput {
    /// The deployment.
    pub deployment_id: DeploymentId,
}

/// `GetDeployment`.
pub type GetDeploymentInput = DeploymentInput;

/// `GetDeployment`'s answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetDeploymentOutput {
    /// The deployment.
    pub deployment_info: DeploymentInfo,
}

/// `StopDeployment`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[serde(deny_unknown_fields)]
pub struct StopDeploymentInput {
    /// The deployment.
    pub deployment_id: DeploymentId,
    /// Roll the stopped hosts back to the group's last good revision; when absent, the
    /// deployment's `autoRollbackConfiguration` decides (see [`Self::rolls_back`]).
    #[serde(default)]
    pub auto_rollback_enabled: Option<bool>,
}

impl StopDeploymentInput {
    /// Whether this stop rolls back a deployment configured with `configuration`: as
    /// the caller says when it says, else when the configuration is enabled with
    /// `DEPLOYMENT_STOP_ON_REQUEST` (§7.1).
    pub fn rolls_back(&self, configuration: &fleetmesh_state::model::resources::AutoRollbackConfiguration) -> bool {
        use fleetmesh_state::model::resources::AutoRollbackEvent;
        self.auto_rollback_enabled
            .unwrap_or_else(|| configuration.triggers_on(AutoRollbackEvent::DeploymentStopOnRequest))
    }
}

/// `StopDeployment`'s answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StopDeploymentOutput {
    /// `Pending` while targets finish their current event.
    pub status: StopStatus,
    /// What happens now.
    pub status_message: String,
    /// The rollback, when one was asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_info: Option<RollbackInfo>,
}

/// `GetDeploymentTarget`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[serde(deny_unknown_fields)]
pub struct GetDeploymentTargetInput {
    /// The deployment.
    pub deployment_id: DeploymentId,
    /// The node id (`7` or `node-7`).
    pub target_id: String,
}

/// `GetDeploymentTarget`'s answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetDeploymentTargetOutput {
    /// The target.
    pub deployment_target: DeploymentTarget,
}
