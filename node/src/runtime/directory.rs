//! The address book: what a node knows about the cluster outside Raft.

use std::collections::BTreeMap;
use std::sync::Arc;

use fleetmesh_state::FeatureLevel;
use fleetmesh_transport::NodeId;

use super::protocol::{LeaderHint, MemberAddress, Role};

/// What the node knows about the cluster outside Raft: where the leader and members
/// are, and the admin token hash. Filled from Raft on voters and from poll answers on
/// agents (the agent's poll loop writes it).
#[derive(Debug, Default, Clone)]
pub struct Directory {
    /// The leader as last learned.
    pub leader: Option<LeaderHint>,
    /// Member addresses by id; shared, so that copying the directory is cheap.
    pub members: Arc<BTreeMap<NodeId, MemberAddress>>,
    /// Version of `members` as the leader numbered it.
    pub members_version: u64,
    /// Admin token hash for API checks.
    pub admin_token_hash: String,
    /// Read-only token hash, when the cluster has one.
    pub read_only_token_hash: Option<String>,
    /// Metrics token hash, when the cluster has one.
    pub metrics_token_hash: Option<String>,
    /// This node's role as the leader last said.
    pub role: Option<Role>,
    /// The leader's term as last learned.
    pub term: u64,
    /// The voters as the leader last listed them (agents look for a lost leader there
    /// first).
    pub voters: Vec<NodeId>,
    /// The cluster's feature level as the leader last said (voters read theirs from
    /// the replicated state).
    pub feature_level: FeatureLevel,
}
