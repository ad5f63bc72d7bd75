//! The deployment shapes: `DeploymentInfo` with fleetmesh's wave view, `InstanceTarget`
//! and its `LifecycleEvent`s, built from the replicated deployment record.

use fleetmesh_state::model::blue_green::{BlueGreenDeploymentConfiguration, BlueGreenPhase, TargetLabel};
use fleetmesh_state::model::deployment::{self as state, Deployment, Target};
use fleetmesh_state::model::ids::{DeploymentId, RevisionId};
use fleetmesh_state::model::shift::{ShiftRun, ShiftSpec};
use serde::{Deserialize, Serialize};

use crate::lifecycle::UnknownLifecycleEvent;
use crate::platform_targets::{EcsTarget, LambdaTarget};
use crate::shapes::{
    AutoRollbackConfiguration, ComputePlatform, DeploymentCreator, DeploymentOption, DeploymentOverview,
    DeploymentStatus, DeploymentStyle, DeploymentType, Diagnostics, ErrorInformation, FileExistsBehavior,
    LifecycleEventStatus, LoadBalancerInfo, MinimumHealthyHosts, RevisionLocation, RollbackInfo, TargetGroupInfo,
    TargetStatus,
};
use crate::{EpochSeconds, LifecycleEventName};

/// `LifecycleEvent`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LifecycleEvent {
    /// Which event.
    pub lifecycle_event_name: LifecycleEventName,
    /// Its status.
    pub status: LifecycleEventStatus,
    /// Started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<EpochSeconds>,
    /// Ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<EpochSeconds>,
    /// What happened, when it failed (and `Success` when it did not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diagnostics: Option<Diagnostics>,
    /// While a Lambda hook of this event waits for its status: the id that
    /// `put-lifecycle-event-hook-execution-status` names (fleetmesh's extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle_event_hook_execution_id: Option<String>,
}

impl TryFrom<&state::LifecycleEvent> for LifecycleEvent {
    type Error = UnknownLifecycleEvent;

    fn try_from(event: &state::LifecycleEvent) -> Result<Self, Self::Error> {
        Ok(Self {
            lifecycle_event_name: event.lifecycle_event_name.parse()?,
            status: event.status,
            start_time: event.start_time.map(Into::into),
            end_time: event.end_time.map(Into::into),
            diagnostics: event.diagnostics.clone(),
            lifecycle_event_hook_execution_id: None,
        })
    }
}

/// `InstanceTarget`: one host of a deployment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceTarget {
    /// The deployment.
    pub deployment_id: DeploymentId,
    /// The host's node id.
    pub target_id: String,
    /// Its status.
    pub status: TargetStatus,
    /// Last change.
    pub last_updated_at: EpochSeconds,
    /// The wave that started it (1-based); 0 while pending.
    pub wave: u32,
    /// Its lifecycle events, in order.
    pub lifecycle_events: Vec<LifecycleEvent>,
    /// `Blue` or `Green` in a blue/green deployment (AWS's `instanceLabel`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_label: Option<TargetLabel>,
}

impl InstanceTarget {
    /// The target `target` of `deployment`.
    ///
    /// # Errors
    /// The state holds an event name that is not CodeDeploy's (a fault of the writer).
    pub fn from_state(deployment: &Deployment, target: &Target) -> Result<Self, UnknownLifecycleEvent> {
        Ok(Self {
            deployment_id: deployment.deployment_id.clone(),
            target_id: target.target_id.to_string(),
            status: target.status,
            last_updated_at: target.last_updated_at.into(),
            wave: target.wave,
            lifecycle_events: target.lifecycle_events.iter().map(TryInto::try_into).collect::<Result<_, _>>()?,
            instance_label: target.target_label,
        })
    }
}

/// `DeploymentTargetType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeploymentTargetType {
    /// A host.
    InstanceTarget,
    /// A Lambda function's alias.
    LambdaTarget,
    /// An ECS service.
    #[serde(rename = "ECSTarget")]
    EcsTarget,
}

/// `DeploymentTarget`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentTarget {
    /// `InstanceTarget` or `LambdaTarget`.
    pub deployment_target_type: DeploymentTargetType,
    /// A host's record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_target: Option<InstanceTarget>,
    /// A Lambda alias's record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lambda_target: Option<LambdaTarget>,
    /// An ECS service's record.
    #[serde(default, rename = "ecsTarget", skip_serializing_if = "Option::is_none")]
    pub ecs_target: Option<EcsTarget>,
}

/// The event a target is at, for progress views.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CurrentEvent {
    /// The event.
    pub name: LifecycleEventName,
    /// Its status.
    pub status: LifecycleEventStatus,
}

/// Where one target of a deployment is (fleetmesh: the progress view's row).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetWave {
    /// The host's node id.
    pub target_id: String,
    /// The wave that started it; 0 while pending.
    pub wave: u32,
    /// Its status.
    pub status: TargetStatus,
    /// The last event that left Pending (none before the host starts).
    pub current_event: Option<CurrentEvent>,
    /// `Blue` or `Green` in a blue/green deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<TargetLabel>,
}

