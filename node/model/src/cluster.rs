//! fleetmesh's own operations on the cluster (no CodeDeploy counterpart): its view of
//! the members (`GetCluster`, `cluster status`) and join tokens (`CreateJoinToken`).
//! Field names are kept as the first release printed them (`cluster status --json`).

use std::collections::BTreeMap;

use fleetmesh_state::{FeatureLevel, NodeId, Release};
use serde::{Deserialize, Serialize};

use crate::EpochSeconds;

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
}

/// `GetCluster` takes nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
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

/// `CreateJoinToken`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateJoinTokenInput {
    /// Lifetime; none means it does not expire.
    #[serde(default)]
    pub ttl_seconds: Option<u64>,
    /// What it is for.
    #[serde(default)]
    pub description: String,
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
}
