//! The one target of a Lambda or ECS deployment, as `GetDeploymentTarget` shows it:
//! `LambdaTarget` (the alias) and `ECSTarget` (the service and its task sets).

use fleetmesh_state::model::deployment::{Deployment, TargetStatus};
use fleetmesh_state::model::ids::DeploymentId;
use fleetmesh_state::model::shift::ShiftRun;
use serde::{Deserialize, Serialize};

use crate::deployments::LifecycleEvent;
use crate::lifecycle::UnknownLifecycleEvent;
use crate::EpochSeconds;

/// `LambdaTarget`: the alias a Lambda deployment moves.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LambdaTarget {
    /// The deployment.
    pub deployment_id: DeploymentId,
    /// `<function>:<alias>`.
    pub target_id: String,
    /// Its status.
    pub status: TargetStatus,
    /// Last change.
    pub last_updated_at: EpochSeconds,
    /// `BeforeAllowTraffic`, `AllowTraffic`, `AfterAllowTraffic`.
    pub lifecycle_events: Vec<LifecycleEvent>,
    /// The function, alias and versions, and the target version's share now.
    pub lambda_function_info: LambdaFunctionInfo,
}

/// `LambdaFunctionInfo`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LambdaFunctionInfo {
    /// The function's name or ARN.
    pub function_name: String,
    /// The alias.
    pub function_alias: String,
    /// The version the alias pointed to.
    pub current_version: String,
    /// The version it moves to.
    pub target_version: String,
    /// The target version's share now, 0.0–1.0.
    pub target_version_weight: f64,
}

impl LambdaTarget {
    /// The target of Lambda deployment `deployment` (`None` for other deployments).
    ///
    /// # Errors
    /// The state holds an event name that is not CodeDeploy's (a fault of the writer).
    pub fn from_state(deployment: &Deployment) -> Result<Option<Self>, UnknownLifecycleEvent> {
        let Some(run) = &deployment.shift else { return Ok(None) };
        let Some(spec) = run.spec.lambda() else { return Ok(None) };
        Ok(Some(Self {
            deployment_id: deployment.deployment_id.clone(),
            target_id: run.spec.target_id(),
            status: run.status,
            last_updated_at: run.last_updated_at.into(),
            lifecycle_events: run_events(run)?,
            lambda_function_info: LambdaFunctionInfo {
                function_name: spec.function_name.clone(),
                function_alias: spec.alias.clone(),
                current_version: spec.current_version.to_string(),
                target_version: spec.target_version.to_string(),
                target_version_weight: f64::from(run.applied_weight()) / 100.0,
            },
        }))
    }
}

/// `ECSTarget`: the service an ECS deployment moves.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EcsTarget {
    /// The deployment.
    pub deployment_id: DeploymentId,
    /// `<cluster>:<service>`.
    pub target_id: String,
    /// Its status.
    pub status: TargetStatus,
    /// Last change.
    pub last_updated_at: EpochSeconds,
    /// The eight ECS events.
    pub lifecycle_events: Vec<LifecycleEvent>,
    /// The original (blue) and replacement (green) task sets, once known.
    pub task_sets_info: Vec<EcsTaskSetInfo>,
}

/// `ECSTaskSet`, as far as the leader's record knows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EcsTaskSetInfo {
    /// The task set's ARN (AWS spells the member `identifer`).
    pub identifer: String,
    /// Production traffic's share, in percent.
    pub traffic_weight: f64,
    /// `BLUE` (original) or `GREEN` (replacement).
    pub task_set_label: String,
    /// Its target group's ARN (fleetmesh extension; AWS gives `targetGroup.name`).
    pub target_group_arn: String,
}

impl EcsTarget {
    /// The target of ECS deployment `deployment` (`None` for other deployments).
    ///
    /// # Errors
    /// The state holds an event name that is not CodeDeploy's (a fault of the writer).
    pub fn from_state(deployment: &Deployment) -> Result<Option<Self>, UnknownLifecycleEvent> {
        let Some(run) = &deployment.shift else { return Ok(None) };
        if run.spec.ecs().is_none() {
            return Ok(None);
        }
        let green = f64::from(run.applied_weight());
        let task_sets_info = run.ecs.iter().flat_map(|progress| {
            let blue = progress.original.as_ref().map(|arn| EcsTaskSetInfo {
                identifer: arn.clone(),
                traffic_weight: 100.0 - green,
                task_set_label: "BLUE".into(),
                target_group_arn: progress.blue_target_group.clone(),
            });
            let replacement = progress.replacement.as_ref().map(|arn| EcsTaskSetInfo {
                identifer: arn.clone(),
                traffic_weight: green,
                task_set_label: "GREEN".into(),
                target_group_arn: progress.green_target_group.clone(),
            });
            blue.into_iter().chain(replacement)
        });
        Ok(Some(Self {
            deployment_id: deployment.deployment_id.clone(),
            target_id: run.spec.target_id(),
            status: run.status,
            last_updated_at: run.last_updated_at.into(),
            lifecycle_events: run_events(run)?,
            task_sets_info: task_sets_info.collect(),
        }))
    }
}

/// A Lambda or ECS run's events, the running hook's with its execution id.
fn run_events(run: &ShiftRun) -> Result<Vec<LifecycleEvent>, UnknownLifecycleEvent> {
    let mut lifecycle_events: Vec<LifecycleEvent> =
        run.lifecycle_events.iter().map(TryInto::try_into).collect::<Result<_, _>>()?;
    if let Some(hook) = &run.hook {
        let waiting = lifecycle_events.iter_mut().find(|event| event.lifecycle_event_name.to_string() == hook.event);
        if let Some(event) = waiting {
            event.lifecycle_event_hook_execution_id = Some(hook.execution_id.clone());
        }
    }
    Ok(lifecycle_events)
}
