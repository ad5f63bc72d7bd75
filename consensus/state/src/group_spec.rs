//! What a client asks for when it creates (or updates) a deployment group: the spec
//! [`crate::Command::CreateDeploymentGroup`] and `UpdateDeploymentGroup` carry.

use serde::{Deserialize, Serialize};

use crate::model::blue_green::BlueGreenDeploymentConfiguration;
use crate::model::ecs_group::EcsService;
use crate::model::resources::{
    is_default, AutoRollbackConfiguration, DeploymentOption, DeploymentType, LoadBalancerInfo, TargetSelector,
};

/// What a client asks for when it creates a deployment group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentGroupSpec {
    /// Owning application.
    pub application_name: String,
    /// Name.
    pub deployment_group_name: String,
    /// Default configuration (`CodeDeployDefault.OneAtATime` when not given).
    pub deployment_config_name: String,
    /// Targets.
    pub target_selector: TargetSelector,
    /// Rollback settings.
    pub auto_rollback_configuration: AutoRollbackConfiguration,
    /// Whether hosts that join later get the last successful revision.
    pub update_outdated_instances: bool,
    /// With or without traffic control ([`crate::FeatureLevel::TRAFFIC_CONTROL`] when with).
    #[serde(default, skip_serializing_if = "is_default")]
    pub deployment_option: DeploymentOption,
    /// The routes its targets leave and rejoin ([`crate::FeatureLevel::TRAFFIC_CONTROL`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer_info: Option<LoadBalancerInfo>,
    /// In-place or blue/green ([`crate::FeatureLevel::BLUE_GREEN`] when blue/green).
    #[serde(default, skip_serializing_if = "is_default")]
    pub deployment_type: DeploymentType,
    /// Blue/green settings ([`crate::FeatureLevel::BLUE_GREEN`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blue_green_deployment_configuration: Option<BlueGreenDeploymentConfiguration>,
    /// The IAM role assumed for the group's AWS calls ([`crate::FeatureLevel::PLATFORM_DEPLOYMENTS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_role_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    /// An ECS group's service ([`crate::FeatureLevel::ECS_DEPLOYMENTS`]).
    pub ecs_services: Vec<EcsService>,
    /// Its triggers ([`crate::FeatureLevel::TRIGGERS`]); secrets sealed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trigger_configurations: Vec<crate::model::triggers::TriggerConfig>,
    /// The alarms its deployments are gated on ([`crate::FeatureLevel::ALARMS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarm_configuration: Option<crate::model::alarms::AlarmConfiguration>,
}
