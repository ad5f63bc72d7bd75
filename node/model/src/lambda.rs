//! The operations of Lambda deployments' hooks.

use fleetmesh_state::model::deployment::LifecycleEventStatus;
use fleetmesh_state::model::ids::DeploymentId;
use serde::{Deserialize, Serialize};

/// `PutLifecycleEventHookExecutionStatus`: a hook function's outcome (§2.8).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PutLifecycleEventHookExecutionStatusInput {
    /// The deployment whose hook ran (the `DeploymentId` of the hook's payload).
    pub deployment_id: DeploymentId,
    /// The `LifecycleEventHookExecutionId` of the hook's payload.
    pub lifecycle_event_hook_execution_id: String,
    /// `Succeeded` or `Failed`.
    pub status: LifecycleEventStatus,
}

/// What `PutLifecycleEventHookExecutionStatus` answers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PutLifecycleEventHookExecutionStatusOutput {
    /// The execution whose status was recorded.
    pub lifecycle_event_hook_execution_id: String,
}
