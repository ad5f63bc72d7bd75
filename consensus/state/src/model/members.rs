//! Cluster membership as replicated: who is in the cluster, where, with which tags.
//!
//! Voter/agent roles are not stored here: the voter set is Raft's own membership
//! configuration, and every reader derives a member's role from it.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::NodeId;
use serde::{Deserialize, Serialize};

use super::ids::UnixMillis;

/// One member of the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Assigned at join, never reused.
    pub id: NodeId,
    /// QUIC address (`--listen`).
    pub listen: SocketAddr,
    /// HTTP API address (`--api`).
    pub api: SocketAddr,
    /// `--tag KEY=VALUE` pairs; deployment groups select targets by them.
    pub tags: BTreeMap<String, String>,
    /// When it joined.
    pub joined_at: UnixMillis,
}

/// A join token as the cluster remembers it: only its hash, never the secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinTokenRecord {
    /// BLAKE3 of the token's secret part, hex.
    pub secret_hash: String,
    /// After this instant the token is refused; `None` never expires.
    pub expires_at: Option<UnixMillis>,
    /// Free text: who minted it and why.
    pub description: String,
}

/// The cluster certificate authority, as kept in the replicated state. Signing and
/// fingerprints are in `fleetmesh_transport::pki` (`CaAuthority`).
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ClusterCa {
    /// Random id of the cluster; part of the CA's subject.
    pub cluster_id: String,
    /// The CA certificate, PEM.
    pub cert_pem: String,
    /// The CA private key (PKCS#8), PEM. Never leaves the voters.
    pub key_pem: String,
}

impl std::fmt::Debug for ClusterCa {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ClusterCa")
            .field("cluster_id", &self.cluster_id)
            .field("key_pem", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// Cluster-wide facts fixed at bootstrap (or changed only by explicit commands).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterInfo {
    /// The cluster CA, private key included: this struct is replicated to voters only.
    pub ca: ClusterCa,
    /// BLAKE3 of the admin token, hex. The API compares hashes only.
    pub admin_token_hash: String,
    /// Join tokens that are accepted.
    pub join_tokens: Vec<JoinTokenRecord>,
    /// How many voters the leader keeps (`--voters` of the first node).
    pub voters_desired: u32,
    /// When the cluster was created.
    pub created_at: UnixMillis,
}

/// What a joining node asks to be recorded as.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberSpec {
    /// QUIC address.
    pub listen: SocketAddr,
    /// HTTP API address.
    pub api: SocketAddr,
    /// Tags.
    pub tags: BTreeMap<String, String>,
}
