//! On-premises instances (CodeDeploy's `RegisterOnPremisesInstance` and friends) as
//! the cluster records them: a name, registered by an operator or taken by a node
//! started with `node --instance-name NAME`, with tags that deployment groups select by.
//!
//! While a node holds an instance, the instance's tags and the node's tags are one set
//! (`Member::tags`, which groups match): adding or removing an instance's tags changes
//! the node's, so groups re-select it. A deregistered instance keeps its node in the
//! cluster, but no deployment selects it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ids::UnixMillis;
use crate::NodeId;

/// Most tags an instance carries (CodeDeploy's limit is 10 a call; fleetmesh bounds the
/// set, since a node's tags are in every poll).
pub const INSTANCE_TAGS_MAX: usize = 50;
/// Most instances one tag call names (CodeDeploy's `InstanceLimitExceededException`).
pub const TAGGED_INSTANCES_MAX: usize = 10;
/// Most tags one tag call adds or removes (`TagLimitExceededException`).
pub const TAGS_PER_CALL_MAX: usize = 10;
/// Most instances a cluster registers.
pub const INSTANCES_MAX: usize = 100_000;
/// Most characters of a tag key (AWS's limit).
pub const TAG_KEY_CHARS_MAX: usize = 128;
/// Most characters of a tag value (AWS's limit).
pub const TAG_VALUE_CHARS_MAX: usize = 256;
/// Most tags an application or deployment group carries (AWS's limit).
pub const RESOURCE_TAGS_MAX: usize = 50;
/// Most characters of an IAM ARN.
pub const IAM_ARN_CHARS_MAX: usize = 2048;

/// One on-premises instance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OnPremisesInstance {
    /// Its name, unique in the cluster.
    pub instance_name: String,
    /// The IAM session ARN it was registered with, if any (kept and shown; fleetmesh
    /// authenticates nodes by their certificates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iam_session_arn: Option<String>,
    /// The IAM user ARN it was registered with, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iam_user_arn: Option<String>,
    /// When it was (last) registered.
    pub register_time: UnixMillis,
    /// When it was deregistered; `None` while registered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deregister_time: Option<UnixMillis>,
    /// Its tags while no node holds it; while a node does, the node's tags are the
    /// instance's ([`crate::ClusterState::instance_tags`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// The node that took the name, if one did and is still a member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<NodeId>,
}

/// True when `arn` looks like an IAM ARN as registration keeps it: `arn:…`, at most
/// [`IAM_ARN_CHARS_MAX`] characters, no control characters.
pub fn is_iam_arn(arn: &str) -> bool {
    arn.starts_with("arn:") && arn.len() <= IAM_ARN_CHARS_MAX && !arn.chars().any(char::is_control)
}

impl OnPremisesInstance {
    /// True until it is deregistered.
    pub fn is_registered(&self) -> bool {
        self.deregister_time.is_none()
    }
}

/// `registrationStatus` of `ListOnPremisesInstances`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RegistrationStatus {
    /// Registered.
    Registered,
    /// Deregistered.
    Deregistered,
}

/// One tag as the AWS protocol spells it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tag {
    /// Key.
    #[serde(rename = "Key")]
    pub key: String,
    /// Value (an empty value when left out).
    #[serde(rename = "Value", default)]
    pub value: String,
}

/// Why a tag is refused; the key is shown quoted and cut to 60 characters.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidTag {
    /// No key.
    #[error("a tag's Key is required and cannot be empty")]
    EmptyKey,
    /// The key is too long.
    #[error("tag key {0} is longer than {TAG_KEY_CHARS_MAX} characters")]
    KeyTooLong(String),
    /// The value is too long.
    #[error("the value of tag {0} is longer than {TAG_VALUE_CHARS_MAX} characters")]
    ValueTooLong(String),
    /// Key or value holds a control character.
    #[error("tag {0} holds a control character")]
    ControlCharacter(String),
}

impl From<InvalidTag> for String {
    fn from(error: InvalidTag) -> Self {
        error.to_string()
    }
}

/// Checks a tag of an add or remove: a key of 1 to 128 characters, a value of at most
/// 256, neither with control characters.
///
/// # Errors
/// What is wrong, naming the tag.
pub fn check_tag(tag: &Tag) -> Result<(), InvalidTag> {
    if tag.key.is_empty() {
        return Err(InvalidTag::EmptyKey);
    }
    if tag.key.chars().count() > TAG_KEY_CHARS_MAX {
        return Err(InvalidTag::KeyTooLong(shown(&tag.key)));
    }
    if tag.value.chars().count() > TAG_VALUE_CHARS_MAX {
        return Err(InvalidTag::ValueTooLong(shown(&tag.key)));
    }
    if tag.key.chars().chain(tag.value.chars()).any(char::is_control) {
        return Err(InvalidTag::ControlCharacter(shown(&tag.key)));
    }
    Ok(())
}

/// `text` quoted, cut to 60 characters for an error message.
fn shown(text: &str) -> String {
    let cut: String = text.chars().take(60).collect();
    if cut.len() < text.len() {
        format!("{cut:?}…")
    } else {
        format!("{cut:?}")
    }
}

/// A resource that carries tags (`TagResource`): an application or a deployment group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TaggedResource {
    /// `arn:aws:codedeploy:<region>:<account>:application:<name>`.
    Application {
        /// The application.
        application_name: String,
    },
    /// `arn:aws:codedeploy:<region>:<account>:deploymentgroup:<application>/<group>`.
    DeploymentGroup {
        /// The application.
        application_name: String,
        /// The group.
        deployment_group_name: String,
    },
}

impl TaggedResource {
    /// The part of its ARN after the account: `application:<name>` or
    /// `deploymentgroup:<application>/<group>`.
    pub fn arn_resource(&self) -> String {
        match self {
            Self::Application { application_name } => format!("application:{application_name}"),
            Self::DeploymentGroup { application_name, deployment_group_name } => {
                format!("deploymentgroup:{application_name}/{deployment_group_name}")
            }
        }
    }
}