impl TargetWave {
    fn of(target: &Target) -> Result<Self, UnknownLifecycleEvent> {
        Ok(Self {
            target_id: target.target_id.to_string(),
            wave: target.wave,
            status: target.status,
            current_event: current_event(&target.lifecycle_events)?,
            label: target.target_label,
        })
    }

    /// A Lambda or ECS deployment's one target (wave 1 once it started).
    fn of_run(run: &ShiftRun) -> Result<Self, UnknownLifecycleEvent> {
        Ok(Self {
            target_id: run.spec.target_id(),
            wave: u32::from(run.status != TargetStatus::Pending),
            status: run.status,
            current_event: current_event(&run.lifecycle_events)?,
            label: None,
        })
    }
}

/// The last event that left Pending, and was not skipped.
fn current_event(events: &[state::LifecycleEvent]) -> Result<Option<CurrentEvent>, UnknownLifecycleEvent> {
    let current = events
        .iter()
        .rev()
        .find(|event| !matches!(event.status, LifecycleEventStatus::Pending | LifecycleEventStatus::Skipped));
    match current {
        Some(event) => Ok(Some(CurrentEvent { name: event.lifecycle_event_name.parse()?, status: event.status })),
        None => Ok(None),
    }
}

/// `DeploymentInfo`, with fleetmesh's wave view.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentInfo {
    /// `d-XXXXXXXXX`.
    pub deployment_id: DeploymentId,
    /// Application.
    pub application_name: String,
    /// Group.
    pub deployment_group_name: String,
    /// The group's id when the deployment was created.
    pub deployment_group_id: String,
    /// Configuration.
    pub deployment_config_name: String,
    /// Its rule, as copied at creation.
    pub minimum_healthy_hosts: MinimumHealthyHosts,
    /// What it installs.
    pub revision: RevisionLocation,
    /// The same, as a bare id.
    pub revision_id: RevisionId,
    /// Status.
    pub status: DeploymentStatus,
    /// Why it failed or stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_information: Option<ErrorInformation>,
    /// Created.
    pub create_time: EpochSeconds,
    /// Started by the rollout engine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<EpochSeconds>,
    /// Ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub complete_time: Option<EpochSeconds>,
    /// Targets per status.
    pub deployment_overview: DeploymentOverview,
    /// Free text.
    pub description: String,
    /// Who created it.
    pub creator: DeploymentCreator,
    /// The API caller who created it (fleetmesh's audit extension: `admin-token:<id>`,
    /// ...); absent when made before feature level 7 or by the cluster itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// The API caller who stopped it, if one did (audit extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_by: Option<String>,
    /// Continue past ApplicationStop failures.
    pub ignore_application_stop_failures: bool,
    /// Rollback settings in force.
    pub auto_rollback_configuration: AutoRollbackConfiguration,
    /// Links to a rollback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_info: Option<RollbackInfo>,
    /// In place or blue/green (absent from answers of releases before level 3).
    #[serde(default)]
    pub deployment_style: DeploymentStyle,
    /// A blue/green deployment's settings, as copied from its group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blue_green_deployment_configuration: Option<BlueGreenDeploymentConfiguration>,
    /// Where a blue/green deployment is (fleetmesh's extension: `Installing`, `Ready`,
    /// `Rerouting`, `Shifting`, `Blocking`, `TerminationWait`, `Terminating`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blue_green_phase: Option<BlueGreenPhase>,
    /// A canary or linear blue/green deployment's share of the routes' new connections
    /// that green gets now, in percent (fleetmesh's extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub green_traffic_percent: Option<u32>,
    /// The routes its targets leave and rejoin (with traffic control).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer_info: Option<LoadBalancerInfo>,
    /// What Install does with existing files.
    pub file_exists_behavior: FileExistsBehavior,
    /// Server (absent from answers of releases before level 3).
    #[serde(default)]
    pub compute_platform: ComputePlatform,
    /// Waves started so far.
    pub waves: u32,
    /// Every target's wave and current event.
    pub target_waves: Vec<TargetWave>,
}

impl DeploymentInfo {
    /// Says in `rollbackInfo.rollbackMessage` how this deployment's rollback stands now
    /// (`rollback`: the deployment its `rollbackDeploymentId` names): in progress,
    /// succeeded, failed with its error, or stopped. The message stored when the rollback
    /// was created only says that one was started; CodeDeploy's field describes the
    /// rollback's status.
    #[must_use]
    pub fn with_rollback(mut self, rollback: Option<&Deployment>) -> Self {
        let Some(info) = self.rollback_info.as_mut() else { return self };
        let Some(rollback) =
            rollback.filter(|rollback| info.rollback_deployment_id.as_ref() == Some(&rollback.deployment_id))
        else {
            return self;
        };
        let (id, revision) = (&rollback.deployment_id, rollback.revision_id);
        info.rollback_message = match rollback.status {
            DeploymentStatus::Succeeded => format!("rolled back to revision {revision} by {id}"),
            DeploymentStatus::Failed => match &rollback.error_information {
                Some(error) => format!(
                    "the rollback {id} to revision {revision} failed: {}: {}",
                    spelled(&error.code),
                    error.message
                ),
                None => format!("the rollback {id} to revision {revision} failed"),
            },
            DeploymentStatus::Stopped => format!("the rollback {id} to revision {revision} was stopped"),
            status => format!("rolling back to revision {revision} by {id} ({})", spelled(&status)),
        };
        self
    }

