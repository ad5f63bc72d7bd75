//! `UpdateApplication` and `UpdateDeploymentGroup`: renames that keep ids, and a group's
//! settings changed member by member (a member left out keeps its value; an empty list
//! clears it, as AWS has it).

use fleetmesh_state::model::blue_green::BlueGreenDeploymentConfiguration;
use serde::{Deserialize, Serialize};

use crate::operations::CreateDeploymentGroupInput;
use crate::shapes::{
    AutoRollbackConfiguration, DeploymentStyle, LoadBalancerInfo, OnPremisesTagSet, OutdatedInstancesStrategy,
    TagFilter,
};

/// `UpdateApplication`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateApplicationInput {
    /// Its name now.
    pub application_name: String,
    /// Its new name.
    pub new_application_name: String,
}

/// `UpdateDeploymentGroup`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateDeploymentGroupInput {
    /// Application.
    pub application_name: String,
    /// The group's name now.
    pub current_deployment_group_name: String,
    /// A new name (the group keeps its id, its hosts' history and its deployments).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_deployment_group_name: Option<String>,
    /// Default configuration of its deployments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_config_name: Option<String>,
    /// Replaces the tag filters (`[]` clears them).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "crate::strict::tag_filters_strict")]
    pub on_premises_instance_tag_filters: Option<Vec<TagFilter>>,
    /// Replaces the tag set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_premises_tag_set: Option<OnPremisesTagSet>,
    /// Replaces the rollback settings.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "crate::strict::rollback_strict")]
    pub auto_rollback_configuration: Option<AutoRollbackConfiguration>,
    /// Late joiners.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outdated_instances_strategy: Option<OutdatedInstancesStrategy>,
    /// In place or blue/green.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_style: Option<DeploymentStyle>,
    /// Routes or target groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer_info: Option<LoadBalancerInfo>,
    /// Blue/green settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blue_green_deployment_configuration: Option<BlueGreenDeploymentConfiguration>,
    /// The IAM role for the group's AWS calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_role_arn: Option<String>,
    /// An ECS group's service.
    #[serde(default, rename = "ecsServices", skip_serializing_if = "Option::is_none")]
    pub ecs_services: Option<Vec<fleetmesh_state::model::ecs_group::EcsService>>,
    /// Replaces the triggers (`[]` removes them; a trigger kept by name keeps its
    /// delivery position and, when `secret` is left out, its secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger_configurations: Option<Vec<crate::triggers::TriggerConfig>>,
    /// Replaces the alarm configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarm_configuration: Option<fleetmesh_state::model::alarms::AlarmConfiguration>,
}

impl UpdateDeploymentGroupInput {
    /// `current` (the group as a create request would make it) with this update's
    /// members put over it, named as the update says.
    pub fn apply_to(self, mut current: CreateDeploymentGroupInput) -> CreateDeploymentGroupInput {
        current.deployment_group_name = self.new_deployment_group_name.unwrap_or(self.current_deployment_group_name);
        macro_rules! over {
            ($($member:ident),*) => {$(
                if self.$member.is_some() {
                    current.$member = self.$member;
                }
            )*};
        }
        over!(
            deployment_config_name,
            on_premises_instance_tag_filters,
            on_premises_tag_set,
            auto_rollback_configuration,
            outdated_instances_strategy,
            deployment_style,
            load_balancer_info,
            blue_green_deployment_configuration,
            service_role_arn,
            ecs_services,
            trigger_configurations,
            alarm_configuration
        );
        current
    }
}

/// `UpdateDeploymentGroup`'s answer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateDeploymentGroupOutput {
    /// Auto Scaling hooks left behind (AWS's; none here: fleetmesh has no Auto Scaling).
    pub hooks_not_cleaned_up: Vec<serde_json::Value>,
}

impl From<crate::shapes::DeploymentGroupInfo> for CreateDeploymentGroupInput {
    /// The request that would create the group as it is (the base an update changes).
    fn from(info: crate::shapes::DeploymentGroupInfo) -> Self {
        Self {
            application_name: info.application_name,
            deployment_group_name: info.deployment_group_name,
            deployment_config_name: Some(info.deployment_config_name),
            on_premises_instance_tag_filters: Some(info.on_premises_instance_tag_filters),
            on_premises_tag_set: info.on_premises_tag_set,
            auto_rollback_configuration: Some(info.auto_rollback_configuration),
            outdated_instances_strategy: Some(info.outdated_instances_strategy),
            deployment_style: Some(info.deployment_style),
            load_balancer_info: info.load_balancer_info,
            blue_green_deployment_configuration: info.blue_green_deployment_configuration,
            service_role_arn: info.service_role_arn,
            ecs_services: (!info.ecs_services.is_empty()).then_some(info.ecs_services),
            tags: None,
            trigger_configurations: Some(info.trigger_configurations),
            alarm_configuration: info.alarm_configuration,
        }
    }
}
