//! Deployments, their targets and lifecycle events (`codedeploy.md` §6).
//!
//! A deployment is one attempt to bring a deployment group to a revision. The leader's
//! rollout engine decides, the decisions are committed here, and a new leader resumes
//! from this record alone.

use std::collections::BTreeMap;

use crate::NodeId;
use serde::{Deserialize, Serialize};

use super::blue_green::{BlueGreenRun, TargetLabel};
use super::ids::{DeploymentId, RevisionId, UnixMillis};
use super::members::Actor;
use super::resources::{AutoRollbackConfiguration, FileExistsBehavior, MinimumHealthyHosts};
use super::shift::ShiftRun;
use super::traffic_routing::TrafficRouting;

/// `DeploymentStatus` (§6.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeploymentStatus {
    /// Accepted, not yet started by the rollout engine.
    Created,
    /// Waiting for another deployment of the group (not used: a second deployment is refused).
    Queued,
    /// Targets are being acted on.
    InProgress,
    /// Blue/green: traffic has moved, the original fleet waits out the termination wait.
    Baking,
    /// Blue/green: the replacement fleet is installed and waits for traffic.
    Ready,
    /// Finished; the health rule was met.
    Succeeded,
    /// Finished; see `errorInformation`.
    Failed,
    /// Stopped by an operator.
    Stopped,
}

impl DeploymentStatus {
    /// True for Succeeded, Failed and Stopped.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Stopped)
    }
}

/// `TargetStatus` (§6.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TargetStatus {
    /// Not started yet.
    Pending,
    /// Its lifecycle events are running.
    InProgress,
    /// Every lifecycle event succeeded.
    Succeeded,
    /// A lifecycle event failed, or the host was lost.
    Failed,
    /// Never attempted (the deployment ended first).
    Skipped,
    /// State unknown.
    Unknown,
    /// Blue/green: installed and waiting for traffic (green), or off the routes and
    /// waiting for the termination wait to end (blue under `TERMINATE`).
    Ready,
}

impl TargetStatus {
    /// True for Succeeded, Failed and Skipped.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Skipped)
    }
}

/// `LifecycleEventStatus` (§6.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LifecycleEventStatus {
    /// Not reached yet.
    Pending,
    /// Running.
    InProgress,
    /// Done.
    Succeeded,
    /// Failed; see diagnostics.
    Failed,
    /// Not run because an earlier event failed or the deployment stopped.
    Skipped,
    /// Outcome unknown (the deployment was stopped while it ran).
    Unknown,
}

/// `LifecycleErrorCode` (§6.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LifecycleErrorCode {
    /// No error.
    Success,
    /// The script named in the appspec is not in the bundle.
    ScriptMissing,
    /// The script could not be made executable.
    ScriptNotExecutable,
    /// The script ran past its timeout and was killed.
    ScriptTimedOut,
    /// The script exited non-zero.
    ScriptFailed,
    /// Anything else (bad appspec, download failure, agent restart mid-event).
    UnknownError,
}

/// Per-event diagnostics (`diagnostics` in the AWS output).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Diagnostics {
    /// What went wrong, by class.
    pub error_code: LifecycleErrorCode,
    /// The script that failed, if a script did.
    pub script_name: String,
    /// One-line explanation.
    pub message: String,
    /// Last 4 KiB of the script's output.
    pub log_tail: String,
}

/// One lifecycle event of one target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LifecycleEvent {
    /// `ApplicationStop`, `DownloadBundle`, …
    pub lifecycle_event_name: String,
    /// Its status.
    pub status: LifecycleEventStatus,
    /// When it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<UnixMillis>,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<UnixMillis>,
    /// Set when it failed (and on success with `Success`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diagnostics: Option<Diagnostics>,
}

impl LifecycleEvent {
    /// A pending event.
    pub fn pending(name: &str) -> Self {
        Self {
            lifecycle_event_name: name.to_string(),
            status: LifecycleEventStatus::Pending,
            start_time: None,
            end_time: None,
            diagnostics: None,
        }
    }
}

/// In-place lifecycle events of a server target without a load balancer, in order
/// (§2.2; Start and End are reserved and not shown).
pub const IN_PLACE_EVENTS: [&str; 7] = [
    "ApplicationStop",
    "DownloadBundle",
    "BeforeInstall",
    "Install",
    "AfterInstall",
    "ApplicationStart",
    "ValidateService",
];

