//! On-premises instances (`RegisterOnPremisesInstance`, `DeregisterOnPremisesInstance`,
//! `GetOnPremisesInstance`, `BatchGetOnPremisesInstances`, `ListOnPremisesInstances`,
//! `AddTagsToOnPremisesInstances`, `RemoveTagsFromOnPremisesInstances`): names that
//! nodes take with `node --instance-name`, with the tags groups select them by; and the
//! tags of applications and deployment groups (`TagResource`, `UntagResource`,
//! `ListTagsForResource`), which ARNs of the cluster's region and account name.

use fleetmesh_state::model::instances::OnPremisesInstance;
pub use fleetmesh_state::model::instances::{RegistrationStatus, Tag, TaggedResource};
use fleetmesh_state::ClusterState;
use serde::{Deserialize, Serialize};

use crate::error::{ErrorKind, OperationError};
use crate::shapes::TagFilter;
use crate::time::EpochSeconds;

/// Most names of a `BatchGetOnPremisesInstances` call (CodeDeploy's limit).
pub const BATCH_GET_INSTANCES_MAX: usize = 100;

/// `RegisterOnPremisesInstance`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegisterOnPremisesInstanceInput {
    /// The name a node takes with `--instance-name`.
    pub instance_name: String,
    /// An IAM session ARN, kept and shown (nodes authenticate with their certificates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iam_session_arn: Option<String>,
    /// An IAM user ARN, kept and shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iam_user_arn: Option<String>,
}

/// `DeregisterOnPremisesInstance`, `GetOnPremisesInstance`: one instance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InstanceNameInput {
    /// The instance.
    pub instance_name: String,
}

/// `DeregisterOnPremisesInstance`.
pub type DeregisterOnPremisesInstanceInput = InstanceNameInput;
/// `GetOnPremisesInstance`.
pub type GetOnPremisesInstanceInput = InstanceNameInput;

/// An instance as the protocol shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceInfo {
    /// Name.
    pub instance_name: String,
    /// Registered with this IAM session ARN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iam_session_arn: Option<String>,
    /// Registered with this IAM user ARN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iam_user_arn: Option<String>,
    /// `arn:aws:codedeploy:<region>:<account>:instance/<name>`.
    pub instance_arn: String,
    /// When it was registered.
    pub register_time: EpochSeconds,
    /// When it was deregistered, if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deregister_time: Option<EpochSeconds>,
    /// Its tags (the tags of the node holding it).
    pub tags: Vec<Tag>,
    /// The node that holds it (fleetmesh's extension; the AWS CLI drops it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_id: Option<u64>,
}

impl InstanceInfo {
    /// `instance` as shown, with ARNs of `state`'s region and account.
    pub fn of(instance: &OnPremisesInstance, state: &ClusterState) -> Self {
        let tags = state.instance_tags(&instance.instance_name).cloned().unwrap_or_default();
        Self {
            instance_name: instance.instance_name.clone(),
            iam_session_arn: instance.iam_session_arn.clone(),
            iam_user_arn: instance.iam_user_arn.clone(),
            instance_arn: crate::arn(state, &format!("instance/{}", instance.instance_name)),
            register_time: instance.register_time.into(),
            deregister_time: instance.deregister_time.map(Into::into),
            tags: tags.into_iter().map(|(key, value)| Tag { key, value }).collect(),
            node_id: instance.node.map(|node| node.0),
        }
    }
}

/// `GetOnPremisesInstance`'s answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetOnPremisesInstanceOutput {
    /// The instance.
    pub instance_info: InstanceInfo,
}

/// `BatchGetOnPremisesInstances`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BatchGetOnPremisesInstancesInput {
    /// Up to 100 names.
    pub instance_names: Vec<String>,
}

/// `BatchGetOnPremisesInstances`' answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchGetOnPremisesInstancesOutput {
    /// The instances registered or deregistered under the names asked, in that order;
    /// names never registered are left out, as CodeDeploy leaves them out.
    pub instance_infos: Vec<InstanceInfo>,
}

/// `ListOnPremisesInstances`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListOnPremisesInstancesInput {
    /// Only instances in this state (default: both).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_status: Option<RegistrationStatus>,
    /// Only instances whose tags match one of these (as a group's filters select).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag_filters: Option<Vec<TagFilter>>,
    /// Where the previous page ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// `ListOnPremisesInstances`' answer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListOnPremisesInstancesOutput {
    /// Names, sorted.
    pub instance_names: Vec<String>,
    /// More follow: pass it back for the next page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// `AddTagsToOnPremisesInstances` and `RemoveTagsFromOnPremisesInstances`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InstanceTagsInput {
    /// Up to 10 tags.
    pub tags: Vec<Tag>,
    /// Up to 10 registered instances.
    pub instance_names: Vec<String>,
}

