//! The `BatchGet*` operations (several `Get*` in one call, AWS's batch limits in
//! `bounds.rs`) and the cluster's access keys for the AWS protocol.

use fleetmesh_state::model::ids::DeploymentId;
use serde::{Deserialize, Serialize};

use crate::deployments::{DeploymentInfo, DeploymentTarget};
use crate::shapes::{ApplicationInfo, DeploymentGroupInfo, RevisionLocation};
use crate::sources::RevisionSummary;
use crate::time::EpochSeconds;

/// `BatchGetApplications`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BatchGetApplicationsInput {
    /// Up to 100 names.
    pub application_names: Vec<String>,
}

/// `BatchGetApplications`' answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchGetApplicationsOutput {
    /// The applications, in the order asked.
    pub applications_info: Vec<ApplicationInfo>,
}

/// `BatchGetDeploymentGroups`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BatchGetDeploymentGroupsInput {
    /// The application.
    pub application_name: String,
    /// Up to 100 group names.
    pub deployment_group_names: Vec<String>,
}

/// `BatchGetDeploymentGroups`' answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchGetDeploymentGroupsOutput {
    /// The groups that exist, in the order asked.
    pub deployment_groups_info: Vec<DeploymentGroupInfo>,
    /// Which names do not exist, when some do not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
}

/// `BatchGetDeployments`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BatchGetDeploymentsInput {
    /// Up to 25 ids.
    pub deployment_ids: Vec<DeploymentId>,
}

/// `BatchGetDeployments`' answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchGetDeploymentsOutput {
    /// The deployments that exist, in the order asked.
    pub deployments_info: Vec<DeploymentInfo>,
}

/// `BatchGetDeploymentTargets`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BatchGetDeploymentTargetsInput {
    /// The deployment.
    pub deployment_id: DeploymentId,
    /// Up to 25 target ids.
    pub target_ids: Vec<String>,
}

/// `BatchGetDeploymentTargets`' answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchGetDeploymentTargetsOutput {
    /// The targets, in the order asked.
    pub deployment_targets: Vec<DeploymentTarget>,
}

/// `BatchGetApplicationRevisions`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BatchGetApplicationRevisionsInput {
    /// The application.
    pub application_name: String,
    /// Up to 25 revisions, by location.
    pub revisions: Vec<RevisionLocation>,
}

/// One revision of a `BatchGetApplicationRevisions` answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RevisionInfo {
    /// Where it is.
    pub revision_location: RevisionLocation,
    /// What is known about it.
    pub generic_revision_info: RevisionSummary,
}

/// `BatchGetApplicationRevisions`' answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchGetApplicationRevisionsOutput {
    /// The application.
    pub application_name: String,
    /// Which revisions do not exist, when some do not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// The revisions that exist, in the order asked.
    pub revisions: Vec<RevisionInfo>,
}

/// `CreateAccessKey` (fleetmesh): a new access key for the AWS protocol.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateAccessKeyInput {}

/// `CreateAccessKey`'s answer: the only time the secret is shown.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateAccessKeyOutput {
    /// `AKIA…`.
    pub access_key_id: String,
    /// 40 characters; kept sealed in the cluster, never shown again.
    pub secret_access_key: String,
}

impl std::fmt::Debug for CreateAccessKeyOutput {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("CreateAccessKeyOutput")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// `ListAccessKeys` (fleetmesh).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListAccessKeysInput {}

/// One access key, without its secret.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessKeyInfo {
    /// `AKIA…`.
    pub access_key_id: String,
    /// When it was created.
    pub create_time: EpochSeconds,
    /// Who created it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
}

/// `ListAccessKeys`' answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListAccessKeysOutput {
    /// Oldest first.
    pub access_keys: Vec<AccessKeyInfo>,
}

/// `DeleteAccessKey` (fleetmesh): revokes a key at once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeleteAccessKeyInput {
    /// `AKIA…`.
    pub access_key_id: String,
}