/// In-place lifecycle events of a server target whose group deploys with traffic
/// control, in order (§2.2): the target leaves its routes before `ApplicationStop` and
/// rejoins them after `ValidateService`.
pub const IN_PLACE_TRAFFIC_EVENTS: [&str; 13] = [
    "BeforeBlockTraffic",
    "BlockTraffic",
    "AfterBlockTraffic",
    "ApplicationStop",
    "DownloadBundle",
    "BeforeInstall",
    "Install",
    "AfterInstall",
    "ApplicationStart",
    "ValidateService",
    "BeforeAllowTraffic",
    "AllowTraffic",
    "AfterAllowTraffic",
];

/// The lifecycle events of an in-place target, with or without traffic control.
pub fn in_place_events(traffic_control: bool) -> &'static [&'static str] {
    if traffic_control {
        &IN_PLACE_TRAFFIC_EVENTS
    } else {
        &IN_PLACE_EVENTS
    }
}

/// One target (a host) of a deployment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    /// The host.
    pub target_id: NodeId,
    /// Its status.
    pub status: TargetStatus,
    /// Its lifecycle events, in order.
    pub lifecycle_events: Vec<LifecycleEvent>,
    /// Last change.
    pub last_updated_at: UnixMillis,
    /// Wave number in which it was started (1-based); 0 while pending.
    pub wave: u32,
    /// Highest report sequence number applied (reports are idempotent and ordered).
    pub report_seq: u64,
    /// Blue or green, in a blue/green deployment (feature level 10; none in-place).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_label: Option<TargetLabel>,
}

impl Target {
    /// A pending target with the in-place event list.
    pub fn pending(target_id: NodeId, at: UnixMillis) -> Self {
        Self::pending_with(target_id, at, &IN_PLACE_EVENTS)
    }

    /// A pending target with the lifecycle events `events`.
    pub fn pending_with(target_id: NodeId, at: UnixMillis, events: &[&str]) -> Self {
        Self {
            target_id,
            status: TargetStatus::Pending,
            lifecycle_events: events.iter().map(|name| LifecycleEvent::pending(name)).collect(),
            last_updated_at: at,
            wave: 0,
            report_seq: 0,
            target_label: None,
        }
    }
}

/// Deployment-level error codes (§6.2) that fleetmesh produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[allow(clippy::upper_case_acronyms)]
pub enum ErrorCode {
    /// Too many targets failed for the minimum-healthy rule.
    #[serde(rename = "HEALTH_CONSTRAINTS")]
    HealthConstraints,
    /// The rule can never be met for this many targets.
    #[serde(rename = "HEALTH_CONSTRAINTS_INVALID")]
    HealthConstraintsInvalid,
    /// The group's tags matched no host.
    #[serde(rename = "NO_INSTANCES")]
    NoInstances,
    /// An operator stopped it.
    #[serde(rename = "MANUAL_STOP")]
    ManualStop,
    /// It ran past its deadline.
    #[serde(rename = "TIMEOUT")]
    Timeout,
    /// The revision is gone.
    #[serde(rename = "REVISION_MISSING")]
    RevisionMissing,
    /// Something fleetmesh did not expect.
    #[serde(rename = "INTERNAL_ERROR")]
    InternalError,
    /// A Lambda hook reported `Failed` or did not report in time (level 13).
    #[serde(rename = "HOOK_EXECUTION_FAILURE")]
    HookExecutionFailure,
    /// Lambda refused a call on the function or alias (level 13).
    #[serde(rename = "INVALID_LAMBDA_FUNCTION")]
    InvalidLambdaFunction,
    /// The AppSpec's Lambda resource does not match the function (level 13).
    #[serde(rename = "INVALID_LAMBDA_CONFIGURATION")]
    InvalidLambdaConfiguration,
    /// AWS throttled the calls and the retries ran out (level 13).
    #[serde(rename = "THROTTLED")]
    Throttled,
    /// The credentials may not make the call (level 13).
    #[serde(rename = "IAM_ROLE_PERMISSIONS")]
    IamRolePermissions,
    /// ECS refused a task set call (level 14).
    #[serde(rename = "ECS_UPDATE_ERROR")]
    EcsUpdateError,
    /// The group's ECS cluster or service does not exist (level 14).
    #[serde(rename = "INVALID_ECS_SERVICE")]
    InvalidEcsService,
    /// ELBv2 refused a call on a target group or listener (level 14).
    #[serde(rename = "ELASTIC_LOAD_BALANCING_INVALID")]
    ElasticLoadBalancingInvalid,
    /// An alarm fired, or could not be read (level 18).
    #[serde(rename = "ALARM_ACTIVE")]
    AlarmActive,
}

/// `errorInformation`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorInformation {
    /// The code.
    pub code: ErrorCode,
    /// What happened, in a sentence.
    pub message: String,
}

