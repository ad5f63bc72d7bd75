//! fleetmesh's own operations on the cluster (no CodeDeploy counterpart): its view of
//! the members (`GetCluster`, `cluster status`) and join tokens (`CreateJoinToken`,
//! `ListJoinTokens`, `DeleteJoinToken`).
//! Field names are kept as the first release printed them (`cluster status --json`).

use std::collections::BTreeMap;

use fleetmesh_state::{FeatureLevel, NodeId, Release};
use serde::{Deserialize, Serialize};

use crate::{EpochSeconds, OperationError};

/// A member's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeRole {
    /// Replicates the Raft log and votes.
    Voter,
    /// Runs deployments; does not replicate the log.
    Agent,
}

/// A member's health in the leader's view.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeHealth {
    /// Polled recently.
    Alive,
    /// Missed a few polls.
    Suspect,
    /// Silent for longer than the dead threshold.
    Dead,
}

/// One member, as `cluster status` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterNode {
    /// Id.
    pub id: NodeId,
    /// QUIC address.
    pub address: String,
    /// HTTP API address.
    pub api: String,
    /// Voter or agent.
    pub role: NodeRole,
    /// Alive, suspect or dead.
    pub health: NodeHealth,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// Its release, as its polls report it (none until it has polled this leader).
    #[serde(default)]
    pub release: Option<Release>,
    /// The on-premises instance name it took (`node --instance-name`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_name: Option<String>,
}

/// `GetCluster` takes nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetClusterInput {}

/// `GetCluster`'s answer: the cluster as the leader sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetClusterOutput {
    /// The leader.
    pub leader: Option<NodeId>,
    /// Raft term.
    pub term: u64,
    /// The cluster id.
    pub cluster_id: String,
    /// Voters the leader keeps.
    pub voters_desired: u32,
    /// The feature level the cluster runs at.
    pub feature_level: FeatureLevel,
    /// Members, by id.
    pub nodes: Vec<ClusterNode>,
}

/// A join token's lifetime when the request names none: 24 hours, as kubeadm's.
pub const JOIN_TOKEN_TTL_DEFAULT_SECONDS: u64 = 24 * 3600;

/// The longest lifetime a join token may be given: 10 years. A token that should never
/// expire (for autoscaling groups) asks for 0.
pub const JOIN_TOKEN_TTL_MAX_SECONDS: u64 = 10 * 365 * 24 * 3600;

/// The most joins one token may be limited to.
pub const JOIN_TOKEN_MAX_USES_MAX: u64 = 1_000_000;

/// `CreateJoinToken`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[serde(deny_unknown_fields)]
pub struct CreateJoinTokenInput {
    /// Lifetime in seconds: none is [`JOIN_TOKEN_TTL_DEFAULT_SECONDS`], 0 never expires,
    /// at most [`JOIN_TOKEN_TTL_MAX_SECONDS`].
    #[serde(default)]
    pub ttl_seconds: Option<u64>,
    /// What it is for.
    #[serde(default)]
    pub description: String,
    /// How many nodes may join with it (1 to [`JOIN_TOKEN_MAX_USES_MAX`]); none is no
    /// limit. Needs feature level 4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_uses: Option<u64>,
}

impl CreateJoinTokenInput {
    /// Checks the numbers are within their bounds.
    ///
    /// # Errors
    /// A bad request naming the field and its bound.
    pub fn check(&self) -> Result<(), OperationError> {
        if let Some(ttl) = self.ttl_seconds.filter(|ttl| *ttl > JOIN_TOKEN_TTL_MAX_SECONDS) {
            return Err(OperationError::invalid(
                "ttlSeconds",
                format!(
                    "{ttl} is more than the maximum, {JOIN_TOKEN_TTL_MAX_SECONDS} (10 years); \
                     use 0 for a token that never expires"
                ),
            ));
        }
        match self.max_uses {
            Some(uses) if uses == 0 || uses > JOIN_TOKEN_MAX_USES_MAX => Err(OperationError::invalid(
                "maxUses",
                format!("{uses} is not between 1 and {JOIN_TOKEN_MAX_USES_MAX}"),
            )),
            _ => Ok(()),
        }
    }

    /// How long the token lives, in seconds; `None` never expires.
    pub fn lifetime_seconds(&self) -> Option<u64> {
        match self.ttl_seconds {
            None => Some(JOIN_TOKEN_TTL_DEFAULT_SECONDS),
            Some(0) => None,
            Some(ttl) => Some(ttl),
        }
    }
}

/// `CreateJoinToken`'s answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateJoinTokenOutput {
    /// The token, shown once.
    pub token: String,
    /// When it expires.
    #[serde(default)]
    pub expires_at: Option<EpochSeconds>,
    /// Its id, for `ListJoinTokens` and `DeleteJoinToken` (empty from an older release).
    #[serde(default)]
    pub token_id: String,
}

/// `ListJoinTokens` takes nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListJoinTokensInput {}

/// One join token as `ListJoinTokens` shows it: never its secret.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinTokenInfo {
    /// Its id.
    pub token_id: String,
    /// What it is for (`bootstrap token` for the first node's `DIR/join-token`).
    pub description: String,
    /// When it was created; none for tokens created before feature level 4.
    #[serde(default)]
    pub created_at: Option<EpochSeconds>,
    /// When it expires; none never.
    #[serde(default)]
    pub expires_at: Option<EpochSeconds>,
    /// How many nodes joined with it (counted from feature level 4 on).
    pub uses: u64,
    /// How many may; none is no limit.
    #[serde(default)]
    pub max_uses: Option<u64>,
    /// Who created it (audit); absent for the bootstrap token and before feature level 7.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
}

/// `ListJoinTokens`'s answer, in creation order.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListJoinTokensOutput {
    /// The tokens the cluster accepts (expired ones included until deleted).
    pub join_tokens: Vec<JoinTokenInfo>,
}

/// `DeleteJoinToken`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[serde(deny_unknown_fields)]
pub struct DeleteJoinTokenInput {
    /// The token's id, as `ListJoinTokens` shows it.
    pub token_id: String,
}

/// `RemoveNode`: removes a member, dead or alive, for good (feature level 5). Its id is
/// never reused and its certificate is refused from then on.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RemoveNodeInput {
    /// The member's id, as `GetCluster` lists it.
    pub node_id: u64,
}

/// `RotateApiToken`: replaces one of the API's tokens with a new one (feature level 5).
/// For the admin token the old one stops working at once; the read-only and metrics
/// tokens are created by their first rotation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[serde(deny_unknown_fields)]
pub struct RotateApiTokenInput {
    /// Which token: `admin`, `read-only` or `metrics`.
    pub kind: fleetmesh_state::model::members::ApiTokenKind,
}

/// `RotateApiToken`'s answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RotateApiTokenOutput {
    /// Which token.
    pub kind: fleetmesh_state::model::members::ApiTokenKind,
    /// The new token, shown once.
    pub token: String,
}

/// `SetDeploymentRetention` (fleetmesh): how many finished deployments the cluster
/// keeps and for how long (feature level 19). A member left out keeps its value.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetDeploymentRetentionInput {
    /// At most this many deployments; finished ones beyond it go, oldest first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_deployments: Option<u32>,
    /// Finished deployments that ended more than this many days ago go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_days: Option<u32>,
}

/// `SetDeploymentRetention`'s answer: the retention now in force.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetDeploymentRetentionOutput {
    /// At most this many deployments.
    pub max_deployments: u32,
    /// Days a finished deployment is kept.
    pub max_age_days: u32,
}
