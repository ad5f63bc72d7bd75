//! What the rollout engine reports into the state: a host's progress on a target, and
//! how a deployment ends.

use serde::{Deserialize, Serialize};

use crate::model::deployment::{ErrorInformation, LifecycleEvent, TargetStatus};
use crate::model::ids::DeploymentId;
use crate::NodeId;

/// A host's progress on one target, as its agent reported it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetReport {
    /// Deployment.
    pub deployment_id: DeploymentId,
    /// Host.
    pub target_id: NodeId,
    /// Increases with every report of this host for this deployment; older ones are ignored.
    pub seq: u64,
    /// Target status after this report.
    pub status: TargetStatus,
    /// All lifecycle events as the agent sees them.
    pub lifecycle_events: Vec<LifecycleEvent>,
}

/// How a deployment ends, as decided by the rollout engine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finish {
    /// Deployment.
    pub deployment_id: DeploymentId,
    /// Succeeded or Failed.
    pub succeeded: bool,
    /// Why it failed.
    pub error: Option<ErrorInformation>,
    /// Id for the rollback deployment, if the configuration asks for one.
    pub rollback_id: Option<DeploymentId>,
}