/// Who created a deployment (§6.1 `DeploymentCreator`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeploymentCreator {
    /// An operator or pipeline.
    #[serde(rename = "user")]
    User,
    /// Hosts that joined later get the group's revision (CodeDeploy's Auto Scaling launch).
    #[serde(rename = "autoscaling")]
    Autoscaling,
    /// An automatic or requested rollback.
    #[serde(rename = "codeDeployRollback")]
    CodeDeployRollback,
}

/// `rollbackInfo`: links a deployment and its rollback.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RollbackInfo {
    /// Set on the deployment that was rolled back: the rollback's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_deployment_id: Option<DeploymentId>,
    /// Set on the rollback: the deployment it undoes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_triggering_deployment_id: Option<DeploymentId>,
    /// Why, or why no rollback happened.
    pub rollback_message: String,
}

/// `deploymentOverview`: targets per status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[allow(non_snake_case)]
pub struct DeploymentOverview {
    /// Not started.
    pub Pending: u32,
    /// Running.
    pub InProgress: u32,
    /// Done.
    pub Succeeded: u32,
    /// Failed.
    pub Failed: u32,
    /// Not attempted.
    pub Skipped: u32,
    /// Blue/green ready.
    pub Ready: u32,
}

/// A deployment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    /// `d-XXXXXXXXX`.
    pub deployment_id: DeploymentId,
    /// Application.
    pub application_name: String,
    /// Group.
    pub deployment_group_name: String,
    /// The group's id at creation (hooks get it as DEPLOYMENT_GROUP_ID).
    pub deployment_group_id: String,
    /// What is installed.
    pub revision_id: RevisionId,
    /// The configuration used.
    pub deployment_config_name: String,
    /// The configuration's rule, copied at creation (configs may be deleted later).
    pub minimum_healthy_hosts: MinimumHealthyHosts,
    /// The configuration's canary or linear steps, checked and copied at creation
    /// (`None` when it has none), so that changing or deleting the configuration does
    /// not change a running deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_routing: Option<TrafficRouting>,
    /// Who created it.
    pub creator: DeploymentCreator,
    /// Status.
    pub status: DeploymentStatus,
    /// Why it failed or stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_information: Option<ErrorInformation>,
    /// Free text.
    pub description: String,
    /// `--ignore-application-stop-failures`.
    pub ignore_application_stop_failures: bool,
    /// What Install does with existing files (the appspec's setting wins).
    pub file_exists_behavior: FileExistsBehavior,
    /// Rollback settings in force.
    pub auto_rollback_configuration: AutoRollbackConfiguration,
    /// The alarms polled while it runs (level 18): the deployment's override or its
    /// group's, copied at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarm_configuration: Option<crate::model::alarms::AlarmConfiguration>,
    /// Links to a rollback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_info: Option<RollbackInfo>,
    /// Created.
    pub create_time: UnixMillis,
    /// The API caller who created it (for audit; `creator` says why); none when made
    /// below feature level 7 or by the cluster itself (a rollback, a late joiner's update).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<Actor>,
    /// The API caller who stopped it, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_by: Option<Actor>,
    /// Started by the rollout engine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<UnixMillis>,
    /// Finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub complete_time: Option<UnixMillis>,
    /// Waves started so far.
    pub waves: u32,
    /// The routes each target leaves before `ApplicationStop` and rejoins after
    /// `ValidateService`: its group's routes when it deploys with traffic control,
    /// copied at creation (feature level 9; empty for deployments without).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub traffic_routes: Vec<String>,
    /// The ELBv2 target groups (by name) each target is deregistered from before
    /// `ApplicationStop` and registered with after `ValidateService`, copied from the
    /// group with its routes (feature level 14).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub elbv2_target_groups: Vec<String>,
    /// A blue/green deployment's progress (feature level 10; none in-place).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blue_green: Option<BlueGreenRun>,
    /// A Lambda deployment's run and its one target (feature level 13; no host targets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shift: Option<ShiftRun>,
    /// Targets, by host.
    pub targets: BTreeMap<NodeId, Target>,
}

impl Deployment {
    /// Counts targets per status.
    pub fn overview(&self) -> DeploymentOverview {
        let mut overview = DeploymentOverview::default();
        let lambda = self.shift.iter().map(|run| run.status);
        for status in self.targets.values().map(|target| target.status).chain(lambda) {
            match status {
                TargetStatus::Pending | TargetStatus::Unknown => overview.Pending += 1,
                TargetStatus::InProgress => overview.InProgress += 1,
                TargetStatus::Succeeded => overview.Succeeded += 1,
                TargetStatus::Failed => overview.Failed += 1,
                TargetStatus::Skipped => overview.Skipped += 1,
                TargetStatus::Ready => overview.Ready += 1,
            }
        }
        overview
    }
}