    /// The deployment as the API shows it.
    ///
    /// # Errors
    /// The state holds an event name that is not CodeDeploy's (a fault of the writer).
    pub fn from_state(deployment: &Deployment) -> Result<Self, UnknownLifecycleEvent> {
        Ok(Self {
            deployment_id: deployment.deployment_id.clone(),
            application_name: deployment.application_name.clone(),
            deployment_group_name: deployment.deployment_group_name.clone(),
            deployment_group_id: deployment.deployment_group_id.clone(),
            deployment_config_name: deployment.deployment_config_name.clone(),
            minimum_healthy_hosts: deployment.minimum_healthy_hosts,
            revision: RevisionLocation::fleetmesh(deployment.revision_id),
            revision_id: deployment.revision_id,
            status: deployment.status,
            error_information: deployment.error_information.clone(),
            create_time: deployment.create_time.into(),
            start_time: deployment.start_time.map(Into::into),
            complete_time: deployment.complete_time.map(Into::into),
            deployment_overview: deployment.overview(),
            description: deployment.description.clone(),
            creator: deployment.creator,
            created_by: deployment.created_by.as_ref().map(ToString::to_string),
            stopped_by: deployment.stopped_by.as_ref().map(ToString::to_string),
            ignore_application_stop_failures: deployment.ignore_application_stop_failures,
            auto_rollback_configuration: deployment.auto_rollback_configuration.clone(),
            rollback_info: deployment.rollback_info.clone(),
            blue_green_deployment_configuration: deployment.blue_green.map(|run| run.configuration),
            blue_green_phase: deployment.blue_green.map(|run| run.phase),
            green_traffic_percent: deployment.blue_green.and_then(|run| run.green_percent),
            deployment_style: DeploymentStyle {
                deployment_type: if deployment.blue_green.is_some() {
                    DeploymentType::BlueGreen
                } else {
                    DeploymentType::InPlace
                },
                deployment_option: if deployment.traffic_routes.is_empty() && deployment.elbv2_target_groups.is_empty()
                {
                    DeploymentOption::WithoutTrafficControl
                } else {
                    DeploymentOption::WithTrafficControl
                },
            },
            load_balancer_info: (!deployment.traffic_routes.is_empty() || !deployment.elbv2_target_groups.is_empty())
                .then(|| LoadBalancerInfo {
                    target_group_info_list: (deployment.traffic_routes.iter())
                        .chain(&deployment.elbv2_target_groups)
                        .map(|name| TargetGroupInfo { name: name.clone() })
                        .collect(),
                    target_group_pair_info_list: Vec::new(),
                }),
            file_exists_behavior: deployment.file_exists_behavior,
            compute_platform: match deployment.shift.as_ref().map(|run| &run.spec) {
                Some(ShiftSpec::Lambda(_)) => ComputePlatform::Lambda,
                Some(ShiftSpec::Ecs(_)) => ComputePlatform::Ecs,
                None => ComputePlatform::Server,
            },
            waves: deployment.waves,
            target_waves: deployment
                .targets
                .values()
                .map(TargetWave::of)
                .chain(deployment.shift.iter().map(TargetWave::of_run))
                .collect::<Result<_, _>>()?,
        })
    }
}

/// A value as the API spells it (`HEALTH_CONSTRAINTS`, `InProgress`).
fn spelled<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(text)) => text,
        Ok(other) => other.to_string(),
        Err(_) => "?".to_string(),
    }
}

/// `PlanDeployment`'s answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanDeploymentOutput {
    /// The configuration the deployment would use.
    pub deployment_config_name: String,
    /// Waves and bakes, in order.
    pub steps: Vec<PlannedStepInfo>,
    /// `Succeeded`, `Failed` (see `errorInformation`) or `Stalled` (the planner would
    /// wait for hosts that are not alive).
    pub outcome: String,
    /// Why it would fail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_information: Option<ErrorInformation>,
}

/// One wave (`wave` and `targetIds`), one bake (`bakeSeconds`) or one traffic step (`traffic`) of a planned
/// deployment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedStepInfo {
    /// The wave's number, from 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wave: Option<u32>,
    /// The wave's targets (node ids).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ids: Option<Vec<String>>,
    /// The bake's length in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bake_seconds: Option<f64>,
    /// A blue/green deployment's traffic step or operator wait, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic: Option<String>,
}
