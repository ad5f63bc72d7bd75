//! `apply` for Lambda deployments (feature level 13): the checks at creation, the
//! leader's steps, hook outcomes, and the rollback that moves the alias back.

use crate::command::{ApplyError, DeploymentSpec, Outcome};
use crate::model::deployment::{Deployment, DeploymentCreator, DeploymentStatus, LifecycleEventStatus, RollbackInfo};
use crate::model::ids::{DeploymentId, UnixMillis};
use crate::model::platform_configs::{ECS_ALL_AT_ONCE, LAMBDA_ALL_AT_ONCE};
use crate::model::resources::{AutoRollbackConfiguration, ComputePlatform, DeploymentGroup};
use crate::model::revision::RevisionRecord;
use crate::model::shift::{ShiftRun, ShiftSpec, ShiftStep};
use crate::{ClusterState, FeatureLevel};

impl ClusterState {
    /// Checks that a deployment of `spec` fits its application's platform: a Lambda
    /// deployment names what it moves and an AppSpec revision; a Server deployment
    /// neither. ECS deployments are not built.
    pub(crate) fn check_deployment_platform(
        &self,
        spec: &DeploymentSpec,
        platform: ComputePlatform,
        revision: &RevisionRecord,
    ) -> Result<(), ApplyError> {
        let application = &spec.application_name;
        let (level, fits) = match platform {
            ComputePlatform::Server if spec.shift.is_some() || revision.app_spec.is_some() => {
                return Err(ApplyError::invalid(format!(
                    "application {application} is for Server: deploy a pushed bundle (fleetmesh deploy push), not \
                     an AppSpec given inline"
                )))
            }
            ComputePlatform::Server => return Ok(()),
            ComputePlatform::Lambda => {
                (FeatureLevel::PLATFORM_DEPLOYMENTS, spec.shift.as_ref().and_then(ShiftSpec::lambda).is_some())
            }
            ComputePlatform::Ecs => {
                (FeatureLevel::ECS_DEPLOYMENTS, spec.shift.as_ref().and_then(ShiftSpec::ecs).is_some())
            }
        };
        if self.feature_level < level {
            return Err(ApplyError::invalid(format!(
                "application {application} is for {platform}; this cluster deploys to {platform} once every voter \
                 runs a release with feature level {}",
                level.0
            )));
        }
        if !fits || revision.app_spec.is_none() {
            return Err(ApplyError::invalid(format!(
                "application {application} is for {platform}: its revision is an AppSpec \
                 (--revision '{{\"revisionType\":\"AppSpecContent\",\"appSpecContent\":{{\"content\":\"...\"}}}}')"
            )));
        }
        Ok(())
    }

    pub(crate) fn advance_shift(
        &mut self,
        deployment_id: &DeploymentId,
        step: &ShiftStep,
        at: UnixMillis,
    ) -> Result<Outcome, ApplyError> {
        let deployment = self.shift_deployment(deployment_id)?;
        let run = deployment.shift.as_mut().ok_or_else(|| not_lambda(deployment_id))?;
        run.advance(step, deployment_id, at).map_err(|refused| ApplyError::conflict(refused.0))?;
        if deployment.status == DeploymentStatus::Created {
            deployment.status = DeploymentStatus::InProgress;
            deployment.start_time = Some(at);
        }
        Ok(Outcome::Done)
    }

    pub(crate) fn put_hook_status(
        &mut self,
        deployment_id: &DeploymentId,
        execution_id: &str,
        status: LifecycleEventStatus,
        at: UnixMillis,
    ) -> Result<Outcome, ApplyError> {
        let deployment = self.shift_deployment(deployment_id)?;
        let run = deployment.shift.as_mut().ok_or_else(|| not_lambda(deployment_id))?;
        run.hook_status(execution_id, status, at).map_err(|refused| ApplyError::invalid(refused.0))?;
        Ok(Outcome::Done)
    }

    fn shift_deployment(&mut self, id: &DeploymentId) -> Result<&mut Deployment, ApplyError> {
        let deployment = self
            .deployments
            .get_mut(id)
            .ok_or_else(|| ApplyError::not_found(format!("deployment {id} does not exist")))?;
        if deployment.status.is_terminal() {
            return Err(ApplyError::conflict(format!("deployment {id} already finished ({:?})", deployment.status)));
        }
        Ok(deployment)
    }

