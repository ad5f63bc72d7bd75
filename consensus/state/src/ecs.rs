//! `apply` for ECS deployments (feature level 14): the checks of an ECS group, and the
//! rollback that moves an ECS service's traffic back and removes the replacement.

use crate::command::{ApplyError, DeploymentGroupSpec, DeploymentSpec};
use crate::model::deployment::{Deployment, DeploymentCreator};
use crate::model::ecs_group::check_ecs_group;
use crate::model::platform_configs::ECS_ALL_AT_ONCE;
use crate::model::resources::{AutoRollbackConfiguration, DeploymentGroup, DeploymentOption, DeploymentType};
use crate::model::shift::{EcsProgress, ShiftSpec};
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

/// The spec of the ECS deployment that undoes `triggering`, which got as far as
/// `progress`: the target groups and task sets swapped, all at once, no hooks.
pub(crate) fn ecs_rollback_spec(
    triggering: &Deployment,
    group: &DeploymentGroup,
    spec: &ShiftSpec,
    progress: &EcsProgress,
) -> Option<DeploymentSpec> {
    let ecs = spec.ecs()?;
    let reversed = crate::model::shift::EcsSpec {
        hooks: Vec::new(),
        termination_wait_ms: 0,
        rollback: Some(progress.reversed(&triggering.deployment_id)),
        ..ecs.clone()
    };
    Some(DeploymentSpec {
        application_name: group.application_name.clone(),
        deployment_group_name: group.deployment_group_name.clone(),
        revision_id: group.target_revision.unwrap_or(triggering.revision_id),
        deployment_config_name: Some(ECS_ALL_AT_ONCE.to_string()),
        description: format!("rollback of {}", triggering.deployment_id),
        ignore_application_stop_failures: false,
        file_exists_behavior: triggering.file_exists_behavior,
        auto_rollback_configuration: Some(AutoRollbackConfiguration::default()),
        creator: DeploymentCreator::CodeDeployRollback,
        targets: None,
        target_instances: None,
        shift: Some(ShiftSpec::Ecs(Box::new(reversed))),
    })
}
