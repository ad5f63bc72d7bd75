//! What an ECS deployment moves (feature level 14, `codedeploy.md` §2.7): a service's
//! production traffic, from the task set behind one target group of the group's pair to
//! a replacement task set behind the other.
//!
//! ```text
//!  Install: EcsResolved (target groups, original task set) ─▶ CreateTaskSet ─▶ TaskSetCreated
//!  AllowTestTraffic: test listener → green ─▶ TestTrafficRouted
//!  AllowTraffic: production listener weights, step by step (BeginWeight / WeightApplied)
//!  after the events: primary → replacement, original deleted ─▶ Retired
//! ```

use serde::{Deserialize, Serialize};

use crate::model::ids::DeploymentId;

/// The ECS events in run order (§2.7).
pub const ECS_EVENTS: [&str; 8] = [
    "BeforeInstall",
    "Install",
    "AfterInstall",
    "AllowTestTraffic",
    "AfterAllowTestTraffic",
    "BeforeAllowTraffic",
    "AllowTraffic",
    "AfterAllowTraffic",
];

/// An ECS deployment: the group's service, target group pair and listeners, and the
/// AppSpec's replacement task set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EcsSpec {
    /// The service's cluster.
    pub cluster: String,
    /// The service (under the `CODE_DEPLOY` deployment controller).
    pub service: String,
    /// What the replacement task set runs.
    pub task_set: EcsTaskSet,
    /// The pair's two target groups, by name.
    pub target_groups: Vec<String>,
    /// The production listener's ARN.
    pub prod_listener: String,
    /// The test listener's ARN, if the group names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_listener: Option<String>,
    /// Hook functions: (event, function), in run order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<(String, String)>,
    /// How long the original task set is kept after the traffic moved.
    #[serde(default)]
    pub termination_wait_ms: u64,
    /// For a rollback: the failed deployment's progress, reversed; the run starts there
    /// (no task set to create).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<EcsProgress>,
}

impl EcsSpec {
    /// The spec that undoes a deployment `failed` of this spec that got as far as
    /// `progress`: starts from the progress reversed, no hooks, no termination wait.
    pub fn reversed(&self, progress: &EcsProgress, failed: &DeploymentId) -> Self {
        Self { hooks: Vec::new(), termination_wait_ms: 0, rollback: Some(progress.reversed(failed)), ..self.clone() }
    }
}

/// The AppSpec's `TargetService` properties.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EcsTaskSet {
    /// Task definition ARN.
    pub task_definition: String,
    /// The container the target group sends to.
    pub container_name: String,
    /// Its port.
    pub container_port: u16,
    /// Fargate platform version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform_version: Option<String>,
    /// `awsvpc` subnets; empty leaves networking to the service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subnets: Vec<String>,
    /// `awsvpc` security groups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_groups: Vec<String>,
    /// `AssignPublicIp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assign_public_ip: Option<bool>,
    /// Capacity providers `(name, base, weight)`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capacity_providers: Vec<(String, u32, u32)>,
}

/// How far an ECS deployment got: what the leader found and made in AWS, committed
/// around each call.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EcsProgress {
    /// The target group production traffic went to (ARN).
    pub blue_target_group: String,
    /// The other one: the replacement's.
    pub green_target_group: String,
    /// The task set that served (ARN), deleted after success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original: Option<String>,
    /// The replacement task set (ARN), primary after success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replacement: Option<String>,
    /// Task sets with this external id are deleted after success as well (a rollback's:
    /// the failed deployment's replacement, even one whose creation was never confirmed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remove_external_id: Option<String>,
    /// The test listener sends to green.
    #[serde(default)]
    pub test_traffic_routed: bool,
    /// The replacement is primary and the original deleted.
    #[serde(default)]
    pub retired: bool,
}

impl EcsProgress {
    /// Where the rollback of the deployment `failed` that got this far starts: the
    /// target groups and task sets swapped, the failed replacement to be removed.
    pub fn reversed(&self, failed: &DeploymentId) -> Self {
        Self {
            blue_target_group: self.green_target_group.clone(),
            green_target_group: self.blue_target_group.clone(),
            original: self.replacement.clone(),
            replacement: self.original.clone(),
            remove_external_id: Some(failed.0.clone()),
            test_traffic_routed: false,
            retired: false,
        }
    }
}
