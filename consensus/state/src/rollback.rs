//! `apply` for in-place rollbacks (§7.1): a new deployment of the group's last good
//! revision to the hosts a failed or stopped deployment touched.

use crate::command::DeploymentSpec;
use crate::model::deployment::{DeploymentCreator, RollbackInfo, TargetStatus};
use crate::model::ids::{DeploymentId, UnixMillis};
use crate::model::resources::AutoRollbackConfiguration;
use crate::{ClusterState, NodeId};

impl ClusterState {
    /// Creates the rollback of `triggering_id`: a new deployment of the group's last
    /// successful revision to every target the triggering deployment touched (§7.1).
    /// When there is nothing to roll back to, only records why.
    pub(crate) fn create_rollback(&mut self, triggering_id: &DeploymentId, rollback_id: &DeploymentId, at: UnixMillis) {
        let Some(triggering) = self.deployments.get(triggering_id) else { return };
        if triggering.shift.is_some() {
            return self.create_shift_rollback(triggering_id, rollback_id, at);
        }
        let group = self.deployment_group(&triggering.application_name, &triggering.deployment_group_name);
        let touched: Vec<NodeId> = triggering
            .targets
            .values()
            .filter(|target| !matches!(target.status, TargetStatus::Skipped | TargetStatus::Pending))
            .map(|target| target.target_id)
            .collect();
        let plan = match group.and_then(|group| group.target_revision.map(|revision| (group, revision))) {
            None => Err("no earlier deployment of this group succeeded; there is nothing to roll back to".to_string()),
            Some(_) if touched.is_empty() => Err("no target was changed; nothing to roll back".to_string()),
            Some((group, revision)) => Ok((group.clone(), revision)),
        };
        let (group, revision) = match plan {
            Ok(plan) => plan,
            Err(message) => {
                if let Some(triggering) = self.deployments.get_mut(triggering_id) {
                    triggering.rollback_info = Some(RollbackInfo { rollback_message: message, ..Default::default() });
                }
                return;
            }
        };
        let file_exists_behavior = group
            .last_successful_deployment_id
            .as_ref()
            .and_then(|id| self.deployments.get(id))
            .map(|deployment| deployment.file_exists_behavior)
            .unwrap_or_default();
        let spec = DeploymentSpec {
            alarm_configuration: None,
            application_name: group.application_name.clone(),
            deployment_group_name: group.deployment_group_name.clone(),
            revision_id: revision,
            deployment_config_name: None,
            description: format!("rollback of {triggering_id}"),
            ignore_application_stop_failures: false,
            file_exists_behavior,
            auto_rollback_configuration: Some(AutoRollbackConfiguration::default()),
            creator: DeploymentCreator::CodeDeployRollback,
            targets: Some(touched),
            target_instances: None,
            shift: None,
        };
        let message = format!("rolled back to revision {revision} by {rollback_id}");
        self.launch_rollback(&spec, triggering_id, rollback_id, message, at);
    }

    /// Creates rollback deployment `rollback_id` of `spec` and links it and
    /// `triggering_id` both ways; `done` is the triggering deployment's message when
    /// the rollback was created, else it says why not.
    pub(crate) fn launch_rollback(
        &mut self,
        spec: &DeploymentSpec,
        triggering_id: &DeploymentId,
        rollback_id: &DeploymentId,
        done: String,
        at: UnixMillis,
    ) {
        let created = self.create_deployment(spec, rollback_id, at);
        if let (Ok(_), Some(rollback)) = (&created, self.deployments.get_mut(rollback_id)) {
            rollback.rollback_info = Some(RollbackInfo {
                rollback_triggering_deployment_id: Some(triggering_id.clone()),
                rollback_message: format!("rollback of {triggering_id}"),
                ..Default::default()
            });
        }
        if let Some(triggering) = self.deployments.get_mut(triggering_id) {
            let (rollback_deployment_id, rollback_message) = match created {
                Ok(_) => (Some(rollback_id.clone()), done),
                Err(error) => (None, format!("rollback could not be created: {error}")),
            };
            triggering.rollback_info =
                Some(RollbackInfo { rollback_deployment_id, rollback_message, ..Default::default() });
        }
    }
}
