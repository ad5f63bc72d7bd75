//! `apply` for ECS deployments (feature level 14): the checks of an ECS group. (Their
//! runs and rollbacks are `shift.rs`'s, shared with Lambda.)

use crate::command::{ApplyError, DeploymentGroupSpec};
use crate::model::ecs_group::check_ecs_group;
use crate::model::resources::{DeploymentOption, DeploymentType};
use crate::{ClusterState, FeatureLevel};

impl DeploymentGroupSpec {
    /// True when the group names ECS resources (level 14).
    pub fn is_ecs(&self) -> bool {
        !self.ecs_services.is_empty()
            || self.load_balancer_info.as_ref().is_some_and(|info| !info.target_group_pair_info_list.is_empty())
    }
}

impl ClusterState {
    /// Checks a group of an ECS application: the cluster deploys to ECS, the group is
    /// blue/green with traffic control, and names one service and one target group pair.
    pub(crate) fn check_ecs_group(&self, spec: &DeploymentGroupSpec) -> Result<(), ApplyError> {
        if self.feature_level < FeatureLevel::ECS_DEPLOYMENTS {
            return Err(ApplyError::invalid(format!(
                "application {} is for ECS; this cluster deploys to ECS once every voter runs a release with \
                 feature level {}",
                spec.application_name,
                FeatureLevel::ECS_DEPLOYMENTS.0
            )));
        }
        if spec.deployment_type != DeploymentType::BlueGreen
            || spec.deployment_option != DeploymentOption::WithTrafficControl
        {
            return Err(ApplyError::invalid(
                "an ECS deployment group is deploymentType=BLUE_GREEN,deploymentOption=WITH_TRAFFIC_CONTROL",
            ));
        }
        let info = spec.load_balancer_info.clone().unwrap_or_default();
        if !info.target_group_info_list.is_empty() {
            return Err(ApplyError::invalid(
                "an ECS deployment group names its target groups in loadBalancerInfo.targetGroupPairInfoList, \
                 not targetGroupInfoList",
            ));
        }
        check_ecs_group(&spec.ecs_services, &info.target_group_pair_info_list)
            .map_err(|error| ApplyError::invalid(error.0))
    }
}