/// `AddTagsToOnPremisesInstances`.
pub type AddTagsToOnPremisesInstancesInput = InstanceTagsInput;
/// `RemoveTagsFromOnPremisesInstances`.
pub type RemoveTagsFromOnPremisesInstancesInput = InstanceTagsInput;

impl crate::Operation {
    /// True for the operations on instances and tags (and creates that tag what they
    /// create): feature level 15.
    pub fn is_tagging(&self) -> bool {
        match self {
            Self::RegisterOnPremisesInstance(_)
            | Self::DeregisterOnPremisesInstance(_)
            | Self::GetOnPremisesInstance(_)
            | Self::BatchGetOnPremisesInstances(_)
            | Self::ListOnPremisesInstances(_)
            | Self::AddTagsToOnPremisesInstances(_)
            | Self::RemoveTagsFromOnPremisesInstances(_)
            | Self::TagResource(_)
            | Self::UntagResource(_)
            | Self::ListTagsForResource(_) => true,
            Self::CreateApplication(input) => input.tags.is_some(),
            Self::CreateDeploymentGroup(input) => input.tags.is_some(),
            _ => false,
        }
    }
}

/// The names of `state`'s instances that `input` lists, sorted.
pub fn listed_instances(state: &ClusterState, input: &ListOnPremisesInstancesInput) -> Vec<String> {
    let filters = input.tag_filters.as_deref().unwrap_or_default();
    state
        .instances
        .values()
        .filter(|instance| match input.registration_status {
            Some(RegistrationStatus::Registered) => instance.is_registered(),
            Some(RegistrationStatus::Deregistered) => !instance.is_registered(),
            None => true,
        })
        .filter(|instance| {
            let tags = state.instance_tags(&instance.instance_name);
            filters.is_empty() || filters.iter().any(|filter| tags.is_some_and(|tags| filter.matches(tags)))
        })
        .map(|instance| instance.instance_name.clone())
        .collect()
}

/// `TagResource`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct TagResourceInput {
    /// An application's or deployment group's ARN.
    pub resource_arn: String,
    /// Tags to add (a tag of the same key is replaced).
    pub tags: Vec<Tag>,
}

/// `UntagResource`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct UntagResourceInput {
    /// An application's or deployment group's ARN.
    pub resource_arn: String,
    /// Keys of the tags to remove.
    pub tag_keys: Vec<String>,
}

/// `ListTagsForResource`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ListTagsForResourceInput {
    /// An application's or deployment group's ARN.
    pub resource_arn: String,
    /// Where the previous page ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// `ListTagsForResource`'s answer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListTagsForResourceOutput {
    /// Its tags, by key.
    pub tags: Vec<Tag>,
    /// More follow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// The application or deployment group `arn` names, in the region and account of the
/// cluster of `state`.
///
/// # Errors
/// An empty ARN (`ResourceArnRequiredException`), one that is not CodeDeploy's or names
/// another region or account (`InvalidArnException`), or a resource that carries no tags
/// here (`ArnNotSupportedException`).
pub fn tagged_resource(state: &ClusterState, arn: &str) -> Result<TaggedResource, OperationError> {
    let refuse = |code: &str, reason: String| {
        let mut error = OperationError::invalid("ResourceArn", reason);
        error.code = Some(code.to_string());
        error
    };
    if arn.is_empty() {
        return Err(refuse("ResourceArnRequiredException", "ResourceArn is missing".into()));
    }
    let shown = crate::bounds::echo(arn);
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [_, _, "codedeploy", region, account, resource] = parts.as_slice() else {
        return Err(refuse(
            "InvalidArnException",
            format!("{shown} is not a CodeDeploy ARN (arn:aws:codedeploy:<region>:<account>:<resource>)"),
        ));
    };
    if parts[0] != "arn" {
        return Err(refuse("InvalidArnException", format!("{shown} does not start with arn:")));
    }
    let expected = crate::arn(state, "");
    if !expected.starts_with(&format!("arn:aws:codedeploy:{region}:{account}:")) {
        return Err(refuse(
            "InvalidArnException",
            format!(
                "{shown} names region {region} and account {account}; this cluster's ARNs start with {expected} \
                 (node --aws-region, --aws-account-id)"
            ),
        ));
    }
    let tagged = match resource.split_once(':') {
        Some(("application", name)) if !name.is_empty() => {
            Some(TaggedResource::Application { application_name: name.to_string() })
        }
        Some(("deploymentgroup", path)) => path
            .split_once('/')
            .filter(|(app, group)| !app.is_empty() && !group.is_empty())
            .map(|(application, group)| TaggedResource::DeploymentGroup {
                application_name: application.to_string(),
                deployment_group_name: group.to_string(),
            }),
        _ => None,
    };
    tagged.ok_or_else(|| {
        refuse(
            "ArnNotSupportedException",
            format!(
                "{shown}: only applications (application:<name>) and deployment groups \
                 (deploymentgroup:<application>/<group>) carry tags"
            ),
        )
    })
}