    /// The rollback of a Lambda deployment that failed or stopped: a new deployment
    /// that moves the alias back to the version it pointed to, all at once and without
    /// hooks (§7.1: "Lambda rollback = move alias back"). Only when the alias may have
    /// moved: a step was applied or begun.
    pub(crate) fn create_shift_rollback(
        &mut self,
        triggering_id: &DeploymentId,
        rollback_id: &DeploymentId,
        at: UnixMillis,
    ) {
        let Some(triggering) = self.deployments.get(triggering_id) else { return };
        let Some(run) = &triggering.shift else { return };
        let group = self.deployment_group(&triggering.application_name, &triggering.deployment_group_name);
        let plan = match (group, &run.spec) {
            (None, _) => Err("the deployment group is gone".to_string()),
            (Some(group), ShiftSpec::Lambda(lambda)) if run.applied_steps > 0 || run.committed_step.is_some() => {
                let spec = rollback_spec(triggering, group, ShiftSpec::Lambda(lambda.reversed()));
                Ok((spec, format!("version {}", lambda.current_version)))
            }
            (Some(_), ShiftSpec::Lambda(_)) => Err("the alias was not moved; nothing to roll back".to_string()),
            (Some(group), ShiftSpec::Ecs(ecs)) => match &run.ecs {
                Some(progress) => {
                    let reversed = ShiftSpec::Ecs(Box::new(ecs.reversed(progress, triggering_id)));
                    Ok((rollback_spec(triggering, group, reversed), "the original task set".to_string()))
                }
                None => Err("no replacement task set was created; nothing to roll back".to_string()),
            },
        };
        let (spec, version) = match plan {
            Ok(plan) => plan,
            Err(message) => {
                if let Some(triggering) = self.deployments.get_mut(triggering_id) {
                    triggering.rollback_info = Some(RollbackInfo { rollback_message: message, ..Default::default() });
                }
                return;
            }
        };
        let done = format!("rolled back to {version} by {rollback_id}");
        self.launch_rollback(&spec, triggering_id, rollback_id, done, at);
    }

    /// The run of a new Lambda deployment of `spec` in `group` with `routing`'s steps.
    pub(crate) fn new_shift_run(
        spec: &DeploymentSpec,
        group: &DeploymentGroup,
        routing: Option<crate::model::traffic_routing::TrafficRouting>,
        at: UnixMillis,
    ) -> Option<ShiftRun> {
        let mut shift = spec.shift.clone()?;
        if let ShiftSpec::Ecs(ecs) = &mut shift {
            if ecs.rollback.is_none() {
                let configuration = group.blue_green_deployment_configuration.as_ref();
                ecs.termination_wait_ms =
                    configuration.and_then(|configuration| configuration.termination_wait_ms().ok()).unwrap_or(0);
            }
        }
        let run = ShiftRun::new(shift, routing, at);
        Some(ShiftRun { role_arn: group.service_role_arn.clone(), ..run })
    }
}

/// The spec of the deployment that undoes `triggering` with `reversed` (its alias or
/// its ECS service moved back), all at once with the platform's predefined
/// configuration.
fn rollback_spec(triggering: &Deployment, group: &DeploymentGroup, reversed: ShiftSpec) -> DeploymentSpec {
    let configuration = match reversed {
        ShiftSpec::Lambda(_) => LAMBDA_ALL_AT_ONCE,
        ShiftSpec::Ecs(_) => ECS_ALL_AT_ONCE,
    };
    DeploymentSpec {
        alarm_configuration: None,
        application_name: group.application_name.clone(),
        deployment_group_name: group.deployment_group_name.clone(),
        // The group's last good revision, whose target the traffic goes back to; the
        // failed one's own when none succeeded before (it names both sides).
        revision_id: group.target_revision.unwrap_or(triggering.revision_id),
        deployment_config_name: Some(configuration.to_string()),
        description: format!("rollback of {}", triggering.deployment_id),
        ignore_application_stop_failures: false,
        file_exists_behavior: triggering.file_exists_behavior,
        auto_rollback_configuration: Some(AutoRollbackConfiguration::default()),
        creator: DeploymentCreator::CodeDeployRollback,
        targets: None,
        target_instances: None,
        shift: Some(reversed),
    }
}

fn not_lambda(id: &DeploymentId) -> ApplyError {
    ApplyError::invalid(format!("deployment {id} is not a Lambda or ECS deployment"))
}
