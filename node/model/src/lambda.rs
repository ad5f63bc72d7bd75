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

/// AWS's `AppSpecContent` and `RawString`: an AppSpec document given inline.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InlineAppSpec {
    /// The YAML or JSON document.
    #[serde(default)]
    pub content: String,
    /// Its SHA-256, hex (sent by botocore when given; fleetmesh uses BLAKE3, unchecked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}