/// The tags of `resource`, by key.
///
/// # Errors
/// The application or group does not exist.
pub fn resource_tags(state: &ClusterState, resource: &TaggedResource) -> Result<Vec<Tag>, OperationError> {
    let tags = match resource {
        TaggedResource::Application { application_name } => {
            state.applications.get(application_name).map(|application| &application.tags).ok_or_else(|| {
                OperationError::new(ErrorKind::NotFound, format!("application {application_name} does not exist"))
            })?
        }
        TaggedResource::DeploymentGroup { application_name, deployment_group_name } => state
            .deployment_group(application_name, deployment_group_name)
            .map(|group| &group.tags)
            .ok_or_else(|| {
                OperationError::new(
                    ErrorKind::NotFound,
                    format!(
                        "deployment group {deployment_group_name} of application {application_name} does not exist"
                    ),
                )
            })?,
    };
    Ok(tags.iter().map(|(key, value)| Tag { key: key.clone(), value: value.clone() }).collect())
}

#[cfg(test)]
mod tests {
    use fleetmesh_state::model::members::ClusterInfo;

    use super::*;

    fn state(region: Option<&str>, account: Option<&str>) -> ClusterState {
        let info: ClusterInfo = serde_json::from_value(serde_json::json!({
            "ca": {"cluster_id": "c", "cert_pem": "x", "key_pem": "x"},
            "admin_token_hash": "h", "join_tokens": [], "voters_desired": 1, "created_at": 0,
        }))
        .expect("a cluster info");
        let info =
            ClusterInfo { aws_region: region.map(str::to_string), aws_account_id: account.map(str::to_string), ..info };
        ClusterState { cluster: Some(info), ..ClusterState::default() }
    }

    fn code(result: Result<TaggedResource, OperationError>) -> String {
        result.err().and_then(|error| error.code).unwrap_or_else(|| "accepted".into())
    }

    #[test]
    fn arns_name_applications_and_groups_of_this_clusters_region_and_account() {
        let defaults = state(None, None);
        assert_eq!(
            tagged_resource(&defaults, "arn:aws:codedeploy:us-east-1:000000000000:application:shop"),
            Ok(TaggedResource::Application { application_name: "shop".into() })
        );
        let paris = state(Some("eu-west-3"), Some("123456789012"));
        assert_eq!(
            tagged_resource(&paris, "arn:aws:codedeploy:eu-west-3:123456789012:deploymentgroup:shop/web"),
            Ok(TaggedResource::DeploymentGroup {
                application_name: "shop".into(),
                deployment_group_name: "web".into()
            })
        );
        let cases = [
            ("", "ResourceArnRequiredException"),
            ("shop", "InvalidArnException"),
            ("arn:aws:s3:eu-west-3:123456789012:application:shop", "InvalidArnException"),
            ("nra:aws:codedeploy:eu-west-3:123456789012:application:shop", "InvalidArnException"),
            ("arn:aws:codedeploy:us-east-1:123456789012:application:shop", "InvalidArnException"),
            ("arn:aws:codedeploy:eu-west-3:000000000000:application:shop", "InvalidArnException"),
            ("arn:aws:codedeploy:eu-west-3:123456789012:deploymentconfig:fast", "ArnNotSupportedException"),
            ("arn:aws:codedeploy:eu-west-3:123456789012:deploymentgroup:shop", "ArnNotSupportedException"),
            ("arn:aws:codedeploy:eu-west-3:123456789012:application:", "ArnNotSupportedException"),
        ];
        for (arn, expected) in cases {
            assert_eq!(code(tagged_resource(&paris, arn)), expected, "{arn}");
        }
        let refused = tagged_resource(&paris, "arn:aws:codedeploy:us-east-1:123456789012:application:shop");
        let message = refused.err().map(|error| error.message).unwrap_or_default();
        assert!(message.contains("arn:aws:codedeploy:eu-west-3:123456789012:"), "{message}");
    }
}
