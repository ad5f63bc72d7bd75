//! The blue/green operations' own shapes: `targetInstances` of `CreateDeployment` and
//! `ContinueDeployment`.

use fleetmesh_state::model::ids::DeploymentId;
use fleetmesh_state::DeploymentWaitType;
use serde::{Deserialize, Serialize};

use crate::shapes::TagFilter;

/// `TargetInstances`: the hosts of a blue/green deployment's green fleet. fleetmesh
/// reads `tagFilters` (AWS's EC2 tag filters, matched against node tags).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[serde(deny_unknown_fields)]
pub struct TargetInstances {
    /// Hosts matching any of these form the green fleet.
    #[serde(default, deserialize_with = "crate::strict::tag_filters_strict")]
    pub tag_filters: Option<Vec<TagFilter>>,
}

/// `ContinueDeployment`: ends a blue/green deployment's ready or termination wait.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[serde(deny_unknown_fields)]
pub struct ContinueDeploymentInput {
    /// The deployment.
    pub deployment_id: DeploymentId,
    /// `READY_WAIT` (the default) or `TERMINATION_WAIT`.
    #[serde(default)]
    pub deployment_wait_type: Option<DeploymentWaitType>,
}
